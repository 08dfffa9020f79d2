"""BLUR: a network of k-state neurons trained by a shared, meta-learned genome.

Sandler et al., "Meta-Learning Bidirectional Update Rules", ICML 2021
(arXiv:2104.04657). Re-derived in JAX from the paper's description (not ported):

* every neuron holds ``k`` states; every synapse holds ``k`` channels, with a
  separate **forward** matrix ``F_l: (n_in + 1, n_out, k)`` (last row = bias)
  and **backward** matrix ``G_l: (n_out, n_in, k)``;
* one learning step on a mini-batch (:func:`step`) is: zero the neurons, write
  the input into state 0, a forward pass (eq. 1), feedback of the label into
  the last layer (eq. 2), a backward pass (eq. 3), and a Hebbian update of every
  synapse, **summed over the batch** (eq. 4);
* the **genome** (:class:`Genome`) is the handful of numbers shared by every
  neuron and synapse: four ``k x k`` matrices and five scalars.

Equations (b = batch, i/j = pre/post neurons, a/c/o = states)::

    (1) forward   h_{bjc} <- f(kn h_{bjc} + un sum_{i,a} h~_{bia} U_{ac} F_{ijc})
    (2) feedback  last layer states <- [prediction, label, 0, ...]
    (3) backward  h_{bic} <- g(kn h_{bic} + un sum_{j,a} h_{bja} V_{ac} G_{jic})
    (4) Hebbian   F_{ijo} <- ks F_{ijo} + us sum_b sum_{a,c} h~_{bia} A_{ao} B_{oc} h_{bjc}
                  G_{jio} <- ks G_{jio} + us sum_b sum_{a,c} h_{bja} A_{ao} B_{oc} h_{bic}

``h~`` is the pre-synaptic layer with a bias neuron (all states 1) appended.
Shapes: ``x: (batch, n_in)``, ``y: (batch, n_out)``, layer states
``(batch, n, k)``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Genome(NamedTuple):
    """The genome: shared by every neuron and synapse of the network.

    ``fwd`` (U), ``bwd`` (V), ``pre`` (A), ``post`` (B): ``(k, k)`` state
    transforms of eqs. (1), (3), (4). Scalars: neuron keep/update (``kn``,
    ``un``), synapse keep/update (``ks``, ``us``) and the initial synapse scale.
    """

    fwd: jax.Array
    bwd: jax.Array
    pre: jax.Array
    post: jax.Array
    neuron_keep: jax.Array
    neuron_update: jax.Array
    synapse_keep: jax.Array
    synapse_update: jax.Array
    init_scale: jax.Array


class Spec(NamedTuple):
    """Static (non-learned) choices of the network; hashable, pass it as a static argument.

    hidden_act / out_act: forward activations (eq. 1) of hidden and last layers.
    backward_act: activation ``g`` of hidden neurons in the backward pass (eq. 3).
    backward_update: ``"additive"`` (eq. 3) or ``"multiplicative_second_state"``
        (state 0 kept, states >= 1 multiplied by the backward message).
    feedback: ``"label"`` (last layer <- [prediction, label, 0...]) or ``"error"``
        (state 1 <- state 1 * (label - prediction); used by the backprop genome).
    tied: backward synapses are the transposed forward ones (``G = F^T``).
    """

    hidden_act: str = "relu_tanh"
    out_act: str = "tanh"
    backward_act: str = "relu_tanh"
    backward_update: str = "additive"
    feedback: str = "label"
    tied: bool = False


def _sigmoid_and_slope(z):
    # state 0 -> sigma(z_0), state 1 -> sigma'(z_1), further states -> sigma(z)
    s = jax.nn.sigmoid(z)
    return jnp.concatenate([s[..., :1], s[..., 1:2] * (1 - s[..., 1:2]), s[..., 2:]], axis=-1)


ACTIVATIONS = {
    "relu_tanh": lambda z: jax.nn.relu(jnp.tanh(z)),
    "tanh": jnp.tanh,
    "identity": lambda z: z,
    "sigmoid_and_slope": _sigmoid_and_slope,
}

BACKPROP_SPEC = Spec(hidden_act="sigmoid_and_slope", out_act="sigmoid_and_slope", backward_act="identity",
                     backward_update="multiplicative_second_state", feedback="error", tied=True)


def _check_spec(spec: Spec) -> None:
    if not isinstance(spec, Spec):
        raise ValueError(f"spec must be a blur.Spec, got {type(spec).__name__}")
    for name in ("hidden_act", "out_act", "backward_act"):
        if getattr(spec, name) not in ACTIVATIONS:
            raise ValueError(f"spec.{name} must be one of {sorted(ACTIVATIONS)}, got {getattr(spec, name)!r}")
    if spec.backward_update not in ("additive", "multiplicative_second_state"):
        raise ValueError(f"spec.backward_update must be 'additive' or 'multiplicative_second_state', "
                         f"got {spec.backward_update!r}")
    if spec.feedback not in ("label", "error"):
        raise ValueError(f"spec.feedback must be 'label' or 'error', got {spec.feedback!r}")


def num_states(genome: Genome) -> int:
    """Number of neuron states ``k`` of a genome (validated)."""
    k = np.shape(genome.fwd)[-1]
    for name in ("fwd", "bwd", "pre", "post"):
        if np.shape(getattr(genome, name)) != (k, k):
            raise ValueError(f"genome.{name} must have shape ({k}, {k}), got {np.shape(getattr(genome, name))}")
    if k < 2:
        raise ValueError(f"BLUR needs at least k = 2 states (prediction and label), got k = {k}")
    return k


def _with_bias(h):
    return jnp.concatenate([h, jnp.ones(h.shape[:-2] + (1, h.shape[-1]), h.dtype)], axis=-2)


def forward_message(h_pre, fwd_synapse, U):
    """Eq. (1) before the activation: ``sum_{i,a} h~_{bia} U_{ac} F_{ijc}`` -> ``(b, n_out, k)``."""
    return jnp.einsum("bia,ac,ijc->bjc", _with_bias(h_pre), U, fwd_synapse)


def backward_message(h_post, bwd_synapse, V):
    """Eq. (3) before the activation: ``sum_{j,a} h_{bja} V_{ac} G_{jic}`` -> ``(b, n_in, k)``."""
    return jnp.einsum("bja,ac,jic->bic", h_post, V, bwd_synapse)


def hebbian_update(h_pre, h_post, A, B):
    """Eq. (4): batch-summed Hebbian updates ``(dF: (n_in+1, n_out, k), dG: (n_out, n_in, k))``."""
    dF = jnp.einsum("bia,ao,oc,bjc->ijo", _with_bias(h_pre), A, B, h_post)
    dG = jnp.einsum("bja,ao,oc,bic->jio", h_post, A, B, h_pre)
    return dF, dG


def _check_weights(weights, k):
    if not isinstance(weights, (list, tuple)) or not weights:
        raise ValueError("weights must be a non-empty list of (forward, backward) synapse pairs")
    for l, pair in enumerate(weights):
        if len(pair) != 2:
            raise ValueError(f"weights[{l}] must be a (forward, backward) pair")
        F, G = pair
        if np.ndim(F) != 3 or np.shape(F)[-1] != k or np.shape(G) != (np.shape(F)[1], np.shape(F)[0] - 1, k):
            raise ValueError(f"weights[{l}] must be F: (n_in+1, n_out, {k}) and G: (n_out, n_in, {k}); "
                             f"got {np.shape(F)} and {np.shape(G)}")
        if l and np.shape(F)[0] - 1 != np.shape(weights[l - 1][0])[1]:
            raise ValueError(f"weights[{l}] has {np.shape(F)[0] - 1} inputs but layer {l} has "
                             f"{np.shape(weights[l - 1][0])[1]} neurons")


def forward(genome: Genome, weights, x, spec: Spec = Spec()):
    """Zero the neurons, write ``x: (b, n_0)`` into state 0 and run the forward pass (eq. 1).

    Returns the list of layer states ``[(b, n_l, k) for l = 0..L]``.
    """
    _check_spec(spec)
    k = num_states(genome)
    _check_weights(weights, k)
    if np.ndim(x) != 2 or np.shape(x)[1] != np.shape(weights[0][0])[0] - 1:
        raise ValueError(f"x must have shape (batch, {np.shape(weights[0][0])[0] - 1}), got {np.shape(x)}")
    h = jnp.zeros(x.shape + (k,), x.dtype).at[..., 0].set(x)
    states = [h]
    for l, (F, _) in enumerate(weights):
        act = ACTIVATIONS[spec.out_act if l == len(weights) - 1 else spec.hidden_act]
        post = jnp.zeros((x.shape[0], F.shape[1], k), x.dtype)
        post = act(genome.neuron_keep * post + genome.neuron_update * forward_message(states[-1], F, genome.fwd))
        states.append(post)
    return states


def predict(genome: Genome, weights, x, spec: Spec = Spec()):
    """Network output: state 0 of the last layer, ``(b, n_out)``."""
    return forward(genome, weights, x, spec)[-1][..., 0]


def feedback(h_out, y, spec: Spec = Spec()):
    """Eq. (2): put the label into the last layer (``h_out: (b, n_out, k)``, ``y: (b, n_out)``)."""
    if spec.feedback == "label":
        return jnp.concatenate([h_out[..., :1], y[..., None], jnp.zeros_like(h_out[..., 2:])], axis=-1)
    err = (y - h_out[..., 0])[..., None]
    return jnp.concatenate([h_out[..., :1], h_out[..., 1:2] * err, h_out[..., 2:]], axis=-1)


# Compiled once per network shape and spec, also when called on its own (a demonstration, a check):
# eagerly, each of its small operations would be compiled and dispatched separately.
@partial(jax.jit, static_argnames="spec")
def step(genome: Genome, weights, x, y, spec: Spec = Spec()):
    """One BLUR learning step on a mini-batch ``(x: (b, n_0), y: (b, n_L))``: eqs. (1)-(4).

    Returns ``(new_weights, trace)``; ``trace`` holds the layer states after the
    forward pass, after feedback + backward pass, and the Hebbian updates
    (unused parts cost nothing under ``jit``).
    """
    fwd_states = forward(genome, weights, x, spec)
    if np.shape(y) != np.shape(fwd_states[-1])[:2]:
        raise ValueError(f"y must have shape {np.shape(fwd_states[-1])[:2]}, got {np.shape(y)}")
    states = list(fwd_states)
    states[-1] = feedback(states[-1], y, spec)
    back = ACTIVATIONS[spec.backward_act]
    for l in range(len(weights) - 1, 0, -1):  # the input layer (l = 0) is not updated
        m = backward_message(states[l + 1], weights[l][1], genome.bwd)
        if spec.backward_update == "additive":
            new = genome.neuron_keep * states[l] + genome.neuron_update * m
        else:
            new = genome.neuron_keep * jnp.concatenate([states[l][..., :1], states[l][..., 1:] * m[..., 1:]], -1)
        states[l] = back(new)
    new_weights, updates = [], []
    for l, (F, G) in enumerate(weights):
        dF, dG = hebbian_update(states[l], states[l + 1], genome.pre, genome.post)
        F = genome.synapse_keep * F + genome.synapse_update * dF
        G = F[:-1].transpose(1, 0, 2) if spec.tied else genome.synapse_keep * G + genome.synapse_update * dG
        new_weights.append((F, G))
        updates.append((dF, dG))
    return new_weights, {"forward": fwd_states, "backward": states, "updates": updates}


def init_weights(key, sizes, k: int, scale=1.0, *, tied: bool = False, same_states: bool = False):
    """Random synapses ``U(-1, 1) * scale / sqrt(fan_in)`` for layer sizes ``sizes = (n_0, ..., n_L)``.

    Unlike the reference code (``U(-1, 1) * scale``) the init is fan-in scaled, so
    one genome's ``init_scale`` suits networks of different widths. ``tied``:
    ``G = F^T``; ``same_states``: all ``k`` synapse channels equal.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list at least two positive layer sizes, got {sizes}")
    if int(k) < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    weights = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        kf, kg = jax.random.split(jax.random.fold_in(key, l))
        ch = 1 if same_states else k
        F = jax.random.uniform(kf, (n_in + 1, n_out, ch), minval=-1.0, maxval=1.0) * scale / np.sqrt(n_in)
        G = jax.random.uniform(kg, (n_out, n_in, ch), minval=-1.0, maxval=1.0) * scale / np.sqrt(n_out)
        F, G = jnp.broadcast_to(F, (n_in + 1, n_out, k)), jnp.broadcast_to(G, (n_out, n_in, k))
        weights.append((F, F[:-1].transpose(1, 0, 2) if tied else G))
    return weights


