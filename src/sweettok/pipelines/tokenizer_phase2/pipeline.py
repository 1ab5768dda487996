"""`tokenizer_phase2`: phase-1 SweetTok + proxy pixel decoder -> the video tokenizer."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.tokenizer_phase2.nodes import train_tokenizer_phase2


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(train_tokenizer_phase2, ["clip_cache", "tokenizer_phase1", "proxy_tokenizer", "params:tokenizer_phase2"],
             "tokenizer", name="train_tokenizer_phase2", tags=["training"]),
    ])
