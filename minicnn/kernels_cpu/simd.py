"""Vector registers in Numba kernels: a `Vec` is one SIMD register of LANES floats, so that a kernel can keep a tile of
outputs in registers through a long sum.

Numba vectorises the innermost loop over an array, and a sum over a tile of outputs then lives in memory: every
multiply-add loads and stores its accumulator, where a BLAS micro-kernel keeps its tile in registers and runs near
the FMA units' peak (Goto and van de Geijn 2008). These intrinsics let a kernel do the same. A tile is a tuple of
`Vec`s (Numba keeps a tuple in registers), T vectors x P positions: `tile_of` starts one from T vectors (`vloads`,
`vzeros`), `tile_fma` adds an outer product to it (P scalars from an array, each broadcast to every lane, times T
vectors: T*P fused multiply-adds, compiled to `vfmadd231ps (mem){1to16}` or one broadcast and T register FMAs), and
`tile_store` / `tile_add_into` write it out; `gather` and `spaced` build the tuples of P offsets. A multiply-add
takes about 4 cycles and a core starts one or two a cycle, so a tile needs 8 independent accumulators of full
registers, or 16 of half ones, to keep the FMA units busy.

They are Numba intrinsics, written in LLVM IR, and work only inside @njit code. The lane count must be a
compile-time constant: `with_constants` makes a copy of a kernel with the global LANES bound to 2, 4, 8 or 16 (and a
tile's P and T likewise), and `lanes_for` picks the copy whose Vec fills a register of the CPU Numba compiles for
(`register_bytes`: 16 float32 lanes with AVX-512, 8 with AVX2, 4 with SSE or NEON), so a tile never needs more
registers than the CPU has. LLVM would split a wider vector into several registers, so every width computes the same
numbers; the tests run each.
"""
import types as pytypes

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils, config, errors
from numba.extending import intrinsic, models, register_model


def register_bytes():
    """The width of the vector registers in the code Numba generates: 64 bytes with AVX-512, 32 with AVX or AVX2,
    16 otherwise (SSE, ARM's NEON). Numba compiles for the host CPU's features, or for NUMBA_CPU_FEATURES when
    that is set (as when AVX2 is measured on an AVX-512 machine)."""
    if config.CPU_FEATURES is not None:
        enabled = {flag[1:] for flag in config.CPU_FEATURES.split(",") if flag.startswith("+")}
    else:
        enabled = {name for name, on in llvm.get_host_cpu_features().items() if on}
    if not config.ENABLE_AVX:
        enabled = {name for name in enabled if not name.startswith("avx")}
    return 64 if "avx512f" in enabled else 32 if enabled & {"avx", "avx2"} else 16


REGISTER_BYTES = register_bytes()  # a tile of full registers needs no more than the CPU has
LANE_COUNTS = (2, 4, 8, 16)  # the lane counts kernels are compiled for: half and full registers of 16 to 64 bytes


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
def vzeros(typingctx, like, lanes, count):
    """A tuple of `count` Vecs of `lanes` zeros of the dtype of the array `like` (both constants)."""
    vec, n = Vec(like.dtype, _lanes(lanes)), _lanes(count)

    def codegen(context, builder, sig, args):
        return cgutils.pack_array(builder, [ir.Constant(_llvm_type(vec), None)] * n)
    return types.UniTuple(vec, n)(like, lanes, count), codegen


@intrinsic
def vload(typingctx, arr, index, lanes):
    """arr.flat[index:index + lanes] as a Vec (arr contiguous; any alignment)."""
    vec = Vec(arr.dtype, _lanes(lanes))

    def codegen(context, builder, sig, args):
        ptr = builder.bitcast(_address(context, builder, sig.args[0], args[0], args[1]), _llvm_type(vec).as_pointer())
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)
    return vec(arr, index, lanes), codegen


