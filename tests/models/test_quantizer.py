"""MLC quantizer against brute-force references: top-k mean, loss, GCN, usage statistics."""

from __future__ import annotations

import math

import pytest
import torch

from sweettok.models.codebook_prior import CodebookPrior, WordGraph
from sweettok.models.config import SweetTokConfig
from sweettok.models.encoder import normalize_halves
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


# ---------------------------------------------------------------------------- collapse (centred books)


def correlated_prior(seed: int = 0, n_mod: int = 40, n_head: int = 60, embed_dim: int = 48) -> CodebookPrior:
    """Word embeddings like real sentence-encoder vectors: unit vectors around one common mean.

    Mean pairwise cosine about 0.4 (the real MiniLM vocabulary: 0.29); a sparse co-occurrence graph.
    """
    g = torch.Generator().manual_seed(seed)

    def graph(mod: str, head: str, pos: tuple[str, str]) -> WordGraph:
        mean = torch.randn(embed_dim, generator=g)
        emb = torch.nn.functional.normalize(mean + 1.2 * torch.randn(n_mod + n_head, embed_dim, generator=g), dim=-1)
        src = torch.randint(0, n_mod, (30,), generator=g)
        dst = torch.randint(n_mod, n_mod + n_head, (30,), generator=g)
        pairs = torch.unique(torch.stack([src, dst], 1), dim=0)
        counts = torch.randint(1, 5, (pairs.shape[0],), generator=g).float()
        words = [f"{mod}{i}" for i in range(n_mod)] + [f"{head}{i}" for i in range(n_head)]
        return WordGraph(words, [pos[0]] * n_mod + [pos[1]] * n_head, emb,
                         torch.cat([pairs.T, pairs.T.flip(0)], 1), torch.cat([counts, counts]))

    return CodebookPrior(graph("adj", "noun", ("ADJ", "NOUN")), graph("adv", "verb", ("ADV", "VERB")))


def mean_pairwise_cos(x: torch.Tensor) -> float:
    x = torch.nn.functional.normalize(x.reshape(-1, x.shape[-1]), dim=-1)
    n = x.shape[0]
    c = x @ x.T
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


def test_correlated_prior_is_realistic():
    prior = correlated_prior()
    for graph in (prior.spatial, prior.temporal):
        assert 0.25 < mean_pairwise_cos(graph.embeddings) < 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_centred_books_have_no_common_direction(seed):
    """At initialisation, with correlated embeddings: the books are spread around the origin, the
    commitment gradient on isotropic latents has no shared direction, and the latents use the books.

    Without centring the entries share one direction (mean cosine > 0.4) and the commitment gradient
    of every latent points roughly the same way (> 0.45): the start of the collapse."""
    prior = correlated_prior()
    cfg = SweetTokConfig(codebook_dim=8, gcn_hidden=32)
    assert cfg.codebook_center
    torch.manual_seed(seed)
    mlc = MotionLanguageCodebook(cfg, prior).eval()
    raw = MotionLanguageCodebook(cfg.replace(codebook_center=False), prior).eval()
    raw.load_state_dict(mlc.state_dict())
    z = torch.randn(16, 32, 16, generator=torch.Generator().manual_seed(10 + seed), requires_grad=True)

    def coherence(model: MotionLanguageCodebook) -> list[float]:
        out = []
        for which in ("spatial", "temporal"):
            (g,) = torch.autograd.grad(model.quantize(z, which).commitment, z)
            for half in (slice(0, 8), slice(8, 16)):
                gh = g[..., half].reshape(-1, 8)
                out.append(float(gh.mean(0).norm() / gh.norm(dim=1).mean()))
        return out

    with torch.no_grad():
        books, raw_books = mlc.codebooks(), raw.codebooks()
    for name in ("adj", "noun", "adv", "verb"):
        assert abs(mean_pairwise_cos(books[name])) < 0.05
        assert mean_pairwise_cos(raw_books[name]) > 0.4
    assert max(coherence(mlc)) < 0.15
    assert max(coherence(raw)) > 0.45
    with torch.no_grad():
        _, ids, _, _ = mlc(z, z)
    usage = mlc.usage(ids, n_spatial_tokens=32)
    for name in ("adj", "noun", "adv", "verb"):
        assert usage[f"{name}_perplexity"] > 30
        assert usage[f"{name}_used"] > 0.9


