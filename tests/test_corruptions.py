import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import corruptions as C

KEY = jax.random.PRNGKey(0)


def images(shape, seed=0):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def naive_blur(x, sigma, radius):
    t = np.arange(-radius, radius + 1)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    k /= k.sum()
    H, W = x.shape
    xp = np.pad(x, radius, mode="edge")
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(H):
        for j in range(W):
            out[i, j] = sum(k[a] * k[b] * xp[i + a, j + b] for a in range(2 * radius + 1) for b in range(2 * radius + 1))
    return out


@pytest.mark.parametrize("hw", [8, 32])
def test_blur_matches_naive(hw):
    x = images((2, hw, hw))
    out = np.asarray(C.gaussian_blur(x, 1.3, radius=3))
    assert out.shape == x.shape and out.dtype == np.float32
    for n in range(2):
        np.testing.assert_allclose(out[n], naive_blur(x[n], 1.3, 3), atol=1e-5)


def test_pixelate_block_means_and_naive_area():
    x = images((3, 8, 8))
    out = np.asarray(C.pixelate(x, 4))
    ref = x.reshape(3, 4, 2, 4, 2).mean((2, 4)).repeat(2, 1).repeat(2, 2)
    np.testing.assert_allclose(out, ref, atol=1e-6)
    # non-dividing size: area weights against a naive overlap computation
    A = C.area_matrix(8, 3)
    for i in range(3):
        lo, hi = i * 8 / 3, (i + 1) * 8 / 3
        w = np.array([max(0.0, min(hi, j + 1) - max(lo, j)) for j in range(8)])
        np.testing.assert_allclose(A[i], w / w.sum(), atol=1e-6)
    assert C.pixelate(images((5, 32, 32)), 12).shape == (5, 32, 32)
    np.testing.assert_allclose(np.asarray(C.pixelate(x, 8)), x, atol=1e-6)  # identity at full size


def test_shift_integer_and_fractional():
    x = images((2, 8, 8))
    out = np.asarray(C.shift(x, 2.0))
    ref = np.zeros_like(x)
    ref[..., 2:] = x[..., :-2]
    np.testing.assert_allclose(out, ref, atol=1e-6)
    down = np.asarray(C.shift(x, 0.0, 1.0))
    np.testing.assert_allclose(down[:, 1:], x[:, :-1], atol=1e-6)
    half = np.asarray(C.shift(x, 0.5))
    ref1 = np.zeros_like(x)
    ref1[..., 1:] = x[..., :-1]
    np.testing.assert_allclose(half, 0.5 * (x + ref1), atol=1e-6)


def test_rotate():
    x = images((2, 8, 8))
    np.testing.assert_allclose(np.asarray(C.rotate(x, 0.0)), x, atol=1e-5)
    # counter-clockwise by 90 degrees == np.rot90 on the (rows, cols) plane
    np.testing.assert_allclose(np.asarray(C.rotate(x, 90.0)), np.rot90(x, 1, axes=(1, 2)), atol=1e-4)
    np.testing.assert_allclose(np.asarray(C.rotate(x, 30.0))[0], naive_rotate(x[0], 30.0), atol=1e-5)


def naive_rotate(im, degrees):
    H, W = im.shape
    th = np.deg2rad(degrees)
    cy, cx = (H - 1) / 2, (W - 1) / 2
    pix = lambda r, c: im[r, c] if 0 <= r < H and 0 <= c < W else 0.0
    out = np.zeros_like(im)
    for r in range(H):
        for c in range(W):
            # counter-clockwise on screen: rotate the *source* clockwise
            sc = np.cos(th) * (c - cx) - np.sin(th) * (r - cy) + cx
            sr = np.sin(th) * (c - cx) + np.cos(th) * (r - cy) + cy
            r0, c0 = int(np.floor(sr)), int(np.floor(sc))
            fr, fc = sr - r0, sc - c0
            out[r, c] = ((1 - fr) * (1 - fc) * pix(r0, c0) + (1 - fr) * fc * pix(r0, c0 + 1)
                         + fr * (1 - fc) * pix(r0 + 1, c0) + fr * fc * pix(r0 + 1, c0 + 1))
    return out


