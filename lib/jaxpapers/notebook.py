"""Notebook conveniences that work the same in Jupyter, Colab and the book build.

* :func:`glue` stores a value for the page's text (``{glue:text}`name:.3f```)
  through myst-nb when the book is built, and is a no-op (or a plain display)
  elsewhere, so chapters run unchanged in Colab where myst-nb is absent.
* :func:`explorer` shows a static default figure at once and redraws it when
  ipywidgets controls change (a live kernel is needed for the redraw; the static
  default is what the website and CI show).
"""

from __future__ import annotations

from typing import Callable

import matplotlib.pyplot as plt


def _plain(value):
    """NumPy / JAX scalars (0-d arrays included) as Python numbers, anything else unchanged.

    myst-nb formats ``{glue:text}`name:.3f``` from the value's ``text/plain`` repr, and
    NumPy 2 writes ``np.float64(0.5)`` there, which no format spec can parse.
    """
    if getattr(value, "shape", None) == () and hasattr(value, "item"):
        return value.item()
    return value


def glue(name: str, value, display: bool = False) -> None:
    """Make ``value`` referable as ``name`` from the page's markdown (myst-nb), when available.

    NumPy and JAX scalars are stored as Python numbers, so format specs such as
    ``:.3f`` work on them.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier-like string, got {name!r}")
    value = _plain(value)
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab / plain Jupyter: nothing to glue into
        if display:
            from IPython.display import display as _display

            _display(value)
        return
    _glue(name, value, display=display)


def explorer(draw: Callable[..., "plt.Figure"], **controls):
    """Display ``controls`` (ipywidgets) above the figure ``draw(**values)``.

    The default figure is drawn immediately as an ordinary image output, so it
    appears on the static site and in CI; in a live kernel each change of a
    control redraws it in place (via a display handle).

    Args:
        draw: ``draw(**values) -> Figure``; one keyword per control.
        **controls: ipywidgets value widgets (sliders, dropdowns, toggles ...).

    Returns:
        The ``ipywidgets.VBox`` holding the controls (already displayed).
    """
    import ipywidgets as widgets
    from IPython.display import display

    if not controls:
        raise ValueError("explorer needs at least one control")
    for k, w in controls.items():
        if not hasattr(w, "observe") or not hasattr(w, "value"):
            raise ValueError(f"control {k!r} is not an ipywidgets value widget")

    def values():
        return {k: w.value for k, w in controls.items()}

    box = widgets.VBox(list(controls.values()))
    display(box)
    fig = draw(**values())
    handle = display(fig, display_id=True)
    plt.close(fig)

    def redraw(_change=None):
        new = draw(**values())
        handle.update(new)
        plt.close(new)

    for w in controls.values():
        w.observe(redraw, names="value")
    return box
