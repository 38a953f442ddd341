"""Data sets for Digit Lab: MNIST, its bundled subset and data sets of your own.

Every loader returns a `Dataset` of uint8 images ``(N, 28, 28)`` with ink high (0 = background,
255 = full ink) and uint8 labels ``(N,)`` in 0..9. `to_input` turns images into the float32
``(N, 1, 28, 28)`` model input in 0..1.

Formats read:

- a folder with the four idx files of the original MNIST distribution
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte``, each optionally gzipped as ``<name>.gz``);
- a Keras-style ``.npz`` archive with the arrays ``x_train, y_train, x_test, y_test``
  (a file path, bytes or a file object such as an upload in the app).

`resolve_mnist` finds the full MNIST set: a folder given by argument or by the
``DIGIT_LAB_DATA`` environment variable, else the user cache, else a download from public
mirrors, else the bundled 5,000-image subset. It returns a `DataSource` that names the source
it used and the reason, as a message key from `NOTICES` plus its parameters.

Loaded data sets are kept once per process in a cache guarded by a lock, and their arrays are
read-only, so every browser session of the app shares one copy.
"""

import gzip
import hashlib
import io
import logging
import os
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine import download
from engine.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

ENV_VAR = "DIGIT_LAB_DATA"
MIRRORS_ENV_VAR = "DIGIT_LAB_MIRRORS"
"""Environment variable naming a folder of MNIST idx files (or an .npz) to use as "mnist"."""

MAX_FILE_BYTES = 200 * 1000 * 1000
"""Largest .npz file or upload accepted (200 MB)."""

MAX_ARRAY_BYTES = 1000 * 1000 * 1000
"""Largest total of decompressed array bytes in one data set (1 GB).

Full MNIST stored as float64 takes 439 MB, so this leaves room for any 28x28 data set of
that size while stopping a small compressed file that expands to fill the memory.
"""

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# The idx file of each array, by its name in the original MNIST distribution.
IDX_FILE_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# Data type codes of the idx format (third byte of the magic number); multi-byte types are
# big-endian.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

BUNDLED_PATH = Path(__file__).resolve().parent.parent / "data" / "mnist-5k.npz"
"""The bundled subset: the first 500 MNIST training images of each digit, split 400 / 100."""

BUNDLED_SHA256 = "f386f0e516db30df2eb9236a9582736c528aaa7cead280644fe3357100553511"
"""SHA256 of the bundled arrays' bytes, in the order of `arrays_sha256`.

Set by scripts/build_subset.py, which rebuilds data/mnist-5k.npz and compares its hash.
"""

MNIST_NAME = "MNIST"
BUNDLED_NAME = "MNIST-5k"

RETRY_DOWNLOAD_SECONDS = 600
"""After a failed download, `resolve_mnist` uses the bundled subset without retrying for
this long, so that each new browser session does not wait for the mirrors' timeouts again."""

SOURCE_KINDS = ("env", "path", "cache", "download", "bundled", "upload")

# English templates of the notices naming the source of a DataSource and the reason. The app
# translates them under the same keys; ``DataSource.reason`` gives the English text.
NOTICES = {
    "data.source.env": "Using {name} from {location} (set by {var}).",
    "data.source.path": "Using {name} from {location}.",
    "data.source.cache": "Using MNIST from the cache at {location}.",
    "data.source.download": "Downloaded MNIST into the cache at {location}.",
    "data.source.bundled": "Using the bundled 5,000-image subset of MNIST "
                           "(4,000 training and 1,000 test images).",
    "data.source.bundled_offline": "No network: using the bundled 5,000-image subset; "
                                   "see the README to get the full set.",
    "data.source.bundled_download_failed": "The MNIST download failed ({error}): using the "
                                           "bundled 5,000-image subset; see the README to "
                                           "get the full set.",
    "data.source.bundled_no_download": "MNIST is not in the cache and downloading is off: "
                                       "using the bundled 5,000-image subset; see the README "
                                       "to get the full set.",
    "data.source.upload": "Using your data set {name}: {n_train} training and {n_test} "
                          "test images.",
}


