/*
 * Row kernels of gridgnn's native depthwise conv on small NCHW planes: _native_grouped.c includes this file
 * once per element type, with T (the element) and SUFFIX (f32, f64) defined.
 *
 * They take depthwise convs at stride 1 on planes whose output rows are as long as the input's and at most
 * one vector of CB lanes (the 14 x 14 and 7 x 7 planes of EfficientNet-B0 and ConvNeXt), with kernel rows of
 * 5 or 7 taps and "same" padding along them, and at most ROW_MAX_SUMS / sizeof(T) output rows (twice that
 * for rows of at most CB / 2 nodes). Each output row r is one vector sum held in a register. A plane is
 * first copied into a buffer of zero-padded rows two vectors long, the input's column c at lane c + KX / 2,
 * so that the KX taps of a kernel row read the KX windows of one buffer row's two aligned vectors (constant
 * lane shifts: no unaligned loads, no masks). Kernel row by kernel row, its KX weights are broadcast into
 * registers once and every output row takes them:
 *
 *     y[r] = b + sum_ky sum_kx W[ky][kx] * window_kx(P[r + ky d])
 *
 * with P[j] the buffer row of input row j - pad (zeros outside the input). The input gradient is the same
 * sum over the output gradient's planes with the kernel flipped (the padding along the rows (K - 1) d - pad).
 *
 * The plane kernels of _native_planes.h make a masked, unaligned load and a weight broadcast per tap, node
 * tile and channel instead. Side by side on an AVX-512 Xeon (2 threads, C=384-672 at 14 x 14), the row
 * kernels ran depthwise 7x7s 1.4-1.9x faster forward and 1.4-1.7x in the input gradient, 5x5s 1.4x; 3x3s
 * within 10% either way (at 7 x 7, 1.3-1.8x slower), so those keep the plane kernels, as does every weight
 * gradient.
 *
 * The forward of depthwise convs at stride 2 along the rows (any stride across them; 3, 5 or 7 taps, any
 * padding) takes them too wherever a source row with its padding fits 2 CB lanes and an output row CB, as in
 * the stride-2 layers of EfficientNet-B0 and MobileNetV2 at 28 x 28 and 14 x 14 (which the plane kernels do
 * not take: they had the buffered units, with their transposing copies). Each buffer row then holds its
 * source row's even columns in its first vector and its odd columns in its second (two shuffles as the row
 * is copied), so that output column j's tap kx, input column 2 j + kx of the padded row, is lane j + kx / 2
 * of the half of kx's phase: again constant lane shifts. Side by side with the buffered units (batch 8): 5x5
 * C=240 28 -> 14 1.5 -> 0.65 ms, 3x3 C=240 28 -> 14 1.17 -> 0.54 ms, 5x5 C=672 14 -> 7 1.76 -> 0.9 ms.
 *
 * Output rows of at most CB / 2 nodes (7 x 7 planes, and 14 x 14 ones at stride 2) go two to a vector: sum
 * r holds rows 2 r and 2 r + 1 side by side, each half a window of its own buffer row (one two-source
 * shuffle a tap), and is packed into the rows' 2 x width consecutive nodes before it is stored. Against the
 * plane kernels at 7 x 7 (stride 1): 7x7 C=768 and 5x5 C=1152 at batch 1 0.36-0.43 -> 0.16-0.2 ms and 0.27-0.31
 * -> 0.15-0.18 ms, at batch 8 within 5% and 1.1x slower; at stride 2, 5-15% faster than one row a vector.
 *
 * A source row is read as the two vectors its buffer row spans, masked to its lanes (lane by lane only where
 * those loads would reach past either end of the tensor); copied value by value, it cost 1.5x at stride 2.
 */

#ifndef GRIDGNN_NATIVE_ROWS_COMMON
#define GRIDGNN_NATIVE_ROWS_COMMON

/* Bytes of output rows' sums a plane holds in registers: 16 float or 8 double vectors of CB lanes. */
#define ROW_MAX_SUMS 64

/* Whether rows of `ow` nodes go two to a vector (see the header). */
static int row_paired(int64_t ow) { return 2 * ow <= CB; }

/* Whether the row kernels take g (elements of `element` bytes) forward (reading) or for its input gradient:
   see the header; the rows they write are the output's, or the input's. */
