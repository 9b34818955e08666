"""Register-tiled direct convolution at stride 1, for layers with many inputs per output (LeNet's conv2: 150) on
maps of 64 or more positions, where im2col + BLAS loses: the im2col matrix copies every pixel KH*KW times, and a
product with only 16 output channels runs far below BLAS's speed.

A kernel keeps a tile of 8 output positions x LANES output channels in eight `Vec` registers (simd.py) and runs
the whole sum over (c, r, s) with them: per tap, one vector load of the LANES weights w[k.., c, r, s] and eight
multiply-adds, each with one input pixel broadcast (the layout of oneDNN's direct convolutions, Georganas et al.
2018, "Anatomy of high-performance deep learning convolutions on SIMD architectures"). The weight gradient keeps
8 taps x LANES output channels of dW in registers while it runs over the output positions; the input gradient
sums, for 8 output positions and one tap, LANES input channels over the output channels in registers, and adds
them into a channels-last dx (only the taps that hit the output, where a correlation of the zero-padded dy would
do 2x the work on LeNet's 10x10 maps).

Layouts: x is padded, (N, C, Hp, Wp), read as one flat array; `pos` holds where each output's window starts in
a plane (i*Wp + j), `taps` where each tap sits in the window (r*DH*Wp + s*DW). Weights and dy are reordered so
LANES output channels are contiguous: (G, KB, taps, LANES), KB = ceil(K/G / LANES) blocks, zero past K/G.
Every output (or weight) is written by one thread, whole: no races, the same result on any number of threads.
"""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel
from .simd import fma_broadcast, lanes_for, vget, vload, vstore, vstore_add, vzero, with_lanes

LANES = 16  # rebound per compiled copy by with_lanes
TILE = 8  # outputs (or taps) per register tile: the eight accumulators a0..a7 below
WEIGHT_CHUNK = 4096  # output positions per partial sum of dW (a chunk of images; partials summed in order)


@njit(inline="always")
def _locate(b0, q0, t, p, last):
    """(image, position) of output m0 + t of a tile that starts at image b0, position q0 (P positions an image);
    a tile that runs past the last output repeats the last one."""
    q, b = q0 + t, b0
    while q >= p:
        q -= p
        b += 1
    if b * p + q > last:
        return last // p, last % p
    return b, q


@njit(inline="always")
def _window(b0, q0, t, p, last, chan0, plane, pos):
    """Flat index in x of the window of output m0 + t; chan0 = (channels per image, the group's first one)."""
    b, q = _locate(b0, q0, t, p, last)
    return (b * chan0[0] + chan0[1]) * plane + pos[q]


@njit(inline="always")
def _store(y, b0, q0, t, p, last, k0, kn, acc):
    b, q = _locate(b0, q0, t, p, last)
    for lane in range(kn):
        y[b, k0 + lane, q] = vget(acc, lane)


