"""Draw page: the learner draws a digit and sees what each trained network reads.

The canvas sends a PNG after every stroke, which reruns this script. The drawing is read once
per distinct image and set of networks (``ui.draw_predict.read_drawing``) and the result is kept
in the session, so other reruns (a new pen width, another network picked) reuse it.

Stable hooks for tests: the canvas is keyed ``canvas``; the selected network's answer is in the
container keyed ``prediction``, and the element keyed ``predicted-digit`` contains only the digit,
or ``NO_DIGIT`` when there is nothing to read.
"""

import altair as alt
import pandas as pd
import streamlit as st
from streamlit_drawable_canvas import st_canvas

from engine.errors import DigitLabError
from ui.draw_predict import (
    NO_DIGIT,
    NON_FINITE,
    PREVIEW_SIZE,
    SHOWN_STEPS,
    STEP_PREVIEW_SIZE,
    UnreadableDrawing,
    drawing_digest,
    read_drawing,
    to_picture,
)
from ui.i18n import format_percent, t, t_error
from ui.runs import available_runs, saved_runs, select_run, selected_run, session_runs
from ui.train_live import active_job, finalize_job, last_run

CANVAS_KEY = "canvas"
CANVAS_SIZE = 280
# The canvas toolbar floats about 40 px above the canvas when the mouse is over it.
TOOLBAR_ROOM = 40
INK_COLOUR = "#FFFFFF"
BACKGROUND_COLOUR = "#000000"

STROKE_KEY = "draw-stroke-width"
STROKE_MIN, STROKE_MAX, STROKE_DEFAULT = 8, 40, 18
NETWORK_KEY = "draw-network"
READING_KEY = "draw-reading"
NEW_RUN_KEY = "draw-new-run"
# Seconds between checks of this session's training job while one exists.
TRAINING_POLL_SECONDS = 2.0


# ----- reading the drawing -----

def current_reading(png_bytes, runs, error=None):
    """Return ``(reading, error)`` for the canvas PNG, reading it only when it or the networks changed.

    ``reading`` is a ``DrawingReading`` or None (no drawing yet, or an unreadable image, which
    sets ``error``).
    """
    if png_bytes is None:
        return None, error

    # id(run.model) changes when a model file is rewritten under the same name and read again.
    cache_key = (drawing_digest(png_bytes), tuple((run.id, id(run.model)) for run in runs))
    cached = st.session_state.get(READING_KEY)
    if cached is not None and cached[0] == cache_key:
        return cached[1], None

    try:
        reading = read_drawing(png_bytes, runs)
    except UnreadableDrawing as err:
        st.session_state.pop(READING_KEY, None)
        return None, err
    st.session_state[READING_KEY] = (cache_key, reading)
    return reading, None


def prediction_error_text(prediction):
    if isinstance(prediction.error, DigitLabError):
        message = t_error(prediction.error)
    elif prediction.error == NON_FINITE:
        message = t("draw.network_nan")
    else:
        message = str(prediction.error)
    return t("draw.error_network", message=message)


# ----- labels -----

def loss_label(loss):
    if loss in ("ce", "mse", "bce"):
        return t(f"draw.loss_names.{loss}")
    return t("draw.loss_names.unknown")


def network_label(run, own_ids):
    key = "draw.network_option_session" if run.id in own_ids else "draw.network_option"
    return t(key, name=run.name, loss=loss_label(run.loss))


# ----- page sections -----

def render_canvas():
    """Draw the canvas with its pen-width slider below it; return its ``CanvasResult``."""
    st.subheader(t("draw.canvas_heading"), anchor=False)
    canvas_box = st.container()
    stroke_width = st.slider(t("draw.stroke_width"), STROKE_MIN, STROKE_MAX, STROKE_DEFAULT,
                             key=STROKE_KEY, help=t("draw.stroke_width_help"))
    st.caption(t("draw.toolbar_hint"))

    with canvas_box:
        st.space(TOOLBAR_ROOM)
        result = st_canvas(
            stroke_width=stroke_width,
            stroke_color=INK_COLOUR,
            background_color=BACKGROUND_COLOUR,
            height=CANVAS_SIZE,
            width=CANVAS_SIZE,
            drawing_mode="freedraw",
            return_image_data=True,
            key=CANVAS_KEY,
        )
    return result


def canvas_png(result):
    """Return ``(png_bytes, error)`` from the canvas result; both None before the first stroke."""
    try:
        return result.image_bytes, None
    except ValueError as err:  # a data URL without ";base64," or with broken base64
        return None, UnreadableDrawing(f"cannot decode the canvas data URL: {err}")


def render_network_input(reading):
    st.subheader(t("draw.input_heading"), anchor=False)
    if reading is not None and reading.has_digit:
        network_input = reading.preprocessed.input
    else:
        network_input = [[0.0] * 28] * 28
    st.image(to_picture(network_input, PREVIEW_SIZE), caption=t("draw.input_caption"))


def render_steps(reading):
    """Draw the expander with the preprocessing steps from the drawing to the network input."""
    steps = reading.preprocessed.steps if reading is not None else {}
    with st.expander(t("draw.steps_expander")):
        available = [name for name in SHOWN_STEPS if name in steps]
        if not available:
            st.caption(t("draw.hint_blank"))
        for column, name in zip(st.columns(len(SHOWN_STEPS)), available):
            with column:
                st.image(to_picture(steps[name], STEP_PREVIEW_SIZE), caption=t(f"draw.steps.{name}"))


