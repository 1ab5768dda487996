"""Fréchet distance: closed forms, scipy's sqrtm formula, and its behaviour on small sets."""

import numpy as np
import pytest
from scipy import linalg

from sweettok.metrics.frechet import FeatureStats, frechet_distance


def test_diagonal_gaussians_match_closed_form():
    # For diagonal covariances the FD is |m1 - m2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    rng = np.random.default_rng(0)
    d = 16
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    got = frechet_distance(FeatureStats(m1, np.diag(s1), 100), FeatureStats(m2, np.diag(s2), 100))
    want = float(((m1 - m2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum())
    assert got == pytest.approx(want, rel=1e-10)


def test_matches_scipy_sqrtm_when_well_conditioned():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) + 0.5
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    covmean = linalg.sqrtm(sa.cov @ sb.cov).real
    ref = float(((sa.mean - sb.mean) ** 2).sum() + np.trace(sa.cov) + np.trace(sb.cov) - 2 * np.trace(covmean))
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-8)


def test_self_distance_is_zero_even_with_fewer_samples_than_dimensions():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 64))  # singular covariance: rank 19 < 64
    assert frechet_distance(x, x) < 1e-8
    shifted = frechet_distance(x, x + 1.0)
    assert shifted == pytest.approx(64.0, rel=1e-6)  # a pure mean shift of 1 in 64 dimensions


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        FeatureStats.of(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="dimensions differ"):
        frechet_distance(np.zeros((3, 4)) + np.arange(3)[:, None], np.ones((3, 5)) * np.arange(3)[:, None])
    with pytest.raises(ValueError, match="NaN"):
        FeatureStats.of(np.full((3, 2), np.nan))


def test_few_samples_shortcut_equals_the_covariance_path():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(30, 200)) @ rng.normal(size=(200, 200)) * 0.1
    b = rng.normal(size=(25, 200)) * 1.5 + 0.3
    fast = frechet_distance(a, b)
    sa, sb = FeatureStats.of(a), FeatureStats.of(b)
    assert sa.centred is not None and sb.centred is not None
    slow = frechet_distance(FeatureStats(sa.mean, sa.cov, sa.count), FeatureStats(sb.mean, sb.cov, sb.count))
    assert fast == pytest.approx(slow, rel=1e-6)  # the eigenvalue path loses ~1e-8 to round-off
    # mixed: one side without samples takes the covariance path and agrees as well
    assert frechet_distance(sa, FeatureStats(sb.mean, sb.cov, sb.count)) == pytest.approx(slow, rel=1e-6)
