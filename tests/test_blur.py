import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpapers import blur


def _mlp_params(key, sizes):
    ks = jax.random.split(key, 2 * len(sizes))
    return [(jax.random.normal(ks[2 * i], (a, b)) / np.sqrt(a), 0.1 * jax.random.normal(ks[2 * i + 1], (b,)))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def _mlp(params, x):
    for W, b in params:
        x = jax.nn.sigmoid(x @ W + b)
    return x


def _data(key, n, d, c):
    kx, ky = jax.random.split(key)
    return jax.random.uniform(kx, (n, d)), jax.nn.one_hot(jax.random.randint(ky, (n,), 0, c), c)


@pytest.mark.parametrize("sizes", [(10, 15), (64, 32, 16, 10), (5, 7, 3)])
def test_backprop_genome_update_equals_minus_eta_grad(sizes):
    params = _mlp_params(jax.random.PRNGKey(0), sizes)
    x, y = _data(jax.random.PRNGKey(1), 32, sizes[0], sizes[-1])
    grads = jax.grad(lambda p: 0.5 * jnp.sum((_mlp(p, x) - y) ** 2))(params)
    eta = 0.1
    new, trace = blur.step(blur.backprop_genome(eta), blur.weights_from_mlp(params), x, y, blur.BACKPROP_SPEC)
    for (dF, _), (gW, gb) in zip(trace["updates"], grads):
        ref = -jnp.concatenate([gW, gb[None]], 0)
        for ch in range(2):
            np.testing.assert_allclose(eta * dF[..., ch], eta * ref, rtol=1e-5, atol=1e-6 * float(jnp.abs(ref).max()))
    for (W, b), (gW, gb), (Wn, bn) in zip(params, grads, blur.mlp_from_weights(new)):
        np.testing.assert_allclose(Wn, W - eta * gW, atol=1e-6)
        np.testing.assert_allclose(bn, b - eta * gb, atol=1e-6)


def test_backprop_genome_tracks_sgd_for_20_steps():
    sizes = (20, 12, 4)
    params = _mlp_params(jax.random.PRNGKey(2), sizes)
    w, g, eta = blur.weights_from_mlp(params), blur.backprop_genome(0.05), 0.05
    for t in range(20):
        x, y = _data(jax.random.PRNGKey(10 + t), 16, sizes[0], sizes[-1])
        grads = jax.grad(lambda p: 0.5 * jnp.sum((_mlp(p, x) - y) ** 2))(params)
        params = [(W - eta * gW, b - eta * gb) for (W, b), (gW, gb) in zip(params, grads)]
        w, _ = blur.step(g, w, x, y, blur.BACKPROP_SPEC)
    for (W, b), (Wb, bb) in zip(params, blur.mlp_from_weights(w)):
        np.testing.assert_allclose(Wb, W, atol=1e-5)
        np.testing.assert_allclose(bb, b, atol=1e-5)


def test_forward_matches_mlp_for_backprop_spec():
    params = _mlp_params(jax.random.PRNGKey(3), (6, 5, 3))
    x, _ = _data(jax.random.PRNGKey(4), 8, 6, 3)
    out = blur.predict(blur.backprop_genome(), blur.weights_from_mlp(params), x, blur.BACKPROP_SPEC)
    np.testing.assert_allclose(out, _mlp(params, x), rtol=1e-6)
    assert [p.shape for p in blur.forward(blur.backprop_genome(), blur.weights_from_mlp(params), x,
                                          blur.BACKPROP_SPEC)] == [(8, 6, 2), (8, 5, 2), (8, 3, 2)]


def _naive_step(g, weights, x, y):
    """Loop-based reference of eqs. (1)-(4) for the default spec (label feedback, additive)."""
    g = jax.tree_util.tree_map(np.asarray, g)
    act = lambda z: np.maximum(np.tanh(z), 0)
    k = g.fwd.shape[0]
    B = x.shape[0]
    layers = [np.zeros((B, x.shape[1], k))]
    layers[0][:, :, 0] = x
    for l, (F, _) in enumerate(weights):
        F = np.asarray(F)
        pre = np.concatenate([layers[-1], np.ones((B, 1, k))], 1)
        post = np.zeros((B, F.shape[1], k))
        for b in range(B):
            for j in range(F.shape[1]):
                for c in range(k):
                    z = sum(pre[b, i, a] * g.fwd[a, c] * F[i, j, c] for i in range(F.shape[0]) for a in range(k))
                    post[b, j, c] = z * g.neuron_update
        layers.append(np.tanh(post) if l == len(weights) - 1 else act(post))
    layers[-1][:, :, 1] = y
    layers[-1][:, :, 2:] = 0
    for l in range(len(weights) - 1, 0, -1):
        G = np.asarray(weights[l][1])
        m = np.einsum("bja,ac,jic->bic", layers[l + 1], g.bwd, G)
        layers[l] = act(g.neuron_keep * layers[l] + g.neuron_update * m)
    out = []
    for l, (F, G) in enumerate(weights):
        pre = np.concatenate([layers[l], np.ones((B, 1, k))], 1)
        post = layers[l + 1]
        dF = np.zeros(F.shape)
        for b in range(B):
            for o in range(k):
                dF[:, :, o] += np.outer(pre[b] @ g.pre[:, o], post[b] @ g.post[o, :])
        dG = np.zeros(G.shape)
        for b in range(B):
            for o in range(k):
                dG[:, :, o] += np.outer(post[b] @ g.pre[:, o], layers[l][b] @ g.post[o, :])
        out.append((g.synapse_keep * F + g.synapse_update * dF, g.synapse_keep * G + g.synapse_update * dG))
    return out


@pytest.mark.parametrize("k", [2, 3])
def test_step_matches_naive_loops(k):
    theta = blur.random_genome_vector(jax.random.PRNGKey(k), k) + 0.3
    g = blur.genome_from_vector(theta, k)
    w = blur.init_weights(jax.random.PRNGKey(0), (3, 4, 2), k, 1.5)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    y = jnp.sign(jax.random.normal(jax.random.PRNGKey(2), (5, 2)))
    new, _ = blur.step(g, w, x, y)
    for (F, G), (Fr, Gr) in zip(new, _naive_step(g, w, np.asarray(x), np.asarray(y))):
        assert F.dtype == jnp.float32
        np.testing.assert_allclose(F, Fr, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(G, Gr, rtol=1e-4, atol=1e-6)


def test_genome_is_architecture_independent_and_differentiable():
    k = 2
    theta = blur.random_genome_vector(jax.random.PRNGKey(0), k)
    assert theta.shape == (blur.genome_size(k),) == (21,)
    for sizes in [(2, 20, 1), (40, 16, 8, 5)]:
        def loss(th):
            g = blur.genome_from_vector(th, k)
            w = blur.init_weights(jax.random.PRNGKey(1), sizes, k, g.init_scale)
            x = jax.random.normal(jax.random.PRNGKey(2), (4, sizes[0]))
            y = jnp.ones((4, sizes[-1]))
            w, _ = blur.step(g, w, x, y)
            return jnp.sum(blur.predict(g, w, x) ** 2)
        gr = jax.grad(loss)(theta)
        assert gr.shape == theta.shape and bool(jnp.all(jnp.isfinite(gr)))
        # finite-difference check along one direction
        d = jax.random.normal(jax.random.PRNGKey(3), theta.shape) * 1e-2
        fd = (loss(theta + d) - loss(theta - d)) / 2
        np.testing.assert_allclose(float(gr @ d), float(fd), rtol=5e-2, atol=1e-4)


def test_genome_parametrisation():
    theta = jnp.zeros(blur.genome_size(2))
    g = blur.genome_from_vector(theta, 2)
    np.testing.assert_allclose([g.neuron_keep, g.synapse_keep], jax.nn.sigmoid(4.0), rtol=1e-6)
    assert float(g.neuron_update) == 1.0 and float(g.synapse_update) == 0.0 and float(g.init_scale) == 1.0
    g = blur.genome_from_vector(theta.at[-5].set(0.5), 2, stabilised=False)
    assert float(g.neuron_keep) == 1.5  # unbounded without the sigmoid
    batched = blur.genome_from_vector(jnp.zeros((7, 21)), 2)
    assert batched.fwd.shape == (7, 2, 2) and batched.synapse_keep.shape == (7,)


def test_init_weights_shapes_and_options():
    w = blur.init_weights(jax.random.PRNGKey(0), (4, 3, 2), 3, 2.0)
    assert [(F.shape, G.shape) for F, G in w] == [((5, 3, 3), (3, 4, 3)), ((4, 2, 3), (2, 3, 3))]
    assert float(jnp.abs(w[0][0]).max()) <= 2.0 / 2 + 1e-6  # U(-1, 1) * scale / sqrt(fan_in)
    t = blur.init_weights(jax.random.PRNGKey(0), (4, 3), 2, tied=True, same_states=True)
    np.testing.assert_array_equal(t[0][1], t[0][0][:-1].transpose(1, 0, 2))
    np.testing.assert_array_equal(t[0][0][..., 0], t[0][0][..., 1])


def test_bad_input():
    g = blur.genome_from_vector(jnp.zeros(21), 2)
    w = blur.init_weights(jax.random.PRNGKey(0), (3, 2), 2)
    with pytest.raises(ValueError, match="x must"):
        blur.forward(g, w, jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="y must"):
        blur.step(g, w, jnp.zeros((4, 3)), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="hidden_act"):
        blur.forward(g, w, jnp.zeros((4, 3)), blur.Spec(hidden_act="gelu"))
    with pytest.raises(ValueError, match="backward_update"):
        blur.forward(g, w, jnp.zeros((4, 3)), blur.Spec(backward_update="mult"))
    with pytest.raises(ValueError, match="genome.bwd"):
        blur.forward(g._replace(bwd=jnp.zeros((3, 3))), w, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="weights"):
        blur.forward(g, [(w[0][0], w[0][0])], jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="theta"):
        blur.genome_from_vector(jnp.zeros(20), 2)
    with pytest.raises(ValueError, match="sizes"):
        blur.init_weights(jax.random.PRNGKey(0), (3,), 2)
    with pytest.raises(ValueError, match="k must"):
        blur.backprop_genome(k=1)


def test_inner_loop_matches_repeated_steps():
    g = blur.genome_from_vector(blur.random_genome_vector(jax.random.PRNGKey(0), 2), 2)
    w0 = blur.init_weights(jax.random.PRNGKey(1), (2, 5, 1), 2)
    xs = jax.random.normal(jax.random.PRNGKey(2), (4, 8, 2))
    ys = jnp.sign(xs[..., :1])
    xq = jax.random.normal(jax.random.PRNGKey(3), (16, 2))
    loss = lambda w: jnp.mean(blur.predict(g, w, xq) ** 2)
    w, losses = blur.inner_loop(g, w0, xs, ys, step_loss=loss)
    ref, ref_losses = w0, []
    for t in range(4):
        ref, _ = blur.step(g, ref, xs[t], ys[t])
        ref_losses.append(loss(ref))
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for (F, G), (Fr, Gr) in zip(w, ref):
        np.testing.assert_allclose(F, Fr, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="xs and ys"):
        blur.inner_loop(g, w0, xs, ys[:3])


@pytest.mark.parametrize("k", [2, 3])
def test_genome_slices_partition_the_vector(k):
    sl = blur.genome_slices(k)
    assert list(sl) == list(blur.Genome._fields)
    covered = np.concatenate([np.arange(blur.genome_size(k))[s] for s in sl.values()])
    np.testing.assert_array_equal(covered, np.arange(blur.genome_size(k)))  # in order, no gap, no overlap
    theta = jax.random.normal(jax.random.PRNGKey(k), (blur.genome_size(k),))
    g = blur.genome_from_vector(theta, k)
    for name in ("fwd", "bwd", "pre", "post"):
        np.testing.assert_array_equal(np.asarray(getattr(g, name)).ravel(), np.asarray(theta[sl[name]]))
    np.testing.assert_allclose(float(g.neuron_update), 1.0 + float(theta[sl["neuron_update"]][0]), rtol=1e-6)
    np.testing.assert_allclose(float(g.synapse_update), 0.01 * float(theta[sl["synapse_update"]][0]), rtol=1e-6)
    np.testing.assert_allclose(float(g.init_scale), np.exp(float(theta[sl["init_scale"]][0])), rtol=1e-6)


def test_frozen_fields_keep_values_and_get_zero_meta_gradient():
    k, sizes = 2, (2, 6, 1)
    theta = blur.random_genome_vector(jax.random.PRNGKey(4), k)
    x = jax.random.uniform(jax.random.PRNGKey(5), (8, 2), minval=-1, maxval=1)
    y = jnp.sign(x[:, :1])

    def loss(th, frozen):
        g = blur.genome_from_vector(th, k, frozen=frozen)
        w = blur.init_weights(jax.random.PRNGKey(6), sizes, k, g.init_scale)
        w, _ = blur.inner_loop(g, w, jnp.stack([x, x]), jnp.stack([y, y]))
        return jnp.mean((blur.predict(g, w, x) - y) ** 2)

    frozen = ("neuron_update", "pre")
    full, part = jax.grad(loss)(theta, ()), jax.grad(loss)(theta, frozen)
    mask = np.zeros(theta.shape, bool)  # naive reference: the unfrozen gradient with frozen entries zeroed
    mask[4 * k * k + 1] = True
    mask[2 * k * k: 3 * k * k] = True
    assert part.shape == theta.shape and part.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(part)[mask], 0.0)
    np.testing.assert_allclose(np.asarray(part)[~mask], np.asarray(full)[~mask], rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(full)[mask]).max() > 0  # the frozen entries did have a gradient
    assert float(loss(theta, frozen)) == float(loss(theta, ()))  # values unchanged
    for a, b in zip(blur.genome_from_vector(theta, k, frozen=frozen), blur.genome_from_vector(theta, k)):
        np.testing.assert_array_equal(a, b)


def test_frozen_and_slices_bad_input():
    theta = jnp.zeros(21)
    with pytest.raises(ValueError, match="frozen"):
        blur.genome_from_vector(theta, 2, frozen=("learning_rate",))
    with pytest.raises(ValueError, match="frozen"):
        blur.genome_from_vector(theta, 2, frozen="neuron_update")  # a bare string, not a tuple
    with pytest.raises(ValueError, match="k must"):
        blur.genome_slices(1)


def test_step_compiled_equals_op_by_op_and_rejects_bad_specs():
    """blur.step is compiled once per shape and spec; its result equals the op-by-op run to rounding."""
    k = 3
    genome = blur.genome_from_vector(blur.random_genome_vector(jax.random.PRNGKey(0), k), k)
    w = blur.init_weights(jax.random.PRNGKey(1), (2, 6, 1), k, genome.init_scale)
    x = jax.random.normal(jax.random.PRNGKey(2), (8, 2))
    y = jnp.sign(x[:, :1] * x[:, 1:])
    for spec in (blur.Spec(), blur.Spec(tied=True, backward_update="multiplicative_second_state")):
        compiled, trace = blur.step(genome, w, x, y, spec)
        with jax.disable_jit():
            eager, trace_eager = blur.step(genome, w, x, y, spec)
        for a, b in zip(jax.tree_util.tree_leaves((compiled, trace)), jax.tree_util.tree_leaves((eager, trace_eager))):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="spec"):
        blur.step(genome, w, x, y, blur.Spec(feedback="nonsense"))
    with pytest.raises(ValueError):
        blur.step(genome, w, x, y, ["not", "a", "spec"])   # not hashable: rejected before tracing
    with pytest.raises(ValueError, match="y must have shape"):
        blur.step(genome, w, x, y[:4], blur.Spec())
