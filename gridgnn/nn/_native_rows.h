/*
 * Row kernels of gridgnn's native depthwise conv on small NCHW planes: _native_grouped.c includes this file
 * once per element type, with T (the element) and SUFFIX (f32, f64) defined.
 *
 * They take depthwise convs at stride 1 on planes whose output rows are as long as the input's and fill
 * more than half of one vector of CB lanes (the 14 x 14 planes of EfficientNet-B0 and ConvNeXt), with
 * kernel rows of 5 or 7 taps and "same" padding along them, and at most ROW_MAX_SUMS / sizeof(T) output
 * rows. Each output row r is one vector sum held in a register. A plane is first copied into a buffer of
 * zero-padded rows two vectors long, the input's column c at lane c + KX / 2, so that the KX taps of a kernel
 * row read the KX windows of one buffer row's two aligned vectors (constant lane shifts: no unaligned loads,
 * no masks). Kernel row by kernel row, its KX weights are broadcast into registers once and every output
 * row takes them:
 *
 *     y[r] = b + sum_ky sum_kx W[ky][kx] * window_kx(P[r + ky d])
 *
 * with P[j] the buffer row of input row j - pad (zeros outside the input). The input gradient is the same
 * sum over the output gradient's planes with the kernel flipped (the padding along the rows (K - 1) d - pad).
 *
 * The plane kernels of _native_planes.h make a masked, unaligned load and a weight broadcast per tap, node
 * tile and channel instead. Side by side on an AVX-512 Xeon (2 threads, C=384-672 at 14 x 14), the row
 * kernels ran depthwise 7x7s 1.4-1.9x faster forward and 1.4-1.7x in the input gradient, 5x5s 1.4x; 3x3s
 * within 10% either way and planes of rows of 7 nodes (half the lanes idle) up to 2x slower, so those keep
 * the plane kernels. The weight gradient always runs on them.
 */

#ifndef GRIDGNN_NATIVE_ROWS_COMMON
#define GRIDGNN_NATIVE_ROWS_COMMON

/* Bytes of output rows' sums a plane holds in registers: 16 float or 8 double vectors of CB lanes. */
#define ROW_MAX_SUMS 64

/* Whether the row kernels take g (elements of `element` bytes) forward (reading) or for its input gradient:
   see the header; the rows they write are the output's, or the input's. */
static int row_applies(const dw_geometry *g, size_t element, int reading) {
    const int64_t kx = g->kernel[2];
    return !g->channels_last && g->group_width == 1 && g->kernel[0] == 1 && g->in[0] == 1
           && g->stride[1] == 1 && g->stride[2] == 1 && g->dilation[2] == 1
           && (kx == 5 || kx == 7) && g->pad[2] == kx / 2 && g->out[2] == g->in[2]
           && g->in[2] <= CB && 2 * g->in[2] > CB
           && (reading ? g->out[1] : g->in[1]) <= (int64_t)(ROW_MAX_SUMS / element);
}

/* The lane indices of the window `s` lanes into a pair of vectors (a constant shuffle mask). */
#define ROW_WINDOW(s) {s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7, s + 8, s + 9, s + 10, s + 11,    \
                       s + 12, s + 13, s + 14, s + 15}

#endif

#define ROW_NAME(x) ROW_NAME_(x, SUFFIX)
#define ROW_NAME_(x, s) ROW_NAME__(x, s)
#define ROW_NAME__(x, s) x##_##s

/* One plane's output rows [0, rows) (each `width` nodes, written to dst) from the padded buffer p (rows of
   2 CB, p[j] the row of input row j - pad), KX (5 or 7, a constant in each expansion) taps a kernel row,
   ky_taps kernel rows `dilation` rows apart; w the channel's weights [ky_taps][KX]. */
