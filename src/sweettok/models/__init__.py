"""Pure-torch models of sweettok (never imports kedro).

Public names are imported lazily so that ``import sweettok.models.codebook_prior`` stays light
(the quantizer pulls in torch_geometric). Add a name to ``_EXPORTS`` to export it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SweetTokConfig": "sweettok.models.config",
    "PatchEmbed": "sweettok.models.patchify",
    "as_clip": "sweettok.models.patchify",
    "DQAEBlock": "sweettok.models.dqae",
    "DQAESpatial": "sweettok.models.dqae",
    "DQAETemporal": "sweettok.models.dqae",
    "DecoupledQueryEncoder": "sweettok.models.encoder",
    "DecoupledQueryDecoder": "sweettok.models.decoder",
    "MotionLanguageCodebook": "sweettok.models.quantizer",
    "SweetTok": "sweettok.models.sweettok",
    "parameter_breakdown": "sweettok.models.sweettok",
    "CodebookPrior": "sweettok.models.codebook_prior",
    "WordGraph": "sweettok.models.codebook_prior",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sweettok.models' has no attribute {name!r}")
