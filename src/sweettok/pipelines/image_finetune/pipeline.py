"""`image_finetune`: clip cache -> image cache; video tokenizer -> image tokenizer; held-out image scores."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.image_finetune.nodes import build_image_set, evaluate_images, finetune_image_tokenizer


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(build_image_set, ["clip_cache", "params:image_finetune"], "image_cache", name="build_image_cache"),
        Node(finetune_image_tokenizer, ["image_cache", "tokenizer", "params:image_finetune"], "image_tokenizer",
             name="finetune_image_tokenizer", tags=["training"]),
        Node(evaluate_images, ["image_cache", "tokenizer", "image_tokenizer", "params:image_finetune"],
             ["image_metrics", "image_reconstructions"], name="evaluate_images"),
    ])
