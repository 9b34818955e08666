"""Register-tiled direct convolution at any stride, for layers with many inputs per output (LeNet's conv2: 150) on
maps of 64 or more positions, where im2col + BLAS loses: the im2col matrix copies every pixel KH*KW times, and a
product with only 16 output channels runs far below BLAS's speed.

A kernel keeps a tile of accumulators in SIMD registers (simd.py: a tuple of `Vec`s, updated by `tile_fma`) through
the whole sum, in the layout of oneDNN's direct convolutions (Georganas et al. 2018, "Anatomy of high-performance
deep learning convolutions on SIMD architectures"):
- forward: TILE output positions x VECS vectors of LANES output channels; per input (c, r, s) VECS vector loads
  of weights and TILE broadcasts of an input pixel, for TILE*VECS multiply-adds;
- weight gradient: TILE inputs (c, r, s) x VECS vectors of output channels, running over the output positions;
- input gradient: TILE output positions x 2 taps x LANES input channels, summed over the output channels and added
  into a channels-last grad_x (only the taps that hit the output, not a correlation of the zero-padded grad_y).
The tile shapes (TILES) are chosen per register width, so that a tile fits the CPU's registers (why these shapes:
benchmarks/PERFORMANCE.md).

Layouts: x is padded, (N, C, Hp, Wp), read as one flat array; `pos` holds where each output's window starts in
a plane (i*Wp + j), `reach` where each of a window's inputs sits from that start (c*Hp*Wp + r*DH*Wp + s*DW).
Weights and dy are reordered so that a block of VECS*LANES channels is contiguous: (G, KB, ..., VECS*LANES), KB
blocks, zero past K/G. Every output (or weight) is written by one thread, whole: no races, the same result on any
number of threads.
"""
import functools
import itertools

import numpy as np
from numba import prange

from . import simd
from ._jit import cpu_kernel
from .simd import (LANE_COUNTS, gather, lanes_for, spaced, tile_add_into, tile_fma, tile_load, tile_of, tile_store,
                   vload, vloads, vzeros, with_constants)

LANES = 16  # each compiled copy of a kernel sees its own LANES, TILE and VECS (with_constants)
TILE = 8    # outputs (or inputs) per row of a register tile
VECS = 1    # vectors of LANES channels per column of a register tile
# The tile of each kernel, TILE x VECS (x 2 taps for grad_x), per register width in bytes: the accumulators, the
# weight vectors and a broadcast fit the CPU's registers (32 with AVX-512, 16 with AVX2 and SSE).
TILES = {64: {"forward": (8, 2), "weight": (8, 2), "input": (8, 1)},
         32: {"forward": (6, 2), "weight": (6, 2), "input": (6, 1)},
         16: {"forward": (6, 2), "weight": (6, 2), "input": (6, 1)}}
WEIGHT_CHUNK = 1024  # output positions per partial sum of dW (a chunk of images; partials summed in order)
INPUT_CHUNK = 128    # inputs (c, r, s) per pass of the forward over an image's tiles


