"""Nodes of the `ingest` pipeline: make the embedded dataset if chosen, then scan a root."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from sweettok.data.scan import LAYOUTS, SPLIT_CONFLICT_POLICIES, scan_dataset
from sweettok.data.synthetic import SyntheticConfig, generate_dataset
from sweettok.schemas import check_split_names
from sweettok.typed_params import from_mapping

SOURCES = ("synthetic", "path")


@dataclass(frozen=True)
class IngestParams:
    """`ingest` parameters.

    Attributes:
        source: ``synthetic`` writes the embedded dataset to ``root`` first; ``path`` scans ``root`` as it is.
        root: dataset root (relative to the project or absolute).
        layout: ``auto``, ``ucf101``, ``kinetics``, ``imagenet`` or ``folders`` (`sweettok.data.scan`).
        split_index: UCF-101 split lists to use (1-3).
        min_frames: videos with fewer frames are rejected (one clip's length).
        on_split_conflict: a file named by both split lists, or the same bytes under two names in
            different splits: ``error`` stops the run naming both entries; ``reject`` rejects every
            name involved (reasons ``in_both_splits``, ``duplicate_content``).
        allow_empty_splits: splits that may end with no file (for instance ``[test]`` for a
            training-only collection); any other empty split stops the run.
        workers: processes that probe files in parallel (each decodes its videos from start to end).
        test_fraction: ``folders`` layout without split folders: the share of each class that goes
            to the test split (chosen by a hash of the names; a class's subfolders stay whole).
        synthetic: parameters of the embedded dataset (`SyntheticConfig`).
    """

    source: str = "synthetic"
    root: str = "data/01_raw/synthetic"
    layout: str = "auto"
    split_index: int = 1
    min_frames: int = 17
    on_split_conflict: str = "error"
    allow_empty_splits: list = field(default_factory=list)
    workers: int = 2
    test_fraction: float = 0.2
    synthetic: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"ingest.source={self.source!r}: must be one of {SOURCES}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"ingest.layout={self.layout!r}: must be one of {LAYOUTS}")
        if self.min_frames < 1:
            raise ValueError(f"ingest.min_frames={self.min_frames}: must be at least 1")
        if self.on_split_conflict not in SPLIT_CONFLICT_POLICIES:
            raise ValueError(f"ingest.on_split_conflict={self.on_split_conflict!r}: must be one of "
                             f"{SPLIT_CONFLICT_POLICIES}")
        check_split_names(self.allow_empty_splits, "ingest.allow_empty_splits")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ValueError(f"ingest.workers={self.workers!r}: must be an integer >= 1")
        if isinstance(self.test_fraction, bool) or not isinstance(self.test_fraction, (int, float)) \
                or not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"ingest.test_fraction={self.test_fraction!r}: must lie strictly between 0 and 1")

    @classmethod
    def from_dict(cls, params: dict) -> "IngestParams":
        return from_mapping(cls, params, "ingest")


def prepare_dataset(params: dict) -> str:
    """Write the embedded dataset when ``source`` is ``synthetic``; return the root to scan."""
    p = IngestParams.from_dict(params)
    if p.source == "synthetic":
        generate_dataset(p.root, SyntheticConfig.from_dict(p.synthetic))
    return p.root


def scan(root: str, params: dict) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Probe and hash every file of the root: (video_manifest, video_rejects, captions)."""
    p = IngestParams.from_dict(params)
    result = scan_dataset(root, layout=p.layout, min_frames=p.min_frames, split_index=p.split_index,
                          on_split_conflict=p.on_split_conflict, allow_empty_splits=p.allow_empty_splits,
                          workers=p.workers, test_fraction=float(p.test_fraction))
    return result.manifest, result.rejects, result.captions
