"""The app shell: pages render in both languages, the locale files agree, no inline UI text.

AppTest runs the real entry script headlessly; the browser test runs it in a real Streamlit
server and Chromium with a Chinese browser locale.
"""

import ast
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.browser_support import (
    assert_no_app_error,
    default_data_path,
    main_area,
    main_text,
    open_app,
    own_text,
    sidebar,
    wait_for_script_idle,
    wait_for_stable_text,
)
from ui.i18n import LANGUAGES, load_catalogue, placeholders, translate

REPO_ROOT = Path(__file__).resolve().parent.parent

# (page file, locale section, URL path) of every page in the navigation.
PAGES = [
    ("ui/pages/train.py", "train", ""),
    ("ui/pages/draw.py", "draw", "draw"),
    ("ui/pages/duel.py", "duel", "duel"),
    ("ui/pages/glossary.py", "glossary", "glossary"),
]

APP_TEST_TIMEOUT = 60


@pytest.fixture(autouse=True)
def local_data(monkeypatch):
    """Point the app at local data: AppTest runs pages in this process, and none may download."""
    monkeypatch.setenv("DIGIT_LAB_DATA", default_data_path())


def _app(locale="en-US", lang_param=None):
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TEST_TIMEOUT)
    at.context["locale"] = locale
    if lang_param is not None:
        at.query_params["lang"] = lang_param
    return at


def _main_texts(at):
    """Return the text of the headings and Markdown blocks of the main area."""
    elements = [*at.main.get("title"), *at.main.get("header"), *at.main.get("subheader"),
                *at.main.get("markdown"), *at.main.get("caption")]
    return [element.value for element in elements]


def _assert_page_in(at, lang, section):
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.radio[0].label == translate(lang, "app.language")
    assert at.sidebar.radio[0].value == lang
    assert translate(lang, f"{section}.title") in _main_texts(at)


# ---------------------------------------------------------------------------
# Pages in both languages (AppTest)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("locale, language", [("en-US", "en"), ("zh-CN", "zh-CN")])
@pytest.mark.parametrize("path, section, url_path", PAGES)
def test_page_renders_in_language(path, section, url_path, locale, language):
    at = _app(locale)
    at.run()

    at.switch_page(path).run()

    _assert_page_in(at, language, section)


def test_default_page_is_train():
    at = _app("en-US")
    at.run()

    _assert_page_in(at, "en", "train")


@pytest.mark.parametrize("locale", ["zh-TW", "zh", "zh-Hans-CN"])
def test_any_chinese_locale_gives_chinese(locale):
    at = _app(locale)
    at.run()

    assert at.sidebar.radio[0].value == "zh-CN"


def test_other_locale_gives_english():
    at = _app("de-DE")
    at.run()

    assert at.sidebar.radio[0].value == "en"


def test_sidebar_switch_changes_language():
    at = _app("zh-CN")
    at.run()
    at.switch_page("ui/pages/glossary.py").run()
    _assert_page_in(at, "zh-CN", "glossary")

    at.sidebar.radio[0].set_value("en").run()
    _assert_page_in(at, "en", "glossary")
    assert at.query_params["lang"] == "en"

    at.switch_page("ui/pages/draw.py").run()
    _assert_page_in(at, "en", "draw")

    at.sidebar.radio[0].set_value("zh-CN").run()
    _assert_page_in(at, "zh-CN", "draw")
    assert at.query_params["lang"] == "zh-CN"


def test_url_language_beats_browser_locale():
    at = _app("zh-CN", lang_param="en")
    at.run()

    _assert_page_in(at, "en", "train")


def test_invalid_url_language_ignored():
    at = _app("zh-CN", lang_param="klingon")
    at.run()

    _assert_page_in(at, "zh-CN", "train")
    assert at.query_params["lang"] == "zh-CN"


def test_language_written_to_url():
    at = _app("zh-CN")
    at.run()

    assert at.query_params["lang"] == "zh-CN"


def test_glossary_lists_both_languages():
    at = _app("zh-CN")
    at.run()
    at.switch_page("ui/pages/glossary.py").run()

    table = at.table[0].value
    columns = list(table.columns)

    assert columns == [translate("zh-CN", "glossary.column_term"),
                       translate("zh-CN", "glossary.column_other"),
                       translate("zh-CN", "glossary.column_explanation")]
    assert "损失函数" in list(table[columns[0]])
    assert "Loss function" in list(table[columns[1]])
    assert "交叉熵" in list(table[columns[0]])
    assert "Cross-entropy" in list(table[columns[1]])


# ---------------------------------------------------------------------------
# Locale files
# ---------------------------------------------------------------------------

def test_locales_have_same_keys():
    english = load_catalogue("en")

    for lang in LANGUAGES:
        catalogue = load_catalogue(lang)
        missing = sorted(set(english) - set(catalogue))
        extra = sorted(set(catalogue) - set(english))
        assert missing == [], f"locales/{lang}.toml lacks keys of en.toml"
        assert extra == [], f"locales/{lang}.toml has keys en.toml lacks"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_locale_values_are_nonempty_strings(lang):
    catalogue = load_catalogue(lang)

    not_strings = [key for key, value in catalogue.items() if not isinstance(value, str)]
    empty = [key for key, value in catalogue.items() if isinstance(value, str) and not value.strip()]

    assert not_strings == [], f"locales/{lang}.toml: values must be strings"
    assert empty == [], f"locales/{lang}.toml: empty values"


