"""Engine behaviour without MNIST: spec, layers, losses at extremes, optimizers, model files."""

import json
import zipfile

import numpy as np
import pytest

from engine.errors import MESSAGES, ModelFileError, SpecError
from engine.layers import Dropout, Linear, Sequential, Softmax
from engine.losses import accuracy, binary_cross_entropy, cross_entropy, mse
from engine.modelfile import FORMAT_VERSION, load_model, make_header, model_arrays, save_model
from engine.optim import SGD, Adam, make_optimizer
from engine.predict import to_probabilities
from engine.spec import build_model, describe, format_spec, normalise, parse_spec
from engine.tensor import Tensor

TUTORIAL = "flatten,dropout:0.2,linear:64,relu,linear:10"


# ----- spec -----

def test_spec_text_round_trip():
    layers = parse_spec("flatten,linear:128,relu,dropout:0.2,linear:10")
    assert layers[1] == {"type": "Linear", "units": 128}
    assert layers[3] == {"type": "Dropout", "p": 0.2}
    assert format_spec(layers) == "flatten,linear:128,relu,dropout:0.2,linear:10"


def test_spec_shapes_and_parameter_counts():
    infos = describe(parse_spec(TUTORIAL))
    assert [info.output_shape for info in infos] == [(784,), (784,), (64,), (64,), (10,)]
    assert [info.n_params for info in infos] == [0, 0, 784 * 64 + 64, 0, 64 * 10 + 10]


@pytest.mark.parametrize("spec, key, index", [
    ("flatten,linear:0,linear:10", "spec.bad_units", 2),
    ("flatten,convolution:3,linear:10", "spec.unknown_layer", 2),
    ("linear:10", "spec.needs_flat_input", 1),
    ("flatten,dropout:1.0,linear:10", "spec.bad_dropout", 2),
    ("flatten,relu:3,linear:10", "spec.unexpected_setting", 2),
    ("flatten,linear:abc,linear:10", "spec.bad_token", 2),
    ("flatten,,linear:10", "spec.bad_token", 2),
])
def test_spec_error_names_layer(spec, key, index):
    with pytest.raises(SpecError) as info:
        describe(parse_spec(spec))
    assert info.value.key == key
    assert info.value.params["index"] == index
    assert f"Layer {index}" in str(info.value)


def test_spec_wrong_output_size():
    with pytest.raises(SpecError) as info:
        describe(parse_spec("flatten,linear:12"))
    assert info.value.key == "spec.wrong_output"
    assert "12" in str(info.value)


def test_spec_missing_setting_in_dict_form():
    with pytest.raises(SpecError) as info:
        describe([{"type": "Flatten"}, {"type": "Linear"}])
    assert info.value.key == "spec.missing_setting"


def test_every_error_key_formats():
    for key, template in MESSAGES.items():
        assert template.strip(), key


def test_linear_init_follows_activation():
    model = build_model(parse_spec("flatten,linear:256,relu,linear:256,tanh,linear:10"),
                        np.random.default_rng(0))
    assert model[1].init == "he"
    assert model[3].init == "xavier"
    assert model[5].init == "xavier"
    assert abs(model[1].weight.data.std() - np.sqrt(2 / 784)) < 0.002


def test_build_model_is_seeded():
    a = build_model(parse_spec(TUTORIAL), np.random.default_rng(3))
    b = build_model(parse_spec(TUTORIAL), np.random.default_rng(3))
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data)


def test_summary_and_repr():
    model = build_model(parse_spec(TUTORIAL), np.random.default_rng(0))
    assert "Linear(in_features=784, out_features=64)" in repr(model)
    summary = model.summary()
    assert "50,890" in summary
    assert "1x28x28" in summary


# ----- layers and losses -----

def test_dropout_zeroes_about_p_and_scales():
    layer = Dropout(0.3, rng=np.random.default_rng(0))
    x = np.ones((200, 500), dtype=np.float32)
    out = layer(x).data
    dropped = np.mean(out == 0)
    assert abs(dropped - 0.3) < 0.01
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)

    layer.eval()
    np.testing.assert_array_equal(layer(x).data, x)


def test_softmax_and_cross_entropy_finite_at_extremes():
    logits = np.array([[1000.0, -1000.0] + [0.0] * 8, [-1000.0] * 10], dtype=np.float32)
    probs = Softmax()(logits).data
    assert np.all(np.isfinite(probs))
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)

    out = Tensor(logits, requires_grad=True)
    loss = cross_entropy(out, np.array([1, 3]))
    loss.backward()
    assert np.isfinite(loss.data)
    assert np.all(np.isfinite(out.grad))
    assert float(loss.data) == pytest.approx(2000 / 2 + np.log(10) / 2, rel=1e-5)


def test_bce_finite_at_zero_and_one():
    probs = np.array([[0.0, 1.0] + [0.5] * 8, [1.0] * 10], dtype=np.float32)
    out = Tensor(probs, requires_grad=True)
    loss = binary_cross_entropy(out, np.array([0, 1]))
    loss.backward()
    assert np.isfinite(loss.data)
    assert np.all(np.isfinite(out.grad))


def test_mse_is_mean_over_all_elements():
    outputs = np.zeros((2, 10), dtype=np.float32)
    assert float(mse(Tensor(outputs), np.array([0, 1])).data) == pytest.approx(2 / 20)


def test_accuracy_is_argmax_for_sigmoid_outputs():
    outputs = np.full((3, 10), 0.1, dtype=np.float32)
    outputs[0, 4] = 0.9
    outputs[1, 2] = 0.7
    outputs[2, 8] = 0.6
    assert accuracy(outputs, np.array([4, 2, 1])) == pytest.approx(2 / 3)


