"""The train page: its logic without Streamlit, then the page itself in AppTest.

AppTest runs the real entry script in this process and never fires ``run_every``, so a test
that trains polls the background job with short sleeps and ``at.run()``.
"""

import ast
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from engine.data import NOTICES
from engine.spec import format_spec, parse_spec
from tests.browser_support import default_data_path
from ui import train_logic, worker
from ui.i18n import LANGUAGES, load_catalogue, placeholders, translate
from ui.train_logic import (Advice, accuracy_points, apply_fix, budget_settings, loss_advice,
                            loss_points, matching_preset, move_layer, smooth, strip_ids,
                            with_ids)

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_TEST_TIMEOUT = 60
# Seconds a short training run in AppTest may take before the test fails.
RUN_TIMEOUT = 60


# ---------------------------------------------------------------------------
# Logic without Streamlit
# ---------------------------------------------------------------------------

def test_presets_are_valid_and_distinct():
    from engine.spec import describe

    for name, text in train_logic.NETWORK_PRESETS.items():
        infos = describe(parse_spec(text))
        assert infos[-1].output_shape == (10,), name
    assert len(set(train_logic.NETWORK_PRESETS.values())) == len(train_logic.NETWORK_PRESETS)


def test_tutorial_preset_is_the_starting_network():
    assert train_logic.NETWORK_PRESETS["tutorial"] == "flatten,dropout:0.2,linear:64,relu,linear:10"


def test_matching_preset():
    assert matching_preset(parse_spec("flatten,linear:10")) == "logistic"
    assert matching_preset(parse_spec("flatten,linear:11,linear:10")) == "custom"


def test_spec_text_writes_missing_setting_bare():
    assert train_logic.spec_text([{"type": "Flatten"}, {"type": "Dropout"},
                                  {"type": "Linear", "units": 10}]) == "flatten,dropout,linear:10"
    assert train_logic.spec_text(parse_spec("flatten,linear:10")) == "flatten,linear:10"


def test_rows_keep_ids_and_strip():
    rows = with_ids(parse_spec("flatten,linear:10"))

    assert all(len(row["id"]) == 8 for row in rows)
    assert strip_ids(rows) == parse_spec("flatten,linear:10")


def test_move_layer_bounds():
    rows = with_ids(parse_spec("flatten,relu,linear:10"))

    moved = move_layer(rows, 1, -1)
    assert [row["type"] for row in moved] == ["ReLU", "Flatten", "Linear"]
    assert move_layer(rows, 0, -1) == rows
    assert move_layer(rows, 2, 1) == rows


@pytest.mark.parametrize("text, loss, key, level, fixed", [
    ("flatten,linear:10,softmax", "ce", "train.advice.ce_softmax", "warning", "flatten,linear:10"),
    ("flatten,linear:10,sigmoid", "ce", "train.advice.ce_sigmoid", "warning", "flatten,linear:10"),
    ("flatten,linear:10", "bce", "train.advice.bce_raw", "warning", "flatten,linear:10,sigmoid"),
    ("flatten,linear:10", "mse", "train.advice.mse_raw", "info", "flatten,linear:10,softmax"),
    ("flatten,linear:10,softmax", "mse", "train.advice.mse_probabilities", "info",
     "flatten,linear:10"),
])
def test_loss_advice_and_fix(text, loss, key, level, fixed):
    rows = with_ids(parse_spec(text))

    advice = loss_advice(strip_ids(rows), loss)

    assert [(item.key, item.level) for item in advice] == [(key, level)]
    assert format_spec(strip_ids(apply_fix(rows, advice[0].fix))) == fixed


@pytest.mark.parametrize("text, loss", [
    ("flatten,linear:10", "ce"),
    ("flatten,linear:10,sigmoid", "bce"),
    ("flatten,linear:10,softmax", "bce"),
    ("flatten,linear:10,softmax,dropout:0.1", "bce"),
])
def test_loss_advice_silent_when_fitting(text, loss):
    assert loss_advice(parse_spec(text), loss) == []


def test_loss_advice_skips_trailing_dropout():
    advice = loss_advice(parse_spec("flatten,linear:10,softmax,dropout:0.1"), "ce")

    assert advice == [Advice("train.advice.ce_softmax", "warning", ("remove", 2),
                             "train.fix.remove_softmax")]


