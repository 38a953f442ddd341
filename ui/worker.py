"""Background training for the app: one job per run, a server-wide limit, and bounded curves.

A page starts a ``TrainingJob`` from a button callback. The job's thread waits for one of the
server's training slots (``DIGIT_LAB_MAX_TRAININGS``, default 2), then calls its ``work``
function, which trains with ``job.record`` as the engine callback and ``job.should_stop`` as the
stop flag. The thread never calls ``st.*`` and never touches ``st.session_state``: it writes to
the job under a lock, and a page fragment reads ``job.snapshot()`` and redraws.

A job stops when its Stop button sets the stop flag, or when its browser session has been gone
for ``SESSION_GRACE_SECONDS`` (a closed or reloaded tab).
"""

import logging
import math
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_TRAININGS_ENV = "DIGIT_LAB_MAX_TRAININGS"
DEFAULT_MAX_TRAININGS = 2
SESSION_GRACE_SECONDS = 3.0
SESSION_CHECK_SECONDS = 0.5
MAX_CURVE_POINTS = 400

QUEUED, RUNNING, PAUSED, FINISHED, STOPPED, DIVERGED, FAILED = (
    "queued", "running", "paused", "finished", "stopped", "diverged", "failed")
DONE_STATES = (FINISHED, STOPPED, DIVERGED, FAILED)


def max_trainings_from_env(environ=None):
    """Return the configured number of concurrent trainings per server (at least 1)."""
    environ = os.environ if environ is None else environ
    value = environ.get(MAX_TRAININGS_ENV, "")
    try:
        limit = int(value) if value else DEFAULT_MAX_TRAININGS
    except ValueError:
        log.warning("%s=%r is not a whole number; using %d", MAX_TRAININGS_ENV, value,
                    DEFAULT_MAX_TRAININGS)
        return DEFAULT_MAX_TRAININGS
    return max(limit, 1)


class TrainingSlots:
    """At most ``limit`` jobs hold a slot at once; the others wait in first-come order."""

    def __init__(self, limit):
        self.limit = limit
        self._condition = threading.Condition()
        self._running = set()
        self._waiting = deque()

    def acquire(self, job, give_up, poll_seconds=0.25):
        """Block until ``job`` holds a slot (True) or ``give_up()`` returns True (False)."""
        with self._condition:
            self._waiting.append(job)
            try:
                while not (self._waiting[0] is job and len(self._running) < self.limit):
                    if give_up():
                        return False
                    self._condition.wait(poll_seconds)
                self._running.add(job)
                return True
            finally:
                self._waiting.remove(job)
                self._condition.notify_all()

    def release(self, job):
        with self._condition:
            self._running.discard(job)
            self._condition.notify_all()

    def queue_position(self, job):
        """Return 1 for the next job to start, 2 for the one after, ...; None if not waiting."""
        with self._condition:
            for position, waiting in enumerate(self._waiting, start=1):
                if waiting is job:
                    return position
        return None

    def running_count(self):
        with self._condition:
            return len(self._running)


SLOTS = TrainingSlots(max_trainings_from_env())


def session_is_active(session_id):
    """Return False once Streamlit no longer has the browser session ``session_id``.

    Outside a running server (AppTest, plain Python) there is no runtime, and every session
    counts as active.
    """
    if session_id is None:
        return True
    from streamlit import runtime

    if not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(session_id)


@dataclass
class Curve:
    """Training loss and accuracy per step, kept to at most ``MAX_CURVE_POINTS`` points.

    Consecutive steps are averaged into buckets; when there are too many buckets, neighbours
    are merged and the bucket size doubles. So a long run keeps its whole shape in a bounded,
    already smoothed series.
    """

    bucket_size: int = 1
    steps: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    accuracy: list = field(default_factory=list)
    _count: int = 0
    _loss_sum: float = 0.0
    _accuracy_sum: float = 0.0

    def add(self, step, loss, accuracy):
        self._count += 1
        self._loss_sum += loss
        self._accuracy_sum += accuracy
        if self._count < self.bucket_size:
            return
        self.steps.append(step)
        self.loss.append(self._loss_sum / self._count)
        self.accuracy.append(self._accuracy_sum / self._count)
        self._count, self._loss_sum, self._accuracy_sum = 0, 0.0, 0.0
        if len(self.steps) >= MAX_CURVE_POINTS:
            self._halve()

    def _halve(self):
        """Merge neighbouring buckets pairwise (an odd last bucket is kept as it is)."""
        self.steps = self.steps[1::2] + self.steps[len(self.steps) - len(self.steps) % 2:]
        self.loss = _pair_means(self.loss)
        self.accuracy = _pair_means(self.accuracy)
        self.bucket_size *= 2

    def copy(self):
        return {"steps": list(self.steps), "train_loss": list(self.loss),
                "train_accuracy": list(self.accuracy)}