def test_probabilities_keep_the_argmax():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(5, 10)).astype(np.float32)
    for kind, loss in (("raw", "ce"), ("raw", "mse"), ("sigmoid", "bce")):
        outputs = np.abs(raw) if kind == "sigmoid" else raw
        probs = to_probabilities(outputs, kind, loss)
        np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
        np.testing.assert_array_equal(probs.argmax(axis=1), outputs.argmax(axis=1))


# ----- optimizers -----

def test_sgd_step_matches_formula():
    w = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    w.grad = np.array([0.5, -1.0], dtype=np.float32)
    SGD([w], lr=0.1).step()
    np.testing.assert_allclose(w.data, [0.95, 2.1], rtol=1e-6)


def test_momentum_accumulates_velocity():
    w = Tensor(np.zeros(1, dtype=np.float32), requires_grad=True)
    optimizer = SGD([w], lr=1.0, momentum=0.5)
    for _ in range(2):
        w.grad = np.ones(1, dtype=np.float32)
        optimizer.step()
    np.testing.assert_allclose(w.data, [-(1 + 1.5)])


def test_adam_first_step_is_lr_sized():
    w = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    w.grad = np.array([0.001, -5.0, 100.0], dtype=np.float32)
    Adam([w], lr=0.01).step()
    np.testing.assert_allclose(w.data, [-0.01, 0.01, -0.01], rtol=1e-3)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf")])
def test_optimizer_rejects_bad_learning_rate(lr):
    with pytest.raises(SpecError) as info:
        make_optimizer("sgd", [], lr)
    assert info.value.key == "optim.bad_lr"


def test_unknown_optimizer():
    with pytest.raises(SpecError) as info:
        make_optimizer("rmsprop", [], 0.1)
    assert "sgd, momentum, adam" in str(info.value)


# ----- model files -----

@pytest.fixture
def saved_model(tmp_path):
    layers = parse_spec(TUTORIAL)
    model = build_model(layers, np.random.default_rng(0))
    path = tmp_path / "net.npz"
    save_model(path, model, make_header(layers, "ce", {"name": "sgd", "lr": 0.01},
                                        dataset={"name": "MNIST"}, metrics={"test_accuracy": 0.9}))
    return path, model


def test_model_file_round_trip(saved_model):
    path, model = saved_model
    loaded, header = load_model(path)
    assert header["format_version"] == FORMAT_VERSION
    assert header["metrics"]["test_accuracy"] == 0.9
    assert header["created"].endswith("+00:00")
    x = np.random.default_rng(1).random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_model_file_leaves_no_temporary_files(saved_model):
    path, _ = saved_model
    assert [p.name for p in path.parent.iterdir()] == ["net.npz"]


def test_model_file_no_overwrite(saved_model):
    path, model = saved_model
    with pytest.raises(ModelFileError) as info:
        save_model(path, model, make_header([], "ce"), overwrite=False)
    assert info.value.key == "model.exists"


def write_arrays(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_model_file_newer_version(saved_model, tmp_path):
    path, model = saved_model
    _, header = load_model(path)
    header["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.npz"
    write_arrays(newer, model_arrays(model, header))
    with pytest.raises(ModelFileError) as info:
        load_model(newer)
    assert info.value.key == "model.newer_version"


def test_model_file_shape_mismatch(saved_model, tmp_path):
    path, model = saved_model
    _, header = load_model(path)
    header["layers"][2]["units"] = 32
    bad = tmp_path / "bad.npz"
    write_arrays(bad, model_arrays(model, header))
    with pytest.raises(ModelFileError) as info:
        load_model(bad)
    assert info.value.key == "model.shape_mismatch"
    assert "784x64" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken"])
def test_model_file_not_a_model(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert info.value.key == "model.not_a_model"


def test_model_file_without_header(tmp_path):
    path = tmp_path / "plain.npz"
    write_arrays(path, {"x": np.zeros(3)})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert "no header" in str(info.value)


def test_model_file_with_pickled_object_is_rejected(tmp_path, saved_model):
    path, model = saved_model
    _, header = load_model(path)
    arrays = model_arrays(model, header)
    arrays["layers.2.weight"] = np.array([{"evil": 1}], dtype=object)
    bad = tmp_path / "pickled.npz"
    with open(bad, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ModelFileError):
        load_model(bad)


def test_model_file_header_not_json(tmp_path):
    path = tmp_path / "h.npz"
    write_arrays(path, {"header": np.frombuffer(b"{not json", dtype=np.uint8)})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert "JSON" in str(info.value)


def test_model_file_is_a_zip_of_npy(saved_model):
    path, _ = saved_model
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    assert "header.npy" in names
    header = json.loads(np.load(path, allow_pickle=False)["header"].tobytes())
    assert normalise(header["layers"]) == header["layers"]


def test_linear_layer_shapes():
    layer = Linear(784, 10, rng=np.random.default_rng(0))
    out = Sequential(layer)(np.zeros((7, 784), dtype=np.float32))
    assert out.shape == (7, 10)
    assert out.data.dtype == np.float32


def test_model_file_readable_by_others(saved_model):
    path, _ = saved_model
    assert path.stat().st_mode & 0o777 == 0o644


def test_empty_spec_text_means_no_layers():
    with pytest.raises(SpecError) as info:
        describe(parse_spec("   "))
    assert info.value.key == "spec.empty"


def test_model_file_not_zip_reason(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("just some text\n")
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert "not an .npz (zip) file" in str(info.value)
    assert "pickle" not in str(info.value)