static inline __attribute__((always_inline)) void ROW_NAME(row_plane)(int KX, const T *p, int64_t rows,
                                                                        int64_t width, int64_t ky_taps,
                                                                        int64_t dilation, const T *w, T bias,
                                                                        T *dst) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef T U __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));
    typedef I M __attribute__((vector_size(CB * sizeof(T))));
    enum { SUMS = ROW_MAX_SUMS / sizeof(T) };
    V sum[SUMS];
    for (int r = 0; r < SUMS; r++)
        for (int l = 0; l < CB; l++) sum[r][l] = bias;
    for (int64_t ky = 0; ky < ky_taps; ky++) {
        V wk[7];
        for (int kx = 0; kx < KX; kx++)
            for (int l = 0; l < CB; l++) wk[kx][l] = w[ky * KX + kx];
        const V *row = (const V *)(p + ky * dilation * 2 * CB);
        _Pragma("GCC unroll 16")
        for (int r = 0; r < SUMS; r++) {
            if (r >= rows) break;
            const V lo = row[2 * r], hi = row[2 * r + 1];
            if (KX == 7) {                   /* constant lane shifts: one shuffle per tap */
                sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(6))) * wk[6];
                sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(5))) * wk[5];
            }
            sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(4))) * wk[4];
            sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(3))) * wk[3];
            sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(2))) * wk[2];
            sum[r] += __builtin_shuffle(lo, hi, ((M)ROW_WINDOW(1))) * wk[1];
            sum[r] += lo * wk[0];
        }
    }
    const int64_t plane = rows * width;
    for (int r = 0; r < SUMS && r < rows; r++) {   /* a whole vector where it stays inside the plane */
        T *d = dst + r * width;
        if (r * width + CB <= plane) *(U *)d = sum[r];
        else
            for (int64_t l = 0; l < width; l++) d[l] = sum[r][l];
    }
}

/* Plane q of the batch (image q / C, channel q % C): dst's `rows` rows from src's `src_rows` (pad rows of
   zeros above), through a thread's buffer of `buffer_rows` zero-padded rows (its padding zeroed once, by the
   caller: every plane writes the same lanes); w [C][K]. */
CLONES static void ROW_NAME(row_plane_at)(const dw_geometry *g, const T *src, int64_t src_rows, int64_t pad,
                                           const T *w, const T *bias, T *dst, int64_t rows, int64_t q, T *buf,
                                           int64_t buffer_rows) {
    const int64_t width = g->in[2], taps = g->kernel[1] * g->kernel[2], kx = g->kernel[2], c = q % g->channels;
    src += q * src_rows * width;
    for (int64_t j = 0; j < buffer_rows; j++) {               /* buffer row j: source row j - pad, if any */
        const int64_t i = j - pad;
        if (i < 0 || i >= src_rows) continue;
        T *row = buf + j * 2 * CB + kx / 2;
        for (int64_t l = 0; l < width; l++) row[l] = src[i * width + l];
    }
    dst += q * rows * width;
    const T b = bias ? bias[c] : 0;
    if (kx == 5) ROW_NAME(row_plane)(5, buf, rows, width, g->kernel[1], g->dilation[1], w + c * taps, b, dst);
    else ROW_NAME(row_plane)(7, buf, rows, width, g->kernel[1], g->dilation[1], w + c * taps, b, dst);
}

/* The forward (reading: y = conv(x, w) + bias) or the input gradient (dx = the conv of dy with the kernel
   flipped and the padding (K - 1) d - p along the rows, bias NULL) on the row kernels (g: row_applies). 0, or
   1 when out of memory. */
static int ROW_NAME(row_conv)(const dw_geometry *g, int reading, const T *src, const T *w, const T *bias,
                              T *dst) {
    const int64_t planes = g->batch * g->channels, taps = g->kernel[1] * g->kernel[2];
    const int64_t rows = reading ? g->out[1] : g->in[1], src_rows = reading ? g->in[1] : g->out[1];
    const int64_t pad = reading ? g->pad[1] : (g->kernel[1] - 1) * g->dilation[1] - g->pad[1];
    const int64_t buffer_rows = rows + (g->kernel[1] - 1) * g->dilation[1];
    T *flipped = reading ? NULL : malloc(sizeof(T) * g->channels * taps);
    if (!reading && !flipped) return 1;
    for (int64_t c = 0; !reading && c < g->channels; c++)
        for (int64_t t = 0; t < taps; t++) flipped[c * taps + t] = w[c * taps + taps - 1 - t];
    int failed = 0;
    _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")
    {
        T *buf = alloc_aligned(sizeof(T) * buffer_rows * 2 * CB);
        if (!buf) failed = 1;
        else
            memset(buf, 0, sizeof(T) * buffer_rows * 2 * CB);
        _Pragma("omp for schedule(static)")
        for (int64_t q = 0; q < planes; q++)
            if (!failed)
                ROW_NAME(row_plane_at)(g, src, src_rows, pad, reading ? w : flipped, bias, dst, rows, q, buf,
                                       buffer_rows);
        free(buf);
    }
    free(flipped);
    return failed;
}

#undef ROW_NAME
#undef ROW_NAME_
#undef ROW_NAME__
