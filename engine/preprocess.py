"""Turn a drawing from the canvas into the 28x28 input an MNIST network expects.

MNIST digits were made from binary scans. Each digit was scaled so that its longer side is
20 pixels, with anti-aliasing that turns the binary image into grey levels. It was then placed
in a 28x28 field with its centre of mass at the centre. A network trained on MNIST only
reads a drawing well when the drawing goes through the same steps, so `preprocess_canvas`:

1. takes the ink out of the canvas image, whatever the background (transparent, light or dark);
2. returns no input when there is no ink or only a speck;
3. crops the ink to its bounding box, leaving out stray dots, and binarises it;
4. makes the strokes as thick, relative to the digit's size, as MNIST strokes are;
5. scales the longer side to 20 pixels with area averaging (Pillow's box filter);
6. places the result in 28x28 with its centre of mass at MNIST's mean centre of mass.

Only numpy and Pillow are used, so the engine's command line and the tests can import this
module without Streamlit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

INPUT_SIZE = 28
"""Side of the network input in pixels."""

FIT_SIZE = 20
"""Side, in pixels, that the longer side of the digit is scaled to (as in MNIST)."""

MNIST_CENTRE = (14.0, 14.0)
"""Mean centre of mass (row, column) of the MNIST training digits, in pixel indices.

Measured on the first 10,000 training images (standard deviation 0.29 pixels per axis).
"""

MNIST_STROKE_RATIO = 0.120
"""Median stroke width of MNIST digits divided by the longer side of their bounding box.

Measured on the first 500 MNIST training images with `estimate_stroke_width` (each image
cropped, upscaled 10x with bilinear interpolation and thresholded at 0.5). It is 2.4 pixels at
the 20-pixel fitting size; the middle half of MNIST lies between 0.105 and 0.140.
"""

INK_THRESHOLD = 0.5
"""Ink level (0..1) from which a pixel counts as part of a stroke."""

MIN_INK_EXTENT = 0.04
"""Smallest drawing that gets a prediction, as a fraction of the canvas's shorter side.

The longer side of the ink's bounding box must be at least this fraction of the canvas's
shorter side: 11 pixels on a 280x280 canvas, 16 on 600x400 and 32 on an 800x800 HiDPI canvas.
Anything smaller is a speck (a click or a slip of the mouse), not a digit.
"""

MIN_EXTENT_IN_PEN_WIDTHS = 2.3
"""Smallest drawing that gets a prediction, in estimated stroke widths.

A single click with a wide pen leaves a round dot that can be larger than `MIN_INK_EXTENT`. Its
bounding box measured 2.0-2.26 estimated stroke widths across for pens of 12-40 px, because
`estimate_stroke_width` gives about half the diameter of a disc. A short line measures three or
more, and a small digit whose loops a thick pen filled in measured 2.35-2.5. Ink shorter than
this is a dot, not a digit.
"""

STRAY_DOT_AREA = 2 * np.pi / 4
"""Largest stray dot, in square stroke widths: the area of two dots of the pen.

A piece of ink at the edge of the drawing is left out of the bounding box when it is no larger
than this and an empty row or column separates it from the rest. A slip of the mouse then does
not shrink the digit. The largest piece is always kept.
"""

WORK_SIZE = 160
"""Largest side, in pixels, at which the strokes are measured and normalised.

A larger crop is first reduced by a whole factor with "any ink in the block" (max pooling),
which keeps 1-pixel strokes and bounds the time on large canvases. The 20-pixel fit that
follows averages blocks of 8 pixels or fewer, so the reduction does not show in the input.
"""

MIN_CONTRAST = 0.25
"""Smallest ink contrast (0..1) that is stretched to full ink.

