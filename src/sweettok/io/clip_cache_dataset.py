"""Kedro dataset of the clip cache (see :mod:`sweettok.io.directory`)."""

from __future__ import annotations

from sweettok.io.directory import DirectoryDataset


class ClipCacheDataset(DirectoryDataset):
    """The clip cache; loads a ``ClipCache``, saves a ``PendingClipCache``."""

    def load(self):
        from sweettok.data.clips import ClipCache

        return ClipCache(self._filepath)
