"""`tokenizer_phase2`: phase-1 SweetTok + proxy pixel decoder -> the pixel tokenizer."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.tokenizer_phase2.nodes import train_tokenizer_phase2


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(train_tokenizer_phase2,
             ["clip_index", "tokenizer_phase1_model", "proxy_model", "language_codebook", "params:patchify",
              "params:tokenizer_phase2"],
             "tokenizer_model", name="train_tokenizer_phase2"),
    ])
