"""The evaluation table: reconstruction scores and rFVD / per-frame FID of every method, one row each.

PSNR, SSIM and LPIPS come from the ``reconstruction_metrics`` table (long format, one row
per method and frame range, :func:`sweettok.metrics.reconstruction.score_reconstructions`),
so they are computed once; rFVD and FID come from
:func:`sweettok.metrics.distributional.score_feature_distances`. :func:`evaluation_table`
joins the two (:data:`EVALUATION_COLUMNS`) and :func:`metrics_summary` gives the same
numbers as a JSON-able dict for ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from sweettok.typed_params import FieldChecks, ParamError, from_mapping

EVALUATION_COLUMNS = [
    "method", "tokens", "bits", "quality_clips",
    "psnr", "ssim", "lpips", "psnr_no_frame0", "ssim_no_frame0", "lpips_no_frame0",
    "fvd", "fvd_clips", "fid", "fid_clips", "fid_images",
]
"""Columns of :func:`evaluation_table`: ``psnr``/``ssim``/``lpips`` on all frames (the paper's
Table 2), ``*_no_frame0`` on frames ``1..T-1``; ``quality_clips`` the clips those were scored on."""

ALL = "all"


@dataclass(frozen=True)
class EvaluationConfig(FieldChecks):
    """Parameters of the ``evaluation`` pipeline (``conf/*/parameters_evaluation.yml``, key ``evaluation``).

    Attributes:
        profile: name of the parameter set the numbers come from (each Kedro environment that
            changes the models or data sets its own: ``base``, ``paper``, ``gpu``); printed in the report.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:<i>``: where the
            tokenizers and the I3D / Inception networks run.
        batch_size: clips per batch for reconstruction and features.
        fvd_clips: rFVD on the first this many test clips (null: all).
        fvd_methods: methods that get rFVD (names of the reconstruction table, or ``all``).
        fid_clips: per-frame FID on the first this many test clips (null: all).
        fid_frames: frame indices that enter FID (null: every frame).
        fid_methods: methods that get FID (names, or ``all``).
        figure_clips: test clips shown over time in the report (ground truth, proxy, SweetTok, differences).
        figure_frames: frames per clip in those figures (evenly spaced, first and last included).
        word_clips: test clips whose token words the report lists.
        figure_images: held-out images of the image set shown in the report's image figure
            (originals, before / after image fine-tuning, difference maps).
        generation_per_class: LM samples per class in the report's generation figure.
    """

    profile: str = "base"
    device: str = "auto"
    batch_size: int = 8
    fvd_clips: int | None = None
    fvd_methods: Any = ALL
    fid_clips: int | None = None
    fid_frames: list[int] | None = None
    fid_methods: Any = ALL
    figure_clips: int = 3
    figure_frames: int = 5
    word_clips: int = 3
    figure_images: int = 4
    generation_per_class: int = 2

    def __post_init__(self) -> None:
        if not isinstance(self.profile, str) or not self.profile:
            self._fail("profile", f"must be a non-empty name, got {self.profile!r}")
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu", "cuda")
                                                    or self.device.startswith("cuda:")):
            self._fail("device", f"must be auto, cpu, cuda or cuda:<index>, got {self.device!r}")
        self._check_int("batch_size", 1)
        for name in ("fvd_clips", "fid_clips"):
            if getattr(self, name) is not None:
                self._check_int(name, 2)  # a covariance needs two samples
        for name in ("fvd_methods", "fid_methods"):
            value = getattr(self, name)
            if value != ALL and (not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value)):
                self._fail(name, f"must be 'all' or a list of method names, got {value!r}")
        if self.fid_frames is not None and (not isinstance(self.fid_frames, (list, tuple)) or not self.fid_frames
                                            or not all(isinstance(f, int) and not isinstance(f, bool)
                                                       for f in self.fid_frames)):
            self._fail("fid_frames", f"must be null (all frames) or a non-empty list of frame indices, "
                                     f"got {self.fid_frames!r}")
        self._check_int("figure_clips", 1)
        self._check_int("figure_frames", 2)
        self._check_int("word_clips", 0)
        self._check_int("figure_images", 1)
        self._check_int("generation_per_class", 1)

    @classmethod
    def from_dict(cls, params: Mapping[str, Any], where: str = "evaluation") -> "EvaluationConfig":
        return from_mapping(cls, params, where)

    def methods_for(self, which: str, available: Sequence[str]) -> list[str]:
        """The names of ``fvd_methods`` / ``fid_methods`` (``which``: ``fvd`` or ``fid``) among
        ``available``, in ``available``'s order; an unknown name is an error naming the parameter."""
        wanted = getattr(self, f"{which}_methods")
        if wanted == ALL:
            return list(available)
        unknown = [m for m in wanted if m not in available]
        if unknown:
            raise ParamError(f"{which}_methods", f"{unknown} are not methods of the reconstruction table "
                                                 f"({list(available)})", owner="evaluation")
        return [m for m in available if m in wanted]


def evaluation_table(reconstruction_metrics: pd.DataFrame, distances: pd.DataFrame,
                     quality_clips: int) -> pd.DataFrame:
    """One row per method of ``reconstruction_metrics`` (in its order) with its rFVD / FID.

    Args:
        reconstruction_metrics: the long table of ``score_reconstructions`` (frame ranges
            ``1-<T-1>`` and ``all``; one-frame clips have only ``all``).
        distances: :func:`~sweettok.metrics.distributional.score_feature_distances`' table;
            methods it lacks get missing rFVD / FID.
        quality_clips: the number of test clips PSNR / SSIM / LPIPS were scored on.
    """
    rec = reconstruction_metrics
    methods = list(dict.fromkeys(rec["method"]))
    extra = set(distances["method"]) - set(methods)
    if extra:
        raise ValueError(f"rFVD / FID rows for methods the reconstruction table does not have: {sorted(extra)}")
    by = rec.set_index(["method", "frames"])
    ranges = list(dict.fromkeys(rec["frames"]))
    later = next((r for r in ranges if r != "all"), None)
    dist = distances.set_index("method")
    rows = []
    for m in methods:
        whole = by.loc[(m, "all")]
        row = {"method": m, "tokens": whole["tokens"], "bits": whole["bits"], "quality_clips": quality_clips,
               "psnr": whole["psnr"], "ssim": whole["ssim"], "lpips": whole["lpips"]}
        part = by.loc[(m, later)] if later is not None else None
        for k in ("psnr", "ssim", "lpips"):
            row[f"{k}_no_frame0"] = part[k] if part is not None else math.nan
        d = dist.loc[m] if m in dist.index else None
        for k in ("fvd", "fvd_clips", "fid", "fid_clips", "fid_images"):
            row[k] = d[k] if d is not None else None
        rows.append(row)
    table = pd.DataFrame(rows, columns=EVALUATION_COLUMNS)
    for col in ("tokens", "fvd_clips", "fid_clips", "fid_images"):
        table[col] = pd.array(table[col].where(table[col].notna(), None), dtype="Int64")
    for col in ("bits", "psnr", "ssim", "lpips", "psnr_no_frame0", "ssim_no_frame0", "lpips_no_frame0", "fvd", "fid"):
        table[col] = pd.to_numeric(table[col], errors="raise").astype(float)
    table["quality_clips"] = table["quality_clips"].astype(int)
    return table


def _plain(value: Any) -> Any:
    """A table cell as JSON: NaN / <NA> -> None, numpy scalars -> Python numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return value


def metrics_summary(table: pd.DataFrame, context: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics.json``: ``context`` (profile, dataset, frames, networks, ...) and every method's row.

    ``methods`` maps each method to its row of :func:`evaluation_table` (missing values as null).
    """
    rows = {str(r["method"]): {k: _plain(v) for k, v in r.items() if k != "method"}
            for r in table.to_dict(orient="records")}
    return {**{k: v for k, v in context.items()}, "methods": rows}
