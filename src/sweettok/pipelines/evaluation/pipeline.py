"""`evaluation`: rFVD and per-frame FID beside the reconstruction scores, the metrics table and the HTML report
(with the held-out image scores of `image_finetune` and a figure of a few held-out images, the token LM's
generation scores and samples from `lm`, and few-shot recognition and class words from `semantics`)."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.evaluation.nodes import (assemble_metrics, build_report, describe_run, generation_section,
                                                 image_section, report_figures, score_distributions,
                                                 semantics_section, token_words)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([
        Node(score_distributions, ["clip_cache", "tokenizer", "proxy_tokenizer", "reconstruction_metrics",
                                   "params:evaluation", "params:reconstruction"],
             "evaluation_distances", name="score_distributions"),
        Node(describe_run, ["clip_cache", "video_manifest", "tokenizer", "proxy_tokenizer", "params:evaluation",
                            "parameters"],
             "evaluation_context", name="describe_run"),
        Node(assemble_metrics, ["reconstruction_metrics", "evaluation_distances", "evaluation_context",
                                "params:evaluation"],
             ["evaluation_metrics", "evaluation_metrics_json"], name="assemble_metrics"),
        Node(report_figures, ["clip_cache", "tokenizer", "proxy_tokenizer", "params:evaluation"],
             "evaluation_figures", name="report_figures"),
        Node(token_words, ["clip_cache", "tokenizer", "params:evaluation"], "evaluation_words", name="token_words"),
        Node(image_section, ["image_metrics", "image_cache", "tokenizer", "image_tokenizer", "params:evaluation"],
             "evaluation_images", name="image_section"),
        Node(generation_section, ["lm_metrics", "generated_ids", "tokenizer", "clip_cache", "params:evaluation"],
             "evaluation_generation", name="generation_section"),
        Node(semantics_section, ["fewshot", "fewshot_summary", "class_words", "token_words", "clip_cache",
                                 "params:evaluation"],
             "evaluation_semantics", name="semantics_section"),
        Node(build_report, ["evaluation_metrics", "evaluation_context", "evaluation_figures", "evaluation_words",
                            "evaluation_images", "evaluation_generation", "evaluation_semantics",
                            "params:evaluation"],
             "evaluation_report", name="build_report"),
    ])
