"""Public API: tokenize your own videos and images with a trained SweetTok.

::

    from sweettok.api import Tokenizer

    tok = Tokenizer.from_pretrained("data/06_models/tokenizer")   # or None: the project's trained one
    tokens = tok.encode("clip.mp4")                # a path, a uint8 array (T, H, W, 3) or a tensor
    frames = tok.decode(tokens)                    # uint8 (T, H, W, 3): the source's length and size
    tok.words(tokens)                              # the words of every window
    tokens.save("clip.npz"); Tokens.load("clip.npz")

Inputs
    A path (video: mp4, avi, mkv, webm, gif, ...; image: png, jpg, webp, bmp, tiff, or any file
    Pillow identifies, whatever its suffix), or frames: a uint8 array ``(T, H, W, 3)`` (an image
    ``(H, W, 3)``) or a float array in [0, 1] of the same shapes, as numpy or torch. Any length
    and size. Image files are read as a viewer shows them (`data.video.read_image_rgb`): 16-bit
    images scaled to 8 bits, transparency over white, EXIF orientation applied. An animated
    image (GIF, animated WebP, APNG, a multi-page TIFF of equal pages) is a video of its frames.

Size policy (``size=``)
    ``"pad"`` (default): scale so the longer edge is the model's resolution, pad the short side
    (edge pixels repeated) to a square; decode crops the padding away and scales back to the
    source's ``H x W``. Nothing of the frame is lost.
    ``"crop"``: scale so the shorter edge is the resolution and keep the centre square; decode
    returns that square at the source's scale (``min(H, W)`` on each side).

Length policy
    A video is cut into consecutive windows of the model's ``input_frames`` (``1 + 4k``,
    17 in the paper) frames; the last window is filled up by repeating the last frame. The
    true length is recorded and decode returns exactly that many frames. A single frame (an
    image) is one 1-frame window: spatial tokens only.

Tokens
    ``Tokens.ids`` is int64 ``(windows, ids_per_window)``, each row one window's ids in the
    layout of :mod:`sweettok.models.quantizer` (spatial then temporal tokens, ``topk + 1`` ids per
    token, every id one word). A token file (``.npz``, read with ``allow_pickle=False``) holds
    the ids, the layout version, the checkpoint's identity (sha256 of its weights) and the
    source's metadata; decoding refuses ids made by another checkpoint or layout version.

Everything runs under ``torch.inference_mode`` in eval mode, batched, on the GPU when there
is one: encoding the same input twice gives the same ids, and decoding ids gives exactly
what decoding the quantized latents gives.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sweettok.data.video import (IMAGE_SUFFIXES, container_of, frame_rgb, loaded_frame_rgb, mp4_boxes_complete,
                                 read_image_rgb)
from sweettok.models.checkpoint import CheckpointError
from sweettok.models.tokenizer import ImageTokenizer, VideoTokenizer, load_model, model_identity

__all__ = ["CheckpointError", "Generator", "InputError", "TokenFileError", "Tokenizer", "Tokens", "LAYOUT_VERSION",
           "default_checkpoint"]

LAYOUT_VERSION = 1
SIZE_POLICIES = ("pad", "crop")


class InputError(ValueError):
    """An input that cannot be tokenized: not a video, unreadable, truncated, wrong shape."""


class TokenFileError(ValueError):
    """A token file that is not one, or was made by another checkpoint or layout version."""


@dataclass
class Tokens:
    """Token ids of one video or image and what decoding needs.

    Attributes:
        ids: int64 ``(windows, ids_per_window)``.
        frames: the source's true number of frames.
        height, width: the source's frame size in pixels.
        size_policy: ``pad`` or ``crop``.
        window: frames per window (``input_frames``; 1 for an image).
        checkpoint: identity of the checkpoint that made the ids (sha256 of its weights).
        layout_version: version of the id layout.
        source: where the frames came from (a path, or ``array``).
        fps: frames per second of the source (0 when unknown).
    """

    ids: np.ndarray
    frames: int
    height: int
    width: int
    size_policy: str
    window: int
    checkpoint: str
    layout_version: int = LAYOUT_VERSION
    source: str = "array"
    fps: float = 0.0

    def save(self, path: str | os.PathLike) -> Path:
        """Write a ``.npz`` token file (plain arrays only)."""
        path = Path(path)
        info = {k: v for k, v in asdict(self).items() if k != "ids"}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.asarray(self.ids, np.int64), info=np.array(json.dumps(info, sort_keys=True)))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Tokens":
        """Read a token file written by :meth:`save` (``allow_pickle=False``).

        Raises:
            TokenFileError: not a token file, or of another layout version.
        """
        path = Path(path)
        if not path.is_file():
            raise TokenFileError(f"{path}: no such token file")
        try:
            with np.load(path, allow_pickle=False) as data:
                ids, info = data["ids"], json.loads(str(data["info"]))
        except (OSError, ValueError, KeyError, EOFError) as exc:
            raise TokenFileError(f"{path}: not a sweettok token file ({type(exc).__name__}: {exc})") from None
        if not isinstance(info, dict) or "layout_version" not in info:
            raise TokenFileError(f"{path}: not a sweettok token file (no layout version)")
        if info["layout_version"] != LAYOUT_VERSION:
            raise TokenFileError(f"{path}: token layout version {info['layout_version']!r}; this sweettok reads "
                                 f"version {LAYOUT_VERSION}")
        if ids.dtype != np.int64 or ids.ndim != 2:
            raise TokenFileError(f"{path}: ids must be int64 (windows, ids_per_window), got {ids.dtype} {ids.shape}")
        known = {f for f in cls.__dataclass_fields__ if f != "ids"}
        try:
            return cls(ids=ids, **{k: v for k, v in info.items() if k in known})
        except TypeError as exc:
            raise TokenFileError(f"{path}: incomplete token file ({exc})") from None


def default_checkpoint(conf_dir: str | os.PathLike | None = None, entry: str = "tokenizer") -> Path:
    """The project's trained tokenizer: the ``tokenizer`` entry of the Kedro catalog (read by the
    project's configuration loader, so ``conf/local`` overrides apply as for ``kedro run``);
    ``entry="token_lm"`` gives the trained token LM."""
    from sweettok.cli import config_loader, find_conf_root

    root = find_conf_root(conf_dir)
    catalog = config_loader(None, root)["catalog"]
    return (root.parent / catalog[entry]["filepath"]).resolve()


def _select_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------- reading inputs
def _read_image(path: Path) -> tuple[Iterator[np.ndarray], float]:
    """An image file's frames (uint8 ``(H, W, 3)``, decoded one at a time) and their rate (0.0: none).

    One frame for a still image. An animated image (animated WebP, APNG, a multi-page TIFF of
    equal pages) is a video: every frame as a viewer composes it, at the rate the first frame's
    duration gives. A multi-page TIFF whose pages differ in size (a pyramid, a thumbnail page)
    is its first page.
    """
    from PIL import Image, UnidentifiedImageError

    def failed(exc: Exception) -> InputError:
        if isinstance(exc, UnidentifiedImageError):
            return InputError(f"{path}: not an image file")
        return InputError(f"{path}: unreadable or truncated image ({exc})")

    try:
        with Image.open(path) as im:
            n = getattr(im, "n_frames", 1)
            sizes = set()
            for i in range(n):  # page headers only: nothing is decoded here
                im.seek(i)
                sizes.add(im.size)
            if n > 1 and len(sizes) == 1:
                im.seek(0)
                im.load()
                duration = im.info.get("duration")
        if n <= 1 or len(sizes) > 1:
            return iter(read_image_rgb(path)[None]), 0.0
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        raise failed(exc) from None
    fps = 1000.0 / float(duration) if isinstance(duration, (int, float)) and duration > 0 else 0.0

    def frames() -> Iterator[np.ndarray]:
        try:
            with Image.open(path) as im:
                for i in range(n):
                    im.seek(i)
                    yield loaded_frame_rgb(im)
        except (OSError, ValueError, EOFError) as exc:
            raise failed(exc) from None

    return frames(), fps


def _image_by_content(path: Path) -> bool:
    """True for a file no video container claims but Pillow identifies as an image (any suffix:
    .jfif, .ppm, .tga, none at all...)."""
    from PIL import Image, UnidentifiedImageError

    with open(path, "rb") as f:
        if container_of(f.read(512)) is not None:
            return False
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError, ValueError):
        return False


def _read_video(path: Path) -> tuple[Iterator[np.ndarray], float, int]:
    """Frames of a video as uint8 (H, W, 3), its fps and its declared frame count (0 if none)."""
    import av

    with open(path, "rb") as f:
        head = f.read(512)
    kind = container_of(head)
    if kind is None:
        raise InputError(f"{path}: not a video or image file (its first bytes match no known container, "
                         "and Pillow reads no image from it)")
    if kind == "mp4":
        ok, why = mp4_boxes_complete(path, path.stat().st_size)
        if not ok:
            raise InputError(f"{path}: truncated or damaged MP4 ({why})")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"{path}: unreadable video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: not a video (the container holds no video stream)")
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 0)
    declared = int(stream.frames or 0)

    def frames() -> Iterator[np.ndarray]:
        n = 0
        try:
            for frame in container.decode(stream):
                n += 1
                yield frame_rgb(frame)
        except (av.error.FFmpegError, OSError) as exc:
            raise InputError(f"{path}: unreadable or truncated video: decoding stopped after {n} frames ({exc})") \
                from None
        finally:
            container.close()
        if n == 0:
            raise InputError(f"{path}: the video stream has no decodable frame")
        if declared and n < declared:
            raise InputError(f"{path}: truncated video: its header declares {declared} frames, {n} decode")

    return frames(), fps, declared


def _as_frames(video: Any) -> tuple[Iterator[np.ndarray], str, float]:
    """Any accepted input -> (iterator of uint8 (H, W, 3) frames, source name, fps)."""
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.is_dir():
            raise InputError(f"{path}: a directory, not a video or image file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: unreadable (permission denied)")
        if path.suffix.lower() in IMAGE_SUFFIXES or _image_by_content(path):
            frames, fps = _read_image(path)
            return frames, str(path), fps
        frames, fps, _ = _read_video(path)
        return frames, str(path), fps
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if not isinstance(video, np.ndarray):
        raise InputError(f"cannot tokenize a {type(video).__name__}: give a path, an array or a tensor")
    if video.ndim == 3:
        video = video[None]
    if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] < 1:
        raise InputError(f"frames must be (T, H, W, 3) or (H, W, 3), got shape {video.shape}")
    if video.dtype != np.uint8:
        if not np.issubdtype(video.dtype, np.floating):
            raise InputError(f"frames must be uint8 or float in [0, 1], got {video.dtype}")
        if video.size and (np.nanmin(video) < 0 or np.nanmax(video) > 1 or np.isnan(video).any()):
            raise InputError("float frames must lie in [0, 1]")
        video = np.round(video * 255).astype(np.uint8)
    return iter(video), "array", 0.0


# ---------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class _Geometry:
    """Where the source's pixels go in the model's square frame and back."""

    height: int
    width: int
    resolution: int
    policy: str

    @property
    def scaled(self) -> tuple[int, int]:
        h, w, r = self.height, self.width, self.resolution
        s = r / max(h, w) if self.policy == "pad" else r / min(h, w)
        return max(1, round(h * s)), max(1, round(w * s))

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the source's content in the model frame (pad) or of the
        kept square in the scaled frame (crop)."""
        sh, sw = self.scaled
        r = self.resolution
        if self.policy == "pad":
            return (r - sh) // 2, (r - sw) // 2, sh, sw
        return (sh - r) // 2, (sw - r) // 2, r, r

    @property
    def output_size(self) -> tuple[int, int]:
        if self.policy == "pad":
            return self.height, self.width
        side = min(self.height, self.width)
        return side, side

    def to_model(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 ``(T, H, W, 3)`` -> float ``(3, T, R, R)`` in [-0.5, 0.5]."""
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        if (x.shape[2], x.shape[3]) != self.scaled:
            x = F.interpolate(x, size=self.scaled, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
        top, left, h, w = self.box
        r = self.resolution
        if self.policy == "pad":
            x = F.pad(x, (left, r - w - left, top, r - h - top), mode="replicate")
        else:
            x = x[:, :, top:top + r, left:left + r]
        return (x - 0.5).permute(1, 0, 2, 3).contiguous()

    def from_model(self, clip: torch.Tensor) -> torch.Tensor:
        """float ``(3, T, R, R)`` in about [-0.5, 0.5] -> uint8 ``(T, H', W', 3)`` at the output size."""
        x = (clip.float().clamp(-0.5, 0.5) + 0.5).permute(1, 0, 2, 3)
        if self.policy == "pad":
            top, left, h, w = self.box
            x = x[:, :, top:top + h, left:left + w]
        size = self.output_size
        if (x.shape[2], x.shape[3]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------- the tokenizer
class Tokenizer:
    """A trained SweetTok video tokenizer for people: encode, decode, words.

    An image tokenizer (``image_finetune``'s output, kind ``sweettok_image``) works the same way
    for images; it refuses videos (:class:`InputError`), whose temporal tokens it was not
    fine-tuned for.

    Args:
        model: the :class:`~sweettok.models.tokenizer.VideoTokenizer` (or ``ImageTokenizer``).
        checkpoint: its identity (sha256 of its weights), written into every token file.
        device: ``None``/``"auto"`` (CUDA when present), or a torch device.
        batch_size: windows per forward pass.
    """

    def __init__(self, model: VideoTokenizer | ImageTokenizer, checkpoint: str,
                 device: str | torch.device | None = None,
                 batch_size: int = 8):
        if not isinstance(model, (VideoTokenizer, ImageTokenizer)):
            raise TypeError(f"Tokenizer wraps a VideoTokenizer or an ImageTokenizer, got {type(model).__name__}")
        self.device = _select_device(device)
        self.model = model.to(self.device).eval()
        self.checkpoint = checkpoint
        self.batch_size = int(batch_size)
        self.path: Path | None = None

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None, device: str | torch.device | None = None,
                        batch_size: int = 8) -> "Tokenizer":
        """Load a tokenizer checkpoint directory strictly (the catalog's ``tokenizer`` when ``path`` is None).

        Raises:
            CheckpointError: missing, damaged or not a video or image tokenizer (names the directory and why).
        """
        path = default_checkpoint() if path is None else Path(path)
        if not Path(path).is_dir():
            raise CheckpointError(f"{path}: no such checkpoint directory (train one with `kedro run --pipeline "
                                  "tokenizer`, or pass --checkpoint)")
        model = load_model(path, kind=("sweettok_pixel", "sweettok_image"))
        tok = cls(model, model_identity(path), device=device, batch_size=batch_size)
        tok.path = Path(path)
        return tok

    # ------------------------------------------------------------------ facts
    @property
    def resolution(self) -> int:
        return self.model.cfg.resolution

    @property
    def window(self) -> int:
        """Frames per video window (the model's ``input_frames``)."""
        return 1 if self.is_image_tokenizer else self.model.cfg.input_frames

    @property
    def is_image_tokenizer(self) -> bool:
        """True for the image tokenizer (one-frame windows only)."""
        return isinstance(self.model, ImageTokenizer)

    def ids_per_window(self, frames: int) -> int:
        return self.model.cfg.ids_per_clip(frames)

    def info(self) -> dict[str, Any]:
        cfg = self.model.cfg
        q = self.model.sweettok.quantizer
        return {"checkpoint": str(self.path) if self.path else None, "identity": self.checkpoint,
                "resolution": cfg.resolution, "window_frames": self.window,
                "ids_per_window": self.ids_per_window(self.window), "ids_per_image": self.ids_per_window(1),
                "latent_tokens_per_window": cfg.num_latent_tokens(self.window), "topk": cfg.topk,
                "vocabulary": {"adjectives": q.n_adj, "nouns": q.n_spatial - q.n_adj, "adverbs": q.n_adv,
                               "verbs": q.n_temporal - q.n_adv},
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "provenance": getattr(self.model, "provenance", {}), "layout_version": LAYOUT_VERSION,
                "device": str(self.device)}

    # ------------------------------------------------------------------ encode
    def _windows(self, frames: Iterator[np.ndarray], policy: str) -> Iterator[tuple[torch.Tensor, _Geometry, int]]:
        """Model-ready windows ``(3, W, R, R)`` with the geometry and the count of real frames in each."""
        first = next(frames, None)
        if first is None:
            raise InputError("no frames to tokenize")
        second = next(frames, None)
        geometry = _Geometry(first.shape[0], first.shape[1], self.resolution, policy)
        if second is None:  # an image: one 1-frame window
            yield geometry.to_model(torch.from_numpy(np.array(first))[None]), geometry, 1
            return
        if self.is_image_tokenizer:
            where = f" ({self.path})" if self.path else ""
            raise InputError(f"this is an image tokenizer{where}: it encodes single images, and the input has "
                             "more than one frame; tokenize videos with the video tokenizer")
        size = self.window
        buf: list[torch.Tensor] = []

        def prepared(frame: np.ndarray) -> torch.Tensor:
            if frame.shape != first.shape:
                raise InputError(f"frame size changes within the video: {first.shape} then {frame.shape}")
            # frames are scaled one by one, so a long or large video is never held in memory whole
            return geometry.to_model(torch.from_numpy(np.array(frame))[None])[:, 0]

        for frame in itertools.chain((first, second), frames):
            buf.append(prepared(frame))
            if len(buf) == size:
                yield torch.stack(buf, 1), geometry, size
                buf = []
        if buf:
            real = len(buf)
            buf += [buf[-1]] * (size - real)  # fill the last window with its last frame
            yield torch.stack(buf, 1), geometry, real

    @torch.inference_mode()
    def encode(self, video: Any, size: str = "pad") -> Tokens:
        """Token ids of a video or image (see the module docstring for inputs and policies).

        Raises:
            InputError: not a video or image, unreadable or truncated file, bad array; a video given to an
                image tokenizer.
        """
        if size not in SIZE_POLICIES:
            raise ValueError(f"size={size!r}: must be one of {SIZE_POLICIES}")
        frames, source, fps = _as_frames(video)
        rows: list[np.ndarray] = []
        batch: list[torch.Tensor] = []
        total, geometry, window = 0, None, 1

        def flush() -> None:
            if batch:
                _, ids = self.model.encode(torch.stack(batch).to(self.device))
                rows.extend(ids.cpu().numpy())
                batch.clear()

        for clip, geometry, real in self._windows(frames, size):
            window = clip.shape[1]
            total += real
            batch.append(clip)
            if len(batch) == self.batch_size:
                flush()
        flush()
        return Tokens(ids=np.stack(rows).astype(np.int64), frames=total, height=geometry.height,
                      width=geometry.width, size_policy=size, window=window, checkpoint=self.checkpoint,
                      source=source, fps=fps)

    # ------------------------------------------------------------------ decode
    def check(self, tokens: Tokens) -> None:
        """Raise :class:`TokenFileError` unless ``tokens`` were made by this checkpoint and layout."""
        if tokens.layout_version != LAYOUT_VERSION:
            raise TokenFileError(f"tokens of layout version {tokens.layout_version}; this sweettok reads "
                                 f"{LAYOUT_VERSION}")
        if tokens.checkpoint != self.checkpoint:
            raise TokenFileError(f"tokens made by checkpoint {tokens.checkpoint[:12]}, not by this one "
                                 f"({self.checkpoint[:12]}{', ' + str(self.path) if self.path else ''})")
        want = self.ids_per_window(tokens.window)
        if tokens.ids.ndim != 2 or tokens.ids.shape[1] != want:
            raise TokenFileError(f"tokens hold {tokens.ids.shape} ids; {tokens.window}-frame windows of this "
                                 f"checkpoint have {want} ids each")
        if tokens.ids.shape[0] != max(1, math.ceil(tokens.frames / tokens.window)):
            raise TokenFileError(f"{tokens.ids.shape[0]} windows cannot hold {tokens.frames} frames of "
                                 f"{tokens.window}")

    @torch.inference_mode()
    def iter_decode(self, tokens: Tokens) -> Iterator[np.ndarray]:
        """Decoded frames window by window: uint8 ``(n, H, W, 3)`` arrays, ``tokens.frames`` frames in all."""
        self.check(tokens)
        geometry = _Geometry(tokens.height, tokens.width, self.resolution, tokens.size_policy)
        left = tokens.frames
        ids = torch.from_numpy(np.ascontiguousarray(tokens.ids))
        for start in range(0, len(ids), self.batch_size):
            clips = self.model.decode_ids(ids[start:start + self.batch_size].to(self.device), tokens.window)
            for clip in clips:
                frames = geometry.from_model(clip.cpu())[: min(left, tokens.window)]
                left -= len(frames)
                yield frames.numpy()

    def decode(self, tokens: Tokens) -> np.ndarray:
        """Frames uint8 ``(T, H, W, 3)``: the source's true length, at its size (``pad``) or the
        centre square at its scale (``crop``)."""
        return np.concatenate(list(self.iter_decode(tokens)))

    def words(self, tokens: Tokens) -> list[list[tuple[str, str]]]:
        """``(word, part of speech)`` of every id, one list per window."""
        self.check(tokens)
        return [self.model.sweettok.ids_to_words(torch.from_numpy(row)) for row in tokens.ids]


class Generator:
    """A trained class-conditional token LM (the ``lm`` pipeline's ``token_lm``) with the tokenizer
    whose ids it models: sample new clips of a class as token files or frames.

    ::

        gen = Generator.from_pretrained()                  # the catalog's token_lm and tokenizer
        tokens = gen.sample("Bounce", n=4, seed=0)         # four Tokens, one 17-frame window each
        frames = gen.tokenizer.decode(tokens[0])           # uint8 (17, 64, 64, 3)

    Sampling settings are those of :class:`~sweettok.models.lm.SamplingConfig` (temperature, top-k,
    top-p, classifier-free guidance); the same seed, ``n`` and settings give the same ids (the
    ``n`` clips are drawn together, so the first of four is not the clip drawn alone).

    Raises:
        CheckpointError: the LM was trained on another tokenizer's ids, or its layout does not fit
            this tokenizer.
    """

    def __init__(self, lm: torch.nn.Module, tokenizer: Tokenizer, path: Path | None = None):
        from sweettok.models.lm import TokenLM

        if not isinstance(lm, TokenLM):
            raise TypeError(f"Generator wraps a TokenLM, got {type(lm).__name__}")
        if tokenizer.is_image_tokenizer:
            raise CheckpointError("the token LM models a video tokenizer's ids; this is an image tokenizer")
        provenance = getattr(lm, "provenance", None) or {}
        made_by = provenance.get("tokenizer_sha256")
        where = f" ({path})" if path else ""
        if made_by is not None and made_by != tokenizer.checkpoint:
            raise CheckpointError(f"the token LM{where} was trained on the ids of tokenizer {str(made_by)[:12]}, "
                                  f"not of this one ({tokenizer.checkpoint[:12]}); retrain it with `kedro run "
                                  "--pipelines lm` or pass the tokenizer it was trained with")
        if tokenizer.ids_per_window(tokenizer.window) != lm.vocab.clip_ids:
            raise CheckpointError(f"the token LM{where} models {lm.vocab.clip_ids} ids per clip; this tokenizer's "
                                  f"{tokenizer.window}-frame windows have {tokenizer.ids_per_window(tokenizer.window)}")
        self.lm = lm.to(tokenizer.device).eval()
        self.tokenizer = tokenizer
        self.path = path
        names = provenance.get("classes")
        self.classes: list[str] = ([str(c) for c in names] if names and len(names) == lm.cfg.classes
                                   else [f"class {i}" for i in range(lm.cfg.classes)])

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike | None = None,
                        tokenizer: Tokenizer | str | os.PathLike | None = None,
                        device: str | torch.device | None = None) -> "Generator":
        """Load a token LM directory (the catalog's ``token_lm`` when ``path`` is None) and its tokenizer
        (a :class:`Tokenizer`, a checkpoint directory, or None: the catalog's ``tokenizer``)."""
        path = default_checkpoint(entry="token_lm") if path is None else Path(path)
        if not Path(path, "config.json").is_file():
            raise CheckpointError(f"{path}: no token LM here (train one with `kedro run --pipelines lm`, or pass "
                                  "--lm)")
        if not isinstance(tokenizer, Tokenizer):
            tokenizer = Tokenizer.from_pretrained(tokenizer, device=device)
        return cls(load_model(path, kind="token_lm"), tokenizer, Path(path))

    def class_index(self, label: str | int) -> int:
        """A class by name (case-insensitive) or index.

        Raises:
            InputError: no such class (the message lists them).
        """
        if isinstance(label, (int, np.integer)) or (isinstance(label, str) and label.strip().isdigit()):
            index = int(label)
            if 0 <= index < len(self.classes):
                return index
        else:
            folded = [c.casefold() for c in self.classes]
            if str(label).casefold() in folded:
                return folded.index(str(label).casefold())
        raise InputError(f"no class {label!r}; the LM knows {len(self.classes)}: "
                         + ", ".join(f"{i} {c}" for i, c in enumerate(self.classes)))

    @torch.inference_mode()
    def sample(self, label: str | int, n: int = 1, seed: int = 0, sampling: Any = None,
               fps: float = 8.0) -> list[Tokens]:
        """``n`` clips of class ``label``, as token files' contents (one window of the tokenizer's length each).

        Args:
            sampling: a :class:`~sweettok.models.lm.SamplingConfig` or a mapping of its fields
                (None: its defaults).
            fps: the frame rate written into the tokens (what a video made from them plays at).
        """
        from sweettok.models.lm import SamplingConfig, generate

        if n < 1:
            raise InputError(f"n must be at least 1, got {n}")
        if sampling is None or isinstance(sampling, dict):
            sampling = SamplingConfig.from_dict(sampling or {})
        index = self.class_index(label)
        labels = torch.full((n,), index, dtype=torch.long)
        ids = generate(self.lm, labels, sampling, torch.Generator().manual_seed(int(seed))).cpu().numpy()
        size, window = self.tokenizer.resolution, self.tokenizer.window
        return [Tokens(ids=ids[i:i + 1].astype(np.int64), frames=window, height=size, width=size, size_policy="pad",
                       window=window, checkpoint=self.tokenizer.checkpoint, fps=float(fps),
                       source=f"token LM sample {i} of class {self.classes[index]}, seed {seed}")
                for i in range(n)]
