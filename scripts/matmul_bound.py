"""Measure the fastest a dense float32 engine can train a network on this machine's one core.

A training step of a multilayer perceptron is mostly matrix products. Each Linear layer has one
in the forward pass and one for its weight gradient. Each layer but the first also has one for
the gradient of its input (the first layer's input is the data batch).

This script times each of those products alone, on warm caches, with NumPy's BLAS on one
thread, and adds them up. No engine can take a step in less time than that sum without doing
fewer multiplications, so ``batch / sum`` is an upper bound on samples/s. The script also
reports the rate of a large 1024 x 1024 x 1024 product for comparison.

Usage:
    python scripts/matmul_bound.py [--layers 784,256,128,10] [--batch-size 256]
"""

import argparse
import os
import timeit

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402  (imported after the thread count is set)


def best_seconds(function, number, repeats=7):
    """Return the shortest time of one call of ``function`` over ``repeats`` rounds."""
    return min(timeit.repeat(function, number=number, repeat=repeats)) / number


def step_products(sizes, batch_size):
    """Return ``(m, k, n)`` for every product of one training step, as ``(m x k) @ (k x n)``."""
    products = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        products.append((batch_size, n_in, n_out))      # forward: x @ weight
        products.append((n_in, batch_size, n_out))      # weight gradient: x.T @ grad
    for n_in, n_out in zip(sizes[1:], sizes[2:]):
        products.append((batch_size, n_out, n_in))      # input gradient: grad @ weight.T
    return products


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="784,256,128,10",
                        help="layer widths, input first (default 784,256,128,10)")
    parser.add_argument("--batch-size", type=int, default=256, help="default 256")
    args = parser.parse_args()
    sizes = [int(width) for width in args.layers.split(",")]
    rng = np.random.default_rng(0)

    square = rng.random((1024, 1024), dtype=np.float32)
    peak = 1024 ** 3 / best_seconds(lambda: square @ square, number=5)
    print(f"1024 x 1024 x 1024 product: {peak / 1e9:.1f} GMAC/s")

    total_seconds = 0.0
    total_macs = 0
    for m, k, n in step_products(sizes, args.batch_size):
        a = rng.random((m, k), dtype=np.float32)
        b = rng.random((k, n), dtype=np.float32)
        seconds = best_seconds(lambda: a @ b, number=max(1, 20_000_000 // (m * k * n)))
        total_seconds += seconds
        total_macs += m * k * n
        print(f"({m} x {k}) @ ({k} x {n}): {seconds * 1e6:9.1f} us, "
              f"{m * k * n / seconds / 1e9:5.1f} GMAC/s")

    print(f"one step: {total_macs:,} multiply-adds, {total_seconds * 1e3:.3f} ms of products "
          f"alone ({total_macs / peak * 1e3:.3f} ms at the 1024^3 rate)")
    print(f"upper bound: {args.batch_size / total_seconds:,.0f} samples/s")


if __name__ == "__main__":
    main()
