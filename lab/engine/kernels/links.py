"""Calls from one compiled kernel to another through an address table, instead of linking.

numba links every kernel a function calls into that function's own machine code, and
optimises and generates the whole of it again.  The training driver, evaluation and the
gradient pass each called the forward pass (and two of them the backward pass), so on a
first run the network's code was optimised and generated four times over, and the
driver could not start compiling before every kernel under it was done: ~9 s of the
~28 s of compilation, most of it on the critical path of the first step.

A *linked* call goes through an address instead: `call_linked(address, tag, (args...))`
calls the compiled function at `address` with numba's own calling convention.  The caller
compiles without its callee (they compile in parallel, in any order, each once), and the
caller's cached machine code holds no address: the table is an argument, filled at run
time by `address_of` (lab.engine.network fills a workspace's table before the first call).

Safety: `tag` is a hash of the argument types the callee was compiled for; the caller
compares it with the types it passes and raises instead of calling on a mismatch (an
empty table entry has tag 0 and raises the same way).  So a wrong or missing entry is an
exception, never a call with the wrong layout.  The callee must return nothing (checked).
Exceptions raised in the callee propagate as in a linked call.

Under NUMBA_DISABLE_JIT the table holds indices into a list of the Python functions.
"""

from __future__ import annotations

import zlib

import numba
from numba import types

_NOT_PREPARED = "a linked kernel was called before its address table entry was filled for these types"


def type_tag(argtypes) -> int:
    """A non-zero 62-bit hash of argument types (as numba spells them), stable across processes."""
    text = repr(tuple(types.unliteral(t) for t in argtypes)).encode()
    return ((zlib.crc32(text) << 30) ^ zlib.adler32(text)) | 1


if numba.config.DISABLE_JIT:
    _python_targets: list = []

    def address_of(dispatcher, argtypes) -> tuple[int, int]:
        """(index + 1 of the Python function, 1) for a table entry (no compilation here)."""
        _python_targets.append(dispatcher)
        return len(_python_targets), 1

    def call_linked(address, tag, args):
        """Call the function a table entry names with the arguments in the tuple `args`."""
        if tag == 0:
            raise RuntimeError(_NOT_PREPARED)
        _python_targets[address - 1](*args)

else:
    from numba.core import cgutils
    from numba.extending import intrinsic

    def address_of(dispatcher, argtypes) -> tuple[int, int]:
        """(address, tag) of `dispatcher` compiled (or loaded from the cache) for `argtypes`."""
        argtypes = tuple(types.unliteral(t) for t in argtypes)
        dispatcher.compile(argtypes)
        cres = dispatcher.overloads[argtypes]
        if cres.signature.return_type != types.none:
            raise TypeError(f"{dispatcher.__name__} returns {cres.signature.return_type}: "
                            "a linked kernel returns nothing")
        address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
        if not address:
            raise RuntimeError(f"no machine code for {dispatcher.__name__}{argtypes}")
        return address, type_tag(argtypes)

    @intrinsic
    def call_linked(typingctx, address, tag, args):
        """Call the kernel at `address` (its table entry's tag must be `tag`) with the tuple `args`."""
        if not isinstance(args, types.BaseTuple):
            return None
        argtypes = tuple(args.types)
        expected = type_tag(argtypes)

        def codegen(context, builder, sig, llargs):
            addr, got, packed = llargs
            mismatch = builder.icmp_signed("!=", got, context.get_constant(types.int64, expected))
            with cgutils.if_unlikely(builder, mismatch):
                context.call_conv.return_user_exc(builder, RuntimeError, (_NOT_PREPARED,))
            fnty = context.call_conv.get_function_type(types.none, argtypes)
            fn = builder.inttoptr(addr, fnty.as_pointer())
            values = [builder.extract_value(packed, i) for i in range(len(argtypes))]
            status, _ = context.call_conv.call_function(builder, fn, types.none, argtypes, values)
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return context.get_dummy_value()

        return types.none(types.int64, types.int64, args), codegen
