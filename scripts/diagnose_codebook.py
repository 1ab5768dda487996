"""Diagnose collapse of the MLC language codebook during a short phase-1 run.

Trains SweetTok on the cached training clips against their proxy codes (cross-entropy on the
decoder logits + MLC loss, the step of ``sweettok.training.tokenizer_training.train_phase1``)
and every ``--every`` steps prints, on a fixed batch of test clips in eval mode:

- the cross-entropy and accuracy on those clips;
- per book (adj, noun, adv, verb) the perplexity of the chosen entries and the fraction used;
- the geometry of each book: mean pairwise cosine of the normalised entries (1 = all entries
  the same direction) and the share of the raw projector output that is common to all
  entries (``|mean entry|^2 / mean |entry|^2``, 1 = every entry is the mean);
- the diversity of the encoder's latents (mean pairwise cosine of the latent halves).

Usage (one thread; the machine is shared)::

    KEDRO_DISABLE_TELEMETRY=1 HF_HUB_OFFLINE=1 .venv/bin/python scripts/diagnose_codebook.py \
        --steps 200 --every 25 [--set codebook_center=false] [--warmup 50]

``--set key=value`` overrides fields of the model config (values parsed as YAML).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from sweettok.data.clips import ClipCache
from sweettok.data.codes import ClipsWithCodes, load_code_table
from sweettok.language.storage import load_language_codebook
from sweettok.models.config import SweetTokConfig
from sweettok.models.sweettok import SweetTok
from sweettok.training.schedule import OptimizerConfig, build_adamw

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--eval-clips", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=0, help="linear warm-up steps (the base profile uses 50)")
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--mlc-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model-params", default=str(ROOT / "conf/base/parameters_model.yml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model config field")
    return p.parse_args()


def stack(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([it["clip"] for it in items]), torch.stack([it["codes"] for it in items])


def mean_offdiag_cos(x: torch.Tensor) -> float:
    x = F.normalize(x.reshape(-1, x.shape[-1]), dim=-1)
    n = x.shape[0]
    if n < 2:
        return float("nan")
    c = x @ x.T
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


@torch.no_grad()
def book_geometry(model: SweetTok) -> dict[str, float]:
    q = model.quantizer
    out = {}
    for name, book in q.codebooks().items():
        out[f"{name}_cos"] = mean_offdiag_cos(book)
    for which in ("spatial", "temporal"):
        raw = getattr(q, which)()
        out[f"{which}_common"] = float(raw.mean(0).pow(2).sum() / raw.pow(2).sum(1).mean())
    return out


@torch.no_grad()
def evaluate(model: SweetTok, clips: torch.Tensor, codes: torch.Tensor) -> dict[str, float]:
    model.eval()
    logits = model(clips).logits
    latents, ids, aux = model.encode(clips)
    stats = {"ce": float(F.cross_entropy(logits, codes)),
             "acc": float((logits.argmax(1) == codes).float().mean()),
             **model.codebook_usage(ids), **book_geometry(model)}
    z = aux["z"]
    e = model.cfg.codebook_dim
    ls = model.cfg.spatial_queries
    stats["zs_cos"] = mean_offdiag_cos(z[:, :ls, :e])
    stats["zt_cos"] = mean_offdiag_cos(z[:, ls:, :e])
    model.train()
    return stats


def report(step: int, s: dict[str, float], train_ce: float, elapsed: float) -> None:
    books = "  ".join(
        f"{b} ppl {s[f'{b}_perplexity']:6.1f} used {100 * s[f'{b}_used']:5.1f}% cos {s[f'{b}_cos']:+.2f}"
        for b in ("adj", "noun", "adv", "verb")
    )
    print(f"step {step:4d}  train ce {train_ce:.3f}  test ce {s['ce']:.3f} acc {s['acc']:.3f}  |  {books}  |  "
          f"common s {s['spatial_common']:.2f} t {s['temporal_common']:.2f}  z cos s {s['zs_cos']:+.2f} "
          f"t {s['zt_cos']:+.2f}  ({elapsed:.0f}s)", flush=True)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model_params = yaml.safe_load(Path(args.model_params).read_text())["model"]
    for kv in args.set:
        key, value = kv.split("=", 1)
        model_params[key] = yaml.safe_load(value)
    cfg = SweetTokConfig.from_dict(model_params)

    cache = ClipCache(ROOT / "data/03_primary/clip_cache")
    table = load_code_table(ROOT / "data/05_model_input/proxy_codes")
    train_set = ClipsWithCodes(cache.dataset("train"), table)
    test_set = ClipsWithCodes(cache.dataset("test"), table)
    g = torch.Generator().manual_seed(args.seed)
    eval_idx = torch.randperm(len(test_set), generator=g)[: args.eval_clips].tolist()
    eval_clips, eval_codes = stack([test_set[i] for i in eval_idx])
    print(f"train clips {len(train_set)}, test clips {len(test_set)} (evaluating on {len(eval_idx)}); "
          f"config overrides {args.set or 'none'}")

    prior = load_language_codebook(ROOT / "data/04_feature/language_codebook")
    model = SweetTok(cfg, prior)
    model.train()
    opt = build_adamw(model, OptimizerConfig(lr=args.lr, betas=(0.9, 0.999), weight_decay=args.weight_decay))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup) if args.warmup else 1.0)

    start = time.time()
    report(0, evaluate(model, eval_clips, eval_codes), float("nan"), 0.0)
    order = torch.randperm(len(train_set), generator=g).tolist()
    pos, recent = 0, []
    for step in range(1, args.steps + 1):
        if pos + args.batch_size > len(order):
            order, pos = torch.randperm(len(train_set), generator=g).tolist(), 0
        clips, codes = stack([train_set[i] for i in order[pos: pos + args.batch_size]])
        pos += args.batch_size
        out = model(clips)
        logits, mlc_loss = out.logits, out.mlc_loss
        ce = F.cross_entropy(logits, codes)
        loss = ce + args.mlc_weight * mlc_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        sched.step()
        recent.append(ce.item())
        if step % args.every == 0 or step == args.steps:
            report(step, evaluate(model, eval_clips, eval_codes), sum(recent) / len(recent), time.time() - start)
            recent = []
    if not math.isfinite(ce.item()):
        raise SystemExit("training diverged")


if __name__ == "__main__":
    main()
