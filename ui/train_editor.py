"""The network part of the train page: layer-stack editor, shapes, text form and loss picker."""

import streamlit as st

from engine.errors import DigitLabError
from engine.spec import LAYER_TYPES, describe, format_shape, parse_spec
from ui import train_state as state
from ui.i18n import format_number, t, t_error
from ui.train_logic import (CUSTOM_PRESET, LOSS_NAMES, NETWORK_PRESETS, apply_fix, change_type,
                            loss_advice, matching_preset, move_layer, new_layer, preset_rows,
                            spec_text, with_ids)

SPEC_TEXT_KEY = "train_w_spec_text"
SPEC_ERROR_KEY = "train_spec_error"
PRESET_KEY = "train_w_preset"
ADD_TYPE_KEY = "train_w_add_type"


def validate_stack():
    """Return ``(layer infos, None)`` for a valid stack, or ``(None, SpecError)``."""
    try:
        return describe(state.spec()), None
    except DigitLabError as err:
        return None, err


# ---------------------------------------------------------------------------
# Callbacks (run before the script, with the widget values already in session state)
# ---------------------------------------------------------------------------

def _apply_preset():
    name = st.session_state[PRESET_KEY]
    if name != CUSTOM_PRESET:
        state.set_rows(preset_rows(name))
        st.session_state.pop(SPEC_ERROR_KEY, None)


def _row_index(row_id):
    return next(i for i, row in enumerate(state.rows()) if row["id"] == row_id)


def _change_type(row_id):
    rows = list(state.rows())
    index = _row_index(row_id)
    rows[index] = change_type(rows[index], st.session_state[f"train_layer_{row_id}_type"])
    state.set_rows(rows)


def _change_setting(row_id, setting):
    rows = list(state.rows())
    index = _row_index(row_id)
    value = st.session_state[f"train_layer_{row_id}_{setting}"]
    rows[index] = {**rows[index], setting: int(value) if setting == "units" else float(value)}
    state.set_rows(rows)


def _move(row_id, offset):
    state.set_rows(move_layer(state.rows(), _row_index(row_id), offset))


def _remove(row_id):
    state.set_rows([row for row in state.rows() if row["id"] != row_id])


def _add():
    state.set_rows(list(state.rows()) + [new_layer(st.session_state[ADD_TYPE_KEY])])


def _apply_spec_text():
    text = st.session_state[SPEC_TEXT_KEY]
    try:
        layers = parse_spec(text)
    except DigitLabError as err:
        st.session_state[SPEC_ERROR_KEY] = err
        return
    st.session_state.pop(SPEC_ERROR_KEY, None)
    state.set_rows(with_ids(layers))


def _apply_fix(fix):
    state.set_rows(apply_fix(state.rows(), fix))


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------

def render_presets():
    st.session_state[PRESET_KEY] = matching_preset(state.spec())
    options = list(NETWORK_PRESETS) + [CUSTOM_PRESET]
    st.selectbox(t("train.stack.preset"), options, key=PRESET_KEY, on_change=_apply_preset,
                 format_func=state.labels("train.presets", options),
                 help=t("train.stack.preset_help"))


def render_stack_editor(error):
    """Draw one row per layer; the row named by ``error`` (a SpecError) is marked."""
    bad_index = error.params.get("index") if error is not None else None
    rows = state.rows()
    types = list(LAYER_TYPES)

    widths = [0.5, 2.2, 1.8, 0.55, 0.55, 0.55]
    if rows:
        _, kind_header, setting_header, *_ = st.columns(widths)
        kind_header.caption(t("train.stack.type"))
        setting_header.caption(t("train.stack.setting"))
    for position, row in enumerate(rows):
        row_id = row["id"]
        number, kind, setting, up, down, remove = st.columns(widths, vertical_alignment="center")
        label = f"**{position + 1}**"
        number.markdown(f":red[{label} ⚠]" if bad_index == position + 1 else label)

        type_key = f"train_layer_{row_id}_type"
        st.session_state[type_key] = row["type"] if row["type"] in types else types[0]
        kind.selectbox(t("train.stack.type"), types, key=type_key, on_change=_change_type,
                       args=(row_id,), label_visibility="collapsed")

        _render_setting(setting, row)
        up.button("", icon=":material/arrow_upward:", key=f"train_layer_{row_id}_up", on_click=_move,
                  args=(row_id, -1), disabled=position == 0, help=t("train.stack.move_up"))
        down.button("", icon=":material/arrow_downward:", key=f"train_layer_{row_id}_down",
                    on_click=_move, args=(row_id, 1), disabled=position == len(rows) - 1,
                    help=t("train.stack.move_down"))
        remove.button("", icon=":material/delete:", key=f"train_layer_{row_id}_remove", on_click=_remove,
                      args=(row_id,), help=t("train.stack.remove"))

    if not rows:
        st.caption(t("train.stack.empty"))

    add_type, add_button = st.columns([2.2, 1], vertical_alignment="bottom")
    st.session_state.setdefault(ADD_TYPE_KEY, "Linear")
    add_type.selectbox(t("train.stack.add_type"), types, key=ADD_TYPE_KEY)
    add_button.button(t("train.stack.add"), key="train_layer_add", on_click=_add,
                      icon=":material/add:")


