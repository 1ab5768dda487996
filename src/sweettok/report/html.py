"""The report page: the paper's numbers, number formatting, and rendering the jinja2 template.

The template is package data (``sweettok/resources/report/report.html.j2``), rendered with
autoescaping on, so every string from data (method names, words, paths, parameters) is
escaped. Figures arrive as ``data:image/png;base64`` URIs; the page has no external
reference of any kind.
"""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

import jinja2

TEMPLATE = "report.html.j2"

PAPER_SETTING = ("UCF-101 test split, one centre 17-frame clip per video at 256 x 256 (I3D input resized to "
                 "224); SweetTok with 1280 tokens. PSNR / SSIM / LPIPS: supplementary Table 2; rFVD: the main "
                 "results table.")
"""Where the paper's numbers come from (SPEC.md section 6)."""

PAPER_ROWS: list[dict[str, Any]] = [
    {"method": "SweetTok (paper)", "tokens": 1280, "fvd": 20.0, "psnr": 29.27, "ssim": 0.7766, "lpips": 0.070},
    {"method": "LARP-L (paper)", "tokens": 1024, "fvd": 35.0, "psnr": 27.88, "ssim": None, "lpips": 0.085},
    {"method": "OmniTokenizer (paper)", "tokens": 5120, "fvd": 42.0, "psnr": None, "ssim": None, "lpips": None},
]
"""The paper's UCF-101 reconstruction numbers beside which ours are shown (LARP's PSNR / LPIPS
are reported for LARP, its rFVD for LARP-L)."""

SECTIONS = ("summary", "metrics", "reconstructions", "images", "generation", "semantics", "training", "words",
            "provenance")
"""The ``id`` of every section of the page, in order."""


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: ``-`` for missing values, fixed ``digits`` for floats, integers as they are."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        import pandas as pd

        if value is pd.NA:
            return "-"
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def template_text() -> str:
    return (resources.files("sweettok") / "resources" / "report" / TEMPLATE).read_text(encoding="utf-8")


def render_report(context: dict[str, Any]) -> str:
    """The HTML page from ``context`` (see the template for the keys it reads); undefined keys
    are errors, not empty strings."""
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    template = env.from_string(template_text())
    return template.render(sections=SECTIONS, paper_rows=PAPER_ROWS, paper_setting=PAPER_SETTING, **context)