# --------------------------------------------------------------------------------------------
# The data set and the model input


@dataclass(frozen=True, eq=False)
class Dataset:
    """A training and a test set of 28x28 digit images.

    ``x_train`` is uint8 ``(N, 28, 28)`` with 0 = background and 255 = full ink, ``y_train``
    is uint8 ``(N,)`` with classes 0..9; ``x_test`` and ``y_test`` likewise. ``name`` is a
    short label such as "MNIST". The arrays are made read-only on construction, so a data set
    can be shared between threads and sessions. Build one from unchecked arrays with
    `make_dataset`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str

    def __post_init__(self):
        for images, labels in ((self.x_train, self.y_train), (self.x_test, self.y_test)):
            if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
                raise ValueError(f"images must be uint8 (N, 28, 28), got {images.dtype} "
                                 f"{images.shape}; use make_dataset to convert")
            if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
                raise ValueError(f"labels must be uint8 (N,) matching the images, got "
                                 f"{labels.dtype} {labels.shape}")
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            array.flags.writeable = False

    @property
    def n_train(self):
        return len(self.y_train)

    @property
    def n_test(self):
        return len(self.y_test)


def to_input(images):
    """Convert uint8 images ``(N, 28, 28)`` (or one image ``(28, 28)``) to the model input.

    Returns float32 ``(N, 1, 28, 28)`` in 0..1 (pixel / 255).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"to_input expects uint8 images, got {images.dtype}")
    if images.ndim == 2:
        images = images[np.newaxis]
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"to_input expects images of shape (N, 28, 28), got {images.shape}")
    return (images.astype(np.float32) / 255.0).reshape(len(images), 1, *IMAGE_SHAPE)


def arrays_sha256(dataset):
    """Return the hex SHA256 of x_train, y_train, x_test and y_test bytes, in that order."""
    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Checks and conversion of arrays from any source


def make_dataset(x_train, y_train, x_test, y_test, name, source=None):
    """Check four arrays and return them as a `Dataset` of uint8 arrays.

    Images may be ``(N, 28, 28)``, ``(N, 784)``, ``(N, 28, 28, 1)`` or ``(N, 1, 28, 28)``.
    Integer images must lie in 0..255 and are stored as they are. Float images must lie in
    0..1 and are scaled by 255 and rounded, so data that is already scaled is never scaled
    twice (NOTE: floats in 0..1 therefore lose precision below 1/255). Labels must be
    integers 0..9, shaped ``(N,)`` or ``(N, 1)``; floats that are whole numbers count as
    integers. Raises DataError naming ``source`` (default: ``name``) and the array.
    """
    source = source or name
    arrays = {}
    for images_key, labels_key, images, labels in (("x_train", "y_train", x_train, y_train),
                                                   ("x_test", "y_test", x_test, y_test)):
        images = _check_images(np.asarray(images), images_key, source)
        labels = _check_labels(np.asarray(labels), labels_key, source)
        if len(images) != len(labels):
            raise DataError("data.count_mismatch", name=source, images_key=images_key,
                            n_images=len(images), labels_key=labels_key, n_labels=len(labels))
        arrays[images_key] = images
        arrays[labels_key] = labels
    return Dataset(name=name, **arrays)


def _check_images(images, key, source):
    """Return ``images`` as C-contiguous uint8 ``(N, 28, 28)`` or raise DataError."""
    n = images.shape[0] if images.ndim >= 1 else 0
    accepted_shapes = ((n, 28, 28), (n, 784), (n, 28, 28, 1), (n, 1, 28, 28))
    if images.ndim < 2 or images.shape not in accepted_shapes:
        raise DataError("data.bad_image_shape", name=source, array=key, shape=images.shape)
    if n == 0:
        raise DataError("data.empty_split", name=source, array=key)
    images = images.reshape(n, *IMAGE_SHAPE)

    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)

    if images.dtype.kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError("data.int_images_range", name=source, array=key, min=low, max=high)
        return images.astype(np.uint8)

    if images.dtype.kind == "f":
        low, high = float(np.min(images)), float(np.max(images))
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
            raise DataError("data.float_images_range", name=source, array=key,
                            min=f"{low:g}", max=f"{high:g}")
        return np.rint(images * 255.0).astype(np.uint8)

    raise DataError("data.bad_image_dtype", name=source, array=key, dtype=str(images.dtype))


