"""The draw page in AppTest: drawings injected as canvas PNGs, read by small trained networks.

AppTest cannot move a mouse, so each test puts a PNG into the canvas's session state the way the
component stores it (streamlit-drawable-canvas 0.13 keeps ``{"drawing": {"raw": ..., "data":
data URL}}`` under the canvas key) and reruns the page. The digits are round-capped polylines
rendered with Pillow. The browser tests in ``test_draw_page_browser.py`` draw the same strokes
with the mouse.
"""

import base64
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from engine.modelfile import load_model
from ui.i18n import format_percent, translate
from ui.runs import MODELS_DIR_ENV, RUNS_KEY, SELECTED_KEY, Run

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_TEST_TIMEOUT = 60
CANVAS_KEY = "canvas"
CANVAS_SIZE = 280
PEN_WIDTH = 18
NO_DIGIT = "\u2014"


def ellipse(cx, cy, rx, ry, points=36):
    """Return a closed polyline around an ellipse, starting at its top."""
    return [(cx + rx * math.sin(2 * math.pi * i / points), cy - ry * math.cos(2 * math.pi * i / points))
            for i in range(points + 1)]


# Digits as strokes (pen-down to pen-up) in canvas pixels on the 280 x 280 canvas.
DIGIT_STROKES = {
    0: [ellipse(140, 140, 60, 95)],
    1: [[(140, 40), (140, 240)]],
    2: [[(85, 90), (100, 60), (140, 45), (180, 60), (190, 95), (175, 135), (140, 175), (95, 225),
         (85, 235), (200, 235)]],
    3: [[(90, 60), (130, 42), (175, 55), (185, 90), (160, 125), (130, 135), (165, 145), (190, 180),
         (180, 220), (140, 240), (90, 225)]],
    4: [[(110, 40), (85, 165), (200, 165)], [(170, 70), (170, 250)]],
    7: [[(80, 50), (200, 50), (110, 240)]],
}


