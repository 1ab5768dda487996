"""Project pipelines: every `pipelines/<name>/pipeline.py` is found by name.

`__default__` chains everything that exists; composite pipelines (for example
`tokenizer`) are assembled from the fine-grained ones here so that DVC stages can call
the fine-grained ones and rerun only what changed.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
