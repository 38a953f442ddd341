"""Loss duel page: the learner's network trained three times, once per loss, side by side.

One click builds three copies of the stack: cross-entropy on logits, MSE on softmax
probabilities or raw outputs, and BCE on sigmoid outputs. It checks that their starting weights
are byte-identical and trains them in lockstep on the same batches in a background job
(``engine.duel.fit_duel`` in a ``ui.worker.TrainingJob``). Fragments redraw the progress and
the curves while it runs. Afterwards the page shows the results table, adds the three networks
to the session's runs (so the draw page shows them) and lets the learner save them. The last
section shows the gradient each loss sends back to the ten outputs for one example.

Stable hooks for tests: the start button is in the container keyed ``duel-start``, the stop
button in ``duel-stop``, the curves in ``duel-chart``, the results table in ``duel-results``,
the weight check in ``duel-weights`` and the gradient numbers in ``duel-gradients``.
"""

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from engine.data import load_bundled, resolve_mnist
from engine.duel import DUEL_LOSSES, MSE_OUTPUTS, duel_configs, output_gradients
from engine.errors import DigitLabError, ModelFileError
from engine.spec import format_spec, parse_spec
from engine.train import build_for_config
from ui.draw_predict import to_picture
from ui.duel_logic import (
    COLOURS, CONFIDENCE_STEPS, DEFAULT_SPEC, accuracy_rows, example_logits, find_misclassified,
    gradient_rows, loss_rows, make_duel_work, prepare_duel, result_rows, run_progress,
    softmax, zoomed_lower_bound,
)
from ui.i18n import format_number, format_percent, t, t_error
from ui.duel_session import SETUP_KEY, finish_duel_if_done
from ui.runs import save_run, session_runs
from ui.train_logic import BATCH_SIZES, DEFAULT_LR, OPTIMIZER_NAMES, strip_ids
from ui.train_state import mnist_loader
from ui.worker import DONE_STATES, FAILED, QUEUED, TrainingJob

MESSAGE_KEY = "duel-message"
SAVE_MESSAGES_KEY = "duel-save-messages"
CONFIRM_KEY = "duel-save-confirm"
ZOOM_KEY = "duel-zoom"
SHARED_SCALE_KEY = "duel-grad-shared-scale"
GRAD_NETWORK_KEY = "duel-grad-network"
INITIAL_CACHE_KEY = "duel-initial-model"
LAYERS_KEY = "duel-layers"
# Session-state keys where the train page keeps its layer stack (rows with ids, or a spec);
# see ui/train_state.py.
TRAIN_STACK_KEYS = ("train_stack",)
# The train page's settings dict (optimizer, lr, batch_size, epochs, seed, data).
TRAIN_SETTINGS_KEY = "train_settings"
# The draw page keeps its last reading here as (cache key, DrawingReading).
DRAW_READING_KEY = "draw-reading"

STATUS_SECONDS = 0.5
CHART_SECONDS = 1.5
NOT_AVAILABLE = "\u2014"
MIN_LR, MAX_LR = 1e-5, 10.0
MAX_EPOCHS = 20


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------

def loss_name(loss):
    return t(f"duel.loss_names.{loss}")


def output_text(loss, mse_output):
    if loss == "mse":
        return t(f"duel.output_layers.mse_{mse_output}")
    return t(f"duel.output_layers.{loss}")


def train_page_spec():
    """Return the train page's layer stack as compact text, or None if it has none."""
    for key in TRAIN_STACK_KEYS:
        value = st.session_state.get(key)
        try:
            if isinstance(value, str) and value.strip():
                return format_spec(parse_spec(value))
            if isinstance(value, list) and value:
                return format_spec(strip_ids(value))
        except (DigitLabError, KeyError, TypeError):
            continue
    return None


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

def on_optimizer_change():
    st.session_state["duel-lr"] = DEFAULT_LR[st.session_state["duel-optimizer"]]
    for loss in DUEL_LOSSES:
        st.session_state[f"duel-lr-{loss}"] = st.session_state["duel-lr"]


