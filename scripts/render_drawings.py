"""Render synthetic mouse drawings of the digits 0-9 as canvas images, for testing preprocessing.

Each digit has several hand-written stroke templates (for example a 1 with and without a flag,
a 7 with and without a bar, an open and a closed 4). A drawing jitters the template's control
points, slants, rotates and stretches it, and smooths each stroke with a Catmull-Rom spline.
It draws the strokes as round-capped polylines 15-25 pixels wide at a random size and
position. Drawing at twice the size and reducing gives anti-aliased edges like a browser
canvas. Nothing is taken from MNIST.

Every image is stored as the canvas hands it over, (size, size, 4) uint8 RGBA, in one of
three variants: "transparent" (black ink only in alpha, RGB all zero, the canvas default),
"black-on-white" and "white-on-black" (opaque).

Usage:
    python scripts/render_drawings.py data/drawings.npz --count 2000 --seed 0

The .npz holds images (N, size, size, 4) uint8, labels (N,) uint8, variants (N,) str,
styles (N,) str (template name), pen_widths (N,) float32 and heights (N,) float32 (the digit's
height in canvas pixels). The same seed gives the same file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger("render_drawings")

VARIANTS = ("transparent", "black-on-white", "white-on-black")

SUPERSAMPLING = 2

# Stroke templates in a unit box: x to the right, y down, (0, 0) top left, (1, 1) bottom right.
# A template is a list of strokes, each drawn from pen-down to pen-up. A stroke is a list of
# segments joined at sharp corners, and a segment is a list of control points that a
# Catmull-Rom spline smooths. A string names a template built in code (ovals, two loops).
TEMPLATES: dict[int, dict[str, list[list[list[tuple[float, float]]]]]] = {
    0: {
        "oval": "ellipse:0.42",
        "narrow": "ellipse:0.30",
        "round": "ellipse:0.50",
    },
    1: {
        "stick": [[[(0.5, 0.0), (0.5, 1.0)]]],
        "flag": [[[(0.25, 0.22), (0.55, 0.0)], [(0.55, 0.0), (0.55, 1.0)]]],
        "flag-base": [[[(0.25, 0.22), (0.55, 0.0)], [(0.55, 0.0), (0.55, 1.0)]],
                      [[(0.25, 1.0), (0.85, 1.0)]]],
    },
    2: {
        "plain": [[[(0.12, 0.25), (0.3, 0.04), (0.55, 0.0), (0.82, 0.12), (0.85, 0.35),
                    (0.65, 0.6), (0.35, 0.82), (0.08, 1.0)],
                   [(0.08, 1.0), (0.5, 0.98), (0.95, 1.0)]]],
        "loop": [[[(0.12, 0.25), (0.3, 0.04), (0.55, 0.0), (0.82, 0.12), (0.85, 0.35),
                   (0.6, 0.62), (0.3, 0.85), (0.12, 0.98), (0.2, 1.02), (0.35, 0.9),
                   (0.5, 0.95), (0.95, 1.0)]]],
        "z": [[[(0.1, 0.05), (0.85, 0.0)], [(0.85, 0.0), (0.1, 1.0)], [(0.1, 1.0), (0.95, 0.98)]]],
    },
    3: {
        "round": [[[(0.12, 0.12), (0.45, 0.0), (0.8, 0.1), (0.82, 0.3), (0.42, 0.48)],
                   [(0.42, 0.48), (0.8, 0.58), (0.88, 0.8), (0.6, 1.0), (0.3, 1.0),
                    (0.08, 0.86)]]],
        "flat-top": [[[(0.12, 0.0), (0.85, 0.0)], [(0.85, 0.0), (0.4, 0.4)],
                      [(0.4, 0.4), (0.8, 0.52), (0.88, 0.78), (0.55, 1.0), (0.1, 0.9)]]],
    },
    4: {
        "open": [[[(0.2, 0.0), (0.12, 0.62)], [(0.12, 0.62), (0.95, 0.6)]],
                 [[(0.7, 0.05), (0.7, 1.0)]]],
        "closed": [[[(0.62, 0.0), (0.05, 0.66)], [(0.05, 0.66), (0.95, 0.64)]],
                   [[(0.66, 0.0), (0.66, 1.0)]]],
    },
    5: {
        "one-stroke": [[[(0.85, 0.0), (0.25, 0.0)], [(0.25, 0.0), (0.2, 0.45)],
                        [(0.2, 0.45), (0.5, 0.38), (0.8, 0.5), (0.86, 0.75), (0.6, 0.98),
                         (0.3, 1.0), (0.08, 0.88)]]],
        "bar-last": [[[(0.25, 0.0), (0.2, 0.45)],
                      [(0.2, 0.45), (0.5, 0.38), (0.8, 0.5), (0.86, 0.75), (0.6, 0.98),
                       (0.3, 1.0), (0.08, 0.88)]],
                     [[(0.25, 0.0), (0.88, 0.02)]]],
    },
    6: {
        "curl": [[[(0.78, 0.0), (0.45, 0.15), (0.2, 0.45), (0.15, 0.75), (0.3, 0.97),
                   (0.6, 1.0), (0.82, 0.8), (0.72, 0.56), (0.42, 0.52), (0.2, 0.7)]]],
        "straight": [[[(0.6, 0.0), (0.3, 0.5), (0.18, 0.8), (0.35, 1.0), (0.65, 1.0),
                       (0.82, 0.78), (0.6, 0.55), (0.35, 0.6), (0.22, 0.75)]]],
    },
    7: {
        "plain": [[[(0.05, 0.0), (0.95, 0.0)], [(0.95, 0.0), (0.4, 1.0)]]],
        "bar": [[[(0.05, 0.0), (0.95, 0.0)], [(0.95, 0.0), (0.4, 1.0)]],
                [[(0.3, 0.5), (0.85, 0.5)]]],
        "curved": [[[(0.05, 0.1), (0.1, 0.0), (0.5, 0.03), (0.95, 0.0)],
                    [(0.95, 0.0), (0.7, 0.4), (0.5, 0.75), (0.45, 1.0)]]],
    },
    8: {
        "one-stroke": [[[(0.8, 0.12), (0.5, 0.0), (0.2, 0.12), (0.25, 0.35), (0.5, 0.5),
                         (0.8, 0.68), (0.82, 0.9), (0.5, 1.0), (0.18, 0.9), (0.2, 0.68),
                         (0.5, 0.5), (0.76, 0.32), (0.8, 0.12)]]],
        "two-loops": "two-loops",
    },
    9: {
        "straight": [[[(0.82, 0.2), (0.55, 0.0), (0.25, 0.08), (0.18, 0.32), (0.45, 0.5),
                       (0.8, 0.38), (0.82, 0.2)], [(0.82, 0.2), (0.8, 1.0)]]],
        "curved": [[[(0.82, 0.2), (0.55, 0.0), (0.25, 0.08), (0.18, 0.32), (0.45, 0.5),
                     (0.8, 0.38), (0.82, 0.2)],
                    [(0.82, 0.2), (0.8, 0.6), (0.72, 0.88), (0.5, 1.0), (0.28, 0.95)]]],
    },
}


def ellipse_stroke(rng: np.random.Generator, width: float) -> list[list[list[tuple]]]:
    """Return a one-stroke oval (a 0) of the given relative width, drawn anticlockwise from the top."""
    overlap = rng.uniform(0.0, 0.5)
    angles = np.linspace(-np.pi / 2, -np.pi / 2 - 2 * np.pi - overlap, 14)
    points = [(0.5 + width * np.cos(a), 0.5 + 0.5 * np.sin(a)) for a in angles]
    return [[points]]


def two_loops_stroke(rng: np.random.Generator) -> list[list[list[tuple]]]:
    """Return an 8 drawn as a small loop on top of a larger one."""
    top = [(0.5 + 0.28 * np.cos(a), 0.22 + 0.22 * np.sin(a))
           for a in np.linspace(np.pi / 2, np.pi / 2 + 2 * np.pi, 10)]
    bottom = [(0.5 + 0.36 * np.cos(a), 0.72 + 0.28 * np.sin(a))
              for a in np.linspace(-np.pi / 2, -np.pi / 2 + 2 * np.pi, 12)]
    return [[top], [bottom]]


def catmull_rom(points: np.ndarray, samples_per_span: int = 12) -> np.ndarray:
    """Return a smooth curve through `points` (n, 2) as (m, 2), using a Catmull-Rom spline."""
    if len(points) < 3:
        steps = np.linspace(0.0, 1.0, samples_per_span + 1)[:, None]
        return points[0] + steps * (points[-1] - points[0])

    padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, 1.0, samples_per_span, endpoint=False)[:, None]
    curve = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        curve.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t ** 2
                            + (3 * p1 - p0 - 3 * p2 + p3) * t ** 3))
    curve.append(points[-1:])
    return np.vstack(curve)


def template_strokes(digit: int, style: str, rng: np.random.Generator) -> list:
    """Return the strokes of one template, building the parametric ones (ovals, two loops)."""
    template = TEMPLATES[digit][style]
    if isinstance(template, str) and template.startswith("ellipse:"):
        return ellipse_stroke(rng, float(template.split(":")[1]) * rng.uniform(0.8, 1.15))
    if template == "two-loops":
        return two_loops_stroke(rng)
    return template


def draw_digit(digit: int, style: str, rng: np.random.Generator, size: int = 280,
               pen_width: float = 20.0, height: float = 200.0, jitter: float = 0.035) -> np.ndarray:
    """Draw one digit and return its ink, (size, size) float32 in 0..1.

    The template's control points move by `jitter` times the digit's height (standard
    deviation), then the digit is slanted, rotated, scaled to `height` canvas pixels, drawn
    with a pen `pen_width` pixels wide and placed at a random position on the canvas.
    """
    aspect = 0.75 if digit != 1 else 0.6
    aspect *= rng.uniform(0.8, 1.15)
    shear = rng.uniform(-0.25, 0.1)
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))

    # Map the unit box to canvas pixels: x spans aspect * height and y spans height. The shear
    # slants the digit (x moves in proportion to y), then the rotation turns it.
    transform = np.array([[aspect * height, -shear * height], [0.0, height]])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    transform = rotation @ transform

    strokes = []
    for stroke in template_strokes(digit, style, rng):
        path = []
        for segment in stroke:
            points = np.asarray(segment, dtype=np.float64)
            points = points + rng.normal(0.0, jitter, points.shape)
            if path:
                points[0] = path[-1][-1]
            path.append(catmull_rom(points))
        strokes.append(np.vstack(path))

    points = np.vstack(strokes)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    strokes = [(s - centre) @ transform.T for s in strokes]

    canvas_points = np.vstack(strokes)
    low = canvas_points.min(axis=0) - pen_width / 2
    high = canvas_points.max(axis=0) + pen_width / 2
    room = np.maximum(size - (high - low), 0.0)
    offset = rng.uniform(0.0, 1.0, 2) * room - low
    strokes = [(s + offset) * SUPERSAMPLING for s in strokes]

    big = Image.new("L", (size * SUPERSAMPLING, size * SUPERSAMPLING), 0)
    draw = ImageDraw.Draw(big)
    width = int(round(pen_width * SUPERSAMPLING))
    radius = width / 2
    for stroke in strokes:
        xy = [tuple(p) for p in stroke]
        draw.line(xy, fill=255, width=width, joint="curve")
        for x, y in xy:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)

    small = big.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def to_canvas(ink: np.ndarray, variant: str) -> np.ndarray:
    """Return an ink map (H, W) float in 0..1 as the canvas's (H, W, 4) uint8 RGBA image."""
    level = np.round(ink * 255.0).astype(np.uint8)
    rgba = np.empty(ink.shape + (4,), dtype=np.uint8)
    if variant == "transparent":
        rgba[..., :3] = 0
        rgba[..., 3] = level
    elif variant == "black-on-white":
        rgba[..., :3] = (255 - level)[..., None]
        rgba[..., 3] = 255
    elif variant == "white-on-black":
        rgba[..., :3] = level[..., None]
        rgba[..., 3] = 255
    else:
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    return rgba


