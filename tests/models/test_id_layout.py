"""The id layout follows ``topk``: ``topk + 1`` ids per latent token (the modifiers, then the head word)."""

from __future__ import annotations

import json

import pytest
import torch

from sweettok import cli
from sweettok.models.config import SweetTokConfig
from sweettok.models.sweettok import SweetTok

pytestmark = pytest.mark.usefixtures("one_thread")

TOPKS = [1, 2, 3, 4]


@pytest.fixture(params=TOPKS, ids=[f"topk{k}" for k in TOPKS])
def model(request, tiny_model_cfg, small_prior) -> SweetTok:
    torch.manual_seed(0)
    return SweetTok(tiny_model_cfg.replace(topk=request.param), small_prior).eval()


def clip(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, frames, 32, 32, generator=g) - 0.5


@pytest.mark.parametrize("frames", [1, 9, 17])
def test_encode_gives_topk_plus_one_ids_per_token(model, frames):
    cfg = model.cfg
    n, tokens = cfg.topk + 1, 6 + (8 if frames > 1 else 0)  # Ls = 6, Lt = 8
    with torch.no_grad():
        latents, ids, aux = model.encode(clip(3, frames))
    assert cfg.ids_per_token == n and cfg.ids_per_clip(frames) == n * tokens
    assert latents.shape == (3, tokens, 16)
    assert ids.shape == (3, n * tokens) and ids.dtype == torch.int64
    # token-major: the ids of token j are ids[n*j : n*j + n], exactly what each book's quantizer chose
    z = aux["z"]
    spatial = model.quantizer.quantize(z[:, :6], "spatial").ids
    assert spatial.shape == (3, 6, n)
    assert torch.equal(ids[:, : 6 * n].reshape(3, 6, n), spatial)
    if frames > 1:
        assert torch.equal(ids[:, 6 * n :].reshape(3, 8, n), model.quantizer.quantize(z[:, 6:], "temporal").ids)


@pytest.mark.parametrize("frames", [1, 17])
def test_ids_reproduce_the_latents_and_the_decoding_exactly(model, frames):
    with torch.no_grad():
        latents, ids, _ = model.encode(clip(2, frames, seed=1))
        assert torch.equal(model.ids_to_latents(ids), latents)
        assert torch.equal(model.ids_to_latents(ids[1]), latents[1])  # one clip's 1-D ids
        assert torch.equal(model.decode_ids(ids, frames), model.decode_latents(latents, frames))


def test_modifier_half_is_the_mean_of_topk_distinct_entries(model):
    """Each token's ``topk`` modifier ids are distinct and nearest first, so the layout is the ranking."""
    k, e = model.cfg.topk, model.cfg.codebook_dim
    with torch.no_grad():
        latents, ids, aux = model.encode(clip(2, 9, seed=2))
        books = model.quantizer.codebooks()
    tokens = ids.reshape(2, -1, k + 1)
    mods = tokens[:, :6, :k]  # spatial tokens: adjective ids (offset 0)
    assert all(len(set(row.tolist())) == k for row in mods.reshape(-1, k))
    zm = torch.nn.functional.normalize(aux["z"][:, :6, :e], dim=-1)
    sims = torch.gather(zm @ books["adj"].T, -1, mods)
    assert (sims[..., :-1] >= sims[..., 1:]).all()  # decreasing similarity
    assert torch.allclose(latents[:, :6, :e], books["adj"][mods].mean(dim=-2), atol=1e-6)


def test_words_are_topk_modifiers_then_a_head_word(model):
    k = model.cfg.topk
    with torch.no_grad():
        _, ids, _ = model.encode(clip(2, 17, seed=3))
    words = model.ids_to_words(ids)
    assert len(words) == 2 and len(words[0]) == ids.shape[1]
    for row in words:
        per_token = [row[j : j + k + 1] for j in range(0, len(row), k + 1)]
        assert len(per_token) == 6 + 8
        for t, token in enumerate(per_token):
            modifier, head = ("ADJ", "NOUN") if t < 6 else ("ADV", "VERB")
            assert [pos for _, pos in token] == [modifier] * k + [head]
            assert token[-1][0].startswith(head.lower())  # the random prior's words: noun3, verb7, ...


def test_usage_counts_each_id_in_its_book(model, small_prior):
    k = model.cfg.topk
    with torch.no_grad():
        _, ids, _ = model.encode(clip(4, 9, seed=4))
    stats = model.codebook_usage(ids)
    tokens = ids.reshape(4, -1, k + 1)
    ns, n_adj, n_adv = small_prior.spatial.n_words, small_prior.spatial.n_first, small_prior.temporal.n_first
    distinct_and_size = {
        "adj": (tokens[:, :6, :k].unique().numel(), n_adj),
        "noun": (tokens[:, :6, k].unique().numel(), ns - n_adj),
        "adv": (tokens[:, 6:, :k].unique().numel(), n_adv),
        "verb": (tokens[:, 6:, k].unique().numel(), small_prior.temporal.n_words - n_adv),
    }
    for book, (distinct, size) in distinct_and_size.items():
        assert stats[f"{book}_used"] == pytest.approx(distinct / size)
        assert 1.0 <= stats[f"{book}_perplexity"] <= distinct + 1e-9  # exp(entropy) <= entries in use
    # an image's ids have no temporal books
    with torch.no_grad():
        _, image_ids, _ = model.encode(clip(2, 1))
    assert set(model.codebook_usage(image_ids)) == {"adj_perplexity", "adj_used", "noun_perplexity", "noun_used"}


def test_ids_of_the_wrong_length_are_refused(model):
    n = model.cfg.topk + 1
    with torch.no_grad():
        _, ids, _ = model.encode(clip(1, 9))
    if n > 1:
        with pytest.raises(ValueError, match=rf"ids must be \(B, {n} \* n_tokens\) \({n} ids per token for topk="):
            model.ids_to_latents(ids[:, :-1])
    with pytest.raises(ValueError, match=rf"ids for T=9 must be \(B, {n * 14}\)"):
        model.decode_ids(ids[:, :-n], 9)


@pytest.mark.parametrize("topk", TOPKS)
def test_config_and_info_command_follow_topk(topk, tmp_path, capsys):
    assert SweetTokConfig(topk=topk).ids_per_clip(17) == (topk + 1) * 96  # Ls 32 + Lt 64 (default profile)
    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    base_model = cli.find_conf_root() / "base" / "parameters_model.yml"
    (conf / "base" / "parameters_model.yml").write_text(base_model.read_text())
    (conf / "k").mkdir()
    (conf / "k" / "parameters_model.yml").write_text(f"model:\n  topk: {topk}\n")
    assert cli.main(["info", "--config", "k", "--conf-dir", str(conf), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ids_per_token"] == topk + 1 and report["ids_per_clip"] == (topk + 1) * report["latent_tokens"]
    assert cli.main(["info", "--config", "k", "--conf-dir", str(conf)]) == 0
    out = capsys.readouterr().out
    assert f"ids per clip:           {(topk + 1) * 96} ({topk + 1} per token: {topk} modifier" in out
    assert "then the head word" in out
