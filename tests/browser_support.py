"""Fixtures and helpers for tests that drive the app in a real Streamlit server and Chromium.

``tests/conftest.py`` imports the fixtures, so a test only names them::

    @pytest.mark.browser
    def test_draw_page_opens(streamlit_server, new_browser_context):
        page = new_browser_context(locale="zh-CN").new_page()
        open_app(page, streamlit_server, "draw", wait_text="画一个数字")
        streamlit_server.assert_clean_log()

The server runs ``python -m streamlit run streamlit_app.py`` from the repository root on
127.0.0.1 in its own process group, with its output in a log file. The browser is Debian's
Chromium driven by Playwright's sync API; every request that is not to 127.0.0.1 or
localhost is aborted. Without Chromium or Playwright the tests are skipped, unless the
environment variable ``CI`` is set: then they fail, because CI installs both.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# Seconds until /_stcore/health must return 200 (a cold start took about 4 s on a 2-core machine).
SERVER_START_TIMEOUT = 90
SERVER_STOP_TIMEOUT = 10
# Milliseconds Playwright waits for a page, an element or some text before it fails.
BROWSER_TIMEOUT_MS = 30_000

# Lines in the server log that mean a page crashed or a thread touched Streamlit state.
LOG_PROBLEMS = ("Traceback", "missing ScriptRunContext")


def default_data_path():
    """Return the data set the test servers use: real MNIST next to the repository, else the subset.

    Setting ``DIGIT_LAB_DATA`` to it keeps the app from downloading MNIST during tests, since
    no request may leave 127.0.0.1.
    """
    mnist_dir = REPO_ROOT.parent / "shared" / "data" / "mnist"
    if (mnist_dir / "train-images-idx3-ubyte.gz").is_file():
        return str(mnist_dir)
    return str(REPO_ROOT / "data" / "mnist-5k.npz")


def skip_or_fail(reason):
    """Skip the test with ``reason``, or fail it when the environment variable ``CI`` is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so browser tests must run)", pytrace=False)
    pytest.skip(reason)


def free_port():
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# Streamlit server
# ---------------------------------------------------------------------------

class StreamlitServer:
    """A running ``streamlit run`` process: its ``url``, ``port``, ``log_path`` and ``process``."""

    def __init__(self, process, port, log_path):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = Path(log_path)

    def log_text(self):
        """Return everything the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_problems(self):
        """Return the log lines that contain a ``LOG_PROBLEMS`` marker."""
        return [line for line in self.log_text().splitlines()
                if any(marker in line for marker in LOG_PROBLEMS)]

    def assert_clean_log(self):
        """Fail if the log shows a traceback or a "missing ScriptRunContext" warning."""
        problems = self.log_problems()
        assert problems == [], f"server log {self.log_path} has problems:\n{self.log_text()[-4000:]}"

    def stop(self):
        """End the server's process group: SIGTERM, then SIGKILL after ``SERVER_STOP_TIMEOUT`` s."""
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=SERVER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            logger.warning("Streamlit server pid %d ignored SIGTERM; sending SIGKILL", self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=SERVER_STOP_TIMEOUT)
        except ProcessLookupError:
            pass


def _health_ok(url):
    # An empty ProxyHandler ignores http_proxy settings: the request must stay on 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def start_streamlit(log_path, env=None, script="streamlit_app.py", timeout=SERVER_START_TIMEOUT):
    """Start ``python -m streamlit run script`` on a free port and wait until it is healthy.

    ``env`` adds to or overrides the inherited environment (for example
    ``{"DIGIT_LAB_DATA": str(path)}``). ``OPENBLAS_NUM_THREADS`` defaults to 1 and
    ``DIGIT_LAB_DATA`` to ``default_data_path()``. The server's
    output goes to ``log_path``. Returns a ``StreamlitServer``; call ``stop()`` when done.
    Fails the test, showing the log, if the server exits or is not healthy within ``timeout`` s.
    """
    port = free_port()
    server_env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "DIGIT_LAB_DATA": default_data_path(),
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "streamlit", "run", script,
        "--server.address", "127.0.0.1",
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]

    log_path = Path(log_path)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=server_env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    server = StreamlitServer(process, port, log_path)

    deadline = time.monotonic() + timeout
    while not _health_ok(server.url):
        if process.poll() is not None:
            pytest.fail(f"Streamlit exited with code {process.returncode}:\n{server.log_text()[-4000:]}")
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"Streamlit start timed out: /_stcore/health not OK after {timeout} s:\n{server.log_text()[-4000:]}")
        time.sleep(0.2)

    return server


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory):
    """One server for the whole test session, started with the default environment."""
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    server = start_streamlit(log_path)
    yield server
    server.stop()


@pytest.fixture
def start_streamlit_server(tmp_path):
    """Factory ``start_streamlit_server(env=None, script="streamlit_app.py")`` for a server of one's own.

    Use it when a test needs its own environment (``env={"DIGIT_LAB_DATA": ...}``). Each server
    logs to ``tmp_path / "server-<n>.log"`` and is stopped when the test ends.
    """
    servers = []

    def start(env=None, script="streamlit_app.py"):
        log_path = tmp_path / f"server-{len(servers)}.log"
        server = start_streamlit(log_path, env=env, script=script)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# ---------------------------------------------------------------------------
