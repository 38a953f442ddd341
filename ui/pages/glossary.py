"""Glossary page: every term in English and Chinese, explained in the page language."""

import streamlit as st

from ui.i18n import LANGUAGES, child_keys, current_language, t, translate

lang = current_language()
other_lang = next(code for code in LANGUAGES if code != lang)

st.title(t("glossary.title"))
st.caption(t("glossary.intro"))

terms = child_keys("glossary.terms")
rows = {
    t("glossary.column_term"): [t(f"glossary.terms.{term}.name") for term in terms],
    t("glossary.column_other"): [translate(other_lang, f"glossary.terms.{term}.name") for term in terms],
    t("glossary.column_explanation"): [t(f"glossary.terms.{term}.explanation") for term in terms],
}
with st.container(key="glossary"):
    st.table(rows, hide_index=True)
