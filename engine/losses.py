"""Loss functions: a scalar to minimise, and its gradient with respect to the network's outputs.

Each loss takes outputs of shape ``(N, 10)`` and integer labels of shape ``(N,)``, and averages
over the batch exactly once, here. The backward function next to each forward pass is the exact
derivative of the value it returns, so a finite-difference check of the value matches the
gradient (tests/test_gradients.py does this for every loss).
"""

import numpy as np

from .errors import SpecError


def one_hot(labels, num_classes=10, dtype=np.float32):
    """Return an ``(N, num_classes)`` array with a 1 in each row's label column, 0 elsewhere."""
    targets = np.zeros((len(labels), num_classes), dtype=dtype)
    targets[np.arange(len(labels)), labels] = 1
    return targets


def cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against the labels.

    Input: raw scores (logits), NOT probabilities: the softmax is applied here, as a stable
    log-softmax, so a network trained with this loss must not end in Softmax.
    Value: ``-mean_n log softmax(logits)[n, label_n]``. Gradient: ``(softmax - one_hot) / N``.
    """
    z = logits.data
    n = z.shape[0]
    rows = np.arange(n)

    # Subtracting each row's maximum keeps exp from overflowing and leaves the softmax unchanged.
    shifted = z - z.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    row_sums = probs.sum(axis=1, keepdims=True)
    probs /= row_sums

    # log softmax is shifted - log(row sum), and the value needs it only at the labels.
    value = (np.log(row_sums).sum() - shifted[rows, labels].sum()) / n
    out = logits._result(np.asarray(value, dtype=z.dtype), (logits,), "cross_entropy")

    def backward():
        scale = float(out.grad) / n
        grad = probs * scale
        grad[rows, labels] -= scale
        logits.accumulate_grad(grad)

    out._backward = backward
    return out


def mse(outputs, labels):
    """Mean squared error between the outputs and the one-hot targets.

    Input: any real outputs; usually softmax probabilities or raw outputs of the last Linear layer.
    Value: the mean over all ``N * 10`` elements of ``(output - one_hot)**2``.
    Gradient: ``2 * (output - one_hot) / (N * 10)``.
    """
    y = outputs.data
    diff = y - one_hot(labels, y.shape[1], y.dtype)
    value = (diff * diff).mean()
    out = outputs._result(np.asarray(value, dtype=y.dtype), (outputs,), "mse")

    def backward():
        outputs.accumulate_grad(diff * (2 * out.grad / diff.size))

    out._backward = backward
    return out


BCE_EPSILON = 1e-7


def binary_cross_entropy(probs, labels):
    """Mean binary cross-entropy of each of the 10 outputs against its one-hot target.

    Input: probabilities in [0, 1], usually from a final Sigmoid (or Softmax) layer; not logits.
    Probabilities are clipped to ``[1e-7, 1 - 1e-7]`` so that log never gets 0.
    Value: the mean over all ``N * 10`` elements of ``-(t log p + (1 - t) log(1 - p))``.
    Gradient: ``(p - t) / (p (1 - p)) / (N * 10)`` where ``p`` is inside the clip range. Where
    ``p`` was clipped the value does not depend on ``p``, so the exact gradient there is 0.
    """
    p = probs.data
    targets = one_hot(labels, p.shape[1], p.dtype)
    inside = (p > BCE_EPSILON) & (p < 1 - BCE_EPSILON)
    p_clipped = np.clip(p, BCE_EPSILON, 1 - BCE_EPSILON)
    elementwise = -(targets * np.log(p_clipped) + (1 - targets) * np.log(1 - p_clipped))
    value = elementwise.mean()
    out = probs._result(np.asarray(value, dtype=p.dtype), (probs,), "binary_cross_entropy")

    def backward():
        grad = (p_clipped - targets) / (p_clipped * (1 - p_clipped))
        probs.accumulate_grad(grad * inside * (out.grad / p.size))

    out._backward = backward
    return out


class CrossEntropyLoss:
    """Cross-entropy on logits; see ``cross_entropy``."""

    name = "ce"
    expects = "logits"

    def __call__(self, outputs, labels):
        return cross_entropy(outputs, labels)


class MSELoss:
    """Mean squared error against one-hot targets; see ``mse``."""

    name = "mse"
    expects = "any"

    def __call__(self, outputs, labels):
        return mse(outputs, labels)


class BCELoss:
    """Binary cross-entropy on probabilities; see ``binary_cross_entropy``."""

    name = "bce"
    expects = "probabilities"

    def __call__(self, outputs, labels):
        return binary_cross_entropy(outputs, labels)


LOSSES = {"ce": CrossEntropyLoss, "mse": MSELoss, "bce": BCELoss}


def make_loss(name):
    """Return the loss object for ``"ce"``, ``"mse"`` or ``"bce"``; raise ``SpecError`` otherwise."""
    if name not in LOSSES:
        raise SpecError("loss.unknown", name=name, allowed=", ".join(LOSSES))
    return LOSSES[name]()


def accuracy(outputs, labels):
    """Return the fraction of rows whose largest output is at the label (argmax accuracy).

    The same rule serves every loss: logits, softmax probabilities and 10 sigmoid outputs.
    """
    return float((np.argmax(outputs, axis=1) == labels).mean())
