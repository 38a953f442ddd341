"""What the train page computes, without Streamlit: presets, loss checks, time budgets and curves.

Everything here is plain Python and NumPy, so tests call it directly and the page files only
lay out widgets. A layer stack is the engine's spec (a list of dicts such as
``{"type": "Linear", "units": 64}``). The page adds an ``"id"`` to each row so that widget keys
follow a layer when it moves, and ``strip_ids`` removes it before the stack goes to the engine.
"""

import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from engine.data import to_input
from engine.errors import DigitLabError
from engine.losses import make_loss
from engine.optim import make_optimizer
from engine.spec import LAYER_TYPES, build_model, parse_spec
from engine.tensor import Tensor
from engine.train import evaluate, fit, build_for_config
from ui.worker import steps_per_epoch

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Network presets and the layer stack
# ---------------------------------------------------------------------------

# Preset name -> compact spec. "tutorial" is the network this project started from.
NETWORK_PRESETS = {
    "tutorial": "flatten,dropout:0.2,linear:64,relu,linear:10",
    "logistic": "flatten,linear:10",
    "mlp_relu": "flatten,linear:128,relu,linear:64,relu,linear:10",
    "mlp_sigmoid": "flatten,linear:128,sigmoid,linear:64,sigmoid,linear:10",
}
DEFAULT_PRESET = "tutorial"
CUSTOM_PRESET = "custom"

LOSS_NAMES = ("ce", "mse", "bce")
OPTIMIZER_NAMES = ("sgd", "momentum", "adam")
# A learning rate that trains each optimizer well on MNIST; the page sets it when the
# learner switches optimizer.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "adam": 0.001}
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512)

# Settings of a layer type that has one, with the value a newly added layer gets.
DEFAULT_SETTING = {"Linear": ("units", 64), "Dropout": ("p", 0.2)}


def new_layer(type_name, value=None):
    """Return a stack row of ``type_name`` with a fresh id and the default (or given) setting."""
    layer = {"id": uuid.uuid4().hex[:8], "type": type_name}
    if type_name in DEFAULT_SETTING:
        setting, default = DEFAULT_SETTING[type_name]
        layer[setting] = default if value is None else value
    return layer


def with_ids(spec):
    """Return stack rows (with ids) for an engine spec such as ``parse_spec`` returns."""
    rows = []
    for layer in spec:
        row = {"id": uuid.uuid4().hex[:8]}
        row.update(layer)
        rows.append(row)
    return rows


def strip_ids(rows):
    """Return the engine spec of stack rows: the same dicts without their ``"id"``."""
    return [{key: value for key, value in row.items() if key != "id"} for row in rows]


def preset_rows(name):
    return with_ids(parse_spec(NETWORK_PRESETS[name]))


def spec_text(spec):
    """Return the compact text form of ``spec``, like ``format_spec``, even for an invalid stack.

    A layer that lacks its setting is written without one (``"dropout"``), so the text form
    shows the stack as it is and ``describe`` names the problem.
    """
    tokens = []
    for layer in spec:
        token = str(layer.get("type", "")).lower()
        setting = LAYER_TYPES.get(layer.get("type"), (None, None))[1]
        if setting is not None and setting in layer:
            token += f":{layer[setting]}"
        tokens.append(token)
    return ",".join(tokens)


def matching_preset(spec):
    """Return the preset whose stack equals ``spec``, or ``CUSTOM_PRESET``."""
    for name, text in NETWORK_PRESETS.items():
        if parse_spec(text) == spec:
            return name
    return CUSTOM_PRESET


def move_layer(rows, index, offset):
    """Return ``rows`` with the row at ``index`` moved by ``offset`` (-1 up, +1 down), if it can."""
    target = index + offset
    if not (0 <= index < len(rows) and 0 <= target < len(rows)):
        return list(rows)
    rows = list(rows)
    rows[index], rows[target] = rows[target], rows[index]
    return rows


