"""The draw page in Chromium: digits drawn with mouse strokes on the real canvas.

Each test starts its own server. The networks are the shipped model files in ``models/``; while
that folder has none, two networks trained for the test stand in (``trained_models_dir``). Every
wait is on text in the page, and each test prints the browser time from mouse-up to the digit
shown (run pytest with ``-s`` to see it).
"""

import json

import pytest

from tests.browser_support import REPO_ROOT, open_app, sidebar, wait_for_script_idle
from tests.test_draw_page import DIGIT_STROKES, trained_models_dir  # noqa: F401  (fixture)
from ui.i18n import translate

NO_DIGIT = "\u2014"
RESET_BUTTON = "Reset canvas & history"  # the toolbar button's label in streamlit-drawable-canvas 0.13
# Single-stroke digits: the canvas sends 200 ms after mouse-up, so a digit drawn in several
# strokes could be read half-drawn in between.
BROWSER_DIGITS = (1, 7, 0, 3)
PREDICTION_TIMEOUT_MS = 30_000

# Records the time of the last mouse-up anywhere in the page (canvas events leave the shadow root).
MOUSE_UP_RECORDER = """
window.addEventListener("mouseup", () => { window.__lastMouseUp = performance.now(); }, true);
"""

# Resolves with the milliseconds from the last mouse-up until the predicted digit shows a digit
# other than `previous`; rejects after the timeout.
WAIT_FOR_DIGIT = """
([previous, timeoutMs]) => new Promise((resolve, reject) => {
    const started = performance.now();
    const check = () => {
        const element = document.querySelector(".st-key-predicted-digit");
        const text = element ? element.innerText.trim() : "";
        if (/^[0-9]$/.test(text) && text !== previous) {
            resolve(performance.now() - window.__lastMouseUp);
        } else if (performance.now() - started > timeoutMs) {
            reject(new Error(`no digit after ${timeoutMs} ms, shown: "${text}"`));
        } else {
            setTimeout(check, 5);
        }
    };
    check();
})
"""


@pytest.fixture
def draw_models_dir(trained_models_dir):  # noqa: F811
    """The shipped models folder, or the stand-in networks while it has no model files."""
    shipped = REPO_ROOT / "models"
    return shipped if any(shipped.glob("*.npz")) else trained_models_dir


@pytest.fixture
def draw_server(start_streamlit_server, draw_models_dir, mnist_dir):
    """A server with the networks of ``draw_models_dir`` and real MNIST for the train page."""
    return start_streamlit_server(env={"DIGIT_LAB_DATA": str(mnist_dir),
                                       "DIGIT_LAB_MODELS": str(draw_models_dir)})


def new_page(new_browser_context):
    page = new_browser_context().new_page()
    page.add_init_script(MOUSE_UP_RECORDER)
    return page


def open_draw_page(page, server):
    open_app(page, server, "draw", query={"lang": "en"}, wait_text=translate("en", "draw.title"))
    # The script state can read "notRunning" before the page's first run has finished.
    page.locator(".st-key-predicted-digit").get_by_text(NO_DIGIT, exact=True).wait_for()
    wait_for_script_idle(page)


def canvas_box(page):
    canvas = page.locator("canvas.upper-canvas")
    canvas.wait_for()
    return canvas.bounding_box()


def draw_strokes(page, strokes):
    """Draw ``strokes`` (canvas pixel coordinates) with the mouse on the canvas."""
    box = canvas_box(page)
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()


def predicted_digit(page):
    return page.locator(".st-key-predicted-digit").inner_text().strip()


def draw_and_read(page, digit):
    """Draw ``digit``; return ``(shown digit, milliseconds from mouse-up to a digit shown)``."""
    previous = predicted_digit(page)
    draw_strokes(page, DIGIT_STROKES[digit])
    latency = page.evaluate(WAIT_FOR_DIGIT, [previous, PREDICTION_TIMEOUT_MS])
    wait_for_script_idle(page)
    return predicted_digit(page), latency


def reset_canvas(page):
    box = canvas_box(page)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.get_by_role("button", name=RESET_BUTTON).click()
    page.locator(".st-key-predicted-digit").get_by_text(NO_DIGIT, exact=True).wait_for()
    wait_for_script_idle(page)


def comparison_text(page):
    return page.locator(".st-key-comparison").inner_text()


