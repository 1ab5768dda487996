"""The embedded dataset: synthetic action videos that differ by motion alone.

`generate_dataset` writes a labelled action-video dataset as real H.264 mp4 files in
UCF-101's layout::

    <root>/<Class>/v_<Class>_gNN_cNN.mp4
    <root>/ucfTrainTestlist/classInd.txt      "1 MoveLeft" ...
    <root>/ucfTrainTestlist/trainlist01.txt   "MoveLeft/v_MoveLeft_g03_c01.mp4 1" ...
    <root>/ucfTrainTestlist/testlist01.txt    "MoveLeft/v_MoveLeft_g01_c01.mp4" ...
    <root>/captions.csv                       path,caption,tagged
    <root>/dataset.json                       parameters and file checksums

Every class is a kind of motion (direction, rotation, scaling, bouncing, orbiting), and
the object's shape, colour, size and texture, and the background, are drawn at random
independently of the class, so appearance cannot give the class away. Backgrounds are
real photographs shipped with scikit-image or colour gradients; a share of the videos
has camera motion (a pan or a zoom over the background). As in UCF-101, groups ``gNN``
split train from test (the first ``test_groups`` groups are the test split).

Each caption is built from adjectives (size, texture, colour), a noun (the shape), a verb
(the motion) and an adverb (speed or manner), and is stored with each word's universal
part-of-speech tag (``tagged``: ``a/DET small/ADJ ... square/NOUN slides/VERB slowly/ADV``).

Frames are rendered with numpy from a per-video random generator seeded by
``(seed, class, group, clip)``, so the same parameters give the same rendered frames, bit
for bit. The H.264 files are not always bit-identical: x264 on one thread still made a
different choice now and then (measured: 2 distinct files in 25-60 encodes of the same
frames, the same with numpy's own RGB -> YUV conversion or explicit single-thread x264
parameters), which changes a few decoded pixels by up to about 25 levels in some frames.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sweettok.typed_params import ParamError, from_mapping

log = logging.getLogger(__name__)

# class name -> (verb, kind of motion). The verb carries the action, as in the paper's
# reading of temporal tokens.
ACTIONS: dict[str, str] = {
    "MoveLeft": "slides",
    "MoveRight": "glides",
    "MoveUp": "rises",
    "MoveDown": "sinks",
    "RotateClockwise": "spins",
    "RotateCounterClockwise": "turns",
    "Grow": "grows",
    "Shrink": "shrinks",
    "Bounce": "bounces",
    "Orbit": "circles",
}
SHAPES = ("square", "circle", "triangle", "diamond", "star", "cross", "hexagon")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "orange": (250, 140, 20),
    "purple": (150, 50, 200),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SIZES: dict[str, float] = {"small": 0.13, "medium": 0.19, "large": 0.26}  # radius / frame height
TEXTURES = ("plain", "striped", "dotted", "checkered")
# adverb -> (speed factor, jitter in fractions of the frame)
MANNERS: dict[str, tuple[float, float]] = {
    "slowly": (0.55, 0.0),
    "quickly": (1.35, 0.0),
    "smoothly": (0.95, 0.0),
    "jerkily": (0.95, 0.025),
}
# scikit-image photographs that load without a download
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "text", "horse")
CAMERA_MOTIONS = ("none", "pan", "zoom")


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and seed of the embedded dataset.

    Attributes:
        n_classes: how many of the action classes to use (at most ``len(ACTIONS)``).
        groups: groups per class (UCF-101 style ``gNN``); the first ``test_groups`` are test.
        clips_per_group: videos per group (``cNN``).
        test_groups: number of groups in the test split.
        frames: frames per video (at least 24).
        height, width: frame size in pixels (even numbers, for H.264).
        fps: frame rate written in the container.
        camera_motion_fraction: share of videos with a pan or zoom.
        photo_fraction: share of videos over a photograph (the rest over gradients).
        crf: x264 constant rate factor (lower is higher quality).
        seed: master seed.
        workers: processes used to render and encode.
    """

    n_classes: int = 10
    groups: int = 8
    clips_per_group: int = 4
    test_groups: int = 2
    frames: int = 32
    height: int = 96
    width: int = 128
    fps: int = 8
    camera_motion_fraction: float = 0.35
    photo_fraction: float = 0.7
    crf: int = 18
    seed: int = 0
    workers: int = 2

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> None:
            raise ParamError(name, f"{why}, got {getattr(self, name)!r}", owner="SyntheticConfig")

        if not 8 <= self.n_classes <= len(ACTIONS):
            bad("n_classes", f"must be between 8 and {len(ACTIONS)}")
        if self.groups < 2:
            bad("groups", "must be at least 2")
        if not 1 <= self.test_groups < self.groups:
            bad("test_groups", "must be at least 1 and fewer than groups")
        if self.clips_per_group < 1:
            bad("clips_per_group", "must be at least 1")
        if self.frames < 24:
            bad("frames", "videos need at least 24 frames")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                bad(name, "must be an even number of at least 32")
        if self.fps <= 0:
            bad("fps", "must be positive")
        for name in ("camera_motion_fraction", "photo_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                bad(name, "must be in [0, 1]")
        if not 0 <= self.crf <= 51:
            bad("crf", "must be in [0, 51]")
        if self.workers < 1:
            bad("workers", "must be at least 1")

    @classmethod
    def from_dict(cls, params: dict, where: str = "ingest.synthetic") -> "SyntheticConfig":
        """Build from the parameters at key path ``where``; errors name ``<where>.<field>``."""
        return from_mapping(cls, params, where)

    @property
    def classes(self) -> list[str]:
        return list(ACTIONS)[: self.n_classes]

    def fingerprint(self) -> str:
        """Hash of every parameter that changes the files (not ``workers``)."""
        params = {k: v for k, v in asdict(self).items() if k != "workers"}
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class VideoSpec:
    """Everything random about one video, drawn from its own generator."""

    label: str
    group: int
    clip: int
    shape: str
    colour: str
    size: str
    texture: str
    manner: str
    background: str  # a photo name or "gradient"
    camera: str
    seed: int

    @property
    def relpath(self) -> str:
        return f"{self.label}/v_{self.label}_g{self.group:02d}_c{self.clip:02d}.mp4"

    def caption(self) -> tuple[str, str]:
        """The caption and its word/POS tagging."""
        words = [
            ("a", "DET"),
            (self.size, "ADJ"),
            *([(self.texture, "ADJ")] if self.texture != "plain" else []),
            (self.colour, "ADJ"),
            (self.shape, "NOUN"),
            (ACTIONS[self.label], "VERB"),
            (self.manner, "ADV"),
        ]
        return " ".join(w for w, _ in words), " ".join(f"{w}/{p}" for w, p in words)


def _video_seed(seed: int, label: str, group: int, clip: int) -> int:
    digest = hashlib.sha256(f"{seed}/{label}/{group}/{clip}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def draw_spec(cfg: SyntheticConfig, label: str, group: int, clip: int) -> VideoSpec:
    """Draw a video's appearance, manner and camera independently of its class."""
    seed = _video_seed(cfg.seed, label, group, clip)
    rng = np.random.default_rng(seed)
    background = str(rng.choice(PHOTOS)) if rng.random() < cfg.photo_fraction else "gradient"
    camera = str(rng.choice(CAMERA_MOTIONS[1:])) if rng.random() < cfg.camera_motion_fraction else "none"
    return VideoSpec(
        label=label,
        group=group,
        clip=clip,
        shape=str(rng.choice(SHAPES)),
        colour=str(rng.choice(list(COLOURS))),
        size=str(rng.choice(list(SIZES))),
        texture=str(rng.choice(TEXTURES)),
        manner=str(rng.choice(list(MANNERS))),
        background=background,
        camera=camera,
        seed=seed,
    )


# --------------------------------------------------------------------------- rendering


def _load_photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (H, W, 3) float32 in [0, 1]."""
    from skimage import data as skdata
    from skimage.color import gray2rgb

    img = getattr(skdata, name)()
    if img.ndim == 2:
        img = gray2rgb(img)
    img = img[..., :3].astype(np.float32)
    return img / 255.0 if img.max() > 1.5 else img


def _background_canvas(spec: VideoSpec, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A background 1.5x larger than the frame, so that the camera can pan and zoom over it."""
    from skimage.transform import resize

    ch, cw = int(height * 1.5), int(width * 1.5)
    if spec.background == "gradient":
        c0, c1 = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        t = (np.cos(angle) * xx / cw + np.sin(angle) * yy / ch)
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        return (c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]).astype(np.float32)
    photo = _load_photo(spec.background)
    # a random crop of the photo with the canvas' aspect ratio, resized to the canvas
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.6, 1.0)
    crop_h = int(min(ph, pw * ch / cw) * scale)
    crop_w = int(crop_h * cw / ch)
    y0 = int(rng.integers(0, ph - crop_h + 1))
    x0 = int(rng.integers(0, pw - crop_w + 1))
    crop = photo[y0 : y0 + crop_h, x0 : x0 + crop_w]
    return resize(crop, (ch, cw), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _camera_view(canvas: np.ndarray, camera: str, t: float, direction: np.ndarray, height: int, width: int) -> np.ndarray:
    """The frame-sized view of the background at time ``t`` in [0, 1]."""
    ch, cw = canvas.shape[:2]
    if camera == "zoom":
        # the window shrinks from the whole canvas towards 2/3 of it around the centre
        frac = 1.0 - (1.0 / 3.0) * t
        vh, vw = ch * frac, cw * frac
        cy, cx = ch / 2, cw / 2
    else:
        vh, vw = float(height), float(width)
        shift = (t - 0.5) * direction if camera == "pan" else np.zeros(2)
        cy = ch / 2 + shift[0] * (ch - height) / 2
        cx = cw / 2 + shift[1] * (cw - width) / 2
    ys = cy - vh / 2 + (np.arange(height) + 0.5) * vh / height
    xs = cx - vw / 2 + (np.arange(width) + 0.5) * vw / width
    yi = np.clip(ys, 0, ch - 1.001)
    xi = np.clip(xs, 0, cw - 1.001)
    y0, x0 = yi.astype(int), xi.astype(int)
    wy, wx = (yi - y0)[:, None, None], (xi - x0)[None, :, None]
    a = canvas[y0][:, x0]
    b = canvas[y0][:, x0 + 1]
    c = canvas[y0 + 1][:, x0]
    d = canvas[y0 + 1][:, x0 + 1]
    return (a * (1 - wy) * (1 - wx) + b * (1 - wy) * wx + c * wy * (1 - wx) + d * wy * wx).astype(np.float32)


def _shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed inside-ness (>0 inside) of a unit-radius shape at local coordinates (u, v)."""
    r = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    if shape == "circle":
        return 1.0 - r
    if shape == "square":
        return 0.8 - np.maximum(np.abs(u), np.abs(v))
    if shape == "diamond":
        return 1.0 - (np.abs(u) + np.abs(v))
    if shape == "triangle":
        # equilateral, pointing up, inscribed in the unit circle: the largest of three half-plane distances
        d = np.full_like(u, -np.inf)
        for k in range(3):
            a = -math.pi / 2 + k * 2 * math.pi / 3 + math.pi
            d = np.maximum(d, u * math.cos(a) + v * math.sin(a))
        return 0.5 - d
    if shape == "star":
        return (0.62 + 0.33 * np.cos(5 * theta)) - r
    if shape == "cross":
        arms = np.maximum(0.3 - np.abs(u), 0.3 - np.abs(v))
        return np.minimum(arms, 0.9 - np.maximum(np.abs(u), np.abs(v)))
    if shape == "hexagon":
        d = np.full_like(u, -np.inf)
        for k in range(6):
            a = k * math.pi / 3
            d = np.maximum(d, u * math.cos(a) + v * math.sin(a))
        return 0.87 - d
    raise ValueError(f"unknown shape {shape!r}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness multiplier of a texture in the object's own frame (it moves with the object)."""
    if texture == "plain":
        return np.ones_like(u)
    if texture == "striped":
        return np.where(np.sin(u * 3 * math.pi) > 0, 1.0, 0.45)
    if texture == "dotted":
        return np.where(np.hypot((u * 2.5) % 1 - 0.5, (v * 2.5) % 1 - 0.5) < 0.22, 0.35, 1.0)
    if texture == "checkered":
        return np.where((np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 0, 1.0, 0.5)
    raise ValueError(f"unknown texture {texture!r}")


def _object_pose(label: str, t: float, speed: float, start: np.ndarray, phase: float) -> tuple[np.ndarray, float, float]:
    """Centre (y, x) in frame fractions, rotation angle (radians) and scale at time t in [0, 1]."""
    travel = 0.55 * speed
    centre = start.copy()
    angle, scale = phase, 1.0
    if label == "MoveLeft":
        centre[1] = 0.5 + travel / 2 - travel * t
    elif label == "MoveRight":
        centre[1] = 0.5 - travel / 2 + travel * t
    elif label == "MoveUp":
        centre[0] = 0.5 + travel / 2 - travel * t
    elif label == "MoveDown":
        centre[0] = 0.5 - travel / 2 + travel * t
    elif label == "RotateClockwise":
        angle = phase + 2.2 * math.pi * speed * t
    elif label == "RotateCounterClockwise":
        angle = phase - 2.2 * math.pi * speed * t
    elif label == "Grow":
        scale = 0.55 + 0.9 * speed * t
    elif label == "Shrink":
        scale = 0.55 + 0.9 * speed * (1 - t)
    elif label == "Bounce":
        hops = 2.0 * speed
        centre[0] = 0.72 - 0.42 * abs(math.sin(math.pi * hops * t))
    elif label == "Orbit":
        a = phase + 2 * math.pi * speed * t
        centre = np.array([0.5 + 0.22 * math.sin(a), 0.5 + 0.22 * math.cos(a)])
    else:
        raise ValueError(f"unknown action {label!r}")
    return centre, angle, scale


def render_video(spec: VideoSpec, cfg: SyntheticConfig) -> np.ndarray:
    """Render one video as uint8 frames (T, H, W, 3)."""
    rng = np.random.default_rng(spec.seed)
    height, width, frames = cfg.height, cfg.width, cfg.frames
    canvas = _background_canvas(spec, rng, height, width)
    pan_dir = rng.normal(size=2)
    pan_dir = pan_dir / (np.linalg.norm(pan_dir) + 1e-9)
    speed, jitter = MANNERS[spec.manner]
    start = np.array([rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65)])
    phase = float(rng.uniform(0, 2 * math.pi))
    radius = SIZES[spec.size] * height
    colour = np.array(COLOURS[spec.colour], np.float32) / 255.0
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    out = np.empty((frames, height, width, 3), np.uint8)
    shake = rng.normal(scale=jitter, size=(frames, 2)) if jitter else np.zeros((frames, 2))
    for i in range(frames):
        t = i / (frames - 1)
        frame = _camera_view(canvas, spec.camera, t, pan_dir, height, width)
        centre, angle, scale = _object_pose(spec.label, t, speed, start, phase)
        cy = (centre[0] + shake[i, 0]) * height
        # positions are fractions of the height, centred: motion stays inside the square centre crop
        cx = width / 2 + (centre[1] + shake[i, 1] - 0.5) * height
        r = radius * scale
        dy, dx = (yy - cy) / r, (xx - cx) / r
        ca, sa = math.cos(angle), math.sin(angle)
        u, v = ca * dx + sa * dy, -sa * dx + ca * dy
        # soft edge one pixel wide, for anti-aliasing
        alpha = np.clip(_shape_inside(spec.shape, u, v) * r + 0.5, 0.0, 1.0)[..., None]
        fill = colour[None, None] * _texture(spec.texture, u, v)[..., None]
        frame = frame * (1 - alpha) + fill * alpha
        out[i] = np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


# --------------------------------------------------------------------------- writing


def write_mp4(path: Path, frames: np.ndarray, fps: int, crf: int = 18) -> None:
    """Encode uint8 frames (T, H, W, 3) as H.264 (yuv420p) in an mp4 container.

    One x264 thread. The same frames almost always give the same bytes, but not always
    (see the module docstring).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
        stream.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)


def _make_one(args: tuple[VideoSpec, SyntheticConfig, str]) -> tuple[str, str]:
    spec, cfg, root = args
    path = Path(root) / spec.relpath
    write_mp4(path, render_video(spec, cfg), cfg.fps, cfg.crf)
    return spec.relpath, hashlib.sha256(path.read_bytes()).hexdigest()


def all_specs(cfg: SyntheticConfig) -> list[VideoSpec]:
    return [
        draw_spec(cfg, label, g, c)
        for label in cfg.classes
        for g in range(1, cfg.groups + 1)
        for c in range(1, cfg.clips_per_group + 1)
    ]


def dataset_is_current(root: Path, cfg: SyntheticConfig) -> bool:
    """True when ``root`` holds a complete dataset generated with these parameters."""
    meta = root / "dataset.json"
    if not meta.is_file():
        return False
    try:
        info = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return False
    if info.get("fingerprint") != cfg.fingerprint():
        return False
    return all((root / rel).is_file() for rel in info.get("files", {}))


def generate_dataset(root: str | Path, cfg: SyntheticConfig, force: bool = False) -> Path:
    """Write the embedded dataset to ``root`` (see the module docstring for the layout).

    Reuses ``root`` when it already holds the same dataset, unless ``force``.
    Returns the root.
    """
    from tqdm.auto import tqdm

    root = Path(root)
    if not force and dataset_is_current(root, cfg):
        log.info("synthetic dataset at %s is current (fingerprint %s)", root, cfg.fingerprint())
        return root
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").unlink(missing_ok=True)
    specs = all_specs(cfg)
    jobs = [(s, cfg, str(root)) for s in specs]
    checksums: dict[str, str] = {}
    desc = f"rendering {len(specs)} videos"
    if cfg.workers > 1:
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            for rel, digest in tqdm(pool.map(_make_one, jobs, chunksize=4), total=len(jobs), desc=desc):
                checksums[rel] = digest
    else:
        for job in tqdm(jobs, desc=desc):
            rel, digest = _make_one(job)
            checksums[rel] = digest

    lists = root / "ucfTrainTestlist"
    lists.mkdir(exist_ok=True)
    classes = cfg.classes
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(classes, 1)))
    train = [s for s in specs if s.group > cfg.test_groups]
    test = [s for s in specs if s.group <= cfg.test_groups]
    (lists / "trainlist01.txt").write_text("".join(f"{s.relpath} {classes.index(s.label) + 1}\n" for s in train))
    (lists / "testlist01.txt").write_text("".join(f"{s.relpath}\n" for s in test))
    with open(root / "captions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "caption", "tagged"])
        for s in specs:
            writer.writerow([s.relpath, *s.caption()])
    meta = {
        "generator": "sweettok.data.synthetic",
        "fingerprint": cfg.fingerprint(),
        "params": asdict(cfg),
        "classes": classes,
        "files": dict(sorted(checksums.items())),
        "specs": [asdict(s) for s in specs],
    }
    (root / "dataset.json").write_text(json.dumps(meta, indent=1))
    log.info("synthetic dataset: %d videos (%d train, %d test) in %d classes at %s",
             len(specs), len(train), len(test), len(classes), root)
    return root