def _train_mlc_only(center: bool, seed: int, steps: int = 40) -> tuple[float, dict[str, float]]:
    """A shared encoder (last layer initialised small, as in SweetTok) and the MLC, trained on the MLC
    loss alone with AdamW at lr 1e-3; returns the latents' mean pairwise cosine and the usage."""
    torch.manual_seed(seed)
    mlc = MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=32, codebook_center=center),
                                 correlated_prior())
    enc = torch.nn.Sequential(torch.nn.Linear(24, 64), torch.nn.GELU(), torch.nn.LayerNorm(64), torch.nn.Linear(64, 16))
    torch.nn.init.trunc_normal_(enc[-1].weight, std=0.02)
    torch.nn.init.zeros_(enc[-1].bias)
    x = torch.randn(8, 32, 24)
    opt = torch.optim.AdamW([*mlc.parameters(), *enc.parameters()], lr=1e-3, weight_decay=1e-4)
    for _ in range(steps):
        z = normalize_halves(enc(x))
        _, _, loss, _ = mlc(z[:, :16], z[:, 16:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    mlc.eval()
    with torch.no_grad():
        z = normalize_halves(enc(x))
        _, ids, _, _ = mlc(z[:, :16], z[:, 16:])
    spread = max(mean_pairwise_cos(z[..., :8]), mean_pairwise_cos(z[..., 8:]))
    return spread, mlc.usage(ids, n_spatial_tokens=16)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_training_keeps_latents_and_books_spread(seed):
    """40 steps of MLC-only training: with centred books the latents stay spread (mean cosine < 0.3)
    and every book keeps a perplexity > 12 with over 40% of its entries used; with the release's
    uncentred books the same run drives all latents towards one direction (mean cosine > 0.6)."""
    spread, usage = _train_mlc_only(center=True, seed=seed)
    assert spread < 0.3
    for name in ("adj", "noun", "adv", "verb"):
        assert usage[f"{name}_perplexity"] > 12
        assert usage[f"{name}_used"] > 0.4
    spread_raw, _ = _train_mlc_only(center=False, seed=seed)
    assert spread_raw > 0.6


def test_single_word_book_is_not_centred_away():
    """Centring a book of one word would leave a zero vector; such a book is only normalised."""
    prior = CodebookPrior.random(n_adj=3, n_noun=1, n_adv=3, n_verb=1, seed=4)
    torch.manual_seed(0)
    mlc = MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=16), prior).eval()
    with torch.no_grad():
        books = mlc.codebooks()
        raw = mlc.spatial()
    assert torch.allclose(books["noun"].norm(dim=-1), torch.ones(1))
    assert torch.allclose(books["noun"][0], raw[-1] / raw[-1].norm(), atol=1e-6)
    assert torch.allclose(books["adj"].norm(dim=-1), torch.ones(3), atol=1e-6)


def test_codebook_center_validated():
    with pytest.raises(ValueError, match="SweetTokConfig.codebook_center: must be true or false, got 1"):
        SweetTokConfig(codebook_center=1)


# ---------------------------------------------------------------------------- code diversity
def _entropy(p: torch.Tensor) -> float:
    return float(-(p * torch.log(p.clamp_min(1e-12))).sum())


def test_diversity_matches_a_loop_reference(mlc):
    """Per half: mean over latents of H(p) minus mean over positions of H(mean over clips of p)."""
    torch.manual_seed(5)
    z = normalize_halves(torch.randn(4, 3, 16))
    with torch.no_grad():
        books = mlc.codebooks()
    tau = mlc.cfg.code_diversity_tau
    expected = 0.0
    for half, book in ((slice(0, 8), books["adj"]), (slice(8, 16), books["noun"])):
        p = [[torch.softmax(z[b, l, half] @ book.T / tau, dim=-1) for l in range(3)] for b in range(4)]
        per_latent = sum(_entropy(p[b][l]) for b in range(4) for l in range(3)) / 12
        per_position = sum(_entropy(sum(p[b][l] for b in range(4)) / 4) for l in range(3)) / 3
        expected += per_latent - per_position
    with torch.no_grad():
        got = mlc.diversity(z, books["adj"], books["noun"])
    assert math.isclose(got.item(), expected, rel_tol=1e-4, abs_tol=1e-5)


def test_diversity_bounds(small_prior):
    """Same latent for every clip: 0. Each clip exactly on its own entry, sharp assignments: -log B per half."""
    torch.manual_seed(0)
    mlc = MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=16, code_diversity_tau=0.002),
                                 small_prior).eval()
    with torch.no_grad():
        books = mlc.codebooks()
    same = normalize_halves(torch.randn(1, 2, 16)).expand(3, 2, 16)
    distinct = torch.stack([torch.cat([books["adj"][b], books["noun"][b]]).expand(2, 16) for b in range(3)])
    with torch.no_grad():
        assert abs(mlc.diversity(same, books["adj"], books["noun"]).item()) < 1e-5
        assert math.isclose(mlc.diversity(distinct, books["adj"], books["noun"]).item(), -2 * math.log(3),
                            abs_tol=0.02)


