"""`sweettok bench model`'s FLOP count, peak table, MFU and device options (tiny model, CPU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

from sweettok import cli
from sweettok.models import bench
from sweettok.models.bench import (bench_in_process, count_step_flops, peak_bf16_tflops, resolve_device,
                                   run_benchmarks, throughput)
from sweettok.models.config import SweetTokConfig
from sweettok.models.sweettok import SweetTok

# What the CPU report held before FLOPs and devices were added; these keys must stay.
CPU_PROFILE_KEYS = {"input", "parameters", "latent_tokens", "warmup_steps", "timed_steps", "step_seconds_median",
                    "step_seconds", "rss_before_build_mib", "rss_after_build_mib", "peak_rss_mib", "torch_threads",
                    "load_average_1m"}
CPU_REPORT_KEYS = {"created", "what", "method", "device", "cpu_count", "torch", "python", "batch", "profiles"}


def _step_flops(model: SweetTok, cfg: SweetTokConfig, batch: int) -> dict:
    """FLOPs of one phase-1 step at ``batch`` random clips, as bench_in_process takes them."""
    frames, res, g = cfg.input_frames, cfg.resolution, cfg.grid_size
    x = torch.rand(batch, cfg.in_channels, frames, res, res) - 0.5
    targets = torch.randint(0, cfg.proxy_vocab_size, (batch, cfg.check_frames(frames), g, g))

    def loss() -> torch.Tensor:
        out = model(x)
        return F.cross_entropy(out.logits, targets) + out.mlc_loss

    model.zero_grad(set_to_none=True)
    return count_step_flops(loss)


def test_step_flops_scale_with_batch(tiny_model_cfg, small_prior, one_thread):
    torch.manual_seed(0)
    model = SweetTok(tiny_model_cfg, small_prior).train()
    _step_flops(model, tiny_model_cfg, 1)  # builds the codebook graph's cached adjacency, as the timed steps do
    one, two = _step_flops(model, tiny_model_cfg, 1), _step_flops(model, tiny_model_cfg, 2)
    assert one["total"] > 1e7  # ~39 MFLOP: every token goes through 6 transformer blocks and the head
    assert 1.9 <= two["total"] / one["total"] <= 2.1
    # backward = gradients w.r.t. inputs and weights: about twice the forward products
    assert 2.5 <= one["total"] / one["forward"] <= 3.5
    assert sum(one["by_op"].values()) == one["total"]
    assert {"aten.mm", "aten.addmm", "aten._scaled_dot_product_flash_attention_for_cpu"} <= set(one["by_op"])


def test_cpu_attention_counted_as_torch_counts_gpu_attention():
    q = torch.randn(2, 4, 24, 16, requires_grad=True)
    k = torch.randn(2, 4, 40, 16, requires_grad=True)
    v = torch.randn(2, 4, 40, 16, requires_grad=True)
    fused = count_step_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum())
    assert fused["forward"] == sdpa_flop_count(q.shape, k.shape, v.shape) == 2 * (2 * 2 * 4 * 24 * 40 * 16)
    assert fused["total"] - fused["forward"] == sdpa_backward_flop_count(q.shape, q.shape, k.shape, v.shape)
    with sdpa_kernel(SDPBackend.MATH):  # the unfused path is two bmm's that torch counts itself
        unfused = count_step_flops(lambda: F.scaled_dot_product_attention(q, k, v).sum())
    assert unfused["forward"] == fused["forward"]


def test_sparse_product_counted_by_stored_values():
    torch.manual_seed(0)
    n, k, nnz = 60, 8, 150
    idx = torch.stack([torch.randperm(n * n)[:nnz] // n, torch.randperm(n * n)[:nnz] % n])
    adj = torch.sparse_coo_tensor(idx, torch.rand(nnz), (n, n)).coalesce().to_sparse_csr()
    stored = adj._nnz()
    lin = torch.nn.Linear(16, k)
    e = torch.randn(n, 16)
    flops = count_step_flops(lambda: torch.sparse.mm(adj, lin(e)).sum())
    dense = 2 * n * 16 * k  # the linear layer's product
    assert flops["forward"] == dense + 2 * stored * k
    # backward: A^T @ grad (sparse) and the weight's gradient; none for e, which needs no gradient
    assert flops["total"] == 2 * dense + 4 * stored * k
    assert flops["total"] < 2 * n * n * k  # torch's own table would count the sparse product as dense


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 NVL", None),
    ("NVIDIA H200", 989.4), ("NVIDIA A100-SXM4-80GB", 312.0), ("NVIDIA A100 80GB PCIe", 312.0),
    ("NVIDIA L4", 121.0), ("NVIDIA L40S", None), ("NVIDIA GeForce RTX 4090", 165.2), ("Tesla T4", None),
])
def test_peak_table_matches_whole_words(name, peak):
    assert peak_bf16_tflops(name) == peak


def test_mfu_from_table_override_and_reasons():
    flops = 10**12
    h100 = throughput(flops, 0.004, "cuda", "NVIDIA H100 80GB HBM3", "bf16")
    assert h100["achieved_tflops"] == pytest.approx(250.0)
    assert h100["peak_tflops"] == 989.4 and h100["mfu"] == pytest.approx(250.0 / 989.4)
    assert "H100 SXM" in h100["peak_tflops_source"] and h100["mfu_note"] is None
    unknown = throughput(flops, 0.004, "cuda", "NVIDIA B300", "bf16")
    assert unknown["mfu"] is None and unknown["peak_tflops"] is None and "NVIDIA B300" in unknown["mfu_note"]
    given = throughput(flops, 0.004, "cuda", "NVIDIA B300", "bf16", peak_tflops=500.0)
    assert given["mfu"] == pytest.approx(0.5) and given["mfu_note"] is None
    assert throughput(flops, 0.004, "cuda", "NVIDIA H100 80GB HBM3", "bf16", peak_tflops=1000.0)["mfu"] == 0.25
    fp32 = throughput(flops, 0.004, "cuda", "NVIDIA H100 80GB HBM3", "fp32")
    assert fp32["mfu"] is None and "fp32" in fp32["mfu_note"]
    cpu = throughput(flops, 2.0, "cpu", "AMD EPYC", "fp32")
    assert cpu["achieved_tflops"] == pytest.approx(0.5) and cpu["mfu"] is None and "cpu" in cpu["mfu_note"]
    uncounted = throughput(None, 2.0, "cuda", "NVIDIA H100 80GB HBM3", "bf16")
    assert uncounted["achieved_tflops"] is None and uncounted["mfu"] is None and "--no-flops" in uncounted["mfu_note"]


def test_cpu_profile_report_keeps_its_keys_and_adds_flops(tiny_model_cfg, one_thread):
    r = bench_in_process(tiny_model_cfg.to_dict(), "tiny", warmup=0, steps=1, batch=1)
    assert CPU_PROFILE_KEYS <= set(r)
    assert r["input"] == [1, 3, 17, 32, 32] and len(r["step_seconds"]) == 1
    assert r["device"] == "cpu" and r["precision"] == "fp32" and r["peak_memory_mib"] is None
    assert r["flops_per_step"] > r["forward_flops_per_step"] > 0
    assert sum(r["flops_by_op"].values()) == r["flops_per_step"]
    assert math.isclose(r["achieved_tflops"], r["flops_per_step"] / r["step_seconds_median"] / 1e12)
    assert r["mfu"] is None and r["mfu_note"]
    quiet = bench_in_process(tiny_model_cfg.to_dict(), "tiny", warmup=0, steps=1, batch=1, count_flops=False)
    assert quiet["flops_per_step"] is None and quiet["achieved_tflops"] is None
    # the allocator policy of training, and what the steps cost the kernel
    assert r["malloc"] == "keep" and r["minor_faults_per_step"] >= 0 and r["system_seconds_per_step"] >= 0
    system = bench_in_process(tiny_model_cfg.to_dict(), "tiny", warmup=0, steps=1, batch=1, count_flops=False,
                              malloc="system")
    assert system["malloc"] == "system" and system["malloc_applied"] is False


def test_run_benchmarks_cpu_report_in_a_subprocess(tiny_model_cfg):
    report = run_benchmarks({"tiny": tiny_model_cfg.to_dict()}, warmup=0, steps=1, threads=1)
    assert CPU_REPORT_KEYS <= set(report)
    assert report["what"].endswith("forward + backward, CPU, float32")
    assert report["device"] == "cpu" and report["precision"] == "fp32"
    r = report["profiles"]["tiny"]
    assert CPU_PROFILE_KEYS <= set(r) and r["torch_threads"] == 1 and r["flops_per_step"] > 0


def test_device_and_precision_checks():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="tpu"):
        resolve_device("tpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="fp16"):
        run_benchmarks({}, precision="fp16")
    assert bench.PRECISIONS == ("fp32", "bf16")


def test_cli_flags_of_the_gpu_script():
    args = cli.build_parser().parse_args(["bench", "model", "--config", "paper", "--device", "cuda", "--precision",
                                          "bf16", "--batch", "12", "--steps", "5", "--warmup", "2",
                                          "--peak-tflops", "900", "--out", "x.json"])
    assert args.profiles == ["paper"] and args.device == "cuda" and args.precision == "bf16"
    assert (args.batch, args.steps, args.warmup, args.peak_tflops, args.no_flops) == (12, 5, 2, 900.0, False)