def test_mouse_digits_read_and_cleared(draw_server, new_browser_context):
    page = new_page(new_browser_context)
    open_draw_page(page, draw_server)
    assert predicted_digit(page) == NO_DIGIT

    latencies = {}
    for digit in BROWSER_DIGITS:
        shown, latencies[digit] = draw_and_read(page, digit)
        assert shown == str(digit), f"drew {digit}, the page shows {shown}"
        assert str(digit) in comparison_text(page)

        reset_canvas(page)
        assert predicted_digit(page) == NO_DIGIT
        assert translate("en", "draw.hint_blank") in page.locator(".st-key-prediction").inner_text()

    print("mouse-up to digit, idle (ms):", json.dumps({d: round(ms) for d, ms in latencies.items()}))
    draw_server.assert_clean_log()


# Counts the canvas pixels with ink (bright red channel) on the layer that contains the drawing.
COUNT_INK_PIXELS = """
() => {
    const host = document.querySelector('[data-testid="stBidiComponentIsolated"]');
    const canvas = host.shadowRoot.querySelector("canvas.dc-canvas.lower-canvas");
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let ink = 0;
    for (let i = 0; i < pixels.length; i += 4) { if (pixels[i] > 127) ink += 1; }
    return ink;
}
"""


def test_pen_width_change_keeps_drawing(draw_server, new_browser_context):
    page = new_page(new_browser_context)
    open_draw_page(page, draw_server)
    shown, _ = draw_and_read(page, 7)
    assert shown == "7"
    ink_before = page.evaluate(COUNT_INK_PIXELS)

    slider = page.get_by_role("slider", name=translate("en", "draw.stroke_width"))
    slider.focus()
    page.keyboard.press("ArrowRight")
    page.locator(".st-key-draw-stroke-width").get_by_text("19", exact=True).wait_for()
    wait_for_script_idle(page)

    assert ink_before > 1000
    assert page.evaluate(COUNT_INK_PIXELS) == ink_before
    assert predicted_digit(page) == "7"
    draw_server.assert_clean_log()


def start_training(page, server, epochs):
    """Open the train page, set the number of epochs and press Train; wait until the job exists."""
    open_app(page, server, "", query={"lang": "en"}, wait_text=translate("en", "train.title"))
    epochs_input = page.get_by_role("spinbutton", name=translate("en", "train.settings.epochs"))
    epochs_input.fill(str(epochs))
    epochs_input.press("Enter")
    wait_for_script_idle(page)
    page.locator(".st-key-train-start button").click()
    # The Stop button is there only while a job is queued, running or paused.
    page.locator(".st-key-train-stop button").wait_for()


def go_to_draw_page(page):
    sidebar(page).get_by_role("link", name=translate("en", "app.nav.draw")).click()
    page.locator(".st-key-predicted-digit").get_by_text(NO_DIGIT, exact=True).wait_for()
    wait_for_script_idle(page)


def comparison_row_count(page):
    return page.locator(".st-key-comparison tbody tr").count()


@pytest.mark.time_limit(240)
def test_digits_read_while_training(draw_server, new_browser_context):
    page = new_page(new_browser_context)
    # A long training run, so it is still going while the digits are drawn; stopped at the end.
    start_training(page, draw_server, epochs=50)
    go_to_draw_page(page)
    assert translate("en", "draw.training_running") in page.inner_text("body")

    latencies = {}
    for digit in BROWSER_DIGITS:
        shown, latencies[digit] = draw_and_read(page, digit)
        assert shown == str(digit), f"drew {digit} during training, the page shows {shown}"
        reset_canvas(page)
    print("mouse-up to digit, training (ms):", json.dumps({d: round(ms) for d, ms in latencies.items()}))

    # The run must still have been going: back on the train page it is still running; stop it.
    sidebar(page).get_by_role("link", name=translate("en", "app.nav.train")).click()
    stop = page.locator(".st-key-train-stop button")
    stop.wait_for()
    stop.click()
    page.locator(".st-key-train-stop").wait_for(state="detached")
    draw_server.assert_clean_log()


@pytest.mark.time_limit(240)
def test_finished_training_joins_draw_page(draw_server, draw_models_dir, new_browser_context):
    page = new_page(new_browser_context)
    start_training(page, draw_server, epochs=4)
    go_to_draw_page(page)
    files = len(list(draw_models_dir.glob("*.npz")))

    # The page polls the job and reruns when it ends; the new run is listed first and selected.
    page.locator(".st-key-comparison tbody tr").nth(files).wait_for(timeout=180_000)
    assert comparison_row_count(page) == files + 1
    assert translate("en", "draw.training_running") not in page.inner_text("body")

    shown, _ = draw_and_read(page, 7)
    assert shown == "7"
    first_row = page.locator(".st-key-comparison tbody tr").first.inner_text()
    assert "7" in first_row.split()
    draw_server.assert_clean_log()
