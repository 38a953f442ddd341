"""The bundled 5,000-image MNIST subset (data/mnist-5k.npz)."""

import urllib.request
from pathlib import Path

import numpy as np
import pytest

from engine import data

MNIST_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Fail the test on any network request and start with an empty process cache."""

    def no_network(url, *args, **kwargs):
        raise AssertionError(f"the bundled subset must load offline, but {url} was requested")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data.clear_cache()
    yield
    data.clear_cache()


def test_bundled_loads_offline():
    source = data.resolve_dataset("bundled")
    assert source.kind == "bundled"
    assert source.reason_key == "data.source.bundled"
    assert source.dataset.name == "MNIST-5k"
    assert source.dataset.x_train.shape == (4000, 28, 28)
    assert source.dataset.x_test.shape == (1000, 28, 28)
    assert source.dataset.x_train.dtype == np.uint8


def test_bundled_split_stratified():
    dataset = data.load_bundled()
    assert np.bincount(dataset.y_train).tolist() == [400] * 10
    assert np.bincount(dataset.y_test).tolist() == [100] * 10
    assert dataset.y_train[:20].tolist() == list(range(10)) * 2


def test_bundled_hash_recorded():
    assert data.arrays_sha256(data.load_bundled()) == data.BUNDLED_SHA256


def test_bundled_images_are_mnist_training_images():
    bundled = data.load_bundled()
    mnist = data.load_idx_folder(MNIST_DIR)
    for digit in range(10):
        first_500 = np.flatnonzero(mnist.y_train == digit)[:500]
        assert np.array_equal(bundled.x_train[bundled.y_train == digit],
                              mnist.x_train[first_500[:400]]), f"training images of {digit}"
        assert np.array_equal(bundled.x_test[bundled.y_test == digit],
                              mnist.x_train[first_500[400:]]), f"test images of {digit}"


def test_bundled_same_arrays_twice():
    first = data.load_bundled()
    second = data.resolve_dataset("bundled").dataset
    assert first is second
    assert not first.x_train.flags.writeable
    with pytest.raises(ValueError):
        first.y_train[0] = 3


def test_bundled_trains_to_90_percent():
    from engine.spec import build_model, parse_spec
    from engine.train import TrainConfig, fit, make_generators

    config = TrainConfig(layers=parse_spec("flatten,linear:128,relu,linear:10"), loss="ce",
                         optimizer="adam", lr=1e-3, batch_size=64, epochs=8, seed=0)
    model = build_model(config.layers, make_generators(config.seed)[0])
    result = fit(model, config, data.load_bundled())
    assert result.metrics["test_accuracy"] >= 0.90
