import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import re

import numpy as np
import pytest

from jaxpapers import viz


def test_book_style_is_opaque():
    viz.use_book_style()
    for key in ("figure.facecolor", "axes.facecolor", "savefig.facecolor"):
        assert matplotlib.colors.to_rgba(matplotlib.rcParams[key])[3] == 1.0
    assert matplotlib.rcParams["savefig.transparent"] is False


def test_color_roles():
    assert viz.color("ours") == viz.COLORS["ours"]
    assert len(set(viz.COLORS.values())) == len(viz.COLORS)  # one colour per role
    with pytest.raises(ValueError, match="unknown colour role"):
        viz.color("nope")


def test_signed_heatmap_is_symmetric_about_zero():
    fig, ax = plt.subplots()
    im = viz.signed_heatmap(ax, np.array([[1.0, -3.0], [0.5, 2.0]]), colorbar=False)
    assert im.get_clim() == (-3.0, 3.0)
    im = viz.signed_heatmap(ax, np.zeros((2, 2)), colorbar=False)
    assert im.get_clim() == (-1.0, 1.0)
    with pytest.raises(ValueError, match="2-D"):
        viz.signed_heatmap(ax, np.zeros(3))
    with pytest.raises(ValueError, match="vmax"):
        viz.signed_heatmap(ax, np.ones((2, 2)), vmax=-1)
    with pytest.raises(ValueError, match="labels"):
        viz.signed_heatmap(ax, np.ones((2, 2)), labels=["a"])
    plt.close(fig)


def test_seed_band_plots_the_mean():
    fig, ax = plt.subplots()
    x = np.arange(4)
    ys = np.array([[1.0, 2, 3, 4], [3.0, 4, 5, 6]])
    line = viz.seed_band(ax, x, ys, label="m")
    np.testing.assert_allclose(line.get_ydata(), [2, 3, 4, 5])
    assert len(ax.collections) == 1  # the band
    line = viz.seed_band(ax, x, np.array([[1.0, 10, 100, 1000], [1.0, 10, 100, 1000]]), log=True)
    np.testing.assert_allclose(line.get_ydata(), [1, 10, 100, 1000])
    with pytest.raises(ValueError, match="ys must have shape"):
        viz.seed_band(ax, x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="positive"):
        viz.seed_band(ax, x, -ys, log=True)
    plt.close(fig)


def test_frames_player_embeds_every_frame_without_cdn():
    fig, ax = plt.subplots(figsize=(2, 2))
    (line,) = ax.plot([0, 1], [0, 0])
    seen = []

    def update(i):
        seen.append(i)
        line.set_ydata([0, i])

    html = viz.frames_player(fig, update, 3).data
    assert sorted(set(seen)) == [0, 1, 2]
    assert html.count("data:image/png;base64") >= 3 or html.count("frames[") >= 3
    assert "<script" in html
    assert not re.search(r"(href|src)=\"https?://", html), "the player must not load anything from the network"
    assert 'class="fa ' not in html  # icons replaced by text glyphs
    assert not plt.fignum_exists(fig.number)  # closed: no duplicate static image
    with pytest.raises(ValueError):
        viz.frames_player(plt.figure(), update, 0)
    with pytest.raises(ValueError, match="default_mode"):
        viz.frames_player(plt.figure(), update, 2, default_mode="bounce")
