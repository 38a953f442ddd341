"""The runs part of the train page: this session's runs, saving, downloading and loading models."""

import logging
from pathlib import Path

import streamlit as st

from engine.errors import DigitLabError, ModelFileError
from engine.modelfile import load_model, model_bytes
from engine.spec import format_spec, normalise
from ui.i18n import format_percent, t, t_error
from ui.train_logic import LOSS_NAMES
from ui.runs import (MODEL_NAME_PATTERN, Run, add_session_run, available_runs, saved_runs,
                     save_run, select_run, selected_run, session_runs, unique_run_name)

log = logging.getLogger(__name__)

SELECT_KEY = "train_w_selected_run"
SAVE_NAME_KEY = "train_w_save_name"
SAVE_NAME_FOR_KEY = "train_save_name_for"
PENDING_KEY = "train_save_pending"
MESSAGE_KEY = "train_runs_message"
MODEL_UPLOAD_KEY = "train_w_model_upload"
MODEL_UPLOAD_SEEN_KEY = "train_model_upload_seen"


def _find(run_id):
    return next((run for run in available_runs() if run.id == run_id), None)


def _select():
    select_run(st.session_state[SELECT_KEY])
    st.session_state.pop(PENDING_KEY, None)


def _save(run_id, overwrite=False):
    run = _find(run_id)
    name = st.session_state.get(SAVE_NAME_KEY, "")
    st.session_state.pop(PENDING_KEY, None)
    if run is None:
        return
    try:
        path = save_run(run, name, overwrite=overwrite)
    except ModelFileError as err:
        if err.key == "model.exists":
            st.session_state[PENDING_KEY] = {"run_id": run_id, "name": name.strip()}
        else:
            st.session_state[MESSAGE_KEY] = ("error", t_error(err))
        return
    except OSError as err:
        log.warning("saving run %s as %r failed: %s", run.name, name, err)
        st.session_state[MESSAGE_KEY] = ("error", t("train.runs.save_failed", error=str(err)))
        return
    st.session_state[MESSAGE_KEY] = ("success", t("train.runs.saved", name=path.stem,
                                                  path=str(path)))


def _cancel_save():
    st.session_state.pop(PENDING_KEY, None)


def _loss_name(run):
    return t(f"train.loss.{run.loss}") if run.loss in LOSS_NAMES else str(run.loss)


def _layers_text(run):
    try:
        return format_spec(normalise(run.header["layers"]))
    except (DigitLabError, KeyError, TypeError):
        return "?"


def _accuracy_text(run):
    accuracy = run.test_accuracy
    return format_percent(accuracy) if isinstance(accuracy, (int, float)) else "—"


def _describe_run(run):
    return t("train.runs.option", name=run.name, loss=_loss_name(run),
             accuracy=_accuracy_text(run))


def render_runs():
    """Draw the runs of this session, the selected network's actions and the saved models."""
    st.subheader(t("train.runs.title"))
    runs = session_runs()
    if runs:
        with st.container(key="train-runs"):
            st.dataframe(_runs_table(runs), hide_index=True, width="stretch")
    else:
        st.caption(t("train.runs.none"))

    choices = available_runs()
    if choices:
        selected = selected_run()
        ids = [run.id for run in choices]
        st.session_state[SELECT_KEY] = selected.id if selected is not None else ids[0]
        st.selectbox(t("train.runs.select"), ids, key=SELECT_KEY, on_change=_select,
                     format_func={run.id: _describe_run(run) for run in choices}.get,
                     help=t("train.runs.select_help"))
        if selected is not None:
            _render_actions(selected)

    message = st.session_state.pop(MESSAGE_KEY, None)
    if message is not None:
        kind, text = message
        (st.success if kind == "success" else st.error)(text)

    _render_saved_models()
    _render_model_upload()


def _runs_table(runs):
    return {
        t("train.runs.column_name"): [run.name for run in runs],
        t("train.runs.column_status"): [t(f"train.states.{run.status}") for run in runs],
        t("train.runs.column_loss"): [_loss_name(run) for run in runs],
        t("train.runs.column_test_accuracy"): [_accuracy_text(run) for run in runs],
        t("train.runs.column_epochs"): [len(run.curves.get("epochs", [])) for run in runs],
        t("train.runs.column_data"): [(run.header.get("dataset") or {}).get("name", "—")
                                      for run in runs],
        t("train.runs.column_layers"): [_layers_text(run) for run in runs],
    }


def _render_actions(run):
    """Save (with a confirm step before overwriting) and download the selected network."""
    if st.session_state.get(SAVE_NAME_FOR_KEY) != run.id:
        st.session_state[SAVE_NAME_FOR_KEY] = run.id
        st.session_state[SAVE_NAME_KEY] = run.name

    name, save, download = st.columns([2, 1, 1], vertical_alignment="bottom")
    name.text_input(t("train.runs.save_name"), key=SAVE_NAME_KEY, max_chars=64,
                    help=t("train.runs.save_name_help"))
    with save.container(key="train-save"):
        st.button(t("train.runs.save"), icon=":material/save:", on_click=_save, args=(run.id,))
    typed_name = st.session_state.get(SAVE_NAME_KEY, "").strip()
    file_stem = typed_name if MODEL_NAME_PATTERN.fullmatch(typed_name) else run.name
    with download.container(key="train-download"):
        st.download_button(t("train.runs.download"), data=lambda: model_bytes(run.model,
                                                                              run.header),
                           file_name=f"{file_stem}.npz", mime="application/octet-stream",
                           icon=":material/download:", on_click="ignore")

    pending = st.session_state.get(PENDING_KEY)
    if pending is not None and pending["run_id"] == run.id:
        with st.container(key="train-save-confirm"):
            st.warning(t("train.runs.confirm_overwrite", name=pending["name"]))
            overwrite, cancel, _ = st.columns([1, 1, 3])
            overwrite.button(t("train.runs.overwrite"), type="primary", on_click=_save,
                             args=(run.id, True))
            cancel.button(t("train.runs.cancel"), on_click=_cancel_save)


def _render_saved_models():
    runs, errors = saved_runs()
    st.markdown(f"**{t('train.runs.saved_title')}**")
    if runs:
        st.dataframe({
            t("train.runs.column_name"): [run.name for run in runs],
            t("train.runs.column_loss"): [_loss_name(run) for run in runs],
            t("train.runs.column_test_accuracy"): [_accuracy_text(run) for run in runs],
            t("train.runs.column_layers"): [_layers_text(run) for run in runs],
        }, hide_index=True, width="stretch")
    else:
        st.caption(t("train.runs.no_saved"))
    for path, err in errors:
        st.warning(t("train.runs.unreadable", name=Path(path).name, error=t_error(err)))


def _render_model_upload():
    uploaded = st.file_uploader(t("train.runs.upload"), type=["npz"], key=MODEL_UPLOAD_KEY,
                                help=t("train.runs.upload_help"))
    if uploaded is None or st.session_state.get(MODEL_UPLOAD_SEEN_KEY) == uploaded.file_id:
        return
    st.session_state[MODEL_UPLOAD_SEEN_KEY] = uploaded.file_id
    try:
        model, header = load_model(uploaded.getvalue(), name=uploaded.name)
    except DigitLabError as err:
        st.session_state[MESSAGE_KEY] = ("error", t_error(err))
        st.rerun()
    run = Run(name=unique_run_name(Path(uploaded.name).stem), model=model, header=header,
              status="uploaded")
    add_session_run(run)
    st.session_state[MESSAGE_KEY] = ("success", t("train.runs.uploaded", name=run.name))
    st.rerun()
