"""Command line: ``python -m engine train | evaluate | predict | benchmark | duel``.

Results go to standard output as JSON lines; progress and notices go to standard error. An input
the user can fix (an invalid spec, an unknown loss, a missing file) prints one line starting
with ``error:`` and exits with status 2 before anything is written.
"""

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from .errors import DigitLabError, ModelFileError, TrainingError
from .losses import LOSSES
from .optim import OPTIMIZERS

log = logging.getLogger("engine")

EXIT_USAGE = 2
EXIT_DIVERGED = 1


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a network and print one JSON line per epoch")
    add_training_options(train)
    train.add_argument("--loss", default="ce", help=f"loss function: {', '.join(LOSSES)} (default ce)")
    train.add_argument("--save", metavar="FILE", help="write the trained model to this .npz file")
    train.add_argument("--augment", action="store_true",
                       help="move each training image by a small random rotation, scaling, shear "
                            "and shift every epoch (slower; reads drawn digits better)")

    evaluate = commands.add_parser("evaluate", help="print a model's test accuracy and loss as JSON")
    evaluate.add_argument("model", help="model file (.npz)")
    evaluate.add_argument("--data", default="mnist", help=DATA_HELP)

    predict = commands.add_parser("predict", help="read digits from canvas-like images")
    predict.add_argument("model", help="model file (.npz)")
    predict.add_argument("images", nargs="+",
                         help="PNG files, or .npz files whose 'images' array is N x H x W x 4 "
                              "(RGBA) or N x H x W (grey)")

    benchmark = commands.add_parser("benchmark",
                                    help="measure training samples/s, against PyTorch if installed")
    benchmark.add_argument("--data", default=None,
                           help="MNIST for the one-epoch timing (default: the MNIST resolver)")
    benchmark.add_argument("--quick", action="store_true",
                           help="measure for a shorter time (less precise)")

    duel = commands.add_parser("duel", help="train one stack with ce, mse and bce side by side")
    add_training_options(duel)
    duel.add_argument("--mse-output", choices=("softmax", "raw"), default="softmax",
                      help="what MSE compares with the one-hot target (default softmax)")
    for loss in LOSSES:
        duel.add_argument(f"--lr-{loss}", type=float, default=None, metavar="X",
                          help=f"learning rate of the {loss} run only (default: --lr)")
    return parser


DATA_HELP = ("data set: 'mnist' (DIGIT_LAB_DATA, the cache, a download, then the bundled subset), "
             "'bundled', a folder of MNIST idx files or a Keras-style .npz (default mnist)")


