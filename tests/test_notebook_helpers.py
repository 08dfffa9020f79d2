import matplotlib

matplotlib.use("Agg")
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pytest

from jaxpapers import notebook


def test_explorer_draws_default_and_redraws_on_change(monkeypatch):
    shown, calls = [], []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle() if display_id else None

    monkeypatch.setattr("IPython.display.display", fake_display)

    def draw(lr):
        calls.append(lr)
        return plt.figure()

    slider = widgets.FloatSlider(value=0.5, min=0, max=1)
    box = notebook.explorer(draw, lr=slider)
    assert calls == [0.5]  # the static default is drawn at once
    assert isinstance(box, widgets.VBox) and shown[0][0] == "display" and shown[1][0] == "display"
    slider.value = 0.8
    assert calls == [0.5, 0.8] and shown[-1][0] == "update"


def test_explorer_rejects_bad_controls():
    with pytest.raises(ValueError, match="at least one"):
        notebook.explorer(lambda: None)
    with pytest.raises(ValueError, match="not an ipywidgets"):
        notebook.explorer(lambda x: None, x=3)


def test_glue_names_must_be_identifiers():
    with pytest.raises(ValueError, match="identifier"):
        notebook.glue("not a name", 1.0)


def test_glue_without_myst_nb_is_a_noop(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name.startswith("myst_nb"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    notebook.glue("value", 1.0)  # must not raise (Colab has no myst-nb)


def test_glue_stores_numpy_and_jax_scalars_as_python_numbers(monkeypatch):
    import sys
    import types

    import jax.numpy as jnp

    stored = {}  # a stand-in for myst-nb (not installed in the unit-test-only environment)
    fake = types.SimpleNamespace(glue=lambda name, value, display=False: stored.__setitem__(name, value))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    notebook.glue("a", np.float64(0.25))
    notebook.glue("b", jnp.float32(1.5))
    notebook.glue("c", np.int64(3))
    notebook.glue("d", np.arange(3))  # arrays stay arrays
    assert type(stored["a"]) is float and stored["a"] == 0.25 and repr(stored["a"]) == "0.25"
    assert type(stored["b"]) is float and stored["b"] == 1.5
    assert type(stored["c"]) is int and stored["c"] == 3
    assert isinstance(stored["d"], np.ndarray)
