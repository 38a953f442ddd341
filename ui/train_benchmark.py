"""Compare the train page's training speed with the command line's, and time the first chart.

Usage (needs Playwright and Debian's Chromium, like the browser tests)::

    OPENBLAS_NUM_THREADS=1 python -m ui.train_benchmark [--rounds 3] [--epochs 10] [--data DIR]

Starts the app on 127.0.0.1, opens the train page in headless Chromium and trains the tutorial
network (batch size 64, Adam) on MNIST from ``--data`` (default: ``$DIGIT_LAB_DATA``, else
``../shared/data/mnist`` next to the repository). After each run in the app, runs
``python -m engine train`` with the same settings. Prints one line per round and a JSON summary:
the app's and the command line's samples/s (mean of the epochs' speeds), their ratio, and the
seconds from pressing Train to the first change of the loss chart.
"""

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
LAYERS = "flatten,dropout:0.2,linear:64,relu,linear:10"
CHROMIUM_PATH = "/usr/bin/chromium"
# Seconds a run in the app may take before the benchmark gives up.
RUN_TIMEOUT = 600

log = logging.getLogger("ui.train_benchmark")


def command_line_speed(epochs, env):
    """Return the mean samples/s over the epochs of ``python -m engine train``."""
    output = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--layers", LAYERS, "--epochs", str(epochs),
         "--batch-size", "64", "--data", "mnist"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True).stdout
    rates = [json.loads(line)["samples_per_second"] for line in output.splitlines()
             if line.startswith("{")]
    return sum(rates) / len(rates)


def loss_chart_drawing(page):
    """Return the loss chart's SVG markup, or None before the chart exists."""
    svg = page.locator(".st-key-loss-chart svg.marks")
    return svg.first.inner_html() if svg.count() else None


def train_in_app(page):
    """Press Train, wait for the end; return ``(samples/s, seconds to the first chart change)``."""
    before = loss_chart_drawing(page)
    pressed = time.monotonic()
    page.locator(".st-key-train-start button").click()
    # The status line still shows the previous run until the page has rerun.
    page.locator(".st-key-train-status").filter(has_not_text="Finished").wait_for()
    first_chart = None
    while "Finished" not in " ".join(page.locator(".st-key-train-status").all_inner_texts()):
        if time.monotonic() - pressed > RUN_TIMEOUT:
            raise TimeoutError(f"the run did not finish within {RUN_TIMEOUT} s")
        drawing = loss_chart_drawing(page)
        if first_chart is None and drawing not in (None, before) and 'd="M' in drawing:
            first_chart = time.monotonic() - pressed
        page.wait_for_timeout(100)

    page.wait_for_timeout(800)
    lines = [line for line in page.locator(".st-key-train-metrics").inner_text().splitlines()
             if line.strip()]
    speed = float(lines[lines.index("Samples/s") + 1].replace(",", ""))
    return speed, first_chart


def _seconds(value):
    return "not seen" if value is None else f"{value:.2f} s"


def run(rounds, epochs, data):
    from playwright.sync_api import sync_playwright

    from tests.browser_support import CHROMIUM_ARGS, open_app, start_streamlit

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "DIGIT_LAB_DATA": str(data)}
    log_path = Path(tempfile.mkdtemp(prefix="train-benchmark-")) / "server.log"
    server = start_streamlit(log_path, env={"DIGIT_LAB_DATA": str(data)})
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            open_app(page, server, "", query={"lang": "en"}, wait_text="Train a network")
            field = page.locator(".st-key-train_w_epochs input")
            field.fill(str(epochs))
            field.press("Enter")
            page.wait_for_timeout(1000)

            for number in range(1, rounds + 1):
                app_speed, first_chart = train_in_app(page)
                cli_speed = command_line_speed(epochs, env)
                results.append({"app": app_speed, "cli": cli_speed, "ratio": app_speed / cli_speed,
                                "first_chart_seconds": first_chart,
                                "load": os.getloadavg()[0]})
                print(f"round {number}: app {app_speed:,.0f}/s, command line {cli_speed:,.0f}/s, "
                      f"ratio {app_speed / cli_speed:.2f}, first chart {_seconds(first_chart)}, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
            browser.close()
    finally:
        server.stop()

    charts = [result["first_chart_seconds"] for result in results
              if result["first_chart_seconds"] is not None]
    print(json.dumps({"epochs": epochs, "rounds": results,
                      "median_ratio": statistics.median(r["ratio"] for r in results),
                      "median_first_chart_seconds": statistics.median(charts) if charts else None}))


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m ui.train_benchmark",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="app and command-line runs (default 3)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument("--data", default=os.environ.get("DIGIT_LAB_DATA")
                        or str(REPO_ROOT.parent / "shared" / "data" / "mnist"),
                        help="folder of the MNIST idx files")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    run(args.rounds, args.epochs, Path(args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
