"""``python -m engine benchmark``: training throughput, and the same networks in PyTorch.

Each configuration trains on random 28x28 float32 batches (speed does not depend on the pixel
values) for a fixed wall time after a warm-up, three times, and reports the best samples/s.
Where PyTorch is importable, the same network, loss, optimizer and batch size run in PyTorch on
the same number of threads, and the ratio ours / PyTorch is printed. PyTorch is never required.
"""

import logging
import os
import platform
import time

import numpy as np

from .losses import make_loss
from .optim import make_optimizer
from .spec import build_model, parse_spec
from .tensor import Tensor

log = logging.getLogger(__name__)

NETWORKS = {
    "784-64-10": "flatten,linear:64,relu,linear:10",
    "784-256-128-10": "flatten,linear:256,relu,linear:128,relu,linear:10",
}
BATCH_SIZES = (2, 32, 64, 256)
OPTIMIZER_LR = {"sgd": 0.01, "adam": 1e-3}
POOL_SIZE = 8192


def measure(step, batch_size, seconds, repeats=3, warmup_steps=20):
    """Return the best samples/s of ``step(i)`` over ``repeats`` runs of about ``seconds`` each."""
    for i in range(warmup_steps):
        step(i)
    best = 0.0
    i = warmup_steps
    for _ in range(repeats):
        steps = 0
        started = time.perf_counter()
        while True:
            step(i)
            i += 1
            steps += 1
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                break
        best = max(best, steps * batch_size / elapsed)
    return best


def numpy_step_function(spec, optimizer_name, batch_size, images, labels):
    model = build_model(parse_spec(spec), np.random.default_rng(0))
    loss_fn = make_loss("ce")
    optimizer = make_optimizer(optimizer_name, model.parameters(), OPTIMIZER_LR[optimizer_name])
    batches = len(images) // batch_size

    def step(i):
        start = (i % batches) * batch_size
        loss = loss_fn(model(Tensor(images[start:start + batch_size])), labels[start:start + batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def torch_step_function(torch, spec, optimizer_name, batch_size, images, labels):
    layers = [torch.nn.Flatten()]
    sizes = [784] + [layer["units"] for layer in parse_spec(spec) if layer["type"] == "Linear"]
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    lr = OPTIMIZER_LR[optimizer_name]
    optimizer = (torch.optim.SGD(model.parameters(), lr=lr) if optimizer_name == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=lr))
    x_all = torch.from_numpy(images)
    y_all = torch.from_numpy(labels)
    batches = len(images) // batch_size

    def step(i):
        start = (i % batches) * batch_size
        loss = loss_fn(model(x_all[start:start + batch_size]), y_all[start:start + batch_size])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def time_one_epoch(data):
    """Train 784-128-10 for one epoch at batch 64 with Adam; return (seconds, samples, source)."""
    from .data import resolve_dataset
    from .train import TrainConfig, build_for_config, fit

    source = resolve_dataset(data or "mnist")
    config = TrainConfig(layers=parse_spec("flatten,linear:128,relu,linear:10"), loss="ce",
                         optimizer="adam", lr=1e-3, batch_size=64, epochs=1, seed=0)
    model = build_for_config(config)
    result = fit(model, config, source.dataset)
    return result.history[0]["seconds"], source.dataset.n_train, source.reason


def run(data=None, quick=False):
    seconds = 0.15 if quick else 0.5
    torch = import_torch()
    rng = np.random.default_rng(0)
    images = rng.random((POOL_SIZE, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, size=POOL_SIZE)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} thread)" if torch else
             ", PyTorch not installed"))
    header = f"{'network':<16}{'optimizer':<10}{'batch':>6}{'ours/s':>12}"
    if torch:
        header += f"{'torch/s':>12}{'ratio':>8}"
    print(header)

    for name, spec in NETWORKS.items():
        for optimizer_name in OPTIMIZER_LR:
            for batch_size in BATCH_SIZES:
                ours = measure(numpy_step_function(spec, optimizer_name, batch_size, images, labels),
                               batch_size, seconds)
                line = f"{name:<16}{optimizer_name:<10}{batch_size:>6}{ours:>12,.0f}"
                if torch:
                    theirs = measure(torch_step_function(torch, spec, optimizer_name, batch_size,
                                                         images, labels), batch_size, seconds)
                    line += f"{theirs:>12,.0f}{ours / theirs:>8.2f}"
                print(line, flush=True)

    epoch_seconds, n_samples, reason = time_one_epoch(data)
    print(f"one epoch of 784-128-10, batch 64, Adam: {n_samples:,} samples in "
          f"{epoch_seconds:.2f} s of training ({reason})")
    return 0
