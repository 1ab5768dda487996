"""Kedro dataset of a folder of videos with an ``index.csv`` (see :mod:`sweettok.io.directory`)."""

from __future__ import annotations

import pandas as pd

from sweettok.io.directory import DirectoryDataset


class VideoFolderDataset(DirectoryDataset):
    """A folder of video files and ``index.csv`` (one row per file, its ``file`` name first).

    ``save`` takes an object with ``write_to(directory)`` (e.g.
    :class:`sweettok.metrics.generation.PendingVideos`); ``load`` gives the index with each
    ``file`` made a path under the folder (names that leave the folder are refused).
    """

    MARKER = "index.csv"

    def load(self) -> pd.DataFrame:
        index = pd.read_csv(self._filepath / self.MARKER)
        root = self._filepath.resolve()
        paths = []
        for name in index["file"]:
            path = (self._filepath / str(name)).resolve()
            if path.parent != root:
                raise ValueError(f"{self._filepath / self.MARKER}: file {name!r} is not a file of the folder")
            paths.append(path.as_posix())
        return index.assign(path=paths)
