"""jaxpapers: the shared JAX library behind the *Executable Papers* book.

One module per concept (``config``, ``seeding``, ``train``, ``viz``, ``check``,
``attention``, ``data`` ...). Modules are imported on demand, so
``import jaxpapers`` is cheap::

    from jaxpapers import config, train
"""

__version__ = "0.1.0"
