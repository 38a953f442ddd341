"""The loss duel: one network trained three times, with only the loss changed.

A fair comparison of cross-entropy, MSE and binary cross-entropy keeps everything else equal:

- the same layer stack, with only the output layer each loss needs appended
  (cross-entropy on logits, MSE on softmax probabilities or raw outputs, BCE on sigmoid outputs);
- the same initial weights: every copy is built from the same seed, and appending an activation
  adds no parameters, so the weights are identical (``check_identical_weights`` compares the
  bytes instead of assuming it);
- the same mini-batches in the same order: one shuffle generator, derived from the seed exactly
  as ``engine.train.fit`` derives it, drives all three copies in lockstep.

So each run here gives the same numbers as ``engine.train.fit`` (and ``python -m engine train``)
with the same seed and the layer stack including the appended output layer.

``fit_duel`` also measures test accuracy on a fixed slice of the test set every few steps (a
"probe"), which gives a per-step estimate of how fast each run learns. Probes do not touch the
random generators, so they do not change the training.
"""

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .data import to_input
from .errors import TrainingError
from .layers import Sequential, Sigmoid, Softmax
from .losses import make_loss
from .spec import format_spec
from .tensor import Tensor
from .train import Stepper, TrainConfig, TrainResult, build_for_config, evaluate, make_generators

log = logging.getLogger(__name__)

DUEL_LOSSES = ("ce", "mse", "bce")
MSE_OUTPUTS = ("softmax", "raw")
# Activations a learner's stack may end with; the duel removes them and appends its own.
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")
# Probe: test accuracy on the first PROBE_SIZE test images, every DEFAULT_PROBE_EVERY steps.
PROBE_SIZE = 1000
DEFAULT_PROBE_EVERY = 25
THRESHOLDS = (0.90, 0.95)

EXIT_DIVERGED = 1


# ---------------------------------------------------------------------------
# The three networks
# ---------------------------------------------------------------------------

def strip_output_activation(layers):
    """Return a copy of ``layers`` without trailing Softmax and Sigmoid layers."""
    layers = [dict(layer) for layer in layers]
    while layers and str(layers[-1].get("type", "")).lower() in OUTPUT_ACTIVATIONS:
        layers.pop()
    return layers


def output_layer(loss, mse_output="softmax"):
    """Return the activation type appended for ``loss`` (``"Softmax"``, ``"Sigmoid"``) or None.

    Cross-entropy works on logits and applies its own softmax, so it gets none. MSE compares
    softmax probabilities with the one-hot target (``mse_output="softmax"``) or the raw outputs
    of the last Linear layer (``"raw"``). BCE scores each of the ten outputs as a yes/no
    probability, so it gets a Sigmoid.
    """
    if mse_output not in MSE_OUTPUTS:
        raise ValueError(f"mse_output must be one of {MSE_OUTPUTS}, got {mse_output!r}")
    if loss == "ce":
        return None
    if loss == "mse":
        return "Softmax" if mse_output == "softmax" else None
    if loss == "bce":
        return "Sigmoid"
    raise ValueError(f"loss must be one of {DUEL_LOSSES}, got {loss!r}")


def duel_layers(layers, mse_output="softmax"):
    """Return ``{loss: layer stack}``: the stripped stack plus the output layer of each loss."""
    base = strip_output_activation(layers)
    stacks = {}
    for loss in DUEL_LOSSES:
        activation = output_layer(loss, mse_output)
        stacks[loss] = base + ([{"type": activation}] if activation else [])
    return stacks


def duel_configs(layers, optimizer="adam", lr=1e-3, batch_size=64, epochs=3, seed=0,
                 momentum=0.9, mse_output="softmax", lrs=None):
    """Return ``{loss: TrainConfig}`` for the three runs, each validated.

    All settings are shared, except the layer stack (see ``duel_layers``) and, when ``lrs``
    maps a loss to a learning rate, that loss's learning rate. Raises ``SpecError`` for an
    invalid stack or setting.
    """
    lrs = lrs or {}
    configs = {}
    for loss, stack in duel_layers(layers, mse_output).items():
        config = TrainConfig(layers=stack, loss=loss, optimizer=optimizer, lr=lrs.get(loss, lr),
                             batch_size=batch_size, epochs=epochs, seed=seed, momentum=momentum)
        config.validate()
        configs[loss] = config
    return configs