Ink is measured as the difference from the background colour and divided by the largest
difference in the image, so coloured or grey pens count as full ink. Differences below this
value are not stretched, so compression noise on a blank image never becomes ink.
"""


@dataclass
class Preprocessed:
    """Result of `preprocess_canvas`.

    Attributes:
        input: The network input, (28, 28) float32 in 0..1, or None when the canvas contains no
            digit (then `reason` gives the cause).
        steps: Intermediate images for display, each float32 in 0..1: "ink" (H, W) ink map of
            the whole canvas, "crop" the ink cut to its bounding box, "stroke" the binary crop
            after stroke-width normalisation, "fit" the digit with its longer side scaled to 20
            pixels, "centred" the 28x28 result. Steps after the point where preprocessing
            stopped are missing.
        reason: None when `input` is set; otherwise "blank" (no ink at all) or "speck"
            (too little ink to be a digit, see `MIN_INK_EXTENT`).
        stroke_width: Estimated stroke width of the drawing in canvas pixels (0.0 without ink).
            A crop larger than `WORK_SIZE` is measured after its reduction and scaled back, so
            the estimate is coarser there.
    """

    input: np.ndarray | None
    steps: dict[str, np.ndarray] = field(default_factory=dict)
    reason: str | None = None
    stroke_width: float = 0.0


def ink_map(image: np.ndarray) -> np.ndarray:
    """Return the ink of a canvas image as an (H, W) float32 array in 0..1 (1 is full ink).

    `image` is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 (0..255) or float (0..1);
    other integer types are read as 0..255. The background is the median colour of the image's one-pixel border:

    - a transparent background (median border alpha below 0.5) means the ink is the opacity,
      whatever its colour (the canvas's default: black ink, RGB all zero, ink only in alpha);
    - an opaque background means the ink is the largest per-channel difference from the
      background colour, so white on black, black on white and coloured pens all work.
      Partly transparent pixels are composited over the background colour first.

    The ink is divided by its largest value (at least `MIN_CONTRAST`), so a grey pen is ink too.
    The input array is never modified.
    """
    image = _as_channels(image)

    if image.shape[2] == 4:
        alpha = _channel(image, 3)
        background_alpha = float(np.median(_border(alpha)))
        if background_alpha < 0.5:
            return _stretch(alpha - np.float32(background_alpha))
        colours = [_channel(image, index) for index in range(3)]
        backgrounds = [np.float32(np.median(_border(colour))) for colour in colours]
        if alpha.min() < 1.0:
            colours = [colour * alpha + background * (1.0 - alpha)
                       for colour, background in zip(colours, backgrounds)]
    else:
        colours = [_channel(image, index) for index in range(image.shape[2])]
        backgrounds = [np.float32(np.median(_border(colour))) for colour in colours]

    # The channels are handled one plane at a time: a max over a length-3 last axis is several
    # times slower in numpy than np.maximum of three planes.
    difference = np.abs(colours[0] - backgrounds[0])
    for colour, background in zip(colours[1:], backgrounds[1:]):
        np.maximum(difference, np.abs(colour - background), out=difference)
    return _stretch(difference)


def estimate_stroke_width(mask: np.ndarray) -> float:
    """Estimate the stroke width of a binary drawing in pixels.

    A stroke of width w and length L has area w * L and a perimeter of about 2 * L, so the
    width is about 2 * area / perimeter. The perimeter comes from the Cauchy-Crofton formula:
    pi / 8 times the number of ink edges crossed by the rows, columns and both diagonals (the
    diagonal counts divided by sqrt(2), their line spacing). Unlike a count of boundary
    pixels, this does not depend on the strokes' direction. Line ends, crossings and filled
    loops make the result an estimate. `mask` is (H, W) bool; returns 0.0 when it is empty.
    """
    area = int(mask.sum())
    if area == 0:
        return 0.0

    padded = np.pad(mask, 1)
    rows = np.count_nonzero(padded[:, 1:] != padded[:, :-1])
    columns = np.count_nonzero(padded[1:, :] != padded[:-1, :])
    diagonals = np.count_nonzero(padded[1:, 1:] != padded[:-1, :-1])
    antidiagonals = np.count_nonzero(padded[1:, :-1] != padded[:-1, 1:])
    perimeter = np.pi / 8 * (rows + columns + (diagonals + antidiagonals) / np.sqrt(2))
    return 2.0 * area / max(perimeter, 1.0)


def normalise_stroke_width(mask: np.ndarray, stroke_width: float | None = None) -> np.ndarray:
    """Thicken or thin the strokes of a cropped binary drawing to MNIST's relative width.

    The target width is `MNIST_STROKE_RATIO` times the longer side of the drawing, so after
    the 20-pixel fit the strokes are about 2.4 pixels wide, as in MNIST. A thin pen is dilated
    and a thick one eroded with an octagon, which changes strokes of every direction by
    nearly the same amount. Erosion removes at most a quarter of the estimated width from each
    side, so no stroke of average width disappears.

    `mask` is (H, W) bool, cropped to the ink's bounding box. Returns a new bool array, which
    is larger than `mask` by the dilation radius on each side when the strokes were thickened.
    """
    if stroke_width is None:
        stroke_width = estimate_stroke_width(mask)
    # Dilating by r widens the strokes by 2r but also the drawing's longer side L by 2r, so
    # (width + 2r) / (L + 2r) == ratio gives r; erosion is the same with r negative.
    ratio = MNIST_STROKE_RATIO
    radius = int(round((ratio * max(mask.shape) - stroke_width) / (2.0 * (1.0 - ratio))))

    if radius > 0:
        return _dilate(np.pad(mask, radius), radius)
    if radius < 0:
        radius = min(-radius, int(stroke_width / 4.0))
        if radius > 0:
            return _erode(mask, radius)
    return mask


def fit_to_box(mask: np.ndarray, size: int = FIT_SIZE) -> np.ndarray:
    """Scale a cropped drawing so that its longer side is `size` pixels, keeping the aspect ratio.

    Shrinking uses area averaging (Pillow's box filter), which keeps thin strokes as grey lines
    instead of dropping them; enlarging uses bilinear interpolation. `mask` is (H, W) bool or
    float in 0..1; returns (h, w) float32 in 0..1 with max(h, w) == size.
    """
    height, width = mask.shape
    scale = size / max(height, width)
    new_height = max(1, int(round(height * scale)))
    new_width = max(1, int(round(width * scale)))

    resample = Image.Resampling.BOX if scale <= 1.0 else Image.Resampling.BILINEAR
    picture = Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32))
    fitted = np.asarray(picture.resize((new_width, new_height), resample), dtype=np.float32)
    return np.clip(fitted, 0.0, 1.0)


def centre_by_mass(fitted: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Place a fitted digit in a size x size field with its centre of mass at `MNIST_CENTRE`.

    The shift is rounded to whole pixels and clipped so that the whole digit stays inside the
    field. `fitted` is (h, w) float32 with h, w <= size; returns (size, size) float32.
    """
    height, width = fitted.shape
    total = float(fitted.sum())
    if total > 0.0:
        centre_row = float(fitted.sum(axis=1) @ np.arange(height, dtype=np.float32)) / total
        centre_col = float(fitted.sum(axis=0) @ np.arange(width, dtype=np.float32)) / total
    else:
        centre_row, centre_col = (height - 1) / 2.0, (width - 1) / 2.0

    top = int(round(MNIST_CENTRE[0] - centre_row))
    left = int(round(MNIST_CENTRE[1] - centre_col))
    top = min(max(top, 0), size - height)
    left = min(max(left, 0), size - width)

    centred = np.zeros((size, size), dtype=np.float32)
    centred[top:top + height, left:left + width] = fitted
    return centred


def preprocess_canvas(image: np.ndarray, normalise_stroke: bool = True) -> Preprocessed:
    """Turn one canvas image into the 28x28 network input, keeping the steps for display.

    `image` is (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or float in 0..1, of any
    size (see `ink_map` for how the ink is found). `normalise_stroke` (default True) applies
    `normalise_stroke_width`. Returns a `Preprocessed` whose `input` is (28, 28) float32 in
    0..1, or None with `reason` "blank" or "speck" when there is no digit to read. The input
    array is never modified. Raises ValueError for an array of another shape.
    """
    ink = ink_map(image)
    steps = {"ink": ink}
    mask = ink >= INK_THRESHOLD

    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return Preprocessed(input=None, steps=steps, reason="blank")

    crop_rows = slice(rows[0], rows[-1] + 1)
    crop_cols = slice(cols[0], cols[-1] + 1)
    pen_width = estimate_stroke_width(mask[crop_rows, crop_cols])
    dot_area = STRAY_DOT_AREA * pen_width ** 2
    crop_rows, crop_cols = _box_without_stray_dots(mask, crop_rows, crop_cols, dot_area)

    extent = max(crop_rows.stop - crop_rows.start, crop_cols.stop - crop_cols.start)
    if extent < MIN_INK_EXTENT * min(ink.shape) or extent < MIN_EXTENT_IN_PEN_WIDTHS * pen_width:
        return Preprocessed(input=None, steps=steps, reason="speck")

    steps["crop"] = ink[crop_rows, crop_cols]
    stroke = mask[crop_rows, crop_cols]
    factor = -(-max(stroke.shape) // WORK_SIZE)
    if factor > 1:
        stroke = _max_pool(stroke, factor)
    stroke_width = estimate_stroke_width(stroke)

    if normalise_stroke:
        normalised = normalise_stroke_width(stroke, stroke_width)
        # Erosion keeps strokes of average width, but fall back if it ever leaves no ink.
        if normalised.any():
            stroke = _crop_to_ink(normalised)
    steps["stroke"] = stroke.astype(np.float32)

    fitted = fit_to_box(stroke)
    steps["fit"] = fitted

    centred = centre_by_mass(fitted)
    steps["centred"] = centred
    return Preprocessed(input=centred, steps=steps, reason=None,
                        stroke_width=stroke_width * factor)


def preprocess_batch(images: np.ndarray, normalise_stroke: bool = True
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Preprocess a batch of canvas images for the network.

    `images` is (N, H, W), (N, H, W, 3) or (N, H, W, 4), uint8 or float in 0..1. Returns
    `(inputs, has_digit)`: inputs (N, 1, 28, 28) float32 in 0..1 (all zero where there is no
    digit) and has_digit (N,) bool, False where `preprocess_canvas` returned no input.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"expected a batch of images (N, H, W) or (N, H, W, C), "
                         f"got shape {images.shape}")

    inputs = np.zeros((len(images), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    has_digit = np.zeros(len(images), dtype=bool)
    for index, image in enumerate(images):
        result = preprocess_canvas(image, normalise_stroke=normalise_stroke)
        if result.input is not None:
            inputs[index, 0] = result.input
            has_digit[index] = True
    return inputs, has_digit


def _as_channels(image: np.ndarray) -> np.ndarray:
    """Return `image` as an (H, W, C) view with C in (1, 3, 4); raise ValueError otherwise."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or image.shape[0] < 1 \
            or image.shape[1] < 1:
        raise ValueError(f"expected a canvas image of shape (H, W), (H, W, 3) or (H, W, 4), "
                         f"got shape {image.shape}")
    if not (image.dtype == np.bool_ or np.issubdtype(image.dtype, np.integer)
            or np.issubdtype(image.dtype, np.floating)):
        raise ValueError(f"expected an integer (0..255) or float (0..1) canvas image, "
                         f"got dtype {image.dtype}")
    return image


def _channel(image: np.ndarray, index: int) -> np.ndarray:
    """Return channel `index` of an (H, W, C) image as a new (H, W) float32 array in 0..1.

    Integer images are read as 0..255, as the canvas sends uint8, and other integer types are
    clipped to that range. Float and bool images are read as 0..1.
    """
    plane = image[:, :, index]
    if image.dtype == np.uint8:
        return plane.astype(np.float32) * np.float32(1.0 / 255.0)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(plane, 0, 255).astype(np.float32) * np.float32(1.0 / 255.0)
    plane = np.nan_to_num(plane.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(plane, 0.0, 1.0)


def _border(pixels: np.ndarray) -> np.ndarray:
    """Return the one-pixel frame of an (H, W, ...) array as (n, ...) rows."""
    if pixels.shape[0] <= 2 or pixels.shape[1] <= 2:
        return pixels.reshape(-1, *pixels.shape[2:])
    return np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])


def _stretch(difference: np.ndarray) -> np.ndarray:
    """Scale a difference-from-background map so that its largest value becomes 1."""
    difference = np.maximum(difference, 0.0)
    scale = max(float(difference.max()), MIN_CONTRAST)
    return (difference / np.float32(scale)).astype(np.float32)


def _window_count(mask: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Count the True pixels within `radius` of each pixel along one axis (outside is False)."""
    length = mask.shape[axis]
    sums = np.cumsum(mask, axis=axis, dtype=np.int32)
    zero_shape = list(mask.shape)
    zero_shape[axis] = 1
    sums = np.concatenate([np.zeros(zero_shape, dtype=np.int32), sums], axis=axis)

    positions = np.arange(length)
    upper = np.minimum(positions + radius + 1, length)
    lower = np.maximum(positions - radius, 0)
    return np.take(sums, upper, axis=axis) - np.take(sums, lower, axis=axis)


# An octagon of radius r is a square of radius a followed by a diamond of radius r - a. It
# reaches as far along the diagonals as along the axes when a = (sqrt(2) - 1) * r.
OCTAGON_SQUARE_SHARE = np.sqrt(2.0) - 1.0


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate a bool mask with an octagon of the given radius (a digital disk)."""
    square = int(round(OCTAGON_SQUARE_SHARE * radius))
    grown = mask
    if square > 0:
        grown = _window_count(grown, square, axis=0) > 0
        grown = _window_count(grown, square, axis=1) > 0
    for _ in range(radius - square):
        grown = _cross_step(grown, grow=True)
    return grown


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    """Erode a bool mask with an octagon of the given radius; outside the mask counts as empty."""
    square = int(round(OCTAGON_SQUARE_SHARE * radius))
    window = 2 * square + 1
    eroded = mask
    if square > 0:
        eroded = _window_count(eroded, square, axis=0) == window
        eroded = _window_count(eroded, square, axis=1) == window
    for _ in range(radius - square):
        eroded = _cross_step(eroded, grow=False)
    return eroded


def _cross_step(mask: np.ndarray, grow: bool) -> np.ndarray:
    """Dilate (`grow`) or erode a bool mask by one pixel with a 3x3 cross."""
    padded = np.pad(mask, 1)
    neighbours = (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:])
    result = mask.copy()
    for neighbour in neighbours:
        if grow:
            result |= neighbour
        else:
            result &= neighbour
    return result


def _box_without_stray_dots(mask: np.ndarray, rows: slice, cols: slice,
                            dot_area: float) -> tuple[slice, slice]:
    """Shrink the ink's bounding box (`rows`, `cols`) until no stray dot is at its edges.

    Returns the new (rows, cols) slices into `mask`; see `STRAY_DOT_AREA` for the rule.
    """
    for _ in range(8):
        box = mask[rows, cols]
        top, bottom = _pieces_kept(box.sum(axis=1), dot_area)
        left, right = _pieces_kept(box.sum(axis=0), dot_area)
        if (top, bottom, left, right) == (0, box.shape[0], 0, box.shape[1]):
            break
        rows = slice(rows.start + top, rows.start + bottom)
        cols = slice(cols.start + left, cols.start + right)
    return rows, cols


def _pieces_kept(profile: np.ndarray, dot_area: float) -> tuple[int, int]:
    """Return (start, stop) of a 1-D ink profile without the small pieces at its ends.

    A piece is a run of non-zero entries between zero entries; its area is the sum of the run.
    """
    inked = np.concatenate([[False], profile > 0, [False]])
    changes = np.flatnonzero(inked[1:] != inked[:-1])
    starts, stops = changes[0::2], changes[1::2]
    cumulative = np.concatenate([[0], np.cumsum(profile)])
    areas = cumulative[stops] - cumulative[starts]

    first, last = 0, len(starts) - 1
    largest = int(np.argmax(areas))
    while first < largest and areas[first] <= dot_area:
        first += 1
    while last > largest and areas[last] <= dot_area:
        last -= 1
    return int(starts[first]), int(stops[last])


def _max_pool(mask: np.ndarray, factor: int) -> np.ndarray:
    """Reduce a bool mask by `factor` per axis; a block is True if any of its pixels is."""
    height, width = mask.shape
    padded = np.pad(mask, ((0, -height % factor), (0, -width % factor)))
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.any(axis=(1, 3))


def _crop_to_ink(mask: np.ndarray) -> np.ndarray:
    """Crop a bool mask to the bounding box of its True pixels (unchanged when empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return mask
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
