"""`proxy`: clip cache -> proxy tokenizer -> proxy code ids for every clip."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.proxy.nodes import encode_proxy_codes, train_proxy_tokenizer


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(train_proxy_tokenizer, ["clip_cache", "params:proxy"], "proxy_tokenizer",
                 name="train_proxy_tokenizer", tags=["training"]),
            Node(encode_proxy_codes, ["clip_cache", "proxy_tokenizer", "params:proxy"], "proxy_codes",
                 name="write_proxy_codes"),
        ]
    )
