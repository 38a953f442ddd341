"""The loss-duel page in Chromium: start a duel, watch the three curves update, read the table."""

import re
import time

import pytest

from engine.data import BUNDLED_PATH
from tests.browser_support import assert_no_app_error, main_area, open_app, wait_for_script_idle
from ui.i18n import translate

# Long enough on the bundled subset for several chart redraws (the chart redraws every 1.5 s).
EPOCHS = 12
SPEC = "flatten,linear:64,relu,linear:10"
UPDATE_TIMEOUT_S = 60
FINISH_TIMEOUT_MS = 180_000


def en(key, **params):
    return translate("en", key, **params)


@pytest.fixture
def duel_server(start_streamlit_server, tmp_path):
    """A server whose MNIST is the bundled subset (no download) and whose models folder is new."""
    return start_streamlit_server(env={"DIGIT_LAB_DATA": str(BUNDLED_PATH),
                                       "DIGIT_LAB_MODELS": str(tmp_path / "models")})


def fill(page, key, value):
    field = page.locator(f".st-key-{key} input")
    field.fill(str(value))
    field.press("Enter")
    wait_for_script_idle(page)


def step_shown(page):
    """Return the step number in the progress text ("Step 120 of 1,260"), or None."""
    text = page.locator('[data-testid="stProgress"]').first.inner_text()
    match = re.search(r"(\d[\d,]*)", text)
    return int(match.group(1).replace(",", "")) if match else None


@pytest.mark.time_limit(400)
def test_duel_in_browser(duel_server, app_page):
    page = app_page
    open_app(page, duel_server, "duel", query={"lang": "en"}, wait_text=en("duel.title"))
    fill(page, "duel-layers", SPEC)
    page.locator(".st-key-duel-data").get_by_text(en("duel.data_options.bundled")).click()
    wait_for_script_idle(page)
    fill(page, "duel-epochs", EPOCHS)

    page.locator(".st-key-duel-start button").click()
    chart = page.locator(".st-key-duel-chart")
    chart.wait_for()
    page.locator(".st-key-duel-stop button").wait_for()
    weights = page.locator(".st-key-duel-weights").inner_text()
    assert "Same starting weights" in weights

    # Every run shows an accuracy as soon as its first check is in.
    metrics = page.locator('[data-testid="stMetric"]')
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
                 .filter(e => e.innerText.includes('%')).length === 3""")
    labels = [metrics.nth(i).locator('[data-testid="stMetricLabel"]').inner_text()
              for i in range(metrics.count())]
    assert labels == [en("duel.metric_label", loss=en(f"duel.loss_names.{loss}"), size="1,000")
                      for loss in ("ce", "mse", "bce")]

    # The charts redraw while the duel runs: the step advances and the picture changes.
    first_step = step_shown(page)
    first_picture = chart.screenshot()
    deadline = time.monotonic() + UPDATE_TIMEOUT_S
    changed = False
    while time.monotonic() < deadline and not changed:
        page.wait_for_timeout(500)
        changed = chart.screenshot() != first_picture
    assert changed, "the duel charts did not change while training"
    assert step_shown(page) > first_step
    assert chart.locator('[data-testid="stVegaLiteChart"]').count() == 5

    # The results table appears when the duel ends.
    results = page.locator(".st-key-duel-results")
    results.wait_for(timeout=FINISH_TIMEOUT_MS)
    wait_for_script_idle(page)
    text = results.inner_text()
    for loss in ("ce", "mse", "bce"):
        assert en(f"duel.loss_names.{loss}") in text
    assert text.count(en("duel.run_status.finished")) == 3
    assert len(re.findall(r"\d+\.\d%", text)) >= 6
    assert main_area(page).get_by_text("duel-ce, duel-mse, duel-bce").count() == 1
    page.locator(".st-key-duel-stop button").wait_for(state="detached")

    assert_no_app_error(page)
    duel_server.assert_clean_log()
