"""Errors a user can fix, with message keys the app translates.

Every error carries a ``key`` (such as ``"spec.unknown_layer"``) and the ``params`` that fill its
message. ``str(err)`` is the English message used by the command line. The app looks the same key up
in the ``[engine]`` table of its locale files, so a learner reads it in their own language.
"""

MESSAGES = {
    # Layer-stack spec
    "spec.empty": "The network has no layers: add at least one Linear layer.",
    "spec.not_a_list": "A layer stack must be a list of layers, got {got}.",
    "spec.bad_token": "Layer {index} ('{token}'): cannot read it; write it as name or name:value, "
                      "for example linear:128 or dropout:0.2.",
    "spec.unknown_layer": "Layer {index} ('{name}'): unknown layer type; allowed: {allowed}.",
    "spec.missing_setting": "Layer {index} ({name}): the setting '{setting}' is missing.",
    "spec.unexpected_setting": "Layer {index} ({name}): unexpected setting '{setting}'; "
                               "allowed: {allowed}.",
    "spec.bad_units": "Layer {index} (Linear): units must be a whole number from 1 to {max}, "
                      "got {value}.",
    "spec.bad_dropout": "Layer {index} (Dropout): the rate p must be at least 0 and below 1, "
                        "got {value}.",
    "spec.needs_flat_input": "Layer {index} (Linear): expects a flat input but receives "
                             "{shape}; add a Flatten layer before it.",
    "spec.wrong_output": "The network must end with 10 outputs, one per digit, but it ends "
                         "with {shape}; make the last Linear layer have 10 units.",
    "spec.too_many_layers": "The network has {count} layers; the limit is {max}.",
    # Losses and optimizers
    "loss.unknown": "Unknown loss '{name}'; allowed: {allowed}.",
    "optim.unknown": "Unknown optimizer '{name}'; allowed: {allowed}.",
    "optim.bad_lr": "The learning rate must be a positive number, got {value}.",
    "train.bad_batch_size": "The batch size must be a whole number of at least 1, got {value}.",
    "train.bad_epochs": "The number of epochs must be a whole number of at least 1, got {value}.",
    "train.bad_seed": "The random seed must be a whole number from 0 to 2**32 - 1, got {value}.",
    "train.bad_momentum": "The momentum must be at least 0 and below 1, got {value}.",
    "train.diverged": "Training stopped at step {step}: the loss became {value}, so the run "
                      "diverged. Try a lower learning rate (for example {suggestion}).",
    # Model files
    "model.not_found": "Model file not found: {path}.",
    "model.not_a_model": "{path} is not a Digit Lab model file: {reason}.",
    "model.newer_version": "{path} was written by a newer Digit Lab (format {version}); "
                           "this one reads format {supported} and older.",
    "model.shape_mismatch": "{path}: weight '{name}' has shape {got}, but the layer stack "
                            "needs {expected}.",
    "model.bad_name": "Invalid model name '{name}': use 1 to 64 letters, digits, '-' or '_'.",
    "model.exists": "A model named '{name}' already exists.",
    "model.folder_missing": "Cannot save the model: the folder {path} does not exist.",
    "model.reserved_name": "'{name}' is a model shipped with Digit Lab; save under another name.",
    # Images for prediction
    "image.unreadable": "Cannot read image {path}: {reason}.",
    "image.bad_shape": "{path}: expected uint8 or float images of shape N x H x W x 4 (RGBA) "
                       "or N x H x W (grey), got {dtype} {shape}.",
    # Data sets (engine/data.py)
    "data.not_found": "Data set not found: {path}.",
    "data.unknown_format": "{path} is neither a folder of idx files nor an .npz file.",
    "data.env_invalid": "The environment variable {var} is set to {path}, but that data set "
                        "cannot be used: {error} Fix the path or unset {var}.",
    "data.bundled_missing": "The bundled subset {path} cannot be used ({error}); reinstall "
                            "Digit Lab or rebuild the file with scripts/build_subset.py.",
    "data.too_large": "{name} is {size}; the limit is {limit}.",
    "data.empty_file": "{name} is empty (0 bytes).",
    "data.bad_gzip": "{name}: the gzip data cannot be decompressed ({error}); the file is "
                     "damaged or truncated.",
    "data.idx_missing_files": "{path} lacks the idx files {missing}. A data set folder needs "
                              "train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                              "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each "
                              "optionally ending in .gz.",
    "data.idx_too_short": "{name}: {size} bytes are too few for an idx file header.",
    "data.idx_bad_magic": "{name} is not an idx file: its magic number {magic} must start "
                          "with two zero bytes.",
    "data.idx_bad_type": "{name}: unknown idx data type code {code}; images and labels "
                         "use 0x08 (unsigned byte).",
    "data.idx_size_mismatch": "{name}: the header gives shape {shape}, which needs {expected} "
                              "bytes of data, but the file has {actual}; the file is "
                              "truncated or damaged.",
    "data.idx_bad_checksum": "The MNIST files in {path} do not match the official MD5 "
                             "checksums.",
    "data.not_npz": "{name} is not an .npz file ({error}); save the arrays with numpy.savez "
                    "or numpy.savez_compressed.",
    "data.npy_not_npz": "{name} is a single .npy array, not an .npz file; save x_train, "
                        "y_train, x_test and y_test together with numpy.savez.",
    "data.missing_keys": "{name} lacks the arrays {missing}; an .npz data set needs x_train, "
                         "y_train, x_test and y_test.",
    "data.object_array": "{name}: the array '{array}' contains Python objects, which are not "
                         "loaded because unpickling can run code; save plain numeric arrays.",
    "data.bad_array": "{name}: the array '{array}' cannot be read ({error}).",
    "data.bad_image_shape": "{name}: {array} has shape {shape}; images must be N x 28 x 28 or "
                            "N x 784.",
    "data.bad_image_dtype": "{name}: {array} has type {dtype}; images must be integers 0-255 "
                            "or floats 0-1.",
    "data.int_images_range": "{name}: {array} has values from {min} to {max}; integer images "
                             "must be in 0-255.",
    "data.float_images_range": "{name}: {array} has values from {min} to {max}; float images "
                               "must be in 0-1 (divide by 255, or save them as uint8).",
    "data.empty_split": "{name}: {array} has no images; the training and the test set each "
                        "need at least one.",
    "data.bad_label_shape": "{name}: {array} has shape {shape}; labels must be one digit class "
                            "0-9 per image, shape N (for one-hot labels save "
                            "labels.argmax(axis=1)).",
    "data.bad_label_dtype": "{name}: {array} has type {dtype}; labels must be integers 0-9.",
    "data.bad_label_values": "{name}: {array} contains {value} at index {index}; labels must "
                             "be integers 0-9.",
    "data.count_mismatch": "{name}: {images_key} has {n_images} images but {labels_key} has "
                           "{n_labels} labels; the counts must match.",
}


class DigitLabError(Exception):
    """An error caused by input the user can fix.

    ``key`` names the message in ``MESSAGES`` (and in the locale files); ``params`` fill its
    placeholders.
    """

    def __init__(self, key, **params):
        self.key = key
        self.params = params
        template = MESSAGES.get(key, key)
        super().__init__(template.format(**params))


class SpecError(DigitLabError):
    """An invalid layer stack, loss or training setting."""


class DataError(DigitLabError):
    """A data set that is missing, malformed or cannot be fetched."""


class ModelFileError(DigitLabError):
    """A model file that cannot be read or does not fit its own layer stack."""


class TrainingError(DigitLabError):
    """A training run that cannot go on, such as one whose loss stopped being finite."""
