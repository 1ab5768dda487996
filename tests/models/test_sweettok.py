"""SweetTok end to end: shapes, gradient paths, id layout and exact id round trip, determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sweettok.models.sweettok import SweetTok, parameter_breakdown

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def model(tiny_model_cfg, small_prior):
    torch.manual_seed(0)
    return SweetTok(tiny_model_cfg, small_prior)


def clip(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, 32, 32, generator=g) - 0.5


@pytest.mark.parametrize("frames, slices", [(1, 1), (5, 2), (9, 3), (17, 5)])
def test_output_shapes(model, frames, slices):
    cfg = model.cfg
    n_tokens = 6 + (8 if frames > 1 else 0)
    x = clip(2, frames)
    latents, ids, aux = model.encode(x)
    assert latents.shape == (2, n_tokens, 16)
    assert ids.shape == (2, 3 * n_tokens) and ids.dtype == torch.int64
    assert aux["z"].shape == (2, n_tokens, 16) and aux["slices"] == slices
    out = model(x)
    logits, mlc_loss, stats = out.logits, out.mlc_loss, out.stats
    assert logits.shape == (2, cfg.proxy_vocab_size, slices, 4, 4)
    assert mlc_loss.ndim == 0 and mlc_loss.item() > 0
    assert set(stats) >= {"mlc_loss", "adj_perplexity", "noun_used"}
    assert ("verb_perplexity" in stats) == (frames > 1)
    out2 = model(x, return_features=True)
    logits2, features = out2.logits, out2.features
    assert features.shape == (2, slices, 4, 4, cfg.width)


def test_image_4d_equals_one_frame_clip(model):
    model.eval()
    x = clip(2, 1)
    with torch.no_grad():
        a = model(x).logits
        b = model(x[:, :, 0]).logits
    assert torch.equal(a, b)


def test_latents_are_unit_halves_and_continuous_latents_too(model):
    model.eval()
    with torch.no_grad():
        latents, ids, aux = model.encode(clip(1, 17))
    z = aux["z"]
    assert torch.allclose(z[..., :8].norm(dim=-1), torch.ones(1, 14), atol=1e-5)
    assert torch.allclose(z[..., 8:].norm(dim=-1), torch.ones(1, 14), atol=1e-5)
    # head half of a quantized token is one unit codebook vector; modifier half a mean of two
    assert torch.allclose(latents[..., 8:].norm(dim=-1), torch.ones(1, 14), atol=1e-5)
    assert (latents[..., :8].norm(dim=-1) <= 1 + 1e-5).all()


def test_gradients_reach_encoder_through_quantizer(model):
    """Cross-entropy alone (no MLC loss) must train patch embedding and queries (straight-through);
    the codebook projector is trained by the MLC loss only."""
    x = clip(1, 9)
    out = model(x)
    logits, mlc_loss = out.logits, out.mlc_loss
    target = torch.randint(0, model.cfg.proxy_vocab_size, logits[:, 0].shape)
    F.cross_entropy(logits, target).backward()
    enc = model.encoder
    for name, p in [
        ("patch frame-0 linear", model.patch_embed.first[1].weight),
        ("patch tube linear", model.patch_embed.tubes[1].weight),
        ("spatial queries", enc.spatial_queries),
        ("temporal queries", enc.temporal_queries),
        ("spatial trunk", enc.spatial_trunk[0].self_attn.qkv.weight),
        ("temporal trunk", enc.temporal_trunk[0].self_attn.qkv.weight),
    ]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.quantizer.spatial.conv1.lin.weight.grad is None
    model.zero_grad(set_to_none=True)
    out = model(x)
    logits, mlc_loss = out.logits, out.mlc_loss
    mlc_loss.backward()
    for book in (model.quantizer.spatial, model.quantizer.temporal):
        assert book.conv1.lin.weight.grad.abs().sum() > 0
        assert book.conv2.lin.weight.grad.abs().sum() > 0
    assert not any(b.requires_grad for b in model.quantizer.buffers())
    assert enc.spatial_queries.grad.abs().sum() > 0  # commitment term pulls the encoder


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("frames", [1, 17])
def test_ids_round_trip_exactly(model, batch, frames):
    model.eval()
    x = clip(batch, frames, seed=batch)
    with torch.no_grad():
        latents, ids, _ = model.encode(x)
        assert torch.equal(model.ids_to_latents(ids), latents)
        for i in range(batch):  # a clip's ids decode the same alone as in a batch
            assert torch.equal(model.ids_to_latents(ids[i]), latents[i])
        assert torch.equal(model.decode_ids(ids, frames), model.decode_latents(latents, frames))


def test_ids_round_trip_keeps_gradient_value(model):
    """In train mode with dropout off the straight-through latents still equal the id lookup."""
    model.quantizer.eval()  # codebook dropout off; encoder still tracks gradients
    latents, ids, _ = model.encode(clip(2, 5))
    assert latents.requires_grad
    with torch.no_grad():
        assert torch.equal(model.ids_to_latents(ids), latents.detach())


def test_id_layout_and_words(model, small_prior):
    model.eval()
    with torch.no_grad():
        _, ids, _ = model.encode(clip(2, 17))
    ns, n_adj, n_adv = small_prior.spatial.n_words, small_prior.spatial.n_first, small_prior.temporal.n_first
    tokens = ids.reshape(2, -1, 3)
    spatial, temporal = tokens[:, :6], tokens[:, 6:]
    assert ((spatial[..., :2] >= 0) & (spatial[..., :2] < n_adj)).all()
    assert ((spatial[..., 2] >= n_adj) & (spatial[..., 2] < ns)).all()
    assert ((temporal[..., :2] >= ns) & (temporal[..., :2] < ns + n_adv)).all()
    assert ((temporal[..., 2] >= ns + n_adv) & (temporal[..., 2] < ns + small_prior.temporal.n_words)).all()
    assert (spatial[..., 0] != spatial[..., 1]).all()  # top-2 are two different adjectives
    words = model.ids_to_words(ids[0])
    assert [p for _, p in words[:6]] == ["ADJ", "ADJ", "NOUN"] * 2
    assert [p for _, p in words[18:24]] == ["ADV", "ADV", "VERB"] * 2
    assert words[2][0] == small_prior.spatial.words[int(ids[0, 2])]
    assert words[20][0] == small_prior.temporal.words[int(ids[0, 20]) - ns]
    assert len(model.ids_to_words(ids)) == 2
    with pytest.raises(ValueError, match="outside"):
        model.ids_to_words(torch.tensor([ns + small_prior.temporal.n_words]))


def test_decode_ids_rejects_bad_ids(model):
    model.eval()
    with torch.no_grad():
        _, ids, _ = model.encode(clip(1, 5))
        with pytest.raises(ValueError, match=r"must be \(B, 42\)"):
            model.decode_ids(ids[:, :-3], 5)
        swapped = ids.clone()
        swapped[0, 0] = swapped[0, 2]  # a noun where an adjective belongs
        with pytest.raises(ValueError, match="spatial ids out of range"):
            model.decode_ids(swapped, 5)


def test_same_seed_same_model_and_eval_is_deterministic(tiny_model_cfg, small_prior):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        m = SweetTok(tiny_model_cfg, small_prior).eval()
        with torch.no_grad():
            outs.append(m(clip(2, 9)).logits)
            assert torch.equal(m(clip(2, 9)).logits, outs[-1])
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(124)
    other = SweetTok(tiny_model_cfg, small_prior).eval()
    with torch.no_grad():
        assert not torch.allclose(other(clip(2, 9)).logits, outs[0])


def test_state_dict_round_trip_is_strict(model, tiny_model_cfg, small_prior):
    torch.manual_seed(99)
    fresh = SweetTok(tiny_model_cfg, small_prior)
    fresh.load_state_dict(model.state_dict(), strict=True)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(clip(1, 5)).logits, fresh(clip(1, 5)).logits)
    assert "quantizer.spatial.embeddings" in model.state_dict()


def test_rejects_bad_clip_lengths(model):
    with pytest.raises(ValueError, match=r"T=8 frames; SweetTok takes 1 \+ 4k"):
        model(clip(1, 8))
    with pytest.raises(ValueError, match="T=21"):
        model(clip(1, 21))


def test_parameter_breakdown_adds_up(model):
    counts = parameter_breakdown(model)
    parts = {k: v for k, v in counts.items() if k not in ("total", "frozen_buffers")}
    assert sum(parts.values()) == counts["total"] == sum(p.numel() for p in model.parameters())
    assert all(v > 0 for v in parts.values())
    # the GCN projector: (32*16 + 16) + (16*8 + 8) per book
    assert counts["quantizer.projector"] == 2 * (32 * 16 + 16 + 16 * 8 + 8)


def test_quantization_runs_in_float32_under_autocast(model):
    model.eval()
    x = clip(2, 5)
    with torch.no_grad():
        ref_latents, ref_ids, _ = model.encode(x)
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            latents, ids, _ = model.encode(x)
            looked_up = model.ids_to_latents(ids)
    assert latents.dtype == torch.float32 and looked_up.dtype == torch.float32
    assert torch.equal(looked_up, latents)
    # bf16 encoder activations may move a token to a near-tie neighbour, but not most of them
    assert (ids == ref_ids).float().mean() > 0.5


def test_temporal_latents_see_only_their_cell_and_spatial_latents_only_frame0(model):
    """Tiny grid: 4x4 patches, temporal cells of 2x2 patches with 2 queries each (8 tokens,
    cell-major). Motion in patch (row 0, col 1) lies in cell 0 -> only temporal tokens 0, 1 move;
    the spatial latents read frame 0 only."""
    model.eval()
    x = clip(1, 9)
    moved = x.clone()
    # Perturbations are patterns, not constants: the patch LayerNorm removes a patch's mean.
    bump = 0.4 * torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(5))
    moved[:, :, 3, 0:8, 8:16] += bump  # frame 3 (slice 1), patch row 0, column 1
    with torch.no_grad():
        zs, zt = model.encoder(model.patch_embed(x))
        zs2, zt2 = model.encoder(model.patch_embed(moved))
    assert torch.equal(zs, zs2)
    changed = (zt - zt2).abs().amax(dim=-1)[0] > 1e-6
    assert changed.tolist() == [True, True] + [False] * 6
    moved = x.clone()
    moved[:, :, 0, 24:32, 24:32] += bump  # frame 0, patch (3, 3): cell 3 -> temporal tokens 6, 7
    with torch.no_grad():
        zs3, zt3 = model.encoder(model.patch_embed(moved))
    assert not torch.allclose(zs, zs3)
    assert ((zt - zt3).abs().amax(dim=-1)[0] > 1e-6).tolist() == [False] * 6 + [True, True]