def test_budget_uses_subset_when_mnist_epoch_too_slow():
    slow = budget_settings("seconds_10", lambda batch: 2_000.0, (60_000, 10_000), (4_000, 1_000))
    fast = budget_settings("seconds_10", lambda batch: 100_000.0, (60_000, 10_000), (4_000, 1_000))

    assert (slow.data, slow.batch_size) == ("bundled", 128)
    assert slow.epochs >= 1
    assert (fast.data, fast.batch_size) == ("mnist", 128)
    assert fast.epochs == 10 * 100_000 * train_logic.APP_SPEED_SHARE // (60_000 + 10_000 / 3)


def test_budget_minute_and_full():
    minute = budget_settings("minute", lambda batch: 20_000.0, (60_000, 10_000), (4_000, 1_000))
    full = budget_settings("full", lambda batch: 20_000.0, (60_000, 10_000), (4_000, 1_000))

    assert (minute.data, minute.batch_size) == ("mnist", 64)
    seconds = train_logic.estimate_seconds(20_000.0, 60_000, 10_000, minute.epochs)
    assert 50 <= seconds <= 60
    assert (full.data, full.batch_size, full.epochs) == ("mnist", 64, train_logic.FULL_EPOCHS)


def test_budget_never_exceeds_full_epochs():
    fast = budget_settings("minute", lambda batch: 1e7, (60_000, 10_000), (4_000, 1_000))

    assert fast.epochs == train_logic.FULL_EPOCHS


def test_budget_gives_at_least_one_epoch():
    chosen = budget_settings("minute", lambda batch: 10.0, (60_000, 10_000), (4_000, 1_000))

    assert chosen.epochs == 1


def test_measure_speed_is_cached():
    spec = parse_spec("flatten,linear:10")

    first = train_logic.measure_speed(spec, batch_size=32)

    assert first > 0
    assert train_logic.measure_speed(spec, batch_size=32) == first


def test_smooth_debiased():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    assert smooth([1.0, 3.0], weight=0.0) == [1.0, 3.0]
    assert smooth([]) == []


def test_chart_points_in_epochs():
    series = {"steps": [5, 10], "train_loss": [2.0, float("nan")], "train_accuracy": [0.1, 0.2],
              "epochs": [{"epoch": 1, "test_loss": 0.5, "test_accuracy": 0.9}]}

    loss = loss_points(series, steps_in_epoch=10)
    accuracy = accuracy_points(series, steps_in_epoch=10)

    assert {"epoch": 0.5, "value": 2.0, "curve": "train"} in loss
    assert {"epoch": 1.0, "value": 0.5, "curve": "test"} in loss
    assert all(np.isfinite(row["value"]) for row in loss)
    assert {"epoch": 1.0, "value": 0.9, "curve": "test"} in accuracy
    assert [row["curve"] for row in accuracy].count("train_smoothed") == 2


def test_suggested_lr():
    assert train_logic.suggested_lr(0.5) == "0.05"
    assert train_logic.suggested_lr(10.0) == "1"


# ---------------------------------------------------------------------------
# Locale keys of the page
# ---------------------------------------------------------------------------

PAGE_FILES = [REPO_ROOT / "ui" / "pages" / "train.py",
              *sorted((REPO_ROOT / "ui").glob("train_*.py"))]


def _literal_keys():
    """Return every ``t("...")`` key written as a plain string in the page files."""
    keys = set()
    for path in PAGE_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "t" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                keys.add(node.args[0].value)
    return keys


