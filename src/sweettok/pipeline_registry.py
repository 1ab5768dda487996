"""Project pipelines.

The fine-grained pipelines (one folder each under `pipelines/`, one DVC stage each) are
listed here in the order data flows through them; composite pipelines are assembled from
them, so that people run a whole chain with one command while `dvc repro` reruns only
the stages that changed. The registry is explicit rather than discovered: Kedro's
discovery loads only the requested names, which cannot build a composite.
"""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

PIPELINES = ("ingest", "patchify", "codebook", "proxy", "tokenizer_phase1", "tokenizer_phase2", "reconstruction",
             "image_finetune", "lm", "semantics", "evaluation")

COMPOSITES = {
    # raw videos to a trained tokenizer and its reconstruction metrics
    "tokenizer": ("ingest", "patchify", "codebook", "proxy", "tokenizer_phase1", "tokenizer_phase2", "reconstruction"),
}


def register_pipelines() -> dict[str, Pipeline]:
    pipelines: dict[str, Pipeline] = {
        name: importlib.import_module(f"sweettok.pipelines.{name}").create_pipeline() for name in PIPELINES
    }
    for name, parts in COMPOSITES.items():
        pipelines[name] = sum((pipelines[p] for p in parts), Pipeline([]))
    pipelines["__default__"] = sum((pipelines[p] for p in PIPELINES), Pipeline([]))
    return pipelines
