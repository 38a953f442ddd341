"""Training on the real MNIST files: accuracy targets, determinism, stop and divergence."""

import numpy as np
import pytest

from engine.data import load_path
from engine.spec import parse_spec
from engine.train import TrainConfig, build_for_config, fit


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_path(mnist_dir)


def train(dataset, spec, **settings):
    config = TrainConfig(layers=parse_spec(spec), **settings)
    model = build_for_config(config)
    return model, fit(model, config, dataset)


def test_mlp_adam_reaches_97_percent(mnist):
    _, result = train(mnist, "flatten,linear:128,relu,linear:10", loss="ce", optimizer="adam",
                      lr=1e-3, batch_size=64, epochs=3, seed=0)
    assert len(result.history) == 3
    assert result.metrics["test_accuracy"] >= 0.970


def test_tutorial_network_batch_2(mnist):
    _, result = train(mnist, "flatten,dropout:0.2,linear:64,relu,linear:10", loss="ce",
                      optimizer="sgd", lr=0.01, batch_size=2, epochs=1, seed=0)
    assert result.metrics["test_accuracy"] >= 0.92


def test_tutorial_network_batch_256(mnist):
    # The tutorial's engine divided by the batch size once per layer and stopped learning here.
    _, result = train(mnist, "flatten,dropout:0.2,linear:64,relu,linear:10", loss="ce",
                      optimizer="sgd", lr=0.1, batch_size=256, epochs=3, seed=0)
    assert result.metrics["test_accuracy"] >= 0.90


def small(dataset, n=2000):
    """The first n training and test images, as a data set of the same type."""
    return type(dataset)(x_train=dataset.x_train[:n], y_train=dataset.y_train[:n],
                         x_test=dataset.x_test[:n], y_test=dataset.y_test[:n], name="MNIST part")


def test_same_seed_same_result(mnist):
    data = small(mnist)
    runs = [train(data, "flatten,dropout:0.2,linear:32,relu,linear:10", epochs=2, seed=5)
            for _ in range(2)]
    (model_a, result_a), (model_b, result_b) = runs
    for a, b in zip(result_a.history, result_b.history):
        assert a["test_accuracy"] == b["test_accuracy"]
        assert a["train_loss"] == b["train_loss"]
    for p, q in zip(model_a.parameters(), model_b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_events_reach_the_callback(mnist):
    data = small(mnist, 640)
    events = []
    config = TrainConfig(layers=parse_spec("flatten,linear:10"), batch_size=64, epochs=2)
    fit(build_for_config(config), config, data, callback=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    epochs = [e for e in events if e["kind"] == "epoch"]
    assert [e["step"] for e in steps] == list(range(1, 21))
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert set(epochs[0]) >= {"train_loss", "test_loss", "test_accuracy", "samples_per_second"}


def test_stop_flag_ends_run_between_batches(mnist):
    data = small(mnist)
    steps = []
    config = TrainConfig(layers=parse_spec("flatten,linear:10"), batch_size=10, epochs=3)
    result = fit(build_for_config(config), config, data, callback=lambda e: steps.append(e),
                 should_stop=lambda: len(steps) >= 7)
    assert result.stopped
    assert result.steps == 7
    assert result.history == []


def test_divergence_reports_step_and_keeps_finite_weights(mnist):
    data = small(mnist)
    config = TrainConfig(layers=parse_spec("flatten,linear:64,relu,linear:10"), loss="mse",
                         optimizer="sgd", lr=1e6, batch_size=32, epochs=1)
    model = build_for_config(config)
    result = fit(model, config, data)
    assert result.diverged_at_step is not None
    assert result.diverged_at_step < 100
    for p in model.parameters():
        assert np.all(np.isfinite(p.data))


def test_loss_blow_up_counts_as_divergence(mnist):
    data = small(mnist)
    config = TrainConfig(layers=parse_spec("flatten,dropout:0.2,linear:64,relu,linear:10"),
                         loss="ce", optimizer="sgd", lr=10.0, batch_size=64, epochs=1)
    model = build_for_config(config)
    result = fit(model, config, data)
    assert result.diverged_at_step is not None
    assert np.isfinite(result.diverged_loss)
    assert result.diverged_loss > 100 * 2.0
    assert result.history == []