def test_diversity_joins_the_loss_only_while_training(small_prior):
    torch.manual_seed(0)
    # no GCN dropout, so that training and eval mode see the same books
    mlc = MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=16, gcn_dropout=0.0,
                                                code_diversity_weight=0.3), small_prior)
    torch.manual_seed(1)
    z = torch.randn(4, 5, 16)
    mlc.eval()
    out_eval = mlc.quantize(z, "spatial")
    assert out_eval.diversity.item() == 0.0
    assert math.isclose(out_eval.loss.item(), out_eval.commitment.item() + 0.25 * out_eval.codebook.item(),
                        rel_tol=1e-6)
    mlc.train()
    out = mlc.quantize(z, "spatial")
    assert out.diversity.item() < 0.0
    assert math.isclose(out.loss.item(), out.commitment.item() + 0.25 * out.codebook.item()
                        + 0.3 * out.diversity.item(), rel_tol=1e-5)
    assert math.isclose(out.commitment.item(), out_eval.commitment.item(), rel_tol=1e-5)


def test_diversity_gradient_spreads_clips_at_a_position(small_prior):
    """Eight clips whose latents start almost equal at every position: 60 Adam steps on the
    diversity term alone give the clips different head words at the same position."""
    torch.manual_seed(0)
    mlc = MotionLanguageCodebook(SweetTokConfig(codebook_dim=8, gcn_hidden=16), small_prior).eval()
    books = {k: v.detach() for k, v in mlc.codebooks().items()}
    base = torch.randn(1, 4, 16)
    z = torch.nn.Parameter(base + 0.01 * torch.randn(8, 4, 16))

    def distinct_heads() -> float:
        heads = (normalize_halves(z.detach())[..., 8:] @ books["noun"].T).argmax(-1)  # (8, 4)
        return sum(len(set(heads[:, l].tolist())) for l in range(4)) / 4

    before = distinct_heads()
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(60):
        loss = mlc.diversity(z, books["adj"], books["noun"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before <= 2
    assert distinct_heads() >= min(6, books["noun"].shape[0])


def test_code_diversity_validated():
    with pytest.raises(ValueError, match="code_diversity_weight"):
        SweetTokConfig(code_diversity_weight=-0.1)
    with pytest.raises(ValueError, match="code_diversity_tau"):
        SweetTokConfig(code_diversity_tau=0.0)


def test_sparse_projector_equals_message_passing(small_prior):
    from sweettok.models.quantizer import GCNProjector

    torch.manual_seed(0)
    proj = GCNProjector(small_prior.temporal, hidden=24, out_dim=8, dropout=0.0)
    probe = torch.randn(small_prior.temporal.n_words, 8)
    grads = []
    for forward in (proj, proj.message_passing):
        proj.zero_grad()
        out = forward()
        (out * probe).sum().backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in proj.named_parameters()}))
    (a, ga), (b, gb) = grads
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-4, rtol=1e-4), name
    # the cached Â E follows the buffers: new embeddings loaded in place change the codebook
    state = proj.state_dict()
    state["embeddings"] = state["embeddings"].flip(0).clone()
    proj.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(proj(), proj.message_passing(), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(proj(), a, atol=1e-3)
    # and so does a move to another dtype (new storage)
    with torch.no_grad():
        assert torch.allclose(proj.double()(), proj.message_passing(), atol=1e-10)


_TEMPLATE_SCRIPT = """
import concurrent.futures, multiprocessing, os, sys
from sweettok.models import quantizer


def build():
    quantizer._gcn_conv(4, 3)
    path = sys.modules[quantizer._GCN_TEMPLATE_MODULE].__file__
    assert os.path.isfile(path), path
    return path


if __name__ == "__main__":
    written = []
    for method in ("fork", "spawn"):  # a worker process, as LaneRunner's lanes are
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(method)) as pool:
            written.append(pool.submit(build).result())
    written.append(build())  # and this process
    print("\\n".join(written))
"""


def test_gcn_template_file_is_removed_when_the_process_exits(tmp_path):
    """torch-geometric writes GCNConv's generated ``propagate`` to a temporary .py file and never
    deletes it; a process that builds the codebook projector, worker processes included, leaves
    none behind."""
    import os
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(_TEMPLATE_SCRIPT)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp))  # the processes' temporary folder: only their files
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    written = done.stdout.strip().splitlines()[-3:]
    assert len(set(written)) == 3 and all(w.startswith(str(temp)) and "GCNConv_propagate" in w for w in written)
    assert [w for w in written if os.path.exists(w)] == []
    assert list(temp.iterdir()) == []
