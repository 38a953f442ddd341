"""Catalogue lookup, fallbacks and number formats of ui.i18n, without a Streamlit script run."""

import logging

import pytest

from engine.errors import MESSAGES, DigitLabError, SpecError
from ui import i18n


def test_translate_dotted_key_with_params():
    text = i18n.translate("en", "engine.spec.too_many_layers", count=30, max=20)

    assert text == "The network has 30 layers; the limit is 20."


def test_translate_chinese():
    assert i18n.translate("zh-CN", "app.nav.glossary") == "术语表"


def test_missing_key_falls_back_to_english(monkeypatch, caplog):
    real_load = i18n.load_catalogue
    zh = dict(real_load("zh-CN"))
    del zh["app.nav.train"]
    monkeypatch.setattr(i18n, "load_catalogue", lambda lang: zh if lang == "zh-CN" else real_load(lang))
    monkeypatch.setattr(i18n, "_reported_missing", set())

    with caplog.at_level(logging.WARNING, logger="ui.i18n"):
        text = i18n.translate("zh-CN", "app.nav.train")

    assert text == "Train"
    assert "app.nav.train" in caplog.text
    assert "zh-CN.toml" in caplog.text


def test_key_missing_everywhere_returns_key(caplog):
    with caplog.at_level(logging.WARNING, logger="ui.i18n"):
        text = i18n.translate("en", "no_such_section.no_such_key")

    assert text == "no_such_section.no_such_key"
    assert "no_such_section.no_such_key" in caplog.text


def test_missing_param_returns_template(caplog):
    with caplog.at_level(logging.WARNING, logger="ui.i18n"):
        text = i18n.translate("en", "engine.spec.too_many_layers", count=3)

    assert text == i18n.load_catalogue("en")["engine.spec.too_many_layers"]
    assert "max" in caplog.text


def test_catalogue_loaded_once():
    assert i18n.load_catalogue("en") is i18n.load_catalogue("en")


def test_unknown_language_rejected():
    with pytest.raises(ValueError, match="fr"):
        i18n.load_catalogue("fr")


def test_placeholders():
    assert i18n.placeholders("{a} of {b:,} is {c:.1%}") == {"a", "b", "c"}
    assert i18n.placeholders("no fields") == set()


def test_child_keys_in_file_order():
    terms = i18n.child_keys("glossary.terms")

    assert terms[0] == "loss_function"
    assert "cross_entropy" in terms
    assert len(terms) == len(set(terms))


@pytest.mark.parametrize("locale, expected", [
    ("zh-CN", "zh-CN"), ("zh-TW", "zh-CN"), ("zh_Hans_CN", "zh-CN"), ("ZH", "zh-CN"),
    ("en-US", "en"), ("de-DE", "en"), ("", "en"), (None, "en"),
])
def test_language_from_locale(locale, expected):
    assert i18n.language_from_locale(locale) == expected


@pytest.mark.parametrize("value, expected", [
    ("en", "en"), ("EN-gb", "en"), ("zh-CN", "zh-CN"), ("zh", "zh-CN"), ("zh-cn", "zh-CN"),
    ("fr", None), ("", None), (None, None), ("english", None),
])
def test_parse_language(value, expected):
    assert i18n.parse_language(value) == expected


def test_format_number_separators():
    assert i18n.format_number(1234567.891, digits=2, lang="en") == "1,234,567.89"
    assert i18n.format_number(60000, lang="zh-CN") == "60,000"
    assert i18n.format_number(0.5, digits=0, lang="en") == "0"


def test_format_percent():
    assert i18n.format_percent(0.9731, lang="en") == "97.3%"
    assert i18n.format_percent(1.0, digits=0, lang="zh-CN") == "100%"


def test_current_language_outside_streamlit():
    assert i18n.current_language() == "en"


def test_t_error_translates_engine_error():
    err = SpecError("spec.bad_units", index=2, max=4096, value=0)

    assert i18n.t_error(err) == str(err)
    assert "4096" in i18n.t_error(err)


def test_t_error_in_chinese(monkeypatch):
    monkeypatch.setattr(i18n, "current_language", lambda: "zh-CN")
    err = SpecError("spec.bad_units", index=2, max=4096, value=0)

    text = i18n.t_error(err)

    assert text.startswith("第 2 层")
    assert "4096" in text


def test_t_error_unknown_key_uses_english_message():
    err = DigitLabError("no_such.error_key")

    assert i18n.t_error(err) == "no_such.error_key"


def test_t_error_plain_exception():
    assert i18n.t_error(ValueError("boom")) == "boom"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_engine_messages_all_translated(lang):
    catalogue = i18n.load_catalogue(lang)
    missing = [key for key in MESSAGES if f"engine.{key}" not in catalogue]
    extra = [key for key in catalogue
             if key.startswith("engine.") and key[len("engine."):] not in MESSAGES]

    assert missing == [], f"add these keys to [engine] in locales/{lang}.toml"
    assert extra == [], f"these [engine] keys in locales/{lang}.toml are not in engine.errors.MESSAGES"


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_engine_placeholders_match_messages(key):
    expected = i18n.placeholders(MESSAGES[key])

    for lang in i18n.LANGUAGES:
        template = i18n.load_catalogue(lang).get(f"engine.{key}", "")
        assert i18n.placeholders(template) == expected, f"locales/{lang}.toml engine.{key}"