static int row_applies(const dw_geometry *g, size_t element, int reading) {
    const int64_t kx = g->kernel[2], ow = g->out[2];
    const int64_t sums = (int64_t)(ROW_MAX_SUMS / element) * (row_paired(ow) ? 2 : 1);
    if (g->channels_last || g->group_width != 1 || g->kernel[0] != 1 || g->in[0] != 1 || g->dilation[2] != 1
        || (reading ? g->out[1] : g->in[1]) > sums || (kx != 3 && kx != 5 && kx != 7))
        return 0;
    if (g->stride[2] == 2)    /* forward only: a source row and its padding fit the buffer row's 2 CB lanes */
        return reading && ow <= CB && 2 * (ow - 1) + kx <= 2 * CB && g->pad[2] + g->in[2] <= 2 * CB;
    return g->stride[1] == 1 && g->stride[2] == 1 && kx > 3 && g->pad[2] == kx / 2 && ow == g->in[2] && ow <= CB;
}

/* The lane indices of the window `s` lanes into a pair of vectors (a constant shuffle mask). */
#define ROW_WINDOW(s) {s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7, s + 8, s + 9, s + 10, s + 11,    \
                       s + 12, s + 13, s + 14, s + 15}
/* The even and the odd lanes of a pair of vectors (a row's columns by phase, at stride 2). */
#define ROW_EVENS {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}
#define ROW_ODDS {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31}
/* The windows `s` lanes into two vectors' first halves, side by side (two output rows a vector). */
#define ROW_PAIR_WINDOW(s) {s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7, s + 16, s + 17, s + 18, s + 19, \
                            s + 20, s + 21, s + 22, s + 23}

#endif

#define ROW_NAME(x) ROW_NAME_(x, SUFFIX)
#define ROW_NAME_(x, s) ROW_NAME__(x, s)
#define ROW_NAME__(x, s) x##_##s

/* Tap kx of a kernel row from its buffer row's two vectors a0, a1: at stride 1 the window kx lanes into
   (a0, a1); at stride 2, a0 and a1 hold the row's even and odd columns, so tap kx is the window kx / 2 lanes
   into the half of its phase (the lanes past it, read from the other half, fall beyond the output row).
   PAIRED, the first half of the vector takes its window of a0 (or a1), the second that of the next output
   row's buffer row b0 (or b1). */
#define ROW_TAP(kx)                                                                                          \
    (PAIRED ? (STRIDE == 2 && (kx) % 2 ? __builtin_shuffle(a1, b1, ((M)ROW_PAIR_WINDOW((kx) / 2)))          \
                                       : __builtin_shuffle(a0, b0, ((M)ROW_PAIR_WINDOW((kx) / STRIDE))))    \
     : STRIDE == 1 ? __builtin_shuffle(a0, a1, ((M)ROW_WINDOW(kx)))                                        \
     : (kx) % 2 ? __builtin_shuffle(a1, a0, ((M)ROW_WINDOW((kx) / 2)))                                     \
                : __builtin_shuffle(a0, a1, ((M)ROW_WINDOW((kx) / 2))))

/* One plane's output rows [0, rows) (each `width` nodes, written to dst) from the buffer p (rows of 2 CB, p[j]
   the row of input row j - pad; output row r reads rows r * row_stride + ky * dilation), KX (3, 5 or 7) taps a
   kernel row at column stride STRIDE (1 or 2), ky_taps kernel rows; w the channel's weights [ky_taps][KX].
   PAIRED (rows of at most CB / 2 nodes), sum r holds output rows 2 r and 2 r + 1 side by side, moved
   together (`pack`) before they are stored. KX, STRIDE and PAIRED are constants in each expansion. */
