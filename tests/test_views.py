"""Borrowed views (kernels/views.py) behave as the slices they replace."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from lab.engine.kernels._jit import jit
from lab.engine.kernels.views import borrowed_1d, borrowed_2d


@jit
def _views(buf, start, rows, cols):
    return borrowed_2d(buf, start, rows, cols).copy(), borrowed_1d(buf, start, rows * cols).copy()


@jit
def _scale_through_view(buf, start, rows, cols, factor):
    v = borrowed_2d(buf, start, rows, cols)
    for i in range(rows):
        for j in range(cols):
            v[i, j] *= factor
    return v.shape[0], v.shape[1], v.strides[0], v.strides[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("start,rows,cols", [(0, 3, 4), (5, 1, 7), (11, 4, 1), (2, 0, 3)])
def test_borrowed_views_equal_slices(dtype, start, rows, cols):
    buf = np.arange(40).astype(dtype)
    two, one = _views(buf, start, rows, cols)
    np.testing.assert_array_equal(two, buf[start:start + rows * cols].reshape(rows, cols))
    np.testing.assert_array_equal(one, buf[start:start + rows * cols])


def test_writes_through_a_borrowed_view_reach_the_buffer():
    buf = np.arange(30, dtype=np.float64)
    expected = buf.copy()
    expected[6:6 + 12] *= -2.0
    shape_and_strides = _scale_through_view(buf, 6, 3, 4, -2.0)
    np.testing.assert_array_equal(buf, expected)
    assert shape_and_strides == (3, 4, 4 * 8, 8)


@pytest.mark.skipif(numba.config.DISABLE_JIT, reason="typing only happens when compiling")
def test_only_flat_contiguous_buffers_can_be_borrowed():
    with pytest.raises(numba.TypingError):
        _views(np.zeros((4, 5)), 0, 2, 2)  # 2-D
    with pytest.raises(numba.TypingError):
        _views(np.zeros(20)[::2], 0, 2, 2)  # strided
