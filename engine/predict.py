"""From network outputs to the ten digit probabilities the app shows."""

import numpy as np

from .layers import Sigmoid, Softmax


def output_kind(model):
    """Return what the last layer produces: ``"softmax"``, ``"sigmoid"`` or ``"raw"``."""
    last = model.layers[-1]
    if isinstance(last, Softmax):
        return "softmax"
    if isinstance(last, Sigmoid):
        return "sigmoid"
    return "raw"


def to_probabilities(outputs, kind, loss=None):
    """Turn outputs ``(N, 10)`` into rows of probabilities that sum to 1.

    Softmax outputs are used as they are. Ten sigmoid outputs are independent yes/no scores, so
    they are divided by their sum. Raw outputs go through a softmax (they are logits), except for
    a network trained with MSE on raw outputs: those outputs estimate the one-hot target itself,
    so negative values are set to 0 and the rest divided by their sum. Every rule keeps the
    argmax, except that a row with no positive score becomes uniform.
    """
    outputs = np.asarray(outputs, dtype=np.float32)
    if kind == "softmax":
        return outputs
    if kind == "sigmoid" or (kind == "raw" and loss == "mse"):
        scores = np.maximum(outputs, 0)
        totals = scores.sum(axis=1, keepdims=True)
        uniform = np.full_like(scores, 1.0 / scores.shape[1])
        return np.where(totals > 0, scores / np.where(totals > 0, totals, 1), uniform)
    e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def probabilities(model, x, loss=None):
    """Return the ``(N, 10)`` probabilities of ``model`` for float32 inputs ``x`` ``(N, 1, 28, 28)``."""
    return to_probabilities(model.predict(x), output_kind(model), loss)
