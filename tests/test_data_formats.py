"""Loading idx folders and .npz files, and the errors for malformed ones."""

import gzip
import hashlib
import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from engine import data
from engine.errors import DataError

MNIST_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def fresh_cache():
    data.clear_cache()
    yield
    data.clear_cache()


def idx_bytes(array):
    """Encode a uint8 array in the idx format."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def small_arrays(n_train=20, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }


def write_idx_folder(folder, arrays, gzipped=False):
    folder.mkdir(parents=True, exist_ok=True)
    for key, base in data.IDX_FILE_NAMES.items():
        content = idx_bytes(arrays[key])
        if gzipped:
            (folder / f"{base}.gz").write_bytes(gzip.compress(content))
        else:
            (folder / base).write_bytes(content)
    return folder


def npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_error(**arrays):
    """Return the DataError raised when loading an .npz with these arrays."""
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(npz_bytes(**arrays), "bad.npz")
    return info.value


# --- Dataset and to_input ---------------------------------------------------------------


def test_dataset_arrays_read_only():
    dataset = data.make_dataset(name="tiny", **small_arrays())
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        assert not array.flags.writeable
    with pytest.raises(ValueError):
        dataset.x_train[0, 0, 0] = 1


def test_dataset_rejects_unconverted_arrays():
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.float32)
    with pytest.raises(ValueError, match="make_dataset"):
        data.Dataset(name="raw", **arrays)


def test_to_input_shape_and_scale():
    images = np.array([[[0] * 28] * 28, [[255] * 28] * 28], dtype=np.uint8)
    model_input = data.to_input(images)
    assert model_input.shape == (2, 1, 28, 28)
    assert model_input.dtype == np.float32
    assert model_input[0].max() == 0.0
    assert model_input[1].min() == 1.0


def test_to_input_single_image():
    assert data.to_input(np.zeros((28, 28), np.uint8)).shape == (1, 1, 28, 28)


def test_to_input_rejects_floats():
    with pytest.raises(TypeError):
        data.to_input(np.zeros((1, 28, 28), np.float32))


# --- conversions in make_dataset --------------------------------------------------------


def test_float_images_scaled_once():
    arrays = small_arrays()
    expected = arrays["x_train"].copy()
    arrays["x_train"] = expected.astype(np.float64) / 255.0
    dataset = data.make_dataset(name="floats", **arrays)
    assert dataset.x_train.dtype == np.uint8
    assert np.array_equal(dataset.x_train, expected)


def test_flat_images_and_column_labels():
    arrays = small_arrays()
    expected_images, expected_labels = arrays["x_test"].copy(), arrays["y_test"].copy()
    arrays["x_test"] = expected_images.reshape(-1, 784)
    arrays["y_test"] = expected_labels.reshape(-1, 1).astype(np.int64)
    dataset = data.make_dataset(name="flat", **arrays)
    assert np.array_equal(dataset.x_test, expected_images)
    assert np.array_equal(dataset.y_test, expected_labels)
    assert dataset.y_test.dtype == np.uint8


def test_int64_images_in_range_accepted():
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.int64)
    assert data.make_dataset(name="ints", **arrays).x_train.dtype == np.uint8


def test_whole_float_labels_accepted():
    arrays = small_arrays()
    arrays["y_train"] = arrays["y_train"].astype(np.float64)
    assert data.make_dataset(name="float labels", **arrays).y_train.dtype == np.uint8


# --- malformed .npz files ---------------------------------------------------------------


def test_npz_object_array_rejected():
    arrays = small_arrays()
    arrays["y_train"] = np.array([{"label": 1}] * 20, dtype=object)
    err = load_error(**arrays)
    assert err.key == "data.object_array"
    assert err.params["array"] == "y_train"


def test_npz_missing_keys():
    arrays = small_arrays()
    del arrays["x_test"], arrays["y_test"]
    err = load_error(**arrays)
    assert err.key == "data.missing_keys"
    assert err.params["missing"] == "x_test, y_test"


@pytest.mark.parametrize("shape", [(20, 27, 27), (20, 28), (20, 28, 28, 3), (28, 28)])
def test_npz_wrong_image_shape(shape):
    arrays = small_arrays()
    arrays["x_train"] = np.zeros(shape, np.uint8)
    err = load_error(**arrays)
    assert err.key == "data.bad_image_shape"
    assert err.params["shape"] == shape


@pytest.mark.parametrize("bad_label", [10, -1])
def test_npz_label_out_of_range(bad_label):
    arrays = small_arrays()
    labels = arrays["y_test"].astype(np.int64)
    labels[3] = bad_label
    arrays["y_test"] = labels
    err = load_error(**arrays)
    assert err.key == "data.bad_label_values"
    assert err.params["value"] == bad_label
    assert err.params["index"] == 3


def test_npz_fractional_label_rejected():
    arrays = small_arrays()
    arrays["y_train"] = np.full(20, 2.5)
    assert load_error(**arrays).key == "data.bad_label_values"


def test_npz_one_hot_labels_rejected():
    arrays = small_arrays()
    arrays["y_train"] = np.eye(10, dtype=np.uint8)[arrays["y_train"]]
    err = load_error(**arrays)
    assert err.key == "data.bad_label_shape"
    assert "argmax" in str(err)


def test_npz_float_images_0_255_rejected():
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.float32)
    err = load_error(**arrays)
    assert err.key == "data.float_images_range"
    assert "float images must be in 0-1" in str(err)


def test_npz_nan_images_rejected():
    arrays = small_arrays()
    images = arrays["x_test"].astype(np.float32) / 255
    images[0, 0, 0] = np.nan
    arrays["x_test"] = images
    assert load_error(**arrays).key == "data.float_images_range"


def test_npz_int_images_out_of_range():
    arrays = small_arrays()
    arrays["x_train"] = arrays["x_train"].astype(np.int16) * 2
    assert load_error(**arrays).key == "data.int_images_range"


def test_npz_string_images_rejected():
    arrays = small_arrays()
    arrays["x_train"] = np.full((20, 28, 28), "a")
    assert load_error(**arrays).key == "data.bad_image_dtype"


def test_npz_mismatched_counts():
    arrays = small_arrays()
    arrays["y_train"] = arrays["y_train"][:15]
    err = load_error(**arrays)
    assert err.key == "data.count_mismatch"
    assert (err.params["n_images"], err.params["n_labels"]) == (20, 15)


def test_npz_empty_split():
    arrays = small_arrays()
    arrays["x_test"] = np.zeros((0, 28, 28), np.uint8)
    arrays["y_test"] = np.zeros(0, np.uint8)
    assert load_error(**arrays).key == "data.empty_split"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(DataError) as info:
        data.load_npz(path)
    assert info.value.key == "data.empty_file"


def test_text_file_not_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("x_train,y_train\n1,2\n")
    with pytest.raises(DataError) as info:
        data.load_npz(path)
    assert info.value.key == "data.not_npz"


def test_npy_file_not_npz():
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(buffer.getvalue(), "images.npy")
    assert info.value.key == "data.npy_not_npz"


def test_damaged_member_in_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key in data.NPZ_KEYS:
            archive.writestr(f"{key}.npy", b"not an npy array")
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(buffer.getvalue(), "broken.npz")
    assert info.value.key == "data.bad_array"


def test_truncated_npz_rejected():
    raw = npz_bytes(**small_arrays())
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(raw[: len(raw) // 2], "half.npz")
    assert info.value.key == "data.not_npz"


def test_npz_over_size_limit(tmp_path, monkeypatch):
    path = tmp_path / "big.npz"
    path.write_bytes(npz_bytes(**small_arrays()))
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    with pytest.raises(DataError) as info:
        data.load_npz(path)
    assert info.value.key == "data.too_large"
    assert "0.0 MB" in str(info.value)
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(path.read_bytes(), "big.npz")
    assert info.value.key == "data.too_large"


def test_npz_decompressed_size_limit(monkeypatch):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **small_arrays(n_train=2000))
    monkeypatch.setattr(data, "MAX_ARRAY_BYTES", 1_000_000)
    with pytest.raises(DataError) as info:
        data.load_npz_bytes(buffer.getvalue(), "bomb.npz")
    assert info.value.key == "data.too_large"


# --- good .npz files --------------------------------------------------------------------


def test_npz_bytes_and_file_object():
    arrays = small_arrays()
    raw = npz_bytes(**arrays)
    from_bytes = data.load_npz_bytes(raw, "mine.npz")
    from_file = data.load_npz_bytes(io.BytesIO(raw), "mine.npz")
    assert from_bytes.name == "mine"
    for key in data.NPZ_KEYS:
        assert np.array_equal(getattr(from_bytes, key), arrays[key])
        assert np.array_equal(getattr(from_file, key), arrays[key])


def test_upload_source_reason():
    source = data.upload_source(npz_bytes(**small_arrays()), "digits.npz")
    assert source.kind == "upload"
    assert source.reason == "Using your data set digits.npz: 20 training and 10 test images."


def test_npz_path_loaded_once(tmp_path):
    path = tmp_path / "mine.npz"
    path.write_bytes(npz_bytes(**small_arrays()))
    first = data.load_path(path)
    second = data.load_path(path)
    assert first is second
    assert first.x_train is second.x_train


def test_changed_npz_loaded_again(tmp_path):
    path = tmp_path / "mine.npz"
    path.write_bytes(npz_bytes(**small_arrays(seed=1)))
    first = data.load_path(path)
    path.write_bytes(npz_bytes(**small_arrays(n_train=30, seed=2)))
    second = data.load_path(path)
    assert second.n_train == 30
    assert first.n_train == 20


def test_load_path_rejects_other_files(tmp_path):
    path = tmp_path / "images.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(DataError) as info:
        data.load_path(path)
    assert info.value.key == "data.unknown_format"


def test_load_path_missing(tmp_path):
    with pytest.raises(DataError) as info:
        data.load_path(tmp_path / "nothing")
    assert info.value.key == "data.not_found"


# --- idx files --------------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True])
def test_idx_folder_roundtrip(tmp_path, gzipped):
    arrays = small_arrays()
    folder = write_idx_folder(tmp_path / "digits", arrays, gzipped=gzipped)
    dataset = data.load_idx_folder(folder)
    assert dataset.name == "digits"
    for key in data.NPZ_KEYS:
        assert np.array_equal(getattr(dataset, key), arrays[key])


def test_idx_folder_dotted_names(tmp_path):
    arrays = small_arrays()
    folder = tmp_path / "kaggle"
    folder.mkdir()
    for key, base in data.IDX_FILE_NAMES.items():
        (folder / base.replace("-idx", ".idx")).write_bytes(idx_bytes(arrays[key]))
    assert data.load_idx_folder(folder).n_train == 20


def test_idx_folder_missing_file(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", small_arrays())
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as info:
        data.load_idx_folder(folder)
    assert info.value.key == "data.idx_missing_files"
    assert info.value.params["missing"] == "t10k-labels-idx1-ubyte"


def test_idx_bytes_from_uploads():
    arrays = small_arrays()
    files = {f"{base}.gz": gzip.compress(idx_bytes(arrays[key]))
             for key, base in data.IDX_FILE_NAMES.items()}
    dataset = data.load_idx_bytes(files, "upload")
    assert np.array_equal(dataset.y_test, arrays["y_test"])


def test_upload_source_idx_files():
    arrays = small_arrays()
    files = {base: io.BytesIO(idx_bytes(arrays[key])) for key, base in data.IDX_FILE_NAMES.items()}
    source = data.upload_source(files, "my idx files")
    assert source.kind == "upload"
    assert source.dataset.n_test == 10


def test_upload_idx_missing_file():
    with pytest.raises(DataError) as info:
        data.upload_source({"train-images-idx3-ubyte": b""}, "partial")
    assert info.value.key == "data.idx_missing_files"


def test_idx_bad_magic():
    raw = b"\x08\x03" + idx_bytes(np.zeros((2, 28, 28), np.uint8))[2:]
    with pytest.raises(DataError) as info:
        data.parse_idx(raw, "images")
    assert info.value.key == "data.idx_bad_magic"
    assert info.value.params["magic"] == "08030803"


def test_idx_unknown_type_code():
    raw = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    raw[2] = 0x07
    with pytest.raises(DataError) as info:
        data.parse_idx(bytes(raw), "images")
    assert info.value.key == "data.idx_bad_type"
    assert info.value.params["code"] == "0x07"


@pytest.mark.parametrize("size", [0, 3, 10])
def test_idx_header_too_short(size):
    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))[:size]
    with pytest.raises(DataError) as info:
        data.parse_idx(raw, "images")
    assert info.value.key == "data.idx_too_short"


def test_idx_truncated_data():
    raw = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError) as info:
        data.parse_idx(raw[:-5], "images")
    assert info.value.key == "data.idx_size_mismatch"
    assert (info.value.params["expected"], info.value.params["actual"]) == (1568, 1563)


def test_idx_wrong_dims_in_folder(tmp_path):
    arrays = small_arrays()
    arrays["x_train"] = np.zeros((20, 32, 32), np.uint8)
    folder = write_idx_folder(tmp_path / "digits", arrays)
    with pytest.raises(DataError) as info:
        data.load_idx_folder(folder)
    assert info.value.key == "data.bad_image_shape"


def test_idx_damaged_gzip(tmp_path):
    folder = write_idx_folder(tmp_path / "digits", small_arrays(), gzipped=True)
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DataError) as info:
        data.load_idx_folder(folder)
    assert info.value.key == "data.bad_gzip"


def test_real_mnist_folder():
    dataset = data.load_idx_folder(MNIST_DIR)
    assert dataset.name == "MNIST"
    assert dataset.x_train.shape == (60000, 28, 28)
    assert dataset.x_test.shape == (10000, 28, 28)
    assert np.bincount(dataset.y_train).tolist()[:3] == [5923, 6742, 5958]
    label_file = gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read()
    assert hashlib.md5(label_file).hexdigest() == "27ae3e4e09519cfbb04c329615203637"
    assert dataset.y_test.tobytes() == label_file[8:]


def test_real_mnist_same_arrays_twice():
    first = data.resolve_dataset(str(MNIST_DIR)).dataset
    second = data.resolve_dataset(str(MNIST_DIR)).dataset
    assert first is second
    assert first.x_train is second.x_train
    assert not first.x_train.flags.writeable
