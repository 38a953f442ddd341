"""Tests for engine.preprocess: from a canvas image to the 28x28 MNIST-style network input."""

import gzip
import importlib.util
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.modelfile import load_model
from engine.predict import probabilities
from engine.preprocess import (
    FIT_SIZE,
    INPUT_SIZE,
    MNIST_CENTRE,
    Preprocessed,
    estimate_stroke_width,
    ink_map,
    preprocess_batch,
    preprocess_canvas,
)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Digits as polylines in a unit box (x right, y down), each a list of strokes.
ZERO = [[(0.5 + 0.4 * np.cos(a), 0.5 + 0.5 * np.sin(a)) for a in np.linspace(0, 2 * np.pi, 40)]]
ONE = [[(0.3, 0.15), (0.55, 0.0), (0.55, 1.0)]]
SEVEN = [[(0.0, 0.0), (1.0, 0.0), (0.4, 1.0)]]
FOUR = [[(0.2, 0.0), (0.1, 0.6), (0.95, 0.6)], [(0.7, 0.05), (0.7, 1.0)]]


def draw_ink(strokes, canvas=(280, 280), box=(40, 40, 200, 200), pen=20):
    """Draw strokes with round caps and joints; return the ink as (H, W) uint8, 255 = full ink.

    `canvas` is (width, height) and `box` is (left, top, width, height) of the unit box on it.
    """
    left, top, width, height = box
    picture = Image.new("L", canvas, 0)
    draw = ImageDraw.Draw(picture)
    radius = pen / 2
    for stroke in strokes:
        points = [(left + x * width, top + y * height) for x, y in stroke]
        draw.line(points, fill=255, width=pen, joint="curve")
        for x, y in points:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return np.asarray(picture)


def transparent(ink):
    """Canvas default: black ink, RGB all zero, the ink only in alpha."""
    rgba = np.zeros(ink.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = ink
    return rgba


def opaque(ink, ink_colour, background):
    """Opaque RGBA canvas: `ink_colour` painted over `background` with the ink as coverage."""
    coverage = ink.astype(np.float32)[..., None] / 255.0
    rgb = coverage * np.array(ink_colour) + (1.0 - coverage) * np.array(background)
    rgba = np.full(ink.shape + (4,), 255, dtype=np.uint8)
    rgba[..., :3] = np.round(rgb).astype(np.uint8)
    return rgba


def read_only(array):
    array = np.array(array)
    array.flags.writeable = False
    return array


def input_of(image):
    result = preprocess_canvas(image)
    assert result.reason is None
    assert result.input is not None
    return result.input


def ink_columns(x, level=0.3):
    return int((x.max(axis=0) > level).sum())


def ink_rows(x, level=0.3):
    return int((x.max(axis=1) > level).sum())


def test_transparent_and_white_on_black_match():
    ink = draw_ink(SEVEN)

    from_alpha = input_of(read_only(transparent(ink)))
    from_white_on_black = input_of(read_only(opaque(ink, (255, 255, 255), (0, 0, 0))))

    np.testing.assert_allclose(from_alpha, from_white_on_black, atol=1e-6)


def test_dark_on_light_matches_transparent():
    ink = draw_ink(FOUR)

    from_alpha = input_of(transparent(ink))
    from_black_on_white = input_of(opaque(ink, (0, 0, 0), (255, 255, 255)))
    from_blue_on_cream = input_of(opaque(ink, (20, 40, 200), (250, 245, 230)))

    np.testing.assert_allclose(from_alpha, from_black_on_white, atol=1e-6)
    assert np.abs(from_alpha - from_blue_on_cream).max() < 0.05


def test_grey_and_rgb_images_match_rgba():
    ink = draw_ink(FOUR)
    rgba = opaque(ink, (0, 0, 0), (255, 255, 255))

    from_rgba = input_of(rgba)
    from_rgb = input_of(rgba[..., :3])
    from_grey = input_of(rgba[..., 0])
    from_float = input_of(rgba[..., 0].astype(np.float32) / 255.0)

    np.testing.assert_allclose(from_rgb, from_rgba, atol=1e-6)
    np.testing.assert_allclose(from_grey, from_rgba, atol=1e-6)
    np.testing.assert_allclose(from_float, from_rgba, atol=1e-6)


def test_corner_and_centre_give_same_input():
    in_corner = draw_ink(SEVEN, box=(8, 8, 90, 120), pen=12)
    in_centre = draw_ink(SEVEN, box=(95, 80, 90, 120), pen=12)

    np.testing.assert_allclose(input_of(transparent(in_corner)), input_of(transparent(in_centre)),
                               atol=1e-6)


def test_tiny_and_huge_drawings_same_size():
    tiny = input_of(transparent(draw_ink(FOUR, box=(120, 120, 30, 36), pen=5)))
    huge = input_of(transparent(draw_ink(FOUR, box=(12, 8, 230, 260), pen=30)))

    assert tiny.shape == (INPUT_SIZE, INPUT_SIZE)
    assert huge.shape == (INPUT_SIZE, INPUT_SIZE)
    assert ink_rows(tiny) == ink_rows(huge)
    assert np.abs(tiny - huge).mean() < 0.06


def test_result_is_mnist_shaped():
    result = preprocess_canvas(transparent(draw_ink(SEVEN)))
    x = result.input

    assert isinstance(result, Preprocessed)
    assert x.dtype == np.float32
    assert x.shape == (INPUT_SIZE, INPUT_SIZE)
    assert x.min() >= 0.0
    assert x.max() == pytest.approx(1.0)
    assert max(result.steps["fit"].shape) == FIT_SIZE
    assert set(result.steps) == {"ink", "crop", "stroke", "fit", "centred"}
    assert result.steps["ink"].shape == (280, 280)

    rows, cols = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE]
    assert abs((x * rows).sum() / x.sum() - MNIST_CENTRE[0]) <= 0.5
    assert abs((x * cols).sum() / x.sum() - MNIST_CENTRE[1]) <= 0.5


