"""The loss-duel page in AppTest: a short duel on the bundled subset, its table, runs and gradients.

AppTest never fires ``run_every``, so the tests poll the duel's background job with a short sleep
and ``at.run()``, as the fragments would.
"""

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from engine.duel import DUEL_LOSSES, output_gradients, parameter_bytes, pre_activation
from engine.data import BUNDLED_PATH, to_input
from engine.losses import make_loss
from engine.modelfile import load_model
from engine.tensor import Tensor
from ui.i18n import format_percent, translate
from ui.duel_logic import probe_interval, zoomed_lower_bound
from ui.runs import MODELS_DIR_ENV, RUNS_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_TEST_TIMEOUT = 60
DUEL_SECONDS = 120
SPEC = "flatten,linear:32,relu,linear:10"
SETUP_KEY = "duel-setup"


@pytest.fixture
def app(monkeypatch, tmp_path):
    """The app on the duel page, with MNIST pointed at the bundled subset (no download)."""
    monkeypatch.setenv("DIGIT_LAB_DATA", str(BUNDLED_PATH))
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TEST_TIMEOUT)
    at.query_params["lang"] = "en"
    at.switch_page("ui/pages/duel.py").run()
    assert not at.exception
    return at


def en(key, **params):
    return translate("en", key, **params)


def button(at, label):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} among {[b.label for b in at.button]}"
    return matches[0]


def start_duel(at, epochs, seed=None, spec=SPEC):
    """Start a duel on the bundled data and return its setup from the session state."""
    at.text_input(key="duel-layers").set_value(spec)
    at.radio(key="duel-data").set_value("bundled")
    at.number_input(key="duel-epochs").set_value(epochs)
    if seed is not None:
        at.number_input(key="duel-seed").set_value(seed)
    at.run()
    button(at, en("duel.start")).click()
    at.run()
    return at.session_state[SETUP_KEY]


def run_duel(at, epochs=2, seed=4, spec=SPEC):
    setup = start_duel(at, epochs, seed, spec)
    deadline = time.monotonic() + DUEL_SECONDS
    while not (setup.job.done and setup.shown_done):
        assert time.monotonic() < deadline, "the duel did not finish in time"
        time.sleep(0.3)
        at.run()
    assert not at.exception
    return setup


def results_table(at):
    heading = en("duel.column_final_accuracy")
    tables = [table.value for table in at.table if heading in table.value.columns]
    assert len(tables) == 1
    return tables[0]


def run_cli_train(spec, loss, seed, epochs):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--layers", spec, "--loss", loss,
         "--seed", str(seed), "--epochs", str(epochs), "--data", "bundled"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_duel_fills_table_and_matches_cli_train(app):
    setup = run_duel(app)

    table = results_table(app)
    names = [en(f"duel.loss_names.{loss}") for loss in DUEL_LOSSES]
    assert list(table[en("duel.column_loss")]) == names
    assert set(table[en("duel.column_status")]) == {en("duel.run_status.finished")}

    for row, (loss, suffix) in enumerate((("ce", ""), ("mse", ",softmax"), ("bce", ",sigmoid"))):
        history = setup.job.result.runs[loss].result.history
        single = run_cli_train(SPEC + suffix, loss, seed=4, epochs=2)
        assert [e["test_accuracy"] for e in history] == [e["test_accuracy"] for e in single]
        assert [e["test_loss"] for e in history] == pytest.approx([e["test_loss"] for e in single],
                                                                  rel=1e-6)
        shown = table[en("duel.column_final_accuracy")].iloc[row]
        assert shown == format_percent(single[-1]["test_accuracy"], lang="en")


def test_weight_check_shown_with_digest(app):
    setup = run_duel(app, epochs=1)
    initial = parameter_bytes(setup.initial)
    digest = hashlib.sha256(initial).hexdigest()[:16]
    assert setup.check.identical
    assert set(setup.check.digests.values()) == {digest}
    texts = [element.value for element in app.success]
    assert any(digest in text and en("duel.weights_identical", n_params="", digest="")[:20] in text
               for text in texts), texts