def _correlate(x, w, bias, cin, plane, pos, reach, kg):
    """y[n, g*kg + k, p] = bias[g, k] + sum_j w[g, k // V, j, k % V] x.flat[(n*G + g)*cin*plane + pos[p] + reach[j]]
    (j = c*T + t runs over a window's inputs; V = VECS*LANES): one thread per image, group and block of V
    channels. Each tile of TILE outputs x VECS vectors starts its accumulators from the bias and adds, input by
    input, the weight vectors times each output's pixel, INPUT_CHUNK inputs at a time (every tile of the image
    takes a chunk's weights, which then stay in cache, before the next chunk; the tiles wait in between in a
    channels-last buffer of the image's outputs, which is copied out plane by plane at the end)."""
    groups, blocks, npos = w.shape[0], w.shape[1], pos.size
    width, count = VECS * LANES, reach.size
    n = x.size // (groups * cin * plane)
    y = np.empty((n, groups * kg, npos), dtype=x.dtype)
    steps = spaced(0, TILE - 1, width, 0, TILE)
    for unit in prange(n * groups * blocks):
        b, g, kb = unit // (groups * blocks), (unit // blocks) % groups, unit % blocks
        wk, out = w[g, kb].ravel(), np.empty((npos + TILE - 1) // TILE * TILE * width, dtype=x.dtype)
        base, start = (b * groups + g) * cin * plane, vloads(bias[g, kb], 0, LANES, VECS)
        for j0 in range(0, count, INPUT_CHUNK):
            for p0 in range(0, npos, TILE):
                acc = tile_of(start, TILE) if j0 == 0 else tile_load(out, p0 * width, steps, LANES, LANES, VECS)
                windows = gather(pos, p0, 1, TILE)
                for j in range(j0, min(count, j0 + INPUT_CHUNK)):
                    acc = tile_fma(acc, x, base + reach[j], windows, vloads(wk, j * width, LANES, VECS))
                tile_store(out, p0 * width, steps, acc, LANES, TILE)
        for lane in range(min(width, kg - kb * width)):
            dst = y[b, g * kg + kb * width + lane]
            for q in range(npos):
                dst[q] = out[q * width + lane]
    return y


def _weight_partials(x, gl, cin, plane, pos, reach, per_chunk):
    """part[chunk, g, kb, j, :] = sum over the chunk's images n and positions p of gl[g, kb, n*P + p, :]
    x.flat[(n*G + g)*cin*plane + pos[p] + reach[j]]: one thread per chunk, block of VECS*LANES channels and tile
    of TILE inputs j."""
    groups, blocks, m, width = gl.shape
    npos, count = pos.size, reach.size
    n = m // npos
    chunks, tiles = (n + per_chunk - 1) // per_chunk, (count + TILE - 1) // TILE
    part = np.empty((chunks, groups, blocks, tiles * TILE, width), dtype=x.dtype)
    steps = spaced(0, TILE - 1, width, 0, TILE)
    for unit in prange(chunks * groups * blocks * tiles):
        chunk, g = unit // (groups * blocks * tiles), (unit // (blocks * tiles)) % groups
        kb, j0 = (unit // tiles) % blocks, (unit % tiles) * TILE
        spots = gather(reach, j0, 1, TILE)
        gk = gl[g, kb].ravel()
        acc = tile_of(vzeros(gk, LANES, VECS), TILE)
        for b in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            base = (b * groups + g) * cin * plane
            for q in range(npos):
                acc = tile_fma(acc, x, base + pos[q], spots, vloads(gk, (b * npos + q) * width, LANES, VECS))
        tile_store(part[chunk, g, kb].ravel(), j0 * width, steps, acc, LANES, TILE)
    return part


def _scatter(gl, chans, w, pos, taps, wp, pad, h, width, cg):
    """The adjoint of _correlate: grad_x[n, g*cg + cb*L + l].flat[pos[p] + taps[t]] += sum_k w[g, cb, t*kg + k, l]
    gl.flat[g*KB*M*KL + (n*P + p)*KL + chans[k]], with dy in lanes of KL channels as for the weight gradient
    (chans[k] = (k // KL)*M*KL + k % KL, M = N*P). One thread per image, group and block of LANES input channels,
    accumulating into a padded channels-last plane of its own: a tile of TILE output positions x 2 taps (the last
    of an odd count alone) sums over the kg channels of dy in registers, is added into the plane in a fixed order,
    and the plane's unpadded part is copied out into grad_x (N, C, H, W)."""
    groups, kblocks, m, kl = gl.shape
    blocks, ntaps, npos = w.shape[1], taps.size, pos.size
    n, kg = m // npos, w.shape[2] // ntaps
    plane = (h + 2 * pad[0]) * wp
    grad_x = np.empty((n, groups * cg, h, width), dtype=gl.dtype)
    glf = gl.reshape(-1)
    for unit in prange(n * groups * blocks):
        b, gi, cb = unit // (groups * blocks), (unit // blocks) % groups, unit % blocks
        wk, out = w[gi, cb].ravel(), np.zeros(plane * LANES, dtype=gl.dtype)
        first = (gi * kblocks * m + b * npos) * kl
        for p0 in range(0, npos, TILE):
            rows = spaced(p0, npos - 1, kl, first, TILE)
            spots = gather(pos, p0, LANES, TILE)
            for t in range(0, ntaps - 1, 2):
                acc = tile_of(vzeros(glf, LANES, 2), TILE)
                w0 = t * kg * LANES
                for k in range(kg):
                    acc = tile_fma(acc, glf, chans[k], rows,
                                   (vload(wk, w0 + k * LANES, LANES), vload(wk, w0 + (kg + k) * LANES, LANES)))
                tile_add_into(out, taps[t] * LANES, spots, acc, (taps[t + 1] - taps[t]) * LANES, npos - p0)
            if ntaps % 2:
                last = tile_of(vzeros(glf, LANES, 1), TILE)
                w0 = (ntaps - 1) * kg * LANES
                for k in range(kg):
                    last = tile_fma(last, glf, chans[k], rows, (vload(wk, w0 + k * LANES, LANES),))
                tile_add_into(out, taps[ntaps - 1] * LANES, spots, last, 0, npos - p0)
        for lane in range(min(LANES, cg - cb * LANES)):
            dst = grad_x[b, gi * cg + cb * LANES + lane]
            for i in range(h):
                row = ((i + pad[0]) * wp + pad[1]) * LANES + lane
                for j in range(width):
                    dst[i, j] = out[row + j * LANES]
    return grad_x


def _compiled(fn, kind):
    """fn compiled for every lane count and every tile of `kind` in TILES, by (lanes, tile, vecs)."""
    shapes = {(tile, vecs) for table in TILES.values() for tile, vecs in [table[kind]]}
    shapes |= {(tile, 1) for tile, _ in shapes}
    return {(lanes, tile, vecs): cpu_kernel()(with_constants(fn, LANES=lanes, TILE=tile, VECS=vecs))
            for lanes, (tile, vecs) in itertools.product(LANE_COUNTS, sorted(shapes))}


_CORRELATE = _compiled(_correlate, "forward")
_WEIGHT_PARTIALS = _compiled(_weight_partials, "weight")
_SCATTER = _compiled(_scatter, "input")


def _tile(kind, lanes, outputs):
    """(lanes, TILE, VECS) of a kernel of `kind` for a block of `outputs` channels: the CPU's tile, with no more
    vectors than the channels fill."""
    tile, vecs = TILES[simd.REGISTER_BYTES][kind]
    return lanes, tile, min(vecs, -(-outputs // lanes))


@cpu_kernel()
def _lanes_of(a, groups, lanes, ow):
    """a (N, K, OH, W) -> (G, KB, N*OH*OW, lanes): a[n, g*K/G + kb*lanes + l, i, j] at [g, kb, (n*OH + i)*OW + j, l],
    the first OW of each row's W columns, zero past K/G. Each output position's lanes are written together."""
    n, k, oh, _ = a.shape
    kg = k // groups
    blocks = (kg + lanes - 1) // lanes
    out = np.empty((groups, blocks, n * oh * ow, lanes), dtype=a.dtype)
    for unit in prange(groups * blocks * n):
        g, kb, b = unit // (blocks * n), (unit // n) % blocks, unit % n
        k0, kn = g * kg + kb * lanes, min(lanes, kg - kb * lanes)
        for i in range(oh):
            row = out[g, kb, (b * oh + i) * ow:(b * oh + i + 1) * ow]
            for j in range(ow):
                for lane in range(kn):
                    row[j, lane] = a[b, k0 + lane, i, j]
                for lane in range(kn, lanes):
                    row[j, lane] = 0
    return out


def _weight_lanes(w, groups, lanes):
    """w (K, ...) -> (G, KB, prod(...), lanes), contiguous: w[g*K/G + kb*lanes + l].flat[j] at [g, kb, j, l], zero
    past K/G (_lanes_of's layout, in NumPy: weights are small)."""
    kg = w.shape[0] // groups
    blocks = -(-kg // lanes)
    padded = np.zeros((groups, blocks * lanes, w[0].size), dtype=w.dtype)
    padded[:, :kg] = w.reshape(groups, kg, -1)
    return np.ascontiguousarray(padded.reshape(groups, blocks, lanes, -1).transpose(0, 1, 3, 2))


@functools.lru_cache(maxsize=256)
def _offsets(x_shape, geom):
    """Window starts of the OH x OW outputs in a padded plane (Hp, Wp) of x, i*SH*Wp + j*SW, and where each of a
    window's C/G*KH*KW inputs sits from its start: c*Hp*Wp + r*DH*Wp + s*DW (the first KH*KW are the taps within
    one plane). Kept per shape (a network asks for the same few every step); callers only read them."""
    hp, wp = x_shape[2:]
    pos = (np.arange(geom.OH)[:, None] * geom.SH * wp + np.arange(geom.OW) * geom.SW).ravel()
    taps = (np.arange(geom.KH)[:, None] * geom.DH * wp + np.arange(geom.KW) * geom.DW).ravel()
    return pos, (np.arange(geom.C // geom.G)[:, None] * hp * wp + taps).ravel()


def conv_tiled(x_padded, w, b, geom):
    """conv_direct's contract (y (N, K, OH, OW) with the bias b, from the padded x), at any stride, on the
    register-tiled kernel."""
    cg, kg = geom.C // geom.G, geom.K // geom.G
    hp, wp = x_padded.shape[2:]
    shape = _tile("forward", lanes_for(x_padded.itemsize, kg), kg)
    width = shape[0] * shape[2]
    pos, reach = _offsets(x_padded.shape, geom)
    bias = _weight_lanes(b.reshape(geom.K, 1), geom.G, width).reshape(geom.G, -1, width)
    y = _CORRELATE[shape](np.ascontiguousarray(x_padded).reshape(-1), _weight_lanes(w, geom.G, width), bias, cg,
                          hp * wp, pos, reach, kg)
    return y.reshape(geom.N, geom.K, geom.OH, geom.OW)


def conv_tiled_backward(x_padded, grad_y, w, geom, need_x=True, need_w=True):
    """conv_direct_backward's contract: (grad_x (N, C, H, W), grad_w (K, C/G, KH, KW)), either None where not
    needed. grad_y goes into lanes once, for both kernels. grad_w: images go in chunks of about WEIGHT_CHUNK
    positions, each summed in registers; the chunks' partial sums are then added in order."""
    cg, kg = geom.C // geom.G, geom.K // geom.G
    hp, wp = x_padded.shape[2:]
    pos, reach = _offsets(x_padded.shape, geom)
    weight_shape = _tile("weight", lanes_for(grad_y.itemsize, kg), kg)
    gl = _lanes_of(np.ascontiguousarray(grad_y), geom.G, weight_shape[0] * weight_shape[2], geom.OW)
    kl = gl.shape[3]
    grad_x = grad_w = None
    if need_x:
        lanes, taps = lanes_for(grad_y.itemsize, cg), geom.KH * geom.KW
        wt = w.reshape(geom.G, kg, cg, taps).transpose(0, 2, 3, 1).reshape(geom.G * cg, taps * kg)
        chans = np.arange(kg) // kl * gl.shape[2] * kl + np.arange(kg) % kl
        grad_x = _SCATTER[_tile("input", lanes, cg)](gl, chans, _weight_lanes(wt, geom.G, lanes), pos, reach[:taps],
                                                     wp, (geom.PH, geom.PW), geom.H, geom.W, cg)
    if need_w:
        part = _WEIGHT_PARTIALS[weight_shape](np.ascontiguousarray(x_padded).reshape(-1), gl, cg, hp * wp, pos,
                                              reach, max(1, WEIGHT_CHUNK // (geom.OH * geom.OW)))
        total = part.sum(axis=0)[:, :, :cg * geom.KH * geom.KW]  # (G, KB, C/G*KH*KW, kl)
        total = total.transpose(0, 1, 3, 2).reshape(geom.G, -1, cg * geom.KH * geom.KW)[:, :kg]
        grad_w = np.ascontiguousarray(total).reshape(w.shape)
    return grad_x, grad_w
