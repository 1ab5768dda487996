"""The words of a clip's tokens, grouped by latent token, for people to read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from sweettok.models.tokenizer import VideoTokenizer


@dataclass(frozen=True)
class ClipWords:
    """The words of one clip's tokens.

    Attributes:
        spatial: one phrase per spatial token: ``topk`` adjectives (nearest first) then a noun.
        temporal: one phrase per temporal token: ``topk`` adverbs then a verb (cell-major, as in
            the id layout of :mod:`sweettok.models.quantizer`).
        ids: the clip's token ids ``(topk + 1) * tokens``.
    """

    spatial: list[str]
    temporal: list[str]
    ids: list[int]

    def most_common(self, n: int = 8) -> list[tuple[str, int]]:
        """The ``n`` most frequent words over all tokens, with their counts."""
        return Counter(w for phrase in self.spatial + self.temporal for w in phrase.split()).most_common(n)


@torch.no_grad()
def clip_words(model: VideoTokenizer, clip: torch.Tensor) -> ClipWords:
    """Encode one clip ``(C, T, H, W)`` in [-0.5, 0.5] (on the model's device) and read its words."""
    device = next(model.parameters()).device
    _, ids = model.encode(clip[None].to(device))
    ids = ids[0].cpu()
    words = model.sweettok.ids_to_words(ids)
    n = model.cfg.ids_per_token
    phrases = [" ".join(w for w, _ in words[i : i + n]) for i in range(0, len(words), n)]
    spatial = model.cfg.spatial_queries
    return ClipWords(spatial=phrases[:spatial], temporal=phrases[spatial:], ids=[int(i) for i in ids])