static inline __attribute__((always_inline)) void ROW_NAME(row_plane)(int KX, int STRIDE, int PAIRED,
                                                                        const T *p, int64_t rows,
                                                                        int64_t width, int64_t row_stride,
                                                                        int64_t ky_taps, int64_t dilation,
                                                                        const T *w, T bias, T *dst) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef T U __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));
    typedef I M __attribute__((vector_size(CB * sizeof(T))));
    enum { SUMS = ROW_MAX_SUMS / sizeof(T) };
    const int64_t sums = PAIRED ? (rows + 1) / 2 : rows, next = 2 * row_stride * CB;   /* next: row r + 1's */
    V sum[SUMS];
    const V zero = {0};                   /* vector + scalar: one broadcast (a lane loop built the vectors on the
                                             stack from 16-byte pieces, and each load of them stalled) */
    for (int r = 0; r < SUMS; r++) sum[r] = zero + bias;
    for (int64_t ky = 0; ky < ky_taps; ky++) {
        V wk[7];
        for (int kx = 0; kx < KX; kx++) wk[kx] = zero + w[ky * KX + kx];
        const T *row = p + ky * dilation * 2 * CB;
        _Pragma("GCC unroll 16")
        for (int r = 0; r < SUMS; r++) {
            if (r >= sums) break;
            const V *a = (const V *)(row + (PAIRED ? 2 : 1) * r * next), *b = (const V *)((const T *)a + next);
            const V a0 = a[0], a1 = a[1], b0 = PAIRED ? b[0] : a0, b1 = PAIRED && STRIDE == 2 ? b[1] : a1;
            if (KX == 7) {                   /* constant lane shifts: one shuffle per tap */
                sum[r] += ROW_TAP(6) * wk[6];
                sum[r] += ROW_TAP(5) * wk[5];
            }
            if (KX >= 5) {
                sum[r] += ROW_TAP(4) * wk[4];
                sum[r] += ROW_TAP(3) * wk[3];
            }
            sum[r] += ROW_TAP(2) * wk[2];
            sum[r] += ROW_TAP(1) * wk[1];
            sum[r] += ROW_TAP(0) * wk[0];
        }
    }
    M pack;                                          /* PAIRED: the two rows' nodes next to each other */
    for (int l = 0; l < CB; l++) pack[l] = l < width ? l : l - width + CB / 2;
    const int64_t plane = rows * width, step = PAIRED ? 2 * width : width;
    for (int r = 0; r < SUMS && r < sums; r++) {   /* a whole vector where it stays inside the plane */
        const V v = PAIRED ? __builtin_shuffle(sum[r], pack) : sum[r];
        T *d = dst + r * step;
        if (r * step + CB <= plane) *(U *)d = v;
        else
            for (int64_t l = 0; l < step && r * step + l < plane; l++) d[l] = v[l];
    }
}

#undef ROW_TAP

/* Plane q of the batch (image q / C, channel q % C): dst's `rows` rows from src's `src_rows` (pad rows of
   zeros above), through a thread's buffer of `buffer_rows` zero-padded rows (rows without a source zeroed
   once, by the caller: every plane writes the same rows); w [C][K]. A source row is read as the two vectors
   that its buffer row spans, its lanes outside the row masked to zero, or, where those loads would reach past
   either end of the tensor src (`total` elements), lane by lane through the thread's staging row (2 CB, its
   padding zeroed once too). At stride 2 along the rows the buffer row holds the even and the odd columns. */
CLONES static void ROW_NAME(row_plane_at)(const dw_geometry *g, int reading, const T *src, int64_t total,
                                           int64_t src_rows, int64_t pad, const T *w, const T *bias, T *dst,
                                           int64_t rows, int64_t q, T *buf, int64_t buffer_rows, T *staging) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef T U __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));
    typedef I M __attribute__((vector_size(CB * sizeof(T))));
    const int64_t kx = g->kernel[2], taps = g->kernel[1] * kx, c = q % g->channels, halved = g->stride[2] == 2;
    const int64_t src_width = reading ? g->in[2] : g->out[2], width = reading ? g->out[2] : g->in[2];
    const int64_t lead = halved ? g->pad[2] : kx / 2;       /* the lane of the source's column 0 */
    M keep_lo, keep_hi;                                       /* the lanes [lead, lead + src_width) */
    for (int l = 0; l < CB; l++) {
        keep_lo[l] = l >= lead && l < lead + src_width ? -1 : 0;
        keep_hi[l] = l + CB >= lead && l + CB < lead + src_width ? -1 : 0;
    }
    for (int64_t j = 0; j < buffer_rows; j++) {               /* buffer row j: source row j - pad, if any */
        const int64_t i = j - pad, from = (q * src_rows + i) * src_width - lead;
        if (i < 0 || i >= src_rows) continue;
        V lo, hi;
        if (from >= 0 && from + 2 * CB <= total) {
            lo = (V)((M)(*(const U *)(src + from)) & keep_lo);
            hi = (V)((M)(*(const U *)(src + from + CB)) & keep_hi);
        } else {
            for (int64_t l = 0; l < src_width; l++) staging[lead + l] = src[from + lead + l];
            lo = ((const V *)staging)[0], hi = ((const V *)staging)[1];
        }
        ((V *)buf)[2 * j] = halved ? __builtin_shuffle(lo, hi, ((M)ROW_EVENS)) : lo;
        ((V *)buf)[2 * j + 1] = halved ? __builtin_shuffle(lo, hi, ((M)ROW_ODDS)) : hi;
    }
    dst += q * rows * width;
    const T b = bias ? bias[c] : 0;
    const int64_t sy = reading ? g->stride[1] : 1, ky = g->kernel[1], d = g->dilation[1];
    w += c * taps;
