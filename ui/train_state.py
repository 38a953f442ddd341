"""Session state of the train page: the layer stack, the settings, and the data sets.

Streamlit drops a widget's value when a run does not draw the widget (for example while the
learner is on the draw page). So the page keeps its values in plain session-state entries
(``STACK_KEY`` and the ``SETTINGS_KEY`` dict), seeds each widget from them before drawing it
(``seed``), and copies a changed widget value back in its ``on_change`` callback (``store``).
"""

import logging
import os
import threading
import time

import streamlit as st

from engine.data import ENV_VAR, load_bundled, resolve_dataset, resolve_mnist, upload_source
from engine.errors import DataError
from engine.spec import parse_spec
from engine.train import TrainConfig
from ui.i18n import format_number, t, t_error
from ui.train_logic import (DEFAULT_LR, DEFAULT_PRESET, NETWORK_PRESETS, strip_ids, with_ids)

log = logging.getLogger(__name__)

STACK_KEY = "train_stack"
SETTINGS_KEY = "train_settings"
UPLOAD_KEY = "train_upload_source"
WIDGET_PREFIX = "train_w_"

DEFAULT_SETTINGS = {
    "loss": "ce",
    "optimizer": "adam",
    "lr": DEFAULT_LR["adam"],
    "batch_size": 64,
    "epochs": 3,
    "seed": 0,
    "augment": False,
    "data": "mnist",
}
DATA_KINDS = ("mnist", "bundled", "upload")


def init_state():
    """Create the stack and any missing setting with their defaults (idempotent)."""
    if STACK_KEY not in st.session_state:
        st.session_state[STACK_KEY] = with_ids(parse_spec(NETWORK_PRESETS[DEFAULT_PRESET]))
    settings = st.session_state.setdefault(SETTINGS_KEY, {})
    for name, value in DEFAULT_SETTINGS.items():
        settings.setdefault(name, value)


def rows():
    return st.session_state[STACK_KEY]


def set_rows(new_rows):
    st.session_state[STACK_KEY] = list(new_rows)


def spec():
    """Return the layer stack as an engine spec (without row ids)."""
    return strip_ids(rows())


def settings():
    return st.session_state[SETTINGS_KEY]


def widget_key(name):
    return WIDGET_PREFIX + name


def seed(name):
    """Set the widget of setting ``name`` to the stored value; call it before drawing the widget."""
    st.session_state[widget_key(name)] = settings()[name]
    return widget_key(name)


def store(name):
    """``on_change`` callback: copy the widget value of setting ``name`` into the store."""
    settings()[name] = st.session_state[widget_key(name)]


def labels(prefix, names):
    """Return a ``format_func`` showing ``t(f"{prefix}.{name}")`` for each of ``names``.

    The texts are looked up now, in the page language: Streamlit may call a ``format_func``
    outside the script run (AppTest does), where the page language is unknown.
    """
    return {name: t(f"{prefix}.{name}") for name in names}.get


def make_config():
    """Return the ``TrainConfig`` of the current stack and settings (not validated)."""
    values = settings()
    return TrainConfig(layers=spec(), loss=values["loss"], optimizer=values["optimizer"],
                       lr=float(values["lr"]), batch_size=int(values["batch_size"]),
                       epochs=int(values["epochs"]), seed=int(values["seed"]),
                       augment=bool(values.get("augment", False)))


# ---------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------

# After a fallback to the bundled subset, MNIST is looked for again after this many seconds.
FALLBACK_RETRY_SECONDS = 600


class MnistLoader:
    """The MNIST ``DataSource`` of this server process, resolved on first use.

    ``resolve_mnist`` reads or downloads the data, and this object keeps the result, so later
    sessions get it at once. A fallback to the bundled subset is kept for
    ``FALLBACK_RETRY_SECONDS`` only, so MNIST placed in the cache later is found.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._source = None
        self._setting = None
        self._resolved_at = 0.0

    def loaded(self):
        """Return the source resolved so far, or None."""
        return self._source

    def get(self, progress=None):
        """Return the MNIST ``DataSource``, resolving it if needed; raises ``DataError``."""
        with self._lock:
            fresh = time.monotonic() - self._resolved_at < FALLBACK_RETRY_SECONDS
            # A changed DIGIT_LAB_DATA (tests running several apps in one process) re-resolves.
            same_setting = self._setting == os.environ.get(ENV_VAR)
            if self._source is not None and same_setting and (self._source.kind != "bundled"
                                                              or fresh):
                return self._source
            self._source = resolve_mnist(progress=progress)
            self._setting = os.environ.get(ENV_VAR)
            self._resolved_at = time.monotonic()
            log.info("MNIST source for the app: %s", self._source.reason)
            return self._source


@st.cache_resource(show_spinner=False)
def mnist_loader():
    """Return the process-wide ``MnistLoader`` (one per server, shared by every session)."""
    return MnistLoader()


def bundled_source():
    return resolve_dataset("bundled")


class DownloadProgress:
    """A progress bar for ``resolve_mnist``'s download: file, bytes so far and speed."""

    UPDATE_SECONDS = 0.2

    def __init__(self, placeholder):
        self.placeholder = placeholder
        self.bar = None
        self.started = time.monotonic()
        self.shown_at = 0.0

    def __call__(self, done, total, file_name):
        now = time.monotonic()
        if now - self.shown_at < self.UPDATE_SECONDS and done != total:
            return
        self.shown_at = now
        speed = done / max(now - self.started, 1e-6)
        text = t("data.download_progress", file=file_name, done=_megabytes(done),
                 total=_megabytes(total) if total else "?", speed=_megabytes(speed))
        fraction = min(done / total, 1.0) if total else 0.0
        if self.bar is None:
            self.bar = self.placeholder.progress(fraction, text=text)
        else:
            self.bar.progress(fraction, text=text)


def _megabytes(size):
    return format_number(size / 1e6, digits=1)


def current_source(progress_placeholder=None):
    """Return ``(DataSource or None, error text or None)`` for the data setting.

    MNIST shows a download progress bar in ``progress_placeholder`` when it downloads. An upload
    that has not been made yet gives ``(None, None)``.
    """
    kind = settings()["data"]
    try:
        if kind == "mnist":
            progress = DownloadProgress(progress_placeholder) if progress_placeholder else None
            source = mnist_loader().get(progress=progress)
            if progress_placeholder is not None:
                progress_placeholder.empty()
            return source, None
        if kind == "bundled":
            return bundled_source(), None
        return st.session_state.get(UPLOAD_KEY), None
    except DataError as err:
        return None, t_error(err)


def read_upload(uploaded):
    """Load an uploaded .npz into the session; return an error text or None."""
    try:
        st.session_state[UPLOAD_KEY] = upload_source(uploaded.getvalue(), uploaded.name)
    except DataError as err:
        st.session_state.pop(UPLOAD_KEY, None)
        return t_error(err)
    return None


def data_sizes(kind):
    """Return ``(n_train, n_test)`` of data source ``kind`` without downloading anything."""
    if kind == "bundled":
        dataset = load_bundled()
        return dataset.n_train, dataset.n_test
    if kind == "upload" and st.session_state.get(UPLOAD_KEY) is not None:
        dataset = st.session_state[UPLOAD_KEY].dataset
        return dataset.n_train, dataset.n_test
    source = mnist_loader().loaded()
    if source is not None:
        return source.dataset.n_train, source.dataset.n_test
    return 60_000, 10_000
