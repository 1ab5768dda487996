"""The training captions the codebook is built from, tagged and fingerprinted."""

from __future__ import annotations

import hashlib
import json
import logging

import pandas as pd

from sweettok.language.tagging import tag_captions

log = logging.getLogger(__name__)

CAPTION_COLUMNS = ["video_id", "caption", "tagged"]


def select_training_captions(captions: pd.DataFrame, tagger: str = "none", batch_size: int = 256) -> pd.DataFrame:
    """The ``split == "train"`` rows of the ``captions`` table, every one tagged.

    Args:
        captions: the ``captions`` table (``video_id``, ``label``, ``split``, ``caption``,
            ``tagged``); ``tagged`` may be empty for rows of real datasets.
        tagger: spaCy model package that tags rows with an empty ``tagged``; ``none``
            makes such rows an error.
        batch_size: captions per tagging batch.

    Returns:
        columns ``video_id``, ``caption``, ``tagged`` (all str), sorted by ``video_id``
        so that everything derived from it is independent of the input row order.

    Raises:
        ValueError: if a column is missing, no row is in the training split, or rows
            need tagging and ``tagger`` is ``none``.
    """
    missing = sorted({"video_id", "split", "caption", "tagged"} - set(captions.columns))
    if missing:
        raise ValueError(f"captions table lacks column(s) {missing}")
    train = captions.loc[captions["split"] == "train", CAPTION_COLUMNS].copy()
    if train.empty:
        raise ValueError("captions table has no row with split == 'train': the codebook is built from training captions")
    for col in CAPTION_COLUMNS:
        train[col] = train[col].fillna("").astype(str)
    untagged = (train["tagged"].str.strip() == "") & (train["caption"].str.strip() != "")
    if untagged.any():
        if tagger.lower() == "none":
            raise ValueError(
                f"{int(untagged.sum())} training captions have no 'tagged' words and codebook.tagger is 'none'"
            )
        log.info("Tagging %d untagged training captions with spaCy model %s", int(untagged.sum()), tagger)
        train.loc[untagged, "tagged"] = tag_captions(train.loc[untagged, "caption"].tolist(), tagger, batch_size)
    return train.sort_values("video_id", kind="stable").reset_index(drop=True)


def captions_sha256(train_captions: pd.DataFrame) -> str:
    """sha256 (hex) of the captions a codebook was built from, independent of row order.

    Hashes the JSON lines ``[video_id, caption, tagged]`` of the rows sorted by ``video_id``.
    """
    rows = sorted(zip(train_captions["video_id"], train_captions["caption"], train_captions["tagged"]))
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([str(v) for v in row], ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()
