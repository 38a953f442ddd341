"""Computations of the loss-duel page, without Streamlit: the job, chart rows, table rows, runs.

The page (``ui/pages/duel.py``) only lays out widgets. The numbers it shows come from here and
from ``engine.duel``, so tests can check them directly.
"""

import logging
import math
import uuid
from dataclasses import dataclass, field

import numpy as np

from engine.data import to_input
from engine.duel import (
    DUEL_LOSSES, PROBE_SIZE, build_duel_models, check_identical_weights, fit_duel, pre_activation,
    summarize,
)
from engine.losses import make_loss
from engine.modelfile import make_header
from engine.spec import normalise
from engine.train import build_for_config, evaluate
from ui.runs import Run
from ui.train_logic import smooth
from ui.worker import steps_per_epoch

log = logging.getLogger(__name__)

DEFAULT_SPEC = "flatten,linear:128,relu,linear:10"
# Probes (test accuracy on a fixed slice of the test set) per epoch, and the bounds on the
# number of steps between two probes.
PROBES_PER_EPOCH = 10
MIN_PROBE_EVERY, MAX_PROBE_EVERY = 5, 50
# Confidence factors offered by the gradient panel's slider (they multiply z).
CONFIDENCE_STEPS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
# Colours of the three runs in every chart.
COLOURS = {"ce": "#1f77b4", "mse": "#e4572e", "bce": "#2ca02c"}


