"""Download the four MNIST idx files from public mirrors into a verified cache.

Each file is streamed into a temporary file in the cache folder while its gzip content is
decompressed on the fly and hashed. Only a file whose decompressed bytes match the official
MD5 is moved into place (``os.replace``), so a failed, interrupted or corrupted download never
leaves a file under a name that a later run would trust.

numpy is not needed here: this module only moves and checks bytes.
"""

import hashlib
import http.client
import logging
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

logger = logging.getLogger(__name__)

# Public MNIST mirrors, tried in turn. Each serves the four files as <base><name>.gz.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

# Official MD5 sums of the DECOMPRESSED idx files. Mirrors recompress the files, so the
# .gz bytes differ between mirrors while the decompressed content is the same everywhere.
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# Seconds for connecting and for each read from a mirror (not for the whole file).
DEFAULT_TIMEOUT = 10.0

CHUNK_BYTES = 64 * 1024

# The largest MNIST file decompresses to 47,040,016 bytes. A mirror that sends more is
# rejected before it can fill the memory or the disk.
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024

# Temporary files of a download that was killed (no cleanup ran) are removed after this age.
STALE_PART_SECONDS = 3600


class DownloadError(Exception):
    """Every mirror failed for one of the files.

    ``failures`` lists ``(url, message, is_network_error)`` for each attempt. ``offline`` is
    True when every attempt failed to reach its host or timed out, which usually means there
    is no network.
    """

    def __init__(self, file_name, failures):
        self.file_name = file_name
        self.failures = list(failures)
        details = "; ".join(f"{url}: {message}" for url, message, _ in self.failures)
        super().__init__(f"could not download {file_name} from any mirror ({details})")

    @property
    def offline(self):
        return bool(self.failures) and all(is_network for _, _, is_network in self.failures)


class ChecksumError(Exception):
    """A downloaded file whose decompressed content is not the expected MNIST file."""


