"""Optimizers: turn the gradients left by ``backward`` into weight updates.

Updates happen in place on each parameter's ``data``, in its own dtype (float32 in training).
"""

import math
import numbers

import numpy as np

from .errors import SpecError

OPTIMIZERS = ("sgd", "momentum", "adam")


class Optimizer:
    """Base class holding the parameters and the learning rate."""

    def __init__(self, params, lr):
        if not (isinstance(lr, numbers.Real) and math.isfinite(lr) and lr > 0):
            raise SpecError("optim.bad_lr", value=lr)
        self.params = list(params)
        self.lr = float(lr)

    def zero_grad(self):
        """Forget the gradients of the last step; ``backward`` adds to what is there."""
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and weight decay.

    ``g = grad + weight_decay * w``; with momentum ``v = momentum * v + g`` and ``w -= lr * v``,
    otherwise ``w -= lr * g``. Defaults: momentum 0, weight decay 0 (as in ``torch.optim.SGD``).
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise SpecError("train.bad_momentum", value=momentum)
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.velocities = [np.zeros_like(p.data) for p in self.params] if momentum else None

    def step(self):
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.velocities is not None:
                v = self.velocities[i]
                v *= self.momentum
                v += g
                g = v
            p.data -= self.lr * g

    def __repr__(self):
        return f"SGD(lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay})"


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015): per-weight steps from running means of g and g**2.

    Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, as in ``torch.optim.Adam``. The bias
    corrections of both running means are folded into the step size.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        self.t += 1
        correction1 = 1 - self.beta1 ** self.t
        correction2 = 1 - self.beta2 ** self.t
        step_size = self.lr * math.sqrt(correction2) / correction1
        eps = self.eps * math.sqrt(correction2)

        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * (g * g)
            p.data -= step_size * m / (np.sqrt(v) + eps)

    def __repr__(self):
        return f"Adam(lr={self.lr}, betas=({self.beta1}, {self.beta2}), eps={self.eps})"


def make_optimizer(name, params, lr, momentum=0.9, weight_decay=0.0):
    """Build ``"sgd"``, ``"momentum"`` (SGD with ``momentum``, default 0.9) or ``"adam"``."""
    if name == "sgd":
        return SGD(params, lr, weight_decay=weight_decay)
    if name == "momentum":
        return SGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return Adam(params, lr, weight_decay=weight_decay)
    raise SpecError("optim.unknown", name=name, allowed=", ".join(OPTIMIZERS))
