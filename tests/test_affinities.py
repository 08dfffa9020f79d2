"""Tests for jaxpapers.affinities against naive NumPy references."""

import numpy as np
import pytest

from jaxpapers import affinities as aff


def _data(n=60, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _naive_row(dist_row, perplexity, iters=200):
    """Per-row bisection on beta in NumPy float64 (the textbook loop)."""
    lo, hi = 1e-20, 1e20
    for _ in range(iters):
        beta = np.sqrt(lo * hi)
        p = np.exp(-beta * (dist_row - dist_row.min()))
        p /= p.sum()
        h = -np.sum(p[p > 0] * np.log(p[p > 0]))
        if h > np.log(perplexity):
            lo = beta
        else:
            hi = beta
    return p


def test_sq_distances_matches_numpy():
    y = _data()
    ref = ((y[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1)
    np.testing.assert_allclose(np.asarray(aff.sq_distances(y)), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("perplexity", [5.0, 20.0])
def test_entropic_affinities_hit_perplexity_and_match_naive(perplexity):
    y = _data()
    p, beta = aff.entropic_affinities(y, perplexity)
    p = np.asarray(p, np.float64)
    assert p.shape == (60, 60) and beta.shape == (60,)
    np.testing.assert_allclose(np.diag(p), 0.0)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    h = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, 1e-300)), 0.0), axis=1)
    np.testing.assert_allclose(np.exp(h), perplexity, rtol=1e-3)
    d = ((y[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1)
    for n in (0, 17, 59):
        row = np.delete(d[n], n)
        ref = _naive_row(row, perplexity)
        np.testing.assert_allclose(np.delete(p[n], n), ref, atol=2e-4)


def test_joint_is_symmetric_and_normalised():
    p, _ = aff.entropic_affinities(_data(), 10.0)
    pj = np.asarray(aff.joint(p))
    np.testing.assert_allclose(pj, pj.T, atol=1e-8)
    assert abs(pj.sum() - 1.0) < 1e-5
    np.testing.assert_allclose(pj, (np.asarray(p) + np.asarray(p).T) / 120, rtol=1e-6)


def test_knn_matches_argsort():
    y = _data(n=70)
    d, idx = aff.knn(y, 7, block=16)  # blocks that do not divide N
    full = ((y[:, None, :].astype(np.float64) - y[None]) ** 2).sum(-1)
    np.fill_diagonal(full, np.inf)
    ref = np.argsort(full, axis=1)[:, :7]
    assert idx.shape == (70, 7) and d.shape == (70, 7)
    np.testing.assert_array_equal(np.sort(np.asarray(idx), 1), np.sort(ref, 1))
    np.testing.assert_allclose(np.asarray(d), np.take_along_axis(full, ref, 1), rtol=1e-4)


def test_sparse_affinities_with_all_neighbours_equal_dense():
    y = _data(n=40)
    p_dense, _ = aff.entropic_affinities(y, 8.0)
    d, idx = aff.knn(y, 39, block=8)
    p_knn, _ = aff.entropic_affinities_knn(d, 8.0)
    dense_from_knn = np.asarray(aff.densify(idx, p_knn, 40))
    np.testing.assert_allclose(dense_from_knn, np.asarray(p_dense), atol=1e-5)
    idx2, val2 = aff.joint_knn(idx, p_knn)
    np.testing.assert_allclose(np.asarray(aff.densify(idx2, val2, 40)), np.asarray(aff.joint(p_dense)), atol=1e-6)


def test_joint_knn_symmetrises_a_truncated_graph():
    y = _data(n=50)
    d, idx = aff.knn(y, 6)
    p_knn, _ = aff.entropic_affinities_knn(d, 3.0)
    idx2, val2 = aff.joint_knn(idx, p_knn)
    dense = np.asarray(aff.densify(idx2, val2, 50))
    cond = np.zeros((50, 50))
    np.put_along_axis(cond, np.asarray(idx), np.asarray(p_knn), 1)
    np.testing.assert_allclose(dense, (cond + cond.T) / 100, atol=1e-7)
    assert abs(dense.sum() - 1) < 1e-5 and idx2.shape[1] >= 6


def test_bad_inputs_raise():
    y = _data(n=20)
    with pytest.raises(ValueError, match="perplexity"):
        aff.entropic_affinities(y, 25.0)
    with pytest.raises(ValueError, match="perplexity"):
        aff.entropic_affinities(y, 0.5)
    with pytest.raises(ValueError, match="y must"):
        aff.entropic_affinities(y[0], 5.0)
    with pytest.raises(ValueError, match="k must"):
        aff.knn(y, 20)
    with pytest.raises(ValueError, match="block"):
        aff.knn(y, 3, block=0)
    with pytest.raises(ValueError, match="p_cond"):
        aff.joint(np.ones((3, 4)))
    with pytest.raises(ValueError, match="idx and p_cond"):
        aff.joint_knn(np.zeros((3, 2), int), np.zeros((3, 3)))