def _render_setting(column, row):
    """Draw the units or dropout-rate input of a row (a note for layers without a setting)."""
    visibility = "collapsed"
    row_id = row["id"]
    if row["type"] == "Linear":
        key = f"train_layer_{row_id}_units"
        value = row.get("units", 64)
        st.session_state[key] = int(value) if isinstance(value, (int, float)) else 64
        # No min/max here: describe() rejects a bad value and names the layer.
        column.number_input(t("train.stack.units"), step=1,
                            key=key, on_change=_change_setting, args=(row_id, "units"),
                            label_visibility=visibility)
    elif row["type"] == "Dropout":
        key = f"train_layer_{row_id}_p"
        value = row.get("p", 0.2)
        value = float(value) if isinstance(value, (int, float)) else 0.2
        st.session_state[key] = value
        column.number_input(t("train.stack.dropout_p"), step=0.05, format="%.2f", key=key, on_change=_change_setting,
                            args=(row_id, "p"), label_visibility=visibility)
    else:
        column.caption(t("train.stack.no_setting"))


def render_summary(infos, error):
    """Draw the shape after every layer and the parameter count, or the stack's error."""
    st.markdown(f"**{t('train.stack.shapes')}**")
    if error is not None:
        with st.container(key="train-stack-error"):
            st.error(t_error(error), icon=":material/error:")
        return

    table = {
        t("train.stack.column_layer"): [t("train.stack.input")] + [
            f"{info.index}. {info.type}" for info in infos],
        t("train.stack.column_shape"): ["1x28x28"] + [format_shape(info.output_shape)
                                                      for info in infos],
        t("train.stack.column_params"): ["0"] + [format_number(info.n_params) for info in infos],
    }
    with st.container(key="train-shapes"):
        st.table(table, hide_index=True)
        total = sum(info.n_params for info in infos)
        st.caption(t("train.stack.total_params", count=format_number(total)))


def render_spec_text():
    """Draw the compact text form of the stack; pressing Enter replaces the stack with it."""
    if SPEC_ERROR_KEY not in st.session_state:
        st.session_state[SPEC_TEXT_KEY] = spec_text(state.spec())
    st.text_input(t("train.stack.text_form"), key=SPEC_TEXT_KEY, on_change=_apply_spec_text,
                  help=t("train.stack.text_form_help"))
    error = st.session_state.get(SPEC_ERROR_KEY)
    if error is not None:
        st.error(t("train.stack.text_form_error", error=t_error(error)))


def render_loss_picker():
    """Draw the loss choice and the remarks on how it fits the network's output."""
    key = state.seed("loss")
    st.radio(t("train.loss.label"), LOSS_NAMES, key=key, horizontal=True,
             format_func=state.labels("train.loss", LOSS_NAMES),
             on_change=state.store, args=("loss",), help=t("train.loss.help"))

    with st.container(key="train-loss-advice"):
        for number, advice in enumerate(loss_advice(state.spec(), state.settings()["loss"])):
            show = st.warning if advice.level == "warning" else st.info
            show(t(advice.key), icon=":material/warning:" if advice.level == "warning"
                 else ":material/info:")
            if advice.fix is not None:
                st.button(t(advice.fix_key), key=f"train_fix_{number}", on_click=_apply_fix,
                          args=(advice.fix,))
