"""Nodes of the `patchify` pipeline: the clip cache."""

from __future__ import annotations

import pandas as pd

from sweettok.data.clips import ClipCacheConfig, PendingClipCache


def cache_clips(video_manifest: pd.DataFrame, params: dict) -> PendingClipCache:
    """Cut, resize and store the clips of every manifest video.

    The clips are written when the catalog saves ``clip_cache`` (straight into its directory).
    """
    return PendingClipCache(video_manifest, ClipCacheConfig.from_dict(params))
