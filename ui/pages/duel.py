"""Placeholder for the duel page until its owner replaces it."""

import streamlit as st

from ui.i18n import t

st.title(t("duel.title"))
st.info(t("app.placeholder_page"))
