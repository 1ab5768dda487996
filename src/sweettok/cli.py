"""The ``sweettok`` command line.

Subcommands register themselves with :func:`command`; adding one is one function plus one
decorator::

    @command("bench model", help="...", args=[arg("--out", default="x.json")])
    def bench_model(args: argparse.Namespace) -> int:
        ...

A name with a space (``"bench model"``) becomes a nested subcommand (``sweettok bench model``).

Profiles: ``--config base|paper`` names a Kedro configuration environment under ``conf/``.
Parameters are read by the project's own config loader (``sweettok.settings``: Kedro's
``OmegaConfigLoader``, ``conf/<env>`` soft-merged over ``conf/base``), so a command sees exactly
the parameters that ``kedro run --env <env>`` gives its nodes. ``conf/`` is found by walking up
from the current directory, else in the project that contains this package, or given with
``--conf-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click

__all__ = ["main", "command", "arg", "find_conf_root", "load_params", "load_parameters", "load_model_config"]

for _var, _value in (("KEDRO_DISABLE_TELEMETRY", "1"), ("DVC_NO_ANALYTICS", "1"), ("HF_HUB_OFFLINE", "1")):
    os.environ.setdefault(_var, _value)


# ---------------------------------------------------------------------- registry
@dataclass
class _Arg:
    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> _Arg:
    """An argument of a subcommand, as for ``ArgumentParser.add_argument``."""
    return _Arg(flags, kwargs)


@dataclass
class _Command:
    name: str
    help: str
    args: list[_Arg] = field(default_factory=list)
    run: Callable[[argparse.Namespace], int] | None = None


_COMMANDS: dict[str, _Command] = {}


def command(name: str, help: str, args: list[_Arg] | None = None) -> Callable:
    """Register ``fn(args) -> exit code`` as ``sweettok <name>``."""

    def register(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in _COMMANDS:
            raise ValueError(f"sweettok command {name!r} registered twice")
        _COMMANDS[name] = _Command(name, help, list(args or []), fn)
        return fn

    return register


def _conf_args() -> list[_Arg]:
    return [
        arg("--config", default="base", help="configuration environment under conf/ (base, paper, ...)"),
        arg("--conf-dir", default=None, help="the conf/ directory (default: found from the current directory)"),
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweettok", description="SweetTok video tokenizer tools")
    root = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[tuple[str, ...], Any] = {(): root}
    for cmd in sorted(_COMMANDS.values(), key=lambda c: c.name):
        words = tuple(cmd.name.split())
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{' '.join(prefix)} commands")
                groups[prefix] = sub.add_subparsers(dest="_".join(prefix), required=True, metavar="COMMAND")
        p = groups[words[:-1]].add_parser(words[-1], help=cmd.help, description=cmd.help)
        for a in cmd.args:
            p.add_argument(*a.flags, **a.kwargs)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sweettok`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"] and (len(argv) == 1 or (argv[1].startswith("-") and argv[1] not in ("-h", "--help"))):
        argv.insert(1, "tokenizer")  # bare `sweettok bench` measures the trained tokenizer
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"sweettok: error: {exc}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------- configuration
def find_conf_root(conf_dir: str | os.PathLike | None = None) -> Path:
    """The project's ``conf/`` directory.

    Raises:
        FileNotFoundError: if none is found.
    """
    if conf_dir is not None:
        path = Path(conf_dir)
        if not (path / "base").is_dir():
            raise FileNotFoundError(f"{path} has no base/ environment: not a conf/ directory")
        return path
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "conf" / "base").is_dir():
            return d / "conf"
    project = Path(__file__).resolve().parents[2]  # src/sweettok/cli.py -> project root
    if (project / "conf" / "base").is_dir():
        return project / "conf"
    raise FileNotFoundError(f"no conf/base found above {here} or in {project}; pass --conf-dir")


def load_params(env: str = "base", conf_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Every parameter of configuration environment ``env``, as ``kedro run --env <env>`` sees them.

    The loader is the project's (``sweettok.settings.CONFIG_LOADER_CLASS`` with
    ``CONFIG_LOADER_ARGS``: base environment ``base``, ``parameters`` soft-merged), with ``env``
    as the run environment; ``env="base"`` gives ``conf/base`` alone.

    Raises:
        FileNotFoundError: if ``conf/`` or the environment is missing.
    """
    return config_loader(env, conf_dir)["parameters"]


