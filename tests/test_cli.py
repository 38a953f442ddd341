"""The command line as a user runs it: `python -m engine ...` in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL_NET = "flatten,linear:32,relu,linear:10"


def run_engine(*args, timeout=300):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory, mnist_dir):
    path = tmp_path_factory.mktemp("models") / "net.npz"
    result = run_engine("train", "--layers", SMALL_NET, "--loss", "ce", "--optimizer", "adam",
                        "--lr", "0.001", "--batch-size", "64", "--epochs", "2", "--seed", "1",
                        "--data", mnist_dir, "--save", path)
    assert result.returncode == 0, result.stderr
    return path, result


def test_train_prints_one_json_line_per_epoch(trained_model):
    path, result = trained_model
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert set(lines[0]) == {"epoch", "train_loss", "test_loss", "test_accuracy",
                             "samples_per_second"}
    assert lines[-1]["test_accuracy"] > 0.9
    assert path.is_file()


def test_evaluate_matches_training(trained_model, mnist_dir):
    path, train_result = trained_model
    result = run_engine("evaluate", path, "--data", mnist_dir)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 10000
    last_epoch = json.loads(train_result.stdout.splitlines()[-1])
    assert report["accuracy"] == pytest.approx(last_epoch["test_accuracy"])
    assert report["loss"] == pytest.approx(last_epoch["test_loss"], rel=1e-5)


def draw_one(size=280, transparent=True):
    """A "1": a vertical round-capped stroke, as the canvas would send it."""
    background = (0, 0, 0, 0) if transparent else (0, 0, 0, 255)
    image = Image.new("RGBA", (size, size), background)
    draw = ImageDraw.Draw(image)
    ink = (0, 0, 0, 255) if transparent else (255, 255, 255, 255)
    draw.line([(140, 50), (140, 230)], fill=ink, width=20)
    for y in (50, 230):
        draw.ellipse([130, y - 10, 150, y + 10], fill=ink)
    return image


def test_predict_png_and_npz(trained_model, tmp_path):
    path, _ = trained_model
    png = tmp_path / "one.png"
    draw_one().save(png)
    images = np.stack([np.asarray(draw_one(transparent=False)),
                       np.zeros((280, 280, 4), dtype=np.uint8)])
    batch = tmp_path / "batch.npz"
    np.savez(batch, images=images)

    result = run_engine("predict", path, png, batch)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 3
    assert rows[0]["digit"] == 1
    assert sum(rows[0]["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert rows[1]["digit"] == 1
    assert rows[2]["digit"] is None


@pytest.mark.parametrize("args, expected", [
    (["train", "--layers", "flatten,linear:0,linear:10"], "Layer 2 (Linear): units"),
    (["train", "--layers", "flatten,conv:3,linear:10"], "unknown layer type"),
    (["train", "--loss", "hinge"], "Unknown loss 'hinge'; allowed: ce, mse, bce"),
    (["train", "--optimizer", "rmsprop"], "Unknown optimizer 'rmsprop'"),
    (["train", "--lr", "-1"], "learning rate must be a positive number, got -1.0"),
    (["train", "--batch-size", "0"], "batch size must be a whole number of at least 1, got 0"),
    (["train", "--data", "/nonexistent/mnist"], "/nonexistent/mnist"),
    (["evaluate", "/nonexistent/model.npz", "--data", "bundled"], "Model file not found"),
])
def test_bad_input_exits_2_with_one_line(args, expected, tmp_path):
    save = tmp_path / "never.npz"
    extra = ["--save", save] if args[0] == "train" else []
    result = run_engine(*args, *extra)
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    assert expected in error_lines[0]
    assert not save.exists()
    assert list(tmp_path.iterdir()) == []


def test_data_folder_with_wrong_arrays(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 5)), y_train=np.zeros(3))
    result = run_engine("train", "--data", bad, "--epochs", "1")
    assert result.returncode == 2
    assert result.stderr.count("error:") == 1


def test_predict_rejects_unreadable_image(trained_model, tmp_path):
    path, _ = trained_model
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    result = run_engine("predict", path, junk)
    assert result.returncode == 2
    assert "Cannot read image" in result.stderr


def test_duel_rejects_bad_own_learning_rate():
    result = run_engine("duel", "--data", "bundled", "--epochs", "1", "--lr-bce", "-1")
    assert result.returncode == 2
    assert "error: The learning rate must be a positive number, got -1.0" in result.stderr
    assert result.stdout == ""


def test_predict_rejects_uint16_images(trained_model, tmp_path):
    path, _ = trained_model
    batch = tmp_path / "wide.npz"
    np.savez(batch, images=np.zeros((1, 28, 28), dtype=np.uint16))
    result = run_engine("predict", path, batch)
    assert result.returncode == 2
    assert "got uint16 1x28x28" in result.stderr


def test_train_save_into_missing_folder():
    result = run_engine("train", "--data", "bundled", "--epochs", "1",
                        "--save", "/nonexistent/folder/net.npz")
    assert result.returncode == 2
    assert "error: Cannot save the model: the folder /nonexistent/folder does not exist." \
        in result.stderr
