"""Random affine augmentation of training batches."""

import numpy as np

from engine.augment import random_affine


def digit_batch(n=4):
    rng = np.random.default_rng(0)
    x = np.zeros((n, 1, 28, 28), dtype=np.float32)
    x[:, 0, 8:20, 12:16] = rng.random((n, 12, 4), dtype=np.float32)
    return x


def test_zero_ranges_give_identity():
    x = digit_batch()
    out = random_affine(x, np.random.default_rng(1), max_degrees=0, max_scale=0, max_shear=0,
                        max_shift=0)
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_output_shape_dtype_and_input_untouched():
    x = digit_batch()
    before = x.copy()
    out = random_affine(x, np.random.default_rng(1))
    assert out.shape == x.shape
    assert out.dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_each_image_gets_its_own_transform():
    x = np.repeat(digit_batch(1), 8, axis=0)
    out = random_affine(x, np.random.default_rng(2))
    differences = [np.abs(out[i] - out[0]).max() for i in range(1, 8)]
    assert min(differences) > 0.01


def test_transform_keeps_ink_near_the_centre():
    x = digit_batch(32)
    out = random_affine(x, np.random.default_rng(3))
    ink_in, ink_out = x.sum(axis=(1, 2, 3)), out.sum(axis=(1, 2, 3))
    # A scale of 1 +- 10% changes the ink area by at most about 21%; nothing leaves the image.
    assert np.all(ink_out > 0.75 * ink_in)
    assert np.all(ink_out < 1.3 * ink_in)
    assert np.all(out >= 0)
    assert np.all(out <= 1 + 1e-6)