def render_set(count: int, seed: int, size: int = 280, pen_range: tuple = (15.0, 25.0),
               height_range: tuple = (0.3, 0.85), jitter: float = 0.035) -> dict[str, np.ndarray]:
    """Render `count` drawings, cycling through the digits and styles, with random variants.

    Pen widths are uniform in `pen_range` (canvas pixels) and digit heights uniform in
    `height_range` (fractions of `size`).
    """
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, 4), dtype=np.uint8)
    labels = np.empty(count, dtype=np.uint8)
    variants, styles = [], []
    pen_widths = np.empty(count, dtype=np.float32)
    heights = np.empty(count, dtype=np.float32)

    for index in range(count):
        digit = index % 10
        style_names = list(TEMPLATES[digit])
        style = style_names[(index // 10) % len(style_names)]
        variant = VARIANTS[rng.integers(len(VARIANTS))]

        pen_widths[index] = rng.uniform(*pen_range)
        heights[index] = rng.uniform(*height_range) * size
        ink = draw_digit(digit, style, rng, size, float(pen_widths[index]),
                         float(heights[index]), jitter)
        images[index] = to_canvas(ink, variant)
        labels[index] = digit
        variants.append(variant)
        styles.append(style)

    return {"images": images, "labels": labels, "variants": np.array(variants),
            "styles": np.array(styles), "pen_widths": pen_widths, "heights": heights}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed .npz atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, **arrays)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the .npz file to write")
    parser.add_argument("--count", type=int, default=1000,
                        help="number of drawings (default 1000; digits cycle 0-9)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=280,
                        help="canvas side in pixels (default 280)")
    parser.add_argument("--pen-width", type=float, nargs=2, default=(15.0, 25.0),
                        metavar=("MIN", "MAX"), help="pen width range in pixels (default 15 25)")
    parser.add_argument("--height", type=float, nargs=2, default=(0.3, 0.85),
                        metavar=("MIN", "MAX"),
                        help="digit height range as a fraction of the canvas (default 0.3 0.85)")
    parser.add_argument("--jitter", type=float, default=0.035,
                        help="control point jitter as a fraction of the digit height "
                             "(default 0.035)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.count < 1 or args.size < 28:
        parser.error("--count must be at least 1 and --size at least 28")
    arrays = render_set(args.count, args.seed, args.size, tuple(args.pen_width),
                        tuple(args.height), args.jitter)
    save_npz(args.output, arrays)
    logger.info("wrote %d drawings of %dx%d to %s", args.count, args.size, args.size, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