def _drop_logging_notice(record: logging.LogRecord) -> bool:
    return "as logging configuration" not in record.getMessage()


def _quiet_kedro_logging_notice() -> None:
    """Importing Kedro's project module (``sweettok.settings`` does) logs an INFO line naming its
    logging configuration file; outside ``kedro run`` (the ``sweettok`` commands, the Python API
    reading the catalog) that line is noise. A filter, not a level: Kedro's ``dictConfig`` resets
    the levels of existing child loggers but keeps their filters."""
    project_logger = logging.getLogger("kedro.framework.project")
    if _drop_logging_notice not in project_logger.filters:
        project_logger.addFilter(_drop_logging_notice)


def config_loader(env: str | None = None, conf_dir: str | os.PathLike | None = None):
    """The project's configuration loader (``sweettok.settings``) over ``conf/``, run environment
    ``env`` (``None``: Kedro's default, ``local``), as ``kedro run`` builds it. With ``env=None``
    and no ``conf/local`` (git keeps no empty folder, and a copy of ``conf/`` may lack it) the
    loader reads ``conf/base`` alone instead of failing.

    Raises:
        FileNotFoundError: if ``conf/`` or the environment is missing.
    """
    _quiet_kedro_logging_notice()
    from sweettok import settings

    root = find_conf_root(conf_dir)
    if env is not None and not (root / env).is_dir():
        raise FileNotFoundError(f"configuration environment {env!r} not found in {root}")
    default_env = settings.CONFIG_LOADER_ARGS.get("default_run_env", "local")
    if env is None and not (root / default_env).is_dir():
        env = settings.CONFIG_LOADER_ARGS.get("base_env", "base")
    return settings.CONFIG_LOADER_CLASS(str(root), env=env, **settings.CONFIG_LOADER_ARGS)


def load_parameters(filename: str, env: str = "base", conf_dir: str | os.PathLike | None = None) -> dict:
    """The merged parameters (see :func:`load_params`) of the top-level keys that ``filename`` defines.

    ``filename`` is a parameters file name such as ``parameters_model.yml``, looked up in
    ``conf/base`` and ``conf/<env>``.
    """
    import yaml

    root = find_conf_root(conf_dir)
    params = load_params(env, conf_dir)
    keys: dict[str, None] = {}
    for layer in dict.fromkeys(("base", env)):
        path = root / layer / filename
        if path.is_file():
            with path.open() as fh:
                keys.update(dict.fromkeys(yaml.safe_load(fh) or {}))
    if not keys:
        raise FileNotFoundError(f"{filename} not found in {root / 'base'} or {root / env}")
    return {key: params[key] for key in keys}


def load_model_config(env: str = "base", conf_dir: str | os.PathLike | None = None):
    """The :class:`~sweettok.models.config.SweetTokConfig` of an environment's ``model`` parameters."""
    from sweettok.models.config import SweetTokConfig

    params = load_params(env, conf_dir)
    if "model" not in params:
        raise ValueError(f"the parameters of {env!r} have no 'model' block")
    return SweetTokConfig.from_dict(params["model"])


