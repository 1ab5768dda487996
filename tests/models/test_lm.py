"""The token LM: vocabulary layout, KV cache, sampling controls, loss, baselines, checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sweettok.models.lm import (LMVocabulary, SamplingConfig, TokenLM, TokenLMConfig, generate, logits_loss,
                                sequence_nll)
from sweettok.models.tokenizer import load_model, save_model
from sweettok.training.lm_training import unigram_baselines
from sweettok.typed_params import ParamError

SMALL = dict(n_adj=6, n_noun=9, n_adv=5, n_verb=7, topk=2, spatial_tokens=3, temporal_tokens=4, classes=4,
             width=32, depth=2, heads=4)


def _model(seed: int = 0, **over) -> TokenLM:
    torch.manual_seed(seed)
    return TokenLM(TokenLMConfig(**{**SMALL, **over})).eval()


def test_vocabulary_layout():
    v = LMVocabulary(TokenLMConfig(**SMALL))
    assert (v.words, v.null_class, v.sep, v.size) == (27, 31, 32, 33)
    assert (v.spatial_ids, v.temporal_ids, v.sequence_length, v.block_size, v.sep_position) == (9, 12, 23, 22, 10)
    ranges = v.position_ranges()
    assert ranges[0] == (27, 32)                               # a class or the null class
    assert ranges[1:4] == [(0, 6), (0, 6), (6, 15)]            # adjective, adjective, noun
    assert ranges[10] == (32, 33)                              # the separator
    assert ranges[11:14] == [(15, 20), (15, 20), (20, 27)]     # adverb, adverb, verb
    ids = torch.tensor([[0, 1, 6, 2, 3, 7, 4, 5, 14] + [15, 16, 20] * 4])
    seq = v.to_sequence(ids, torch.tensor([2]))
    assert seq[0, 0] == 29 and seq[0, 10] == 32 and seq.shape == (1, 23)
    assert v.legal_mask()[torch.arange(23), seq[0]].all()
    assert torch.equal(v.to_ids(seq), ids)
    with pytest.raises(ValueError, match="ids must be in"):
        v.to_sequence(ids + 30, torch.tensor([0]))
    with pytest.raises(ValueError, match="class labels"):
        v.to_sequence(ids, torch.tensor([4]))


def test_config_errors_name_the_key():
    with pytest.raises(ParamError, match="heads"):
        TokenLMConfig(**{**SMALL, "heads": 5})
    with pytest.raises(ParamError, match="top_p"):
        SamplingConfig(top_p=1.5)


def test_cached_logits_equal_full_forward():
    model = _model()
    seq = torch.randint(0, 6, (3, model.vocab.block_size))
    full = model(seq)
    cache = model.new_cache(3)
    steps = [model(seq[:, :5], cache)] + [model(seq[:, t : t + 1], cache) for t in range(5, seq.shape[1])]
    cached = torch.cat(steps, dim=1)
    assert cache.length == model.vocab.block_size
    assert (cached - full).abs().max() < 1e-5
    with pytest.raises(ValueError, match="block size"):
        model(seq[:, :1], cache)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_kv_cache_gives_the_same_tokens(guidance):
    model = _model(1)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    runs = []
    for use_cache in (True, False):
        cfg = SamplingConfig(top_k=5, top_p=0.9, temperature=1.3, guidance_scale=guidance, use_cache=use_cache,
                             batch_size=4)
        runs.append(generate(model, labels, cfg, torch.Generator().manual_seed(7)))
    assert torch.equal(runs[0], runs[1])
    # and another seed draws other tokens (the draw is random, not fixed by the model)
    other = generate(model, labels, SamplingConfig(top_k=5, top_p=0.9, temperature=1.3, guidance_scale=guidance),
                     torch.Generator().manual_seed(8))
    assert not torch.equal(runs[0], other)


def test_samples_are_legal_and_greedy_is_argmax():
    model = _model(2)
    v = model.vocab
    ids = generate(model, torch.arange(4), SamplingConfig(temperature=2.0), torch.Generator().manual_seed(0))
    seq = v.to_sequence(ids, torch.arange(4))
    assert v.legal_mask()[torch.arange(v.sequence_length)[None, :], seq].all()
    greedy = generate(model, torch.tensor([1]), SamplingConfig(top_k=1), torch.Generator().manual_seed(0))
    seq = v.to_sequence(greedy, torch.tensor([1]))
    logp = model.masked_log_probs(model(seq[:, :-1]))
    scored = v.scored_positions()
    assert torch.equal(logp.argmax(-1)[0, scored], seq[0, 1:][scored])


def test_guidance_zero_ignores_the_class():
    model = _model(3)
    # make the class token matter a lot, so that a conditional sampler would differ by class
    with torch.no_grad():
        model.token_embed.weight[model.vocab.words : model.vocab.null_class] *= 50
    a = generate(model, torch.zeros(3, dtype=torch.long), SamplingConfig(guidance_scale=0.0),
                 torch.Generator().manual_seed(4))
    b = generate(model, torch.full((3,), 2), SamplingConfig(guidance_scale=0.0), torch.Generator().manual_seed(4))
    c = generate(model, torch.full((3,), 2), SamplingConfig(guidance_scale=1.0), torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_top_p_keeps_the_nucleus():
    from sweettok.models.lm import _filter

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(_filter(logits, 0, 0.7))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(_filter(logits, 0, 0.85))
    assert kept.tolist() == [[True, True, True, False]]
    assert torch.isfinite(_filter(logits, 2, 1.0)).sum() == 2


def test_loss_is_cross_entropy_within_the_part_of_speech():
    model = _model(4)
    v = model.vocab
    ids = generate(model, torch.arange(4), SamplingConfig(), torch.Generator().manual_seed(1))
    seq = v.to_sequence(ids, torch.arange(4))
    logits = model(seq[:, :-1])
    _, nll = logits_loss(model, logits, seq, 0.0)
    # reference: per position, cross-entropy over the legal slice only
    total, count = 0.0, 0
    ranges = v.position_ranges()
    for p in range(1, v.sequence_length):
        lo, hi = ranges[p]
        if hi - lo == 1:
            continue
        total += F.cross_entropy(logits[:, p - 1, lo:hi], seq[:, p] - lo, reduction="sum").item()
        count += seq.shape[0]
    assert nll.item() == pytest.approx(total / count, rel=1e-5)
    smoothed, nll2 = sequence_nll(model, seq, 0.1)
    assert math.isfinite(smoothed.item()) and nll2.item() == pytest.approx(nll.item(), rel=1e-6)
    assert smoothed.item() > nll.item() - 1.0


def test_unigram_baselines_match_hand_counts():
    v = LMVocabulary(TokenLMConfig(**SMALL))
    rng = np.random.default_rng(0)
    ranges = v.position_ranges()
    clip = ranges[1 : v.sep_position] + ranges[v.sep_position + 1 :]
    train = np.stack([[rng.integers(lo, hi) for lo, hi in clip] for _ in range(50)])
    val = np.stack([[rng.integers(lo, hi) for lo, hi in clip] for _ in range(20)])
    got = unigram_baselines(train, val, v, alphas=(1.0,))
    counts = np.bincount(train.ravel(), minlength=v.words) + 1.0
    assert got["unigram_loss"] == pytest.approx(-np.log(counts[val] / counts.sum()).mean())
    # within the part of speech: renormalised over the position's range
    slot = np.mean([[-np.log(counts[val[i, j]] / counts[lo:hi].sum()) for j, (lo, hi) in enumerate(clip)]
                    for i in range(len(val))])
    assert got["slot_unigram_loss"] == pytest.approx(slot)
    assert got["position_unigram_loss"] >= got["slot_unigram_loss"] - 0.2  # uniform data: no position signal
    assert got["slot_unigram_loss"] < got["unigram_loss"]


def test_checkpoint_round_trip(tmp_path):
    model = _model(5)
    save_model(model, tmp_path / "lm")
    loaded = load_model(tmp_path / "lm", kind="token_lm")
    seq = torch.randint(0, 6, (2, 10))
    assert torch.equal(loaded(seq), model(seq))
    assert loaded.cfg == model.cfg


def test_binomial_summary():
    from sweettok.metrics.generation import binomial_summary

    s = binomial_summary(12, 40, 0.1)
    assert s["accuracy"] == 0.3 and s["ci_low"] < 0.3 < s["ci_high"]
    assert s["ci_low"] == pytest.approx(0.1807, abs=1e-3) and s["ci_high"] == pytest.approx(0.4543, abs=1e-3)
    # P(X >= 12) for X ~ Binomial(40, 0.1)
    assert s["p_value"] == pytest.approx(sum(math.comb(40, k) * 0.1**k * 0.9 ** (40 - k) for k in range(12, 41)))
    assert binomial_summary(1, 10, 0.1)["p_value"] == pytest.approx(1 - 0.9**10)


def test_bench_lm_reports_both_paths(tmp_path):
    from sweettok.models.bench_lm import run_lm_benchmark

    report = run_lm_benchmark(_model(6), SamplingConfig(guidance_scale=2.0), [2], repeats=1)
    row = report["rows"][0]
    assert row["batch"] == 2 and row["same_tokens"] is True
    assert row["seconds_with_cache"] > 0 and row["speedup"] == pytest.approx(
        row["seconds_without_cache"] / row["seconds_with_cache"])
    assert report["sequence_length"] == 23


def test_attention_dropout_is_its_own_rate():
    # dropout on the attention weights only where attention_dropout (default: dropout) says so
    vocab = LMVocabulary(TokenLMConfig(**SMALL))
    seq = vocab.to_sequence(torch.zeros(2, vocab.clip_ids, dtype=torch.long), torch.tensor([0, 1]))[:, :-1]

    def twice(**rates):
        torch.manual_seed(0)
        m = _model(**rates).train()
        return m(seq), m(seq)

    a, b = twice(dropout=0.0, attention_dropout=0.5)
    assert not torch.allclose(a, b)  # the attention weights are dropped, differently each call
    a, b = twice(dropout=0.0, attention_dropout=0.0)
    assert torch.equal(a, b)
    assert _model(dropout=0.3).blocks[0].attn.dropout == 0.3  # None: the model's dropout
    assert _model(dropout=0.3, attention_dropout=0.0).blocks[0].attn.dropout == 0.0
    with pytest.raises(ValueError, match="attention_dropout"):
        TokenLMConfig(**{**SMALL, "attention_dropout": 1.0})


def test_id_classifier_scores_words_no_training_clip_used():
    # a sample may hold a word that no real clip used: the classifier covers every word the
    # LM can sample, and names ids outside them
    from sweettok.metrics.generation import IdClassifier

    train = np.array([[0, 1], [0, 2], [3, 1], [3, 2]])
    labels = np.array([0, 0, 1, 1])
    clf = IdClassifier(n_words=6, classes=2).fit(train, labels)
    assert clf.predict(np.array([[0, 5], [3, 5], [5, 5]])).tolist()[:2] == [0, 1]
    post = clf.log_posterior(np.array([[5, 5]]))
    assert np.isfinite(post).all() and post[0, 0] == pytest.approx(post[0, 1])  # unseen word: no evidence
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 6\)"):
        clf.predict(np.array([[0, 6]]))
