"""The proxy per-patch VQ tokenizer: grid shapes, overfitting, codebook maintenance."""

import pytest
import torch
import torch.nn.functional as F

from sweettok.models.proxy import ProxyTokenizer, ProxyTokenizerConfig


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**kw):
    base = dict(
        patch_size=4,
        temporal_patch_size=4,
        hidden_dim=32,
        num_blocks=1,
        norm_groups=8,
        codebook_size=64,
        code_dim=8,
        restart_every=20,
        sample_buffer_size=256,
    )
    base.update(kw)
    return ProxyTokenizerConfig(**base)


def smooth_clips(n, t, side, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, t, side // 4, side // 4, generator=g) - 0.5
    return F.interpolate(x, size=(t, side, side), mode="trilinear", align_corners=False)


@pytest.mark.parametrize("frames,slices", [(1, 1), (5, 2), (17, 5)])
def test_grid_shapes(frames, slices):
    torch.manual_seed(0)
    model = ProxyTokenizer(tiny()).eval()
    clip = torch.rand(2, 3, frames, 16, 24) - 0.5
    out = model(clip)
    assert out.ids.shape == (2, slices, 4, 6) and out.ids.dtype == torch.int64
    assert out.reconstruction.shape == clip.shape
    assert int(out.ids.min()) >= 0 and int(out.ids.max()) < 64
    ids = model.encode(clip)
    assert torch.equal(ids, out.ids)
    # decode_ids is decode_codes of the chosen codebook rows, and equals the forward pass.
    assert torch.allclose(model.decode_ids(ids), out.reconstruction, atol=1e-5)
    book = model.codebook_vectors()
    assert book.shape == (64, 8) and torch.allclose(book.norm(dim=1), torch.ones(64))
    onehot = F.one_hot(ids, 64).float()  # phase 2: softmax(logits) @ codebook
    codes = torch.einsum("bthwv,vd->bdthw", onehot, book)
    assert torch.allclose(model.decode_codes(codes), out.reconstruction, atol=1e-5)
    assert model.num_tokens(frames, 16, 24) == slices * 24


def test_images_are_one_frame_clips():
    model = ProxyTokenizer(tiny()).eval()
    img = torch.rand(3, 3, 16, 16) - 0.5
    assert model.encode(img).shape == (3, 1, 4, 4)
    assert model.decode_ids(model.encode(img)).shape == (3, 3, 1, 16, 16)


def test_bad_inputs_and_config_are_named():
    model = ProxyTokenizer(tiny())
    with pytest.raises(ValueError, match="T=4"):
        model.encode(torch.zeros(1, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="patch_size=4"):
        model.encode(torch.zeros(1, 3, 1, 18, 16))
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        model.decode_ids(torch.full((1, 1, 4, 4), 64))
    with pytest.raises(ValueError, match="ProxyTokenizerConfig.hidden_dim"):
        tiny(hidden_dim=30)
    with pytest.raises(ValueError, match="ProxyTokenizerConfig.codebook_size"):
        tiny(codebook_size=0)
    with pytest.raises(ValueError, match="^proxy.model.width: unknown parameter; known: .*hidden_dim"):
        ProxyTokenizerConfig.from_dict({"width": 3})


def test_overfits_a_few_clips():
    torch.manual_seed(0)
    model = ProxyTokenizer(tiny())
    clips = smooth_clips(4, 5, 16, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(200):
        out = model(clips)
        mse = F.mse_loss(out.reconstruction, clips)
        opt.zero_grad()
        (mse + out.vq_loss).backward()
        opt.step()
        losses.append(mse.item())
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < 0.1 * first, (first, last)
    assert last < 0.3 * clips.var().item()  # far better than predicting the mean
    assert out.perplexity.item() > 20  # many codes in use, not a collapsed codebook


def test_dead_codes_are_restarted_from_encoder_outputs():
    torch.manual_seed(0)
    model = ProxyTokenizer(tiny(restart_every=3, codebook_size=64, codebook_init="random"))
    # Push half the codebook far from anything the encoder emits: those codes are dead.
    with torch.no_grad():
        model.codebook[32:] = -model.codebook[:32].abs().mean(0, keepdim=True)
    before = model.codebook.detach().clone()
    clips = smooth_clips(2, 5, 16, seed=2)
    for _ in range(3):
        out = model(clips)
    usage_before = out.usage_fraction.item()
    dead = (model.code_usage < 1).nonzero().flatten()
    assert dead.numel() > 0 and int(model.forwards_since_check) == 3
    model(clips)  # 4th forward: check happens first
    changed = (model.codebook.detach() != before).any(dim=1).nonzero().flatten()
    assert set(changed.tolist()) == set(dead.tolist())
    assert int(model.restarted_total) == dead.numel()
    assert int(model.forwards_since_check) == 1
    # Re-seeded codes are unit vectors close to recent encoder outputs.
    new = F.normalize(model.codebook.detach()[dead], dim=1)
    filled = min(int(model.samples_seen), model.sample_buffer.shape[0])
    sims = new @ model.sample_buffer[:filled].t()
    assert sims.max(dim=1).values.min() > 0.99
    # After the restart more of the codebook gets used.
    for _ in range(3):
        out = model(clips)
    assert out.usage_fraction.item() > usage_before


def test_eval_mode_does_not_touch_statistics():
    model = ProxyTokenizer(tiny()).eval()
    model(torch.rand(1, 3, 5, 16, 16) - 0.5)
    assert int(model.forwards_since_check) == 0 and model.code_usage.sum() == 0


def test_spherical_kmeans_finds_separated_clusters():
    # 6 well separated directions in 8-d, 50 noisy unit points each: every true direction gets a
    # centre within 0.05 (cosine), and the centres are unit vectors.
    from sweettok.models.proxy import spherical_kmeans

    g = torch.Generator().manual_seed(0)
    truth = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    points = F.normalize(truth.repeat_interleave(50, 0) + 0.05 * torch.randn(300, 8, generator=g), dim=1)
    centres = spherical_kmeans(points, 6, iters=10, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(centres.norm(dim=1), torch.ones(6), atol=1e-5)
    best = (truth @ centres.t()).max(dim=1).values
    assert (best > 0.95).all(), best


def test_spherical_kmeans_with_fewer_distinct_points_than_centres_gives_distinct_centres():
    from sweettok.models.proxy import spherical_kmeans

    points = F.normalize(torch.eye(8)[:3], dim=1).repeat(10, 1)  # 3 distinct points, 16 centres
    centres = spherical_kmeans(points, 16, iters=3, generator=torch.Generator().manual_seed(0), noise=0.01)
    gram = centres @ centres.t() - 2 * torch.eye(16)
    assert gram.max() < 1 - 1e-6  # no two centres coincide


def test_kmeans_seeding_uses_the_codebook_from_the_first_training_batch():
    # Random unit codes leave most of the codebook unreachable at the start; seeded from the first
    # batch, the codes land among the encoder's outputs: that batch uses far more of them.
    torch.manual_seed(0)
    clips = smooth_clips(8, 5, 32, seed=2)  # 8 x 2 x 8 x 8 = 1024 encoder outputs, 256 codes
    used = {}
    for init in ("random", "kmeans"):
        torch.manual_seed(0)
        model = ProxyTokenizer(tiny(codebook_init=init, restart_every=0, codebook_size=256)).train()
        out = model(clips)
        used[init] = int(out.ids.unique().numel())
        assert int(model.codebook_seeded) == 1
    assert used["kmeans"] >= 0.95 * 256 and used["random"] < 0.6 * 256, used
    # a resumed model (codebook_seeded saved as 1) is not seeded again
    state = model.state_dict()
    again = ProxyTokenizer(tiny(codebook_init="kmeans", restart_every=0, codebook_size=256)).train()
    again.load_state_dict(state)
    before = again.codebook.detach().clone()
    again(clips)
    assert torch.equal(again.codebook.detach(), before)
