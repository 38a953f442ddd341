"""Read a canvas drawing with every available network, for the draw page.

The page passes the PNG bytes the canvas sent to ``read_drawing``. It decodes them, preprocesses
the image into the 28x28 network input (``engine.preprocess``) and runs that input through each
network. This module does not import Streamlit, so tests and ``ui/draw_benchmark.py`` use it
directly.
"""

import binascii
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import DigitLabError
from engine.predict import probabilities
from engine.preprocess import Preprocessed, preprocess_canvas

log = logging.getLogger(__name__)

NO_DIGIT = "\u2014"
"""Text shown in place of a digit when there is nothing to read (an em dash)."""

PREVIEW_SIZE = 196
"""Side in pixels of the enlarged 28x28 network input on the page (7 pixels per input pixel)."""

STEP_PREVIEW_SIZE = 140
"""Longer side in pixels of each intermediate preprocessing step on the page."""

NON_FINITE = "non-finite outputs"
"""``Prediction.error`` of a network whose outputs contain NaN or infinity (a diverged run)."""

# The preprocessing steps the page shows, in order (keys of ``Preprocessed.steps``).
SHOWN_STEPS = ("crop", "stroke", "fit", "centred")


class UnreadableDrawing(Exception):
    """The canvas sent an image that cannot be decoded or has an unexpected shape."""


@dataclass
class Prediction:
    """What one network reads in the drawing.

    ``probabilities`` is (10,) float32 summing to 1, or None when the network failed. ``error``
    then contains a ``DigitLabError`` (translated by the page), ``NON_FINITE``, or the English text
    of another exception.
    """

    run_id: str
    name: str
    loss: str | None
    probabilities: np.ndarray | None = None
    error: object = None

    @property
    def digit(self):
        """The most probable digit (int), or None without probabilities."""
        if self.probabilities is None:
            return None
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self):
        """The probability of the most probable digit (float in 0..1), or None."""
        if self.probabilities is None:
            return None
        return float(self.probabilities.max())


@dataclass
class DrawingReading:
    """Result of ``read_drawing``.

    ``preprocessed.input`` is None when there is no digit to read (``preprocessed.reason`` is
    "blank" or "speck"), and ``predictions`` is then empty. ``seconds`` is the time from the PNG
    bytes to the last network's probabilities.
    """

    preprocessed: Preprocessed
    predictions: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def has_digit(self):
        return self.preprocessed.input is not None


def drawing_digest(png_bytes):
    """Return a short hash of the canvas PNG, to tell a new drawing from the one already read."""
    return hashlib.blake2b(png_bytes, digest_size=16).hexdigest()


def decode_png(png_bytes):
    """Decode the canvas PNG into an (H, W, C) uint8 array; raise ``UnreadableDrawing`` if it fails."""
    try:
        with Image.open(io.BytesIO(png_bytes)) as picture:
            picture.load()
            if picture.mode not in ("L", "RGB", "RGBA"):
                picture = picture.convert("RGBA")
            image = np.asarray(picture)
    except (UnidentifiedImageError, OSError, ValueError, binascii.Error, Image.DecompressionBombError) as err:
        raise UnreadableDrawing(f"cannot decode the canvas image: {err}") from err

    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise UnreadableDrawing(f"unexpected canvas image shape {image.shape}")
    return image


def predict_one(run, x):
    """Return the ``Prediction`` of ``run`` for one input ``x`` of shape (1, 1, 28, 28).

    A network that raises or outputs NaN (a diverged run) gets a Prediction with ``error`` set
    instead of probabilities, so one bad network does not hide the others.
    """
    prediction = Prediction(run_id=run.id, name=run.name, loss=run.loss)
    try:
        row = probabilities(run.model, x, run.loss)[0]
    except DigitLabError as err:
        log.warning("network %s failed on a drawing: %s", run.name, err)
        prediction.error = err
        return prediction
    except (ValueError, TypeError, AttributeError, IndexError, FloatingPointError) as err:
        log.warning("network %s failed on a drawing: %r", run.name, err)
        prediction.error = str(err)
        return prediction

    if row.shape != (10,):
        log.warning("network %s gave %s outputs instead of 10", run.name, row.shape)
        prediction.error = f"expected 10 outputs, got shape {row.shape}"
        return prediction
    if not np.all(np.isfinite(row)):
        log.warning("network %s gave non-finite probabilities %s", run.name, row)
        prediction.error = NON_FINITE
        return prediction

    prediction.probabilities = row.astype(np.float32)
    return prediction


def read_drawing(png_bytes, runs):
    """Decode, preprocess and read one canvas drawing with every network in ``runs``.

    ``png_bytes`` is the PNG the canvas sent (any size, transparent or opaque background).
    ``runs`` is a list of ``ui.runs.Run``. Returns a ``DrawingReading`` whose predictions follow
    the order of ``runs``. Raises ``UnreadableDrawing`` for bytes that are not a usable image.
    """
    start = time.perf_counter()

    image = decode_png(png_bytes)
    try:
        preprocessed = preprocess_canvas(image)
    except ValueError as err:
        raise UnreadableDrawing(str(err)) from err

    predictions = []
    if preprocessed.input is not None:
        x = preprocessed.input.reshape(1, 1, 28, 28)
        predictions = [predict_one(run, x) for run in runs]

    seconds = time.perf_counter() - start
    log.debug("read drawing %dx%d with %d networks in %.1f ms (%s)", image.shape[1], image.shape[0],
              len(predictions), seconds * 1000, preprocessed.reason or "digit")
    return DrawingReading(preprocessed=preprocessed, predictions=predictions, seconds=seconds)


def to_picture(ink, size):
    """Return a 0..1 ink map as a uint8 grey image (ink white on black) whose longer side is ``size``.

    Enlarging uses nearest-neighbour sampling, so every input pixel stays a visible square.
    """
    pixels = (np.clip(np.asarray(ink, dtype=np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    height, width = pixels.shape
    scale = size / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(pixels).resize(new_size, Image.Resampling.NEAREST))
