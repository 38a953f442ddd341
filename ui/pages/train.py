"""Train page: stack layers, pick a loss, train on MNIST in the background and watch the curves.

The parts live in helper modules: ``ui.train_editor`` (layer stack, shapes, loss picker),
``ui.train_settings`` (optimizer, learning rate, batch size, epochs, seed, data),
``ui.train_live`` (Train/Pause/Stop, progress and charts) and ``ui.train_runs`` (runs, saving,
loading). ``ui.train_logic`` contains what they compute without Streamlit.
"""

import streamlit as st

from ui import train_editor, train_live, train_runs, train_settings
from ui import train_state as state
from ui.i18n import t, t_error
from ui.train_logic import validate_config

state.init_state()
# A job that ended since the last run becomes a run before anything is drawn, so the Train
# button and the runs list below already know about it.
train_live.finalize_job()

st.title(t("train.title"))
st.caption(t("train.intro"))

# ----- the network -----
infos, stack_error = train_editor.validate_stack()
st.subheader(t("train.stack.title"))
train_editor.render_presets()
editor, summary = st.columns([3, 2], gap="large")
with editor:
    train_editor.render_stack_editor(stack_error)
with summary:
    train_editor.render_summary(infos, stack_error)
train_editor.render_spec_text()

# ----- the loss -----
st.subheader(t("train.loss.title"))
train_editor.render_loss_picker()

# ----- settings and data -----
st.subheader(t("train.settings.title"))
train_settings.render_settings(stack_valid=stack_error is None)
train_settings.render_data_choice()
source, data_error = state.current_source(progress_placeholder=st.empty())
train_settings.render_data_notice(source, data_error)
train_settings.render_estimate(source, stack_valid=stack_error is None)

# ----- training -----
st.subheader(t("train.live_title"))
config_error = validate_config(state.make_config())
if stack_error is not None:
    blocker = t("train.blocked_stack")
elif config_error is not None:
    blocker = t_error(config_error)
elif source is None:
    blocker = data_error or t("data.upload_needed")
else:
    blocker = None
train_live.render_train_button(blocker)
train_live.render_live()

# ----- runs -----
train_runs.render_runs()
