"""Translate user-facing text and choose the page language.

The catalogues are the TOML files ``locales/en.toml`` and ``locales/zh-CN.toml``. Their nested
tables are read by dotted keys (``"app.nav.train"`` is ``[app]`` -> ``nav`` -> ``train``) and
their values are ``str.format`` templates::

    t("train.epoch_done", epoch=2, accuracy=format_percent(0.973))

Loading and lookup (``load_catalogue``, ``translate``, ``format_number`` ...) are plain functions
that work without a running Streamlit script. Only ``current_language`` and
``render_language_switch`` use Streamlit.

The page language is chosen once per session, in this order: the ``?lang=`` query parameter of
the URL, then the browser language (``st.context.locale``: any ``zh`` variant gives ``"zh-CN"``,
anything else ``"en"``). The sidebar switch overrides it for the rest of the session and writes
it back into the URL, so a copied link opens in the same language.
"""

import functools
import logging
import string
import tomllib
from pathlib import Path

logger = logging.getLogger(__name__)

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

# The URL query parameter and the session-state keys that hold the language.
QUERY_PARAM = "lang"
STATE_KEY = "ui_language"
SWITCH_KEY = "ui_language_switch"

# (language, key) pairs already reported as missing, so each is logged once per process.
_reported_missing = set()


# ---------------------------------------------------------------------------
# Catalogues (no Streamlit)
# ---------------------------------------------------------------------------

def _flatten(table, prefix=""):
    """Flatten nested TOML tables into ``{"a.b.c": value}``, keeping the file order."""
    flat = {}
    for name, value in table.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f"{key}."))
        else:
            flat[key] = value
    return flat


@functools.cache
def load_catalogue(lang):
    """Load ``locales/<lang>.toml`` once per process as a flat ``{dotted_key: template}`` dict.

    Raises ValueError for a language not in ``LANGUAGES``. A TOML syntax error propagates as
    ``tomllib.TOMLDecodeError`` naming the line, since the app cannot run without its text.
    Treat the returned dict as read-only: it is shared by every caller.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"Unsupported language {lang!r}; expected one of {', '.join(LANGUAGES)}.")

    path = LOCALES_DIR / f"{lang}.toml"
    with open(path, "rb") as f:
        table = tomllib.load(f)
    return _flatten(table)


def placeholders(template):
    """Return the set of ``str.format`` field names in ``template`` (``"{n:,}"`` gives ``{"n"}``)."""
    return {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}


def find_template(lang, key):
    """Return the template for ``key`` in ``lang``, falling back to English; None if absent in both.

    Each missing (lang, key) pair logs one warning per process.
    """
    catalogue = load_catalogue(lang)
    if key in catalogue:
        return catalogue[key]

    english = load_catalogue(DEFAULT_LANGUAGE)
    if (lang, key) not in _reported_missing:
        _reported_missing.add((lang, key))
        where = "any locale file" if key not in english else f"locales/{lang}.toml"
        logger.warning("Translation key %r is missing from %s.", key, where)
    return english.get(key)


def _fill(template, key, params):
    """Fill ``template`` with ``params``; on a missing or bad placeholder log it and return it unfilled."""
    if not params:
        return template
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError) as err:
        logger.warning("Failed to fill translation %r with params %s: %r", key, sorted(params), err)
        return template


def translate(lang, key, **params):
    """Return the text for ``key`` in ``lang`` with ``params`` filled in.

    A key missing in ``lang`` falls back to English, and one missing in both returns the key
    itself, so a page shows something instead of raising. Both cases log a warning.
    """
    template = find_template(lang, key)
    if template is None:
        return key
    return _fill(template, key, params)


def child_keys(prefix, lang=DEFAULT_LANGUAGE):
    """Return the names directly under the table ``prefix``, in file order.

    ``child_keys("glossary.terms")`` gives ``["loss_function", "cross_entropy", ...]``.
    """
    start = f"{prefix}."
    names = []
    for key in load_catalogue(lang):
        if key.startswith(start):
            name = key[len(start):].split(".", 1)[0]
            if name not in names:
                names.append(name)
    return names


def language_from_locale(locale):
    """Map a browser locale such as ``"zh-TW"``, ``"zh_Hans"`` or ``"de-DE"`` to a language we have.

    Any Chinese variant gives ``"zh-CN"``; anything else, including None, gives ``"en"``.
    """
    if locale and locale.strip().lower().replace("_", "-").split("-")[0] == "zh":
        return "zh-CN"
    return DEFAULT_LANGUAGE


def parse_language(value):
    """Return the language named by a ``?lang=`` value (``"en"``, ``"zh-CN"``, ``"zh"`` ...), or None.

    Unlike ``language_from_locale`` this rejects values that name no language we have, so a
    mistyped URL falls through to the browser language.
    """
    if not value:
        return None
    normalized = value.strip().lower().replace("_", "-")
    if normalized == "en" or normalized.startswith("en-"):
        return "en"
    if normalized == "zh" or normalized.startswith("zh-"):
        return "zh-CN"
    return None


# ---------------------------------------------------------------------------
# Numbers (no Streamlit when ``lang`` is given)
# ---------------------------------------------------------------------------

def format_number(value, digits=0, lang=None):
    """Format ``value`` with ``digits`` decimals and the locale's separators: ``12345.6`` -> ``"12,346"``.

    ``lang=None`` uses the page language. The separators come from ``[app.format]`` in the
    locale files.
    """
    lang = lang or current_language()
    text = f"{value:,.{digits}f}"

    # Swap through a placeholder so a locale may exchange the two separators.
    group = translate(lang, "app.format.thousands_separator")
    decimal = translate(lang, "app.format.decimal_separator")
    return text.replace(",", "\0").replace(".", decimal).replace("\0", group)


def format_percent(fraction, digits=1, lang=None):
    """Format a fraction as a percentage in the locale's pattern: ``0.9731`` -> ``"97.3%"``."""
    lang = lang or current_language()
    number = format_number(fraction * 100, digits=digits, lang=lang)
    return translate(lang, "app.format.percent", value=number)