def change_type(row, type_name):
    """Return ``row`` as a layer of ``type_name``, keeping its id (and its setting if it fits)."""
    changed = new_layer(type_name)
    changed["id"] = row["id"]
    setting = LAYER_TYPES[type_name][1]
    if setting is not None and setting in row:
        changed[setting] = row[setting]
    return changed


# ---------------------------------------------------------------------------
# Does the loss fit the network's output?
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Advice:
    """One loss/output remark: a message key, ``"warning"`` or ``"info"``, and an optional fix.

    ``fix`` is ``("remove", index)`` (0-based row to delete) or ``("append", type_name)``;
    ``fix_key`` names the fix button's label.
    """

    key: str
    level: str
    fix: tuple | None = None
    fix_key: str | None = None


def output_layer(spec):
    """Return ``(index, type)`` of the layer that produces the outputs, skipping trailing Dropout.

    Returns ``(None, None)`` for an empty stack.
    """
    for index in range(len(spec) - 1, -1, -1):
        type_name = str(spec[index].get("type", ""))
        if type_name.lower() != "dropout":
            return index, _canonical_type(type_name)
    return None, None


def _canonical_type(type_name):
    for name in LAYER_TYPES:
        if name.lower() == type_name.lower():
            return name
    return type_name


def loss_advice(spec, loss):
    """Return the ``Advice`` list for training ``spec`` with ``loss`` (empty when they fit).

    Cross-entropy applies softmax itself, so it expects raw scores (logits). BCE takes the log of
    each output, so it expects probabilities in 0..1. MSE works on either, with different
    behaviour, so it only informs.
    """
    index, output = output_layer(spec)
    if index is None:
        return []

    if loss == "ce" and output == "Softmax":
        return [Advice("train.advice.ce_softmax", "warning", ("remove", index),
                       "train.fix.remove_softmax")]
    if loss == "ce" and output == "Sigmoid":
        return [Advice("train.advice.ce_sigmoid", "warning", ("remove", index),
                       "train.fix.remove_sigmoid")]
    if loss == "bce" and output not in ("Sigmoid", "Softmax"):
        return [Advice("train.advice.bce_raw", "warning", ("append", "Sigmoid"),
                       "train.fix.append_sigmoid")]
    if loss == "mse" and output in ("Sigmoid", "Softmax"):
        return [Advice("train.advice.mse_probabilities", "info", ("remove", index),
                       "train.fix.remove_" + output.lower())]
    if loss == "mse":
        return [Advice("train.advice.mse_raw", "info", ("append", "Softmax"),
                       "train.fix.append_softmax")]
    return []


def apply_fix(rows, fix):
    """Return ``rows`` changed by an ``Advice.fix``."""
    action, argument = fix
    if action == "remove":
        return [row for position, row in enumerate(rows) if position != argument]
    if action == "append":
        return list(rows) + [new_layer(argument)]
    raise ValueError(f"unknown fix {fix!r}")


# ---------------------------------------------------------------------------
# Speed and time budgets
# ---------------------------------------------------------------------------

# A run in the app reaches about this share of the speed measured alone, because the server,
# the browser and the charts share the CPU. Estimated from runs on a 2-core machine.
APP_SPEED_SHARE = 0.8
SPEED_PROBE_SECONDS = 0.3
SPEED_PROBE_WINDOWS = 3
_speed_cache = {}
_speed_lock = threading.Lock()


