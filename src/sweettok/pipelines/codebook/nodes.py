"""Thin nodes of the `codebook` pipeline: parse ``params:codebook``, call ``sweettok.language``."""

from __future__ import annotations

import logging
import time

import pandas as pd

from sweettok.language.captions import captions_sha256, select_training_captions
from sweettok.language.codebook import LanguageCodebook, build_language_codebook
from sweettok.language.config import CodebookConfig
from sweettok.language.text_encoders import make_text_encoder
from sweettok.language.vocabulary import build_vocabulary as _build_vocabulary
from sweettok.language.vocabulary import word_list_checksums

log = logging.getLogger(__name__)


def select_captions(captions: pd.DataFrame, params: CodebookConfig) -> pd.DataFrame:
    """Training rows of ``captions``, tagged (spaCy for rows without tags), sorted by video id."""
    cfg = CodebookConfig.from_params(params)
    return select_training_captions(captions, tagger=cfg.tagger, batch_size=cfg.batch_size)


def build_vocabulary(training_captions: pd.DataFrame, params: CodebookConfig) -> pd.DataFrame:
    """The ``codebook_words`` table: caption words by part of speech, then general words."""
    cfg = CodebookConfig.from_params(params)
    words = _build_vocabulary(training_captions["tagged"].tolist(), cfg)
    for book, rows in words.groupby("book", sort=False):
        log.info(
            "vocabulary %s: %s",
            book,
            ", ".join(
                f"{pos} {len(g)} ({int((g['source'] != 'general').sum())} from captions)"
                for pos, g in rows.groupby("pos", sort=False)
            ),
        )
    return words


def build_codebook_prior(
    codebook_words: pd.DataFrame, training_captions: pd.DataFrame, params: CodebookConfig
) -> LanguageCodebook:
    """Embed the vocabulary with the configured encoder and link co-occurring words."""
    cfg = CodebookConfig.from_params(params)
    start = time.perf_counter()
    encoder = make_text_encoder(cfg.encoder, batch_size=cfg.batch_size, device=cfg.device)
    provenance = {
        "parameters_sha256": cfg.fingerprint(),
        "parameters": {"min_caption_count": cfg.min_caption_count, "general_words": dict(cfg.general_words),
                       "encoder": cfg.encoder},
        "captions_sha256": captions_sha256(training_captions),
        "word_lists_sha256": word_list_checksums(),
    }
    codebook = build_language_codebook(codebook_words, training_captions["tagged"].tolist(), encoder, provenance)
    log.info("codebook built with %s in %.1f s (encoder load included)", encoder.name, time.perf_counter() - start)
    return codebook