def weights_from_mlp(params, k: int = 2):
    """Tied BLUR synapses equal in every channel from MLP ``params = [(W: (n_in, n_out), b: (n_out,)), ...]``."""
    out = []
    for W, b in params:
        F = jnp.concatenate([W, b[None]], 0)[..., None] * jnp.ones(k, W.dtype)
        out.append((F, F[:-1].transpose(1, 0, 2)))
    return out


def mlp_from_weights(weights):
    """Inverse of :func:`weights_from_mlp`: channel 0 of the forward synapses as ``[(W, b), ...]``."""
    return [(F[:-1, :, 0], F[-1, :, 0]) for F, _ in weights]


def backprop_genome(learning_rate=0.1, k: int = 2) -> Genome:
    """A hand-derived genome whose Hebbian update is exactly ``-learning_rate * dL/dW``.

    Use with :data:`BACKPROP_SPEC` (sigmoid network, states = (sigma(z), sigma'(z)),
    multiplicative second state, feedback ``(y - yhat)``, tied synapses) and
    ``L = 1/2 sum_b ||yhat_b - y_b||^2`` (summed over the batch):

    * ``U = [[1, 1], [0, 0]]``: state 0 of the pre-layer feeds both states;
    * ``V = [[0, 0], [0, 1]]``: state 1 (the error ``delta``) flows back and
      multiplies ``sigma'(z)``, giving ``delta_i = sigma'(z_i) sum_j W_ij delta_j``;
    * ``A = [[1, 1], [0, 0]]``, ``B = [[0, 1], [0, 1]]``: every channel gets
      ``h_i delta_j`` (pre state 0 times post state 1).
    """
    if int(k) < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    e = lambda rows: jnp.zeros((k, k), jnp.float32).at[tuple(zip(*rows))].set(1.0)
    return Genome(
        fwd=e([(0, c) for c in range(k)]), bwd=e([(1, 1)]), pre=e([(0, c) for c in range(k)]),
        post=e([(o, 1) for o in range(k)]), neuron_keep=jnp.float32(1.0), neuron_update=jnp.float32(1.0),
        synapse_keep=jnp.float32(1.0), synapse_update=jnp.float32(learning_rate), init_scale=jnp.float32(1.0))


