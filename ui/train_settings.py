"""The settings part of the train page: optimizer, learning rate, batch size, epochs, seed, data."""

import streamlit as st

from engine.errors import DigitLabError
from ui import train_state as state
from ui.i18n import format_number, t
from ui.train_logic import (BATCH_SIZES, BUDGETS, DEFAULT_LR, OPTIMIZER_NAMES, budget_settings,
                            estimate_seconds, measure_speed)

UPLOAD_WIDGET_KEY = "train_w_upload"
UPLOAD_ERROR_KEY = "train_upload_error"
UPLOAD_SEEN_KEY = "train_upload_seen"


def _store_optimizer():
    """Store the optimizer and switch to the learning rate that suits it."""
    state.store("optimizer")
    state.settings()["lr"] = DEFAULT_LR[state.settings()["optimizer"]]


def _apply_budget(budget):
    values = state.settings()
    spec = state.spec()

    def speed_for_batch(batch_size):
        return measure_speed(spec, values["loss"], values["optimizer"], batch_size)

    if values["data"] == "upload" and st.session_state.get(state.UPLOAD_KEY) is not None:
        sizes = state.data_sizes("upload")
        chosen = budget_settings(budget, speed_for_batch, sizes, sizes)
        data = "upload"
    else:
        chosen = budget_settings(budget, speed_for_batch, state.data_sizes("mnist"),
                                 state.data_sizes("bundled"))
        data = chosen.data
    values.update(data=data, batch_size=chosen.batch_size, epochs=chosen.epochs)


def render_settings(stack_valid):
    """Draw the training settings and the time-budget presets."""
    values = state.settings()

    optimizer, lr, batch = st.columns(3)
    optimizer.selectbox(t("train.settings.optimizer"), OPTIMIZER_NAMES, key=state.seed("optimizer"),
                        format_func=state.labels("train.optimizers", OPTIMIZER_NAMES),
                        on_change=_store_optimizer, help=t("train.settings.optimizer_help"))
    # No min or max: Streamlit silently ignores a typed value outside them, so out-of-range
    # values reach TrainConfig.validate instead, whose message blocks the Train button.
    lr.number_input(t("train.settings.lr"), step=1e-4,
                    format="%g", key=state.seed("lr"), on_change=state.store, args=("lr",),
                    help=t("train.settings.lr_help"))
    if values["batch_size"] not in BATCH_SIZES:
        values["batch_size"] = 64
    batch.select_slider(t("train.settings.batch_size"), BATCH_SIZES, key=state.seed("batch_size"),
                        on_change=state.store, args=("batch_size",),
                        help=t("train.settings.batch_size_help"))

    epochs, seed = st.columns(2)
    epochs.number_input(t("train.settings.epochs"), step=1,
                        key=state.seed("epochs"), on_change=state.store, args=("epochs",),
                        help=t("train.settings.epochs_help"))
    seed.number_input(t("train.settings.seed"), step=1,
                      key=state.seed("seed"), on_change=state.store, args=("seed",),
                      help=t("train.settings.seed_help"))
    st.toggle(t("train.settings.augment"), key=state.seed("augment"), on_change=state.store,
              args=("augment",), help=t("train.settings.augment_help"))

    st.markdown(f"**{t('train.budget.label')}**")
    columns = st.columns(len(BUDGETS))
    for column, budget in zip(columns, BUDGETS):
        column.button(t(f"train.budget.{budget}"), key=f"train_budget_{budget}",
                      on_click=_apply_budget, args=(budget,), disabled=not stack_valid,
                      width="stretch", help=t(f"train.budget.{budget}_help"))


def render_data_choice():
    """Draw the data source choice and, for an upload, the file uploader."""
    st.radio(t("data.label"), state.DATA_KINDS, key=state.seed("data"), horizontal=True,
             format_func=state.labels("data.kinds", state.DATA_KINDS), on_change=state.store,
             args=("data",))
    if state.settings()["data"] != "upload":
        return

    uploaded = st.file_uploader(t("data.upload_label"), type=["npz"], key=UPLOAD_WIDGET_KEY,
                                help=t("data.upload_help"))
    if uploaded is not None and st.session_state.get(UPLOAD_SEEN_KEY) != uploaded.file_id:
        st.session_state[UPLOAD_SEEN_KEY] = uploaded.file_id
        st.session_state[UPLOAD_ERROR_KEY] = state.read_upload(uploaded)
    error = st.session_state.get(UPLOAD_ERROR_KEY)
    if error:
        st.error(error, icon=":material/error:")


def render_data_notice(source, error):
    """Say which data set a run will use, or why none can be used."""
    with st.container(key="train-data-notice"):
        if error is not None:
            st.error(error, icon=":material/error:")
        elif source is None:
            st.info(t("data.upload_needed"), icon=":material/upload_file:")
        else:
            st.caption(t(source.reason_key, **source.reason_params))


def render_estimate(source, stack_valid):
    """Show how long the current settings will take, from the measured speed of this network."""
    if source is None or not stack_valid:
        return
    values = state.settings()
    try:
        speed = measure_speed(state.spec(), values["loss"], values["optimizer"],
                              int(values["batch_size"]))
    except DigitLabError:
        return
    dataset = source.dataset
    seconds = estimate_seconds(speed, dataset.n_train, dataset.n_test, int(values["epochs"]))
    st.caption(t("train.budget.estimate", time=format_duration(seconds),
                 epochs=values["epochs"], images=format_number(dataset.n_train),
                 speed=format_number(speed)))


def format_duration(seconds):
    """Return a duration as the page shows it: ``"4.2 s"``, ``"45 s"`` or ``"3 min 5 s"``."""
    if seconds < 10:
        return t("train.duration_seconds", seconds=format_number(max(seconds, 0.0), digits=1))
    seconds = round(seconds)
    if seconds < 60:
        return t("train.duration_seconds", seconds=seconds)
    if seconds % 60 == 0:
        return t("train.duration_whole_minutes", minutes=seconds // 60)
    return t("train.duration_minutes", minutes=seconds // 60, seconds=seconds % 60)