@intrinsic
def tile_fma(typingctx, tile, arr, base, offsets, vecs):
    """A register tile of T*P accumulators (a tuple of Vecs, T vectors x P scalars) plus an outer product:
    tile[t*P + p] + arr.flat[base + offsets[p]] * vecs[t]. Each scalar is loaded and broadcast once, for its T
    multiply-adds; the tile is a tuple, so it stays in registers (one fused multiply-add per accumulator)."""
    count, npts, nvec = len(tile), len(offsets), len(vecs)
    if count != npts * nvec:
        raise errors.TypingError(f"tile_fma: a tile of {count} for {nvec} vectors x {npts} offsets")

    def codegen(context, builder, sig, args):
        tiles, data, start, offs, vs = args
        vec = sig.args[0].dtype
        vtype, lanes = _llvm_type(vec), vec.lanes
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vtype, [vtype] * 3),
                                             f"llvm.fma.v{lanes}f{vec.dtype.bitwidth}")
        start = context.cast(builder, start, sig.args[2], types.intp)
        out = tiles
        for p in range(npts):
            off = context.cast(builder, builder.extract_value(offs, p), sig.args[3].dtype, types.intp)
            scalar = builder.load(_address(context, builder, sig.args[1], data, builder.add(start, off)))
            one = builder.insert_element(ir.Constant(vtype, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
            splat = builder.shuffle_vector(one, ir.Constant(vtype, ir.Undefined),
                                           ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))
            for t in range(nvec):
                acc = builder.extract_value(tiles, t * npts + p)
                out = builder.insert_value(out, builder.call(fma, [splat, builder.extract_value(vs, t), acc]),
                                           t * npts + p)
        return out
    return tile(tile, arr, base, offsets, vecs), codegen


def _tile_writer(add):
    """An intrinsic (arr, base, offsets, tile, stride, count) that stores (or, with add, adds) a tile of T*P
    vectors: tile[t*P + p] at arr.flat[base + offsets[p] + t*stride:... + lanes] for p < count (P offsets)."""
    def writer(typingctx, arr, base, offsets, tile, stride, count):
        npts = len(offsets)
        if len(tile) % npts:
            raise errors.TypingError(f"{writer.__name__}: a tile of {len(tile)} for {npts} offsets")

        def codegen(context, builder, sig, args):
            data, at, offs, tiles, step, limit = args
            vec = sig.args[3].dtype
            ptype, align = _llvm_type(vec).as_pointer(), vec.dtype.bitwidth // 8
            at = context.cast(builder, at, sig.args[1], types.intp)
            step = context.cast(builder, step, sig.args[4], types.intp)
            limit = context.cast(builder, limit, sig.args[5], types.intp)
            for p in range(npts):
                with builder.if_then(builder.icmp_signed("<", ir.Constant(limit.type, p), limit), likely=True):
                    off = context.cast(builder, builder.extract_value(offs, p), sig.args[2].dtype, types.intp)
                    first = builder.add(at, off)
                    for t in range(len(tile) // npts):
                        index = builder.add(first, builder.mul(step, ir.Constant(step.type, t)))
                        ptr = builder.bitcast(_address(context, builder, sig.args[0], data, index), ptype)
                        value = builder.extract_value(tiles, t * npts + p)
                        if add:
                            value = builder.fadd(builder.load(ptr, align=align), value)
                        builder.store(value, ptr, align=align)
            return context.get_dummy_value()
        return types.none(arr, base, offsets, tile, stride, count), codegen
    writer.__name__ = "tile_add_into" if add else "tile_store"
    writer.__doc__ = (f"arr.flat[base + offsets[p] + t*stride:... + lanes] {'+' if add else ''}= tile[t*P + p] for "
                      "p < count: the T*P vectors of a tile written out, the positions past `count` (a tile that ran "
                      "past the last output) left out.")
    return intrinsic(writer)


tile_store, tile_add_into = _tile_writer(False), _tile_writer(True)


@intrinsic
def tile_load(typingctx, arr, base, offsets, stride, lanes, count):
    """The tile that tile_store wrote: T = count (a constant) vectors of `lanes` per offset, tile[t*P + p] =
    arr.flat[base + offsets[p] + t*stride:... + lanes] (P offsets)."""
    vec, nvec, npts = Vec(arr.dtype, _lanes(lanes)), _lanes(count), len(offsets)

    def codegen(context, builder, sig, args):
        data, at, offs, step = args[:4]
        ptype, align = _llvm_type(vec).as_pointer(), vec.dtype.bitwidth // 8
        at = context.cast(builder, at, sig.args[1], types.intp)
        step = context.cast(builder, step, sig.args[3], types.intp)
        out = cgutils.get_null_value(context.get_value_type(sig.return_type))
        for p in range(npts):
            first = builder.add(at, context.cast(builder, builder.extract_value(offs, p), sig.args[2].dtype,
                                                 types.intp))
            for t in range(nvec):
                index = builder.add(first, builder.mul(step, ir.Constant(step.type, t)))
                ptr = builder.bitcast(_address(context, builder, sig.args[0], data, index), ptype)
                out = builder.insert_value(out, builder.load(ptr, align=align), t * npts + p)
        return out
    return types.UniTuple(vec, nvec * npts)(arr, base, offsets, stride, lanes, count), codegen


@intrinsic
def vloads(typingctx, arr, index, lanes, count):
    """`count` consecutive Vecs, arr.flat[index + t*lanes:... + lanes] for t < count (a constant), as a tuple."""
    vec, n = Vec(arr.dtype, _lanes(lanes)), _lanes(count)

    def codegen(context, builder, sig, args):
        out = cgutils.get_null_value(context.get_value_type(sig.return_type))
        start = context.cast(builder, args[1], sig.args[1], types.intp)
        for t in range(n):
            address = _address(context, builder, sig.args[0], args[0], builder.add(start, ir.Constant(start.type,
                                                                                                       t * vec.lanes)))
            ptr = builder.bitcast(address, _llvm_type(vec).as_pointer())
            out = builder.insert_value(out, builder.load(ptr, align=arr.dtype.bitwidth // 8), t)
        return out
    return types.UniTuple(vec, n)(arr, index, lanes, count), codegen


@intrinsic
def tile_of(typingctx, vecs, count):
    """A tile of T*count accumulators from a tuple of T Vecs: tile[t*count + p] = vecs[t], the starting values."""
    n, nvec = _lanes(count), len(vecs)

    def codegen(context, builder, sig, args):
        out = cgutils.get_null_value(context.get_value_type(sig.return_type))
        for t in range(nvec):
            vec = builder.extract_value(args[0], t)
            for p in range(n):
                out = builder.insert_value(out, vec, t * n + p)
        return out
    return types.UniTuple(vecs.dtype, nvec * n)(vecs, count), codegen


@intrinsic
def gather(typingctx, arr, start, scale, count):
    """The tuple arr[min(start + i, last)] * scale for i < count (a constant): a tile's offsets, the last element
    repeated for a tile that runs past the end of arr (an int array)."""
    n = _lanes(count)

    def codegen(context, builder, sig, args):
        out = cgutils.get_null_value(context.get_value_type(sig.return_type))
        first = context.cast(builder, args[1], sig.args[1], types.intp)
        factor = context.cast(builder, args[2], sig.args[2], types.intp)
        shape = cgutils.unpack_tuple(builder, context.make_array(sig.args[0])(context, builder, args[0]).shape)
        last = builder.sub(shape[0], ir.Constant(first.type, 1))
        for i in range(n):
            index = builder.add(first, ir.Constant(first.type, i))
            index = builder.select(builder.icmp_signed("<", index, last), index, last)
            value = builder.load(_address(context, builder, sig.args[0], args[0], index))
            value = context.cast(builder, value, sig.args[0].dtype, types.intp)
            out = builder.insert_value(out, builder.mul(value, factor), i)
        return out
    return types.UniTuple(types.intp, n)(arr, start, scale, count), codegen


@intrinsic
def spaced(typingctx, start, last, scale, shift, count):
    """The tuple shift + min(start + i, last) * scale for i < count (a constant): a tile's offsets at equal
    spacing, the last repeated past `last`."""
    n = _lanes(count)

    def codegen(context, builder, sig, args):
        out = cgutils.get_null_value(context.get_value_type(sig.return_type))
        first, end, factor, base = (context.cast(builder, a, t, types.intp) for a, t in zip(args[:4], sig.args[:4]))
        for i in range(n):
            index = builder.add(first, ir.Constant(first.type, i))
            index = builder.select(builder.icmp_signed("<", index, end), index, end)
            out = builder.insert_value(out, builder.add(base, builder.mul(index, factor)), i)
        return out
    return types.UniTuple(types.intp, n)(start, last, scale, shift, count), codegen


def with_constants(fn, **constants):
    """A copy of fn that sees the given globals (LANES=16, TILE=8, ...) as compile-time constants, named
    fn_<value>_<value>... (Numba's disk cache is keyed by name)."""
    env = dict(fn.__globals__, **constants)
    suffix = "_".join(str(value) for value in constants.values())
    copy = pytypes.FunctionType(fn.__code__, env, f"{fn.__name__}_{suffix}", fn.__defaults__, fn.__closure__)
    copy.__qualname__ = f"{fn.__qualname__}_{suffix}"
    copy.__doc__ = fn.__doc__
    return copy


def lanes_for(itemsize, outputs):
    """The lanes of a kernel's Vec: a full register of the CPU, or half of one when that holds all `outputs` (a
    layer with 6 output channels wastes 2 of 8 lanes, not 10 of 16); never fewer than 2."""
    full = REGISTER_BYTES // itemsize
    return full if outputs > full // 2 or full == 2 else full // 2