# ---------------------------------------------------------------------- commands
@command(
    "info",
    help="a tokenizer checkpoint (`sweettok info CHECKPOINT`), or parameter counts per part, latent tokens and "
         "ids per clip of a model profile (`sweettok info --config paper`)",
    args=[arg("checkpoint_dir", nargs="?", default=None, help="a tokenizer checkpoint directory"),
          *_conf_args(), arg("--frames", type=int, default=None, help="clip length T (default: input_frames)"),
          arg("--json", action="store_true", help="print JSON instead of a table")],
)
def info(args: argparse.Namespace) -> int:
    if args.checkpoint_dir is not None:
        from sweettok.cli_tokenize import checkpoint_info

        return checkpoint_info(args)
    import torch

    from sweettok.models.profiles import DEFAULT_PRIOR_SIZES, default_prior
    from sweettok.models.sweettok import SweetTok, parameter_breakdown

    cfg = load_model_config(args.config, args.conf_dir)
    frames = cfg.input_frames if args.frames is None else args.frames
    prior = default_prior(args.config)
    with torch.device("meta"):
        # Parameters as shapes only: no memory or time spent on weights (the paper model has ~190M).
        model = SweetTok(cfg, prior)
    counts = parameter_breakdown(model)
    slices = cfg.check_frames(frames)
    report = {
        "profile": args.config,
        "frames": frames,
        "input": [cfg.in_channels, frames, cfg.resolution, cfg.resolution],
        "latent_slices": slices,
        "spatial_tokens": cfg.spatial_queries,
        "temporal_tokens": cfg.temporal_queries if frames > 1 else 0,
        "latent_tokens": cfg.num_latent_tokens(frames),
        "ids_per_token": cfg.ids_per_token,
        "ids_per_clip": cfg.ids_per_clip(frames),
        "logits": [cfg.proxy_vocab_size, slices, cfg.grid_size, cfg.grid_size],
        "vocabulary_assumed": DEFAULT_PRIOR_SIZES.get(args.config, DEFAULT_PRIOR_SIZES["base"]),
        "parameters": dict(counts),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"SweetTok profile {args.config!r}: clip {report['input']} (C, T, H, W)")
    print(f"  latent tokens per clip: {report['latent_tokens']} "
          f"({report['spatial_tokens']} spatial + {report['temporal_tokens']} temporal)")
    print(f"  ids per clip:           {report['ids_per_clip']} ({cfg.ids_per_token} per token: "
          f"{cfg.topk} modifier{'s' if cfg.topk > 1 else ''}, then the head word)")
    print(f"  logits per clip:        {report['logits']} (V, 1+k, H/p, W/p)")
    print("  parameters:")
    for name, n in counts.items():
        print(f"    {name:32s}{n:>14,}")
    print(f"  (frozen buffers assume a random vocabulary of {report['vocabulary_assumed']})")
    return 0


@command(
    "bench model",
    help="forward+backward time, peak memory, FLOPs and TFLOP/s of the model profiles (CPU by default; "
         "--device cuda --precision bf16 on a GPU adds peak GPU memory and MFU)",
    args=[
        arg("--out", default="data/08_reporting/bench_model.json", help="JSON output path"),
        arg("--profiles", "--config", nargs="+", dest="profiles", default=["base", "paper"],
            help="configuration environments to measure (--config is the same option)"),
        arg("--conf-dir", default=None, help="the conf/ directory"),
        arg("--warmup", type=int, default=1, help="untimed steps first"),
        arg("--steps", type=int, default=3, help="timed steps (the median is reported)"),
        arg("--batch", type=int, default=1),
        arg("--threads", type=int, default=0, help="torch intra-op threads per profile (0: torch's default)"),
        arg("--device", default="cpu", help="cpu (default), cuda, cuda:N, or auto (cuda when torch sees a GPU)"),
        arg("--precision", default="fp32", choices=["fp32", "bf16"],
            help="bf16: forward and loss under torch.autocast(bfloat16)"),
        arg("--peak-tflops", type=float, default=None,
            help="the device's peak TFLOP/s for MFU (default: the table of dense bf16 peaks of NVIDIA GPUs)"),
        arg("--no-flops", action="store_true", help="skip the untimed FLOP-counting step"),
        arg("--malloc", default="keep", choices=["keep", "system"],
            help="allocator policy during the steps, as loop.malloc: keep (training's default) or system (glibc's)"),
    ],
)
def bench_model(args: argparse.Namespace) -> int:
    from sweettok.models.bench import run_benchmarks

    configs = {p: load_model_config(p, args.conf_dir).to_dict() for p in args.profiles}
    report = run_benchmarks(configs, warmup=args.warmup, steps=args.steps, batch=args.batch, threads=args.threads,
                            device=args.device, precision=args.precision, count_flops=not args.no_flops,
                            peak_tflops=args.peak_tflops, malloc=args.malloc)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    failed = 0
    for name, r in report["profiles"].items():
        if "error" in r:
            failed += 1
            print(f"{name}: failed ({r['error']}):\n{r['stderr_tail']}", file=sys.stderr)
            continue
        print(f"{name}: {r['step_seconds_median']:.3f} s/step (fwd+bwd), peak RSS {r['peak_rss_mib']:.0f} MiB, "
              f"{r['parameters']:,} parameters; malloc {r['malloc']}: {r['minor_faults_per_step']:,.0f} minor page "
              f"faults and {r['system_seconds_per_step']:.2f} s system time per step")
        if r["peak_memory_mib"] is not None:
            print(f"  {r['device_name']}, {r['precision']}: peak memory {r['peak_memory_mib']:.0f} MiB "
                  f"(torch.cuda.max_memory_allocated)")
        if r["flops_per_step"] is not None:
            mfu = (f"MFU {100 * r['mfu']:.1f}% of {r['peak_tflops']:g} TFLOP/s ({r['peak_tflops_source']})"
                   if r["mfu"] is not None else f"MFU n/a: {r['mfu_note']}")
            print(f"  {r['flops_per_step'] / 1e9:,.1f} GFLOP/step (forward {r['forward_flops_per_step'] / 1e9:,.1f}), "
                  f"{r['achieved_tflops']:.3f} TFLOP/s; {mfu}")
    print(f"wrote {out}")
    return 1 if failed else 0


