"""Layers: the building blocks of a network, named as in PyTorch's ``torch.nn``.

Every layer maps a batch ``(N, *features)`` to a batch ``(N, *out_features)``. ``output_shape``
gives the per-sample output shape for a per-sample input shape without running anything, which
lets the app show the shape after every layer while the learner edits the stack.
"""

import math

import numpy as np

from .tensor import Tensor, no_grad


class Module:
    """Base class: training flag, parameters, ``zero_grad`` and a readable ``repr``."""

    training = True

    def __call__(self, x):
        """Run ``forward``; a numpy array is wrapped in a ``Tensor`` first."""
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def parameters(self):
        """Return the list of tensors that an optimizer updates (empty for most layers)."""
        return []

    def output_shape(self, input_shape):
        """Return the per-sample output shape for a per-sample input shape (default: unchanged)."""
        return input_shape

    def train(self, mode=True):
        """Switch to training mode (Dropout drops units); return self."""
        self.training = mode
        return self

    def eval(self):
        """Switch to evaluation mode (Dropout is the identity); return self."""
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


class Linear(Module):
    """Fully connected layer: ``y = x @ weight + bias``.

    Shapes: input ``(N, in_features)``, output ``(N, out_features)``. ``weight`` is stored as
    ``(in_features, out_features)``, the transpose of PyTorch's layout, so the forward pass is a
    plain ``x @ weight``.

    Args:
        init: ``"he"`` (normal, std sqrt(2 / in_features); for a layer followed by ReLU) or
            ``"xavier"`` (uniform in +-sqrt(6 / (in + out)); for tanh, sigmoid or an output layer).
            Default ``"he"``.
        rng: ``numpy.random.Generator`` for the initial weights; default a fresh unseeded one.
    Biases start at zero.
    """

    def __init__(self, in_features, out_features, init="he", rng=None):
        rng = rng if rng is not None else np.random.default_rng()
        if init == "he":
            std = math.sqrt(2.0 / in_features)
            w = rng.normal(0.0, std, size=(in_features, out_features))
        elif init == "xavier":
            limit = math.sqrt(6.0 / (in_features + out_features))
            w = rng.uniform(-limit, limit, size=(in_features, out_features))
        else:
            raise ValueError(f"init must be 'he' or 'xavier', got {init!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.init = init
        self.weight = Tensor(w.astype(np.float32), requires_grad=True)
        self.bias = Tensor(np.zeros(out_features, dtype=np.float32), requires_grad=True)

    def forward(self, x):
        return x.linear(self.weight, self.bias)

    def parameters(self):
        return [self.weight, self.bias]

    def output_shape(self, input_shape):
        return (self.out_features,)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class Flatten(Module):
    """Flatten each sample to one axis: ``(N, 1, 28, 28)`` becomes ``(N, 784)``."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)


class Dropout(Module):
    """Inverted dropout with rate ``p`` (default 0.5).

    In training each unit is zeroed with probability ``p`` and the kept units are scaled by
    ``1 / (1 - p)``, so the expected output equals the input and evaluation needs no rescaling.
    In evaluation mode it is the identity.

    Args:
        rng: ``numpy.random.Generator`` that draws the masks; default a fresh unseeded one.
    """

    def __init__(self, p=0.5, rng=None):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout rate p must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.p
        mask = keep.astype(x.data.dtype) * (1.0 / (1.0 - self.p))
        return x * mask

    def extra_repr(self):
        return f"p={self.p}"


class ReLU(Module):
    """``max(x, 0)`` elementwise."""

    def forward(self, x):
        return x.relu()


class Tanh(Module):
    """Hyperbolic tangent elementwise; outputs in (-1, 1)."""

    def forward(self, x):
        return x.tanh()


class Sigmoid(Module):
    """Logistic function ``1 / (1 + exp(-x))`` elementwise; outputs in (0, 1)."""

    def forward(self, x):
        return x.sigmoid()


class Softmax(Module):
    """Softmax over the last axis: each row becomes probabilities that sum to 1."""

    def forward(self, x):
        return x.softmax()


class Sequential(Module):
    """A chain of layers, applied in order.

    ``model(x)`` takes a ``Tensor`` (or an array) of shape ``(N, 1, 28, 28)`` for MNIST and
    returns the output ``Tensor``. ``model.predict(x)`` is the inference shortcut.
    """

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def predict(self, x):
        """Return the outputs for a float32 batch ``x`` as an array, without recording a graph.

        Dropout is skipped rather than switched to eval mode, so the model's own mode stays as
        it is and another thread may go on training it.
        """
        with no_grad():
            out = x if isinstance(x, Tensor) else Tensor(x)
            for layer in self.layers:
                if not isinstance(layer, Dropout):
                    out = layer(out)
        return out.data

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def train(self, mode=True):
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def output_shape(self, input_shape):
        for layer in self.layers:
            input_shape = layer.output_shape(input_shape)
        return input_shape

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        return self.layers[index]

    def __repr__(self):
        lines = [f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers)]
        return "Sequential(\n" + "\n".join(lines) + "\n)"

    def summary(self, input_shape=(1, 28, 28)):
        """Return a text table with each layer's output shape and parameter count."""
        rows = [("Layer", "Output shape", "Parameters")]
        rows.append(("Input", "x".join(map(str, input_shape)), "0"))
        total = 0
        shape = input_shape
        for i, layer in enumerate(self.layers):
            shape = layer.output_shape(shape)
            count = sum(p.data.size for p in layer.parameters())
            total += count
            rows.append((f"{i}: {layer!r}", "x".join(map(str, shape)), f"{count:,}"))
        rows.append(("Total", "", f"{total:,}"))
        widths = [max(len(row[c]) for row in rows) for c in range(3)]
        return "\n".join(
            f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}" for row in rows
        )