#define ROW_RUN(K, S, P) ROW_NAME(row_plane)(K, S, P, buf, rows, width, sy, ky, d, w, b, dst)
    const int paired = row_paired(width);                    /* one expansion per (KX, stride, paired) */
    if (!halved && kx == 5) paired ? ROW_RUN(5, 1, 1) : ROW_RUN(5, 1, 0);
    else if (!halved) paired ? ROW_RUN(7, 1, 1) : ROW_RUN(7, 1, 0);
    else if (kx == 3) paired ? ROW_RUN(3, 2, 1) : ROW_RUN(3, 2, 0);
    else if (kx == 5) paired ? ROW_RUN(5, 2, 1) : ROW_RUN(5, 2, 0);
    else paired ? ROW_RUN(7, 2, 1) : ROW_RUN(7, 2, 0);
#undef ROW_RUN
}

/* The forward (reading: y = conv(x, w) + bias) or the input gradient (dx = the conv of dy with the kernel
   flipped and the padding (K - 1) d - p along the rows, bias NULL; stride 1 only) on the row kernels (g:
   row_applies). 0, or 1 when out of memory. */
static int ROW_NAME(row_conv)(const dw_geometry *g, int reading, const T *src, const T *w, const T *bias,
                              T *dst) {
    const int64_t planes = g->batch * g->channels, taps = g->kernel[1] * g->kernel[2];
    const int64_t rows = reading ? g->out[1] : g->in[1], src_rows = reading ? g->in[1] : g->out[1];
    const int64_t src_width = reading ? g->in[2] : g->out[2];
    const int64_t pad = reading ? g->pad[1] : (g->kernel[1] - 1) * g->dilation[1] - g->pad[1];
    const int64_t sums = row_paired(reading ? g->out[2] : g->in[2]) ? rows + rows % 2 : rows;  /* paired: even */
    const int64_t buffer_rows = (sums - 1) * (reading ? g->stride[1] : 1) + (g->kernel[1] - 1) * g->dilation[1] + 1;
    T *flipped = reading ? NULL : malloc(sizeof(T) * g->channels * taps);
    if (!reading && !flipped) return 1;
    for (int64_t c = 0; !reading && c < g->channels; c++)
        for (int64_t t = 0; t < taps; t++) flipped[c * taps + t] = w[c * taps + taps - 1 - t];
    int failed = 0;
    _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")
    {
        const size_t bytes = sizeof(T) * (buffer_rows + 1) * 2 * CB;    /* the buffer, then the staging row */
        T *buf = alloc_aligned(bytes);
        if (!buf) failed = 1;
        else
            memset(buf, 0, bytes);
        _Pragma("omp for schedule(static)")
        for (int64_t q = 0; q < planes; q++)
            if (!failed)
                ROW_NAME(row_plane_at)(g, reading, src, planes * src_rows * src_width, src_rows, pad,
                                       reading ? w : flipped, bias, dst, rows, q, buf, buffer_rows,
                                       buf + buffer_rows * 2 * CB);
        free(buf);
    }
    free(flipped);
    return failed;
}

#undef ROW_NAME
#undef ROW_NAME_
#undef ROW_NAME__
