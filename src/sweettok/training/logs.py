"""Per-step training log (CSV in the run directory) and its loss-curve figure.

``train_log.csv`` has one row per logged optimiser step: ``step`` first, then the logged
values in sorted column order. Columns that appear later in a run (e.g. the GAN losses
once the discriminator starts) extend the header; earlier rows get empty cells. On
resume, rows after the resumed step are dropped, so the log matches the weights.

The ``time/*`` columns (step times, samples per second, torch threads) are written beside it
to ``train_time.csv``, same steps. They differ between two runs that compute the same
weights, so keeping them apart leaves ``train_log.csv`` byte-identical, and a DVC stage that
reads it (the report) does not rerun. :func:`time_log_path` finds them, also in the single
``train_log.csv`` of a run written before they moved out.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["CSVLogger", "plot_loss_curves", "read_log", "time_log_path"]

LOG_FILE = "train_log.csv"
TIME_LOG_FILE = "train_time.csv"
TIME_PREFIX = "time/"


def time_log_path(run_dir: str | Path) -> Path:
    """The CSV that holds a run's ``time/*`` columns: ``train_time.csv``, or ``train_log.csv``
    when the run predates that file (a missing path when the run logged nothing)."""
    run = Path(run_dir)
    timed = run / TIME_LOG_FILE
    return timed if timed.is_file() or not (run / LOG_FILE).is_file() else run / LOG_FILE


def read_log(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV log (``([], [])`` when the file does not exist)."""
    p = Path(path)
    if not p.is_file():
        return [], []
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


class CSVLogger:
    """Append-only CSV of scalar training values.

    Args:
        path: the CSV file (its folder is created).
        resume_step: when given, existing rows with ``step > resume_step`` are removed;
            when ``None`` an existing file is replaced (fresh run).
    """

    def __init__(self, path: str | Path, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header, rows = read_log(self.path) if resume_step is not None else ([], [])
        rows = [r for r in rows if r.get("step") and int(float(r["step"])) <= (resume_step or 0)]
        self.columns: list[str] = header or ["step"]
        self._rewrite(rows)

    def _rewrite(self, rows: Sequence[Mapping[str, object]]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: r.get(k, "") for k in self.columns})
        os.replace(tmp, self.path)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Append one row for ``step``."""
        new = sorted(k for k in values if k not in self.columns and k != "step")
        if new:
            _, rows = read_log(self.path)
            self.columns = self.columns + new
            self._rewrite(rows)
        row = {"step": str(step)}
        row.update({k: _fmt(v) for k, v in values.items() if k != "step"})
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, restval="").writerow(row)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def plot_loss_curves(csv_path: str | Path, png_path: str | Path, prefix: str = "loss") -> Path | None:
    """Plot every column whose name starts with ``prefix`` against ``step``.

    Returns:
        The PNG path, or ``None`` when there is nothing to plot.
    """
    header, rows = read_log(csv_path)
    keys = [k for k in header if k.startswith(prefix)]
    if not rows or not keys:
        return None
    # The object API with the Agg canvas draws headless and leaves pyplot's global
    # backend alone (notebooks importing this keep theirs).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for k in keys:
        pts = [(float(r["step"]), float(r[k])) for r in rows if r.get(k) not in (None, "")]
        pts = [(s, v) for s, v in pts if math.isfinite(v)]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, label=k, linewidth=1.2)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("value")
    positive = all(float(r[k]) > 0 for r in rows for k in keys if r.get(k) not in (None, ""))
    if positive:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(Path(csv_path).parent.name)
    fig.tight_layout()
    out = Path(png_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