def seed_settings():
    """Give each settings widget its first value: the train page's setting, else a default.

    Streamlit drops a widget's value when a run does not draw it, so on coming back from
    another page the duel starts again from the train page's current settings.
    """
    train = st.session_state.get(TRAIN_SETTINGS_KEY)
    train = train if isinstance(train, dict) else {}
    optimizer = train.get("optimizer") if train.get("optimizer") in OPTIMIZER_NAMES else "adam"
    defaults = {
        LAYERS_KEY: train_page_spec() or DEFAULT_SPEC,
        "duel-optimizer": optimizer,
        "duel-lr": float(train.get("lr") or DEFAULT_LR[optimizer]),
        "duel-batch-size": train.get("batch_size") if train.get("batch_size") in BATCH_SIZES
        else 64,
        "duel-epochs": min(max(int(train.get("epochs") or 3), 1), MAX_EPOCHS),
        "duel-seed": int(train.get("seed") or 0),
        "duel-data": "bundled" if train.get("data") == "bundled" else "mnist",
        "duel-mse-output": "softmax",
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def render_settings(disabled):
    """Draw the settings and return ``(configs, data_choice, mse_output)``; configs is None
    while the settings are invalid (the error is shown)."""
    st.subheader(t("duel.settings_heading"), anchor=False)
    seed_settings()
    from_train = train_page_spec()

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.text_input(t("duel.layers"), key=LAYERS_KEY, disabled=disabled,
                      help=t("duel.layers_help"))
        if from_train is not None and from_train != st.session_state[LAYERS_KEY]:
            st.button(t("duel.use_train_stack", spec=from_train), disabled=disabled,
                      on_click=lambda: st.session_state.update({LAYERS_KEY: from_train}))
        elif from_train is None:
            st.caption(t("duel.no_train_stack", spec=DEFAULT_SPEC))
        mse_output = st.radio(t("duel.mse_output"), MSE_OUTPUTS, key="duel-mse-output",
                              format_func=lambda value: t(f"duel.mse_output_options.{value}"),
                              horizontal=True, disabled=disabled)
        data_choice = st.radio(t("duel.data"), ("mnist", "bundled"), key="duel-data",
                               format_func=lambda value: t(f"duel.data_options.{value}"),
                               horizontal=True, disabled=disabled, help=t("duel.data_help"))
    with right:
        optimizer = st.selectbox(t("duel.optimizer"), OPTIMIZER_NAMES, key="duel-optimizer",
                                 on_change=on_optimizer_change,
                                 format_func=lambda name: t(f"duel.optimizers.{name}"),
                                 disabled=disabled)
        lr = st.number_input(t("duel.lr"), min_value=MIN_LR, max_value=MAX_LR, step=1e-4,
                             format="%.5f", key="duel-lr", disabled=disabled)
        if optimizer == "adam":
            st.caption(t("duel.optimizer_tip"))
        own_lr = st.checkbox(t("duel.own_lr"), key="duel-own-lr", disabled=disabled,
                             help=t("duel.own_lr_help"))
        lrs = None
        if own_lr:
            lrs = {}
            for column, loss in zip(st.columns(3), DUEL_LOSSES):
                st.session_state.setdefault(f"duel-lr-{loss}", lr)
                with column:
                    lrs[loss] = st.number_input(loss_name(loss), min_value=MIN_LR,
                                                max_value=MAX_LR, step=1e-4, format="%.5f",
                                                key=f"duel-lr-{loss}", disabled=disabled)
        batch_column, epochs_column, seed_column = st.columns(3)
        with batch_column:
            batch_size = st.selectbox(t("duel.batch_size"), BATCH_SIZES, key="duel-batch-size",
                                      disabled=disabled)
        with epochs_column:
            epochs = st.number_input(t("duel.epochs"), min_value=1, max_value=MAX_EPOCHS,
                                     step=1, key="duel-epochs", disabled=disabled)
        with seed_column:
            seed = st.number_input(t("duel.seed"), min_value=0, max_value=2**32 - 1, step=1,
                                   key="duel-seed", disabled=disabled)

    try:
        configs = duel_configs(parse_spec(st.session_state[LAYERS_KEY]), optimizer=optimizer,
                               lr=float(lr), batch_size=int(batch_size), epochs=int(epochs),
                               seed=int(seed), mse_output=mse_output, lrs=lrs)
    except DigitLabError as err:
        st.error(t_error(err))
        return None, data_choice, mse_output

    render_stacks(configs, mse_output)
    return configs, data_choice, mse_output


def render_stacks(configs, mse_output):
    """Show the three stacks: the learner's stack plus the output layer each loss needs."""
    rows = [{
        t("duel.column_loss"): loss_name(loss),
        t("duel.column_output"): output_text(loss, mse_output),
        t("duel.column_stack"): format_spec(configs[loss].layers),
        t("duel.column_lr"): f"{configs[loss].lr:g}",
    } for loss in DUEL_LOSSES]
    st.table(pd.DataFrame(rows), hide_index=True)
    st.caption(t("duel.stacks_caption"))


# ---------------------------------------------------------------------------
# Starting and stopping
# ---------------------------------------------------------------------------

def load_data(choice):
    """Return ``(dataset, kind)`` for the data choice; MNIST falls back to the bundled subset."""
    if choice == "bundled":
        return load_bundled(), "bundled"
    # Use MNIST as the train page resolved it, which may include a download. Otherwise use only
    # what is already on this machine, because downloading is the train page's job.
    source = mnist_loader().loaded() or resolve_mnist(download_allowed=False)
    return source.dataset, source.kind


def start_duel(configs, data_choice, mse_output):
    st.session_state.pop(MESSAGE_KEY, None)
    st.session_state.pop(CONFIRM_KEY, None)
    st.session_state.pop(SAVE_MESSAGES_KEY, None)
    try:
        dataset, kind = load_data(data_choice)
    except DigitLabError as err:
        st.session_state[MESSAGE_KEY] = ("error", t_error(err))
        return
    if data_choice == "mnist" and kind == "bundled":
        st.session_state[MESSAGE_KEY] = ("info", t("duel.fallback_bundled"))
    setup = prepare_duel(configs, dataset, kind, mse_output)
    st.session_state[SETUP_KEY] = setup
    if not setup.check.identical:
        st.session_state[MESSAGE_KEY] = ("error", t("duel.weights_differ"))
        return
    ctx = get_script_run_ctx()
    setup.job = TrainingJob(make_duel_work(setup), ctx.session_id if ctx else None,
                            series=DUEL_LOSSES, name="loss-duel").start()


def stop_duel(setup):
    setup.job.stop()


def render_controls(setup, configs, data_choice, mse_output, running):
    start_column, stop_column, _ = st.columns([2, 2, 6])
    with start_column, st.container(key="duel-start"):
        st.button(t("duel.start"), type="primary", on_click=start_duel,
                  args=(configs, data_choice, mse_output),
                  disabled=running or configs is None, icon=":material/play_arrow:")
    with stop_column, st.container(key="duel-stop"):
        if running:
            st.button(t("duel.stop"), on_click=stop_duel, args=(setup,),
                      icon=":material/stop:")
    message = st.session_state.get(MESSAGE_KEY)
    if message is not None:
        getattr(st, message[0])(message[1])


def render_weight_check(setup):
    check = setup.check
    with st.container(key="duel-weights"):
        if check.identical:
            st.success(t("duel.weights_identical", n_params=format_number(check.n_params),
                         digest=check.digests["ce"]), icon=":material/check_circle:")
        else:
            digests = t("duel.list_separator").join(f"{loss_name(loss)} {digest}"
                                for loss, digest in check.digests.items())
            st.error(t("duel.weights_differ_detail", digests=digests))
        st.caption(t("duel.lockstep_caption", n_train=format_number(setup.dataset.n_train),
                     name=setup.dataset.name, steps=format_number(setup.total_steps)))


# ---------------------------------------------------------------------------
# Live progress and curves
# ---------------------------------------------------------------------------

def render_status(setup):
    snapshot = setup.job.snapshot()
    state = snapshot["state"]
    if state == QUEUED:
        st.info(t("duel.queued", position=snapshot["queue_position"] or 1))
    elif state == FAILED:
        st.error(t("duel.failed", error=str(snapshot["error"])))
    total = snapshot["total_steps"] or setup.total_steps
    fraction = min(snapshot["step"] / total, 1.0) if total else 0.0
    st.progress(fraction, text=t(f"duel.states.{state}", step=format_number(snapshot["step"]),
                                 total=format_number(total)))

    progress = run_progress(snapshot, setup.probes)
    for column, loss in zip(st.columns(3), DUEL_LOSSES):
        accuracy = progress[loss]["probe_accuracy"]
        with column:
            st.metric(t("duel.metric_label", loss=loss_name(loss),
                        size=format_number(setup.probe_size)),
                      NOT_AVAILABLE if accuracy is None else format_percent(accuracy),
                      help=t("duel.metric_help", size=format_number(setup.probe_size)))
    if state in DONE_STATES and not setup.shown_done:
        # Redraw the whole page once: results, runs, and fragments that no longer poll.
        finish_duel_if_done(setup)
        st.rerun(scope="app")


def colour_scale():
    names = [loss_name(loss) for loss in DUEL_LOSSES]
    return alt.Scale(domain=names, range=[COLOURS[loss] for loss in DUEL_LOSSES])


def accuracy_chart(rows, measures, title, x_max, zoom):
    frame = pd.DataFrame([row for row in rows if row["measure"] in measures],
                         columns=["loss", "epoch", "value", "measure"])
    frame["loss"] = frame["loss"].map(loss_name)
    low = zoomed_lower_bound(frame["value"].tolist()) if zoom else 0.0
    x = alt.X("epoch:Q", title=t("duel.chart_epoch"), scale=alt.Scale(domain=[0, x_max]))
    y = alt.Y("value:Q", title=t("duel.chart_accuracy"), scale=alt.Scale(domain=[low, 1]),
              axis=alt.Axis(format="%"))
    colour = alt.Color("loss:N", title=t("duel.column_loss"), scale=colour_scale(),
                       legend=alt.Legend(orient="bottom"))
    lines = alt.Chart(frame[frame["measure"] != "test"]).mark_line(clip=True).encode(
        x=x, y=y, color=colour)
    points = alt.Chart(frame[frame["measure"] == "test"]).mark_point(
        size=70, filled=True, clip=True).encode(x=x, y=y, color=colour)
    return (lines + points).properties(title=title, height=260)


def loss_chart(rows, loss, x_max):
    frame = pd.DataFrame(rows, columns=["epoch", "value", "measure"])
    x = alt.X("epoch:Q", title=t("duel.chart_epoch"), scale=alt.Scale(domain=[0, x_max]))
    y = alt.Y("value:Q", title=t("duel.chart_loss", loss=loss_name(loss)),
              scale=alt.Scale(zero=False))
    colour = alt.value(COLOURS[loss])
    lines = alt.Chart(frame[frame["measure"] == "train"]).mark_line().encode(x=x, y=y, color=colour)
    points = alt.Chart(frame[frame["measure"] == "test"]).mark_point(size=60, filled=True).encode(
        x=x, y=y, color=colour)
    return (lines + points).properties(title=loss_name(loss), height=200)


def render_charts(setup):
    snapshot = setup.job.snapshot()
    n_steps = setup.steps_per_epoch
    x_max = setup.first.epochs
    rows = accuracy_rows(snapshot, setup.probes, n_steps)
    zoom = st.session_state.get(ZOOM_KEY, False)
    with st.container(key="duel-chart"):
        test_column, train_column = st.columns(2)
        with test_column:
            st.altair_chart(accuracy_chart(rows, ("probe", "test"), t("duel.chart_test_title"),
                                           x_max, zoom), width="stretch")
        with train_column:
            st.altair_chart(accuracy_chart(rows, ("train",), t("duel.chart_train_title"), x_max,
                                           zoom), width="stretch")
        st.caption(t("duel.chart_accuracy_caption", size=format_number(setup.probe_size),
                     every=setup.probe_every))
        for column, loss in zip(st.columns(3), DUEL_LOSSES):
            with column:
                st.altair_chart(loss_chart(loss_rows(snapshot, loss, n_steps), loss, x_max),
                                width="stretch")
        st.caption(t("duel.chart_loss_caption"))


# ---------------------------------------------------------------------------
# Results, runs and saving
# ---------------------------------------------------------------------------

def steps_text(steps):
    return t("duel.not_reached") if steps is None else format_number(steps)


def number_text(value, digits=4):
    return NOT_AVAILABLE if value is None else format_number(value, digits)


def percent_text(value):
    return NOT_AVAILABLE if value is None else format_percent(value)


def render_results(setup):
    rows = result_rows(setup)
    if rows is None:
        return
    st.subheader(t("duel.results_heading"), anchor=False)
    table = []
    for loss in DUEL_LOSSES:
        row = rows[loss]
        status = t(f"duel.run_status.{row['status']}", step=row["diverged_at_step"])
        table.append({
            t("duel.column_loss"): loss_name(loss),
            t("duel.column_final_accuracy"): percent_text(row["final_test_accuracy"]),
            t("duel.column_best_accuracy"): percent_text(row["best_test_accuracy"]),
            t("duel.column_steps_90"): steps_text(row["steps_to_90"]),
            t("duel.column_steps_95"): steps_text(row["steps_to_95"]),
            t("duel.column_seconds"): format_number(row["seconds"], 1),
            t("duel.column_train_loss"): number_text(row["final_train_loss"]),
            t("duel.column_test_loss"): number_text(row["final_test_loss"]),
            t("duel.column_status"): status,
        })
    with st.container(key="duel-results"):
        st.table(pd.DataFrame(table), hide_index=True)
    duel = setup.job.result
    st.caption(t("duel.results_caption", every=duel.probe_every,
                 size=format_number(duel.probe_size), seconds=format_number(duel.seconds, 1)))


def save_one(setup, loss, overwrite=False):
    run = next((run for run in session_runs() if run.id == setup.run_ids.get(loss)), None)
    if run is None:
        return
    name = st.session_state.get(f"duel-save-name-{setup.id}-{loss}", run.name)
    messages = st.session_state.setdefault(SAVE_MESSAGES_KEY, {})
    confirm = st.session_state.setdefault(CONFIRM_KEY, {})
    confirm.pop(loss, None)
    try:
        path = save_run(run, name, overwrite=overwrite)
    except ModelFileError as err:
        if err.key == "model.exists":
            confirm[loss] = name
            messages[loss] = ("warning", t("duel.save_exists", name=name))
        else:
            messages[loss] = ("error", t_error(err))
        return
    messages[loss] = ("success", t("duel.saved", name=name, path=str(path)))


def cancel_overwrite(loss):
    st.session_state.get(CONFIRM_KEY, {}).pop(loss, None)
    st.session_state.get(SAVE_MESSAGES_KEY, {}).pop(loss, None)


def render_runs(setup):
    if not setup.run_ids:
        return
    st.subheader(t("duel.runs_heading"), anchor=False)
    runs = {run.id: run for run in session_runs()}
    names = t("duel.list_separator").join(runs[run_id].name for run_id in setup.run_ids.values()
                                          if run_id in runs)
    st.markdown(t("duel.runs_added", names=names))
    st.page_link("ui/pages/draw.py", label=t("duel.go_draw"), icon=":material/draw:")

    messages = st.session_state.get(SAVE_MESSAGES_KEY, {})
    confirm = st.session_state.get(CONFIRM_KEY, {})
    for loss in DUEL_LOSSES:
        run = runs.get(setup.run_ids.get(loss))
        if run is None:
            continue
        name_column, save_column, message_column = st.columns([3, 1, 4],
                                                              vertical_alignment="bottom")
        with name_column:
            st.text_input(t("duel.save_name", loss=loss_name(loss)), value=run.name,
                          key=f"duel-save-name-{setup.id}-{loss}", max_chars=64)
        with save_column:
            st.button(t("duel.save"), key=f"duel-save-{loss}", on_click=save_one,
                      args=(setup, loss), icon=":material/save:")
        with message_column:
            if loss in messages:
                getattr(st, messages[loss][0])(messages[loss][1])
            if loss in confirm:
                yes, no = st.columns(2)
                yes.button(t("duel.overwrite"), key=f"duel-overwrite-{loss}", on_click=save_one,
                           args=(setup, loss, True))
                no.button(t("duel.cancel"), key=f"duel-cancel-{loss}", on_click=cancel_overwrite,
                          args=(loss,))


# ---------------------------------------------------------------------------
# Why it happens: gradients at the outputs
# ---------------------------------------------------------------------------

def initial_model(configs):
    """Return the untrained network for ``configs`` (cached per stack and seed)."""
    key = (format_spec(configs["ce"].layers), configs["ce"].seed)
    cached = st.session_state.get(INITIAL_CACHE_KEY)
    if cached is None or cached[0] != key:
        cached = (key, build_for_config(configs["ce"]))
        st.session_state[INITIAL_CACHE_KEY] = cached
    return cached[1]


@st.cache_resource(show_spinner=False)
def bundled_dataset():
    return load_bundled()


def drawing_input():
    """Return the draw page's current digit as float32 (28, 28), or None."""
    cached = st.session_state.get(DRAW_READING_KEY)
    reading = cached[1] if isinstance(cached, tuple) and len(cached) == 2 else None
    if reading is None or not getattr(reading, "has_digit", False):
        return None
    return reading.preprocessed.input


def next_misclassified(model, dataset):
    index = find_misclassified(model, dataset.x_test, dataset.y_test,
                               st.session_state.get("duel-example-index", 0))
    if index is None:
        st.session_state["duel-example-note"] = t("duel.none_wrong")
    else:
        st.session_state["duel-example-index"] = index
        st.session_state.pop("duel-example-note", None)


def gradient_chart(rows, loss, y_domain):
    frame = pd.DataFrame([row for row in rows if row["loss"] == loss])
    digits = [str(digit) for digit in range(10)]
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("digit:N", title=t("duel.grad_digit"), sort=digits,
                    axis=alt.Axis(labelAngle=0)),
            y=alt.Y("gradient:Q", title=t("duel.grad_axis"), scale=alt.Scale(domain=y_domain)),
            color=alt.condition(alt.datum.is_target, alt.value(COLOURS[loss]),
                                alt.value("#9aa5b1")),
            tooltip=[alt.Tooltip("digit:N", title=t("duel.grad_digit")),
                     alt.Tooltip("gradient:Q", title=t("duel.grad_axis"), format=".5f"),
                     alt.Tooltip("output:Q", title=t("duel.grad_output"), format=".4f")],
        )
        .properties(title=loss_name(loss), height=220)
    )


