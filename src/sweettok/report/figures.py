"""Figures of the evaluation report, drawn headless and returned as PNG data URIs.

Every figure is built with matplotlib's object API on an Agg canvas (no pyplot state, so a
notebook importing this keeps its backend) and closed once encoded.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ERROR_CMAP = "inferno"
"""Colour map of the difference maps: black = no error, brighter = larger error."""


def new_figure(width: float, height: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_data_uri(fig: Figure, dpi: int | None = None) -> str:
    """``data:image/png;base64,...`` of ``fig``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def evenly_spaced(frames: int, count: int) -> list[int]:
    """``count`` frame indices of a ``frames``-frame clip, evenly spaced, first and last included."""
    count = max(1, min(count, frames))
    if count == 1:
        return [0]
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)})


def pixel_error(recon: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean absolute error over channels, in units of the pixel range (0 .. 1).

    ``(C, T, H, W)`` clips in [-0.5, 0.5] -> ``(T, H, W)``; the reconstruction is clamped to
    [-0.5, 0.5] first, as a decoded video would be.
    """
    return (recon.clamp(-0.5, 0.5) - truth).abs().mean(dim=0)


def shared_error_scale(errors: Sequence[torch.Tensor], quantile: float = 0.99, floor: float = 0.05) -> float:
    """One upper end for every difference map: the ``quantile`` of all their pixels, rounded up
    to 0.05 (at least ``floor``), so a few extreme pixels do not wash the maps out."""
    values = torch.cat([e.reshape(-1).float() for e in errors])
    if values.numel() > 2_000_000:  # torch.quantile's input limit; an even subsample estimates it
        values = values[:: math.ceil(values.numel() / 2_000_000)]
    q = float(torch.quantile(values, quantile))
    return max(floor, math.ceil(q * 20 - 1e-9) / 20)


def _frame_image(clip: torch.Tensor, t: int) -> np.ndarray:
    """Frame ``t`` of a ``(C, T, H, W)`` clip in [-0.5, 0.5] as an RGB (or grey) image in [0, 1]."""
    frame = (clip[:, t] + 0.5).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return frame[..., 0] if frame.shape[-1] == 1 else frame


def reconstruction_over_time(truth: torch.Tensor, recons: Mapping[str, torch.Tensor], frames: Sequence[int],
                             vmax: float, title: str = "") -> Figure:
    """Supplementary-Figure-1-style panel for one clip.

    Rows: the ground truth, then for each method its reconstruction and its difference map
    (:func:`pixel_error`, colour map :data:`ERROR_CMAP` from 0 to ``vmax`` for every map, with
    one colour bar); columns: ``frames``.

    Args:
        truth: ``(C, T, H, W)`` in [-0.5, 0.5].
        recons: method name -> ``(C, T, H, W)`` reconstruction of ``truth``.
        frames: frame indices to show.
        vmax: the top of the shared error scale (:func:`shared_error_scale`).
    """
    rows: list[tuple[str, str, torch.Tensor]] = [("ground truth", "frames", truth)]
    for name, recon in recons.items():
        rows.append((name, "frames", recon))
        rows.append((f"|{name} - truth|", "error", pixel_error(recon, truth)))
    n_rows, n_cols = len(rows), len(frames)
    # inches: square frame cells with a small gap, a label column on the left, the colour bar on the right
    cell, gap, label, bar, top = 1.0, 0.06, 1.6, 0.75, (0.35 if title else 0.25)
    width = label + n_cols * (cell + gap) + bar
    height = top + n_rows * (cell + gap) + 0.05
    fig = new_figure(width, height, dpi=110)
    grid = fig.add_gridspec(n_rows, n_cols + 1, width_ratios=[1] * n_cols + [0.12], wspace=gap / cell,
                            hspace=gap / cell, left=label / width, right=1 - 0.45 / width,
                            top=1 - top / height, bottom=0.05 / height)
    image = None
    for r, (name, kind, data) in enumerate(rows):
        for c, t in enumerate(frames):
            ax = fig.add_subplot(grid[r, c])
            ax.set_xticks([])
            ax.set_yticks([])
            if kind == "error":
                image = ax.imshow(data[t].cpu().numpy(), cmap=ERROR_CMAP, vmin=0.0, vmax=vmax)
            else:
                ax.imshow(_frame_image(data, t), cmap="gray", vmin=0, vmax=1)
            if r == 0:
                ax.set_title(f"frame {t}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    if image is not None:
        cax = fig.add_subplot(grid[1:, n_cols])
        bar = fig.colorbar(image, cax=cax)
        bar.ax.tick_params(labelsize=6)
        bar.set_label("mean |error| over RGB (pixel range 0..1)", fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    return fig


# ---------------------------------------------------------------------- training logs
_NOT_LOSSES = ("step", "epoch")
_NOT_LOSS_PREFIXES = ("time/", "lr/", "grad_norm/")
_USAGE_SUFFIXES = ("_used", "_perplexity")
_USAGE_NAMES = ("usage", "perplexity")


def _series(rows: Sequence[Mapping[str, str]], key: str) -> tuple[list[float], list[float]]:
    pts = []
    for r in rows:
        v = r.get(key)
        if v in (None, ""):
            continue
        try:
            x, y = float(r["step"]), float(v)
        except ValueError:
            continue
        if math.isfinite(y):
            pts.append((x, y))
    return [p[0] for p in pts], [p[1] for p in pts]


def is_usage_column(key: str) -> bool:
    """Codebook usage columns of the training logs: ``<book>_used`` / ``<book>_perplexity`` of
    SweetTok's four word books, ``usage`` / ``perplexity`` of the proxy's codebook."""
    return key.endswith(_USAGE_SUFFIXES) or key in _USAGE_NAMES


def loss_columns(header: Sequence[str]) -> tuple[list[str], list[str]]:
    """(total losses ``loss/*``, their logged terms) among a training log's columns."""
    totals = [k for k in header if k.startswith("loss/")]
    terms = [k for k in header if k not in totals and k not in _NOT_LOSSES and not k.startswith(_NOT_LOSS_PREFIXES)
             and not is_usage_column(k)]
    return totals, terms


def training_curves(header: Sequence[str], rows: Sequence[Mapping[str, str]], title: str) -> Figure | None:
    """One training phase's log: total losses, then the positive terms (log scale), then any
    term that can be zero or negative (linear scale, e.g. the code-diversity term)."""
    totals, terms = loss_columns(header)
    if not rows or not (totals or terms):
        return None
    positive = [k for k in terms if all(v > 0 for v in _series(rows, k)[1])]
    signed = [k for k in terms if k not in positive]
    panels = [(p, keys) for p, keys in (("total loss", totals), ("loss terms and scores", positive),
                                        ("terms that can be <= 0", signed)) if keys]
    fig = new_figure(4.2 * len(panels), 3.2, dpi=100)
    for i, (label, keys) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        all_positive = True
        for k in keys:
            xs, ys = _series(rows, k)
            if xs:
                ax.plot(xs, ys, label=k, linewidth=1.1)
                all_positive &= min(ys) > 0
        if all_positive:
            ax.set_yscale("log")
        ax.set_xlabel("optimiser step", fontsize=8)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def book_usage(logs: Mapping[str, tuple[Sequence[str], Sequence[Mapping[str, str]]]]) -> Figure | None:
    """Codebook usage over training, per log (``title -> (header, rows)``): the fraction of each
    book's entries that the batch used (left) and the perplexity of the batch's ids (right)."""
    found = [(title, header, rows, [k for k in header if is_usage_column(k)]) for title, (header, rows) in logs.items()]
    found = [f for f in found if f[3] and f[2]]
    if not found:
        return None
    fig = new_figure(9.0, 3.0 * len(found), dpi=100)
    for i, (title, _, rows, keys) in enumerate(found):
        used = [k for k in keys if k.endswith("_used") or k == "usage"]
        perplexity = [k for k in keys if k not in used]
        for j, (label, group) in enumerate((("fraction of the book's entries used per batch", used),
                                            ("perplexity of the batch's ids", perplexity))):
            ax = fig.add_subplot(len(found), 2, 2 * i + j + 1)
            for k in group:
                xs, ys = _series(rows, k)
                if xs:
                    book = k.rsplit("_", 1)[0] if "_" in k else "proxy codebook"
                    ax.plot(xs, ys, label=book, linewidth=1.1)
            if j == 1 and group:
                ax.set_yscale("log")
            ax.set_title(f"{title}: {label}", fontsize=8)
            ax.set_xlabel("optimiser step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if group:
                ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def fewshot_figure(table) -> Figure:
    """Few-shot accuracy per setting (``ways``-way ``shots``-shot) and view, with confidence
    intervals as error bars and chance as a dashed line (``table``: the ``fewshot`` table)."""
    settings = list(dict.fromkeys(zip(table["ways"], table["shots"])))
    views = list(dict.fromkeys(table["view"]))
    fig = new_figure(1.2 + 1.5 * max(len(settings), 1), 3.2)
    ax = fig.add_subplot()
    width = 0.8 / max(len(views), 1)
    colours = {"spatial": "#4c72b0", "temporal": "#dd8452", "both": "#55a868"}
    for k, view in enumerate(views):
        rows = table[table["view"] == view].set_index(["ways", "shots"])
        xs, acc, err = [], [], [[], []]
        for i, key in enumerate(settings):
            if key in rows.index:
                row = rows.loc[key]
                xs.append(i + (k - (len(views) - 1) / 2) * width)
                acc.append(row["accuracy"])
                err[0].append(row["accuracy"] - row["ci_low"])
                err[1].append(row["ci_high"] - row["accuracy"])
        ax.bar(xs, acc, width * 0.95, yerr=err, capsize=3, label=f"{view} words", color=colours.get(view))
    for i, (ways, _) in enumerate(settings):
        ax.hlines(1.0 / ways, i - 0.45, i + 0.45, colors="black", linestyles="dashed", linewidth=1,
                  label="chance" if i == 0 else None)
    ax.set_xticks(range(len(settings)), [f"{w}-way {s}-shot" for w, s in settings], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean accuracy (bars: confidence interval)")
    episodes = int(table["episodes"].iloc[0]) if len(table) else 0
    ax.set_title(f"few-shot recognition from token words ({episodes} episodes each)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
