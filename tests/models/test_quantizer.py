"""MLC quantizer against brute-force references: top-k mean, loss, GCN, usage statistics."""

from __future__ import annotations

import math

import pytest
import torch

from sweettok.models.codebook_prior import CodebookPrior
from sweettok.models.config import SweetTokConfig
from sweettok.models.quantizer import MotionLanguageCodebook

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def mlc(small_prior):
    torch.manual_seed(0)
    return MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=16, topk=2, beta=0.25), small_prior).eval()


def brute_force(z: torch.Tensor, mods: torch.Tensor, heads: torch.Tensor, k: int):
    """Per token: Euclidean distances to every entry, sorted; mean of the k nearest modifiers."""
    e = mods.shape[1]
    out, idx = [], []
    for tok in z.reshape(-1, 2 * e):
        zm = tok[:e] / tok[:e].norm()
        zh = tok[e:] / tok[e:].norm()
        dm = ((mods - zm) ** 2).sum(-1)
        dh = ((heads - zh) ** 2).sum(-1)
        order = sorted(range(len(dm)), key=lambda i: float(dm[i]))[:k]
        best = min(range(len(dh)), key=lambda i: float(dh[i]))
        out.append(torch.cat([mods[order].sum(0) / k, heads[best]]))
        idx.append(order + [best])
    return torch.stack(out).reshape(*z.shape[:-1], 2 * e), torch.tensor(idx).reshape(*z.shape[:-1], k + 1)


@pytest.mark.parametrize("which", ["spatial", "temporal"])
def test_topk_mean_matches_brute_force(mlc, small_prior, which):
    torch.manual_seed(1)
    z = torch.randn(3, 7, 16)
    with torch.no_grad():
        out = mlc.quantize(z, which)
        books = mlc.codebooks()
    mods, heads = (books["adj"], books["noun"]) if which == "spatial" else (books["adv"], books["verb"])
    ref, ref_idx = brute_force(z, mods, heads, k=2)
    assert torch.allclose(out.z_q, ref, atol=1e-6)
    graph = small_prior.spatial if which == "spatial" else small_prior.temporal
    offset = 0 if which == "spatial" else small_prior.spatial.n_words
    local = out.ids - offset
    local[..., 2] -= graph.n_first
    assert torch.equal(local, ref_idx)


def test_loss_is_commitment_plus_beta_codebook(mlc):
    torch.manual_seed(2)
    z = torch.randn(2, 5, 16)
    out = mlc.quantize(z, "spatial")
    zn = torch.cat([z[..., :8] / z[..., :8].norm(dim=-1, keepdim=True), z[..., 8:] / z[..., 8:].norm(dim=-1, keepdim=True)], -1)
    q = out.z_q.detach()
    halves = [slice(0, 8), slice(8, 16)]
    expected = sum(((q[..., h] - zn[..., h]) ** 2).mean() for h in halves) * 1.25  # 1 + beta
    assert math.isclose(out.loss.item(), expected.item(), rel_tol=1e-5)
    assert math.isclose(out.commitment.item(), out.codebook.item(), rel_tol=1e-6)


def test_codebook_is_the_gcn_of_the_frozen_embeddings(mlc, small_prior):
    """Dense reference: X' = D^-1/2 (A + I) D^-1/2 X W + b, twice with ReLU between."""
    g = small_prior.spatial
    n = g.n_words
    a = torch.zeros(n, n)
    a[g.edge_index[1], g.edge_index[0]] += g.edge_weight
    a += torch.eye(n)
    dinv = a.sum(1).rsqrt()
    norm = dinv[:, None] * a * dinv[None, :]
    proj = mlc.spatial
    h = torch.relu(norm @ (g.embeddings @ proj.conv1.lin.weight.T) + proj.conv1.bias)
    ref = norm @ (h @ proj.conv2.lin.weight.T) + proj.conv2.bias
    with torch.no_grad():
        assert torch.allclose(proj(), ref, atol=1e-5)
    assert torch.equal(proj.embeddings, g.embeddings)


def test_usage_statistics(mlc, small_prior):
    ns = small_prior.spatial.n_words
    # 2 spatial tokens, 1 temporal token per clip; batch of 2 clips
    ids = torch.tensor([
        [0, 1, 12, 2, 3, 12, ns + 0, ns + 0, ns + 10],
        [0, 1, 13, 2, 3, 13, ns + 1, ns + 1, ns + 11],
    ])
    stats = mlc.usage(ids, n_spatial_tokens=2)
    assert math.isclose(stats["adj_perplexity"], 4.0, rel_tol=1e-9)  # 0,1,2,3 twice each
    assert math.isclose(stats["adj_used"], 4 / 12)
    assert math.isclose(stats["noun_perplexity"], 2.0, rel_tol=1e-9)
    assert math.isclose(stats["noun_used"], 2 / 20)
    assert math.isclose(stats["adv_perplexity"], 2.0, rel_tol=1e-9)
    assert math.isclose(stats["verb_used"], 2 / 16)
    assert "verb_perplexity" not in mlc.usage(ids[:, :6], n_spatial_tokens=2)


def test_prior_too_small_for_topk():
    prior = CodebookPrior.random(n_adj=1, n_adv=3)
    with pytest.raises(ValueError, match="1 modifier words, fewer than SweetTokConfig.topk=2"):
        MotionLanguageCodebook(SweetTokConfig(), prior)


def test_wrong_latent_width(mlc):
    with pytest.raises(ValueError, match="width 12, expected 2 \\* codebook_dim = 16"):
        mlc.quantize(torch.randn(1, 2, 12), "spatial")
