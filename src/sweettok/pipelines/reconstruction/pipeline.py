"""`reconstruction`: the trained tokenizer, the proxy tokenizer and trivial baselines on the test clips."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.reconstruction.nodes import evaluate_reconstruction


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(evaluate_reconstruction, ["clip_cache", "tokenizer", "proxy_tokenizer", "params:reconstruction"],
             ["reconstruction_metrics", "reconstruction_examples", "reconstruction_budget",
              "reconstruction_budget_plot"], name="evaluate_reconstruction"),
    ])
