"""The training loop: epochs of shuffled mini-batches, with progress sent to a callback.

The loop itself is short::

    for epoch in range(1, config.epochs + 1):
        for batch in shuffled mini-batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
        evaluate on the test set

Everything else here serves the app: events after every step and epoch, a stop flag checked
between batches, and a guard that stops a run whose loss is no longer finite.
"""

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .augment import random_affine
from .data import to_input
from .errors import SpecError
from .losses import make_loss
from .optim import make_optimizer
from .spec import build_model, describe
from .tensor import Tensor, no_grad

log = logging.getLogger(__name__)

EVAL_BATCH_SIZE = 2000
# A loss more than this many times the first step's loss counts as diverged, like a loss that is
# no longer finite. A learning rate far too high usually blows the loss up and kills every ReLU
# long before anything overflows, and such a run would otherwise "finish" at chance accuracy.
DIVERGENCE_FACTOR = 100
# Weights are copied every this many steps, so a diverging run can go back to recent finite ones.
CHECKPOINT_EVERY = 50


@dataclass
class TrainConfig:
    """Everything that defines a training run; the same config and data give the same result.

    Defaults: cross-entropy, Adam with learning rate 1e-3, batch size 64, 3 epochs, seed 0.
    ``momentum`` applies to the ``"momentum"`` optimizer only. ``augment`` moves every training
    image by a small random affine transform each time it is used (see ``engine.augment``).
    """

    layers: list
    loss: str = "ce"
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    epochs: int = 3
    seed: int = 0
    momentum: float = 0.9
    weight_decay: float = 0.0
    augment: bool = False

    def validate(self):
        """Raise ``SpecError`` on the first invalid setting; return the layer infos otherwise."""
        infos = describe(self.layers)
        make_loss(self.loss)
        if not (_is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            raise SpecError("optim.bad_lr", value=self.lr)
        if not (_is_whole(self.batch_size) and self.batch_size >= 1):
            raise SpecError("train.bad_batch_size", value=self.batch_size)
        if not (_is_whole(self.epochs) and self.epochs >= 1):
            raise SpecError("train.bad_epochs", value=self.epochs)
        if not (_is_whole(self.seed) and 0 <= self.seed < 2**32):
            raise SpecError("train.bad_seed", value=self.seed)
        if not (_is_number(self.momentum) and 0 <= self.momentum < 1):
            raise SpecError("train.bad_momentum", value=self.momentum)
        make_optimizer(self.optimizer, [], self.lr, self.momentum, self.weight_decay)
        return infos

    def optimizer_settings(self):
        """Return the optimizer part of a model file's header."""
        settings = {"name": self.optimizer, "lr": self.lr, "batch_size": self.batch_size,
                    "epochs": self.epochs, "seed": self.seed}
        if self.optimizer == "momentum":
            settings["momentum"] = self.momentum
        if self.weight_decay:
            settings["weight_decay"] = self.weight_decay
        if self.augment:
            settings["augment"] = True
        return settings


def _is_whole(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass
class TrainResult:
    """Outcome of ``fit``.

    ``history``: the epoch events in order. ``metrics``: the last epoch's measures (empty if no
    epoch finished). ``stopped``: the stop flag ended the run. ``diverged_at_step``: the step
    whose loss diverged (see ``Stepper.diverged``), or None; ``diverged_loss``: that loss. ``steps``: optimizer steps taken.
    """

    history: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    stopped: bool = False
    diverged_at_step: int | None = None
    diverged_loss: float | None = None
    steps: int = 0


def make_generators(seed):
    """Return independent generators ``(model_rng, shuffle_rng)`` derived from one seed.

    Keeping them apart means the batch order does not depend on how many random numbers the
    initialisation or dropout used, so networks that differ only in their output layer see the
    same batches.
    """
    model_seed, shuffle_seed = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(model_seed), np.random.default_rng(shuffle_seed)


def make_augment_generator(seed):
    """Return the generator of augmentation transforms, independent of ``make_generators``."""
    # Spawned children depend only on their position, so the third is new and the first two
    # are the ones make_generators returns.
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])


def build_for_config(config):
    """Validate ``config`` and build its network with the config's seed."""
    config.validate()
    model_rng, _ = make_generators(config.seed)
    return build_model(config.layers, model_rng)


def evaluate(model, loss_fn, images, labels, batch_size=EVAL_BATCH_SIZE):
    """Return ``(mean loss, argmax accuracy)`` of ``model`` on uint8 images ``(N, 28, 28)``."""
    total_loss = 0.0
    correct = 0
    with no_grad():
        for start in range(0, len(images), batch_size):
            outputs = model.predict(to_input(images[start:start + batch_size]))
            batch_labels = labels[start:start + batch_size]
            total_loss += float(loss_fn(Tensor(outputs), batch_labels).data) * len(batch_labels)
            correct += int((outputs.argmax(axis=1) == batch_labels).sum())
    return total_loss / len(images), correct / len(images)