def inner_loop(genome: Genome, weights, xs, ys, spec: Spec = Spec(), *, step_loss=None, truncation=None):
    """``T`` BLUR steps on the batches ``xs: (T, b, n_0)``, ``ys: (T, b, n_L)`` in one ``lax.scan``.

    ``step_loss(weights) -> scalar`` (optional) is evaluated after every step, e.g.
    a query-set loss, so a meta-objective can average it over the unroll;
    ``truncation`` is passed to :func:`jaxpapers.unroll.unroll`.

    Returns ``(final_weights, losses: (T,))`` (zeros without ``step_loss``).
    """
    from jaxpapers.unroll import unroll

    if np.ndim(xs) != 3 or np.ndim(ys) != 3 or np.shape(xs)[:2] != np.shape(ys)[:2]:
        raise ValueError(f"xs and ys must be (T, batch, n) with the same T and batch; got {np.shape(xs)} "
                         f"and {np.shape(ys)}")

    def one(w, batch):
        w, _ = step(genome, w, batch[0], batch[1], spec)
        return w, (step_loss(w) if step_loss is not None else jnp.zeros((), xs.dtype))

    return unroll(one, weights, (xs, ys), truncation=truncation)


# ---------------------------------------------------------------------------- genome <-> vector
def genome_size(k: int) -> int:
    """Length of the flat genome vector: ``4 k^2 + 5``."""
    return 4 * int(k) ** 2 + 5


