"""Tests for jaxpapers.data.glyphs against naive NumPy loop references."""

import math

import jax
import numpy as np
import pytest

from jaxpapers.data import glyphs


def naive_render(strokes, size, width, points_per_stroke):
    """Loop over pixels and segments: ink = exp(-min_dist² / 2 width²)."""
    strokes = np.asarray(strokes, np.float64)
    t = np.linspace(0, 1, points_per_stroke)
    segs = []
    for p0, p1, p2 in strokes:
        pts = [(1 - s) ** 2 * p0 + 2 * s * (1 - s) * p1 + s**2 * p2 for s in t]
        segs += list(zip(pts[:-1], pts[1:]))
    img = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            g = np.array([(c + 0.5) / size * 2 - 1, -((r + 0.5) / size * 2 - 1)])
            best = np.inf
            for a, b in segs:
                ab = b - a
                u = np.clip(np.dot(g - a, ab) / max(np.dot(ab, ab), 1e-12), 0, 1)
                best = min(best, np.sum((g - a - u * ab) ** 2))
            img[r, c] = np.exp(-best / (2 * width**2))
    return img


def test_render_matches_naive_loop():
    strokes = glyphs.class_strokes(jax.random.PRNGKey(3), 2, 2)
    got = glyphs.render(strokes, 12, width=0.15, points_per_stroke=5, chunk=1)
    for i in range(2):
        np.testing.assert_allclose(got[i], naive_render(strokes[i], 12, 0.15, 5), atol=1e-5)


def test_render_chunking_does_not_change_images():
    strokes = glyphs.class_strokes(jax.random.PRNGKey(0), 7, 3)
    a = glyphs.render(strokes, 10, chunk=3)   # 7 is not a multiple of 3: padding path
    b = glyphs.render(strokes, 10, chunk=100)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (7, 10, 10) and a.dtype == np.float32


def test_bezier_endpoints_and_midpoint():
    ctrl = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 0.0]], np.float32)
    pts = np.asarray(glyphs.bezier_points(ctrl, 3))
    np.testing.assert_allclose(pts[0], ctrl[0])
    np.testing.assert_allclose(pts[-1], ctrl[2])
    np.testing.assert_allclose(pts[1], 0.25 * ctrl[0] + 0.5 * ctrl[1] + 0.25 * ctrl[2], atol=1e-6)


def test_jitter_without_noise_is_identity():
    strokes = glyphs.class_strokes(jax.random.PRNGKey(1), 3, 2)
    out = glyphs.jitter(jax.random.PRNGKey(2), strokes, 4, noise=0.0, max_rotation=0.0, scale=(1.0, 1.0),
                        max_shift=0.0)
    assert out.shape == (3, 4, 2, 3, 2)
    np.testing.assert_allclose(out, np.broadcast_to(np.asarray(strokes)[:, None], out.shape), atol=1e-6)


def test_jitter_rotation_preserves_distances():
    strokes = glyphs.class_strokes(jax.random.PRNGKey(1), 2, 2)
    out = np.asarray(glyphs.jitter(jax.random.PRNGKey(5), strokes, 3, noise=0.0, max_rotation=math.pi,
                                   scale=(1.0, 1.0), max_shift=0.0))
    d_in = np.linalg.norm(np.asarray(strokes)[:, None, :, 0] - np.asarray(strokes)[:, None, :, 2], axis=-1)
    d_out = np.linalg.norm(out[..., 0, :] - out[..., 2, :], axis=-1)
    np.testing.assert_allclose(d_out, np.broadcast_to(d_in, d_out.shape), atol=1e-5)


def test_make_glyphs_fixed_seed_and_range():
    a = glyphs.make_glyphs(0, 4, 3, 14)
    b = glyphs.make_glyphs(0, 4, 3, 14)
    c = glyphs.make_glyphs(1, 4, 3, 14)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.shape == (4, 3, 14, 14) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1 and a.max() > 0.5
    # samples of one class are closer to each other than to other classes (on average)
    big = glyphs.make_glyphs(0, 20, 4, 14).reshape(20, 4, -1)
    within = np.mean([np.linalg.norm(big[i, 0] - big[i, 1]) for i in range(20)])
    between = np.mean([np.linalg.norm(big[i, 0] - big[(i + 1) % 20, 1]) for i in range(20)])
    assert within < between


@pytest.mark.parametrize("call", [
    lambda: glyphs.class_strokes(jax.random.PRNGKey(0), 0),
    lambda: glyphs.jitter(jax.random.PRNGKey(0), np.zeros((2, 3, 2)), 2),
    lambda: glyphs.jitter(jax.random.PRNGKey(0), np.zeros((2, 1, 3, 2)), 2, scale=(1.2, 1.0)),
    lambda: glyphs.bezier_points(np.zeros((3, 2)), 1),
    lambda: glyphs.render(np.zeros((2, 1, 3, 2)), 0),
    lambda: glyphs.render(np.zeros((2, 1, 2, 2)), 8),
    lambda: glyphs.render(np.zeros((2, 1, 3, 2)), 8, width=-1.0),
    lambda: glyphs.make_glyphs(-1, 2, 2),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def _write_fake_omniglot(path, n_alphabets=2, n_chars=2, n_drawings=3, side=10):
    import io
    import zipfile

    from PIL import Image

    with zipfile.ZipFile(path, "w") as zf:
        for a in range(n_alphabets):
            for c in range(n_chars):
                for d in range(n_drawings):
                    arr = np.full((side, side), 255, np.uint8)
                    arr[a + c + d] = 0   # one black row whose position names the drawing
                    buf = io.BytesIO()
                    Image.fromarray(arr).save(buf, format="PNG")
                    zf.writestr(f"images_background/Alpha{a}/character{c:02d}/{d:02d}.png", buf.getvalue())


def test_parse_omniglot_zip(tmp_path):
    path = tmp_path / "fake.zip"
    _write_fake_omniglot(path)
    out = glyphs.parse_omniglot_zip(path, size=10)
    assert out.shape == (4, 3, 10, 10) and out.dtype == np.float32
    for cls, (a, c) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        for d in range(3):
            ref = np.zeros((10, 10), np.float32)
            ref[a + c + d] = 1.0       # ink = 1 - grey / 255
            np.testing.assert_allclose(out[cls, d], ref, atol=1e-6)
    assert glyphs.parse_omniglot_zip(path, size=5).shape == (4, 3, 5, 5)


def test_load_omniglot_uses_cache_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXPAPERS_CACHE", str(tmp_path))
    _write_fake_omniglot(tmp_path / "images_background.zip")
    _write_fake_omniglot(tmp_path / "images_evaluation.zip", n_alphabets=1)
    urls = ("https://invalid.example/images_background.zip", "https://invalid.example/images_evaluation.zip")
    out = glyphs.load_omniglot(size=8, urls=urls)   # zips already cached: no download
    assert out.shape == (6, 3, 8, 8)
    assert (tmp_path / "omniglot8.npz").exists()
    (tmp_path / "images_background.zip").unlink()
    np.testing.assert_array_equal(glyphs.load_omniglot(size=8, urls=urls), out)  # from the .npz


def test_parse_omniglot_zip_rejects_empty(tmp_path):
    import zipfile

    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "nothing")
    with pytest.raises(ValueError):
        glyphs.parse_omniglot_zip(path)