def measure_speed(spec, loss="ce", optimizer="adam", batch_size=64):
    """Return the training samples/s of ``spec`` on this machine, measured once per process.

    Trains a fresh network on random images for about 0.3 s after 5 warm-up steps, in 3 windows,
    and keeps the fastest window. The result is cached by (spec, loss, optimizer, batch size). Raises ``DigitLabError`` for an invalid spec.
    """
    key = (repr(spec), loss, optimizer, batch_size)
    with _speed_lock:
        if key in _speed_cache:
            return _speed_cache[key]

    rng = np.random.default_rng(0)
    model = build_model(spec, rng)
    loss_fn = make_loss(loss)
    opt = make_optimizer(optimizer, model.parameters(), DEFAULT_LR[optimizer])
    images = rng.integers(0, 256, size=(batch_size, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=batch_size)

    def step():
        loss_value = loss_fn(model(Tensor(to_input(images))), labels)
        opt.zero_grad()
        loss_value.backward()
        opt.step()

    # Random images with a large learning rate may overflow; only the time matters here.
    # The best of a few short windows is kept, because a busy machine slows some of them.
    speed = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(5):
            step()
        for _ in range(SPEED_PROBE_WINDOWS):
            steps = 0
            started = time.perf_counter()
            while time.perf_counter() - started < SPEED_PROBE_SECONDS / SPEED_PROBE_WINDOWS:
                step()
                steps += 1
            speed = max(speed, steps * batch_size / (time.perf_counter() - started))

    with _speed_lock:
        _speed_cache[key] = speed
    return speed


def estimate_seconds(speed, n_train, n_test, epochs):
    """Return the estimated wall time of a run in the app, in seconds.

    Testing an image costs about a third of training on it (forward pass only).
    """
    app_speed = speed * APP_SPEED_SHARE
    return epochs * (n_train + n_test / 3) / app_speed


# Time budgets of the quick presets, in seconds (None: train to a good accuracy, however long).
BUDGETS = {"seconds_10": 10, "minute": 60, "full": None}
FULL_EPOCHS = 20
# A time budget never chooses more epochs than the full preset trains.
MAX_BUDGET_EPOCHS = FULL_EPOCHS


@dataclass(frozen=True)
class BudgetSettings:
    """Settings a time-budget preset chooses: data source ``"mnist"`` or ``"bundled"``."""

    data: str
    batch_size: int
    epochs: int


def budget_settings(budget, speed_for_batch, mnist_sizes, bundled_sizes):
    """Choose data, batch size and epochs so a run takes about ``BUDGETS[budget]`` seconds.

    Args:
        speed_for_batch: ``speed_for_batch(batch_size) -> samples/s`` of the current network.
        mnist_sizes, bundled_sizes: ``(n_train, n_test)`` of the two data sets.

    About 10 s uses batch size 128 and full MNIST when at least one epoch fits, else the bundled
    subset. A minute uses batch size 64 on MNIST. "full" trains 20 epochs of MNIST at batch size
    64. Always at least 1 epoch, so a slow network can overrun its budget, and at most 20, so a
    fast network can finish early.
    """
    seconds = BUDGETS[budget]
    if seconds is None:
        return BudgetSettings("mnist", 64, FULL_EPOCHS)

    batch_size = 128 if seconds <= 10 else 64
    speed = speed_for_batch(batch_size)
    per_epoch = estimate_seconds(speed, *mnist_sizes, epochs=1)
    data, sizes = "mnist", mnist_sizes
    if per_epoch > seconds and seconds <= 10:
        data, sizes = "bundled", bundled_sizes
        per_epoch = estimate_seconds(speed, *sizes, epochs=1)
    epochs = max(1, min(MAX_BUDGET_EPOCHS, math.floor(seconds / per_epoch)))
    return BudgetSettings(data, batch_size, epochs)


# ---------------------------------------------------------------------------
# The training job's work and its outcome
# ---------------------------------------------------------------------------

@dataclass
class TrainOutcome:
    """Result of a finished job: the network, the engine's ``TrainResult`` and final measures.

    ``metrics`` are the last epoch's measures, or, for a run that stopped or diverged, the test
    loss and accuracy of the weights it ended with. ``seconds`` is the wall time of ``fit``.
    """

    model: object
    result: object
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def diverged_at_step(self):
        return self.result.diverged_at_step

    @property
    def samples_per_second(self):
        """Mean training speed over the finished epochs (None before the first one ends)."""
        rates = [event["samples_per_second"] for event in self.result.history]
        return sum(rates) / len(rates) if rates else None


def make_work(config, dataset):
    """Return the ``work(job)`` function of a ``ui.worker.TrainingJob`` training ``config``."""

    def work(job):
        # A diverging run overflows before fit() stops it at that step. The page reports the
        # step, so NumPy's overflow warnings would only repeat it in the server log.
        with np.errstate(over="ignore", invalid="ignore"):
            return _train(job)

    def _train(job):
        model = build_for_config(config)
        job.total_steps = steps_per_epoch(dataset.n_train, config.batch_size) * config.epochs
        started = time.perf_counter()
        result = fit(model, config, dataset, callback=job.record, should_stop=job.should_stop)
        seconds = time.perf_counter() - started

        metrics = dict(result.metrics)
        partial = result.stopped or result.diverged_at_step is not None or not result.history
        if partial and result.steps > 0:
            test_loss, test_accuracy = evaluate(model, make_loss(config.loss), dataset.x_test,
                                                dataset.y_test.astype(np.int64))
            metrics.update(test_loss=test_loss, test_accuracy=test_accuracy)
        return TrainOutcome(model, result, metrics, seconds)

    return work


def suggested_lr(lr):
    """Return a learning rate ten times lower, as text (``0.5`` -> ``"0.05"``)."""
    return f"{lr / 10:g}"


def validate_config(config):
    """Return None if ``config`` is valid, else the ``DigitLabError`` that explains why."""
    try:
        config.validate()
    except DigitLabError as err:
        return err
    return None


# ---------------------------------------------------------------------------
# Curves for the charts
# ---------------------------------------------------------------------------

SMOOTHING = 0.8


def smooth(values, weight=SMOOTHING):
    """Exponential moving average with start-up bias correction (as TensorBoard smooths).

    ``weight`` 0 returns the values unchanged; closer to 1 smooths more.
    """
    smoothed = []
    average = 0.0
    for count, value in enumerate(values, start=1):
        average = weight * average + (1 - weight) * value
        smoothed.append(average / (1 - weight ** count))
    return smoothed


def loss_points(series, steps_in_epoch):
    """Return chart rows ``{"epoch", "value", "curve"}`` for the loss chart.

    Curves: ``"train"`` (training loss per step, already averaged into buckets by the worker),
    ``"train_smoothed"`` and ``"test"`` (test loss at the end of each epoch). The x value is
    the position in epochs (step / steps per epoch).
    """
    rows = []
    steps = series.get("steps", [])
    losses = series.get("train_loss", [])
    for step, value in zip(steps, losses):
        rows.append({"epoch": step / steps_in_epoch, "value": value, "curve": "train"})
    for step, value in zip(steps, smooth(losses)):
        rows.append({"epoch": step / steps_in_epoch, "value": value, "curve": "train_smoothed"})
    for event in series.get("epochs", []):
        rows.append({"epoch": float(event["epoch"]), "value": event["test_loss"], "curve": "test"})
    return [row for row in rows if math.isfinite(row["value"])]


def accuracy_points(series, steps_in_epoch):
    """Return chart rows ``{"epoch", "value", "curve"}`` for the accuracy chart.

    Curves: ``"train_smoothed"`` (training accuracy per step, smoothed) and ``"test"`` (test
    accuracy at the end of each epoch).
    """
    rows = []
    steps = series.get("steps", [])
    for step, value in zip(steps, smooth(series.get("train_accuracy", []))):
        rows.append({"epoch": step / steps_in_epoch, "value": value, "curve": "train_smoothed"})
    for event in series.get("epochs", []):
        rows.append({"epoch": float(event["epoch"]), "value": event["test_accuracy"],
                     "curve": "test"})
    return rows
