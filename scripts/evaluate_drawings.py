"""Measure how well model files read drawings, through the engine's command line.

Runs ``python -m engine predict MODEL DRAWINGS.npz`` for each model (so the measurement covers
the same preprocessing and probabilities as the app) and prints the accuracy overall, per digit,
per canvas variant and per stroke template as Markdown tables. A drawing that gets no
prediction counts as wrong.

Usage:
    python scripts/render_drawings.py /tmp/drawings.npz --count 2000 --seed 1
    python scripts/evaluate_drawings.py /tmp/drawings.npz models/mlp-ce.npz models/mlp-mse.npz

The drawings file comes from scripts/render_drawings.py: images, labels, and optionally
variants and styles.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

logger = logging.getLogger("evaluate_drawings")

REPO_ROOT = Path(__file__).resolve().parent.parent


def predict_digits(model: Path, drawings: Path) -> np.ndarray:
    """Return the predicted digit of each drawing, (N,) int, -1 where there is no prediction."""
    environment = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    completed = subprocess.run(
        [sys.executable, "-m", "engine", "predict", str(model), str(drawings)],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"python -m engine predict {model} failed with status "
                           f"{completed.returncode}: {completed.stderr.strip()}")

    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()]
    return np.array([-1 if row["digit"] is None else row["digit"] for row in rows])


def accuracy_table(title: str, groups: np.ndarray, correct: dict[str, np.ndarray]) -> str:
    """Return a Markdown table of accuracy per group (rows) and model (columns)."""
    names = list(correct)
    lines = [f"| {title} | n | " + " | ".join(names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for group in np.unique(groups):
        members = groups == group
        cells = [f"{correct[name][members].mean():.1%}" for name in names]
        lines.append(f"| {group} | {int(members.sum())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("drawings", type=Path, help=".npz from scripts/render_drawings.py")
    parser.add_argument("models", type=Path, nargs="+", help="model files (.npz)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with np.load(args.drawings, allow_pickle=False) as data:
        labels = data["labels"].astype(np.int64)
        variants = data["variants"] if "variants" in data else np.full(len(labels), "-")
        styles = data["styles"] if "styles" in data else np.full(len(labels), "-")

    correct = {}
    for model in args.models:
        predictions = predict_digits(model, args.drawings)
        if len(predictions) != len(labels):
            raise RuntimeError(f"{model}: got {len(predictions)} predictions for "
                               f"{len(labels)} drawings")
        correct[model.stem] = predictions == labels
        logger.info("%s: %.2f%% of %d drawings, %d without a prediction", model.stem,
                    100 * correct[model.stem].mean(), len(labels), int((predictions < 0).sum()))

    everything = np.full(len(labels), "all")
    template_names = np.array([f"{label} {style}" for label, style in zip(labels, styles)])
    print(accuracy_table("drawings", everything, correct), end="\n\n")
    print(accuracy_table("digit", labels, correct), end="\n\n")
    print(accuracy_table("variant", variants, correct), end="\n\n")
    print(accuracy_table("template", template_names, correct))
    return 0


if __name__ == "__main__":
    sys.exit(main())