@command(
    "bench threads",
    help="training steps/s of the base profile alone and beside one busy process, per thread policy -> JSON",
    args=[
        arg("--out", default="data/08_reporting/bench_threads.json", help="JSON output path"),
        arg("--stages", nargs="+", default=["proxy", "phase1", "phase2"], choices=["proxy", "phase1", "phase2"]),
        arg("--policies", nargs="+", default=["auto", "fixed"], choices=["auto", "fixed"],
            help="auto: loop.threads auto (the default); fixed: all of torch's threads throughout"),
        arg("--steps", type=int, default=0, help="optimiser steps per measurement (0: 100 proxy, 40 phase 1/2)"),
        *_conf_args(),
    ],
)
def bench_threads(args: argparse.Namespace) -> int:
    from sweettok.training.bench_threads import STAGES, run_thread_benchmark

    steps = {s: args.steps for s in STAGES} if args.steps > 0 else None
    out = Path(args.out)
    report = run_thread_benchmark(args.stages, args.policies, profile=args.config, steps=steps,
                                  conf_dir=args.conf_dir, out=out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'stage':8s}{'policy':8s}{'alone':>12s}{'busy':>12s}{'alone/busy':>12s}   (steps/s, {report['cores']} cores)")
    for r in report["rows"]:
        print(f"{r['stage']:8s}{r['policy']:8s}{r['alone_steps_per_s']:12.2f}{r['busy_steps_per_s']:12.2f}"
              f"{r['alone_over_busy']:11.2f}x")
    print(f"wrote {out}")
    return 0


