"""Digit Lab's NumPy neural-network engine: tensors with autograd, layers, losses, optimizers,
MNIST data, the training loop, canvas preprocessing and model files. It never imports streamlit.
"""

import os

# `python -m engine` runs this file before __main__.py, so the thread default is set here, before
# numpy loads OpenBLAS. Two BLAS threads make the small matrix products of these networks several
# times slower on a 2-core machine. A value the user set wins; if numpy is already imported this
# has no effect.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .errors import DataError, DigitLabError, ModelFileError, SpecError, TrainingError  # noqa: E402
from .layers import (  # noqa: E402
    Dropout, Flatten, Linear, Module, ReLU, Sequential, Sigmoid, Softmax, Tanh,
)
from .losses import LOSSES, BCELoss, CrossEntropyLoss, MSELoss, make_loss  # noqa: E402
from .optim import SGD, Adam, make_optimizer  # noqa: E402
from .spec import build_model, describe, format_spec, parse_spec  # noqa: E402
from .tensor import Tensor, no_grad  # noqa: E402

__all__ = [
    "Adam", "BCELoss", "CrossEntropyLoss", "DataError", "DigitLabError", "Dropout", "Flatten",
    "LOSSES", "Linear", "MSELoss", "ModelFileError", "Module", "ReLU", "SGD", "Sequential",
    "Sigmoid", "Softmax", "SpecError", "Tanh", "Tensor", "TrainingError", "build_model",
    "describe", "format_spec", "make_loss", "make_optimizer", "no_grad", "parse_spec",
]
