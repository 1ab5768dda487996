"""Kedro dataset of the image cache (see :mod:`sweettok.io.directory`)."""

from __future__ import annotations

from sweettok.io.directory import DirectoryDataset


class ImageCacheDataset(DirectoryDataset):
    """The image cache; loads an ``ImageCache``, saves a ``PendingImageCache``."""

    def load(self):
        from sweettok.data.images import ImageCache

        return ImageCache(self._filepath)