def render_gradients(setup, configs):
    st.subheader(t("duel.why_heading"), anchor=False)
    st.markdown(t("duel.why_intro"))

    networks = {}
    if setup is not None and setup.run_ids:
        for loss in DUEL_LOSSES:
            networks[loss] = setup.models[loss]
        networks["initial"] = setup.initial
    elif configs is not None:
        networks["initial"] = initial_model(configs)
    if not networks:
        st.info(t("duel.why_needs_stack"))
        return
    mse_output = setup.mse_output if setup is not None and setup.run_ids else \
        st.session_state.get("duel-mse-output", "softmax")
    dataset = setup.dataset if setup is not None else bundled_dataset()
    drawing = drawing_input()

    pick_column, image_column = st.columns([3, 1], gap="large")
    with pick_column:
        sources = ("test", "drawing") if drawing is not None else ("test",)
        source = st.radio(t("duel.example_source"), sources, horizontal=True,
                          key="duel-example-source",
                          format_func=lambda value: t(f"duel.example_sources.{value}"))
        # A new key after each duel, so the choice starts at the trained cross-entropy network.
        trained_id = setup.id if setup is not None and setup.run_ids else "untrained"
        network_key = st.selectbox(t("duel.network"), list(networks),
                                   key=f"{GRAD_NETWORK_KEY}-{trained_id}",
                                   format_func=lambda value: t(f"duel.networks.{value}"))
        model = networks[network_key]
        if source == "test":
            index_column, button_column = st.columns([1, 1], vertical_alignment="bottom")
            with index_column:
                index = st.number_input(t("duel.example_index"), min_value=0,
                                        max_value=dataset.n_test - 1, step=1,
                                        key="duel-example-index")
            with button_column:
                st.button(t("duel.find_wrong"), on_click=next_misclassified,
                          args=(model, dataset))
            if "duel-example-note" in st.session_state:
                st.caption(st.session_state["duel-example-note"])
            image = dataset.x_test[int(index)]
            label = int(dataset.y_test[int(index)])
            picture = to_picture(image.astype("float32") / 255.0, 112)
        else:
            image = drawing
            label = None
            picture = to_picture(drawing, 112)
        z = example_logits(model, image)
        default_target = label if label is not None else int(z.argmax())
        target = st.selectbox(t("duel.target"), list(range(10)), index=default_target,
                              key=f"duel-target-{source}-{label}",
                              help=t("duel.target_help"))
        scale = st.select_slider(t("duel.confidence"), CONFIDENCE_STEPS, value=1.0,
                                 key="duel-confidence",
                                 format_func=lambda value: t("duel.confidence_value",
                                                             value=f"{value:g}"),
                                 help=t("duel.confidence_help"))
    with image_column:
        caption = t("duel.image_label", label=label) if label is not None else \
            t("duel.image_drawing")
        st.image(picture, caption=caption)

    gradients = output_gradients(z, target, mse_output=mse_output, scale=scale)
    probabilities = softmax(z * scale)
    predicted = int(probabilities.argmax())
    key = "duel.prediction_right" if predicted == target else "duel.prediction_wrong"
    st.markdown(t(key, digit=predicted, probability=format_percent(float(probabilities[predicted])),
                  target=target, target_probability=format_percent(float(probabilities[target]))))

    rows = gradient_rows(gradients, target)
    shared = st.toggle(t("duel.shared_scale"), value=True, key=SHARED_SCALE_KEY,
                       help=t("duel.shared_scale_help"))
    for column, loss in zip(st.columns(3), DUEL_LOSSES):
        item = gradients[loss]
        shown = rows if shared else [row for row in rows if row["loss"] == loss]
        limit = max(abs(row["gradient"]) for row in shown) or 1.0
        with column:
            st.altair_chart(gradient_chart(rows, loss, [-limit * 1.05, limit * 1.05]),
                            width="stretch")
            st.caption(t("duel.grad_caption", output=output_text(loss, mse_output),
                         value=format_number(item.value, 4),
                         total=format_number(float(abs(item.grad).sum()), 4)))
    st.markdown(t("duel.why_explanation"))
    st.caption(t("duel.why_scale_note"))

    with st.expander(t("duel.grad_numbers")):
        frame = pd.DataFrame({t("duel.grad_digit"): [str(digit) for digit in range(10)]})
        for loss in DUEL_LOSSES:
            frame[loss_name(loss)] = gradients[loss].grad.astype(float)
        with st.container(key="duel-gradients"):
            st.dataframe(frame, hide_index=True, column_config={
                loss_name(loss): st.column_config.NumberColumn(format="%.6f")
                for loss in DUEL_LOSSES})


# ---------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------

st.title(t("duel.title"))
st.markdown(t("duel.intro"))

setup = st.session_state.get(SETUP_KEY)
if setup is not None and setup.job is not None and setup.job.done:
    finish_duel_if_done(setup)
    setup.shown_done = True
running = setup is not None and setup.job is not None and not setup.job.done

configs, data_choice, mse_output = render_settings(disabled=running)
render_controls(setup, configs, data_choice, mse_output, running)

if setup is not None:
    render_weight_check(setup)
if setup is not None and setup.job is not None:
    st.subheader(t("duel.progress_heading"), anchor=False)
    st.toggle(t("duel.zoom"), key=ZOOM_KEY, help=t("duel.zoom_help"))
    st.fragment(render_status, run_every=STATUS_SECONDS if running else None)(setup)
    st.fragment(render_charts, run_every=CHART_SECONDS if running else None)(setup)
    render_results(setup)
    render_runs(setup)

render_gradients(setup, configs)
