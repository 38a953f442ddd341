"""Model files: one ``.npz`` holding the weights and a JSON header.

Arrays in the file:
    ``header``: the UTF-8 bytes of a JSON object, as a uint8 array, with ``format_version``,
        ``layers`` (the layer-stack spec), ``loss``, ``optimizer`` (settings), ``dataset``,
        ``metrics`` and ``created`` (ISO 8601, UTC).
    ``layers.{i}.weight`` and ``layers.{i}.bias``: float32 parameters of the i-th layer (0-based).

Files are read with ``allow_pickle=False``, so loading one never runs code, and written to a
temporary file that is renamed into place, so a crash never leaves half a model behind.
"""

import datetime
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import DigitLabError, ModelFileError
from .spec import build_model

FORMAT_VERSION = 1


def make_header(layers, loss, optimizer=None, dataset=None, metrics=None, **extra):
    """Return a header dict with the format version and the creation time filled in."""
    header = {
        "format_version": FORMAT_VERSION,
        "layers": layers,
        "loss": loss,
        "optimizer": optimizer or {},
        "dataset": dataset,
        "metrics": metrics or {},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    header.update(extra)
    return header


def model_arrays(model, header):
    """Return the dict of arrays that make up a model file."""
    arrays = {"header": np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    for i, layer in enumerate(model.layers):
        for name in ("weight", "bias"):
            if hasattr(layer, name):
                arrays[f"layers.{i}.{name}"] = getattr(layer, name).data.astype(np.float32)
    return arrays


def model_bytes(model, header):
    """Return the model file as bytes (for a download button)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **model_arrays(model, header))
    return buffer.getvalue()


def save_model(path, model, header, overwrite=True):
    """Write ``model`` and ``header`` to ``path`` atomically.

    Raises ``ModelFileError("model.exists")`` if ``overwrite`` is False and the file exists.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise ModelFileError("model.exists", name=path.stem)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model_bytes(model, header)

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file readable by its owner only; a model file is not secret.
        os.chmod(tmp_name, 0o644)
        if not overwrite and path.exists():
            raise ModelFileError("model.exists", name=path.stem)
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise


def load_model(source, name=None):
    """Read a model file and return ``(model, header)``; the model is in eval mode.

    Args:
        source: a path, or the file's bytes (an upload).
        name: how to call the file in error messages; default the path.
    Raises ``ModelFileError`` for a missing file, a file that is not a Digit Lab model, a newer
    format version, or weights whose shapes do not fit the header's layer stack.
    """
    if isinstance(source, (bytes, bytearray)):
        name = name or "upload"
        handle = io.BytesIO(source)
    else:
        name = name or str(source)
        if not Path(source).is_file():
            raise ModelFileError("model.not_found", path=name)
        handle = source

    # np.load reads a file that is not a zip archive as a pickle. With pickles off it then raises
    # a message about allow_pickle, so checking the zip header first gives the plain reason.
    if not zipfile.is_zipfile(handle):
        raise ModelFileError("model.not_a_model", path=name, reason="it is not an .npz (zip) file")
    if isinstance(handle, io.BytesIO):
        handle.seek(0)
    try:
        with np.load(handle, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise ModelFileError("model.not_a_model", path=name,
                             reason=f"not a readable .npz file ({err})") from None
    if not isinstance(arrays, dict) or "header" not in arrays:
        raise ModelFileError("model.not_a_model", path=name, reason="it has no header")

    header = _read_header(arrays["header"], name)
    try:
        model = build_model(header["layers"], np.random.default_rng(0))
    except DigitLabError as err:
        raise ModelFileError("model.not_a_model", path=name,
                             reason=f"invalid layer stack: {err}") from None

    expected_names = set()
    for i, layer in enumerate(model.layers):
        for param_name in ("weight", "bias"):
            if not hasattr(layer, param_name):
                continue
            key = f"layers.{i}.{param_name}"
            expected_names.add(key)
            tensor = getattr(layer, param_name)
            if key not in arrays:
                raise ModelFileError("model.not_a_model", path=name, reason=f"weight '{key}' is missing")
            array = arrays[key]
            if array.shape != tensor.data.shape:
                raise ModelFileError("model.shape_mismatch", path=name, name=key,
                                     got="x".join(map(str, array.shape)),
                                     expected="x".join(map(str, tensor.data.shape)))
            if array.dtype.kind != "f" or not np.all(np.isfinite(array)):
                raise ModelFileError("model.not_a_model", path=name,
                                     reason=f"weight '{key}' is not finite floating point")
            tensor.data = array.astype(np.float32)

    unexpected = sorted(set(arrays) - expected_names - {"header"})
    if unexpected:
        raise ModelFileError("model.not_a_model", path=name,
                             reason=f"unexpected arrays: {', '.join(unexpected)}")
    model.eval()
    return model, header


def _read_header(array, name):
    if array.dtype != np.uint8 or array.ndim != 1:
        raise ModelFileError("model.not_a_model", path=name, reason="its header is not JSON bytes")
    try:
        header = json.loads(array.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError("model.not_a_model", path=name, reason="its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ModelFileError("model.not_a_model", path=name, reason="its header is not a JSON object")

    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError("model.not_a_model", path=name, reason="its header has no format version")
    if version > FORMAT_VERSION:
        raise ModelFileError("model.newer_version", path=name, version=version,
                             supported=FORMAT_VERSION)
    for key in ("layers", "loss"):
        if key not in header:
            raise ModelFileError("model.not_a_model", path=name, reason=f"its header has no '{key}'")
    return header
