"""`patchify`: video manifest -> clip cache (index + shards)."""

from kedro.pipeline import Node, Pipeline

from sweettok.pipelines.patchify.nodes import cache_clips


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([Node(cache_clips, ["video_manifest", "params:patchify"], "clip_cache", name="cache_clips")])
