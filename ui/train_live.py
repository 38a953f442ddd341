"""Live training on the train page: Train, Pause/Resume and Stop, progress, charts and results.

The Train button starts a ``ui.worker.TrainingJob`` for this browser session. Two fragments
poll it: the status (progress bar, speed, time left, buttons) every ``STATUS_SECONDS`` and the
charts every ``CHART_SECONDS``, because redrawing a Vega-Lite chart costs far more than text.
When the job ends, ``finalize_job`` turns it into a ``ui.runs.Run`` once and the status fragment
reruns the whole page, so the Train button and the runs list update.
"""

import logging
import math

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from engine.errors import TrainingError
from engine.modelfile import make_header
from engine.spec import normalise
from ui import train_state as state
from ui.i18n import format_number, format_percent, t, t_error
from ui.runs import Run, add_session_run, session_runs, unique_run_name
from ui.train_logic import (accuracy_points, loss_points, make_work, matching_preset,
                            suggested_lr, validate_config)
from ui.train_settings import format_duration
from ui.worker import (DIVERGED, FAILED, PAUSED, QUEUED, STOPPED, TrainingJob,
                       steps_per_epoch)

log = logging.getLogger(__name__)

JOB_KEY = "train_job"
JOB_INFO_KEY = "train_job_info"
LAST_KEY = "train_last"
START_ERROR_KEY = "train_start_error"

# Every fragment run costs the training thread some time (the GIL and the browser share 2
# cores on the reference machine), so the polling is no faster than a learner needs.
STATUS_SECONDS = 0.75
CHART_SECONDS = 1.5

CHART_HEIGHT = 320

# Chart colours by curve, fixed so a curve keeps its colour as curves appear.
CURVE_COLOURS = {"train": "#a6c8e8", "train_smoothed": "#1f77b4", "test": "#e4572e"}


def active_job():
    return st.session_state.get(JOB_KEY)


# ---------------------------------------------------------------------------
# Button callbacks
# ---------------------------------------------------------------------------

def start_training():
    """Train button: start a job with the current stack, settings and data set."""
    st.session_state.pop(START_ERROR_KEY, None)
    if active_job() is not None:
        return
    config = state.make_config()
    error = validate_config(config)
    source, data_error = state.current_source()
    if error is not None or source is None:
        st.session_state[START_ERROR_KEY] = t_error(error) if error else (
            data_error or t("data.upload_needed"))
        return

    dataset = source.dataset
    ctx = get_script_run_ctx()
    session_id = ctx.session_id if ctx is not None else None
    job = TrainingJob(make_work(config, dataset), session_id=session_id,
                      name=f"train-{session_id or 'local'}")
    st.session_state[JOB_INFO_KEY] = {
        "config": config,
        "steps_per_epoch": steps_per_epoch(dataset.n_train, config.batch_size),
        "base_name": f"{matching_preset(config.layers)}-{config.loss}",
        "dataset": {"name": dataset.name, "kind": source.kind, "n_train": dataset.n_train,
                    "n_test": dataset.n_test},
    }
    st.session_state.pop(LAST_KEY, None)
    st.session_state[JOB_KEY] = job.start()
    log.info("training started for session %s: %s", session_id, config)


def _pause():
    job = active_job()
    if job is not None:
        job.pause()


def _resume():
    job = active_job()
    if job is not None:
        job.resume()


def _stop():
    job = active_job()
    if job is not None:
        job.stop()


# ---------------------------------------------------------------------------
# From a finished job to a run
# ---------------------------------------------------------------------------

def finalize_job():
    """If this session's job has ended, keep it as a run and forget the job; True if it did."""
    job = active_job()
    if job is None or not job.done:
        return False
    info = st.session_state.pop(JOB_INFO_KEY)
    del st.session_state[JOB_KEY]
    snapshot = job.snapshot()
    config = info["config"]
    outcome = job.result
    last = {"state": snapshot["state"], "run_id": None, "epochs": config.epochs, "error": None,
            "diverged_at_step": None, "diverged_loss": None, "lr": config.lr}

    if snapshot["state"] == FAILED:
        last["error"] = repr(job.error)
    elif outcome is not None:
        curves = {**snapshot["series"]["main"], "steps_per_epoch": info["steps_per_epoch"]}
        header = make_header(
            normalise(config.layers), config.loss, config.optimizer_settings(),
            dataset=info["dataset"], metrics=outcome.metrics,
            training={"status": snapshot["state"], "steps": outcome.result.steps,
                      "seconds": round(outcome.seconds, 3),
                      "samples_per_second": outcome.samples_per_second,
                      "diverged_at_step": outcome.diverged_at_step})
        run = Run(name=unique_run_name(info["base_name"]), model=outcome.model, header=header,
                  curves=curves, status=snapshot["state"])
        add_session_run(run)
        last.update(run_id=run.id, diverged_at_step=outcome.diverged_at_step,
                    diverged_loss=outcome.result.diverged_loss)
    st.session_state[LAST_KEY] = last
    log.info("training ended for session %s: %s", job.session_id, snapshot["state"])
    return True