def default_cache_dir(environ=None):
    """Return the MNIST cache folder: ``$XDG_CACHE_HOME/digit-lab/mnist``.

    Without ``XDG_CACHE_HOME`` (or with it empty) the base is ``~/.cache``.
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "digit-lab" / "mnist"


def cache_path(cache_dir, file_name):
    """Return where the cache keeps ``file_name`` (gzipped, as the mirrors serve it)."""
    return Path(cache_dir) / f"{file_name}.gz"


def validate_mirrors(mirrors):
    """Return the mirror base URLs as a tuple, each ending in '/'.

    Raises ValueError for an empty list or a URL that is not http(s).
    """
    checked = []
    for mirror in mirrors:
        scheme = urllib.parse.urlsplit(mirror).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"mirror URL must start with http:// or https://, got {mirror!r}")
        checked.append(mirror if mirror.endswith("/") else mirror + "/")
    if not checked:
        raise ValueError("the list of mirrors is empty")
    return tuple(checked)


def download_mnist(cache_dir, mirrors=MIRRORS, progress=None, timeout=DEFAULT_TIMEOUT):
    """Download the MNIST files missing from ``cache_dir`` and return the URLs fetched.

    Files already in the cache are kept; the caller checks them first and deletes the bad
    ones. For each missing file the mirrors are tried in order. A mirror that cannot be
    reached moves to the end of the list, so the next file does not wait for it again.

    ``progress(bytes_done, bytes_total_or_None, file_name)`` is called as bytes arrive, per
    file; ``bytes_total`` is None when the server sends no Content-Length.

    Raises DownloadError when every mirror fails for a file (files fetched before it stay
    in the cache), and OSError when the cache folder cannot be created.
    """
    mirrors = list(validate_mirrors(mirrors))
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(cache_dir)

    fetched = []
    for file_name, md5 in MNIST_MD5.items():
        destination = cache_path(cache_dir, file_name)
        if destination.exists():
            continue

        failures = []
        for mirror in list(mirrors):
            url = f"{mirror}{file_name}.gz"
            try:
                fetch_verified(url, destination, md5, progress=progress, timeout=timeout)
            except (urllib.error.URLError, OSError, http.client.HTTPException,
                    ChecksumError) as err:
                is_network = _is_network_error(err)
                logger.warning("download of %s failed: %s", url, err)
                failures.append((url, _describe(err), is_network))
                if is_network:
                    mirrors.remove(mirror)
                    mirrors.append(mirror)
                continue
            fetched.append(url)
            break
        else:
            raise DownloadError(file_name, failures)
    return fetched


def fetch_verified(url, destination, md5, progress=None, timeout=DEFAULT_TIMEOUT):
    """Stream a gzipped file from ``url`` to ``destination`` if its content matches ``md5``.

    The bytes go to a temporary file beside ``destination``. They are decompressed and
    hashed as they arrive, and the file is renamed into place only when the transfer is
    complete and the MD5 of the decompressed content equals ``md5``. On any failure,
    including KeyboardInterrupt, the temporary file is deleted.

    Raises ChecksumError for content that is not valid gzip or does not match, urllib's
    URLError/HTTPError for failed requests, and TimeoutError when a read times out.
    """
    destination = Path(destination)
    file_name = destination.name
    fd, part_path = tempfile.mkstemp(dir=destination.parent, prefix=f".{file_name}.",
                                     suffix=".part")
    try:
        with os.fdopen(fd, "wb") as part_file, \
                urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            bytes_total = int(length) if length and length.isdigit() else None
            checker = _GzipMD5()
            bytes_done = 0
            if progress:
                progress(0, bytes_total, file_name)

            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                part_file.write(chunk)
                checker.update(chunk)
                bytes_done += len(chunk)
                if progress:
                    progress(bytes_done, bytes_total, file_name)

            part_file.flush()
            os.fsync(part_file.fileno())

        if bytes_total is not None and bytes_done != bytes_total:
            raise ChecksumError(f"received {bytes_done} of {bytes_total} bytes")
        digest = checker.hexdigest()
        if digest != md5:
            raise ChecksumError(f"MD5 of the decompressed content is {digest}, expected {md5}")

        os.replace(part_path, destination)
        logger.info("downloaded %s (%d bytes) into %s", url, bytes_done, destination)
    except BaseException:
        _remove_quietly(part_path)
        raise


def file_md5(data):
    """Return the hex MD5 of ``data`` (bytes)."""
    return hashlib.md5(data).hexdigest()


class _GzipMD5:
    """Incremental gzip decompression plus MD5 of the decompressed bytes."""

    def __init__(self):
        self._decompressor = zlib.decompressobj(wbits=31)
        self._md5 = hashlib.md5()
        self._size = 0

    def update(self, compressed):
        while compressed:
            try:
                data = self._decompressor.decompress(compressed)
            except zlib.error as err:
                raise ChecksumError(f"not valid gzip data ({err})") from None
            self._size += len(data)
            if self._size > MAX_DECOMPRESSED_BYTES:
                raise ChecksumError(f"decompressed content exceeds {MAX_DECOMPRESSED_BYTES} bytes")
            self._md5.update(data)

            # A gzip file may hold several members one after another; start a new
            # decompressor on the bytes that follow the end of a member.
            compressed = b""
            if self._decompressor.eof:
                compressed = self._decompressor.unused_data
                if compressed:
                    self._decompressor = zlib.decompressobj(wbits=31)

    def hexdigest(self):
        if not self._decompressor.eof:
            raise ChecksumError("the gzip data ends early (truncated file)")
        return self._md5.hexdigest()


def _is_network_error(err):
    """Tell whether ``err`` means the host could not be reached or stopped answering."""
    if isinstance(err, urllib.error.HTTPError):
        return False
    if isinstance(err, urllib.error.URLError):
        return True
    return isinstance(err, (TimeoutError, ConnectionError, http.client.HTTPException))


def _describe(err):
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _remove_stale_parts(cache_dir):
    """Delete temporary download files left by a process that was killed mid-download."""
    now = time.time()
    for part in cache_dir.glob(".*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
                logger.info("removed stale partial download %s", part)
        except FileNotFoundError:
            pass
