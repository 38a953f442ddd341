"""Finite-difference checks of every layer and loss, and batch-size invariance of the gradients."""

import numpy as np
import pytest

from engine.layers import Dropout, Flatten, Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh
from engine.losses import binary_cross_entropy, cross_entropy, mse
from engine.tensor import Tensor

RTOL = 1e-6
LOSSES = {"ce": cross_entropy, "mse": mse, "bce": binary_cross_entropy}


def numerical_grad(f, array, eps=1e-6):
    """Central differences of the scalar ``f()`` with respect to each element of ``array``."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + eps
        plus = f()
        array[index] = original - eps
        minus = f()
        array[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-12)


def to_float64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def check_module(module, x, reseed=None):
    """Compare autograd and numerical gradients of sum(module(x) * weights) for x and parameters."""
    rng = np.random.default_rng(1)
    x_tensor = Tensor(x, requires_grad=True)
    out_shape = module(Tensor(x)).shape
    weights = rng.normal(size=out_shape)

    def objective():
        if reseed:
            reseed()
        return float((module(Tensor(x)).data * weights).sum())

    if reseed:
        reseed()
    module.zero_grad()
    (module(x_tensor) * weights).backward(np.ones(out_shape))

    assert relative_error(x_tensor.grad, numerical_grad(objective, x)) <= RTOL
    for p in module.parameters():
        assert relative_error(p.grad, numerical_grad(objective, p.data)) <= RTOL


@pytest.mark.parametrize("layer", [
    Linear(5, 4, init="he", rng=np.random.default_rng(0)),
    Linear(5, 4, init="xavier", rng=np.random.default_rng(0)),
    ReLU(), Tanh(), Sigmoid(), Softmax(),
], ids=repr)
def test_layer_gradient(layer):
    x = np.random.default_rng(2).normal(size=(3, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the finite-difference step
    check_module(to_float64(layer), x)


def test_flatten_gradient():
    x = np.random.default_rng(3).normal(size=(2, 1, 3, 3))
    check_module(Flatten(), x)


def test_dropout_gradient_fixed_mask():
    layer = Dropout(0.3)

    def reseed():
        layer.rng = np.random.default_rng(7)

    check_module(layer, np.random.default_rng(4).normal(size=(4, 6)), reseed=reseed)


@pytest.mark.parametrize("name", ["ce", "mse", "bce"])
def test_loss_gradient(name):
    rng = np.random.default_rng(5)
    outputs = rng.uniform(0.05, 0.95, size=(6, 10))  # probabilities inside BCE's clip range
    labels = rng.integers(0, 10, size=6)
    loss_fn = LOSSES[name]
    out = Tensor(outputs, requires_grad=True)
    loss_fn(out, labels).backward()

    numerical = numerical_grad(lambda: float(loss_fn(Tensor(outputs), labels).data), outputs)
    assert relative_error(out.grad, numerical) <= RTOL


@pytest.mark.parametrize("name", ["ce", "mse", "bce"])
def test_composite_network_gradient(name):
    rng = np.random.default_rng(6)
    dropout = Dropout(0.25)
    layers = [Flatten(), Linear(16, 8, rng=rng), ReLU(), dropout, Linear(8, 10, init="xavier", rng=rng)]
    if name == "bce":
        layers.append(Sigmoid())
    model = to_float64(Sequential(*layers))
    x = rng.normal(size=(5, 1, 4, 4))
    labels = rng.integers(0, 10, size=5)
    loss_fn = LOSSES[name]

    def reseed():
        dropout.rng = np.random.default_rng(11)

    def objective():
        reseed()
        return float(loss_fn(model(Tensor(x)), labels).data)

    reseed()
    model.zero_grad()
    loss_fn(model(Tensor(x)), labels).backward()
    for p in model.parameters():
        assert relative_error(p.grad, numerical_grad(objective, p.data)) <= RTOL


@pytest.mark.parametrize("name", ["ce", "mse", "bce"])
def test_gradient_independent_of_batch_size(name):
    rng = np.random.default_rng(8)
    layers = [Flatten(), Linear(784, 32, rng=rng), ReLU(), Linear(32, 10, init="xavier", rng=rng)]
    if name == "bce":
        layers.append(Sigmoid())
    model = Sequential(*layers)
    sample = rng.random((1, 1, 28, 28), dtype=np.float32)
    label = np.array([3])

    results = []
    for batch_size in (1, 8, 64):
        model.zero_grad()
        loss = LOSSES[name](model(np.repeat(sample, batch_size, axis=0)), np.repeat(label, batch_size))
        loss.backward()
        results.append((float(loss.data), [p.grad.copy() for p in model.parameters()]))

    loss_1, grads_1 = results[0]
    for loss_n, grads_n in results[1:]:
        np.testing.assert_allclose(loss_n, loss_1, rtol=1e-5)
        for g_n, g_1 in zip(grads_n, grads_1):
            np.testing.assert_allclose(g_n, g_1, rtol=1e-5, atol=1e-7)


def test_gradients_accumulate_until_zero_grad():
    layer = Linear(3, 2, rng=np.random.default_rng(0))
    x = np.ones((1, 3), dtype=np.float32)
    layer(x).backward(np.ones((1, 2), dtype=np.float32))
    first = layer.weight.grad.copy()
    layer(x).backward(np.ones((1, 2), dtype=np.float32))
    np.testing.assert_allclose(layer.weight.grad, 2 * first)
    layer.zero_grad()
    assert layer.weight.grad is None


def test_input_batch_gets_no_gradient():
    layer = Linear(3, 2, rng=np.random.default_rng(0))
    x = Tensor(np.ones((4, 3), dtype=np.float32))
    layer(x).backward(np.ones((4, 2), dtype=np.float32))
    assert x.grad is None
    assert layer.weight.grad is not None