def build_duel_models(configs):
    """Return ``{loss: Sequential}``, each built by ``build_for_config`` from the shared seed."""
    return {loss: build_for_config(config) for loss, config in configs.items()}


def parameter_bytes(model):
    """Return the bytes of every parameter of ``model``, in order, as one ``bytes`` object."""
    return b"".join(p.data.tobytes() for p in model.parameters())


@dataclass
class WeightCheck:
    """Outcome of ``check_identical_weights``.

    ``identical``: every model has the same parameter shapes and bytes. ``digests``: the first
    16 hex digits of the SHA-256 of each model's parameter bytes. ``n_params``: parameters per
    model (of the first model when they differ).
    """

    identical: bool
    digests: dict
    n_params: int


def check_identical_weights(models):
    """Compare the parameters of ``{name: model}`` byte for byte and return a ``WeightCheck``."""
    shapes = {name: [p.data.shape for p in model.parameters()] for name, model in models.items()}
    raw = {name: parameter_bytes(model) for name, model in models.items()}
    first = next(iter(models))
    identical = all(shapes[name] == shapes[first] and raw[name] == raw[first] for name in models)
    digests = {name: hashlib.sha256(data).hexdigest()[:16] for name, data in raw.items()}
    n_params = sum(p.data.size for p in models[first].parameters())
    return WeightCheck(identical, digests, n_params)


# ---------------------------------------------------------------------------
# Lockstep training
# ---------------------------------------------------------------------------

@dataclass
class DuelRun:
    """One of the three runs while it trains, and what it measured.

    ``result`` is an ``engine.train.TrainResult``. ``probes`` lists ``{"step", "test_accuracy",
    "test_loss"}`` dicts (step 0 is before training). ``seconds`` is this run's own training
    time (forward, backward and optimizer steps; evaluation excluded). ``batch_digest`` is a
    SHA-256 over the index arrays of every batch this run trained on, in order.
    """

    loss: str
    model: Sequential
    config: TrainConfig
    result: TrainResult = field(default_factory=TrainResult)
    probes: list = field(default_factory=list)
    seconds: float = 0.0
    batch_digest: str = ""

    def __post_init__(self):
        self.stepper = Stepper(self.model, self.config)
        self.loss_fn = self.stepper.loss_fn
        self._hash = hashlib.sha256()
        self._epoch_totals = (0.0, 0, 0)
        self._epoch_started_seconds = 0.0

    @property
    def active(self):
        return self.result.diverged_at_step is None

    def train_step(self, step, idx, x, y):
        """Train on one batch as ``engine.train.fit`` does; return the step event or None.

        Returns None, and restores the last checkpoint, when the loss is not finite.
        """
        self._hash.update(idx.tobytes())
        self.batch_digest = self._hash.hexdigest()
        started = time.perf_counter()
        _, loss_value, batch_correct = self.stepper.step(step, x, y)
        if batch_correct is None:
            self.result.diverged_at_step = step
            self.result.diverged_loss = loss_value
            self.result.steps = step
            log.warning("duel run %s diverged at step %d (loss %s)", self.loss, step, loss_value)
            return None
        self.seconds += time.perf_counter() - started

        loss_sum, correct, seen = self._epoch_totals
        self._epoch_totals = (loss_sum + loss_value * len(idx), correct + batch_correct,
                              seen + len(idx))
        self.result.steps = step
        return {"kind": "step", "epoch": None, "step": step, "train_loss": loss_value,
                "train_accuracy": batch_correct / len(idx),
                "samples_per_second": self._epoch_totals[2] / max(self._epoch_seconds(), 1e-9)}

    def start_epoch(self):
        self._epoch_totals = (0.0, 0, 0)
        self._epoch_started_seconds = self.seconds

    def _epoch_seconds(self):
        return self.seconds - self._epoch_started_seconds

    def end_epoch(self, epoch, step, x_test, y_test):
        """Evaluate on the whole test set and return the epoch event (as ``fit`` sends it)."""
        loss_sum, correct, seen = self._epoch_totals
        test_loss, test_accuracy = evaluate(self.model, self.loss_fn, x_test, y_test)
        seconds = self._epoch_seconds()
        event = {"kind": "epoch", "epoch": epoch, "step": step, "train_loss": loss_sum / seen,
                 "train_accuracy": correct / seen, "test_loss": test_loss,
                 "test_accuracy": test_accuracy,
                 "samples_per_second": seen / seconds if seconds > 0 else 0.0,
                 "seconds": seconds}
        self.result.history.append(event)
        self.result.metrics = {key: event[key] for key in
                               ("epoch", "train_loss", "train_accuracy", "test_loss",
                                "test_accuracy")}
        return event

    def probe(self, step, x_probe, y_probe):
        """Measure test accuracy on the probe slice and return the probe event."""
        test_loss, test_accuracy = evaluate(self.model, self.loss_fn, x_probe, y_probe)
        event = {"kind": "probe", "step": step, "test_accuracy": test_accuracy,
                 "test_loss": test_loss}
        self.probes.append(event)
        return event


