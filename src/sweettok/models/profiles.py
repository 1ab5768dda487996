"""Stand-in codebook sizes for building a model when no language prior has been built yet.

The parameter count of SweetTok does not depend on the vocabulary (the GCN projector's weights
only depend on the embedding width), but the frozen buffers and the cost of a forward pass do.
``sweettok info`` and ``sweettok bench`` therefore build a random prior of a plausible size:

- ``paper``: the release's vocabulary, 10,481 spatial and 11,139 temporal words with 384-d
  all-MiniLM-L6-v2 embeddings. The release does not report the adjective/noun and
  adverb/verb splits; 2,481 + 8,000 and 1,139 + 10,000 are assumptions. 200,000 random
  co-occurrence pairs per book.
- ``base``: a small caption vocabulary (96 adjectives, 160 nouns, 48 adverbs, 112 verbs), 384-d.
"""

from __future__ import annotations

from sweettok.models.codebook_prior import CodebookPrior

__all__ = ["DEFAULT_PRIOR_SIZES", "default_prior"]

DEFAULT_PRIOR_SIZES: dict[str, dict[str, int]] = {
    "paper": {"n_adj": 2481, "n_noun": 8000, "n_adv": 1139, "n_verb": 10000, "embed_dim": 384, "n_edges": 200_000},
    "release": {"n_adj": 2481, "n_noun": 8000, "n_adv": 1139, "n_verb": 10000, "embed_dim": 384, "n_edges": 200_000},
    "base": {"n_adj": 96, "n_noun": 160, "n_adv": 48, "n_verb": 112, "embed_dim": 384, "n_edges": 2_000},
}


def default_prior(profile: str, seed: int = 0) -> CodebookPrior:
    """A random :class:`CodebookPrior` of the documented size for ``profile`` (``base``/``paper``;
    any other name gets the ``base`` sizes)."""
    sizes = DEFAULT_PRIOR_SIZES.get(profile, DEFAULT_PRIOR_SIZES["base"])
    return CodebookPrior.random(seed=seed, **sizes)
