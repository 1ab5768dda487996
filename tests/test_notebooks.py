"""The notebooks run headless (nbclient) against the Kedro catalog of a throw-away project.

A clean clone has no trained tokenizer in data/, so the notebook runs in a copy of the project
(pyproject.toml, conf/, notebooks/) whose catalog entries hold a tiny tokenizer (random
weights) and a clip cache of the generated test dataset, both written by the catalog's own
datasets as a ``kedro run`` writes them. The notebook finds that project from its folder
(``%load_ext kedro.ipython``) and really loads, encodes and decodes.
"""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
import yaml
from nbclient import NotebookClient

from sweettok.api import Tokenizer
from sweettok.data.clips import ClipCacheConfig, PendingClipCache
from sweettok.data.scan import scan_dataset
from sweettok.io.clip_cache_dataset import ClipCacheDataset
from sweettok.io.model_dataset import ModelDataset
from sweettok.metrics.image_quality import clip_psnr
from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig
from sweettok.models.sweettok import SweetTok
from sweettok.models.tokenizer import VideoTokenizer

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/tokenize_a_clip.ipynb"
TINY_MODEL = dict(input_frames=17, resolution=32, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
                  enc_spatial_depth=1, enc_temporal_depth=1, dec_spatial_depth=1, dec_temporal_depth=1,
                  dec_temporal_after=[1], spatial_queries=4, temporal_query_grid=2, temporal_queries_per_cell=2,
                  codebook_dim=8, gcn_hidden=16, proxy_vocab_size=40, head_hidden=32)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_dataset) -> Path:
    root = tmp_path_factory.mktemp("notebook_project")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # the package itself is installed (editable) in the environment
    (root / "notebooks").mkdir()
    shutil.copy(REPO / NOTEBOOK, root / NOTEBOOK)

    entries = yaml.safe_load((REPO / "conf" / "base" / "catalog.yml").read_text())
    torch.manual_seed(0)
    model = VideoTokenizer(
        SweetTok(SweetTokConfig.from_dict(TINY_MODEL), CodebookPrior.random(seed=1)),
        ProxyTokenizer(ProxyTokenizerConfig(hidden_dim=16, num_blocks=1, codebook_size=40, norm_groups=4,
                                            sample_buffer_size=64)),
    ).eval()
    ModelDataset(filepath=str(root / entries["tokenizer"]["filepath"]), kind=entries["tokenizer"]["kind"]).save(model)
    manifest = scan_dataset(tiny_dataset, min_frames=17, progress=False).manifest
    ClipCacheDataset(filepath=str(root / entries["clip_cache"]["filepath"])).save(
        PendingClipCache(manifest, ClipCacheConfig(frames=17, resolution=32, train_clips_per_video=1)))
    return root


def _text(outputs: list) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stdout")


def test_tokenize_a_clip_runs_headless(project):
    committed = nbformat.read(REPO / NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in committed.cells if c.cell_type == "code"), \
        "commit the notebook without outputs"

    nb = nbformat.read(project / NOTEBOOK, as_version=4)
    # raises CellExecutionError (with the traceback) when a cell fails
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    stdout = ANSI.sub("", _text(outputs))

    # it read the throw-away project's catalog: 8 test clips of the tiny dataset, the tiny model
    assert "tokenizer: 17-frame windows at 32x32" in stdout
    assert "clip cache: 8 test clips of 17 frames at 32x32" in stdout

    # the PSNR it printed is that of the first test clip through the tokenizer, recomputed here
    m = re.search(r"PSNR: (\S+) dB \(whole clip\), (\S+) dB \(mean over frames\)", stdout)
    assert m, stdout
    printed = float(m.group(1))
    assert math.isfinite(printed) and math.isfinite(float(m.group(2)))
    tok = Tokenizer.from_pretrained(project / "data/06_models/tokenizer", device="cpu")
    clips = ClipCacheDataset(filepath=str(project / "data/03_primary/clip_cache")).load().dataset("test")
    frames = clips.read_uint8(0)
    decoded = tok.decode(tok.encode(frames))
    as_clip = lambda u8: torch.tensor(u8).permute(3, 0, 1, 2)[None].float() / 255.0 - 0.5  # noqa: E731
    assert printed == pytest.approx(clip_psnr(as_clip(decoded), as_clip(frames)).item(), abs=0.006)

    # one figure, and the words of every token: 4 spatial + 4 temporal tokens of topk + 1 = 3 words
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    ids = tok.ids_per_window(17)
    assert f"window 0: {ids} words, {ids // 3} tokens" in stdout
    spatial = re.search(r"spatial \(adjectives, noun\): (.+)", stdout).group(1).split("; ")
    temporal = re.search(r"temporal \(adverbs, verb\): +(.+)", stdout).group(1).split("; ")
    assert len(spatial) == 4 and len(spatial) + len(temporal) == ids // 3
    assert all(len(p.split()) == 3 for p in spatial + temporal)
    words = tok.words(tok.encode(frames))[0]
    assert spatial[0].split() == [w for w, _ in words[:3]]