def test_one_stays_thin_on_wide_canvas():
    ink = draw_ink(ONE, canvas=(600, 400), box=(250, 60, 70, 280), pen=20)

    x = input_of(transparent(ink))

    assert ink_rows(x) >= FIT_SIZE - 1
    assert ink_columns(x) <= 8


def test_zero_stays_round_on_wide_canvas():
    ink = draw_ink(ZERO, canvas=(600, 400), box=(200, 60, 220, 280), pen=20)

    x = input_of(transparent(ink))

    assert ink_rows(x) >= FIT_SIZE - 1
    assert ink_columns(x) >= 14
    assert x[14, 14] < 0.2, "the hole of the 0 must stay open"


def test_stray_dot_is_left_out():
    ink = draw_ink(SEVEN, box=(40, 40, 160, 160), pen=20)
    picture = Image.fromarray(ink)
    ImageDraw.Draw(picture).ellipse((250, 250, 270, 270), fill=255)
    with_dot = np.asarray(picture)

    np.testing.assert_allclose(input_of(transparent(with_dot)), input_of(transparent(ink)),
                               atol=1e-6)


def test_separate_stroke_is_kept():
    detached_base = [[(0.5, 0.0), (0.5, 0.8)], [(0.2, 1.0), (0.8, 1.0)]]
    ink = draw_ink(detached_base, box=(60, 40, 160, 200), pen=16)

    x = input_of(transparent(ink))

    assert ink_rows(x) >= FIT_SIZE - 1
    assert ink_columns(x) >= 8, "the base must stay in the bounding box"


def test_three_pixel_stroke_survives():
    ink = draw_ink(SEVEN, box=(40, 30, 200, 220), pen=3)

    x = input_of(transparent(ink))
    without_normalising = preprocess_canvas(transparent(ink), normalise_stroke=False).input

    assert x.max() == pytest.approx(1.0)
    assert (x > 0.5).sum() >= 30
    assert without_normalising.max() > 0.2, "area averaging must keep a thin stroke visible"


def test_stroke_width_estimate():
    bar = np.zeros((100, 300), dtype=bool)
    bar[40:52, 20:280] = True

    assert estimate_stroke_width(bar) == pytest.approx(12, rel=0.1)
    assert estimate_stroke_width(np.zeros((5, 5), dtype=bool)) == 0.0


@pytest.mark.parametrize("end", [(260, 30), (260, 260), (30, 260), (200, 260)],
                         ids=["horizontal", "diagonal", "vertical", "steep"])
def test_stroke_width_estimate_ignores_direction(end):
    picture = Image.new("L", (300, 300), 0)
    ImageDraw.Draw(picture).line([(30, 30), end], fill=255, width=12)
    stroke = np.asarray(picture) >= 128

    assert estimate_stroke_width(stroke) == pytest.approx(12, rel=0.1)


def test_thin_and_thick_pens_give_similar_inputs():
    thin = input_of(transparent(draw_ink(FOUR, pen=4)))
    medium = input_of(transparent(draw_ink(FOUR, pen=20)))
    thick = input_of(transparent(draw_ink(FOUR, pen=40)))

    assert np.abs(thin - medium).mean() < 0.03
    assert np.abs(thick - medium).mean() < 0.03


