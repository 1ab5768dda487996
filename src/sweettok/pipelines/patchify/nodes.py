"""Nodes of the `patchify` pipeline: the clip cache."""

from __future__ import annotations

import pandas as pd

from sweettok.data.clips import ClipCacheConfig, build_clip_cache


def cache_clips(video_manifest: pd.DataFrame, params: dict) -> pd.DataFrame:
    """Cut, resize and store the clips of every manifest video; return the clip index."""
    return build_clip_cache(video_manifest, ClipCacheConfig.from_dict(params))