def _check_labels(labels, key, source):
    """Return ``labels`` as uint8 ``(N,)`` in 0..9 or raise DataError."""
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise DataError("data.bad_label_shape", name=source, array=key, shape=labels.shape)
    if labels.dtype.kind not in "iuf":
        raise DataError("data.bad_label_dtype", name=source, array=key, dtype=str(labels.dtype))

    bad = ~np.isin(labels, np.arange(NUM_CLASSES))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        value = labels[index].item()
        raise DataError("data.bad_label_values", name=source, array=key, value=value, index=index)
    return labels.astype(np.uint8)


# --------------------------------------------------------------------------------------------
# The idx format


def parse_idx(data, name):
    """Parse the bytes of an (uncompressed) idx file and return its array.

    An idx file starts with a 4-byte magic number: two zero bytes, a data type code (0x08 =
    uint8) and the number of dimensions D. Then come D big-endian uint32 sizes and the
    values in C order. The returned array is a read-only view of ``data`` when the type is
    uint8. Raises DataError, naming ``name``, for a bad or truncated header and for a data
    length that does not match the sizes.
    """
    if len(data) < 4:
        raise DataError("data.idx_too_short", name=name, size=len(data))
    magic = data[:4].hex()
    if data[0] != 0 or data[1] != 0:
        raise DataError("data.idx_bad_magic", name=name, magic=magic)
    type_code, ndim = data[2], data[3]
    if type_code not in IDX_DTYPES:
        raise DataError("data.idx_bad_type", name=name, code=f"0x{type_code:02x}")

    header_bytes = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_bytes:
        raise DataError("data.idx_too_short", name=name, size=len(data))
    shape = struct.unpack(f">{ndim}I", data[4:header_bytes])

    dtype = IDX_DTYPES[type_code]
    count = int(np.prod(shape, dtype=np.int64))
    expected = count * dtype.itemsize
    actual = len(data) - header_bytes
    if actual != expected:
        raise DataError("data.idx_size_mismatch", name=name, shape=shape, expected=expected,
                        actual=actual)
    return np.frombuffer(data, dtype=dtype, count=count, offset=header_bytes).reshape(shape)