@dataclass
class DuelResult:
    """Outcome of ``fit_duel``: ``runs`` maps each loss to its ``DuelRun``.

    ``stopped``: the stop flag ended the duel. ``steps_per_epoch``, ``probe_every`` and
    ``probe_size`` describe how the runs were measured. ``seconds``: wall time of the whole duel.
    """

    runs: dict
    stopped: bool = False
    steps_per_epoch: int = 0
    probe_every: int = DEFAULT_PROBE_EVERY
    probe_size: int = PROBE_SIZE
    seconds: float = 0.0


def fit_duel(models, configs, dataset, callback=None, should_stop=None,
             probe_every=DEFAULT_PROBE_EVERY, on_epoch_end=None):
    """Train ``{loss: model}`` in lockstep on the same batches and return a ``DuelResult``.

    Args:
        models, configs: dicts keyed by loss name (see ``build_duel_models``, ``duel_configs``).
            The configs must share batch size, epochs and seed.
        callback: ``callback(loss, event)`` after each run's step (as ``fit`` sends it), epoch,
            and probe (``{"kind": "probe", "step", "test_accuracy", "test_loss"}``).
        should_stop: called before each batch; the duel ends when it returns True.
        probe_every: measure every run's accuracy on the first ``PROBE_SIZE`` test images every
            this many steps (and before the first); 0 turns probes off.
        on_epoch_end: ``on_epoch_end(epoch, runs)`` with ``{loss: DuelRun}`` once every run
            still training finished the epoch (its epoch event is ``run.result.history[-1]``).

    A run whose loss stops being finite is handled as ``fit`` handles it: its weights go back to
    the last checkpoint and ``diverged_at_step`` is set. That run sits out the rest of the duel
    while the others go on.
    """
    first = next(iter(configs.values()))
    for config in configs.values():
        config.validate()
        if (config.batch_size, config.epochs, config.seed) != \
                (first.batch_size, first.epochs, first.seed):
            raise ValueError("duel configs must share batch_size, epochs and seed")
    callback = callback or (lambda loss, event: None)
    should_stop = should_stop or (lambda: False)
    on_epoch_end = on_epoch_end or (lambda epoch, runs: None)

    # One shuffle generator for all runs, derived from the seed as fit derives it.
    _, shuffle_rng = make_generators(first.seed)
    x_train, y_train = dataset.x_train, dataset.y_train.astype(np.int64)
    y_test = dataset.y_test.astype(np.int64)
    x_probe, y_probe = dataset.x_test[:PROBE_SIZE], y_test[:PROBE_SIZE]
    n = len(x_train)

    runs = {loss: DuelRun(loss, models[loss], configs[loss]) for loss in configs}
    duel = DuelResult(runs=runs, steps_per_epoch=math.ceil(n / first.batch_size),
                      probe_every=probe_every, probe_size=len(y_probe))
    started = time.perf_counter()
    for run in runs.values():
        run.model.train()

    def probe_all(step):
        for run in runs.values():
            if run.active:
                callback(run.loss, run.probe(step, x_probe, y_probe))

    if probe_every:
        probe_all(0)
    step = 0
    for epoch in range(1, first.epochs + 1):
        order = shuffle_rng.permutation(n)
        for run in runs.values():
            run.start_epoch()

        for start in range(0, n, first.batch_size):
            if should_stop():
                duel.stopped = True
                break
            if not any(run.active for run in runs.values()):
                break
            idx = order[start:start + first.batch_size]
            x, y = to_input(x_train[idx]), y_train[idx]
            step += 1
            for run in runs.values():
                if not run.active:
                    continue
                event = run.train_step(step, idx, x, y)
                if event is not None:
                    event["epoch"] = epoch
                    callback(run.loss, event)
            if probe_every and step % probe_every == 0:
                probe_all(step)

        if duel.stopped or not any(run.active for run in runs.values()):
            break
        for run in runs.values():
            if run.active:
                callback(run.loss, run.end_epoch(epoch, step, dataset.x_test, y_test))
        if probe_every and step % probe_every != 0:
            probe_all(step)
        on_epoch_end(epoch, runs)

    for run in runs.values():
        run.model.eval()
        run.result.stopped = duel.stopped
    duel.seconds = time.perf_counter() - started
    return duel