def probability_chart(probabilities):
    """Return a horizontal bar chart of the ten probabilities, the top digit highlighted."""
    digits = [str(digit) for digit in range(10)]
    top = str(int(probabilities.argmax()))
    frame = pd.DataFrame({"digit": digits, "probability": probabilities.astype(float)})
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("digit:N", title=t("draw.chart_digit"), sort=digits,
                    axis=alt.Axis(labelOverlap=False, labelAngle=0)),
            x=alt.X("probability:Q", title=t("draw.chart_probability"),
                    scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%", values=[0, 0.25, 0.5, 0.75, 1],
                                  labelOverlap=False)),
            color=alt.condition(alt.datum.digit == top, alt.value("#e4572e"), alt.value("#7f8c9a")),
            tooltip=[alt.Tooltip("digit:N", title=t("draw.chart_digit")),
                     alt.Tooltip("probability:Q", title=t("draw.chart_probability"), format=".1%")],
        )
        .properties(height=230)
    )


def render_network_picker(runs, own_ids):
    """Draw the network selectbox; return the selected run (None without networks)."""
    selected = selected_run()
    if selected is None:
        return None

    # ui.runs stores the selection. Seeding the widget from it on every run shows a network picked
    # on another page, and replaces one that no longer exists.
    st.session_state[NETWORK_KEY] = selected.id
    labels = {run.id: network_label(run, own_ids) for run in runs}
    st.selectbox(t("draw.network"), list(labels), format_func=labels.get, key=NETWORK_KEY,
                 help=t("draw.network_help"),
                 on_change=lambda: select_run(st.session_state[NETWORK_KEY]))
    return selected


def render_prediction(selected, reading, image_error):
    prediction = None
    if selected is not None and reading is not None:
        prediction = next((p for p in reading.predictions if p.run_id == selected.id), None)

    with st.container(key="prediction"):
        digit = NO_DIGIT if prediction is None or prediction.digit is None else str(prediction.digit)
        with st.container(key="predicted-digit"):
            st.markdown(f'<p style="font-size:5rem;font-weight:700;line-height:1;margin:0">{digit}</p>',
                        unsafe_allow_html=True)

        if image_error is not None:
            st.error(t("draw.error_image"))
        elif selected is None:
            st.info(t("draw.no_networks"))
            st.page_link("ui/pages/train.py", label=t("draw.go_train"), icon=":material/model_training:")
        elif reading is None or reading.preprocessed.reason == "blank":
            st.info(t("draw.hint_blank"))
        elif reading.preprocessed.reason == "speck":
            st.info(t("draw.hint_speck"))
        elif prediction is None:
            st.info(t("draw.hint_blank"))
        elif prediction.probabilities is None:
            st.error(prediction_error_text(prediction))
        else:
            st.markdown(t("draw.confidence", value=format_percent(prediction.confidence)))
            st.altair_chart(probability_chart(prediction.probabilities), width="stretch")


def render_comparison(runs, reading):
    if not runs:
        return
    st.subheader(t("draw.compare_heading"), anchor=False)
    st.caption(t("draw.compare_caption"))

    predictions = {p.run_id: p for p in reading.predictions} if reading is not None else {}
    rows = []
    for run in runs:
        prediction = predictions.get(run.id)
        if prediction is None:
            digit, confidence = NO_DIGIT, NO_DIGIT
        elif prediction.probabilities is None:
            digit, confidence = t("draw.network_failed"), NO_DIGIT
        else:
            digit, confidence = str(prediction.digit), format_percent(prediction.confidence)
        accuracy = run.test_accuracy
        rows.append({
            t("draw.column_network"): run.name,
            t("draw.column_loss"): loss_label(run.loss),
            t("draw.column_digit"): digit,
            t("draw.column_confidence"): confidence,
            t("draw.column_accuracy"): NO_DIGIT if accuracy is None else format_percent(accuracy),
        })
    with st.container(key="comparison"):
        st.table(pd.DataFrame(rows), hide_index=True)


def adopt_finished_training():
    """Add this session's training run to the networks once it has ended; True if it did.

    The train page does this too, but a learner may start a run and come here to draw while it
    trains. ``finalize_job`` also selects the new run, so it is the one shown next.
    """
    if not finalize_job():
        return False
    run = last_run()
    if run is not None:
        st.session_state[NEW_RUN_KEY] = run.name
    return True


def training_status():
    """Fragment body: show a caption while a training run is in progress; rerun the page when it ends."""
    if adopt_finished_training():
        st.rerun(scope="app")
    if active_job() is not None:
        st.caption(t("draw.training_running"))


# ----- the page -----

st.title(t("draw.title"))
st.caption(t("draw.intro"))

adopt_finished_training()
new_run = st.session_state.pop(NEW_RUN_KEY, None)
if new_run is not None:
    st.toast(t("draw.training_done", name=new_run), icon=":material/check_circle:")
st.fragment(run_every=TRAINING_POLL_SECONDS if active_job() is not None else None)(training_status)()

runs = available_runs()
own_ids = {run.id for run in session_runs()}
for _, error in saved_runs()[1]:
    st.warning(t("draw.error_model_file", message=t_error(error)))

# Fixed-width boxes in a wrapping row: the canvas never gets squeezed below its 280 px, and on a
# narrow window the boxes move under each other.
row = st.container(horizontal=True, gap="medium")
canvas_column = row.container(width=CANVAS_SIZE + 10)
input_column = row.container(width=PREVIEW_SIZE + 20)
prediction_column = row.container(width="stretch")
with canvas_column:
    png_bytes, image_error = canvas_png(render_canvas())
reading, image_error = current_reading(png_bytes, runs, image_error)

with input_column:
    render_network_input(reading)
with prediction_column:
    st.subheader(t("draw.prediction_heading"), anchor=False)
    selected = render_network_picker(runs, own_ids)
    render_prediction(selected, reading, image_error)

render_steps(reading)
render_comparison(runs, reading)
