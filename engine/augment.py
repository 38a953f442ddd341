"""Data augmentation: small random rotations, scalings, shears and shifts of training images.

Digits drawn with a mouse are slanted, sized and placed a little differently from MNIST's. A
network that gets every training image slightly moved each epoch learns shapes rather than
exact pixel positions, and reads such drawings better.
"""

import numpy as np

SIZE = 28
CENTRE = 14.0  # MNIST centres each digit's centre of mass here
# Pixel offsets of the output grid from the centre, shape (784,) each.
_GRID_Y, _GRID_X = np.mgrid[0:SIZE, 0:SIZE].reshape(2, -1).astype(np.float32) - CENTRE


def random_affine(x, rng, max_degrees=12.0, max_scale=0.1, max_shear=0.15, max_shift=2.0):
    """Return a new batch with each image of ``x`` ``(N, 1, 28, 28)`` moved by its own random
    affine transform about the centre (14, 14).

    Each image draws, uniformly: a rotation in +-``max_degrees`` degrees, a scale factor in
    1 +- ``max_scale``, a horizontal shear in +-``max_shear`` and a shift in +-``max_shift``
    pixels along each axis. Pixels are sampled bilinearly; those from outside the image are 0.
    The work is vectorised over the batch.
    """
    n = len(x)
    angle = np.deg2rad(rng.uniform(-max_degrees, max_degrees, n)).astype(np.float32)
    scale = (1 + rng.uniform(-max_scale, max_scale, n)).astype(np.float32)
    shear = rng.uniform(-max_shear, max_shear, n).astype(np.float32)
    shift_x, shift_y = rng.uniform(-max_shift, max_shift, (2, n)).astype(np.float32)

    # Inverse mapping: for every output pixel, the position in the input it samples from.
    cos = (np.cos(angle) / scale)[:, None]
    sin = (np.sin(angle) / scale)[:, None]
    source_x = cos * _GRID_X + (shear[:, None] - sin) * _GRID_Y + CENTRE - shift_x[:, None]
    source_y = sin * _GRID_X + cos * _GRID_Y + CENTRE - shift_y[:, None]

    # Bilinear sampling: a weighted sum of the four input pixels around each source position.
    # A one-pixel zero border lets positions just outside the image read 0.
    padded = np.pad(x.reshape(n, SIZE, SIZE), ((0, 0), (1, 1), (1, 1))).reshape(n, -1)
    left, top = np.floor(source_x), np.floor(source_y)
    weight_x, weight_y = source_x - left, source_y - top
    out = np.zeros((n, SIZE * SIZE), dtype=np.float32)
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        column, row = left + dx, top + dy
        inside = (column >= 0) & (column < SIZE) & (row >= 0) & (row < SIZE)
        index = (np.clip(row, -1, SIZE) + 1).astype(np.int64) * (SIZE + 2) \
            + (np.clip(column, -1, SIZE) + 1).astype(np.int64)
        row_weight = weight_y if dy else 1 - weight_y
        column_weight = weight_x if dx else 1 - weight_x
        weight = row_weight * column_weight
        out += np.where(inside, np.take_along_axis(padded, index, axis=1), 0) * weight
    return out.reshape(n, 1, SIZE, SIZE)