# ---------------------------------------------------------------------------
# Summary: the results table
# ---------------------------------------------------------------------------

def first_step_reaching(events, threshold, key="test_accuracy"):
    """Return the ``step`` of the first event whose ``key`` is at least ``threshold``, or None."""
    for event in events:
        if event[key] >= threshold:
            return event["step"]
    return None


def summarize(duel):
    """Return ``{loss: row}`` for the results table.

    Row keys:

    - ``final_test_accuracy``, ``best_test_accuracy``: whole test set, measured per epoch.
    - ``steps_to_90``, ``steps_to_95``: the step of the first probe at or above the threshold.
      A probe measures the accuracy on the first ``probe_size`` test images every
      ``probe_every`` steps, so these estimates can be up to ``probe_every - 1`` steps late.
    - ``epoch_steps_to_90``, ``epoch_steps_to_95``: the same from the per-epoch test accuracy.
    - ``seconds``, ``final_train_loss``, ``final_test_loss``, ``diverged_at_step``.
    - ``status``: "finished", "stopped" or "diverged".

    Missing values are None.
    """
    rows = {}
    for loss, run in duel.runs.items():
        history = run.result.history
        accuracies = [event["test_accuracy"] for event in history]
        last = history[-1] if history else {}
        if run.result.diverged_at_step is not None:
            status = "diverged"
        elif duel.stopped:
            status = "stopped"
        else:
            status = "finished"
        rows[loss] = {
            "final_test_accuracy": last.get("test_accuracy"),
            "best_test_accuracy": max(accuracies) if accuracies else None,
            "steps_to_90": first_step_reaching(run.probes, THRESHOLDS[0]),
            "steps_to_95": first_step_reaching(run.probes, THRESHOLDS[1]),
            "epoch_steps_to_90": first_step_reaching(history, THRESHOLDS[0]),
            "epoch_steps_to_95": first_step_reaching(history, THRESHOLDS[1]),
            "seconds": run.seconds,
            "final_train_loss": last.get("train_loss"),
            "final_test_loss": last.get("test_loss"),
            "status": status,
            "diverged_at_step": run.result.diverged_at_step,
        }
    return rows


# ---------------------------------------------------------------------------
# Why it happens: the gradient each loss sends to the ten outputs
# ---------------------------------------------------------------------------

