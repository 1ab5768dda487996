"""`tokenizer_phase1`: clip cache + proxy codes + language codebook -> SweetTok predicting proxy ids."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.tokenizer_phase1.nodes import train_tokenizer_phase1


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(train_tokenizer_phase1,
             ["clip_cache", "proxy_codes", "proxy_tokenizer", "language_codebook", "params:model",
              "params:tokenizer_phase1"],
             "tokenizer_phase1", name="train_tokenizer_phase1", tags=["training"]),
    ])
