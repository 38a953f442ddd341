"""Engine side of the loss duel: equal starts, equal batches, same numbers as single runs."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.data import load_bundled
from engine.duel import (
    DUEL_LOSSES, build_duel_models, check_identical_weights, duel_configs, duel_layers, fit_duel,
    output_gradients, parameter_bytes, pre_activation, strip_output_activation, summarize,
)
from engine.errors import SpecError
from engine.losses import make_loss
from engine.spec import build_model, format_spec, parse_spec
from engine.tensor import Tensor
from engine.train import TrainConfig, build_for_config, fit, make_generators, to_input

REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL = "flatten,linear:32,relu,linear:10"


@pytest.fixture(scope="module")
def bundled():
    return load_bundled()


def small_configs(**options):
    spec = options.pop("spec", SMALL)
    settings = {"epochs": 1, "seed": 3, "batch_size": 64, **options}
    return duel_configs(parse_spec(spec), **settings)


# ----- the three networks -----

def test_strip_removes_trailing_softmax_and_sigmoid():
    layers = parse_spec("flatten,linear:32,sigmoid,linear:10,softmax,sigmoid")
    assert format_spec(strip_output_activation(layers)) == "flatten,linear:32,sigmoid,linear:10"


def test_duel_layers_append_output_layer():
    stacks = duel_layers(parse_spec(SMALL + ",softmax"))
    assert format_spec(stacks["ce"]) == SMALL
    assert format_spec(stacks["mse"]) == SMALL + ",softmax"
    assert format_spec(stacks["bce"]) == SMALL + ",sigmoid"


def test_duel_layers_mse_raw():
    stacks = duel_layers(parse_spec(SMALL), mse_output="raw")
    assert format_spec(stacks["mse"]) == SMALL


def test_duel_configs_share_settings_except_lr():
    configs = duel_configs(parse_spec(SMALL), optimizer="sgd", lr=0.1, lrs={"mse": 0.5})
    assert [configs[loss].lr for loss in DUEL_LOSSES] == [0.1, 0.5, 0.1]
    assert {configs[loss].optimizer for loss in DUEL_LOSSES} == {"sgd"}
    assert [configs[loss].loss for loss in DUEL_LOSSES] == list(DUEL_LOSSES)


def test_duel_configs_reject_bad_spec():
    with pytest.raises(SpecError):
        duel_configs(parse_spec("flatten,linear:12"))


def test_models_start_byte_identical():
    models = build_duel_models(small_configs(spec="flatten,linear:32,relu,dropout:0.2,linear:10"))
    reference = parameter_bytes(models["ce"])
    assert len(reference) > 0
    for loss in DUEL_LOSSES:
        assert parameter_bytes(models[loss]) == reference
    check = check_identical_weights(models)
    assert check.identical
    assert len(set(check.digests.values())) == 1
    assert check.n_params == 784 * 32 + 32 + 32 * 10 + 10


def test_weight_check_detects_difference():
    models = build_duel_models(small_configs())
    models["bce"].parameters()[1].data[0] += 1e-6
    assert not check_identical_weights(models).identical


# ----- lockstep training -----

def test_runs_draw_identical_batches(bundled):
    configs = small_configs(epochs=2)
    duel = fit_duel(build_duel_models(configs), configs, bundled, probe_every=0)

    # The batch order fit would use for this seed: one permutation per epoch.
    _, shuffle_rng = make_generators(3)
    expected = hashlib.sha256()
    for _ in range(2):
        order = shuffle_rng.permutation(bundled.n_train)
        for start in range(0, bundled.n_train, 64):
            expected.update(order[start:start + 64].tobytes())

    digests = {loss: run.batch_digest for loss, run in duel.runs.items()}
    assert digests["ce"] == expected.hexdigest()
    assert digests["mse"] == digests["ce"]
    assert digests["bce"] == digests["ce"]
    assert {run.result.steps for run in duel.runs.values()} == {2 * 63}


def test_duel_matches_separate_fit(bundled):
    configs = small_configs(epochs=2, spec="flatten,linear:32,relu,dropout:0.1,linear:10")
    duel = fit_duel(build_duel_models(configs), configs, bundled, probe_every=0)
    for loss, config in configs.items():
        model = build_for_config(config)
        single = fit(model, config, bundled)
        assert [e["test_accuracy"] for e in duel.runs[loss].result.history] == \
            [e["test_accuracy"] for e in single.history]
        assert [e["train_loss"] for e in duel.runs[loss].result.history] == \
            [e["train_loss"] for e in single.history]
        assert parameter_bytes(duel.runs[loss].model) == parameter_bytes(model)


def test_callback_and_probes(bundled):
    configs = small_configs()
    events = {loss: [] for loss in DUEL_LOSSES}
    duel = fit_duel(build_duel_models(configs), configs, bundled, probe_every=20,
                    callback=lambda loss, event: events[loss].append(event))
    for loss in DUEL_LOSSES:
        kinds = [event["kind"] for event in events[loss]]
        assert kinds.count("step") == 63
        assert kinds.count("epoch") == 1
        probe_steps = [event["step"] for event in events[loss] if event["kind"] == "probe"]
        assert probe_steps == [0, 20, 40, 60, 63]
        assert [p["step"] for p in duel.runs[loss].probes] == probe_steps
    assert duel.probe_size == 1000


def test_stop_flag_ends_all_runs(bundled):
    configs = small_configs(epochs=3)
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 10

    duel = fit_duel(build_duel_models(configs), configs, bundled, should_stop=should_stop)
    assert duel.stopped
    for run in duel.runs.values():
        assert run.result.steps == 10
        assert run.result.history == []
    assert {row["status"] for row in summarize(duel).values()} == {"stopped"}


def test_diverged_run_sits_out(bundled):
    configs = small_configs()
    models = build_duel_models(configs)
    models["bce"].parameters()[0].data[:] = np.nan
    duel = fit_duel(models, configs, bundled, probe_every=0)
    rows = summarize(duel)
    assert rows["bce"]["status"] == "diverged"
    assert rows["bce"]["diverged_at_step"] == 1
    assert rows["ce"]["status"] == "finished"
    assert rows["ce"]["final_test_accuracy"] > 0.5
    assert duel.runs["mse"].result.steps == 63


def test_summary_rows(bundled):
    configs = small_configs(epochs=2, spec="flatten,linear:64,relu,linear:10")
    duel = fit_duel(build_duel_models(configs), configs, bundled, probe_every=10)
    rows = summarize(duel)
    ce = rows["ce"]
    history = duel.runs["ce"].result.history
    assert ce["final_test_accuracy"] == history[-1]["test_accuracy"]
    assert ce["best_test_accuracy"] == max(e["test_accuracy"] for e in history)
    assert ce["final_test_loss"] == history[-1]["test_loss"]
    assert ce["seconds"] > 0
    reached = [p for p in duel.runs["ce"].probes if p["test_accuracy"] >= 0.9]
    assert ce["steps_to_90"] == (reached[0]["step"] if reached else None)


# ----- the gradient panel's numbers -----

def test_output_gradients_match_full_backward(bundled):
    """dLoss/dz from output_gradients equals the bias gradient of the last Linear layer
    when the engine back-propagates through the whole network (one example: N = 1)."""
    configs = small_configs()
    models = build_duel_models(configs)
    x = to_input(bundled.x_test[:1])
    label = int(bundled.y_test[0])
    z = pre_activation(models["ce"], x)[0]
    gradients = output_gradients(z, label)

    for loss in DUEL_LOSSES:
        model = models[loss]
        model.zero_grad()
        value = make_loss(loss)(model(Tensor(x)), np.array([label]))
        value.backward()
        last_linear = [layer for layer in model.layers if hasattr(layer, "bias")][-1]
        np.testing.assert_allclose(gradients[loss].grad, last_linear.bias.grad, rtol=1e-5,
                                   atol=1e-8)
        assert gradients[loss].value == pytest.approx(float(value.data), rel=1e-6)


def test_output_gradients_formulas():
    z = np.array([4.0, -1.0, 0.5, 0, 0, 0, 0, 0, 0, 2.0], dtype=np.float32)
    gradients = output_gradients(z, label=9, scale=3.0)
    zs = 3.0 * z
    p = np.exp(zs - zs.max()) / np.exp(zs - zs.max()).sum()
    target = np.eye(10, dtype=np.float32)[9]
    np.testing.assert_allclose(gradients["ce"].grad, p - target, atol=1e-6)
    sigmoid = 1 / (1 + np.exp(-zs))
    np.testing.assert_allclose(gradients["bce"].grad, (sigmoid - target) / 10, atol=1e-6)
    mse_dp = 2 * (p - target) / 10
    np.testing.assert_allclose(gradients["mse"].grad, p * (mse_dp - (mse_dp * p).sum()),
                               atol=1e-6)


def test_confidently_wrong_starves_mse():
    z = np.zeros(10, dtype=np.float32)
    z[3] = 1.0
    calm = output_gradients(z, label=7, scale=1.0)
    sure = output_gradients(z, label=7, scale=20.0)
    assert np.abs(sure["mse"].grad).sum() < 0.01 * np.abs(calm["mse"].grad).sum()
    assert sure["ce"].grad[7] == pytest.approx(-1.0, abs=1e-4)


# ----- command line -----

def run_engine(*args):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_duel_matches_cli_train():
    common = ["--optimizer", "momentum", "--lr", "0.05", "--epochs", "2", "--seed", "5",
              "--data", "bundled", "--batch-size", "100"]
    duel = run_engine("duel", "--layers", SMALL + ",softmax", *common)
    assert duel.returncode == 0, duel.stderr
    lines = [json.loads(line) for line in duel.stdout.splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]

    for loss, suffix in (("ce", ""), ("mse", ",softmax"), ("bce", ",sigmoid")):
        single = run_engine("train", "--layers", SMALL + suffix, "--loss", loss, *common)
        assert single.returncode == 0, single.stderr
        epochs = [json.loads(line) for line in single.stdout.splitlines()]
        assert [line[loss]["test_accuracy"] for line in lines] == \
            [e["test_accuracy"] for e in epochs]
        assert [line[loss]["test_loss"] for line in lines] == [e["test_loss"] for e in epochs]


@pytest.mark.parametrize("args", [
    ["--layers", "flatten,linear:10,wobble"],
    ["--layers", "flatten,linear:12"],
    ["--lr", "0"],
    ["--optimizer", "rmsprop"],
    ["--epochs", "0"],
    ["--data", "/nonexistent/mnist"],
])
def test_cli_duel_bad_input(args):
    result = run_engine("duel", "--data", "bundled", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


def test_cli_duel_reports_mse_raw():
    result = run_engine("duel", "--layers", SMALL, "--mse-output", "raw", "--epochs", "1",
                        "--data", "bundled")
    assert result.returncode == 0, result.stderr
    assert f"mse: {SMALL} (initial weights" in result.stderr
    assert set(json.loads(result.stdout)) == {"epoch", "ce", "mse", "bce"}


def test_build_model_appended_activation_keeps_weights():
    model_rng, _ = make_generators(11)
    plain = build_model(parse_spec(SMALL), model_rng)
    model_rng, _ = make_generators(11)
    with_sigmoid = build_model(parse_spec(SMALL + ",sigmoid"), model_rng)
    assert parameter_bytes(plain) == parameter_bytes(with_sigmoid)
    assert TrainConfig(layers=parse_spec(SMALL)).validate()