def _correlate(x, w, bias, cin, plane, pos, taps, kg):
    """y[n, g*kg + k, p] = bias[g, k] + sum_{c < cin, t} w[g, k // L, c*T + t, k % L] x.flat[((n*G + g)*cin + c)*plane
    + pos[p] + taps[t]]: one thread per tile of 8 consecutive outputs (over n and p) and block of LANES channels."""
    groups, blocks, ntaps, npos = w.shape[0], w.shape[1], taps.size, pos.size
    n = x.size // (groups * cin * plane)
    last = n * npos - 1
    tiles = (n * npos + TILE - 1) // TILE
    y = np.empty((n, groups * kg, npos), dtype=x.dtype)
    for unit in prange(tiles * groups * blocks):
        m0 = (unit // (groups * blocks)) * TILE
        g, kb = (unit // blocks) % groups, unit % blocks
        b0, q0, chan0 = m0 // npos, m0 % npos, (groups * cin, g * cin)
        o0 = _window(b0, q0, 0, npos, last, chan0, plane, pos)
        o1 = _window(b0, q0, 1, npos, last, chan0, plane, pos)
        o2 = _window(b0, q0, 2, npos, last, chan0, plane, pos)
        o3 = _window(b0, q0, 3, npos, last, chan0, plane, pos)
        o4 = _window(b0, q0, 4, npos, last, chan0, plane, pos)
        o5 = _window(b0, q0, 5, npos, last, chan0, plane, pos)
        o6 = _window(b0, q0, 6, npos, last, chan0, plane, pos)
        o7 = _window(b0, q0, 7, npos, last, chan0, plane, pos)
        wk = w[g, kb].ravel()
        a0 = vload(bias[g, kb], 0, LANES)
        a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
        for c in range(cin):
            for t in range(ntaps):
                d = c * plane + taps[t]
                wv = vload(wk, (c * ntaps + t) * LANES, LANES)
                a0 = fma_broadcast(a0, x, o0 + d, wv)
                a1 = fma_broadcast(a1, x, o1 + d, wv)
                a2 = fma_broadcast(a2, x, o2 + d, wv)
                a3 = fma_broadcast(a3, x, o3 + d, wv)
                a4 = fma_broadcast(a4, x, o4 + d, wv)
                a5 = fma_broadcast(a5, x, o5 + d, wv)
                a6 = fma_broadcast(a6, x, o6 + d, wv)
                a7 = fma_broadcast(a7, x, o7 + d, wv)
        k0, kn = g * kg + kb * LANES, min(LANES, kg - kb * LANES)
        _store(y, b0, q0, 0, npos, last, k0, kn, a0)
        _store(y, b0, q0, 1, npos, last, k0, kn, a1)
        _store(y, b0, q0, 2, npos, last, k0, kn, a2)
        _store(y, b0, q0, 3, npos, last, k0, kn, a3)
        _store(y, b0, q0, 4, npos, last, k0, kn, a4)
        _store(y, b0, q0, 5, npos, last, k0, kn, a5)
        _store(y, b0, q0, 6, npos, last, k0, kn, a6)
        _store(y, b0, q0, 7, npos, last, k0, kn, a7)
    return y


@njit(inline="always")
def _tap(j, count, ntaps, plane, taps):
    """Flat offset of tap j (= c*T + t, clamped to the last) from its window start."""
    j = min(j, count - 1)
    return (j // ntaps) * plane + taps[j % ntaps]


def _weight_partials(x, gl, cin, plane, pos, taps, per_chunk):
    """part[chunk, g, kb, j, :] = sum over the chunk's images n and positions p of gl[g, kb, n*P + p, :]
    x.flat[((n*G + g)*cin)*plane + pos[p] + tap j]: one thread per chunk, channel block and tile of 8 taps."""
    groups, blocks, m, _ = gl.shape
    ntaps, npos = taps.size, pos.size
    n, count = m // npos, cin * ntaps
    chunks, tiles = (n + per_chunk - 1) // per_chunk, (count + TILE - 1) // TILE
    part = np.empty((chunks, groups, blocks, tiles * TILE, LANES), dtype=x.dtype)
    for unit in prange(chunks * groups * blocks * tiles):
        chunk, g = unit // (groups * blocks * tiles), (unit // (blocks * tiles)) % groups
        kb, j0 = (unit // tiles) % blocks, (unit % tiles) * TILE
        d0 = _tap(j0, count, ntaps, plane, taps)
        d1 = _tap(j0 + 1, count, ntaps, plane, taps)
        d2 = _tap(j0 + 2, count, ntaps, plane, taps)
        d3 = _tap(j0 + 3, count, ntaps, plane, taps)
        d4 = _tap(j0 + 4, count, ntaps, plane, taps)
        d5 = _tap(j0 + 5, count, ntaps, plane, taps)
        d6 = _tap(j0 + 6, count, ntaps, plane, taps)
        d7 = _tap(j0 + 7, count, ntaps, plane, taps)
        gk = gl[g, kb].ravel()
        a0 = vzero(gk, LANES)
        a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
        for b in range(chunk * per_chunk, min(n, (chunk + 1) * per_chunk)):
            base = (b * groups + g) * cin * plane
            for q in range(npos):
                o = base + pos[q]
                gv = vload(gk, (b * npos + q) * LANES, LANES)
                a0 = fma_broadcast(a0, x, o + d0, gv)
                a1 = fma_broadcast(a1, x, o + d1, gv)
                a2 = fma_broadcast(a2, x, o + d2, gv)
                a3 = fma_broadcast(a3, x, o + d3, gv)
                a4 = fma_broadcast(a4, x, o + d4, gv)
                a5 = fma_broadcast(a5, x, o + d5, gv)
                a6 = fma_broadcast(a6, x, o + d6, gv)
                a7 = fma_broadcast(a7, x, o + d7, gv)
        out = part[chunk, g, kb].ravel()
        vstore(out, j0 * LANES, a0)
        vstore(out, (j0 + 1) * LANES, a1)
        vstore(out, (j0 + 2) * LANES, a2)
        vstore(out, (j0 + 3) * LANES, a3)
        vstore(out, (j0 + 4) * LANES, a4)
        vstore(out, (j0 + 5) * LANES, a5)
        vstore(out, (j0 + 6) * LANES, a6)
        vstore(out, (j0 + 7) * LANES, a7)
    return part


def _scatter(g, w, pos, taps, plane):
    """The adjoint of _correlate: dx[n, g, cb, pos[p] + taps[t], :] += sum_k w[g, cb, t*kg + k, :] dy[n, g*kg + k,
    pos[p]], channels of dx in the lanes. One thread per image and block: each tile of 8 output positions sums, tap
    by tap, over the kg channels of dy in registers, then adds its 8 vectors into dx, in a fixed order."""
    n, k, _ = g.shape
    groups, blocks, ntaps, npos = w.shape[0], w.shape[1], taps.size, pos.size
    kg = k // groups
    dx = np.zeros((n, groups, blocks, plane, LANES), dtype=g.dtype)
    gf = g.reshape(-1)
    for unit in prange(n * groups * blocks):
        b, gi, cb = unit // (groups * blocks), (unit // blocks) % groups, unit % blocks
        wk, out = w[gi, cb].ravel(), dx[b, gi, cb].ravel()
        base = (b * k + gi * kg) * g.shape[2]
        for p0 in range(0, npos, TILE):
            o0, o1 = pos[min(p0, npos - 1)], pos[min(p0 + 1, npos - 1)]
            o2, o3 = pos[min(p0 + 2, npos - 1)], pos[min(p0 + 3, npos - 1)]
            o4, o5 = pos[min(p0 + 4, npos - 1)], pos[min(p0 + 5, npos - 1)]
            o6, o7 = pos[min(p0 + 6, npos - 1)], pos[min(p0 + 7, npos - 1)]
            valid = npos - p0
            for t in range(ntaps):
                a0 = vzero(gf, LANES)
                a1, a2, a3, a4, a5, a6, a7 = a0, a0, a0, a0, a0, a0, a0
                for kk in range(kg):
                    wv = vload(wk, (t * kg + kk) * LANES, LANES)
                    src = base + kk * g.shape[2]
                    a0 = fma_broadcast(a0, gf, src + o0, wv)
                    a1 = fma_broadcast(a1, gf, src + o1, wv)
                    a2 = fma_broadcast(a2, gf, src + o2, wv)
                    a3 = fma_broadcast(a3, gf, src + o3, wv)
                    a4 = fma_broadcast(a4, gf, src + o4, wv)
                    a5 = fma_broadcast(a5, gf, src + o5, wv)
                    a6 = fma_broadcast(a6, gf, src + o6, wv)
                    a7 = fma_broadcast(a7, gf, src + o7, wv)
                d = taps[t]
                _add(out, (o0 + d) * LANES, a0, 0 < valid)
                _add(out, (o1 + d) * LANES, a1, 1 < valid)
                _add(out, (o2 + d) * LANES, a2, 2 < valid)
                _add(out, (o3 + d) * LANES, a3, 3 < valid)
                _add(out, (o4 + d) * LANES, a4, 4 < valid)
                _add(out, (o5 + d) * LANES, a5, 5 < valid)
                _add(out, (o6 + d) * LANES, a6, 6 < valid)
                _add(out, (o7 + d) * LANES, a7, 7 < valid)
    return dx


@njit(inline="always")
def _add(out, index, acc, valid):
    if valid:
        vstore_add(out, index, acc)


_CORRELATE = {lanes: cpu_kernel()(with_lanes(_correlate, lanes)) for lanes in (4, 8, 16)}
_WEIGHT_PARTIALS = {lanes: cpu_kernel()(with_lanes(_weight_partials, lanes)) for lanes in (4, 8, 16)}
_SCATTER = {lanes: cpu_kernel()(with_lanes(_scatter, lanes)) for lanes in (4, 8, 16)}


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


@cpu_kernel()
def _from_lanes(a, cg):
    """(N, G, CB, S, lanes) -> (N, G*cg, S): channel g*cg + cb*lanes + l from lane l of block cb."""
    n, groups, blocks, size, lanes = a.shape
    out = np.empty((n, groups * cg, size), dtype=a.dtype)
    for unit in prange(n * groups * cg):
        b, gi, c = unit // (groups * cg), (unit // cg) % groups, unit % cg
        src = a[b, gi, c // lanes]
        for z in range(size):
            out[b, gi * cg + c, z] = src[z, c % lanes]
    return out


def _weight_lanes(w, groups, lanes):
    """w (K, ...) -> (G, KB, prod(...), lanes), contiguous."""
    k = w.shape[0]
    return _lanes_of(np.ascontiguousarray(w).reshape(1, k, 1, -1), groups, lanes, w[0].size)


def _geometry(wp, kh, kw, dh, dw, oh, ow):
    """Window starts of the OH x OW outputs in a plane of width Wp, and the KH x KW tap offsets in a window."""
    pos = (np.arange(oh)[:, None] * wp + np.arange(ow)).ravel()
    taps = (np.arange(kh)[:, None] * dh * wp + np.arange(kw) * dw).ravel()
    return pos, taps


def conv_tiled(x, w, b, groups, dh, dw, oh, ow):
    """conv_direct's contract (x padded, stride 1, y (N, K, OH, OW) with the bias) on the register-tiled kernel."""
    n, c, hp, wp = x.shape
    k, cg, kh, kw = w.shape
    lanes = lanes_for(x.itemsize, k // groups)
    pos, taps = _geometry(wp, kh, kw, dh, dw, oh, ow)
    bias = _weight_lanes(b.reshape(k, 1), groups, lanes).reshape(groups, -1, lanes)
    y = _CORRELATE[lanes](np.ascontiguousarray(x).reshape(-1), _weight_lanes(w, groups, lanes), bias, cg, hp * wp,
                          pos, taps, k // groups)
    return y.reshape(n, k, oh, ow)


def conv_tiled_weight(x, g, groups, kh, kw, dh, dw, oh):
    """conv_direct_weight's contract: dw (K, C/G, KH, KW) from the padded x and dy as (N, K, OH*Wp), junk columns
    zero. Images go in chunks of about WEIGHT_CHUNK positions, each summed in registers; the chunks' partial sums
    are then added in order."""
    n, c, hp, wp = x.shape
    k, ow, cg = g.shape[1], wp - (kw - 1) * dw, c // groups
    kg = k // groups
    lanes = lanes_for(x.itemsize, kg)
    pos, taps = _geometry(wp, kh, kw, dh, dw, oh, ow)
    gl = _lanes_of(g.reshape(n, k, oh, wp), groups, lanes, ow)
    part = _WEIGHT_PARTIALS[lanes](np.ascontiguousarray(x).reshape(-1), gl, cg, hp * wp, pos, taps,
                                   max(1, WEIGHT_CHUNK // (oh * ow)))
    total = part.sum(axis=0)[:, :, :cg * kh * kw]  # (G, KB, C/G*KH*KW, lanes)
    total = total.transpose(0, 1, 3, 2).reshape(groups, -1, cg * kh * kw)[:, :kg]
    return np.ascontiguousarray(total).reshape(k, cg, kh, kw)


def conv_tiled_input(g, w, groups, h, wd, dh, dw, oh):
    """conv_direct_input's contract: the padded dx (N, C, H, W) from dy as (N, K, OH*W), junk columns zero.
    Accumulated channels-last, (N, G, CB, H*W, LANES), then transposed."""
    n, k, span = g.shape
    _, cg, kh, kw = w.shape
    kg = k // groups
    lanes = lanes_for(g.itemsize, cg)
    pos, taps = _geometry(wd, kh, kw, dh, dw, oh, wd - (kw - 1) * dw)
    wt = w.reshape(groups, kg, cg, kh * kw).transpose(0, 2, 3, 1).reshape(groups * cg, kh * kw * kg)
    dxl = _SCATTER[lanes](np.ascontiguousarray(g), _weight_lanes(wt, groups, lanes), pos, taps, h * wd)
    return _from_lanes(dxl, cg).reshape(n, groups * cg, h, wd)
