"""Downloading MNIST into the cache and choosing the source, against mirrors on 127.0.0.1.

Each mirror is an http.server started by the test on 127.0.0.1 that serves the real MNIST .gz
files. A guard makes any request to another host fail the test.
"""

import gzip
import http.server
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from engine import data, download
from engine.errors import DataError

MNIST_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist"
FILE_NAMES = list(download.MNIST_MD5)


class QuietServer(http.server.ThreadingHTTPServer):
    """Ignore clients that hang up mid-transfer, as an interrupted download does."""

    def handle_error(self, request, client_address):
        pass


class Mirror:
    """An HTTP server on 127.0.0.1 serving ``{file name: bytes}`` and recording each request."""

    def __init__(self, files, truncate=()):
        self.files = dict(files)
        self.truncate = set(truncate)
        self.requests = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = urllib.parse.urlsplit(self.path).path.rsplit("/", 1)[-1]
                mirror.requests.append(name)
                body = mirror.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in mirror.truncate:
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/mnist/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def closed_port_url():
    """Return a 127.0.0.1 URL whose port has no listener (the connection is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture(scope="module")
def mnist_gz():
    return {f"{name}.gz": (MNIST_DIR / f"{name}.gz").read_bytes() for name in FILE_NAMES}


@pytest.fixture
def mirrors():
    started = []

    def start(files, **options):
        mirror = Mirror(files, **options)
        started.append(mirror)
        return mirror

    yield start
    for mirror in started:
        mirror.close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Give each test an empty cache, no DIGIT_LAB_DATA, no proxy and only 127.0.0.1."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    for variable in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)

    real_urlopen = urllib.request.urlopen

    def loopback_only(url, *args, **kwargs):
        host = urllib.parse.urlsplit(url).hostname
        assert host == "127.0.0.1", f"test tried to reach {url}"
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", loopback_only)
    data.clear_cache()
    yield
    data.clear_cache()


def cache_dir():
    return download.default_cache_dir()


def cached_names():
    folder = cache_dir()
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def corrupted(gz_bytes):
    """Return a valid gzip of the same content with one byte changed."""
    content = bytearray(gzip.decompress(gz_bytes))
    content[-1] ^= 0xFF
    return gzip.compress(bytes(content), compresslevel=1)


# --- download and cache -----------------------------------------------------------------


def test_download_fills_cache_once(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)

    first = data.resolve_mnist(mirrors=[mirror.url])
    assert first.kind == "download"
    assert first.dataset.name == "MNIST"
    assert first.dataset.x_train.shape == (60000, 28, 28)
    assert sorted(mirror.requests) == sorted(mnist_gz)
    assert cached_names() == sorted(mnist_gz)

    second = data.resolve_mnist(mirrors=[mirror.url])
    assert second.kind == "cache"
    assert second.dataset is first.dataset
    assert len(mirror.requests) == 4


def test_cache_used_by_new_process(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    first = data.resolve_mnist(mirrors=[mirror.url])
    data.clear_cache()

    again = data.resolve_mnist(mirrors=[mirror.url])
    assert again.kind == "cache"
    assert again.reason == f"Using MNIST from the cache at {cache_dir()}."
    assert len(mirror.requests) == 4
    assert np.array_equal(again.dataset.x_test, first.dataset.x_test)


def test_concurrent_resolves_download_once(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    results = []

    def resolve():
        results.append(data.resolve_mnist(mirrors=[mirror.url]))

    threads = [threading.Thread(target=resolve) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(mirror.requests) == 4
    assert len({id(result.dataset) for result in results}) == 1


def test_progress_reports_bytes(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    calls = []
    data.resolve_mnist(mirrors=[mirror.url], progress=lambda *args: calls.append(args))

    for gz_name, body in mnist_gz.items():
        file_calls = [call for call in calls if call[2] == gz_name]
        assert file_calls[0] == (0, len(body), gz_name)
        assert file_calls[-1] == (len(body), len(body), gz_name)
        done = [call[0] for call in file_calls]
        assert done == sorted(done)


def test_404_mirror_falls_through(mirrors, mnist_gz):
    empty = mirrors({})
    good = mirrors(mnist_gz)

    source = data.resolve_mnist(mirrors=[empty.url, good.url])
    assert source.kind == "download"
    assert len(empty.requests) == 4
    assert len(good.requests) == 4


def test_closed_port_falls_through(mirrors, mnist_gz):
    good = mirrors(mnist_gz)
    source = data.resolve_mnist(mirrors=[closed_port_url(), good.url])
    assert source.kind == "download"
    assert len(good.requests) == 4


def test_silent_mirror_times_out(mirrors, mnist_gz):
    good = mirrors(mnist_gz)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/mnist/"
        source = data.resolve_mnist(mirrors=[silent_url, good.url], timeout=0.5)
    assert source.kind == "download"
    assert len(good.requests) == 4


def test_corrupted_file_not_cached(mirrors, mnist_gz):
    files = dict(mnist_gz)
    files["train-labels-idx1-ubyte.gz"] = corrupted(files["train-labels-idx1-ubyte.gz"])
    bad = mirrors(files)

    source = data.resolve_mnist(mirrors=[bad.url])
    assert source.kind == "bundled"
    assert source.reason_key == "data.source.bundled_download_failed"
    assert "MD5" in source.reason
    assert cached_names() == ["train-images-idx3-ubyte.gz"]


def test_corrupted_file_taken_from_next_mirror(mirrors, mnist_gz):
    files = dict(mnist_gz)
    files["t10k-images-idx3-ubyte.gz"] = corrupted(files["t10k-images-idx3-ubyte.gz"])
    bad = mirrors(files)
    good = mirrors(mnist_gz)

    source = data.resolve_mnist(mirrors=[bad.url, good.url])
    assert source.kind == "download"
    assert good.requests == ["t10k-images-idx3-ubyte.gz"]


def test_truncated_file_not_cached(mirrors, mnist_gz):
    bad = mirrors(mnist_gz, truncate={"train-images-idx3-ubyte.gz"})
    source = data.resolve_mnist(mirrors=[bad.url])
    assert source.kind == "bundled"
    assert "received" in source.reason_params["error"]
    assert cached_names() == []


def test_non_gzip_body_not_cached(mirrors, mnist_gz):
    files = dict(mnist_gz)
    files["train-images-idx3-ubyte.gz"] = b"<html>mirror moved</html>"
    bad = mirrors(files)
    source = data.resolve_mnist(mirrors=[bad.url])
    assert source.kind == "bundled"
    assert "gzip" in source.reason_params["error"]
    assert cached_names() == []


def test_damaged_cache_file_downloaded_again(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    data.resolve_mnist(mirrors=[mirror.url])
    damaged = download.cache_path(cache_dir(), "t10k-labels-idx1-ubyte")
    damaged.write_bytes(corrupted(damaged.read_bytes()))
    data.clear_cache()

    source = data.resolve_mnist(mirrors=[mirror.url])
    assert source.kind == "download"
    assert mirror.requests[4:] == ["t10k-labels-idx1-ubyte.gz"]


def test_interrupted_download_leaves_no_file(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)

    def interrupt(done, total, name):
        if done > 100_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        data.resolve_mnist(mirrors=[mirror.url], progress=interrupt)
    assert cached_names() == []


# --- falling back to the bundled subset -------------------------------------------------


def test_unreachable_mirrors_use_bundled(monkeypatch):
    unreachable = [closed_port_url(), closed_port_url()]
    source = data.resolve_mnist(mirrors=unreachable)
    assert source.kind == "bundled"
    assert source.reason_key == "data.source.bundled_offline"
    assert source.reason.startswith("No network: using the bundled 5,000-image subset")
    assert source.dataset.name == "MNIST-5k"
    assert source.dataset.n_train == 4000

    def fail_if_called(*args, **kwargs):
        raise AssertionError("download retried within RETRY_DOWNLOAD_SECONDS")

    monkeypatch.setattr(download, "download_mnist", fail_if_called)
    again = data.resolve_mnist(mirrors=unreachable)
    assert again.reason_key == "data.source.bundled_offline"


def test_download_off_uses_bundled(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    source = data.resolve_mnist(mirrors=[mirror.url], download_allowed=False)
    assert source.kind == "bundled"
    assert source.reason_key == "data.source.bundled_no_download"
    assert mirror.requests == []


def test_unwritable_cache_uses_bundled(tmp_path, mirrors, mnist_gz):
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    mirror = mirrors(mnist_gz)
    source = data.resolve_mnist(mirrors=[mirror.url], cache_dir=blocker / "mnist")
    assert source.kind == "bundled"
    assert source.reason_key == "data.source.bundled_download_failed"


def test_mirror_must_be_http():
    with pytest.raises(ValueError, match="http"):
        data.resolve_mnist(mirrors=["file:///etc/"])


# --- folders named by argument or environment -------------------------------------------


def test_env_folder_comes_first(monkeypatch, mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    monkeypatch.setenv(data.ENV_VAR, str(MNIST_DIR))
    source = data.resolve_mnist(mirrors=[mirror.url])
    assert source.kind == "env"
    assert source.dataset.name == "MNIST"
    assert source.reason == f"Using MNIST from {MNIST_DIR.resolve()} (set by DIGIT_LAB_DATA)."
    assert mirror.requests == []


def test_env_folder_invalid_raises(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DataError) as info:
        data.resolve_mnist(mirrors=[closed_port_url()])
    assert info.value.key == "data.env_invalid"
    assert "DIGIT_LAB_DATA" in str(info.value)


def test_explicit_path_beats_env(monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "missing"))
    source = data.resolve_mnist(MNIST_DIR)
    assert source.kind == "path"


def test_cli_spec_mnist_uses_resolver(mirrors, mnist_gz):
    mirror = mirrors(mnist_gz)
    source = data.resolve_dataset("MNIST", mirrors=[mirror.url])
    assert source.kind == "download"
    assert data.load_dataset("mnist", mirrors=[mirror.url]) is source.dataset