def read_maybe_gzip(data, name, limit=MAX_ARRAY_BYTES):
    """Return ``data`` decompressed if it starts with the gzip magic bytes, else unchanged.

    The file's own bytes decide, not its name. Raises DataError for damaged gzip data or for
    content larger than ``limit`` bytes.
    """
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            # NOTE: read(limit + 1) reserves ``limit`` bytes of address space up front, which
            # Linux maps lazily; under strict overcommit it could raise MemoryError.
            content = stream.read(limit + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError("data.bad_gzip", name=name, error=str(err) or type(err).__name__) from None
    if len(content) > limit:
        raise DataError("data.too_large", name=name, size=f"over {_format_bytes(limit)}",
                        limit=_format_bytes(limit))
    return content


def find_idx_files(folder):
    """Return ``{array key: path}`` of the idx files found in ``folder``.

    For each standard name the file itself is taken, else ``<name>.gz``. The variant with a
    dot before "idx" (``train-images.idx3-ubyte``, as some re-distributions spell it) is
    accepted too. Missing files are left out of the result.
    """
    folder = Path(folder)
    found = {}
    for key, base in IDX_FILE_NAMES.items():
        dotted = base.replace("-idx", ".idx")
        for candidate in (base, base + ".gz", dotted, dotted + ".gz"):
            path = folder / candidate
            if path.is_file():
                found[key] = path
                break
    return found


def load_idx_folder(folder, name=None):
    """Load the four idx files in ``folder`` and return a `Dataset`.

    ``name`` defaults to "MNIST" when every file matches the official MNIST MD5, else to the
    folder's name. Raises DataError when the folder or a file is missing or malformed.
    """
    dataset, _ = _load_idx_folder(Path(folder), name)
    return dataset


def load_idx_bytes(files, name):
    """Build a `Dataset` from idx files given as ``{file name: bytes or file object}``.

    For uploads in the app: the file names must be the standard ones (see `find_idx_files`),
    gzipped or not. Raises DataError for missing or malformed files.
    """
    by_key = {}
    for file_name, content in files.items():
        key = _idx_key(Path(file_name).name)
        if key is not None:
            by_key[key] = content
    missing = [IDX_FILE_NAMES[key] for key in IDX_FILE_NAMES if key not in by_key]
    if missing:
        raise DataError("data.idx_missing_files", path=name, missing=", ".join(missing))

    arrays = {}
    for key, content in by_key.items():
        file_name = IDX_FILE_NAMES[key]
        raw = _read_limited(content, file_name)
        arrays[key] = parse_idx(read_maybe_gzip(raw, file_name), file_name)
    return make_dataset(name=name, **arrays)


def _idx_key(file_name):
    for key, base in IDX_FILE_NAMES.items():
        dotted = base.replace("-idx", ".idx")
        if file_name in (base, base + ".gz", dotted, dotted + ".gz"):
            return key
    return None


def _load_idx_folder(folder, name=None):
    """Load an idx folder; return the `Dataset` and ``{array key: MD5 of decompressed file}``."""
    if not folder.is_dir():
        raise DataError("data.not_found", path=str(folder))
    paths = find_idx_files(folder)
    missing = [IDX_FILE_NAMES[key] for key in IDX_FILE_NAMES if key not in paths]
    if missing:
        raise DataError("data.idx_missing_files", path=str(folder), missing=", ".join(missing))

    arrays = {}
    md5s = {}
    for key, path in paths.items():
        raw = read_maybe_gzip(path.read_bytes(), str(path))
        md5s[key] = download.file_md5(raw)
        arrays[key] = parse_idx(raw, str(path))

    if name is None:
        name = MNIST_NAME if _is_official_mnist(md5s) else folder.name
    return make_dataset(name=name, source=str(folder), **arrays), md5s


def _is_official_mnist(md5s):
    return all(md5s.get(key) == download.MNIST_MD5[base] for key, base in IDX_FILE_NAMES.items())


# --------------------------------------------------------------------------------------------
# The .npz format


def load_npz(path, name=None):
    """Load a Keras-style ``.npz`` (``x_train, y_train, x_test, y_test``) as a `Dataset`.

    ``name`` defaults to the file name without ``.npz``. Files over `MAX_FILE_BYTES` are
    rejected. Pickled (object) arrays are never loaded. Raises DataError with the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("data.not_found", path=str(path))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataError("data.too_large", name=str(path), size=_format_bytes(size),
                        limit=_format_bytes(MAX_FILE_BYTES))
    with open(path, "rb") as file:
        return _load_npz_file(file, source=str(path), name=name or path.stem)


def load_npz_bytes(data, name):
    """Load a Keras-style ``.npz`` given as bytes or a binary file object (such as an upload).

    ``name`` (usually the uploaded file name) names the data set and appears in errors.
    """
    raw = _read_limited(data, name)
    stem = name[:-4] if name.lower().endswith(".npz") else name
    return _load_npz_file(io.BytesIO(raw), source=name, name=stem)


def _read_limited(data, name):
    """Return ``data`` (bytes or a binary file object) as bytes, at most `MAX_FILE_BYTES`."""
    if hasattr(data, "read"):
        data = data.read(MAX_FILE_BYTES + 1)
    data = bytes(data)
    if len(data) > MAX_FILE_BYTES:
        raise DataError("data.too_large", name=name, size=f"over {_format_bytes(MAX_FILE_BYTES)}",
                        limit=_format_bytes(MAX_FILE_BYTES))
    return data


def _load_npz_file(file, source, name):
    head = file.read(6)
    file.seek(0)
    if not head:
        raise DataError("data.empty_file", name=source)
    if head.startswith(b"\x93NUMPY"):
        raise DataError("data.npy_not_npz", name=source)
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DataError("data.not_npz", name=source, error="no zip archive header")

    try:
        archive = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError("data.not_npz", name=source, error=str(err)) from None

    with archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise DataError("data.missing_keys", name=source, missing=", ".join(missing))
        _check_npz_sizes(archive, source)
        arrays = {key: _read_npz_array(archive, key, source) for key in NPZ_KEYS}
    return make_dataset(name=name, source=source, **arrays)


def _check_npz_sizes(archive, source):
    """Reject archives whose arrays would decompress to more than `MAX_ARRAY_BYTES`."""
    members = set(NPZ_KEYS) | {f"{key}.npy" for key in NPZ_KEYS}
    total = sum(info.file_size for info in archive.zip.infolist() if info.filename in members)
    if total > MAX_ARRAY_BYTES:
        raise DataError("data.too_large", name=source, size=_format_bytes(total),
                        limit=_format_bytes(MAX_ARRAY_BYTES))


def _read_npz_array(archive, key, source):
    try:
        array = archive[key]
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError("data.object_array", name=source, array=key) from None
        raise DataError("data.bad_array", name=source, array=key, error=str(err)) from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise DataError("data.bad_array", name=source, array=key, error=str(err)) from None

    # NpzFile returns the raw bytes of a member that does not start like an .npy file.
    if not isinstance(array, np.ndarray):
        raise DataError("data.bad_array", name=source, array=key, error="not in .npy format")
    return array


def _format_bytes(size):
    return f"{size / 1e6:.1f} MB"


# --------------------------------------------------------------------------------------------
# One copy per process


# Data sets loaded from files, keyed by (format, resolved path). Each entry stores the
# file stamp (sizes and modification times) it was loaded with, so a changed file is
# read again while an unchanged one is never read twice.
_LOADED = {}
_LOCK = threading.Lock()

# Held for a whole `resolve_mnist` call, so that sessions starting together download once.
# It is separate from _LOCK so that a running download does not block other loads.
_RESOLVE_LOCK = threading.Lock()
_last_download_failure = {}


def clear_cache():
    """Forget every loaded data set and download failure (for tests)."""
    with _RESOLVE_LOCK, _LOCK:
        _LOADED.clear()
        _last_download_failure.clear()


def _load_once(kind, path, stamp_paths, loader):
    """Return the cached result of ``loader()`` for ``(kind, path)`` unless the files changed."""
    key = (kind, str(path))
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in stamp_paths)
    with _LOCK:
        entry = _LOADED.get(key)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        result = loader()
        _LOADED[key] = (stamp, result)
        return result


def load_path(path):
    """Load a folder of idx files or an .npz file, once per process; return a `Dataset`."""
    path = Path(path).expanduser().resolve()
    if path.is_dir():
        paths = list(find_idx_files(path).values())
        return _load_once("idx", path, paths, lambda: load_idx_folder(path))
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DataError("data.unknown_format", path=str(path))
        return _load_once("npz", path, [path], lambda: load_npz(path))
    raise DataError("data.not_found", path=str(path))


def load_bundled():
    """Load the bundled 5,000-image subset (data/mnist-5k.npz), once per process."""
    if not BUNDLED_PATH.is_file():
        raise DataError("data.bundled_missing", path=str(BUNDLED_PATH), error="file not found")

    def load():
        try:
            dataset = load_npz(BUNDLED_PATH, name=BUNDLED_NAME)
        except DataError as err:
            raise DataError("data.bundled_missing", path=str(BUNDLED_PATH),
                            error=str(err)) from None
        if arrays_sha256(dataset) != BUNDLED_SHA256:
            raise DataError("data.bundled_missing", path=str(BUNDLED_PATH),
                            error="its content does not match the expected SHA256")
        return dataset

    return _load_once("bundled", BUNDLED_PATH, [BUNDLED_PATH], load)


def _load_cache_folder(cache_dir):
    """Load MNIST from the cache if all four files are there and verified, else return None.

    Every file is checked against the official MD5 of its decompressed content each time it
    is read. A whole load, hashing included, took 0.25 s on a 2-core machine
    (scripts/measure_data.py). Files that fail the check are deleted, so that the next
    download replaces them.
    """
    paths = [download.cache_path(cache_dir, base) for base in download.MNIST_MD5]
    if not all(path.is_file() for path in paths):
        _delete_bad_cache_files(paths)
        return None

    def load():
        dataset, md5s = _load_idx_folder(cache_dir, name=MNIST_NAME)
        if not _is_official_mnist(md5s):
            raise DataError("data.idx_bad_checksum", path=str(cache_dir))
        return dataset

    try:
        return _load_once("cache", cache_dir, paths, load)
    except DataError as err:
        logger.warning("MNIST cache in %s failed verification: %s", cache_dir, err)
        _delete_bad_cache_files(paths)
        return None


def _delete_bad_cache_files(paths):
    """Delete the cache files among ``paths`` whose content is not the official MNIST file."""
    for path in paths:
        if not path.is_file():
            continue
        base = path.name[:-len(".gz")]
        try:
            good = download.file_md5(read_maybe_gzip(path.read_bytes(), str(path))) == \
                download.MNIST_MD5[base]
        except DataError:
            good = False
        if not good:
            logger.warning("deleting %s: its content is not the official MNIST file", path)
            path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------
# Choosing the source


@dataclass(frozen=True, eq=False)
class DataSource:
    """A loaded data set and where it came from.

    ``kind`` is one of `SOURCE_KINDS`. ``location`` is a folder, file, URL or upload name.
    ``reason_key`` is a key of `NOTICES` whose template ``reason_params`` fill; the app
    translates it, and `reason` gives the English text.
    """

    dataset: Dataset
    kind: str
    location: str
    reason_key: str
    reason_params: dict = field(default_factory=dict)

    @property
    def reason(self):
        return NOTICES[self.reason_key].format(**self.reason_params)


def resolve_mnist(path=None, *, cache_dir=None, mirrors=None, download_allowed=True,
                  progress=None, timeout=download.DEFAULT_TIMEOUT, environ=None):
    """Find the full MNIST set and return a `DataSource`; fall back to the bundled subset.

    Sources, in order:

    1. ``path`` if given, else the folder (or .npz) named by ``$DIGIT_LAB_DATA``. A source
       named this way must load: its error is raised, not skipped.
    2. The cache ``cache_dir`` (default `download.default_cache_dir`), if it contains the four
       files and each matches the official MD5.
    3. A download from ``mirrors`` into the cache, unless ``download_allowed`` is False or a
       download failed in this process less than `RETRY_DOWNLOAD_SECONDS` ago. Without
       ``mirrors``, ``$DIGIT_LAB_MIRRORS`` (comma-separated base URLs; set but empty turns
       downloads off) or else `download.MIRRORS` is used.
       ``progress(bytes_done, bytes_total_or_None, file_name)`` reports it.
    4. The bundled 5,000-image subset, with the reason the download was not used.

    Concurrent calls wait for each other, so a download runs once.
    """
    source = _resolve_mnist(path, cache_dir=cache_dir, mirrors=mirrors,
                            download_allowed=download_allowed, progress=progress, timeout=timeout,
                            environ=environ)
    logger.info("data source: %s", source.reason)
    return source


def _resolve_mnist(path=None, *, cache_dir=None, mirrors=None, download_allowed=True,
                  progress=None, timeout=download.DEFAULT_TIMEOUT, environ=None):
    environ = os.environ if environ is None else environ

    with _RESOLVE_LOCK:
        if path is not None:
            dataset = load_path(path)
            location = str(Path(path).expanduser().resolve())
            return DataSource(dataset, "path", location, "data.source.path",
                              {"name": dataset.name, "location": location})

        env_path = environ.get(ENV_VAR)
        if env_path:
            try:
                dataset = load_path(env_path)
            except DataError as err:
                raise DataError("data.env_invalid", var=ENV_VAR, path=env_path,
                                error=str(err)) from None
            location = str(Path(env_path).expanduser().resolve())
            return DataSource(dataset, "env", location, "data.source.env",
                              {"name": dataset.name, "location": location, "var": ENV_VAR})

        if cache_dir is None:
            cache_dir = download.default_cache_dir(environ)
        cache_dir = Path(cache_dir)
        dataset = _load_cache_folder(cache_dir)
        if dataset is not None:
            return DataSource(dataset, "cache", str(cache_dir), "data.source.cache",
                              {"location": str(cache_dir)})

        if mirrors is None:
            mirrors = _mirrors_from_env(environ)
        if not download_allowed or not mirrors:
            return _bundled_source("data.source.bundled_no_download", {})

        mirrors = download.validate_mirrors(mirrors)
        failure = _last_download_failure.get(mirrors)
        if failure is not None and time.monotonic() - failure[0] < RETRY_DOWNLOAD_SECONDS:
            return _bundled_source(*failure[1])

        try:
            urls = download.download_mnist(cache_dir, mirrors, progress=progress, timeout=timeout)
            dataset = _load_cache_folder(cache_dir)
            if dataset is None:
                raise download.DownloadError("MNIST", [(str(cache_dir), "verification failed "
                                                        "after download", False)])
        except download.DownloadError as err:
            reason = _download_failure_reason(err)
            _last_download_failure[mirrors] = (time.monotonic(), reason)
            return _bundled_source(*reason)
        except OSError as err:
            reason = ("data.source.bundled_download_failed",
                      {"error": f"cannot write to {cache_dir}: {err}"})
            _last_download_failure[mirrors] = (time.monotonic(), reason)
            return _bundled_source(*reason)

        logger.info("MNIST downloaded from %s", ", ".join(urls) or "(nothing missing)")
        return DataSource(dataset, "download", str(cache_dir), "data.source.download",
                          {"location": str(cache_dir), "urls": ", ".join(urls)})


def _mirrors_from_env(environ):
    """Return the mirrors named by ``$DIGIT_LAB_MIRRORS``, or `download.MIRRORS` if it is unset."""
    value = environ.get(MIRRORS_ENV_VAR)
    if value is None:
        return download.MIRRORS
    return tuple(url.strip() for url in value.split(",") if url.strip())


def _download_failure_reason(err):
    if err.offline:
        return "data.source.bundled_offline", {"error": str(err)}
    return "data.source.bundled_download_failed", {"error": str(err)}


def _bundled_source(reason_key, reason_params):
    return DataSource(load_bundled(), "bundled", str(BUNDLED_PATH), reason_key, dict(reason_params))


def upload_source(data, name):
    """Load an upload and return it as a `DataSource`.

    ``data`` is an .npz as bytes or a file object, or the four idx files as a mapping
    ``{file name: bytes or file object}``. Uploads are not kept in the process-wide cache
    because each belongs to one browser session.
    """
    if isinstance(data, Mapping):
        dataset = load_idx_bytes(data, name)
    else:
        dataset = load_npz_bytes(data, name)
    return DataSource(dataset, "upload", name, "data.source.upload",
                      {"name": name, "n_train": dataset.n_train, "n_test": dataset.n_test})


def resolve_dataset(spec, **resolve_options):
    """Return the `DataSource` for a command-line data spec.

    ``"mnist"`` runs `resolve_mnist` (``resolve_options`` go to it), ``"bundled"`` gives the
    bundled subset, and anything else is a path to a folder of idx files or an .npz file.
    """
    if spec.lower() == "mnist":
        return resolve_mnist(**resolve_options)
    if spec.lower() == "bundled":
        source = _bundled_source("data.source.bundled", {})
    else:
        dataset = load_path(spec)
        location = str(Path(spec).expanduser().resolve())
        source = DataSource(dataset, "path", location, "data.source.path",
                            {"name": dataset.name, "location": location})
    logger.info("data source: %s", source.reason)
    return source


def load_dataset(spec, **resolve_options):
    """Return the `Dataset` for a command-line data spec (see `resolve_dataset`).

    The notice saying which source was used is logged at INFO level.
    """
    return resolve_dataset(spec, **resolve_options).dataset
