"""`proxy`: clip cache -> proxy tokenizer -> proxy code ids for every clip."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.proxy.nodes import train_proxy_tokenizer, write_codes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(train_proxy_tokenizer, ["clip_index", "params:patchify", "params:proxy"], "proxy_model",
                 name="train_proxy_tokenizer"),
            Node(write_codes, ["clip_index", "proxy_model", "params:patchify", "params:proxy"], "proxy_code_index",
                 name="write_proxy_codes"),
        ]
    )
