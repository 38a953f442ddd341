"""Measure loading full MNIST from the cache: time, peak memory and memory per extra session.

The script fills a temporary cache folder with the four MNIST .gz files from --mnist-dir (the
same bytes a download stores), then, in this one process:

1. resolves MNIST from that cache and records the time, the resident set size (RSS) before and
   after, and the peak RSS during the load;
2. resolves it again, as a second browser session would, and records the RSS it added;
3. clears the process cache and times --repeats more cold loads.

Memory figures come from /proc/self/status (VmRSS, VmHWM), so the script runs on Linux only.

Usage:
    python scripts/measure_data.py --mnist-dir DIR [--repeats 3]
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine import data, download  # noqa: E402  (needs the repository root on sys.path)


def memory_mb():
    """Return ``(VmRSS, VmHWM)`` of this process in MB (1e6 bytes)."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024 / 1e6
    return values["VmRSS"], values["VmHWM"]


def reset_peak():
    """Reset VmHWM to the current RSS (Linux 4.0 and later)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-dir", type=Path, required=True,
                        help="folder with the four MNIST .gz files to put in the cache")
    parser.add_argument("--repeats", type=int, default=3, help="cold loads to time (default 3)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        cache_dir = Path(folder) / "digit-lab" / "mnist"
        cache_dir.mkdir(parents=True)
        for name in download.MNIST_MD5:
            shutil.copyfile(args.mnist_dir / f"{name}.gz", download.cache_path(cache_dir, name))

        rss_before, _ = memory_mb()
        reset_peak()
        started = time.perf_counter()
        first = data.resolve_mnist(cache_dir=cache_dir, download_allowed=False, environ={})
        first_seconds = time.perf_counter() - started
        rss_loaded, peak_loaded = memory_mb()
        assert first.kind == "cache", first.reason

        started = time.perf_counter()
        second = data.resolve_mnist(cache_dir=cache_dir, download_allowed=False, environ={})
        second_seconds = time.perf_counter() - started
        rss_second, _ = memory_mb()
        assert second.dataset is first.dataset

        cold_seconds = []
        for _ in range(args.repeats):
            data.clear_cache()
            started = time.perf_counter()
            data.resolve_mnist(cache_dir=cache_dir, download_allowed=False, environ={})
            cold_seconds.append(time.perf_counter() - started)

    dataset = first.dataset
    array_mb = sum(a.nbytes for a in (dataset.x_train, dataset.y_train, dataset.x_test,
                                      dataset.y_test)) / 1e6
    report = {
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "array_mb": round(array_mb, 1),
        "first_load_seconds": round(first_seconds, 3),
        "cold_load_seconds_median": round(statistics.median(cold_seconds), 3),
        "cold_load_seconds_all": [round(s, 3) for s in cold_seconds],
        "rss_before_mb": round(rss_before, 1),
        "rss_with_mnist_mb": round(rss_loaded, 1),
        "peak_rss_during_load_mb": round(peak_loaded, 1),
        "second_resolve_seconds": round(second_seconds, 4),
        "rss_added_by_second_resolve_mb": round(rss_second - rss_loaded, 1),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
