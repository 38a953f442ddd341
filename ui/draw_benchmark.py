"""Measure how long the draw page takes from a canvas PNG to every network's probabilities.

Usage::

    OPENBLAS_NUM_THREADS=1 python -m ui.draw_benchmark [--models DIR] [--repeat 200]

The drawings are digits rendered like the canvas sends them (280 x 280 RGBA PNG, white ink on
black, an 18-pixel round pen). The networks are the model files in ``--models`` (default: the
app's models folder). Prints one JSON object with the median and 95th percentile, in
milliseconds, of the whole reading and of its stages (PNG decoding, preprocessing, all
networks' probabilities).
"""

import argparse
import io
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from engine.predict import probabilities
from engine.preprocess import preprocess_canvas
from ui.draw_predict import decode_png, read_drawing
from ui.runs import MODELS_DIR_ENV, saved_runs

log = logging.getLogger("ui.draw_benchmark")

CANVAS_SIZE = 280
PEN_WIDTH = 18

# Strokes of a few digits in canvas pixels.
STROKES = [
    [[(140, 40), (140, 240)]],
    [[(80, 50), (200, 50), (110, 240)]],
    [[(140 + 60 * math.sin(a), 140 - 95 * math.cos(a)) for a in np.linspace(0, 2 * math.pi, 37)]],
    [[(110, 40), (85, 165), (200, 165)], [(170, 70), (170, 250)]],
]


def render_png(strokes):
    picture = Image.new("RGBA", (CANVAS_SIZE, CANVAS_SIZE), (0, 0, 0, 255))
    draw = ImageDraw.Draw(picture)
    for stroke in strokes:
        draw.line(stroke, fill=(255, 255, 255, 255), width=PEN_WIDTH, joint="curve")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def percentiles(seconds):
    values = np.asarray(seconds) * 1000.0
    return {"median_ms": round(float(np.median(values)), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2)}


def measure(runs, repeat):
    """Return the timings of ``read_drawing`` and of its stages over ``repeat`` drawings."""
    drawings = [render_png(strokes) for strokes in STROKES]
    read_drawing(drawings[0], runs)  # warm-up: first calls allocate and load code

    total, decode, preprocess, predict = [], [], [], []
    for index in range(repeat):
        png = drawings[index % len(drawings)]
        total.append(_timed(read_drawing, png, runs)[1])

        image, seconds = _timed(decode_png, png)
        decode.append(seconds)
        preprocessed, seconds = _timed(preprocess_canvas, image)
        preprocess.append(seconds)
        x = preprocessed.input.reshape(1, 1, 28, 28)
        start = time.perf_counter()
        for run in runs:
            probabilities(run.model, x, run.loss)
        predict.append(time.perf_counter() - start)

    return {"networks": len(runs), "repeat": repeat, "total": percentiles(total),
            "decode": percentiles(decode), "preprocess": percentiles(preprocess),
            "predict_all": percentiles(predict)}


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="python -m ui.draw_benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, help="folder of model files (default: the app's models folder)")
    parser.add_argument("--repeat", type=int, default=200, help="drawings to read (default 200)")
    args = parser.parse_args(argv)

    if args.models is not None:
        os.environ[MODELS_DIR_ENV] = str(args.models)
    runs, errors = saved_runs()
    for path, error in errors:
        log.warning("skipping %s: %s", path, error)
    if not runs:
        log.error("no model files found; pass --models DIR")
        return 2

    log.info("reading %d drawings with %s", args.repeat, ", ".join(run.name for run in runs))
    print(json.dumps(measure(runs, args.repeat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