@pytest.mark.parametrize("canvas", [
    np.zeros((280, 280, 4), dtype=np.uint8),
    np.full((400, 600, 4), 255, dtype=np.uint8),
    opaque(np.zeros((280, 280), dtype=np.uint8), (0, 0, 0), (0, 0, 0)),
    np.zeros((280, 280), dtype=np.uint8),
], ids=["transparent", "white", "black", "grey"])
def test_blank_canvas_gives_no_input(canvas):
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        result = preprocess_canvas(read_only(canvas))

    assert result.input is None
    assert result.reason == "blank"


@pytest.mark.parametrize("height, width", [(280, 280), (400, 600), (800, 800)])
def test_speck_gives_no_input(height, width):
    canvas = np.zeros((height, width, 4), dtype=np.uint8)
    canvas[100, 100:103, 3] = 255

    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        result = preprocess_canvas(read_only(canvas))

    assert result.input is None
    assert result.reason == "speck"


def test_drawing_raises_no_warning():
    canvas = read_only(opaque(draw_ink(ZERO), (0, 0, 0), (255, 255, 255)))

    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        x = input_of(canvas)

    assert np.isfinite(x).all()


def test_input_array_is_unchanged():
    canvas = transparent(draw_ink(FOUR))
    canvas.flags.writeable = False
    before = canvas.copy()

    preprocess_canvas(canvas)
    preprocess_batch(canvas[None])

    np.testing.assert_array_equal(canvas, before)


def test_hidpi_canvas_matches_standard():
    standard = input_of(transparent(draw_ink(SEVEN, box=(40, 40, 200, 200), pen=20)))
    hidpi = input_of(transparent(draw_ink(SEVEN, canvas=(800, 800), box=(114, 114, 572, 572),
                                          pen=57)))

    assert np.abs(standard - hidpi).mean() < 0.03


def test_ink_map_finds_ink_in_every_variant():
    ink = draw_ink(SEVEN)

    for image in (transparent(ink), opaque(ink, (0, 0, 0), (255, 255, 255)),
                  opaque(ink, (255, 255, 255), (0, 0, 0))):
        np.testing.assert_allclose(ink_map(image), ink / 255.0, atol=1e-6)


def test_batch_marks_blank_images():
    images = np.stack([transparent(draw_ink(ONE)), np.zeros((280, 280, 4), dtype=np.uint8)])

    inputs, has_digit = preprocess_batch(images)

    assert inputs.shape == (2, 1, INPUT_SIZE, INPUT_SIZE)
    assert inputs.dtype == np.float32
    assert has_digit.tolist() == [True, False]
    np.testing.assert_allclose(inputs[0, 0], input_of(images[0]))
    assert not inputs[1].any()


@pytest.mark.parametrize("shape", [(280,), (280, 280, 2), (0, 280, 4), (2, 280, 280, 4, 1)])
def test_wrong_shape_raises(shape):
    with pytest.raises(ValueError, match="expected"):
        preprocess_canvas(np.zeros(shape, dtype=np.uint8))


def test_takes_a_few_milliseconds():
    canvas = transparent(draw_ink(ZERO))
    preprocess_canvas(canvas)

    start = time.perf_counter()
    for _ in range(20):
        preprocess_canvas(canvas)
    per_image = (time.perf_counter() - start) / 20

    assert per_image < 0.02, f"{per_image * 1000:.1f} ms per 280x280 image"


def test_mnist_digits_survive_round_trip(mnist_dir):
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as file:
        digits = np.frombuffer(file.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)[:50]

    similarities = []
    for digit in digits:
        canvas = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))
        x = input_of(canvas)
        original = digit.astype(np.float32) / 255.0
        similarities.append(np.corrcoef(x.ravel(), original.ravel())[0, 1])

    assert np.median(similarities) > 0.8


def load_renderer():
    """Import scripts/render_drawings.py, which is a script and not part of a package."""
    spec = importlib.util.spec_from_file_location("render_drawings",
                                                  REPO_ROOT / "scripts" / "render_drawings.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_network_reads_drawings():
    drawings = load_renderer().render_set(count=300, seed=5)
    model, header = load_model(REPO_ROOT / "models" / "mlp-ce.npz")

    inputs, has_digit = preprocess_batch(drawings["images"])
    predicted = probabilities(model, inputs, header["loss"]).argmax(axis=1)
    correct = (predicted == drawings["labels"]) & has_digit

    assert has_digit.all()
    assert correct.mean() >= 0.95, f"read {correct.mean():.1%} of 300 drawings"


@pytest.mark.parametrize("pen", [12, 18, 30])
def test_single_pen_dot_gives_no_prediction(pen):
    image = np.zeros((280, 280, 4), dtype=np.uint8)
    rows, cols = np.ogrid[:280, :280]
    image[(rows - 140) ** 2 + (cols - 140) ** 2 <= (pen / 2) ** 2] = (0, 0, 0, 255)
    result = preprocess_canvas(image)
    assert result.input is None
    assert result.reason == "speck"