def test_three_runs_added_and_saved(app, tmp_path):
    setup = run_duel(app, epochs=1)
    runs = {run.id: run for run in app.session_state[RUNS_KEY]}
    added = [runs[setup.run_ids[loss]] for loss in DUEL_LOSSES]
    assert [run.loss for run in added] == list(DUEL_LOSSES)
    assert [run.name for run in added] == ["duel-ce", "duel-mse", "duel-bce"]
    assert added[1].header["layers"][-1] == {"type": "Softmax"}
    assert added[2].header["layers"][-1] == {"type": "Sigmoid"}

    # Save the MSE network, then try the same name again: it asks before overwriting.
    app.text_input(key=f"duel-save-name-{setup.id}-mse").set_value("my-mse")
    app.button(key="duel-save-mse").click()
    app.run()
    path = tmp_path / "models" / "my-mse.npz"
    model, header = load_model(path)
    assert header["loss"] == "mse"
    assert parameter_bytes(model) == parameter_bytes(setup.models["mse"])
    first_write = path.stat().st_mtime_ns

    app.button(key="duel-save-mse").click()
    app.run()
    assert any("my-mse" in w.value for w in app.warning)
    assert path.stat().st_mtime_ns == first_write
    app.button(key="duel-overwrite-mse").click()
    app.run()
    assert any("my-mse" in s.value for s in app.success)

    app.text_input(key=f"duel-save-name-{setup.id}-bce").set_value("bad name!")
    app.button(key="duel-save-bce").click()
    app.run()
    assert any("bad name!" in e.value for e in app.error)
    assert not app.exception

    # The draw page lists the three networks side by side.
    app.switch_page("ui/pages/draw.py").run()
    assert not app.exception
    comparison = "\n".join(table.value.to_string() for table in app.table)
    for name in ("duel-ce", "duel-mse", "duel-bce"):
        assert name in comparison


def test_gradient_panel_matches_engine(app):
    setup = run_duel(app, epochs=1)
    assert app.selectbox(key=f"duel-grad-network-{setup.id}").value == "ce"
    app.number_input(key="duel-example-index").set_value(7)
    app.run()
    shown = gradient_table(app)

    # The engine's own backward pass through the whole trained network: for one example,
    # dLoss/dz equals the gradient of the last Linear layer's bias.
    dataset = setup.dataset
    x = to_input(dataset.x_test[7:8])
    label = int(dataset.y_test[7])
    model = setup.models["ce"]
    z = pre_activation(model, x)[0]
    for loss in DUEL_LOSSES:
        model.zero_grad()
        outputs = model(Tensor(x))
        if loss == "mse":
            outputs = outputs.softmax()
        elif loss == "bce":
            outputs = outputs.sigmoid()
        make_loss(loss)(outputs, np.array([label])).backward()
        np.testing.assert_allclose(shown[loss], model.layers[-1].bias.grad, rtol=1e-4, atol=1e-7)

    # The confidence slider scales z before each loss's output layer; the scale toggle
    # changes only the charts.
    app.toggle(key="duel-grad-shared-scale").set_value(False)
    app.select_slider(key="duel-confidence").set_value(16.0)
    app.run()
    scaled = gradient_table(app)
    expected = output_gradients(z, label, scale=16.0)
    for loss in DUEL_LOSSES:
        np.testing.assert_allclose(scaled[loss], expected[loss].grad, rtol=1e-5, atol=1e-9)


def test_zoomed_accuracy_axis(app):
    run_duel(app, epochs=1)
    app.toggle(key="duel-zoom").set_value(True)
    app.run()
    assert not app.exception


def gradient_table(app):
    column = {en(f"duel.loss_names.{loss}"): loss for loss in DUEL_LOSSES}
    frames = [frame.value for frame in app.dataframe
              if en("duel.grad_digit") in frame.value.columns]
    assert len(frames) == 1
    frame = frames[0]
    return {loss: frame[name].to_numpy(dtype=np.float64) for name, loss in column.items()}


def test_gradient_panel_before_any_duel(app):
    """Without a duel the panel uses the untrained starting weights."""
    assert app.selectbox(key="duel-grad-network-untrained").value == "initial"
    shown = gradient_table(app)
    assert all(np.isfinite(values).all() for values in shown.values())
    assert shown["ce"].sum() == pytest.approx(0.0, abs=1e-5)


def test_bad_stack_shows_error_and_blocks_start(app):
    app.text_input(key="duel-layers").set_value("flatten,linear:32,relu,linear:12")
    app.run()
    assert not app.exception
    assert len(app.error) == 1
    assert "10" in app.error[0].value
    assert button(app, en("duel.start")).disabled


