"""The networks a learner can use: runs of this browser session and model files in ``models/``.

A ``Run`` is a trained network plus what the app shows about it: its name, settings (the model
file header), curves and status. Session runs live in ``st.session_state[RUNS_KEY]``, so each
browser tab has its own. Model files are read once per process and file version, and shared by
every session read-only (prediction does not change a network).
"""

import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DigitLabError, ModelFileError
from engine.modelfile import load_model, save_model

log = logging.getLogger(__name__)

MODELS_DIR_ENV = "DIGIT_LAB_MODELS"
DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
RUNS_KEY = "runs"
SELECTED_KEY = "selected_run"
# The shipped network selected when the learner has not picked one yet.
DEFAULT_MODEL_NAME = "mlp-ce"
# Letters of any script (so a Chinese name works), digits, '-' and '_': never a path separator
# or a dot, so a name cannot leave the models folder.
MODEL_NAME_PATTERN = re.compile(r"^[\w-]{1,64}$")
# Model files shipped in the repository, which Save must not replace.
SHIPPED_MODEL_NAMES = ("mlp-ce", "mlp-mse", "mlp-bce")


@dataclass
class Run:
    """A trained network the app can show, compare, save and draw with.

    ``header`` is the model file header (``layers``, ``loss``, ``optimizer``, ``dataset``,
    ``metrics``, ``created``). ``curves`` is a training job's snapshot series (empty for a model
    file). ``status`` is ``"finished"``, ``"stopped"``, ``"diverged"`` or ``"file"``. ``path`` is
    the model file for runs read from ``models/``.
    """

    name: str
    model: object
    header: dict
    curves: dict = field(default_factory=dict)
    status: str = "finished"
    path: Path | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def loss(self):
        return self.header.get("loss")

    @property
    def test_accuracy(self):
        return self.header.get("metrics", {}).get("test_accuracy")


def models_dir():
    """Return the folder of model files: ``$DIGIT_LAB_MODELS`` or ``models/`` in the repository."""
    return Path(os.environ.get(MODELS_DIR_ENV) or DEFAULT_MODELS_DIR)


def validate_model_name(name):
    """Return ``name`` stripped if it is 1-64 letters, digits, '-' or '_' and not a shipped
    model's name; raise ``ModelFileError`` otherwise."""
    name = (name or "").strip()
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise ModelFileError("model.bad_name", name=name)
    if name.lower() in SHIPPED_MODEL_NAMES and models_dir() == DEFAULT_MODELS_DIR:
        raise ModelFileError("model.reserved_name", name=name)
    return name


def model_path(name):
    return models_dir() / f"{validate_model_name(name)}.npz"


def save_run(run, name, overwrite=False):
    """Write ``run`` to ``models/<name>.npz``; raise ``ModelFileError("model.exists")`` unless
    ``overwrite``. Returns the path."""
    path = model_path(name)
    save_model(path, run.model, run.header, overwrite=overwrite)
    _file_cache.clear_path(path)
    log.info("saved model %s", path)
    return path


class _ModelFileCache:
    """Model files read once per process and file version (path, size, modification time)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runs = {}

    def get(self, path):
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            run = self._runs.get(key)
        if run is None:
            model, header = load_model(path)
            run = Run(name=path.stem, model=model, header=header, status="file", path=path,
                      id=f"file:{path.name}")
            with self._lock:
                self._runs[key] = run
        return run

    def clear_path(self, path):
        with self._lock:
            for key in [key for key in self._runs if key[0] == str(path)]:
                del self._runs[key]


_file_cache = _ModelFileCache()


def saved_runs():
    """Return ``(runs, errors)`` for every ``.npz`` in the models folder, sorted by name.

    A file that cannot be read is skipped and reported in ``errors`` as ``(path, DigitLabError)``,
    so one bad file does not hide the others.
    """
    folder = models_dir()
    runs, errors = [], []
    if not folder.is_dir():
        return runs, errors
    for path in sorted(folder.glob("*.npz")):
        try:
            runs.append(_file_cache.get(path))
        except DigitLabError as err:
            log.warning("skipping model file %s: %s", path, err)
            errors.append((path, err))
        except OSError as err:
            log.warning("skipping model file %s: %s", path, err)
            errors.append((path, ModelFileError("model.not_a_model", path=str(path), reason=str(err))))
    return runs, errors


# ----- session runs (these use st.session_state) -----

def session_runs():
    """Return this session's list of runs (created empty on first use)."""
    import streamlit as st

    return st.session_state.setdefault(RUNS_KEY, [])


def add_session_run(run, select=True):
    runs = session_runs()
    runs.append(run)
    if select:
        select_run(run.id)
    return run


def unique_run_name(base):
    """Return ``base``, or ``base-2``, ``base-3``... if the session already has that name."""
    names = {run.name for run in session_runs()}
    if base not in names:
        return base
    number = 2
    while f"{base}-{number}" in names:
        number += 1
    return f"{base}-{number}"


def available_runs():
    """Return every network the session can use: its own runs first, then the model files."""
    files, _ = saved_runs()
    return list(session_runs()) + files


def select_run(run_id):
    import streamlit as st

    st.session_state[SELECTED_KEY] = run_id


def selected_run():
    """Return the selected network; else the newest session run, the default shipped model or
    the first model file; None if there is none."""
    import streamlit as st

    runs = available_runs()
    wanted = st.session_state.get(SELECTED_KEY)
    for run in runs:
        if run.id == wanted:
            return run
    own = session_runs()
    if own:
        return own[-1]
    for run in runs:
        if run.name == DEFAULT_MODEL_NAME:
            return run
    return runs[0] if runs else None