def test_contrast_brightness():
    x = 0.4 + 0.2 * images((4, 8, 8))  # no clipping
    out = np.asarray(C.contrast(x, 0.5))
    np.testing.assert_allclose(out.mean((1, 2)), x.mean((1, 2)), atol=1e-6)
    np.testing.assert_allclose(out.std((1, 2)), 0.5 * x.std((1, 2)), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(C.brightness(x, 0.3)), np.clip(x + 0.3, 0, 1), atol=1e-6)


def test_noise_statistics_and_determinism():
    x = np.full((50, 32, 32), 0.5, np.float32)
    out = np.asarray(C.gaussian_noise(KEY, x, 0.1))
    assert abs(out.mean() - 0.5) < 2e-3 and abs(out.std() - 0.1) < 2e-3
    np.testing.assert_array_equal(out, np.asarray(C.gaussian_noise(KEY, x, 0.1)))
    sp = np.asarray(C.salt_and_pepper(KEY, x, 0.1))
    changed = sp != 0.5
    assert abs(changed.mean() - 0.1) < 0.01 and set(np.unique(sp[changed])) <= {0.0, 1.0}


def test_jit_and_vmap_over_strengths_and_keys():
    x = images((3, 8, 8))
    sig = jnp.array([0.5, 1.0, 1.5])
    vb = jax.jit(jax.vmap(lambda s: C.gaussian_blur(x, s, radius=3)))(sig)
    for i, s in enumerate([0.5, 1.0, 1.5]):
        np.testing.assert_allclose(np.asarray(vb[i]), np.asarray(C.gaussian_blur(x, s, radius=3)), atol=1e-6)
    vr = jax.vmap(lambda d: C.rotate(x, d))(jnp.array([0.0, 90.0]))
    np.testing.assert_allclose(np.asarray(vr[1]), np.rot90(x, 1, axes=(1, 2)), atol=1e-4)
    keys = jax.random.split(KEY, 4)
    vn = jax.vmap(lambda k: C.gaussian_noise(k, x, 0.2))(keys)
    assert vn.shape == (4, 3, 8, 8) and not np.allclose(vn[0], vn[1])


@pytest.mark.parametrize("name", C.NAMES)
@pytest.mark.parametrize("hw", [8, 32])
def test_corrupt_all_names_sizes_and_monotone_severity(name, hw):
    x = images((4, 3, hw, hw), seed=1) * 0.6 + 0.2  # channels before H, W
    dists = []
    for s in (1, 5):
        out = np.asarray(C.corrupt(name, KEY, x, s))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        dists.append(np.abs(out - x).mean())
    assert dists[0] > 0 and dists[-1] >= dists[0]  # strongest differs more than the weakest


def test_severity_sweep_equals_corrupt():
    x = images((3, 8, 8))
    for name in ("salt_and_pepper", "pixelate", "gaussian_blur"):
        sw = np.asarray(C.severity_sweep(name, KEY, x))
        assert sw.shape == (5, 3, 8, 8)
        for s in range(1, 6):
            np.testing.assert_allclose(sw[s - 1], np.asarray(C.corrupt(name, KEY, x, s)), atol=1e-6)
    with pytest.raises(ValueError, match="unknown corruption"):
        C.severity_sweep("fog", KEY, x)


def test_severity_value_scales_with_width():
    assert C.severity_value("shift", 2, 8) == pytest.approx(1.0)
    assert C.severity_value("shift", 2, 32) == pytest.approx(4.0)
    assert C.severity_value("pixelate", 3, 8) == 4


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: C.corrupt("fog", KEY, images((2, 8, 8)), 1), "unknown corruption"),
        (lambda: C.corrupt("contrast", KEY, images((2, 8, 8)), 6), "severity"),
        (lambda: C.contrast(np.ones(8), 0.5), "images"),
        (lambda: C.pixelate(images((2, 8, 8)), 9), "size"),
        (lambda: C.gaussian_kernel(1.0, 0), "radius"),
        (lambda: C.area_matrix(8, 0), "n_out"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