# ---------------------------------------------------------------------------
# Streamlit side: the page language of this session
# ---------------------------------------------------------------------------

def current_language():
    """Return the language of the current Streamlit session, choosing it on the first call.

    Outside a Streamlit script run (plain Python, a background thread) this returns
    ``DEFAULT_LANGUAGE`` without touching Streamlit state.
    """
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    if get_script_run_ctx(suppress_warning=True) is None:
        return DEFAULT_LANGUAGE

    import streamlit as st

    lang = st.session_state.get(STATE_KEY)
    if lang in LANGUAGES:
        return lang

    lang = parse_language(st.query_params.get(QUERY_PARAM)) or language_from_locale(st.context.locale)
    st.session_state[STATE_KEY] = lang
    return lang


def _on_language_switch():
    import streamlit as st

    st.session_state[STATE_KEY] = st.session_state[SWITCH_KEY]


def render_language_switch():
    """Draw the language switch in the sidebar and keep ``?lang=`` in the URL equal to it.

    Call it on every run of the entry script (the URL loses its query string on page switches).
    Returns the language in effect.
    """
    import streamlit as st

    lang = current_language()

    # Seed the widget from the session language, which may come from the URL or the browser.
    st.session_state[SWITCH_KEY] = lang
    st.sidebar.radio(
        t("app.language"),
        LANGUAGES,
        format_func=lambda code: translate(code, "app.language_name"),
        key=SWITCH_KEY,
        on_change=_on_language_switch,
        horizontal=True,
    )

    if st.query_params.get(QUERY_PARAM) != lang:
        st.query_params[QUERY_PARAM] = lang
    return lang


def t(key, **params):
    """Return the text for ``key`` in the page language, with ``params`` filled in."""
    return translate(current_language(), key, **params)


def t_error(err):
    """Return the message of an ``engine.errors.DigitLabError`` in the page language.

    Looks ``err.key`` up in the ``[engine]`` table and fills it with ``err.params``. An exception
    without a ``key``, or with a key no locale file has, gives ``str(err)`` (the English message).
    """
    key = getattr(err, "key", None)
    if not key:
        return str(err)

    template = find_template(current_language(), f"engine.{key}")
    if template is None:
        return str(err)
    return _fill(template, f"engine.{key}", getattr(err, "params", None) or {})
