"""The train page in a real Streamlit server and Chromium: live charts, parallel tabs, the queue.

One server (at most 2 trainings at once, real MNIST when it is next to the repository) serves
both tests. The charts are drawn by Vega as SVG, so a chart update is seen as a change in
that SVG.
"""

import hashlib
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError

from engine.modelfile import load_model
from tests.browser_support import (
    assert_no_app_error,
    main_area,
    open_app,
    start_streamlit,
    wait_for_script_idle,
)

# Seconds a browser step may wait for the training to reach a state.
RUN_TIMEOUT = 60


@pytest.fixture(scope="module")
def train_server(tmp_path_factory):
    log_path = tmp_path_factory.mktemp("train-page") / "server.log"
    server = start_streamlit(log_path, env={"DIGIT_LAB_MAX_TRAININGS": "2"})
    yield server
    server.stop()


def _open_train_page(context, server, spec=None, epochs=None):
    page = context.new_page()
    # The train page is the default page, served at the root URL.
    open_app(page, server, "", query={"lang": "en"}, wait_text="Train a network")
    if spec is not None:
        _fill(page, "train_w_spec_text", spec)
    if epochs is not None:
        _fill(page, "train_w_epochs", str(epochs))
    return page


def _fill(page, key, value):
    field = page.locator(f".st-key-{key} input")
    field.fill(value)
    field.press("Enter")
    page.wait_for_timeout(300)
    wait_for_script_idle(page)


def _press_train(page):
    page.locator(".st-key-train-start button").click()


def _status(page):
    box = page.locator(".st-key-train-status")
    return box.inner_text() if box.count() else ""


def _wait_status(page, pattern, timeout=RUN_TIMEOUT):
    """Wait until the status line matches ``pattern``; return the status text."""
    deadline = time.monotonic() + timeout
    while True:
        text = _status(page)
        if re.search(pattern, text):
            return text
        assert time.monotonic() < deadline, f"status {text!r} never matched {pattern!r}"
        page.wait_for_timeout(200)


def _chart_state(page):
    """Return a hash of the loss chart's drawing (Vega's SVG), or None before the chart exists."""
    svg = page.locator(".st-key-loss-chart svg.marks")
    if svg.count() == 0:
        return None
    try:
        return hashlib.sha256(svg.first.inner_html(timeout=2000).encode()).hexdigest()
    except PlaywrightError:  # the chart may be replaced while it is read
        return None


def test_live_training_on_mnist_with_second_tab(train_server, new_browser_context):
    first = _open_train_page(new_browser_context(accept_downloads=True), train_server, epochs=8)
    second = _open_train_page(new_browser_context(), train_server, spec="flatten,linear:10",
                              epochs=2)
    assert "MNIST" in main_area(first).locator(".st-key-train-data-notice").inner_text()

    pressed = time.monotonic()
    _press_train(first)
    _press_train(second)

    # Watch the first tab's loss chart until its run has finished.
    seen = []
    first_chart_seconds = None
    deadline = pressed + RUN_TIMEOUT
    while not re.search(r"^Finished", _status(first)):
        assert time.monotonic() < deadline, f"no end of training; status {_status(first)!r}"
        drawing = _chart_state(first)
        if drawing is not None and (not seen or seen[-1] != drawing):
            if first_chart_seconds is None:
                first_chart_seconds = time.monotonic() - pressed
            seen.append(drawing)
        first.wait_for_timeout(250)

    status = _status(first)
    accuracy = float(re.search(r"test accuracy ([\d.]+)%", status).group(1))
    print(f"\nfirst chart {first_chart_seconds:.2f} s after Train; "
          f"{len(seen)} chart states during the run; final test accuracy {accuracy}%")
    # About 1-2 s on an idle 2-core machine; the limit leaves room for a busy CI runner.
    assert first_chart_seconds is not None and first_chart_seconds < 15
    assert len(seen) >= 3  # the first chart, then at least two updates
    assert "8/8 epochs" in status
    assert accuracy > 90

    second_status = _wait_status(second, r"^Finished")
    assert "2/2 epochs" in second_status
    # Each tab names only its own run in its status line.
    assert "tutorial-ce" in status
    assert "logistic-ce" not in status
    assert "logistic-ce" in second_status
    assert "tutorial-ce" not in second_status
    speed = main_area(first).locator(".st-key-train-metrics").inner_text()
    print(f"first tab metrics: {' | '.join(speed.splitlines())}")

    with first.expect_download() as download:
        first.locator(".st-key-train-download button").click()
    assert download.value.suggested_filename == "tutorial-ce.npz"
    model, header = load_model(Path(download.value.path()).read_bytes())
    assert header["metrics"]["test_accuracy"] == pytest.approx(accuracy / 100, abs=0.0006)

    for page in (first, second):
        assert_no_app_error(page)
    train_server.assert_clean_log()


def test_closed_tab_frees_its_slot_for_the_queue(train_server, new_browser_context):
    contexts = [new_browser_context() for _ in range(3)]
    first, second, third = (_open_train_page(context, train_server, epochs=50)
                            for context in contexts)

    _press_train(first)
    _wait_status(first, r"^Training")
    _press_train(second)
    _wait_status(second, r"^Training")
    _press_train(third)
    waiting = _wait_status(third, r"queue")
    assert "number 1 in the queue" in waiting

    closed = time.monotonic()
    contexts[0].close()
    _wait_status(third, r"^Training", timeout=20)
    print(f"\nqueued run started {time.monotonic() - closed:.1f} s after the first tab closed")

    for page in (second, third):
        page.locator(".st-key-train-stop button").click()
    for page in (second, third):
        assert _wait_status(page, r"^Stopped", timeout=10)
        assert_no_app_error(page)
    train_server.assert_clean_log()
