"""The evaluation report: figures, token words, provenance and the self-contained HTML page.

- :mod:`.figures`: ground truth and reconstructions of test clips over time with per-pixel
  difference maps, training loss curves, language-book usage; PNG data URIs.
- :mod:`.words`: the words of a clip's tokens.
- :mod:`.provenance`: git commit, package versions, data and checkpoint checksums.
- :mod:`.html`: the paper's numbers and the page, rendered from
  ``sweettok/resources/report/report.html.j2`` with jinja2 (autoescape on).

The page embeds every figure as a ``data:image/png;base64`` URI and its CSS inline, and
links nothing outside itself: it opens offline in any browser.
"""