def probe_interval(n_steps_per_epoch):
    """Return the steps between two probes: about ``PROBES_PER_EPOCH`` per epoch, within bounds."""
    return int(min(MAX_PROBE_EVERY, max(MIN_PROBE_EVERY, n_steps_per_epoch // PROBES_PER_EPOCH)))


@dataclass
class DuelSetup:
    """One duel as the page keeps it in the session.

    ``models`` are trained in place by the job's thread; ``initial`` is a separate copy of the
    starting weights (for the gradient panel). ``probes`` maps each loss to the probe events,
    appended by the training thread (``list.append`` is atomic in CPython) and copied by the page.
    ``run_ids`` maps each loss to its session run once the duel has ended. ``shown_done`` is
    set once a full page run has shown the ended duel.
    """

    configs: dict
    models: dict
    initial: object
    check: object
    dataset: object
    data_kind: str
    mse_output: str
    probe_every: int
    probes: dict = field(default_factory=lambda: {loss: [] for loss in DUEL_LOSSES})
    job: object = None
    run_ids: dict = field(default_factory=dict)
    shown_done: bool = False
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def first(self):
        return self.configs["ce"]

    @property
    def steps_per_epoch(self):
        return steps_per_epoch(self.dataset.n_train, self.first.batch_size)

    @property
    def probe_size(self):
        return min(PROBE_SIZE, self.dataset.n_test)

    @property
    def total_steps(self):
        return self.steps_per_epoch * self.first.epochs


def prepare_duel(configs, dataset, data_kind, mse_output):
    """Build the three networks and their weight check; return a ``DuelSetup`` (not started)."""
    models = build_duel_models(configs)
    check = check_identical_weights(models)
    initial = build_for_config(configs["ce"])
    n_steps = steps_per_epoch(dataset.n_train, configs["ce"].batch_size)
    return DuelSetup(configs=configs, models=models, initial=initial, check=check,
                     dataset=dataset, data_kind=data_kind, mse_output=mse_output,
                     probe_every=probe_interval(n_steps))


def make_duel_work(setup):
    """Return the ``work(job)`` function of a ``ui.worker.TrainingJob`` that runs the duel.

    Step and epoch events go to ``job.record`` under the loss's series; probe events go to
    ``setup.probes``.
    """

    def work(job):
        job.total_steps = setup.total_steps

        def route(loss, event):
            if event["kind"] == "probe":
                setup.probes[loss].append(event)
            else:
                job.record(event, series=loss)

        return fit_duel(setup.models, setup.configs, setup.dataset, callback=route,
                        should_stop=job.should_stop, probe_every=setup.probe_every)

    return work


# ---------------------------------------------------------------------------
# Chart rows
# ---------------------------------------------------------------------------

def accuracy_rows(snapshot, probes, n_steps_per_epoch):
    """Return rows ``{"loss", "epoch", "value", "measure"}`` for the two accuracy charts.

    Measures: ``"probe"`` (test accuracy on the probe slice, every few steps), ``"test"``
    (whole test set, end of each epoch) and ``"train"`` (training accuracy per step, averaged
    into the worker's buckets and smoothed). The x value is the position in epochs.
    """
    rows = []
    for loss in DUEL_LOSSES:
        series = snapshot["series"].get(loss, {})
        for probe in probes.get(loss, []):
            rows.append({"loss": loss, "epoch": probe["step"] / n_steps_per_epoch,
                         "value": probe["test_accuracy"], "measure": "probe"})
        for event in series.get("epochs", []):
            rows.append({"loss": loss, "epoch": float(event["epoch"]),
                         "value": event["test_accuracy"], "measure": "test"})
        steps = series.get("steps", [])
        for step, value in zip(steps, smooth(series.get("train_accuracy", []))):
            rows.append({"loss": loss, "epoch": step / n_steps_per_epoch, "value": value,
                         "measure": "train"})
    return rows


def zoomed_lower_bound(values, quantile=0.1, margin=0.01):
    """Return the lower end of a zoomed accuracy axis: the ``quantile`` of ``values`` less
    ``margin``, rounded down to a whole percent (0 without values).

    The first, low values of a run fall below it and are cut off, so the axis shows the
    differences near the top, where the runs end.
    """
    if not values:
        return 0.0
    low = float(np.quantile(np.asarray(values, dtype=np.float64), quantile)) - margin
    return max(0.0, math.floor(low * 100) / 100)


def loss_rows(snapshot, loss, n_steps_per_epoch):
    """Return rows ``{"epoch", "value", "measure"}`` for one loss's own chart.

    Measures: ``"train"`` (training loss per step, smoothed) and ``"test"`` (test loss at the
    end of each epoch). Values that are not finite are left out.
    """
    rows = []
    series = snapshot["series"].get(loss, {})
    steps = series.get("steps", [])
    for step, value in zip(steps, smooth(series.get("train_loss", []))):
        rows.append({"epoch": step / n_steps_per_epoch, "value": value, "measure": "train"})
    for event in series.get("epochs", []):
        rows.append({"epoch": float(event["epoch"]), "value": event["test_loss"],
                     "measure": "test"})
    return [row for row in rows if math.isfinite(row["value"])]


def run_progress(snapshot, probes):
    """Return ``{loss: {"step", "epoch", "probe_accuracy"}}`` of each run's latest numbers."""
    progress = {}
    for loss in DUEL_LOSSES:
        series = snapshot["series"].get(loss, {})
        steps = series.get("steps", [])
        epochs = series.get("epochs", [])
        latest_probe = probes.get(loss, [])[-1:] or [None]
        progress[loss] = {
            "step": steps[-1] if steps else 0,
            "epoch": epochs[-1]["epoch"] if epochs else 0,
            "probe_accuracy": latest_probe[0]["test_accuracy"] if latest_probe[0] else None,
        }
    return progress


# ---------------------------------------------------------------------------
# Results and runs
# ---------------------------------------------------------------------------

def result_rows(setup):
    """Return ``summarize`` of the finished duel, or None while it has no result."""
    if setup.job is None or setup.job.result is None:
        return None
    return summarize(setup.job.result)


def make_runs(setup, snapshot, names):
    """Return ``{loss: ui.runs.Run}`` for the three trained networks.

    ``names`` maps each loss to its session-run name. Each header is a model file header with
    the duel's settings added under ``"duel"``: its id, the MSE output and the SHA-256 prefix
    of the shared starting weights.
    """
    duel = setup.job.result
    rows = summarize(duel)
    runs = {}
    for loss, duel_run in duel.runs.items():
        config = setup.configs[loss]
        metrics = dict(duel_run.result.metrics)
        if rows[loss]["status"] != "finished" and duel_run.result.steps > 0:
            # A stopped or diverged run: measure the weights it ended with (as the train
            # page does), so the draw page shows their accuracy.
            test_loss, test_accuracy = evaluate(duel_run.model, make_loss(loss),
                                                setup.dataset.x_test,
                                                setup.dataset.y_test.astype(np.int64))
            metrics.update(test_loss=test_loss, test_accuracy=test_accuracy)
        header = make_header(
            normalise(config.layers), loss, config.optimizer_settings(),
            dataset={"name": setup.dataset.name, "kind": setup.data_kind,
                     "n_train": setup.dataset.n_train},
            metrics=metrics,
            duel={"id": setup.id, "mse_output": setup.mse_output,
                  "initial_weights_sha256": setup.check.digests[loss]},
        )
        runs[loss] = Run(name=names[loss], model=duel_run.model, header=header,
                         curves=snapshot["series"].get(loss, {}), status=rows[loss]["status"])
    return runs


# ---------------------------------------------------------------------------
# The gradient panel
# ---------------------------------------------------------------------------

def example_logits(model, image):
    """Return the ten pre-activation values z of ``model`` for one image.

    ``image`` is uint8 ``(28, 28)`` (a test image) or float32 ``(28, 28)`` in 0..1 (a drawing).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        x = to_input(image)
    else:
        x = image.astype(np.float32).reshape(1, 1, 28, 28)
    return pre_activation(model, x)[0]


def find_misclassified(model, images, labels, after):
    """Return the index of the next test image after ``after`` (wrapping) that ``model`` gets
    wrong, or None if it gets them all right."""
    predictions = pre_activation(model, to_input(images)).argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    if len(wrong) == 0:
        return None
    later = wrong[wrong > after]
    return int(later[0] if len(later) else wrong[0])


def softmax(z):
    """Return the softmax of a vector ``z`` ``(10,)`` as float32 probabilities."""
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max())
    return e / e.sum()


def gradient_rows(gradients, target):
    """Return rows ``{"loss", "digit", "gradient", "output", "is_target"}`` for the bar charts."""
    rows = []
    for loss in DUEL_LOSSES:
        item = gradients[loss]
        for digit in range(10):
            rows.append({"loss": loss, "digit": str(digit), "gradient": float(item.grad[digit]),
                         "output": float(item.outputs[digit]), "is_target": digit == target})
    return rows