def test_trailing_softmax_is_stripped(app):
    app.text_input(key="duel-layers").set_value(SPEC + ",softmax")
    app.run()
    stacks = list(app.table[0].value[en("duel.column_stack")])
    assert stacks == [SPEC, SPEC + ",softmax", SPEC + ",sigmoid"]


def test_mse_raw_and_own_learning_rates(app):
    app.text_input(key="duel-layers").set_value(SPEC)
    app.radio(key="duel-mse-output").set_value("raw")
    app.checkbox(key="duel-own-lr").check()
    app.run()
    app.number_input(key="duel-lr-mse").set_value(0.01)
    app.run()
    table = app.table[0].value
    assert list(table[en("duel.column_stack")]) == [SPEC, SPEC, SPEC + ",sigmoid"]
    assert list(table[en("duel.column_lr")]) == ["0.001", "0.01", "0.001"]


def test_page_in_chinese(monkeypatch):
    monkeypatch.setenv("DIGIT_LAB_DATA", str(BUNDLED_PATH))
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TEST_TIMEOUT)
    at.query_params["lang"] = "zh-CN"
    at.switch_page("ui/pages/duel.py").run()
    assert not at.exception
    assert at.title[0].value == translate("zh-CN", "duel.title")
    assert button(at, translate("zh-CN", "duel.start"))


def test_zoomed_lower_bound():
    assert zoomed_lower_bound([]) == 0.0
    values = [0.1] + [0.95] * 20 + [0.97] * 20
    assert zoomed_lower_bound(values) == 0.94
    assert zoomed_lower_bound([0.0, 0.005]) == 0.0


def test_probe_interval_bounds():
    assert probe_interval(63) == 6
    assert probe_interval(10) == 5
    assert probe_interval(938) == 50


def test_stop_keeps_partial_runs(app):
    setup = start_duel(app, epochs=20)
    deadline = time.monotonic() + DUEL_SECONDS
    while setup.job.snapshot()["step"] < 20:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    button(app, en("duel.stop")).click()
    app.run()
    while not (setup.job.done and setup.shown_done):
        assert time.monotonic() < deadline, "the duel did not stop in time"
        time.sleep(0.3)
        app.run()
    assert setup.job.state == "stopped"
    table = results_table(app)
    assert set(table[en("duel.column_status")]) == {en("duel.run_status.stopped")}
    runs = {run.id: run for run in app.session_state[RUNS_KEY]}
    for loss in DUEL_LOSSES:
        run = runs[setup.run_ids[loss]]
        assert run.status == "stopped"
        assert 0.0 <= run.test_accuracy <= 1.0


def test_gradient_panel_uses_drawing(app):
    from engine.preprocess import Preprocessed
    from ui.draw_predict import DrawingReading

    drawing = np.zeros((28, 28), dtype=np.float32)
    drawing[4:24, 13:16] = 1.0  # a vertical bar, roughly a 1
    app.session_state["draw-reading"] = (("test", ()), DrawingReading(Preprocessed(drawing)))
    app.run()
    app.radio(key="duel-example-source").set_value("drawing")
    app.run()
    assert not app.exception
    model = app.session_state["duel-initial-model"][1]
    z = pre_activation(model, drawing.reshape(1, 1, 28, 28))[0]
    target = int(z.argmax())
    expected = output_gradients(z, target)
    shown = gradient_table(app)
    for loss in DUEL_LOSSES:
        np.testing.assert_allclose(shown[loss], expected[loss].grad, rtol=1e-5, atol=1e-9)


def test_runs_added_on_another_page(app, monkeypatch):
    """A duel that ends while the learner is elsewhere is added by finish_duel_if_done."""
    import streamlit as st

    from ui.duel_session import finish_duel_if_done

    setup = start_duel(app, epochs=1)
    setup.job.join(DUEL_SECONDS)
    assert setup.job.done
    assert setup.run_ids == {}

    # Called outside the duel page, with a plain dict standing in for the session state.
    session = {RUNS_KEY: [], SETUP_KEY: setup}
    monkeypatch.setattr(st, "session_state", session)
    assert finish_duel_if_done()
    assert not finish_duel_if_done()
    assert [run.name for run in session[RUNS_KEY]] == ["duel-ce", "duel-mse", "duel-bce"]
    assert set(setup.run_ids) == set(DUEL_LOSSES)