def pre_activation(model, x):
    """Return the values ``z`` ``(N, 10)`` before the model's final Softmax or Sigmoid.

    For a model without one (cross-entropy, MSE on raw outputs) these are its outputs, the
    logits. ``x`` is float32 ``(N, 1, 28, 28)``.
    """
    layers = model.layers
    if isinstance(layers[-1], (Softmax, Sigmoid)):
        layers = layers[:-1]
    return Sequential(*layers).predict(x)


@dataclass
class OutputGradient:
    """What one loss makes of one example: ``outputs`` (the ten values the loss sees), ``grad``
    (dLoss/dz for the ten pre-activation values z), and the loss ``value``."""

    outputs: np.ndarray
    grad: np.ndarray
    value: float


def output_gradients(z, label, mse_output="softmax", scale=1.0):
    """Return ``{loss: OutputGradient}`` for one example's pre-activation values ``z`` ``(10,)``.

    ``scale`` multiplies z first: above 1 the network is more confident (its outputs saturate),
    below 1 less. Each loss gets its own output layer (see ``output_layer``) and the gradient
    comes from the engine's autograd: ``loss.backward()`` fills ``z.grad``. The losses average
    over the batch (here 1) and MSE and BCE also over the ten outputs, exactly as in training.
    """
    z = np.asarray(z, dtype=np.float32).reshape(1, -1) * np.float32(scale)
    labels = np.array([int(label)])
    gradients = {}
    for loss in DUEL_LOSSES:
        logits = Tensor(z.copy(), requires_grad=True)
        activation = output_layer(loss, mse_output)
        outputs = logits
        if activation == "Softmax":
            outputs = logits.softmax()
        elif activation == "Sigmoid":
            outputs = logits.sigmoid()
        value = make_loss(loss)(outputs, labels)
        value.backward()
        gradients[loss] = OutputGradient(outputs.data[0].copy(), logits.grad[0].copy(),
                                         float(value.data))
    return gradients


# ---------------------------------------------------------------------------
# Command line: python -m engine duel
# ---------------------------------------------------------------------------

def run_cli(args):
    """Run ``python -m engine duel`` and print one JSON line per epoch with all three runs.

    Returns the exit status: 0, or 1 if a run diverged. Invalid input raises a
    ``DigitLabError`` subclass, which the command line prints as one line (exit status 2).
    """
    from .data import resolve_dataset
    from .spec import parse_spec

    own_lrs = {loss: getattr(args, f"lr_{loss}", None) for loss in DUEL_LOSSES}
    configs = duel_configs(parse_spec(args.layers), optimizer=args.optimizer, lr=args.lr,
                           batch_size=args.batch_size, epochs=args.epochs, seed=args.seed,
                           momentum=args.momentum, mse_output=args.mse_output,
                           lrs={loss: lr for loss, lr in own_lrs.items() if lr is not None})
    source = resolve_dataset(args.data)
    models = build_duel_models(configs)
    check = check_identical_weights(models)
    if not check.identical:
        raise RuntimeError(f"the duel networks start from different weights: {check.digests}")
    for loss, config in configs.items():
        log.info("%s: %s (initial weights sha256 %s)", loss, format_spec(config.layers),
                 check.digests[loss])

    def print_epoch(epoch, runs):
        line = {"epoch": epoch}
        for loss, run in runs.items():
            if run.active:
                event = run.result.history[-1]
                line[loss] = {key: event[key] for key in
                              ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
            else:
                line[loss] = {"diverged_at_step": run.result.diverged_at_step}
        print(json.dumps(line), flush=True)

    duel = fit_duel(models, configs, source.dataset, probe_every=0, on_epoch_end=print_epoch)
    diverged = [loss for loss, run in duel.runs.items() if run.result.diverged_at_step is not None]
    for loss in diverged:
        result = duel.runs[loss].result
        err = TrainingError("train.diverged", step=result.diverged_at_step,
                            value=f"{result.diverged_loss:.4g}",
                            suggestion=f"{configs[loss].lr / 10:g}")
        print(f"error: {loss}: {err}", file=sys.stderr)
    return EXIT_DIVERGED if diverged else 0
