"""Overfit check: train SweetTok on one clip towards a fixed grid of random proxy ids.

A model that cannot memorise one clip's ``(1+k) x g x g`` targets has a broken gradient path
or head; one that can shows the whole phase-1 step (encode, quantize with straight-through,
decode, cross-entropy + MLC loss) trains. ``sweettok overfit`` writes the per-step losses to
CSV and a PNG curve; the test suite runs a tiny version and asserts the cross-entropy falls at
least tenfold.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.sweettok import SweetTok

__all__ = ["OverfitResult", "overfit_one_clip", "write_curve"]


@dataclass
class OverfitResult:
    """Per-step losses of an overfit run (``ce`` cross-entropy in nats, ``mlc`` MLC loss) and
    per-step codebook perplexities (``perplexity[book]``, book in adj/noun/adv/verb)."""

    ce: list[float] = field(default_factory=list)
    mlc: list[float] = field(default_factory=list)
    perplexity: dict[str, list[float]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)


def overfit_one_clip(
    cfg: SweetTokConfig,
    prior: CodebookPrior,
    steps: int = 300,
    lr: float = 1e-3,
    seed: int = 0,
    batch: int = 1,
    progress: bool = False,
) -> OverfitResult:
    """Train a fresh model for ``steps`` AdamW steps on one random clip of ``input_frames`` frames.

    Targets are a fixed ``(batch, 1+k, g, g)`` grid of uniform random ids in
    ``[0, proxy_vocab_size)``; the loss is ``cross_entropy + mlc_loss``, gradients clipped to 1.
    """
    torch.manual_seed(seed)
    model = SweetTok(cfg, prior).train()
    frames = cfg.input_frames
    slices = cfg.check_frames(frames)
    g = cfg.grid_size
    x = torch.rand(batch, cfg.in_channels, frames, cfg.resolution, cfg.resolution) - 0.5
    targets = torch.randint(0, cfg.proxy_vocab_size, (batch, slices, g, g))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=1e-4)
    result = OverfitResult(config=cfg.to_dict())
    iterator = range(steps)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="overfit", unit="step")
    for _ in iterator:
        out = model(x)
        logits, mlc_loss, stats = out.logits, out.mlc_loss, out.stats
        ce = F.cross_entropy(logits, targets)
        opt.zero_grad(set_to_none=True)
        (ce + mlc_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        result.ce.append(float(ce.detach()))
        result.mlc.append(float(mlc_loss.detach()))
        for key, value in stats.items():
            if key.endswith("_perplexity"):
                result.perplexity.setdefault(key.removesuffix("_perplexity"), []).append(value)
        if progress:
            iterator.set_postfix(ce=f"{result.ce[-1]:.4f}")
    return result


def write_curve(result: OverfitResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``overfit_loss.csv`` (step, cross_entropy, mlc_loss, <book>_perplexity...) and
    ``overfit_loss.png`` (the two losses, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / "overfit_loss.csv", out_dir / "overfit_loss.png"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        books = list(result.perplexity)
        writer.writerow(["step", "cross_entropy", "mlc_loss", *(f"{b}_perplexity" for b in books)])
        for i, (ce, mlc) in enumerate(zip(result.ce, result.mlc)):
            writer.writerow([i, f"{ce:.6f}", f"{mlc:.6f}", *(f"{result.perplexity[b][i]:.3f}" for b in books)])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.semilogy(result.ce, label="cross-entropy (proxy ids)")
    ax.semilogy(result.mlc, label="MLC loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("SweetTok overfitting one clip")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return csv_path, png_path