def render_png(strokes, pen=PEN_WIDTH, transparent=False):
    """Draw ``strokes`` as the canvas does (white ink on black, or black ink on transparent)."""
    background, ink = ((0, 0, 0, 0), (0, 0, 0, 255)) if transparent else ((0, 0, 0, 255), (255, 255, 255, 255))
    picture = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), background)
    draw = ImageDraw.Draw(picture)
    radius = pen / 2
    for stroke in strokes:
        draw.line(stroke, fill=ink, width=pen, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(png_bytes):
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def train_model(path, loss, data):
    """Train a small network with the engine's command line and save it to ``path``."""
    command = [sys.executable, "-m", "engine", "train", "--loss", loss, "--epochs", "2",
               "--data", str(data), "--save", str(path)]
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    return path


@pytest.fixture(scope="session")
def trained_models_dir(tmp_path_factory, mnist_dir):
    """A models folder with two networks trained on MNIST: mlp-ce (cross-entropy) and mlp-mse."""
    folder = tmp_path_factory.mktemp("draw-models")
    train_model(folder / "mlp-ce.npz", "ce", mnist_dir)
    train_model(folder / "mlp-mse.npz", "mse", mnist_dir)
    return folder


@pytest.fixture
def models_dir(trained_models_dir, monkeypatch):
    monkeypatch.setenv(MODELS_DIR_ENV, str(trained_models_dir))
    return trained_models_dir


def open_draw_page(locale="en-US"):
    at = AppTest.from_file(str(REPO_ROOT / "streamlit_app.py"), default_timeout=APP_TEST_TIMEOUT)
    at.context["locale"] = locale
    at.switch_page("ui/pages/draw.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def draw(at, png_bytes):
    """Hand ``png_bytes`` to the page as the canvas's drawing and rerun it."""
    at.session_state[CANVAS_KEY] = {"drawing": {"raw": {"objects": []}, "data": data_url(png_bytes)}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def find_block(node, key):
    """Return the container with ``key`` under ``node`` (depth first), or None."""
    if getattr(node, "key", None) == key and hasattr(node, "children"):
        return node
    for child in getattr(node, "children", {}).values():
        found = find_block(child, key)
        if found is not None:
            return found
    return None


def predicted_digit(at):
    block = find_block(at.main, "predicted-digit")
    assert block is not None, "the page has no predicted-digit container"
    texts = [re.sub(r"<[^>]*>", "", markdown.value).strip() for markdown in block.get("markdown")]
    assert len(texts) == 1, texts
    return texts[0]


def prediction_texts(at):
    block = find_block(at.main, "prediction")
    assert block is not None, "the page has no prediction container"
    elements = [*block.get("markdown"), *block.get("info"), *block.get("error")]
    return [element.value for element in elements]


def comparison_rows(at):
    """Return the comparison table as ``{network name: row dict}``."""
    block = find_block(at.main, "comparison")
    assert block is not None, "the page has no comparison container"
    frame = block.get("table")[0].value
    name_column = translate("en", "draw.column_network")
    return {row[name_column]: row for row in frame.to_dict("records")}


def chart_count(at):
    block = find_block(at.main, "prediction")
    return len(block.get("vega_lite_chart"))


# ---------------------------------------------------------------------------
# Drawing, clearing and drawing again
# ---------------------------------------------------------------------------

def test_page_without_drawing_shows_dash(models_dir):
    at = open_draw_page()

    assert predicted_digit(at) == NO_DIGIT
    assert translate("en", "draw.hint_blank") in prediction_texts(at)
    assert chart_count(at) == 0


def test_drawing_then_clear_then_other_digit(models_dir):
    at = open_draw_page()

    draw(at, render_png(DIGIT_STROKES[1]))
    assert predicted_digit(at) == "1"
    assert chart_count(at) == 1
    assert any(text.startswith("Confidence: ") for text in prediction_texts(at))

    # The toolbar's reset sends an all-background image, not None.
    draw(at, render_png([]))
    assert predicted_digit(at) == NO_DIGIT
    assert translate("en", "draw.hint_blank") in prediction_texts(at)
    assert chart_count(at) == 0
    assert {row[translate("en", "draw.column_digit")] for row in comparison_rows(at).values()} == {NO_DIGIT}

    draw(at, render_png(DIGIT_STROKES[7]))
    assert predicted_digit(at) == "7"

    draw(at, render_png(DIGIT_STROKES[0]))
    assert predicted_digit(at) == "0"


@pytest.mark.parametrize("digit", sorted(DIGIT_STROKES))
def test_drawn_digit_read_correctly(models_dir, digit):
    at = open_draw_page()

    draw(at, render_png(DIGIT_STROKES[digit]))

    assert predicted_digit(at) == str(digit)


def test_transparent_canvas_read(models_dir):
    at = open_draw_page()

    draw(at, render_png(DIGIT_STROKES[4], transparent=True))

    assert predicted_digit(at) == "4"


def test_speck_gives_hint_and_dash(models_dir):
    at = open_draw_page()

    draw(at, render_png([[(140, 140), (142, 141)]], pen=4))

    assert predicted_digit(at) == NO_DIGIT
    assert translate("en", "draw.hint_speck") in prediction_texts(at)


# ---------------------------------------------------------------------------
# Networks: the selection and the comparison table
# ---------------------------------------------------------------------------

def test_comparison_lists_every_network(models_dir):
    at = open_draw_page()

    draw(at, render_png(DIGIT_STROKES[7]))
    rows = comparison_rows(at)

    assert sorted(rows) == ["mlp-ce", "mlp-mse"]
    assert rows["mlp-ce"][translate("en", "draw.column_loss")] == translate("en", "draw.loss_names.ce")
    assert rows["mlp-mse"][translate("en", "draw.column_loss")] == translate("en", "draw.loss_names.mse")
    for row in rows.values():
        assert row[translate("en", "draw.column_digit")] == "7"
        assert row[translate("en", "draw.column_confidence")].endswith("%")


def test_default_selection_is_cross_entropy(models_dir):
    at = open_draw_page()

    assert at.selectbox(key="draw-network").value == "file:mlp-ce.npz"


def test_selecting_network_updates_prediction(models_dir):
    at = open_draw_page()
    draw(at, render_png(DIGIT_STROKES[3]))
    rows = comparison_rows(at)

    at.selectbox(key="draw-network").select("file:mlp-mse.npz").run()

    assert not at.exception
    assert at.session_state[SELECTED_KEY] == "file:mlp-mse.npz"
    mse_row = rows["mlp-mse"]
    assert predicted_digit(at) == mse_row[translate("en", "draw.column_digit")]
    confidence = translate("en", "draw.confidence", value=mse_row[translate("en", "draw.column_confidence")])
    assert confidence in prediction_texts(at)


def session_run(models_dir, name, broken=False):
    """Return a session ``Run`` built from the trained mlp-ce file; ``broken`` makes its weights NaN."""
    model, header = load_model(models_dir / "mlp-ce.npz")
    if broken:
        for parameter in model.parameters():
            parameter.data[...] = np.nan
    return Run(name=name, model=model, header=header, status="finished")


def test_session_runs_listed_first(models_dir):
    at = open_draw_page()
    own = session_run(models_dir, "my-network")
    at.session_state[RUNS_KEY] = [own]

    draw(at, render_png(DIGIT_STROKES[1]))

    assert list(comparison_rows(at))[0] == "my-network"
    assert at.selectbox(key="draw-network").options[0] == translate(
        "en", "draw.network_option_session", name="my-network", loss=translate("en", "draw.loss_names.ce"))
    # With no explicit choice, the newest session run is the one shown.
    assert at.selectbox(key="draw-network").value == own.id
    assert predicted_digit(at) == "1"


def test_diverged_network_reported_not_raised(models_dir):
    at = open_draw_page()
    broken = session_run(models_dir, "diverged", broken=True)
    at.session_state[RUNS_KEY] = [broken]

    draw(at, render_png(DIGIT_STROKES[7]))

    rows = comparison_rows(at)
    assert rows["diverged"][translate("en", "draw.column_digit")] == translate("en", "draw.network_failed")
    assert rows["mlp-ce"][translate("en", "draw.column_digit")] == "7"
    assert predicted_digit(at) == NO_DIGIT
    expected = translate("en", "draw.error_network", message=translate("en", "draw.network_nan"))
    assert expected in prediction_texts(at)


# ---------------------------------------------------------------------------
# Errors and first launch
# ---------------------------------------------------------------------------

def test_unreadable_image_shows_message(models_dir):
    at = open_draw_page()

    at.session_state[CANVAS_KEY] = {"drawing": {"raw": {"objects": []},
                                                "data": "data:image/png;base64,bm90IGEgcG5n"}}
    at.run()

    assert not at.exception
    assert predicted_digit(at) == NO_DIGIT
    assert translate("en", "draw.error_image") in prediction_texts(at)


def test_data_url_without_base64_shows_message(models_dir):
    at = open_draw_page()

    at.session_state[CANVAS_KEY] = {"drawing": {"raw": {"objects": []}, "data": "data:image/png,raw"}}
    at.run()

    assert not at.exception
    assert translate("en", "draw.error_image") in prediction_texts(at)


def test_broken_model_file_skipped_with_warning(trained_models_dir, tmp_path, monkeypatch):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "mlp-ce.npz").write_bytes((trained_models_dir / "mlp-ce.npz").read_bytes())
    (folder / "broken.npz").write_bytes(b"this is not a model file")
    monkeypatch.setenv(MODELS_DIR_ENV, str(folder))

    at = open_draw_page()
    draw(at, render_png(DIGIT_STROKES[1]))

    warnings = [warning.value for warning in at.main.get("warning")]
    assert len(warnings) == 1
    assert "broken.npz" in warnings[0]
    assert list(comparison_rows(at)) == ["mlp-ce"]
    assert predicted_digit(at) == "1"


def test_no_networks_shows_hint(tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "empty"))
    at = open_draw_page()

    draw(at, render_png(DIGIT_STROKES[1]))

    assert predicted_digit(at) == NO_DIGIT
    assert translate("en", "draw.no_networks") in prediction_texts(at)
    assert find_block(at.main, "comparison") is None


def test_page_in_chinese(models_dir):
    at = open_draw_page(locale="zh-CN")

    assert translate("zh-CN", "draw.hint_blank") in prediction_texts(at)

    draw(at, render_png(DIGIT_STROKES[7]))
    rows = comparison_rows_in(at, "zh-CN")
    confidence = rows["mlp-ce"][translate("zh-CN", "draw.column_confidence")]
    assert predicted_digit(at) == "7"
    assert translate("zh-CN", "draw.confidence", value=confidence) in prediction_texts(at)
    assert rows["mlp-ce"][translate("zh-CN", "draw.column_loss")] == "交叉熵"


def comparison_rows_in(at, lang):
    block = find_block(at.main, "comparison")
    frame = block.get("table")[0].value
    name_column = translate(lang, "draw.column_network")
    return {row[name_column]: row for row in frame.to_dict("records")}


def test_confidence_uses_locale_format(models_dir):
    at = open_draw_page()
    draw(at, render_png(DIGIT_STROKES[1]))

    confidence = comparison_rows(at)["mlp-ce"][translate("en", "draw.column_confidence")]

    assert re.fullmatch(r"\d{1,3}\.\d%", confidence)
    assert confidence == format_percent(float(confidence[:-1]) / 100, lang="en")