def add_training_options(parser):
    parser.add_argument("--layers", default="flatten,linear:128,relu,linear:10",
                        help="layer stack, e.g. flatten,linear:128,relu,dropout:0.2,linear:10 "
                             "(default flatten,linear:128,relu,linear:10)")
    parser.add_argument("--optimizer", default="adam",
                        help=f"optimizer: {', '.join(OPTIMIZERS)} (default adam)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
    parser.add_argument("--momentum", type=float, default=0.9,
                        help="momentum of the 'momentum' optimizer (default 0.9)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per batch (default 64)")
    parser.add_argument("--epochs", type=int, default=3, help="passes over the training set (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--data", default="mnist", help=DATA_HELP)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    handlers = {"train": run_train, "evaluate": run_evaluate, "predict": run_predict,
                "benchmark": run_benchmark, "duel": run_duel}
    try:
        return handlers[args.command](args)
    except DigitLabError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE


def print_json(obj):
    print(json.dumps(obj), flush=True)


def load_data(spec):
    """Load the data set named on the command line and log where it came from."""
    from .data import resolve_dataset

    return resolve_dataset(spec, progress=DownloadProgress())


class DownloadProgress:
    """Download progress callback that logs each file at most once per 10% of its size."""

    def __init__(self):
        self.logged = {}

    def __call__(self, bytes_done, bytes_total, file_name):
        if not bytes_total:
            return
        tenth = int(10 * bytes_done / bytes_total)
        if self.logged.get(file_name) != tenth:
            self.logged[file_name] = tenth
            log.info("downloading %s: %d%% of %.1f MB", file_name, 10 * tenth, bytes_total / 1e6)


def config_from_args(args, loss):
    from .spec import parse_spec
    from .train import TrainConfig

    config = TrainConfig(layers=parse_spec(args.layers), loss=loss, optimizer=args.optimizer,
                         lr=args.lr, batch_size=args.batch_size, epochs=args.epochs,
                         seed=args.seed, momentum=args.momentum,
                         augment=getattr(args, "augment", False))
    config.validate()
    return config


def run_train(args):
    from .modelfile import make_header, save_model
    from .spec import normalise
    from .train import build_for_config, fit

    config = config_from_args(args, args.loss)
    if args.save and not Path(args.save).resolve().parent.is_dir():
        raise ModelFileError("model.folder_missing", path=str(Path(args.save).parent))
    source = load_data(args.data)
    model = build_for_config(config)

    def report(event):
        if event["kind"] == "epoch":
            print_json({key: event[key] for key in
                        ("epoch", "train_loss", "test_loss", "test_accuracy", "samples_per_second")})

    result = fit(model, config, source.dataset, callback=report)
    if result.diverged_at_step is not None:
        err = TrainingError("train.diverged", step=result.diverged_at_step,
                            value=f"{result.diverged_loss:.4g}", suggestion=f"{config.lr / 10:g}")
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED

    if args.save:
        header = make_header(normalise(config.layers), config.loss, config.optimizer_settings(),
                             dataset={"name": source.dataset.name, "kind": source.kind,
                                      "n_train": source.dataset.n_train},
                             metrics=result.metrics)
        save_model(args.save, model, header)
        log.info("saved %s", args.save)
    return 0


def run_evaluate(args):
    from .losses import make_loss
    from .modelfile import load_model
    from .train import evaluate

    model, header = load_model(args.model)
    source = load_data(args.data)
    dataset = source.dataset
    loss, accuracy = evaluate(model, make_loss(header["loss"]), dataset.x_test,
                              dataset.y_test.astype(np.int64))
    print_json({"accuracy": accuracy, "loss": loss, "n": int(len(dataset.y_test))})
    return 0


def run_predict(args):
    from .modelfile import load_model
    from .predict import probabilities
    from .preprocess import preprocess_batch

    model, header = load_model(args.model)
    for path in args.images:
        images = read_images(path)
        inputs, has_digit = preprocess_batch(images)
        probs = probabilities(model, inputs, header.get("loss"))
        for row, found in zip(probs, has_digit):
            print_json({"digit": int(row.argmax()) if found else None,
                        "probabilities": [round(float(p), 6) for p in row] if found else None})
    return 0


def read_images(path):
    """Return the images in a PNG file ``(1, H, W, 4)`` or an .npz ``images`` array."""
    from PIL import Image, UnidentifiedImageError

    from .errors import DigitLabError

    path = Path(path)
    if not path.is_file():
        raise DigitLabError("image.unreadable", path=str(path), reason="file not found")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                images = npz["images"]
        except KeyError:
            raise DigitLabError("image.unreadable", path=str(path),
                                reason="it has no 'images' array") from None
        except (ValueError, OSError) as err:
            raise DigitLabError("image.unreadable", path=str(path), reason=str(err)) from None
        # Preprocessing reads integers as 0-255, so only uint8 is accepted among them.
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 4) \
                or not (images.dtype == np.uint8 or images.dtype.kind == "f"):
            raise DigitLabError("image.bad_shape", path=str(path), dtype=str(images.dtype),
                                shape="x".join(map(str, images.shape)))
        return images
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGBA"))[np.newaxis]
    except (UnidentifiedImageError, OSError) as err:
        raise DigitLabError("image.unreadable", path=str(path), reason=str(err)) from None


def run_benchmark(args):
    from .benchmark import run

    return run(data=args.data, quick=args.quick)


def run_duel(args):
    from .duel import run_cli

    return run_cli(args)