def genome_slices(k: int) -> dict:
    """Where each :class:`Genome` field lives in the flat vector: ``{name: slice}``.

    Order: ``fwd, bwd, pre, post`` (``k^2`` entries each, row-major), then the
    scalars ``neuron_keep, neuron_update, synapse_keep, synapse_update, init_scale``.
    """
    k = int(k)
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    out = {name: slice(i * k * k, (i + 1) * k * k) for i, name in enumerate(Genome._fields[:4])}
    out.update({name: slice(4 * k * k + i, 4 * k * k + i + 1) for i, name in enumerate(Genome._fields[4:])})
    return out


def genome_from_vector(theta, k: int, *, stabilised: bool = True, frozen: tuple = ()) -> Genome:
    """Decode a flat vector ``theta: (..., 4k^2 + 5)`` into a :class:`Genome`.

    ``stabilised=True`` (used by CMA-ES and stabilised gradient meta-training):
    keeps are ``sigmoid(theta + 4)`` (in (0, 1), ~0.98 at 0), the synapse update
    is ``0.01 * theta`` and the init scale ``exp(theta)``. ``stabilised=False``:
    the keeps are ``1 + theta`` (unbounded, the naive parametrisation).

    ``frozen``: names of :class:`Genome` fields whose entries of ``theta`` pass
    through ``stop_gradient`` (same values, zero meta-gradient), e.g.
    ``("neuron_update",)``: ``nu_n`` only rescales ``U`` and ``V`` (eqs. 1, 3), so
    freezing it removes a redundant direction without changing what the genome
    can express.
    """
    k = int(k)
    theta = jnp.asarray(theta)
    if theta.shape[-1:] != (genome_size(k),):
        raise ValueError(f"theta must end in ({genome_size(k)},) for k = {k}, got {theta.shape}")
    if isinstance(frozen, str) or any(name not in Genome._fields for name in frozen):
        raise ValueError(f"frozen must be a tuple of Genome field names {Genome._fields}, got {frozen!r}")
    if frozen:
        mask = np.zeros(genome_size(k), bool)
        for name in frozen:
            mask[genome_slices(k)[name]] = True
        theta = jnp.where(mask, jax.lax.stop_gradient(theta), theta)
    mats = theta[..., : 4 * k * k].reshape(theta.shape[:-1] + (4, k, k))
    kn, un, ks, us, s = (theta[..., 4 * k * k + i] for i in range(5))
    keep = (lambda t: jax.nn.sigmoid(t + 4.0)) if stabilised else (lambda t: 1.0 + t)
    return Genome(mats[..., 0, :, :], mats[..., 1, :, :], mats[..., 2, :, :], mats[..., 3, :, :],
                  keep(kn), 1.0 + un, keep(ks), 0.01 * us, jnp.exp(s))


def random_genome_vector(key, k: int, std: float = 1.0):
    """A random genome vector: transforms ~ N(0, std^2), scalars at their neutral values
    (keeps ~0.98, neuron update 1, synapse update 0.01 * N(0, 1), init scale 1)."""
    k = int(k)
    if std <= 0:
        raise ValueError(f"std must be positive, got {std}")
    k1, k2 = jax.random.split(key)
    mats = std * jax.random.normal(k1, (4 * k * k,))
    us = jax.random.normal(k2, ())
    return jnp.concatenate([mats, jnp.array([0.0, 0.0, 0.0]), us[None], jnp.zeros(1)]).astype(jnp.float32)
