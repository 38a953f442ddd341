"""Entry point of the Digit Lab web app: ``python -m streamlit run streamlit_app.py``.

Sets up the page, the language switch and the navigation, then runs the selected page from
``ui/pages/``. Streamlit reruns this file on every interaction, on every page.
"""

import os

# OpenBLAS on all cores makes small-matrix training several times slower and starves the
# server, so limit it before anything imports numpy (Streamlit itself does not).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import logging  # noqa: E402

import streamlit as st  # noqa: E402

from ui.i18n import render_language_switch, t  # noqa: E402

# Training starts and stops, saves, rejected uploads and data sources are logged by the engine
# and ui modules at INFO; Streamlit configures only its own loggers, so give ours a handler once
# per process (this file reruns on every interaction).
for logger_name in ("engine", "ui"):
    app_logger = logging.getLogger(logger_name)
    if not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        app_logger.addHandler(handler)
        app_logger.setLevel(logging.INFO)

# The favicon is an emoji because Streamlit 1.67 fetches a ":material/...:" page icon from
# fonts.gstatic.com for the browser tab. Pages therefore have no icons of their own: the tab
# would show the current page's icon instead.
st.set_page_config(page_title=t("app.title"), page_icon="✍️", layout="wide")

# The default page is served at "/" only: Streamlit ignores its url_path.
pages = [
    st.Page("ui/pages/train.py", title=t("app.nav.train"), default=True),
    st.Page("ui/pages/draw.py", title=t("app.nav.draw"), url_path="draw"),
    st.Page("ui/pages/duel.py", title=t("app.nav.duel"), url_path="duel"),
    st.Page("ui/pages/glossary.py", title=t("app.nav.glossary"), url_path="glossary"),
]
page = st.navigation(pages)
render_language_switch()
page.run()
