"""The release's architecture options (attention, positions, windows, null key/values, trunk input,
decoder DQAE_t) and the ``release`` profile: each option behaves as documented, the release profile
has the release's size and output shape."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sweettok import cli
from sweettok.models.config import SweetTokConfig
from sweettok.models.dqae import (
    Attention, BlockStyle, DQAEBlock, FeedForward, PositionGenerator, WindowAttention, apply_rope, cosine_qk,
    rope_tables,
)
from sweettok.models.profiles import default_prior
from sweettok.models.sweettok import SweetTok

# Every option on, at a size that runs in a second: 8 x 8 patch grid, 64 spatial latents (8 x 8).
RELEASE_SMALL = dict(
    input_frames=9, resolution=64, patch_size=8, width=32, heads=2, mlp_ratio=2.0,
    enc_spatial_depth=3, enc_temporal_depth=2, dec_spatial_depth=2, dec_temporal_depth=2,
    dec_temporal_after=[1, 2], spatial_queries=64, temporal_query_grid=4, temporal_queries_per_cell=1,
    codebook_dim=8, gcn_hidden=16, gcn_dropout=0.0, proxy_vocab_size=40, head_hidden=32,
    first_difference="mixed", codebook_center=False, attention="cosine", bias=False, feed_forward="geglu",
    rope=True, peg="causal", video_position_tables=False, temporal_causal=True, null_kv=2,
    spatial_trunk_input="all_slices", window_layers=[2], window_size=8, dec_temporal_self_attention=False,
)


def test_rope_scores_depend_on_the_offset_only():
    cos, sin = rope_tables(4, 5, 16)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(p: tuple[int, int], r: tuple[int, int]) -> float:
        i, j = p[0] * 5 + p[1], r[0] * 5 + r[1]
        return float(apply_rope(q, cos[i], sin[i]) @ apply_rope(k, cos[j], sin[j]))

    # same (row, column) offset at different places: same score; other offsets: other scores
    assert score((0, 0), (1, 2)) == pytest.approx(score((2, 1), (3, 3)), abs=1e-5)
    assert score((0, 0), (1, 2)) != pytest.approx(score((0, 0), (2, 1)), abs=1e-3)
    assert score((1, 1), (1, 1)) == pytest.approx(float(q @ k), abs=1e-5)  # no offset: no turn
    # rows and columns both count
    assert score((0, 0), (0, 1)) != pytest.approx(score((0, 0), (1, 0)), abs=1e-3)
    rotated = apply_rope(q.expand(20, 16), cos, sin)
    assert torch.allclose(rotated.norm(dim=-1), q.norm().expand(20), atol=1e-5)  # a rotation


def test_window_attention_equals_masked_full_attention():
    torch.manual_seed(0)
    att = WindowAttention(width=8, heads=2, window=2, dropout=0.0)
    with torch.no_grad():
        att.relative_bias.normal_()
    rows, cols = 4, 6
    x = torch.randn(3, rows * cols, 8)
    got = att(x, rows, cols)

    q, k, v = att.qkv(x).chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (2, 4)).transpose(1, 2) for t in (q, k, v))  # (n, h, L, d)
    r = torch.arange(rows * cols) // cols
    c = torch.arange(rows * cols) % cols
    same = ((r[:, None] // 2) == (r[None] // 2)) & ((c[:, None] // 2) == (c[None] // 2))
    dr, dc = r[:, None] - r[None] + 1, c[:, None] - c[None] + 1  # offsets within a window, shifted to 0..2
    bias = att.relative_bias[(dr * 3 + dc).clamp(0, 8)].permute(2, 0, 1)  # (h, L, L)
    logits = q @ k.transpose(-1, -2) / math.sqrt(4) + bias
    logits = logits.masked_fill(~same, float("-inf"))
    want = att.out((logits.softmax(-1) @ v).transpose(1, 2).flatten(2))
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("causal", [True, False])
def test_position_generator_sees_the_future_only_when_centred(causal):
    torch.manual_seed(0)
    peg = PositionGenerator(4, causal=causal)
    x = torch.randn(1, 5, 3, 3, 4)
    later = x.clone()
    later[:, 3:] += 1.0  # change slices 3 and 4
    a, b = peg(x), peg(later)
    assert torch.equal(a[:, :2], b[:, :2])  # slices 0 and 1 see at most slice 2
    assert torch.equal(a[:, 2], b[:, 2]) is causal  # slice 2 sees slice 3 only when centred
    assert not torch.allclose(a[:, 3:], b[:, 3:])


def test_causal_self_attention_ignores_later_positions():
    torch.manual_seed(0)
    block = DQAEBlock(8, 2, 2.0, 0.0, cross=False, causal=True)
    x = torch.randn(4, 6, 8)
    later = x.clone()
    later[:, 4:] = torch.randn(4, 2, 8)
    a, b = block(x), block(later)
    assert torch.allclose(a[:, :4], b[:, :4], atol=1e-6) and not torch.allclose(a[:, 4:], b[:, 4:])
    full = DQAEBlock(8, 2, 2.0, 0.0, cross=False)
    full.load_state_dict(block.state_dict())
    assert not torch.allclose(full(x)[:, :4], full(later)[:, :4])


def test_cosine_attention_ignores_the_size_of_queries_and_keys():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    cosine = Attention(8, 2, 0.0, cross=False, style=BlockStyle(attention="cosine", bias=False))
    # without biases, doubling x doubles the values; cosine logits stay, so the output doubles
    assert torch.allclose(cosine(2 * x), 2 * cosine(x), atol=1e-5)
    softmax = Attention(8, 2, 0.0, cross=False, style=BlockStyle(bias=False))
    softmax.load_state_dict({k: v for k, v in cosine.state_dict().items() if "scale" not in k})
    assert not torch.allclose(softmax(2 * x), 2 * softmax(x), atol=1e-3)
    # the learned per-channel scales set the temperature: larger scales, sharper attention, further from
    # the output of evenly spread attention
    with torch.no_grad():
        before = (cosine(x) - _uniform_output(cosine, x)).norm()
        cosine.q_scale.mul_(4.0)
        after = (cosine(x) - _uniform_output(cosine, x)).norm()
    assert after > 1.2 * before


@pytest.mark.parametrize("rotate", [False, True])
def test_cosine_qk_equals_the_plain_expression_in_value_and_gradient(rotate):
    """cosine_qk keeps less for backward than autograd through normalize(rope(x)) * scale; its hand-written
    backward must give the same gradients (float64, checked against finite differences as well)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 20, 8, generator=g, dtype=torch.float64)
    x[0, 0, 0] = 0.0  # a zero row: the norm is clamped there
    x.requires_grad_(True)
    scale = (0.5 + torch.rand(8, generator=g, dtype=torch.float64)).requires_grad_(True)
    rope = tuple(t.double() for t in rope_tables(4, 5, 8)) if rotate else None

    def plain(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return F.normalize(apply_rope(x, *rope) if rope else x, dim=-1) * scale

    grad_out = torch.randn(2, 3, 20, 8, generator=g, dtype=torch.float64)
    got, want = cosine_qk(x, scale, rope), plain(x, scale)
    assert torch.allclose(got, want, atol=1e-12)
    assert float(got.detach()[0, 0, 0].abs().max()) == 0.0
    got_grads = torch.autograd.grad((got * grad_out).sum(), (x, scale))
    for a, b in zip(got_grads, torch.autograd.grad((want * grad_out).sum(), (x, scale))):
        assert torch.allclose(a, b, atol=1e-10)
    assert float(got_grads[1].abs().min()) > 1e-3  # the scales get a gradient
    small = (x.detach()[:, :, :6].clone().requires_grad_(True), scale.detach().clone().requires_grad_(True))
    small[0].data[0, 0, 0] = 1.0  # finite differences need a differentiable point
    assert torch.autograd.gradcheck(lambda a, s: cosine_qk(a, s, None), small)


@pytest.mark.parametrize("feed_forward", ["gelu", "geglu"])
@pytest.mark.parametrize("bias", [True, False])
def test_feed_forward_recomputing_its_activation_equals_the_layers_in_a_row(feed_forward, bias):
    """Without dropout the feed-forward runs activation + second Linear as one autograd step that keeps
    only the first Linear's output; values and every gradient equal those of its layers run in a row."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    ff = FeedForward(6, 2.0, 0.0, BlockStyle(feed_forward=feed_forward, bias=bias)).double()
    x = (3 * torch.randn(4, 7, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    grad_out = torch.randn(4, 7, 6, generator=g, dtype=torch.float64)
    got, want = ff(x), ff.net(x)
    assert torch.allclose(got, want, atol=1e-13)
    params = [x, *ff.parameters()]
    assert len(params) == (5 if bias else 3)
    got_grads = torch.autograd.grad((got * grad_out).sum(), params)
    want_grads = torch.autograd.grad((want * grad_out).sum(), params)
    for a, b in zip(got_grads, want_grads):
        assert torch.allclose(a, b, atol=1e-12) and float(a.abs().max()) > 1e-3
    assert torch.autograd.gradcheck(ff, (x[:2, :3].detach().clone().requires_grad_(True),))
    # under autocast the second product runs in bfloat16, as nn.Linear's would
    ff = ff.float()
    xf = x.detach().float().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, want = ff(xf), ff.net(xf)
    assert got.dtype == want.dtype == torch.bfloat16 and torch.allclose(got.float(), want.float(), atol=0.02)
    a, b = (torch.autograd.grad((y.float() * grad_out.float()).sum(), ff.net[3].weight)[0] for y in (got, want))
    assert a.dtype == torch.float32 and torch.allclose(a, b, atol=0.05, rtol=0.02)


def test_feed_forward_with_dropout_runs_its_layers():
    torch.manual_seed(0)
    ff = FeedForward(6, 2.0, 0.5).train()
    x = torch.randn(200, 6)
    assert float((ff(x) == ff(x)).float().mean()) < 0.5  # dropout masks differ between calls
    ff.eval()
    assert torch.equal(ff(x), ff.net(x))


def _uniform_output(att: Attention, x: torch.Tensor) -> torch.Tensor:
    """What ``att`` returns if every query spreads its attention evenly."""
    v = att.qkv(x).chunk(3, dim=-1)[2]
    return att.out(v.mean(dim=1, keepdim=True).expand_as(v))


def test_null_key_values_are_attended_first():
    torch.manual_seed(0)
    att = Attention(8, 2, 0.0, cross=True, null_kv=2)
    x, ctx = torch.randn(3, 4, 8), torch.randn(3, 5, 8)
    got = att(x, ctx)
    q = att.q(x).unflatten(-1, (2, 4)).transpose(1, 2)
    k, v = (t.unflatten(-1, (2, 4)).transpose(1, 2) for t in att.kv(ctx).chunk(2, dim=-1))
    nk, nv = att.null_kv[:, 0], att.null_kv[:, 1]  # (h, 2, d)
    k = torch.cat([nk.expand(3, -1, -1, -1), k], dim=2)
    v = torch.cat([nv.expand(3, -1, -1, -1), v], dim=2)
    want = att.out(((q @ k.transpose(-1, -2) / 2.0).softmax(-1) @ v).transpose(1, 2).flatten(2))
    assert torch.allclose(got, want, atol=1e-5)
    # groups share one context between consecutive query sequences
    assert torch.allclose(att(x.repeat_interleave(2, 0), ctx, groups=2)[::2], att(x, ctx), atol=1e-6)


def test_geglu_has_the_size_of_the_gelu_feed_forward():
    gelu = FeedForward(512, 4.0, 0.0)
    geglu = FeedForward(512, 4.0, 0.0, BlockStyle(feed_forward="geglu", bias=False))
    assert geglu.net[0].out_features == 2 * 1365 and geglu.net[3].in_features == 1365
    n_gelu = sum(p.numel() for p in gelu.parameters())
    n_geglu = sum(p.numel() for p in geglu.parameters())
    assert abs(n_geglu - n_gelu) / n_gelu < 0.003
    x = torch.randn(2, 512)
    a, gate = geglu.net[0](x).chunk(2, dim=-1)
    assert torch.allclose(geglu(x), geglu.net[3](a * F.gelu(gate)), atol=1e-6)
    assert all(m.bias is None for m in geglu.modules() if isinstance(m, torch.nn.Linear))


def test_every_option_on_trains_every_parameter(small_prior):
    cfg = SweetTokConfig(**RELEASE_SMALL)
    torch.manual_seed(0)
    model = SweetTok(cfg, small_prior)
    names = {n for n, _ in model.named_parameters()}
    # no position tables but the decoder's grid table, which the release keeps too
    assert {n for n in names if n.endswith(("grid_pos", "delta_pos", "slice_pos"))} == {"decoder.grid_pos"}
    assert not any(n.startswith("decoder.temporal_blocks") and "self_attn" in n for n in names)
    assert not any(n.startswith("encoder.spatial_query_blocks.1.cross") for n in names)  # window layer 2
    assert any(n.startswith("encoder.spatial_query_blocks.0.cross") for n in names)
    assert isinstance(model.encoder.spatial_trunk[1].self_attn, WindowAttention)
    assert any(n.endswith("null_kv") for n in names) and any(n.endswith(".peg.conv.weight") for n in names)
    biased = [m for a in model.modules() if isinstance(a, (Attention, FeedForward))
              for m in a.modules() if isinstance(m, torch.nn.Linear) and m.bias is not None]
    assert biased == []
    x = torch.rand(2, 3, 9, 64, 64) - 0.5
    latents, ids, aux = model.encode(x)
    logits = model.decode_latents(latents, 9)
    assert logits.shape == (2, 40, 3, 8, 8)
    loss = F.cross_entropy(logits, torch.randint(0, 40, (2, 3, 8, 8))) + aux["loss"]
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []

    model.eval()
    with torch.no_grad():
        lat, ids, _ = model.encode(x)
        assert torch.equal(model.decode_ids(ids, 9), model.decode_latents(lat, 9))
        image_logits = model.decode_latents(model.encode(x[:, :, 0])[0], 1)
    assert image_logits.shape == (2, 40, 1, 8, 8)


def test_all_slices_trunk_reads_motion_but_equals_first_frame_on_images(small_prior):
    first = SweetTokConfig(**{**RELEASE_SMALL, "spatial_trunk_input": "first_frame"})
    every = SweetTokConfig(**RELEASE_SMALL)
    torch.manual_seed(0)
    a = SweetTok(first, small_prior).eval()
    b = SweetTok(every, small_prior).eval()
    b.load_state_dict(a.state_dict())
    x = torch.rand(1, 3, 9, 64, 64) - 0.5
    moved = x.clone()
    moved[:, :, 1:] = torch.rand(1, 3, 8, 64, 64) - 0.5  # the same first frame, other later frames
    with torch.no_grad():
        za, zb = a.encode(x)[2]["z"], b.encode(x)[2]["z"]
        assert torch.equal(a.encode(x[:, :, 0])[2]["z"], b.encode(x[:, :, 0])[2]["z"])  # an image: one slice
        ls = first.spatial_queries
        # the first-frame trunk's spatial latents ignore later frames; the all-slices trunk's do not
        assert torch.equal(a.encode(moved)[2]["z"][:, :ls], za[:, :ls])
        assert not torch.allclose(b.encode(moved)[2]["z"][:, :ls], zb[:, :ls], atol=1e-4)


def test_release_profile_is_the_release_size():
    """conf/release against the release's SweetTok_Compact: 184,751,264 parameters, logits (1, 8192, 5, 32, 32)
    (counted by instantiating the release's code with random priors). The remaining 0.7% are parts that
    add nothing: two 512x512 Linears in a row on each side of each quantizer where this model has one
    (1,050,624), an MLP the release builds but never calls (164,352), and LayerNorm biases (30,208)."""
    cfg = cli.load_model_config("release")
    prior = default_prior("release")  # built on the CPU: the graph's edges are deduplicated with torch.unique
    with torch.device("meta"):
        model = SweetTok(cfg, prior)
    total = sum(p.numel() for p in model.parameters())
    assert total == 184_751_264 - 1_050_624 - 164_352 - 30_208
    paper = cli.load_model_config("paper")
    paper_prior = default_prior("paper")
    with torch.device("meta"):
        paper_total = sum(p.numel() for p in SweetTok(paper, paper_prior).parameters())
    assert paper_total > total + 4_000_000  # decoder DQAE_t self-attention and the 512-wide GCN
    assert [cfg.proxy_vocab_size, cfg.max_slices, cfg.grid_size, cfg.grid_size] == [8192, 5, 32, 32]
