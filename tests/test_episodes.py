"""Tests for jaxpapers.episodes: class/sample bookkeeping against a NumPy view of the data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import episodes


def labelled_data(n_classes=6, n_samples=8, size=4):
    """data[c, s] is a constant image holding 100 c + s (so every pixel names its source)."""
    v = 100 * np.arange(n_classes)[:, None] + np.arange(n_samples)[None, :]
    return jnp.asarray(np.broadcast_to(v[:, :, None, None], (n_classes, n_samples, size, size)).astype(np.float32))


def test_shapes_and_dtypes():
    data = labelled_data()
    ep = episodes.sample_episode(jax.random.PRNGKey(0), data, 3, 2, 4, 1)
    assert ep.support_x.shape == (6, 4, 4) and ep.support_y.shape == (6,)
    assert ep.query_x.shape == (12, 4, 4) and ep.query_y.shape == (12,)
    assert ep.unlabelled_x.shape == (3, 4, 4) and ep.unlabelled_y.shape == (3,)
    assert ep.support_y.dtype == jnp.int32 and ep.classes.shape == (3,)
    np.testing.assert_array_equal(ep.support_y, np.repeat(np.arange(3), 2))


def test_labels_point_to_their_class_and_samples_are_distinct():
    data = labelled_data()
    for seed in range(5):
        ep = episodes.sample_episode(jax.random.PRNGKey(seed), data, 4, 2, 3, 2)
        classes = np.asarray(ep.classes)
        assert len(set(classes)) == 4
        ids = {}
        for x, y in ((ep.support_x, ep.support_y), (ep.query_x, ep.query_y), (ep.unlabelled_x, ep.unlabelled_y)):
            for img, lab in zip(np.asarray(x), np.asarray(y)):
                v = int(img[0, 0])
                assert v // 100 == classes[lab]            # the label's class
                ids.setdefault(lab, []).append(v % 100)
        for lab, samples in ids.items():
            assert len(samples) == len(set(samples)) == 7  # 2 + 3 + 2 distinct samples


def test_label_assignment_is_permuted_across_episodes():
    data = labelled_data(n_classes=5)
    firsts = {int(episodes.sample_episode(jax.random.PRNGKey(s), data, 5, 1, 1).classes[0]) for s in range(20)}
    assert len(firsts) > 2   # label 0 is not always the same class


def test_rotations_match_numpy_rot90():
    rng = np.random.default_rng(0)
    data = jnp.asarray(rng.normal(size=(3, 5, 6, 6)).astype(np.float32))
    seen = set()
    for seed in range(12):
        ep = episodes.sample_episode(jax.random.PRNGKey(seed), data, 3, 1, 1, rotations=True)
        for img, lab in zip(np.asarray(ep.support_x), np.asarray(ep.support_y)):
            v = int(ep.classes[lab])
            base, turns = v % 3, v // 3
            seen.add(turns)
            candidates = [np.rot90(np.asarray(data[base, s]), turns) for s in range(5)]
            assert any(np.allclose(img, c) for c in candidates)
    assert seen == {0, 1, 2, 3}


def test_rotate_helper():
    x = jnp.arange(2 * 3 * 3, dtype=jnp.float32).reshape(2, 3, 3)
    out = episodes.rotate(x, jnp.array([1, 6]))
    np.testing.assert_array_equal(out[0], np.rot90(np.asarray(x[0]), 1))
    np.testing.assert_array_equal(out[1], np.rot90(np.asarray(x[1]), 2))


def test_vmapped_batch_and_jit():
    data = labelled_data()
    batch = jax.jit(lambda k: episodes.sample_episodes(k, data, 7, 2, 1, 2))(jax.random.PRNGKey(1))
    assert batch.support_x.shape == (7, 2, 4, 4) and batch.query_y.shape == (7, 4)
    one = episodes.sample_episode(jax.random.split(jax.random.PRNGKey(1), 7)[3], data, 2, 1, 2)
    np.testing.assert_array_equal(batch.query_x[3], one.query_x)


def test_compiled_samplers_equal_their_op_by_op_bodies():
    """The samplers are compiled once per shape; they draw the same episodes as their bodies run op by op."""
    data = jax.random.uniform(jax.random.PRNGKey(3), (12, 9, 6, 6))
    calls = [(lambda: episodes.sample_episode(jax.random.PRNGKey(1), data, 4, 2, 3, 2)),
             (lambda: episodes.sample_episode(jax.random.PRNGKey(2), data, 5, 1, 4, rotations=True)),
             (lambda: episodes.sample_episodes(jax.random.PRNGKey(4), data, 3, 4, 1, 2, 1, rotations=True))]
    for call in calls:
        compiled = call()
        with jax.disable_jit():
            eager = call()
        for a, b in zip(compiled, eager):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_channels_last_data():
    data = jnp.zeros((4, 5, 6, 6, 3))
    ep = episodes.sample_episode(jax.random.PRNGKey(0), data, 2, 1, 2, rotations=True)
    assert ep.support_x.shape == (2, 6, 6, 3)


@pytest.mark.parametrize("kwargs", [
    dict(n_way=7, k_shot=1, n_query=1),                  # more ways than classes
    dict(n_way=2, k_shot=5, n_query=4),                  # more samples than available
    dict(n_way=2, k_shot=0, n_query=1),
    dict(n_way=2, k_shot=1, n_query=-1),
    dict(n_way=2, k_shot=1, n_query=1, n_unlabelled=1.5),
])
def test_bad_sizes_raise(kwargs):
    with pytest.raises(ValueError):
        episodes.sample_episode(jax.random.PRNGKey(0), labelled_data(), **kwargs)


def test_bad_data_raises():
    with pytest.raises(ValueError):
        episodes.sample_episode(jax.random.PRNGKey(0), jnp.zeros((3, 4, 4)), 2, 1, 1)
    with pytest.raises(ValueError):
        episodes.sample_episode(jax.random.PRNGKey(0), jnp.zeros((3, 4, 4, 5)), 2, 1, 1, rotations=True)
    with pytest.raises(ValueError):
        episodes.sample_episodes(jax.random.PRNGKey(0), labelled_data(), 0, 2, 1, 1)


def test_rotations_allow_more_ways():
    ep = episodes.sample_episode(jax.random.PRNGKey(0), labelled_data(n_classes=2), 8, 1, 1, rotations=True)
    assert sorted(np.asarray(ep.classes).tolist()) == list(range(8))


def _distinct_reference(r, n):
    """Naive: draw i takes the r_i-th value (ascending) among those not drawn yet."""
    unused, out = list(range(n)), []
    for ri in r:
        out.append(unused.pop(int(ri)))
    return out


@pytest.mark.parametrize("n,k", [(1, 1), (5, 5), (16, 6), (3200, 5), (3200, 20)])
def test_distinct_matches_naive_loop(n, k):
    for seed in range(10):
        key = jax.random.PRNGKey(seed)
        got = np.asarray(jax.jit(episodes.distinct, static_argnums=(1, 2))(key, n, k))
        r = np.asarray(jax.random.randint(key, (k,), 0, n - jnp.arange(k, dtype=jnp.int32), dtype=jnp.int32))
        assert got.tolist() == _distinct_reference(r, n)
        assert len(set(got.tolist())) == k and got.min() >= 0 and got.max() < n


def test_distinct_has_the_law_of_a_permutation_prefix():
    # every ordered pair of distinct values out of 5 is equally likely (20 cells); chi-square over 20,000 draws
    draws = np.asarray(jax.vmap(lambda k: episodes.distinct(k, 5, 2))(jax.random.split(jax.random.PRNGKey(1), 20_000)))
    counts = np.zeros((5, 5))
    np.add.at(counts, (draws[:, 0], draws[:, 1]), 1)
    assert np.all(np.diag(counts) == 0)
    expected = 20_000 / 20
    chi2 = ((counts[~np.eye(5, dtype=bool)] - expected) ** 2 / expected).sum()
    assert chi2 < 50.0   # 19 degrees of freedom: P(chi2 > 50) < 2e-4 under the uniform law
    # the same statistic catches a biased sampler: the same draws with every pair sorted (larger value never first)
    biased = np.stack([np.sort(d) for d in draws])
    b = np.zeros((5, 5))
    np.add.at(b, (biased[:, 0], biased[:, 1]), 1)
    assert ((b[~np.eye(5, dtype=bool)] - expected) ** 2 / expected).sum() > 50.0


@pytest.mark.parametrize("n,k", [(3, 4), (0, 1), (4, 0), (2.0, 1)])
def test_distinct_bad_sizes_raise(n, k):
    with pytest.raises(ValueError):
        episodes.distinct(jax.random.PRNGKey(0), n, k)
