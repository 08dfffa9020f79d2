"""Figure helpers shared by every chapter.

* :func:`use_book_style` sets opaque, dark-mode-safe defaults (white figure and
  axes backgrounds, so a figure reads the same on a dark site theme);
* :data:`COLORS` gives every method one colour across the whole book;
* :func:`signed_heatmap` draws a matrix with symmetric colour limits;
* :func:`seed_band` draws a mean curve with a ±1 s.d. band over seeds;
* :func:`frames_player` turns precomputed frames into a kernel-free interactive
  figure (HTML + JavaScript, no CDN) that works on the static website.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# One colour per role, used in every chapter (Okabe–Ito palette: colour-blind safe).
COLORS = {
    "ours": "#0072B2",      # the paper's method / the trained model
    "reference": "#D55E00",  # the analytic or constructed reference (e.g. GD)
    "baseline": "#009E73",   # the standard baseline
    "random": "#999999",     # random / untrained
    "alt": "#CC79A7",        # a second variant of the method
    "extra": "#E69F00",      # a third variant
    "small": "#56B4E9",
    "big": "#000000",
}

BOOK_RC = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "figure.dpi": 100,
    "figure.figsize": (6.4, 3.6),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "font.size": 10,
    "animation.embed_limit": 40.0,  # MB, for frames_player
}


def use_book_style() -> None:
    """Apply the book's matplotlib defaults (opaque white backgrounds, light grid)."""
    mpl.rcParams.update(BOOK_RC)


def color(name: str) -> str:
    """Colour of a role in :data:`COLORS`; raises ``ValueError`` for an unknown role."""
    try:
        return COLORS[name]
    except KeyError:
        raise ValueError(f"unknown colour role {name!r}; known: {sorted(COLORS)}") from None


def signed_heatmap(ax, matrix, *, vmax: float | None = None, cmap: str = "RdBu_r", colorbar: bool = True,
                   labels: Sequence[str] | None = None):
    """Draw a 2-D array with colour limits symmetric about zero (white = 0).

    Args:
        ax: a matplotlib axes.
        matrix: array of shape ``(rows, cols)``.
        vmax: colour limit; defaults to ``max |matrix|`` (or 1 for an all-zero matrix).
        labels: optional tick labels used for both axes of a square matrix.

    Returns:
        The ``AxesImage``.
    """
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError(f"matrix must be 2-D, got shape {m.shape}")
    if vmax is None:
        vmax = float(np.max(np.abs(m))) if m.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
    elif vmax <= 0:
        raise ValueError(f"vmax must be positive, got {vmax}")
    im = ax.imshow(m, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.grid(False)
    if labels is not None:
        if len(labels) != m.shape[0] or m.shape[0] != m.shape[1]:
            raise ValueError("labels need a square matrix with one label per row")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return im


def seed_band(ax, x, ys, *, label: str | None = None, color: str | None = None, alpha: float = 0.2,
              log: bool = False):
    """Plot the mean over seeds of ``ys`` (shape ``(seeds, len(x))``) with a ±1 s.d. band.

    With ``log=True`` the mean and band are taken of ``log(ys)`` (geometric mean),
    which suits losses spanning decades.
    """
    x = np.asarray(x)
    ys = np.asarray(ys, dtype=np.float64)
    if ys.ndim == 1:
        ys = ys[None]
    if ys.ndim != 2 or ys.shape[1] != x.shape[0]:
        raise ValueError(f"ys must have shape (seeds, {x.shape[0]}), got {ys.shape}")
    if log:
        if np.any(ys <= 0):
            raise ValueError("log=True needs positive values")
        ly = np.log(ys)
        mean, lo, hi = np.exp(ly.mean(0)), np.exp(ly.mean(0) - ly.std(0)), np.exp(ly.mean(0) + ly.std(0))
        ax.set_yscale("log")
    else:
        mean, sd = ys.mean(0), ys.std(0)
        lo, hi = mean - sd, mean + sd
    (line,) = ax.plot(x, mean, label=label, color=color)
    if ys.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=alpha, linewidth=0)
    return line


def frames_player(fig, update: Callable[[int], object], n_frames: int, *, interval: int = 200,
                  default_mode: str = "once"):
    """Turn ``n_frames`` precomputed frames into a kernel-free interactive figure.

    ``update(i)`` redraws ``fig`` for frame ``i``. Every frame is rendered now
    and embedded as an image in a self-contained HTML player (play, pause, step
    and a frame slider) via matplotlib's ``Animation.to_jshtml``: it needs no
    kernel and no CDN, so it works on the static website.

    The figure is closed afterwards so the notebook does not also show it as a
    static image. Returns an ``IPython.display.HTML`` object; display it as the
    last expression of a cell.
    """
    from IPython.display import HTML
    from matplotlib.animation import FuncAnimation

    if not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    if default_mode not in ("once", "loop", "reflect"):
        raise ValueError(f"default_mode must be 'once', 'loop' or 'reflect', got {default_mode!r}")
    anim = FuncAnimation(fig, lambda i: update(i), frames=int(n_frames), interval=interval, blit=False)
    html = _offline_player(anim.to_jshtml(default_mode=default_mode))
    plt.close(fig)
    return HTML(html)


# matplotlib's player draws its buttons with Font Awesome 4 icons from a CDN; use text
# glyphs instead so the player needs nothing from the network.
_ICONS = {
    "fa fa-minus": "\u2212",
    "fa fa-fast-backward": "\u23ee\ufe0e",
    "fa fa-step-backward": "\u25c2",
    "fa fa-play fa-flip-horizontal": "\u25c0\ufe0e",
    "fa fa-pause": "\u23f8\ufe0e",
    "fa fa-play": "\u25b6\ufe0e",
    "fa fa-step-forward": "\u25b8",
    "fa fa-fast-forward": "\u23ed\ufe0e",
    "fa fa-plus": "+",
}


def _offline_player(html: str) -> str:
    """Remove the player's CDN stylesheet and replace its icons with text glyphs."""
    html = re.sub(r'<link rel="stylesheet"\s+href="https?://[^"]*font-awesome[^"]*">', "", html)
    for cls, glyph in _ICONS.items():
        html = html.replace(f'<i class="{cls}"></i>', f'<span aria-hidden="true">{glyph}</span>')
    return html