def _pair_means(values):
    merged = [(a + b) / 2 for a, b in zip(values[0::2], values[1::2])]
    if len(values) % 2:
        merged.append(values[-1])
    return merged


class TrainingJob:
    """One background training run (or a set of runs trained together, as in the loss duel).

    Args:
        work: ``work(job)`` trains. It sets ``job.total_steps``, reports each engine event
            with ``job.record(event, series)`` and passes ``job.should_stop`` to the engine.
            What it returns is kept in ``job.result`` for the page.
        session_id: the browser session that owns the job; the job stops when it is gone.
        series: names of the runs trained together (default one run called ``"main"``).
    """

    def __init__(self, work, session_id=None, series=("main",), name="training"):
        self.work = work
        self.session_id = session_id
        self.name = name
        self.series = tuple(series)
        self.total_steps = None
        self.result = None
        self.error = None

        self._lock = threading.Lock()
        self._state = QUEUED
        self._curves = {name: Curve() for name in self.series}
        self._epochs = {name: [] for name in self.series}
        self._last_step = {}
        self._started = None
        self._stop = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._session_checked = 0.0
        self._session_gone_since = None
        self._thread = threading.Thread(target=self._run, name=f"digit-lab-{name}", daemon=True)

    # ----- called from the page (script thread) -----

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._resume.set()

    def pause(self):
        self._resume.clear()

    def resume(self):
        self._resume.set()

    def join(self, timeout=None):
        self._thread.join(timeout)

    @property
    def state(self):
        with self._lock:
            return self._state

    @property
    def done(self):
        return self.state in DONE_STATES

    def snapshot(self):
        """Return a consistent copy of the progress and curves, safe to use without the lock."""
        with self._lock:
            step = max((event["step"] for event in self._last_step.values()), default=0)
            elapsed = time.monotonic() - self._started if self._started else 0.0
            rates = [event["samples_per_second"] for event in self._last_step.values()]
            last = next(iter(self._last_step.values()), {})
            snapshot = {
                "state": self._state,
                "queue_position": SLOTS.queue_position(self) if self._state == QUEUED else None,
                "step": step,
                "total_steps": self.total_steps,
                "epoch": last.get("epoch", 0),
                "samples_per_second": min(rates) if rates else 0.0,
                "elapsed_seconds": elapsed,
                "seconds_left": _seconds_left(step, self.total_steps, elapsed),
                "error": self.error,
                "series": {name: {**self._curves[name].copy(), "epochs": list(self._epochs[name])}
                           for name in self.series},
            }
        return snapshot

    # ----- called from the training thread -----

    def record(self, event, series="main"):
        """Engine callback: keep a step event in the curve and an epoch event in full."""
        with self._lock:
            if event["kind"] == "step":
                self._curves[series].add(event["step"], event["train_loss"], event["train_accuracy"])
                self._last_step[series] = event
            else:
                self._epochs[series].append(dict(event))

    def should_stop(self):
        """Engine stop flag: True after Stop or once the session is gone; blocks while paused."""
        self._check_session()
        if not self._resume.is_set():
            self._set_state(PAUSED)
            while not self._resume.wait(SESSION_CHECK_SECONDS):
                self._check_session()
            if not self._stop.is_set():
                self._set_state(RUNNING)
        return self._stop.is_set()

    def _check_session(self):
        now = time.monotonic()
        if now - self._session_checked < SESSION_CHECK_SECONDS:
            return
        self._session_checked = now
        if session_is_active(self.session_id):
            self._session_gone_since = None
        elif self._session_gone_since is None:
            self._session_gone_since = now
        elif now - self._session_gone_since >= SESSION_GRACE_SECONDS:
            log.info("session %s is gone; stopping %s", self.session_id, self.name)
            self.stop()

    def _set_state(self, state):
        with self._lock:
            self._state = state

    def _run(self):
        if not SLOTS.acquire(self, give_up=self.should_stop):
            self._set_state(STOPPED)
            log.info("%s stopped while queued (session %s)", self.name, self.session_id)
            return
        try:
            log.info("%s started (session %s)", self.name, self.session_id)
            with self._lock:
                self._state = RUNNING
                self._started = time.monotonic()
            self.result = self.work(self)
            if getattr(self.result, "diverged_at_step", None) is not None:
                final = DIVERGED
            elif self._stop.is_set():
                final = STOPPED
            else:
                final = FINISHED
            self._set_state(final)
            log.info("%s %s after %d steps", self.name, final, self.snapshot()["step"])
        except Exception as err:  # noqa: BLE001 - a failed run must not kill the server thread silently
            log.exception("%s failed (session %s)", self.name, self.session_id)
            self.error = err
            self._set_state(FAILED)
        finally:
            SLOTS.release(self)


def _seconds_left(step, total_steps, elapsed):
    if not total_steps or step <= 0 or elapsed <= 0:
        return None
    return max(total_steps - step, 0) * elapsed / step


def steps_per_epoch(n_samples, batch_size):
    return math.ceil(n_samples / batch_size)
