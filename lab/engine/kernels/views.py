"""Borrowed views into the engine's flat buffers, without reference counting.

Every node, weight matrix and bias of a network is a slice of a few flat buffers
(kernels/network.py).  Taken the ordinary way, `buf[a:b].reshape((r, c))`, each view
costs about 33 ns: an atomic increment and decrement of the buffer's reference count
and a call into numba's reshape helper.  A small-network training step takes about a
hundred views, 6% of the step.  These views point into the buffer without owning it
(no meminfo: numba's reference counting skips a null one), at about 1 ns.

Rules that keep that safe, all true of the engine's kernels: a borrowed view lives only
inside the compiled call that made it (it is never returned to Python or stored), and
the buffer it points into is an argument of that call, so the caller keeps it alive.
Offsets and shapes come from the op table that `lab.engine.network` builds and checks;
like any unchecked index they are not bounds-checked here.

With NUMBA_DISABLE_JIT=1 (the kernel bodies run as Python for coverage) they are
ordinary numpy views.
"""

from __future__ import annotations

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


def _view_codegen(context, builder, sig, args):
    """Build an array struct over buf's data from element `start`, C-contiguous."""
    buf_type, out_type = sig.args[0], sig.return_type
    src = make_array(buf_type)(context, builder, args[0])
    start, *shape = (context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:]))
    itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(buf_type.dtype)))
    strides = [itemsize]
    for extent in reversed(shape[1:]):
        strides.insert(0, builder.mul(strides[0], extent))
    out = make_array(out_type)(context, builder)
    populate_array(out, data=cgutils.gep(builder, src.data, start), shape=shape, strides=strides,
                   itemsize=itemsize, meminfo=None)
    return out._getvalue()


if numba.config.DISABLE_JIT:

    def borrowed_1d(buf, start, n):
        """buf[start:start + n]."""
        return buf[start:start + n]

    def borrowed_2d(buf, start, rows, cols):
        """buf[start:start + rows*cols] as a (rows, cols) C-contiguous array."""
        return buf[start:start + rows * cols].reshape((rows, cols))

else:

    def _flat(buf):
        return isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"

    @intrinsic
    def borrowed_1d(typingctx, buf, start, n):
        """buf[start:start + n]."""
        if _flat(buf):
            return types.Array(buf.dtype, 1, "C")(buf, start, n), _view_codegen

    @intrinsic
    def borrowed_2d(typingctx, buf, start, rows, cols):
        """buf[start:start + rows*cols] as a (rows, cols) C-contiguous array."""
        if _flat(buf):
            return types.Array(buf.dtype, 2, "C")(buf, start, rows, cols), _view_codegen