# Chromium
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium ``playwright.sync_api.Browser``, shared by the test session."""
    if not os.access(CHROMIUM_PATH, os.X_OK):
        skip_or_fail(f"{CHROMIUM_PATH} not found: install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed: python -m pip install -r requirements.txt")

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
    except Exception:
        playwright.stop()
        raise
    yield browser
    browser.close()
    playwright.stop()


def _block_non_local(route):
    host = urlsplit(route.request.url).hostname
    if host in LOCAL_HOSTS:
        route.continue_()
    else:
        logger.info("Blocked request to %s", route.request.url)
        route.abort()


@pytest.fixture
def new_browser_context(chromium):
    """Factory ``new_browser_context(locale="en-US", **kwargs)`` returning a Playwright ``BrowserContext``.

    ``locale`` sets ``navigator.language`` (and so ``st.context.locale``), for example
    ``"zh-CN"``. Other keyword arguments go to ``Browser.new_context`` (``viewport`` defaults to
    1280x900). Requests to hosts other than 127.0.0.1 and localhost are aborted, and every
    context is closed when the test ends.
    """
    contexts = []

    def make(locale="en-US", **kwargs):
        kwargs.setdefault("viewport", {"width": 1280, "height": 900})
        context = chromium.new_context(locale=locale, **kwargs)
        context.set_default_timeout(BROWSER_TIMEOUT_MS)
        context.route("**/*", _block_non_local)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def app_page(new_browser_context):
    """A fresh Playwright ``Page`` in an English (en-US) context."""
    return new_browser_context().new_page()


# ---------------------------------------------------------------------------
# Page helpers
# ---------------------------------------------------------------------------

def app_url(server, path="", query=None):
    """Return the URL of page ``path`` with ``query``: "" (Train, the default), "draw", "duel", "glossary"."""
    url = f"{server.url}/{path.lstrip('/')}"
    if query:
        url += "?" + urlencode(query)
    return url


def wait_for_script_idle(page, timeout_ms=BROWSER_TIMEOUT_MS):
    """Wait until the app's script run has finished (``stApp`` reports ``notRunning``)."""
    page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(
        timeout=timeout_ms)


def open_app(page, server, path="", query=None, wait_text=None, timeout_ms=BROWSER_TIMEOUT_MS):
    """Open page ``path`` of the app and wait until its script run is done.

    ``query`` is a dict of URL query parameters (``{"lang": "en"}``). With ``wait_text``,
    also wait until that text is visible in the main area.
    """
    page.goto(app_url(server, path, query), timeout=timeout_ms)
    page.locator('[data-testid="stMainBlockContainer"]').wait_for(timeout=timeout_ms)
    if wait_text is not None:
        main_area(page).get_by_text(wait_text).first.wait_for(timeout=timeout_ms)
    wait_for_script_idle(page, timeout_ms)


def main_area(page):
    """Return the locator of the page's own content (``stMainBlockContainer``), without the sidebar."""
    return page.locator('[data-testid="stMainBlockContainer"]')


def main_text(page):
    """Return the visible text of the page's own content, without the sidebar."""
    return main_area(page).inner_text()


def wait_for_stable_text(page, quiet_ms=500, timeout_ms=BROWSER_TIMEOUT_MS):
    """Wait until the main area's text stays the same for ``quiet_ms``, and return that text.

    Use it before reading a whole page: elements such as tables render after the script run
    has finished. Fails with TimeoutError if the text still changes after ``timeout_ms``.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    text = main_text(page)
    stable_since = time.monotonic()
    while time.monotonic() - stable_since < quiet_ms / 1000:
        if time.monotonic() > deadline:
            raise TimeoutError(f"main area text still changing after {timeout_ms} ms")
        page.wait_for_timeout(100)
        current = main_text(page)
        if current != text:
            text, stable_since = current, time.monotonic()
    return text


# Text Streamlit draws inside its own widgets (the file uploader's "Drag and drop file here",
# "Browse files" and "Upload", icon ligature names). It is English in every language.
STREAMLIT_CHROME_SELECTORS = (
    '[data-testid="stFileUploaderDropzone"]',
    '[data-testid="stIconMaterial"]',
)

_OWN_TEXT_SCRIPT = """([root, skip]) => {
    const parts = [];
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const parent = node.parentElement;
        if (!parent || parent.closest(skip) || !parent.checkVisibility()) continue;
        const text = node.textContent.trim();
        if (text) parts.push(text);
    }
    return parts.join("\\n");
}"""


def own_text(page):
    """Return the main area's visible text without the text Streamlit draws in its own widgets.

    This is the text the app's locale files are responsible for, one text node a line.
    """
    root = main_area(page).element_handle()
    return page.evaluate(_OWN_TEXT_SCRIPT, [root, ", ".join(STREAMLIT_CHROME_SELECTORS)])


def assert_no_app_error(page):
    """Fail if the page shows an exception box or Streamlit's "Page not found" dialog."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert page.get_by_text("Page not found").count() == 0, f"{page.url} is not a page of the app"


def sidebar(page):
    """Return the locator of the sidebar (navigation and language switch)."""
    return page.locator('[data-testid="stSidebar"]')
