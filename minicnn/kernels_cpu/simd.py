"""Vector registers in Numba kernels: a `Vec` is one SIMD register of LANES floats, so that a kernel can keep a
tile of outputs in registers through a long sum.

Numba vectorises the innermost loop over an array, and a sum over a tile of outputs then lives in memory: every
multiply-add loads and stores its accumulator (an L1-resident acc[q] += w*x[q] runs at about 20 GFMA/s a core,
benchmarks/RESULTS.md), where a BLAS micro-kernel keeps its tile in registers and runs near the FMA units' peak
(Goto and van de Geijn 2008). These intrinsics let a kernel do the same: eight `Vec` accumulators, and an inner
loop of one vector load and eight multiply-adds with a broadcast operand (`fma_broadcast`).

They are Numba intrinsics, written in LLVM IR, and work only inside @njit code. The lane count must be a
compile-time constant: `with_lanes` makes a copy of a kernel with the global LANES bound to 4, 8 or 16. LLVM
splits a vector wider than the CPU's registers (16 float32 are one AVX-512 register, two AVX2 ones), so the
results are the same everywhere; only the speed differs.
"""
import types as pytypes

from llvmlite import ir
from numba import types
from numba.core import cgutils, errors
from numba.extending import intrinsic, models, register_model

REGISTER_BYTES = 64  # an AVX-512 register; the widest vector a kernel uses


class Vec(types.Type):
    """The Numba type of a SIMD register holding `lanes` values of `dtype` (float32 or float64)."""

    def __init__(self, dtype, lanes):
        self.dtype, self.lanes = dtype, lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


def _llvm_type(vec):
    return ir.VectorType(ir.FloatType() if vec.dtype == types.float32 else ir.DoubleType(), vec.lanes)


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _llvm_type(fe_type))


def _lanes(lanes):
    if not isinstance(lanes, types.IntegerLiteral):
        raise errors.RequireLiteralValue(lanes)  # Numba retries with the constant's literal type
    return lanes.literal_value


def _address(context, builder, arrty, arr, index):
    """The address of arr.flat[index] (a contiguous array; no bounds or negative-index handling)."""
    return builder.gep(context.make_array(arrty)(context, builder, arr).data, [index])


@intrinsic
def vzero(typingctx, like, lanes):
    """A Vec of `lanes` zeros of the dtype of the array `like`."""
    vec = Vec(like.dtype, _lanes(lanes))
    return vec(like, lanes), lambda context, builder, sig, args: ir.Constant(_llvm_type(vec), None)


@intrinsic
def vload(typingctx, arr, index, lanes):
    """arr.flat[index:index + lanes] as a Vec (arr contiguous; any alignment)."""
    vec = Vec(arr.dtype, _lanes(lanes))

    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1]), _llvm_type(vec).as_pointer())
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)
    return vec(arr, index, lanes), codegen


@intrinsic
def vget(typingctx, vec, lane):
    """One lane of a Vec, as a scalar."""
    return vec.dtype(vec, lane), lambda context, builder, sig, args: builder.extract_element(args[0], args[1])


@intrinsic
def vstore(typingctx, arr, index, vec):
    """arr.flat[index:index + lanes] = vec."""
    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1]), _llvm_type(vec).as_pointer())
        builder.store(args[2], ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(arr, index, vec), codegen


@intrinsic
def vstore_add(typingctx, arr, index, vec):
    """arr.flat[index:index + lanes] += vec."""
    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1]), _llvm_type(vec).as_pointer())
        align = arr.dtype.bitwidth // 8
        builder.store(builder.fadd(builder.load(ptr, align=align), args[2]), ptr, align=align)
        return context.get_dummy_value()
    return types.none(arr, index, vec), codegen


@intrinsic
def fma_broadcast(typingctx, acc, arr, index, vec):
    """acc + arr.flat[index] * vec: the scalar broadcast to every lane, one fused multiply-add (one instruction
    with its memory operand on AVX-512: vfmadd231ps (mem){1to16})."""
    def codegen(context, builder, sig, args):
        vtype, lanes = _llvm_type(acc), acc.lanes
        scalar = builder.load(_address(context, builder, sig.args[1], args[1], args[2]))
        one = builder.insert_element(ir.Constant(vtype, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
        splat = builder.shuffle_vector(one, ir.Constant(vtype, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vtype, [vtype] * 3),
                                             f"llvm.fma.v{lanes}f{acc.dtype.bitwidth}")
        return builder.call(fma, [splat, args[3], args[0]])
    return acc(acc, arr, index, vec), codegen


def with_lanes(fn, lanes):
    """A copy of fn, named fn_<lanes> (Numba's disk cache is keyed by name), that sees the global LANES = lanes."""
    env = dict(fn.__globals__, LANES=lanes)
    copy = pytypes.FunctionType(fn.__code__, env, f"{fn.__name__}_{lanes}", fn.__defaults__, fn.__closure__)
    copy.__qualname__ = f"{fn.__qualname__}_{lanes}"
    copy.__doc__ = fn.__doc__
    return copy


def lanes_for(itemsize, outputs):
    """The lanes of a kernel's Vec: a full register, or half of one when that holds all `outputs` (a layer with 6
    output channels wastes 2 of 8 lanes, not 10 of 16)."""
    full = REGISTER_BYTES // itemsize
    return full if outputs > full // 2 else full // 2