def test_locales_have_same_placeholders():
    english = load_catalogue("en")

    for lang in LANGUAGES:
        catalogue = load_catalogue(lang)
        differ = [key for key in english
                  if key in catalogue and placeholders(english[key]) != placeholders(catalogue[key])]
        assert differ == [], f"locales/{lang}.toml: placeholders differ from en.toml"


# ---------------------------------------------------------------------------
# No UI text outside the locale files (AST scan)
# ---------------------------------------------------------------------------

# st.* functions whose first positional argument is text shown to the user.
TEXT_FIRST_FUNCTIONS = {
    "title", "header", "subheader", "markdown", "write", "caption", "text", "badge",
    "error", "warning", "info", "success", "toast", "exception",
    "button", "download_button", "link_button", "form_submit_button",
    "checkbox", "toggle", "radio", "selectbox", "multiselect", "select_slider", "slider",
    "number_input", "text_input", "text_area", "date_input", "time_input", "datetime_input",
    "file_uploader", "camera_input", "audio_input", "color_picker", "pills", "segmented_control",
    "metric", "expander", "popover", "spinner", "status", "dialog", "chat_input", "tabs",
}
# st.* functions whose every positional argument is shown (st.write("a", "b")).
ALL_POSITIONAL_FUNCTIONS = {"write", "tabs"}
# Keyword arguments that are text shown to the user, in any st.* call.
TEXT_KEYWORDS = {
    "label", "body", "help", "placeholder", "title", "text", "caption", "captions", "page_title",
    "x_label", "y_label", "show_spinner", "value_label", "empty_label",
}
# Files whose st.* calls must take their text from the locale files.
SCANNED_FILES = [REPO_ROOT / "streamlit_app.py", *sorted((REPO_ROOT / "ui").rglob("*.py"))]


