"""`patchify`: video manifest -> clip shards + clip index."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.patchify.nodes import cache_clips


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([Node(cache_clips, ["video_manifest", "params:patchify"], "clip_index", name="cache_clips")])
