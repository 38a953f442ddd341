"""ui.draw_predict without Streamlit: decoding the canvas PNG, reading it with networks, previews."""

import io
import time

import numpy as np
import pytest
from PIL import Image

from engine.spec import build_model, parse_spec
from tests.test_draw_page import DIGIT_STROKES, render_png
from ui.draw_predict import (
    NON_FINITE,
    PREVIEW_SIZE,
    UnreadableDrawing,
    decode_png,
    drawing_digest,
    read_drawing,
    to_picture,
)
from ui.runs import Run


def untrained_run(name, loss="ce", seed=0, layers="flatten,linear:64,relu,linear:10"):
    model = build_model(parse_spec(layers), np.random.default_rng(seed))
    return Run(name=name, model=model, header={"loss": loss, "layers": layers}, status="finished")


def png_of(array, mode):
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_reading_has_one_prediction_per_network():
    runs = [untrained_run("a", "ce", 0), untrained_run("b", "mse", 1), untrained_run("c", "bce", 2)]

    reading = read_drawing(render_png(DIGIT_STROKES[7]), runs)

    assert reading.has_digit
    assert reading.preprocessed.input.shape == (28, 28)
    assert [p.name for p in reading.predictions] == ["a", "b", "c"]
    assert [p.loss for p in reading.predictions] == ["ce", "mse", "bce"]
    for prediction in reading.predictions:
        assert prediction.error is None
        assert prediction.probabilities.shape == (10,)
        assert prediction.probabilities.dtype == np.float32
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert prediction.digit == int(np.argmax(prediction.probabilities))
        assert prediction.confidence == pytest.approx(float(prediction.probabilities.max()))


def test_blank_drawing_has_no_predictions():
    reading = read_drawing(render_png([]), [untrained_run("a")])

    assert not reading.has_digit
    assert reading.preprocessed.reason == "blank"
    assert reading.predictions == []


def test_speck_has_no_predictions():
    reading = read_drawing(render_png([[(140, 140), (141, 141)]], pen=3), [untrained_run("a")])

    assert not reading.has_digit
    assert reading.preprocessed.reason == "speck"
    assert reading.predictions == []


def test_transparent_canvas_same_input_as_opaque():
    opaque = read_drawing(render_png(DIGIT_STROKES[4]), [])
    transparent = read_drawing(render_png(DIGIT_STROKES[4], transparent=True), [])

    np.testing.assert_allclose(opaque.preprocessed.input, transparent.preprocessed.input, atol=1e-6)


def test_reading_without_networks_still_preprocesses():
    reading = read_drawing(render_png(DIGIT_STROKES[1]), [])

    assert reading.has_digit
    assert reading.predictions == []


def test_nan_network_reported_others_kept():
    broken = untrained_run("broken")
    for parameter in broken.model.parameters():
        parameter.data[...] = np.nan
    healthy = untrained_run("healthy", seed=3)

    reading = read_drawing(render_png(DIGIT_STROKES[1]), [broken, healthy])

    assert reading.predictions[0].error == NON_FINITE
    assert reading.predictions[0].probabilities is None
    assert reading.predictions[0].digit is None
    assert reading.predictions[0].confidence is None
    assert reading.predictions[1].error is None
    assert reading.predictions[1].digit is not None


def test_network_with_wrong_input_size_reported():
    wrong = untrained_run("wrong", layers="flatten,linear:10")
    wrong.model.layers[1].weight.data = np.zeros((100, 10), dtype=np.float32)

    reading = read_drawing(render_png(DIGIT_STROKES[1]), [wrong])

    assert reading.predictions[0].probabilities is None
    assert isinstance(reading.predictions[0].error, str)
    assert reading.predictions[0].error != NON_FINITE


@pytest.mark.parametrize("data", [b"", b"not a png", b"\x89PNG\r\n\x1a\n truncated"])
def test_undecodable_bytes_raise(data):
    with pytest.raises(UnreadableDrawing):
        read_drawing(data, [])


@pytest.mark.parametrize("mode, shape", [("L", (280, 280)), ("RGB", (280, 280, 3)), ("RGBA", (280, 280, 4))])
def test_decode_keeps_common_modes(mode, shape):
    image = decode_png(png_of(np.zeros(shape, dtype=np.uint8), mode))

    assert image.shape == shape
    assert image.dtype == np.uint8


def test_decode_palette_png_as_rgba():
    picture = Image.new("P", (50, 40))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")

    assert decode_png(buffer.getvalue()).shape == (40, 50, 4)


def test_grey_png_read():
    grey = np.zeros((280, 280), dtype=np.uint8)
    grey[40:240, 130:150] = 255

    reading = read_drawing(png_of(grey, "L"), [])

    assert reading.has_digit


def test_digest_tells_drawings_apart():
    one, seven = render_png(DIGIT_STROKES[1]), render_png(DIGIT_STROKES[7])

    assert drawing_digest(one) == drawing_digest(render_png(DIGIT_STROKES[1]))
    assert drawing_digest(one) != drawing_digest(seven)


def test_preview_is_nearest_neighbour():
    network_input = np.zeros((28, 28), dtype=np.float32)
    network_input[3, 5] = 1.0
    network_input[20, 10] = 0.5

    picture = to_picture(network_input, PREVIEW_SIZE)

    scale = PREVIEW_SIZE // 28
    assert picture.shape == (PREVIEW_SIZE, PREVIEW_SIZE)
    assert picture.dtype == np.uint8
    assert (picture[3 * scale:4 * scale, 5 * scale:6 * scale] == 255).all()
    assert (picture[20 * scale:21 * scale, 10 * scale:11 * scale] == 128).all()
    assert picture.sum() == 255 * scale * scale + 128 * scale * scale


def test_preview_keeps_aspect_ratio():
    picture = to_picture(np.ones((30, 60), dtype=np.float32), 140)

    assert picture.shape == (70, 140)


def test_reading_time_is_small():
    # The page's target is under 20 ms from PNG bytes to every network's probabilities; CI
    # machines vary, so this only guards against a large slowdown.
    runs = [untrained_run(name, seed=seed, layers="flatten,linear:128,relu,linear:10")
            for seed, name in enumerate(["a", "b", "c", "d"])]
    png = render_png(DIGIT_STROKES[3])
    read_drawing(png, runs)

    times = []
    for _ in range(5):
        start = time.perf_counter()
        read_drawing(png, runs)
        times.append(time.perf_counter() - start)

    assert sorted(times)[len(times) // 2] < 0.1
