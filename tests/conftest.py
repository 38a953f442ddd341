"""Shared test setup: thread limits, the MNIST fixture, the ``browser`` marker and time limits."""

import os

# OpenBLAS on both cores makes small-matrix work several times slower here, so limit it before
# any test module imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# No test may reach a public MNIST mirror: with this empty, the resolver (and any app server a
# test starts, which inherits the environment) never downloads. Download tests pass their own
# 127.0.0.1 mirrors explicitly.
os.environ["DIGIT_LAB_MIRRORS"] = ""

import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from tests.browser_support import (  # noqa: E402,F401  (fixtures used by name)
    app_page,
    chromium,
    new_browser_context,
    start_streamlit_server,
    streamlit_server,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = REPO_ROOT.parent / "shared" / "data" / "mnist"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
)

# Fixtures that need a real server or browser; tests using them get the ``browser`` marker.
BROWSER_FIXTURES = {"streamlit_server", "start_streamlit_server", "chromium", "new_browser_context",
                    "app_page"}

# Default limit in seconds for each of a test's setup, call and teardown (ini option
# ``test_time_limit``; 0 turns it off). ``@pytest.mark.time_limit(seconds)`` sets it per test.
DEFAULT_TIME_LIMIT = 300


def pytest_addoption(parser):
    parser.addini("test_time_limit", f"seconds each test phase may take (default {DEFAULT_TIME_LIMIT}, 0 = no limit)",
                  default=str(DEFAULT_TIME_LIMIT))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: needs a real Streamlit server and/or Chromium (deselect with -m 'not browser')")
    config.addinivalue_line(
        "markers", "time_limit(seconds): fail the test if a phase (setup, call, teardown) takes longer")


def pytest_collection_modifyitems(items):
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def mnist_dir():
    """Path of the original MNIST idx files next to the repository; skips when they are absent."""
    missing = [name for name in MNIST_FILES if not (MNIST_DIR / name).is_file()]
    if missing:
        pytest.skip(f"real MNIST not found in {MNIST_DIR} (missing {', '.join(missing)})")
    return MNIST_DIR


# ---------------------------------------------------------------------------
# Per-test time limit, without extra plugins
# ---------------------------------------------------------------------------
# SIGALRM interrupts the main thread, so a hung wait (socket, subprocess, Playwright) raises
# inside the test and pytest reports the stack. It cannot interrupt a single long C call that
# does not return to Python. Server start, health checks and browser waits have their own
# shorter timeouts; this limit only catches what slips past them.

class TimeLimitExceeded(Exception):
    """A test phase ran longer than its time limit."""


def _time_limit(item):
    marker = item.get_closest_marker("time_limit")
    if marker is not None:
        return float(marker.args[0])
    return float(item.config.getini("test_time_limit"))


def _run_with_time_limit(item):
    limit = _time_limit(item)
    if limit <= 0 or not hasattr(signal, "SIGALRM"):
        return (yield)

    def raise_time_limit(signum, frame):
        raise TimeLimitExceeded(f"{item.nodeid}: a test phase took longer than {limit:g} s; "
                                "raise it with @pytest.mark.time_limit(seconds) if that is expected")

    previous = signal.signal(signal.SIGALRM, raise_time_limit)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _run_with_time_limit(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _run_with_time_limit(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _run_with_time_limit(item))
