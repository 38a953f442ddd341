"""A NumPy array with reverse-mode automatic differentiation.

Each operation below computes its result and defines, right beside it, how the gradient of the
result flows back to its inputs. ``Tensor.backward`` then visits the graph in reverse topological
order and calls those backward functions. Only tensors with ``requires_grad`` take part, so an
input batch costs no gradient work.

Data is float32 unless a float64 array is passed in (the gradient checks use float64).
"""

import threading

import numpy as np

class _GradMode(threading.local):
    """Per-thread flag: whether operations record the graph (class default True)."""

    enabled = True


_grad_mode = _GradMode()


def is_grad_enabled():
    """Return whether new operations record a graph in this thread (True unless in ``no_grad``)."""
    return _grad_mode.enabled


class no_grad:
    """Context manager that stops recording the graph in the current thread, for inference.

    The flag is per thread, so a page predicting in one thread does not switch off the graph of
    a training run in another.
    """

    def __enter__(self):
        self._previous = is_grad_enabled()
        _grad_mode.enabled = False

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous


def _as_float_array(data):
    array = np.asarray(data)
    if array.dtype != np.float32 and array.dtype != np.float64:
        array = array.astype(np.float32)
    return array


def _sum_to_shape(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


class Tensor:
    """An array ``data`` with a gradient ``grad`` of the same shape.

    Args:
        data: array-like; stored as float32 unless it is already float64.
        requires_grad: whether ``backward`` should compute ``grad`` for this tensor. Default False.
    """

    def __init__(self, data, requires_grad=False, parents=(), op=""):
        self.data = _as_float_array(data)
        self.grad = None
        self.requires_grad = requires_grad
        self._parents = parents
        self._op = op
        self._backward = None

    @property
    def shape(self):
        return self.data.shape

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor(shape={self.data.shape}, dtype={self.data.dtype}{grad})"

    def _result(self, data, parents, op):
        """Make the output tensor of an operation; it joins the graph only if a parent needs a gradient."""
        # A loop, not any(generator): this runs for every operation of every step.
        needs_grad = False
        if _grad_mode.enabled:
            for parent in parents:
                if parent.requires_grad:
                    needs_grad = True
                    break
        if not needs_grad:
            return Tensor(data)
        return Tensor(data, requires_grad=True, parents=parents, op=op)

    def accumulate_grad(self, grad):
        """Add ``grad`` to ``self.grad``; gradients from several uses of a tensor add up."""
        if self.grad is None:
            self.grad = grad
        else:
            # A new array, not +=: the first grad may be shared with another tensor.
            self.grad = self.grad + grad

    # ----- operations: forward and backward side by side -----

    def __matmul__(self, other):
        out = self._result(self.data @ other.data, (self, other), "@")

        def backward():
            if self.requires_grad:
                self.accumulate_grad(out.grad @ other.data.T)
            if other.requires_grad:
                other.accumulate_grad(self.data.T @ out.grad)

        out._backward = backward
        return out

    def __add__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = self._result(self.data + other.data, (self, other), "+")

        def backward():
            if self.requires_grad:
                self.accumulate_grad(_sum_to_shape(out.grad, self.data.shape))
            if other.requires_grad:
                other.accumulate_grad(_sum_to_shape(out.grad, other.data.shape))

        out._backward = backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = self._result(self.data * other.data, (self, other), "*")

        def backward():
            if self.requires_grad:
                self.accumulate_grad(_sum_to_shape(out.grad * other.data, self.data.shape))
            if other.requires_grad:
                other.accumulate_grad(_sum_to_shape(out.grad * self.data, other.data.shape))

        out._backward = backward
        return out

    def reshape(self, *shape):
        out = self._result(self.data.reshape(*shape), (self,), "reshape")

        def backward():
            self.accumulate_grad(out.grad.reshape(self.data.shape))

        out._backward = backward
        return out

    def relu(self):
        out = self._result(np.maximum(self.data, 0), (self,), "relu")

        def backward():
            self.accumulate_grad(out.grad * (self.data > 0))

        out._backward = backward
        return out

    def tanh(self):
        y = np.tanh(self.data)
        out = self._result(y, (self,), "tanh")

        def backward():
            self.accumulate_grad(out.grad * (1 - y * y))

        out._backward = backward
        return out

    def sigmoid(self):
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) but never overflows.
        y = 0.5 * (1 + np.tanh(0.5 * self.data))
        out = self._result(y, (self,), "sigmoid")

        def backward():
            self.accumulate_grad(out.grad * y * (1 - y))

        out._backward = backward
        return out

    def softmax(self):
        """Softmax over the last axis; subtracting the row maximum keeps exp from overflowing."""
        e = np.exp(self.data - self.data.max(axis=-1, keepdims=True))
        y = e / e.sum(axis=-1, keepdims=True)
        out = self._result(y, (self,), "softmax")

        def backward():
            # The Jacobian-vector product of softmax: y * (g - sum(g * y)).
            g = out.grad
            self.accumulate_grad(y * (g - (g * y).sum(axis=-1, keepdims=True)))

        out._backward = backward
        return out

    def linear(self, weight, bias):
        """Return ``self @ weight + bias``, the forward pass of a ``Linear`` layer.

        Shapes: ``self`` is ``(N, in)``, ``weight`` ``(in, out)``, ``bias`` ``(out,)`` and the
        result ``(N, out)``. The numbers equal ``@`` followed by ``+``, but this makes one graph
        node in place of two and adds the bias in place, without a temporary array.
        """
        z = self.data @ weight.data
        z += bias.data
        out = self._result(z, (self, weight, bias), "linear")

        def backward():
            g = out.grad
            if self.requires_grad:
                self.accumulate_grad(g @ weight.data.T)
            if weight.requires_grad:
                weight.accumulate_grad(self.data.T @ g)
            if bias.requires_grad:
                bias.accumulate_grad(g.sum(axis=0))

        out._backward = backward
        return out

    # ----- backpropagation -----

    def backward(self, grad=None):
        """Compute the gradient of this tensor with respect to every tensor that requires one.

        Args:
            grad: gradient of the final objective with respect to this tensor; default 1 for a
                scalar. Gradients add to what ``grad`` already contains (see ``zero_grad``).
        """
        if grad is None:
            grad = np.ones_like(self.data)

        order = []
        visited = set()
        stack = [(self, False)]
        while stack:
            tensor, children_done = stack.pop()
            if children_done:
                order.append(tensor)
                continue
            if id(tensor) in visited or not tensor.requires_grad:
                continue
            visited.add(id(tensor))
            stack.append((tensor, True))
            for parent in tensor._parents:
                stack.append((parent, False))

        self.accumulate_grad(grad)
        for tensor in reversed(order):
            if tensor._backward is not None:
                tensor._backward()
                if tensor._parents:
                    # Intermediate results free their gradient once it has been passed on.
                    tensor.grad = None