def _computed_keys():
    """Return the keys the page builds from names (states, presets, advice, curves ...)."""
    keys = {f"train.states.{state}" for state in
            (*worker.DONE_STATES, worker.QUEUED, worker.RUNNING, worker.PAUSED, "file",
             "uploaded")}
    keys |= {f"train.presets.{name}" for name in (*train_logic.NETWORK_PRESETS, "custom")}
    keys |= {f"train.loss.{name}" for name in train_logic.LOSS_NAMES}
    keys |= {f"train.optimizers.{name}" for name in train_logic.OPTIMIZER_NAMES}
    keys |= {f"train.budget.{name}" for name in train_logic.BUDGETS}
    keys |= {f"train.budget.{name}_help" for name in train_logic.BUDGETS}
    keys |= {f"data.kinds.{kind}" for kind in ("mnist", "bundled", "upload")}
    keys |= {"train.status_running", "train.status_paused"}
    keys |= {f"train.chart.{kind}" for kind in ("loss", "accuracy")}
    keys |= {f"train.chart.loss_curves.{curve}" for curve in ("train", "train_smoothed", "test")}
    keys |= {f"train.chart.accuracy_curves.{curve}" for curve in ("train_smoothed", "test")}
    for text, loss in [("flatten,linear:10,softmax", "ce"), ("flatten,linear:10,sigmoid", "ce"),
                       ("flatten,linear:10", "bce"), ("flatten,linear:10", "mse"),
                       ("flatten,linear:10,softmax", "mse"), ("flatten,linear:10,sigmoid", "mse")]:
        for advice in loss_advice(parse_spec(text), loss):
            keys |= {advice.key, advice.fix_key}
    return keys


@pytest.mark.parametrize("lang", LANGUAGES)
def test_page_keys_exist(lang):
    catalogue = load_catalogue(lang)

    missing = sorted((_literal_keys() | _computed_keys()) - set(catalogue))

    assert missing == []


def test_data_notices_in_sync():
    english = load_catalogue("en")
    notice_keys = {key for key in english if key.startswith("data.source.")}

    assert notice_keys == set(NOTICES)
    for key, template in NOTICES.items():
        assert english[key] == template, key
        for lang in LANGUAGES:
            assert placeholders(load_catalogue(lang)[key]) == placeholders(template), (lang, key)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_data_notices_fill(lang):
    params = {"name": "MNIST", "location": "/data", "var": "DIGIT_LAB_DATA", "error": "timed out",
              "n_train": 10, "n_test": 2}
    for key in NOTICES:
        text = translate(lang, key, **params)
        assert "{" not in text, (lang, key)


# ---------------------------------------------------------------------------
# The page in AppTest
# ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def local_files(monkeypatch, tmp_path):
    """Use local MNIST (never a download) and an empty models folder of the test's own."""
    monkeypatch.setenv("DIGIT_LAB_DATA", default_data_path())
    monkeypatch.setenv("DIGIT_LAB_MODELS", str(tmp_path / "models"))


def _app(settings=None, spec=None, lang="en"):
    """Return an AppTest of the app on the train page, run once, training on the bundled subset."""
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TEST_TIMEOUT)
    at.query_params["lang"] = lang
    at.session_state["train_settings"] = {"data": "bundled", **(settings or {})}
    at.run()
    if spec is not None:
        _set_spec(at, spec)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _set_spec(at, text):
    at.text_input(key="train_w_spec_text").set_value(text).run()


def _spec(at):
    return format_spec(strip_ids(at.session_state["train_stack"]))


def _train_button(at):
    return at.get_by_key("train-start").button[0]


def _job(at):
    return at.session_state["train_job"] if "train_job" in at.session_state else None