def format_loss(value):
    """Return a diverged loss for the message: NaN or infinity as a symbol, else 4 digits."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞"
    return f"{value:,.4g}"


def last_run():
    """Return the run of the last job of this session, or None."""
    last = st.session_state.get(LAST_KEY)
    if not last or last.get("run_id") is None:
        return None
    return next((run for run in session_runs() if run.id == last["run_id"]), None)


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def render_train_button(blocker):
    """Draw Train; ``blocker`` is the text that explains why training cannot start, or None."""
    running = active_job() is not None
    with st.container(key="train-start"):
        st.button(t("train.start"), type="primary", icon=":material/play_arrow:",
                  on_click=start_training, disabled=running or blocker is not None)
    if blocker is not None and not running:
        st.caption(blocker)
    error = st.session_state.get(START_ERROR_KEY)
    if error:
        st.error(error, icon=":material/error:")


def render_live():
    """Draw the status and the charts fragments; they poll only while a job exists."""
    polling = active_job() is not None
    st.fragment(run_every=STATUS_SECONDS if polling else None)(_status_fragment)()
    st.fragment(run_every=CHART_SECONDS if polling else None)(_charts_fragment)()


def _status_fragment():
    if finalize_job():
        st.rerun(scope="app")
    job = active_job()
    if job is None:
        _render_last_result()
        return

    snapshot = job.snapshot()
    info = st.session_state[JOB_INFO_KEY]
    epochs = info["config"].epochs

    # The queued and the running state draw the same elements in the same order, so the
    # buttons keep their place (and identity in the browser) when the job starts.
    if snapshot["state"] == QUEUED:
        st.progress(0.0, text=t("train.waiting"))
        with st.container(key="train-status"):
            st.info(t("train.queued", position=snapshot["queue_position"] or 1),
                    icon=":material/hourglass_top:")
    else:
        _render_progress(snapshot, epochs)

    pause, stop, _ = st.columns([1, 1, 3])
    with pause.container(key="train-pause"):
        if snapshot["state"] == PAUSED:
            st.button(t("train.resume"), icon=":material/play_arrow:", on_click=_resume)
        else:
            st.button(t("train.pause"), icon=":material/pause:", on_click=_pause,
                      disabled=snapshot["state"] == QUEUED)
    with stop.container(key="train-stop"):
        st.button(t("train.stop"), icon=":material/stop:", on_click=_stop)


def _render_progress(snapshot, epochs):
    total = snapshot["total_steps"] or 0
    step = snapshot["step"]
    left = snapshot["seconds_left"]
    text = t("train.progress", epoch=max(snapshot["epoch"], 1), epochs=epochs,
             step=format_number(step), steps=format_number(total),
             speed=format_number(snapshot["samples_per_second"]),
             left=format_duration(left) if left is not None else "…")
    st.progress(min(step / total, 1.0) if total else 0.0, text=text)

    finished_epochs = snapshot["series"]["main"]["epochs"]
    accuracy = (format_percent(finished_epochs[-1]["test_accuracy"]) if finished_epochs
                else t("train.after_first_epoch"))
    key = "train.status_paused" if snapshot["state"] == PAUSED else "train.status_running"
    with st.container(key="train-status"):
        st.markdown(t(key, epoch=max(snapshot["epoch"], 1), epochs=epochs, accuracy=accuracy))


def _render_last_result():
    last = st.session_state.get(LAST_KEY)
    if not last:
        return
    run = last_run()
    metrics = run.header.get("metrics", {}) if run else {}
    done_epochs = len(run.curves.get("epochs", [])) if run else 0
    accuracy = metrics.get("test_accuracy")

    with st.container(key="train-status"):
        st.markdown(t("train.status_done", state=t(f"train.states.{last['state']}"),
                      name=run.name if run else "—", epoch=done_epochs, epochs=last["epochs"],
                      accuracy=format_percent(accuracy) if accuracy is not None else "—"))
    if last["state"] == DIVERGED and last["diverged_at_step"] is not None:
        err = TrainingError("train.diverged", step=last["diverged_at_step"],
                            value=format_loss(last.get("diverged_loss")),
                            suggestion=suggested_lr(last["lr"]))
        st.error(t_error(err), icon=":material/trending_up:")
    elif last["state"] == STOPPED and run is None:
        st.info(t("train.stopped_before_start"))
    elif last["state"] == FAILED:
        st.error(t("train.failed", error=last["error"]), icon=":material/error:")

    if run is not None:
        _render_metrics(run)


def _render_metrics(run):
    metrics = run.header.get("metrics", {})
    training = run.header.get("training", {})
    values = [
        ("train.metrics.test_accuracy", metrics.get("test_accuracy"), format_percent),
        ("train.metrics.test_loss", metrics.get("test_loss"), lambda v: format_number(v, 4)),
        ("train.metrics.train_accuracy", metrics.get("train_accuracy"), format_percent),
        ("train.metrics.train_loss", metrics.get("train_loss"), lambda v: format_number(v, 4)),
        ("train.metrics.time", training.get("seconds"), format_duration),
        ("train.metrics.speed", training.get("samples_per_second"), format_number),
    ]
    with st.container(key="train-metrics"):
        columns = st.columns(len(values))
        for column, (key, value, fmt) in zip(columns, values):
            shown = fmt(value) if value is not None and math.isfinite(value) else "—"
            column.metric(t(key), shown)


def _charts_fragment():
    job = active_job()
    if job is not None:
        series = job.snapshot()["series"]["main"]
        per_epoch = st.session_state[JOB_INFO_KEY]["steps_per_epoch"]
    else:
        run = last_run()
        if run is None:
            st.caption(t("train.chart.empty"))
            return
        series, per_epoch = run.curves, run.curves.get("steps_per_epoch", 1)

    loss_column, accuracy_column = st.columns(2)
    with loss_column.container(key="loss-chart"):
        st.markdown(f"**{t('train.chart.loss_title')}**")
        st.vega_lite_chart(_chart_frame(loss_points(series, per_epoch), "loss"),
                           _chart_spec("loss"), width="stretch", height=CHART_HEIGHT)
    with accuracy_column.container(key="accuracy-chart"):
        st.markdown(f"**{t('train.chart.accuracy_title')}**")
        st.vega_lite_chart(_chart_frame(accuracy_points(series, per_epoch), "accuracy"),
                           _chart_spec("accuracy"), width="stretch", height=CHART_HEIGHT)


def _chart_spec(kind):
    """Return the Vega-Lite spec of the ``kind`` ("loss" or "accuracy") chart.

    Written as a plain dict rather than with Altair: building and validating an Altair chart
    takes tens of milliseconds, which the training thread loses on every redraw. Test points
    get markers, so a one-epoch run still shows its test value.
    """
    curves = [curve for curve in CURVE_COLOURS if kind == "loss" or curve != "train"]
    names = [t(f"train.chart.{kind}_curves.{curve}") for curve in curves]
    test_name = names[curves.index("test")]
    y_title = t(f"train.chart.{kind}")
    y_axis = {"format": "%"} if kind == "accuracy" else {}
    return {
        "encoding": {
            "x": {"field": "epoch", "type": "quantitative", "title": t("train.chart.epoch")},
            "y": {"field": "value", "type": "quantitative", "title": y_title,
                  "scale": {"zero": False}, "axis": y_axis},
            "color": {"field": "curve", "type": "nominal", "title": None,
                      "scale": {"domain": names,
                                "range": [CURVE_COLOURS[curve] for curve in curves]},
                      "legend": {"orient": "bottom", "columns": 3, "labelLimit": 160,
                                 "labelFontSize": 11, "columnPadding": 8, "symbolSize": 60}},
            "tooltip": [
                {"field": "curve", "type": "nominal", "title": t("train.chart.curve")},
                {"field": "epoch", "type": "quantitative", "title": t("train.chart.epoch"),
                 "format": ".2f"},
                {"field": "value", "type": "quantitative", "title": y_title, "format": ".4f"},
            ],
        },
        "layer": [
            {"mark": {"type": "line"},
             "transform": [{"filter": {"not": {"field": "curve", "equal": test_name}}}]},
            {"mark": {"type": "line", "point": True},
             "transform": [{"filter": {"field": "curve", "equal": test_name}}]},
        ],
    }


def _chart_frame(points, kind):
    """Return the chart rows as a DataFrame with each curve's translated name."""
    frame = pd.DataFrame(points, columns=["epoch", "value", "curve"])
    frame["curve"] = [t(f"train.chart.{kind}_curves.{curve}") for curve in frame["curve"]]
    return frame
