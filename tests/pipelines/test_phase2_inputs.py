"""Phase 2's node trains copies of its inputs.

It wraps phase 1's SweetTok and the proxy tokenizer in a VideoTokenizer and trains the
decoder side, proxy pixel decoder included. Wrapping the objects themselves trained them in
place: ``sweettok curve`` (which holds the trained proxy in memory) then scored as "proxy
tokenizer" the pixel decoder phase 2 had tuned for SweetTok's soft codes (19.40 dB on the
base profile's test clips against 20.52 for the proxy as trained).
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from tiny_models import FRAMES, RES, tiny_video_tokenizer

from sweettok.data.clips import ClipCacheConfig, PendingClipCache
from sweettok.data.scan import scan_dataset
from sweettok.io.clip_cache_dataset import ClipCacheDataset
from sweettok.pipelines.tokenizer_phase2.nodes import train_tokenizer_phase2

REPO = Path(__file__).resolve().parents[2]


def test_phase2_node_leaves_phase1_and_proxy_as_they_came(tmp_path, tiny_dataset):
    manifest = scan_dataset(tiny_dataset, min_frames=FRAMES, progress=False).manifest
    dataset = ClipCacheDataset(filepath=str(tmp_path / "cache"))
    dataset.save(PendingClipCache(manifest, ClipCacheConfig(frames=FRAMES, resolution=RES, train_clips_per_video=1)))
    cache = dataset.load()

    torch.manual_seed(0)
    model = tiny_video_tokenizer()
    phase1, proxy = model.sweettok, model.proxy
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in (("phase1", phase1),
                                                                                        ("proxy", proxy))}

    params = yaml.safe_load((REPO / "conf/base/parameters_tokenizer.yml").read_text())["tokenizer_phase2"]
    params["loop"].update(total_steps=3, batch_size=2, checkpoint_every=3, log_every=1, progress=False)
    params["schedule"]["warmup_steps"] = 1
    params["optimizer"]["lr"] = 1e-2
    params["lpips_weight"] = 0.0
    params["run_dir"] = str(tmp_path / "run")
    tokenizer = train_tokenizer_phase2(cache, phase1, proxy, params)

    # the inputs are bit-for-bit what they were ...
    for name, module in (("phase1", phase1), ("proxy", proxy)):
        after = module.state_dict()
        changed = [k for k, v in before[name].items() if not torch.equal(v, after[k])]
        assert not changed, f"{name} was trained in place: {changed[:5]}"
    # ... while the returned tokenizer's trainable parts did train: the proxy's pixel decoder
    # and SweetTok's decoder moved, its encoder did not
    trained = tokenizer.state_dict()
    moved = {k for k, v in before["proxy"].items() if not torch.equal(v, trained[f"proxy.{k}"])}
    assert any(k.startswith("decoder.") for k in moved)
    assert not any(k.startswith("encoder.") for k in moved)
    moved_sweettok = {k for k, v in before["phase1"].items() if not torch.equal(v, trained[f"sweettok.{k}"])}
    assert any(k.startswith("decoder.") for k in moved_sweettok)
    assert not any(k.startswith("encoder.") for k in moved_sweettok)
