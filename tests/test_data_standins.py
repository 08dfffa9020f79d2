"""Stand-ins for the full-mode datasets are read by the real loaders, offline."""

import numpy as np
import pytest

from jaxpapers.data import cifar, glyphs, idx, standins


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    return tmp_path


def _offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a stand-in must not need the network")

    monkeypatch.setattr("jaxpapers.data.fetch.download", refuse)
    monkeypatch.setattr("jaxpapers.data.idx.download", refuse)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_standin_is_read_by_the_real_loader(cache, monkeypatch, name):
    _offline(monkeypatch)
    standins.write_standins(cache, [name])
    x_tr, y_tr, x_te, y_te = cifar.load_cifar(name)
    per_batch, n_test = standins._size(name, "tiny")
    n_train = per_batch * len(cifar.MEMBERS[name][0])
    assert x_tr.shape == (n_train, 32, 32, 3) and x_te.shape == (n_test, 32, 32, 3)
    assert x_tr.dtype == np.float32 and 0 <= x_tr.min() and x_tr.max() <= 1
    assert y_tr.max() < cifar.NUM_CLASSES[name] and y_te.dtype == np.int32
    # the parse also works straight from the tarball
    again = cifar.parse_cifar_tar(cifar.tarball_path(name), name)
    np.testing.assert_array_equal(again[1], y_tr)


@pytest.mark.parametrize("name", sorted(idx.SOURCES))
def test_idx_standin_is_read_by_the_real_loader(cache, monkeypatch, name):
    _offline(monkeypatch)
    standins.write_standins(cache, [name])
    x_tr, y_tr, x_te, y_te = idx.load_mnist_family(name, allow_download=False)
    assert x_tr.shape == (64, 28, 28) and x_te.shape == (32, 28, 28)
    assert set(np.unique(y_tr)) == set(range(10))


def test_idx_bytes_round_trip():
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(idx.parse_idx(standins.idx_bytes(a)), a)


def test_omniglot_standin_is_read_by_the_real_loader(cache, monkeypatch):
    _offline(monkeypatch)
    standins.write_standins(cache, ["omniglot"])
    images = glyphs.load_omniglot(size=20)
    bg, ev = standins._size("omniglot", "tiny")
    assert images.shape == (bg + ev, 20, 20, 20)
    assert 0 <= images.min() and images.max() <= 1 and images.mean() > 0.01


def test_class_templates_make_the_classes_separable():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    x = standins.templated_images(rng, labels, (64,), 3).astype(float)
    means = np.stack([x[labels == k].mean(0) for k in range(3)])
    nearest = np.argmin(((x[:, None] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == labels) > 0.95


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset"):
        standins.write_standins(tmp_path, ["imagenet"])
    with pytest.raises(ValueError, match="size"):
        standins.write_standins(tmp_path, ["mnist"], size="huge")