def _is_streamlit(node, names):
    """Return whether ``node`` is rooted at ``st`` or at a name bound to a Streamlit object."""
    while isinstance(node, (ast.Attribute, ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id in names


def _bound_names(target):
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for element in target.elts for name in _bound_names(element)]
    return []


def _streamlit_names(tree):
    """Return ``st`` plus every name assigned from a Streamlit expression (columns, containers)."""
    names = {"st"}
    changed = True
    while changed:
        changed = False
        for node in ast.walk(tree):
            bound = []
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                if _is_streamlit(node.value, names):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    bound = [name for target in targets for name in _bound_names(target)]
            elif isinstance(node, ast.withitem) and node.optional_vars is not None:
                if _is_streamlit(node.context_expr, names):
                    bound = _bound_names(node.optional_vars)
            new = set(bound) - names
            if new:
                names |= new
                changed = True
    return names


def _literal_texts(node):
    """Yield the string literals an argument expression shows: constants, f-string parts, lists."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.JoinedStr):
        yield "".join(part.value if isinstance(part, ast.Constant) else "{}" for part in node.values)
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
        yield from _literal_texts(node.func.value)
    elif isinstance(node, ast.BinOp):
        yield from _literal_texts(node.left)
        yield from _literal_texts(node.right)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for element in node.elts:
            yield from _literal_texts(element)
    elif isinstance(node, ast.IfExp):
        yield from _literal_texts(node.body)
        yield from _literal_texts(node.orelse)


def _is_format_only(text):
    """Return whether ``text`` has no words once placeholders, HTML tags and icons are removed."""
    text = re.sub(r"\{[^{}]*\}", "", text)
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r":material/[a-z_]+:", "", text)
    # Streamlit Markdown directives (":red[...]", ":blue-background[...]") and emoji shortcodes.
    text = re.sub(r":[a-z]+(-background)?\[", "", text)
    text = re.sub(r":[a-z0-9_+-]+:", "", text)
    return not any(char.isalpha() for char in text)


def _inline_ui_strings(path, root=REPO_ROOT):
    """Return ``"file:line: .function(...) shows 'text'"`` for each literal UI string in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = _streamlit_names(tree)
    found = []

    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not _is_streamlit(node.func, names):
            continue

        function = node.func.attr
        arguments = []
        if function in ALL_POSITIONAL_FUNCTIONS:
            arguments += node.args
        elif function in TEXT_FIRST_FUNCTIONS and node.args:
            arguments.append(node.args[0])
        arguments += [keyword.value for keyword in node.keywords if keyword.arg in TEXT_KEYWORDS]

        for argument in arguments:
            for text in _literal_texts(argument):
                if not _is_format_only(text):
                    relative = path.relative_to(root)
                    found.append(f"{relative}:{node.lineno}: .{function}(...) shows {text!r}")
    return found


def test_scan_finds_inline_strings(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import streamlit as st\n"
        "st.title('Hello')\n"
        "left, right = st.columns(2)\n"
        "left.button(f'Run {n}')\n"
        "with st.expander(t('a.b')) as box:\n"
        "    box.caption('note')\n"
        "st.tabs([t('x'), 'Raw'])\n"
        "st.slider(t('x'), help='Help text')\n"
        "st.markdown('**{}** · {}'.format(a, b))\n"
        "st.markdown(f'**{a}**: {b}')\n"
        "st.markdown(f':red[{a} ⚠] :warning:')\n"
        "st.markdown(':blue-background[Note]')\n"
        "st.container(key='prediction')\n"
        "st.session_state.get('lang', 'en')\n",
        encoding="utf-8",
    )
    found = _inline_ui_strings(sample, root=tmp_path)

    shown = [line.split(" shows ", 1)[1] for line in found]
    assert sorted(shown) == sorted(["'Hello'", "'Run {}'", "'note'", "'Raw'", "'Help text'",
                                    "':blue-background[Note]'"])


def test_no_inline_ui_strings():
    found = [line for path in SCANNED_FILES for line in _inline_ui_strings(path)]

    assert found == [], "move these strings to locales/*.toml and show them with t():\n" + "\n".join(found)


# ---------------------------------------------------------------------------
# Real browser: Chinese locale, screenshots, no English leftovers
# ---------------------------------------------------------------------------

def _strip_markdown(text):
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[*_`#>]", "", text)


def _english_only_fragments():
    """Return English catalogue text that must not appear on a Chinese page.

    Text that also occurs in the Chinese catalogue (code names such as Linear, Adam or MNIST)
    and the English glossary names, which the Chinese glossary shows on purpose, are left out.
    """
    english = load_catalogue("en")
    chinese_text = "\n".join(load_catalogue("zh-CN").values())

    fragments = set()
    for key, value in english.items():
        if key.startswith("glossary.terms.") and key.endswith(".name"):
            continue
        for piece in re.split(r"\{[^{}]*\}", _strip_markdown(value)):
            piece = piece.strip(" \t\n.,:;!?()[]'\"-–—")
            if sum(char.isascii() and char.isalpha() for char in piece) < 3:
                continue
            if piece in chinese_text:
                continue
            fragments.add(piece)
    return fragments


def _english_leftovers(visible_text):
    english = load_catalogue("en")
    # The Chinese glossary shows every term's English name in its own column.
    for key, value in english.items():
        if key.startswith("glossary.terms.") and key.endswith(".name"):
            visible_text = visible_text.replace(value, " ")

    return sorted(fragment for fragment in _english_only_fragments()
                  if re.search(rf"(?<![A-Za-z]){re.escape(fragment)}(?![A-Za-z])", visible_text))


def test_leftover_check_finds_english():
    assert "Loss duel" in _english_leftovers("训练网络 Loss duel")
    assert _english_leftovers("术语 Loss function 损失函数 Linear Adam") == []


def test_chinese_pages_in_browser(streamlit_server, new_browser_context, tmp_path):
    # Streamlit scrolls the main area inside the window, so a tall window shows more of a page.
    page = new_browser_context(locale="zh-CN", viewport={"width": 1280, "height": 2400}).new_page()

    for _, section, url_path in PAGES:
        open_app(page, streamlit_server, url_path, wait_text=translate("zh-CN", f"{section}.title"))
        wait_for_stable_text(page)
        screenshot = tmp_path / f"zh-CN-{section}.png"
        page.screenshot(path=str(screenshot), full_page=True)

        assert screenshot.stat().st_size > 0
        assert_no_app_error(page)
        leftovers = _english_leftovers(own_text(page))
        assert leftovers == [], f"{section}: English text on the Chinese page, see {screenshot}"
        assert translate("zh-CN", "app.nav.glossary") in sidebar(page).inner_text()

    streamlit_server.assert_clean_log()


def test_url_language_in_browser(streamlit_server, new_browser_context):
    page = new_browser_context(locale="zh-CN").new_page()

    open_app(page, streamlit_server, "glossary", query={"lang": "en"}, wait_text="Loss function")

    assert "Loss function" in main_text(page)
    assert "术语表" not in main_text(page)
    streamlit_server.assert_clean_log()


def test_language_survives_navigation_in_browser(streamlit_server, new_browser_context):
    page = new_browser_context(locale="zh-CN").new_page()
    open_app(page, streamlit_server, "glossary", wait_text="术语表")

    sidebar(page).get_by_text(translate("en", "app.language_name"), exact=True).click()
    main_area(page).get_by_text(translate("en", "glossary.title"), exact=True).wait_for()
    wait_for_script_idle(page)
    page.wait_for_url("**/glossary?lang=en")

    sidebar(page).get_by_role("link", name=translate("en", "app.nav.duel")).click()
    page.wait_for_url("**/duel?lang=en")
    main_area(page).get_by_text(translate("en", "duel.title"), exact=True).first.wait_for()
    wait_for_script_idle(page)

    assert page.evaluate("new URLSearchParams(location.search).get('lang')") == "en"
    assert translate("en", "app.nav.glossary") in sidebar(page).inner_text()
    streamlit_server.assert_clean_log()
