"""`lm`: clip cache + tokenizer -> id table -> class-conditional token LM -> samples -> gFVD and class accuracy."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.lm.nodes import encode_token_ids, generate_clips, score_generation, train_token_lm


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(encode_token_ids, ["clip_cache", "tokenizer", "params:lm"], "token_ids", name="encode_token_ids"),
        Node(train_token_lm, ["token_ids", "tokenizer", "clip_cache", "params:lm"], ["token_lm", "lm_training"],
             name="train_token_lm", tags=["training"]),
        Node(generate_clips, ["token_lm", "tokenizer", "clip_cache", "token_ids", "params:lm"],
             ["generated_ids", "generated_videos", "generated_grid"], name="generate_clips"),
        Node(score_generation, ["generated_ids", "token_ids", "clip_cache", "tokenizer", "token_lm", "lm_training",
                                "params:lm"],
             ["lm_metrics", "generated_confusion"], name="score_generation"),
    ])
