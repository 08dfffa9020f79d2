"""Synthetic in-context learning tasks (vmapped samplers).

* :mod:`jaxpapers.tasks.regression`: linear regression tasks in the token
  layout of von Oswald et al. (2023), out-of-distribution families, sine
  regression and the alternating ("standard") token layout.
"""

from jaxpapers.tasks.regression import (  # noqa: F401
    OOD_FAMILIES,
    sample_linear,
    sample_ood,
    sample_sine,
    to_alternating,
)