@command(
    "bench optimizer",
    help="training steps/s of the base profile alone per AdamW implementation (loop vs fused) -> JSON",
    args=[
        arg("--out", default="data/08_reporting/bench_optimizer.json", help="JSON output path"),
        arg("--stages", nargs="+", default=["proxy", "phase1", "phase2"], choices=["proxy", "phase1", "phase2"]),
        arg("--implementations", nargs="+", default=["loop", "fused"], choices=["loop", "foreach", "fused"],
            help="optimizer.implementation values; ratios are against the first"),
        arg("--repeats", type=int, default=2, help="rounds; the implementations alternate within each"),
        arg("--steps", type=int, default=0, help="optimiser steps per measurement (0: 100 proxy, 40 phase 1/2)"),
        *_conf_args(),
    ],
)
def bench_optimizer(args: argparse.Namespace) -> int:
    from sweettok.training.bench_threads import STAGES, run_optimizer_benchmark

    steps = {s: args.steps for s in STAGES} if args.steps > 0 else None
    report = run_optimizer_benchmark(args.stages, args.implementations, repeats=args.repeats, profile=args.config,
                                     steps=steps, conf_dir=args.conf_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    base = args.implementations[0]
    print(f"{'stage':8s}" + "".join(f"{impl:>12s}" for impl in args.implementations)
          + f"   (median steps/s alone, {report['cores']} cores; ratio to {base})")
    for r in report["rows"]:
        rates = "".join(f"{r['median_steps_per_s'][impl]:12.2f}" for impl in args.implementations)
        ratios = "  ".join(f"{impl} {r['speedup_over_' + base][impl]:.2f}x" for impl in args.implementations[1:])
        print(f"{r['stage']:8s}{rates}   {ratios}")
    print(f"wrote {out}")
    return 0


@command(
    "curve",
    help="train the chain at a multiple of the default length and score it; --plot draws the compute curve",
    args=[
        arg("--multiple", type=float, nargs="*", default=[], help="multiples of the default steps to train (e.g. 3 6)"),
        arg("--from-catalog", action="store_true",
            help="record the default run already in the catalog as the 1x point (no training)"),
        arg("--plot", action="store_true", help="write compute_curve.csv/.png from the records in --out-dir"),
        arg("--minutes-per-multiple", type=float, default=None,
            help="training minutes of the default length alone (x axis in minutes instead of multiples)"),
        arg("--work-dir", default="data/07_curve", help="run directories and proxy codes of each multiple"),
        arg("--out-dir", default="data/08_reporting/compute_curve", help="records, table and figure"),
        *_conf_args(),
    ],
)
def curve(args: argparse.Namespace) -> int:
    from sweettok.compute_curve import plot, record_from_catalog, run_multiple

    if not args.multiple and not args.plot and not args.from_catalog:
        print("nothing to do: give --multiple M ..., --from-catalog and/or --plot", file=sys.stderr)
        return 2
    if args.from_catalog:
        record = record_from_catalog(env=args.config, out_dir=args.out_dir, conf_dir=args.conf_dir)
        print(f"1x (catalog): {record['training_seconds']:.0f} s of training steps; wrote {args.out_dir}/m1.json")
    for m in args.multiple:
        record = run_multiple(m, env=args.config, work_dir=args.work_dir, out_dir=args.out_dir,
                              conf_dir=args.conf_dir)
        print(f"{m:g}x: {record['training_seconds']:.0f} s of training; wrote {args.out_dir}/m{m:g}.json")
    if args.plot:
        csv_path, png = plot(args.out_dir, env=args.config, conf_dir=args.conf_dir,
                             minutes_per_multiple=args.minutes_per_multiple)
        print(f"wrote {csv_path} and {png}")
    return 0


@command(
    "overfit",
    help="train a small model on one clip to a fixed grid of random proxy ids; CSV + PNG of the loss",
    args=[
        *_conf_args(),
        arg("--out-dir", default="data/08_reporting/overfit", help="where overfit_loss.csv/.png go"),
        arg("--steps", type=int, default=300),
        arg("--lr", type=float, default=1e-3),
        arg("--seed", type=int, default=0),
        arg("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"),
    ],
)
def overfit(args: argparse.Namespace) -> int:
    import torch

    from sweettok.models.overfit import overfit_one_clip, write_curve
    from sweettok.models.profiles import default_prior

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    cfg = load_model_config(args.config, args.conf_dir)
    result = overfit_one_clip(cfg, default_prior(args.config), steps=args.steps, lr=args.lr, seed=args.seed,
                              progress=True)
    csv_path, png_path = write_curve(result, Path(args.out_dir))
    print(f"cross-entropy {result.ce[0]:.4f} -> {result.ce[-1]:.4f} over {len(result.ce)} steps "
          f"({result.ce[0] / max(result.ce[-1], 1e-12):.1f}x); wrote {csv_path} and {png_path}")
    return 0


@command(
    "bench cache",
    help="read the test clips from the clip cache vs decode them from the videos; JSON of both throughputs",
    args=[
        arg("--cache", default="data/03_primary/clip_cache", help="clip cache directory (index.parquet + shards)"),
        arg("--manifest", default="data/02_intermediate/video_manifest.parquet", help="video manifest (parquet)"),
        arg("--out", default="data/08_reporting/bench_cache.json", help="JSON output path"),
        arg("--repeats", type=int, default=3, help="timed passes over the split (the median is reported)"),
        *_conf_args(),
    ],
)
def bench_cache_cmd(args: argparse.Namespace) -> int:
    from sweettok.data.bench import bench_cache

    patchify = load_params(args.config, args.conf_dir)["patchify"]
    report = bench_cache(Path(args.cache) / "index.parquet", args.manifest, args.cache, args.out,
                         frame_stride=patchify["frame_stride"], repeats=args.repeats)
    print(f"{report['clips']} test clips: cache {report['cache_clips_per_s']:.1f} clips/s, "
          f"decode {report['decode_clips_per_s']:.1f} clips/s, ratio {report['cache_over_decode_throughput']:.2f}x; "
          f"wrote {args.out}")
    return 0


@command(
    "bench i3d",
    help="clips per second of the FVD network (Kinetics-400 I3D) at a few batch sizes -> JSON",
    args=[
        arg("--batch-sizes", type=int, nargs="+", default=[1, 4], help="clips per forward pass to measure"),
        arg("--frames", type=int, default=16, help="frames per clip (>= 9; the original FVD used 16)"),
        arg("--repeats", type=int, default=2, help="timed passes per batch size (the median is reported)"),
        arg("--warmup", type=int, default=1, help="untimed passes per batch size first"),
        arg("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)"),
        arg("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"),
        arg("--out", default="data/08_reporting/bench_i3d.json", help="JSON output path"),
    ],
)
def bench_i3d(args: argparse.Namespace) -> int:
    from sweettok.metrics.bench_i3d import run_i3d_benchmark

    report = run_i3d_benchmark(args.batch_sizes, frames=args.frames, repeats=args.repeats, warmup=args.warmup,
                               device=args.device, threads=args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    shape = "x".join(str(n) for n in report["clip_shape"])
    print(f"I3D on {report['device']}, {report['torch_threads']} torch threads, clips {shape}, "
          f"load average {report['load_average_1m']['before']:.1f}:")
    for r in report["rows"]:
        line = f"  batch {r['batch']:3d}: {r['clips_per_s']:7.2f} clips/s ({r['seconds_per_batch_median']:.2f} s/batch)"
        if "contiguous_clips_per_s" in r:
            line += (f"; contiguous layout {r['contiguous_clips_per_s']:.2f} clips/s, channels-last "
                     f"{r['channels_last_speedup']:.2f}x")
        print(line)
    print(f"wrote {out}")
    return 0


@command(
    "bench lm",
    help="seconds to sample token sequences with and without the LM's KV cache, side by side -> JSON",
    args=[
        arg("--checkpoint", default="data/06_models/token_lm", help="a token_lm model directory (the lm pipeline's)"),
        arg("--env", default="base", help="configuration environment whose lm.sampling settings to use"),
        arg("--batch-sizes", type=int, nargs="+", default=[1, 8], help="sequences sampled together"),
        arg("--repeats", type=int, default=3, help="timed rounds per batch size (the median is reported)"),
        arg("--device", default="cpu", help="cpu, cuda, cuda:N or auto"),
        arg("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)"),
        arg("--out", default="data/08_reporting/bench_lm.json", help="JSON output path"),
    ],
)
def bench_lm(args: argparse.Namespace) -> int:
    from sweettok.models.bench_lm import run_lm_benchmark
    from sweettok.models.lm import SamplingConfig
    from sweettok.models.tokenizer import load_model
    from sweettok.training.distributed import select_device

    if not Path(args.checkpoint, "config.json").is_file():
        raise SystemExit(f"{args.checkpoint}: no token LM here; train one with `kedro run --pipelines lm`")
    model = load_model(args.checkpoint, kind="token_lm").to(select_device(args.device))
    sampling = SamplingConfig.from_dict(load_params(args.env).get("lm", {}).get("sampling", {}))
    report = run_lm_benchmark(model, sampling, args.batch_sizes, repeats=args.repeats, threads=args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"token LM sampling on {report['device']}, {report['torch_threads']} torch threads, "
          f"{report['sequence_length']}-token sequences, load average {report['load_average_1m']['before']:.1f}:")
    for r in report["rows"]:
        print(f"  batch {r['batch']:3d}: {r['seconds_with_cache']:.2f} s with the KV cache, "
              f"{r['seconds_without_cache']:.2f} s without: {r['speedup']:.1f}x "
              f"(same tokens: {r['same_tokens']})")
    print(f"wrote {out}")
    return 0


# Kedro imports `<package>.cli` and merges its click group `cli` into the `kedro` command.
# The project's own commands live in the `sweettok` command above, so this group is empty.
@click.group(name="sweettok-kedro")
def cli() -> None:
    """Project commands added to `kedro` (none: use the `sweettok` command)."""


# encode, decode, words, bench tokenizer (registered on import)
import sweettok.cli_tokenize  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
