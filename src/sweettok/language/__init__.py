"""The language side of the MLC: vocabulary, text encoders, co-occurrence graph, codebook prior.

``build_vocabulary`` picks the words (training-caption words by part of speech plus the
most frequent general English words), ``make_text_encoder`` embeds them with a frozen
encoder, ``cooccurrence_edges`` links adjective-noun and adverb-verb pairs seen together,
``build_language_codebook`` assembles the ``CodebookPrior`` the quantizer takes, and
``save_language_codebook`` / ``load_language_codebook`` store it as a directory.
"""

from sweettok.language.captions import captions_sha256, select_training_captions
from sweettok.language.codebook import FORMAT_VERSION, LanguageCodebook, build_language_codebook
from sweettok.language.config import CodebookConfig
from sweettok.language.graph import cooccurrence_edges
from sweettok.language.storage import CodebookFormatError, load_language_codebook, save_language_codebook
from sweettok.language.tagging import parse_tagged, tag_captions
from sweettok.language.text_encoders import (
    GloveEncoder,
    MiniLMEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
    make_text_encoder,
)
from sweettok.language.vocabulary import build_vocabulary, load_word_list, word_list_checksums

__all__ = [
    "FORMAT_VERSION",
    "CodebookConfig",
    "CodebookFormatError",
    "GloveEncoder",
    "LanguageCodebook",
    "MiniLMEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "build_language_codebook",
    "build_vocabulary",
    "captions_sha256",
    "cooccurrence_edges",
    "load_language_codebook",
    "load_word_list",
    "make_text_encoder",
    "parse_tagged",
    "save_language_codebook",
    "select_training_captions",
    "tag_captions",
    "word_list_checksums",
]