class Stepper:
    """One network's loss, optimizer and checkpoint: the per-batch work of a training run.

    ``fit`` uses one; the loss duel uses three on the same batches. The checkpoint is a copy of
    the weights taken every ``CHECKPOINT_EVERY`` steps, before the update of a step whose loss
    was finite, so a diverging run can go back to recent weights that gave a finite loss.
    """

    def __init__(self, model, config):
        self.model = model
        self.loss_fn = make_loss(config.loss)
        self.params = model.parameters()
        self.optimizer = make_optimizer(config.optimizer, self.params, config.lr, config.momentum,
                                        config.weight_decay)
        self.checkpoint = [p.data.copy() for p in self.params]
        self.first_loss = None

    def diverged(self, loss_value):
        """Return whether ``loss_value`` is not finite or above ``DIVERGENCE_FACTOR`` times the
        first step's loss."""
        if not math.isfinite(loss_value):
            return True
        if self.first_loss is None:
            self.first_loss = loss_value
            return False
        return loss_value > DIVERGENCE_FACTOR * self.first_loss

    def step(self, step, x, y):
        """Train on the batch ``x``, ``y`` and return ``(outputs, loss value, correct count)``.

        When the loss has diverged (see ``diverged``) nothing is updated: the weights go back to
        the checkpoint and the correct count is None.
        """
        outputs = self.model(Tensor(x))
        loss = self.loss_fn(outputs, y)
        loss_value = float(loss.data)
        if self.diverged(loss_value):
            for p, saved in zip(self.params, self.checkpoint):
                np.copyto(p.data, saved)
            return outputs.data, loss_value, None
        if step % CHECKPOINT_EVERY == 0:
            for p, saved in zip(self.params, self.checkpoint):
                np.copyto(saved, p.data)

        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return outputs.data, loss_value, int((outputs.data.argmax(axis=1) == y).sum())


def fit(model, config, dataset, callback=None, should_stop=None):
    """Train ``model`` on ``dataset`` with the settings of ``config``; return a ``TrainResult``.

    Args:
        callback: called with a dict after every step (``kind="step"``: epoch, step,
            train_loss, train_accuracy, samples_per_second) and after every epoch
            (``kind="epoch"``: epoch, step, train_loss, train_accuracy, test_loss,
            test_accuracy, samples_per_second, seconds). ``step`` counts from 1 over the run.
        should_stop: called between batches; training ends when it returns True.

    A step whose loss diverged (not finite, or over 100 times the first step's loss) is not
    applied: training ends, ``diverged_at_step`` names the step, and the model gets back the
    weights of the last checkpoint (copied every 50 steps, before the update of a step whose
    loss had not diverged). Raises ``SpecError`` for an invalid config.
    """
    config.validate()
    stepper = Stepper(model, config)
    _, shuffle_rng = make_generators(config.seed)
    augment_rng = make_augment_generator(config.seed) if config.augment else None
    callback = callback or (lambda event: None)
    should_stop = should_stop or (lambda: False)

    x_train, y_train = dataset.x_train, dataset.y_train.astype(np.int64)
    y_test = dataset.y_test.astype(np.int64)
    n = len(x_train)
    result = TrainResult()
    step = 0
    model.train()

    # A diverging run overflows; the finite-loss check handles it, so numpy's warnings about
    # the overflow would only be noise in the log.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(1, config.epochs + 1):
            order = shuffle_rng.permutation(n)
            loss_sum = correct = seen = 0
            started = time.perf_counter()

            for start in range(0, n, config.batch_size):
                if should_stop():
                    result.stopped = True
                    break
                idx = order[start:start + config.batch_size]
                x, y = to_input(x_train[idx]), y_train[idx]
                if augment_rng is not None:
                    x = random_affine(x, augment_rng)

                step += 1
                _, loss_value, batch_correct = stepper.step(step, x, y)
                if batch_correct is None:
                    result.diverged_at_step = step
                    result.diverged_loss = loss_value
                    log.warning("training diverged at step %d (loss %s)", step, loss_value)
                    break

                loss_sum += loss_value * len(idx)
                correct += batch_correct
                seen += len(idx)
                elapsed = time.perf_counter() - started
                callback({"kind": "step", "epoch": epoch, "step": step, "train_loss": loss_value,
                          "train_accuracy": batch_correct / len(idx),
                          "samples_per_second": seen / elapsed if elapsed > 0 else 0.0})

            train_seconds = time.perf_counter() - started
            result.steps = step
            if result.stopped or result.diverged_at_step is not None or seen < n:
                break

            test_loss, test_accuracy = evaluate(model, stepper.loss_fn, dataset.x_test, y_test)
            event = {"kind": "epoch", "epoch": epoch, "step": step, "train_loss": loss_sum / seen,
                     "train_accuracy": correct / seen, "test_loss": test_loss,
                     "test_accuracy": test_accuracy, "samples_per_second": seen / train_seconds,
                     "seconds": train_seconds}
            result.history.append(event)
            result.metrics = {key: event[key] for key in
                              ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")}
            callback(event)

    model.eval()
    return result