def _wait(at, condition, timeout=RUN_TIMEOUT):
    """Rerun the page every 0.2 s until ``condition()`` is true; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the training job"
        time.sleep(0.2)
        at.run()
        assert not at.exception, [e.value for e in at.exception]


def _train_to_end(at):
    """Press Train and rerun until the run has ended (a tiny run may end within the click)."""
    _train_button(at).click().run()
    assert _job(at) is not None or "train_last" in at.session_state
    _wait(at, lambda: _job(at) is None and "train_last" in at.session_state)


def _chart_frame(at, key):
    """Return the data of the Vega-Lite chart in the container ``key`` as a DataFrame."""
    proto = at.get_by_key(key).get("vega_lite_chart")[0].proto
    tables = [dataset.data.data for dataset in proto.datasets]
    if proto.HasField("data"):
        tables.append(proto.data.data)
    assert len(tables) == 1
    return dataframe_util.convert_arrow_bytes_to_pandas_df(tables[0])


def _status(at):
    return " ".join(element.value for element in at.get_by_key("train-status").get("markdown"))


def test_short_run_gives_metrics_and_curves():
    at = _app({"epochs": 2, "batch_size": 128})
    at.selectbox(key="train_w_preset").set_value("mlp_relu").run()
    at.radio(key="train_w_loss").set_value("ce").run()
    assert _spec(at) == train_logic.NETWORK_PRESETS["mlp_relu"]

    _train_to_end(at)

    last = at.session_state["train_last"]
    assert last["state"] == "finished"
    metrics = {metric.label: metric.value for metric in at.metric}
    accuracy = float(metrics["Test accuracy"].rstrip("%"))
    assert 70 < accuracy <= 100
    assert "Finished: mlp_relu-ce · 2/2 epochs" in _status(at)
    assert f"{accuracy:.1f}%" in _status(at)

    loss = _chart_frame(at, "loss-chart")
    test_loss = loss[loss["curve"] == translate("en", "train.chart.loss_curves.test")]
    train_loss = loss[loss["curve"] == translate("en", "train.chart.loss_curves.train")]
    assert list(test_loss["epoch"]) == [1.0, 2.0]
    assert len(train_loss) == 2 * 32  # 4,000 images / batch 128 = 32 steps per epoch
    assert train_loss["value"].iloc[-1] < train_loss["value"].iloc[0]
    accuracy_chart = _chart_frame(at, "accuracy-chart")
    test_accuracy = accuracy_chart[
        accuracy_chart["curve"] == translate("en", "train.chart.accuracy_curves.test")]
    assert test_accuracy["value"].iloc[-1] == pytest.approx(accuracy / 100, abs=0.0006)

    runs = at.session_state["runs"]
    assert [run.name for run in runs] == ["mlp_relu-ce"]
    assert runs[0].header["layers"] == parse_spec(train_logic.NETWORK_PRESETS["mlp_relu"])
    assert at.session_state["selected_run"] == runs[0].id


def test_augment_toggle_reaches_the_run():
    at = _app({"epochs": 1, "batch_size": 256})
    at.toggle(key="train_w_augment").set_value(True).run()

    _train_to_end(at)

    run = at.session_state["runs"][-1]
    assert run.header["optimizer"]["augment"] is True
    assert at.session_state["train_last"]["state"] == "finished"


@pytest.mark.parametrize("key, value, message", [
    ("train_w_epochs", 0, "The number of epochs must be a whole number of at least 1, got 0."),
    ("train_w_seed", -1, "The random seed must be a whole number from 0 to 2**32 - 1, got -1."),
    ("train_w_lr", 0.0, "The learning rate must be a positive number, got 0.0."),
])
def test_out_of_range_setting_blocks_train(key, value, message):
    at = _app()
    at.number_input(key=key).set_value(value).run()

    assert _train_button(at).disabled
    assert message in [element.value for element in at.error] + \
        [element.value for element in at.warning] + [element.value for element in at.caption]


def test_huge_learning_rate_is_used_and_diverges():
    at = _app({"epochs": 1, "optimizer": "sgd"})
    at.number_input(key="train_w_lr").set_value(1000.0).run()

    _train_to_end(at)

    last = at.session_state["train_last"]
    assert last["state"] == "diverged"
    assert any("so the run diverged" in element.value for element in at.error)


def test_second_run_gets_its_own_name():
    at = _app({"epochs": 1, "batch_size": 512}, spec="flatten,linear:10")

    _train_to_end(at)
    _train_to_end(at)

    assert [run.name for run in at.session_state["runs"]] == ["logistic-ce", "logistic-ce-2"]


@pytest.mark.parametrize("spec, loss, advice_key, fixed", [
    ("flatten,linear:10,softmax", "ce", "train.advice.ce_softmax", "flatten,linear:10"),
    ("flatten,linear:10", "bce", "train.advice.bce_raw", "flatten,linear:10,sigmoid"),
    ("flatten,linear:10", "mse", "train.advice.mse_raw", "flatten,linear:10,softmax"),
])
def test_loss_warning_and_fix(spec, loss, advice_key, fixed):
    at = _app(spec=spec)
    at.radio(key="train_w_loss").set_value(loss).run()

    box = at.get_by_key("train-loss-advice")
    shown = [element.value for element in (*box.get("alert"), *box.get("warning"),
                                           *box.get("info"))]
    assert translate("en", advice_key) in shown
    assert not _train_button(at).disabled  # an odd combination may still be trained

    at.button(key="train_fix_0").click().run()

    assert _spec(at) == fixed
    box = at.get_by_key("train-loss-advice")
    remaining = [element.value for element in (*box.get("alert"), *box.get("warning"),
                                               *box.get("info"))]
    assert translate("en", advice_key) not in remaining


def test_loss_warning_in_chinese():
    at = _app(spec="flatten,linear:10,softmax", lang="zh-CN")

    warnings = [element.value for element in at.warning]

    assert translate("zh-CN", "train.advice.ce_softmax") in warnings
    assert at.button(key="train_fix_0").label == "删除最后的 Softmax"


@pytest.mark.parametrize("spec, fragment, bad_row", [
    ("flatten,linear:64,relu", "10 outputs", None),
    ("linear:10", "Layer 1 (Linear): expects a flat input", 1),
    ("flatten,linear:0,relu,linear:10", "Layer 2 (Linear): units must be", 2),
    ("flatten,dropout,linear:10", "Layer 2 (Dropout): the setting 'p' is missing", 2),
])
def test_invalid_stack_disables_train(spec, fragment, bad_row):
    at = _app(spec=spec)

    errors = [element.value for element in at.get_by_key("train-stack-error").get("alert")
              or at.error]
    assert any(fragment in text for text in errors), errors
    assert _train_button(at).disabled
    assert at.button(key="train_budget_seconds_10").disabled
    if bad_row is not None:
        assert f":red[**{bad_row}** ⚠]" in [element.value for element in at.markdown]

    _set_spec(at, "flatten,linear:10")
    assert not _train_button(at).disabled


def test_bad_text_form_keeps_stack():
    at = _app()
    before = _spec(at)

    _set_spec(at, "flatten,conv:3,linear:10")

    assert _spec(at) == before
    assert any("unknown layer type" in element.value for element in at.error)
    assert at.text_input(key="train_w_spec_text").value == "flatten,conv:3,linear:10"


def test_editor_remove_edit_add_move():
    at = _app()
    stack = at.session_state["train_stack"]

    at.button(key=f"train_layer_{stack[1]['id']}_remove").click().run()
    assert _spec(at) == "flatten,linear:64,relu,linear:10"

    linear_id = at.session_state["train_stack"][1]["id"]
    at.number_input(key=f"train_layer_{linear_id}_units").set_value(32).run()
    assert _spec(at) == "flatten,linear:32,relu,linear:10"
    assert "25,450 parameters in total." in [element.value for element in at.caption]

    at.selectbox(key="train_w_add_type").set_value("Dropout").run()
    at.button(key="train_layer_add").click().run()
    assert _spec(at) == "flatten,linear:32,relu,linear:10,dropout:0.2"

    dropout_id = at.session_state["train_stack"][-1]["id"]
    at.button(key=f"train_layer_{dropout_id}_up").click().run()
    at.button(key=f"train_layer_{dropout_id}_up").click().run()
    assert _spec(at) == "flatten,linear:32,dropout:0.2,relu,linear:10"

    shapes = at.get_by_key("train-shapes").get("table")[0].value
    assert list(shapes.iloc[:, 1]) == ["1x28x28", "784", "32", "32", "32", "10"]


def test_budget_preset_sets_settings():
    at = _app({"epochs": 7, "batch_size": 16})

    at.button(key="train_budget_full").click().run()

    settings = at.session_state["train_settings"]
    assert (settings["epochs"], settings["batch_size"], settings["data"]) == (20, 64, "mnist")

    at.button(key="train_budget_seconds_10").click().run()
    settings = at.session_state["train_settings"]
    assert settings["batch_size"] == 128
    assert settings["data"] in ("mnist", "bundled")
    assert settings["epochs"] >= 1
    assert any("Estimated time: about" in element.value for element in at.caption)


def test_optimizer_switch_sets_learning_rate():
    at = _app()

    at.selectbox(key="train_w_optimizer").set_value("sgd").run()

    assert at.session_state["train_settings"]["lr"] == train_logic.DEFAULT_LR["sgd"]
    assert at.number_input(key="train_w_lr").value == train_logic.DEFAULT_LR["sgd"]


def test_mnist_source_notice():
    at = _app({"data": "mnist"})

    notice = " ".join(element.value for element in at.get_by_key("train-data-notice").get("caption"))

    assert "DIGIT_LAB_DATA" in notice


def test_stop_ends_within_one_batch_and_keeps_curves():
    at = _app({"epochs": 50, "batch_size": 8})
    _train_button(at).click().run()
    job = _job(at)
    _wait(at, lambda: job.snapshot()["step"] >= 20)

    at.get_by_key("train-pause").button[0].click().run()
    _wait(at, lambda: job.state == worker.PAUSED)
    paused_at = job.snapshot()["step"]
    time.sleep(0.3)
    assert job.snapshot()["step"] == paused_at

    at.get_by_key("train-stop").button[0].click().run()
    _wait(at, lambda: _job(at) is None, timeout=5)

    run = at.session_state["runs"][-1]
    assert run.status == "stopped"
    assert run.header["training"]["steps"] == paused_at
    assert run.curves["steps"][-1] <= paused_at
    assert len(run.curves["steps"]) > 0
    assert 0 < run.header["metrics"]["test_accuracy"] <= 1
    assert "Stopped" in _status(at)
    assert len(_chart_frame(at, "loss-chart")) > 0


def test_stop_while_running_is_prompt():
    at = _app({"epochs": 50, "batch_size": 8})
    _train_button(at).click().run()
    job = _job(at)
    _wait(at, lambda: job.snapshot()["step"] >= 20)

    started = time.monotonic()
    at.get_by_key("train-stop").button[0].click().run()
    job.join(timeout=5)

    assert time.monotonic() - started < 2
    assert job.state == worker.STOPPED


def test_diverging_run_names_step_and_lower_lr():
    at = _app({"optimizer": "sgd", "lr": 10.0, "loss": "mse", "epochs": 1},
              spec="flatten,linear:10")

    _train_to_end(at)

    assert at.session_state["train_last"]["state"] == "diverged"
    step = at.session_state["train_last"]["diverged_at_step"]
    message = " ".join(element.value for element in at.error)
    assert f"Training stopped at step {step}" in message
    assert "for example 1)" in message
    assert at.session_state["runs"][-1].status == "diverged"


def test_queued_run_says_position(monkeypatch):
    monkeypatch.setattr(worker, "SLOTS", worker.TrainingSlots(1))
    release = threading.Event()
    blocker = worker.TrainingJob(lambda job: release.wait(30), name="blocker").start()
    try:
        _wait_for(lambda: blocker.state == worker.RUNNING)
        at = _app({"epochs": 1, "batch_size": 512}, spec="flatten,linear:10")
        _train_button(at).click().run()

        assert _job(at).state == worker.QUEUED
        assert re.search(r"number 1 in the queue", _status_text(at))
    finally:
        release.set()
        blocker.join(5)
    _wait(at, lambda: _job(at) is None)
    assert at.session_state["train_last"]["state"] == "finished"


def _wait_for(condition, timeout=5):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _status_text(at):
    box = at.get_by_key("train-status")
    return " ".join(element.value for element in (*box.get("alert"), *box.get("info"),
                                                  *box.get("markdown")))


def test_save_confirm_overwrite_and_bad_name(tmp_path):
    at = _app({"epochs": 1, "batch_size": 512}, spec="flatten,linear:10")
    _train_to_end(at)

    at.text_input(key="train_w_save_name").set_value("my-net").run()
    at.get_by_key("train-save").button[0].click().run()
    saved = tmp_path / "models" / "my-net.npz"
    assert saved.is_file()
    assert any("Saved as my-net" in element.value for element in at.success)
    first_bytes = saved.read_bytes()

    at.get_by_key("train-save").button[0].click().run()
    confirm = at.get_by_key("train-save-confirm")
    assert "already exists" in confirm.get("alert")[0].value if confirm.get("alert") else \
        "already exists" in at.warning[0].value
    assert saved.read_bytes() == first_bytes

    confirm.button[0].click().run()  # Replace
    assert any("Saved as my-net" in element.value for element in at.success)
    assert "train_save_pending" not in at.session_state

    at.text_input(key="train_w_save_name").set_value("bad name!").run()
    at.get_by_key("train-save").button[0].click().run()
    assert any("Invalid model name" in element.value for element in at.error)

    names = at.dataframe[-1].value.iloc[:, 0].tolist()
    assert names == ["my-net"]
    options = at.selectbox(key="train_w_selected_run").options
    assert len(options) == 2  # the session run and the saved file


def test_page_in_chinese_after_training():
    at = _app({"epochs": 1, "batch_size": 512}, spec="flatten,linear:10", lang="zh-CN")

    _train_to_end(at)

    assert "已完成" in _status(at)
    assert "测试准确率" in [metric.label for metric in at.metric]
    loss = _chart_frame(at, "loss-chart")
    assert "测试（每轮）" in set(loss["curve"])


def _npz_bytes(**arrays):
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_uploaded_data_set_trains():
    from engine.data import load_bundled

    bundled = load_bundled()
    good = _npz_bytes(x_train=bundled.x_train[:300], y_train=bundled.y_train[:300],
                      x_test=bundled.x_test[:100], y_test=bundled.y_test[:100])
    at = _app({"epochs": 1, "batch_size": 32}, spec="flatten,linear:10")
    at.radio(key="train_w_data").set_value("upload").run()
    assert _train_button(at).disabled

    at.file_uploader(key="train_w_upload").set_value(("bad.npz", b"not an archive",
                                                      "application/octet-stream")).run()
    assert any("bad.npz" in element.value for element in at.error)
    assert _train_button(at).disabled

    at.file_uploader(key="train_w_upload").set_value(("digits.npz", good,
                                                      "application/octet-stream")).run()
    notice = " ".join(element.value for element in
                      at.get_by_key("train-data-notice").get("caption"))
    assert notice == "Using your data set digits.npz: 300 training and 100 test images."

    _train_to_end(at)
    run = at.session_state["runs"][-1]
    assert run.header["dataset"] == {"name": "digits", "kind": "upload", "n_train": 300,
                                     "n_test": 100}


def test_model_upload_adds_a_run():
    from engine.modelfile import make_header, model_bytes
    from engine.spec import build_model

    layers = parse_spec("flatten,linear:10")
    data = model_bytes(build_model(layers, np.random.default_rng(0)),
                       make_header(layers, "ce", metrics={"test_accuracy": 0.5}))
    at = _app()

    at.file_uploader(key="train_w_model_upload").set_value(("broken.npz", b"xx",
                                                            "application/octet-stream")).run()
    assert any("broken.npz is not a Digit Lab model file" in element.value
               for element in at.error)
    assert "runs" not in at.session_state or at.session_state["runs"] == []

    at.file_uploader(key="train_w_model_upload").set_value(("mine.npz", data,
                                                            "application/octet-stream")).run()
    runs = at.session_state["runs"]
    assert [(run.name, run.status) for run in runs] == [("mine", "uploaded")]
    assert at.session_state["selected_run"] == runs[0].id
    assert any("Loaded mine" in element.value for element in at.success)


class _FakeBar:
    def __init__(self, log):
        self.log = log

    def progress(self, value, text=None):
        self.log.append((value, text))
        return self


def test_download_progress_shows_bytes_and_speed(monkeypatch):
    from ui import train_state

    shown = []
    progress = train_state.DownloadProgress(_FakeBar(shown))
    progress.started -= 2.0  # pretend the download began 2 s ago

    progress(1_000_000, 4_000_000, "train-images-idx3-ubyte.gz")
    progress(2_000_000, 4_000_000, "train-images-idx3-ubyte.gz")  # within 0.2 s: skipped
    progress(4_000_000, 4_000_000, "train-images-idx3-ubyte.gz")  # complete: always shown

    assert [value for value, _ in shown] == [0.25, 1.0]
    assert shown[0][1].startswith("Downloading MNIST: train-images-idx3-ubyte.gz, 1.0 of 4.0 MB")
    assert "MB/s" in shown[0][1]


def test_mnist_loader_retries_after_fallback(monkeypatch):
    from types import SimpleNamespace

    from ui import train_state

    answers = [SimpleNamespace(kind="bundled", reason="offline"),
               SimpleNamespace(kind="cache", reason="cache")]
    calls = []

    def fake_resolve(progress=None):
        calls.append(progress)
        return answers[len(calls) - 1]

    monkeypatch.setattr(train_state, "resolve_mnist", fake_resolve)
    loader = train_state.MnistLoader()

    assert loader.get().kind == "bundled"
    assert loader.get().kind == "bundled"  # the fallback is kept for a while
    loader._resolved_at -= train_state.FALLBACK_RETRY_SECONDS + 1
    assert loader.get().kind == "cache"
    assert loader.get().kind == "cache"
    assert len(calls) == 2
