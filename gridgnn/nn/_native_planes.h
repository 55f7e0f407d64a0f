/*
 * Channel-plane kernels of gridgnn's native grouped conv, for NCHW nodes: _native_grouped.c includes this file
 * once per element type, with T (the element), SUFFIX (f32, f64), I and UI (the signed and unsigned integers of
 * T's width) defined.
 *
 * They take convs with thin groups (w = 1, 2, 4, 8 or 16 channels a group) on channel-major [B][C][*S] nodes at
 * stride 1 whose output rows (and, in 3-D, planes) are as long as the input's, as a "same"-padded conv's are.
 * There an output node q of a plane reads, for kernel offset t, the node q + s_t of the input plane, one shift
 * s_t for every node of the plane. So a tile is CB consecutive nodes of an output plane, running on across rows
 * (a 14 x 14 plane is 13 tiles, not 14 rows of 14 lanes in 16), and node-wise
 *
 *     y_G[o][q : q + CB] = b[o] + sum_{i < w} sum_t W[o][i][t] * (x_G[i][q + s_t : q + s_t + CB] & m_t)
 *
 * for the w output planes o of each group G: one unaligned vector load of an input plane per offset, masked by
 * m_t, the lanes whose source lies in the grid. Zero padding is read in place and no node is copied or
 * transposed: the buffered units of _native_grouped.c copy each 16-channel block of an NCHW image into a padded
 * channels-innermost buffer and back, which costs more than the sums. A tile's masks are made once for all the
 * planes of a work unit (one image and a run of groups) and held in L1; several groups share each mask load.
 * The planes a unit streams are prefetched a few tiles ahead, and only the few tiles whose loads could reach
 * past either end of the tensor take lane-by-lane loads.
 *
 * The input gradient is the same sum over the reversed edges: shifts -s_t, from the output gradient's planes
 * into the input's, with each group's weights transposed. The weight gradient
 * (dW[G w + o][i][t] = sum over images and nodes of dy_G[o][q] x_G[i][q + s_t] m_t) keeps blocks of its sums
 * in registers across a plane's tiles, each unit owning its output channels' weights.
 */

#ifndef GRIDGNN_NATIVE_PLANES_COMMON
#define GRIDGNN_NATIVE_PLANES_COMMON

/* One direction of the sum: planes of sizes src[] read, of sizes dst[] written (src[1] = dst[1] and
   src[2] = dst[2]); along axis a, reach[a][k] is the source coordinate that destination coordinate 0 reads
   at kernel position k; shift[t] the linear shift of offset t (row-major), lo and hi the least and most. */
typedef struct {
    int64_t src[3], dst[3], kernel[3];
    int64_t *reach[3], *shift;
    int64_t lo, hi;
} plane_map;

/* Whether the plane kernels take g: channel-major nodes, stride 1, output rows (and planes) of the input's;
   for depthwise convs with more than 9 taps only planes of up to PLANE_DEPTHWISE_MAX nodes. Side by side on an
   AVX-512 Xeon, NCHW, against the buffered units: grouped 3x3s (4 and 16 channels a group) ran 1.5-3.4x faster
   at 14 x 14 and 56 x 56; depthwise 3x3s 1.3x forward and 1.1-2.2x in either gradient from 14 x 14 to
   112 x 112; depthwise 7x7s 1.3x faster at 14 x 14 but at 28 x 28 and 56 x 56 1.5-2.7x slower in the forward
   and the weight gradient (49 masked loads a tile and channel, where the buffered units read a padded copy). */
#define PLANE_DEPTHWISE_MAX 256
static int plane_applies(const dw_geometry *g) {
    return !g->channels_last && g->stride[0] == 1 && g->stride[1] == 1 && g->stride[2] == 1
           && g->out[1] == g->in[1] && g->out[2] == g->in[2]
           && (g->group_width > 1 || g->kernel[0] * g->kernel[1] * g->kernel[2] <= 9
               || g->out[0] * g->out[1] * g->out[2] <= PLANE_DEPTHWISE_MAX);
}

static void plane_map_free(plane_map *m) {
    free(m->reach[0]);
    free(m->shift);
}

/* The forward's map (reading: output planes read the input's at k d - p) or the input gradient's (input
   planes read the output gradient's at p - k d). 0, or 1 when out of memory. */
static int plane_map_make(const dw_geometry *g, int reading, plane_map *m) {
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2];
    m->reach[0] = malloc(sizeof(int64_t) * (g->kernel[0] + g->kernel[1] + g->kernel[2]));
    m->shift = malloc(sizeof(int64_t) * taps);
    if (!m->reach[0] || !m->shift) {
        plane_map_free(m);
        return 1;
    }
    for (int a = 0; a < 3; a++) {
        m->src[a] = reading ? g->in[a] : g->out[a];
        m->dst[a] = reading ? g->out[a] : g->in[a];
        m->kernel[a] = g->kernel[a];
        if (a) m->reach[a] = m->reach[a - 1] + g->kernel[a - 1];
        for (int64_t k = 0; k < g->kernel[a]; k++)
            m->reach[a][k] = (reading ? 1 : -1) * (k * g->dilation[a] - g->pad[a]);
    }
    m->lo = m->hi = 0;
    for (int64_t t = 0; t < taps; t++) {
        const int64_t kz = t / (g->kernel[1] * g->kernel[2]), ky = t / g->kernel[2] % g->kernel[1];
        const int64_t s = (m->reach[0][kz] * m->src[1] + m->reach[1][ky]) * m->src[2] + m->reach[2][t % g->kernel[2]];
        m->shift[t] = s;
        m->lo = s < m->lo ? s : m->lo;
        m->hi = s > m->hi ? s : m->hi;
    }
    return 0;
}

/* Channels (whole groups) a work unit: planes of 64 KiB together at most (a tile reads every plane of its unit:
   the prefetchers follow a few planes' rows, not 64 of 56 x 56; side by side, 8 such planes a unit ran 1.6x
   faster than 64, and 64 planes of 14 x 14 1.6x faster than 8), at least a step's (16, or 8 for w <= 8) and at
   most 64 channels, and fewer where that leaves the threads under four units each. */
static int64_t plane_run(const dw_geometry *g, size_t element) {
    const int64_t step = g->group_width <= 8 ? 8 : 16, want = 4 * g->threads;
    const int64_t plane = g->in[0] * g->in[1] * g->in[2] * (int64_t)element;
    const int64_t per_image = (want + g->batch - 1) / g->batch;            /* units wanted from each image */
    int64_t run = (g->channels + per_image - 1) / per_image;
    run = (run + step - 1) / step * step;
    run = run < 65536 / plane / step * step ? run : 65536 / plane / step * step;
    return run < step ? step : run > 64 ? 64 : run;
}

/* How far ahead of a tile its planes are prefetched (read, and written): a unit streams up to 64 planes at
   once, more than the hardware prefetchers follow. Side by side on an AVX-512 Xeon, NCHW, batch 8, prefetching
   1-2 tiles ahead ran the plane sums 1.2-1.6x faster (depthwise 3x3 and 7x7 at 14 x 14, 16 and 4 channels a
   group at 14 x 14 and 56 x 56); 4-8 tiles ahead, less. */
#define PLANE_AHEAD (2 * CB)

/* Which tiles of a plane read only inside the tensor: tile k reads elements [k CB + lo, k CB + CB + hi) of
   planes from one `head` elements after the tensor's start to one `tail` elements before its end (counted
   from that plane's start). Tiles [*fast0, *fast1) do; the others (a few, of the tensor's first and last
   planes) take lane-by-lane loads. */
static void plane_fast_tiles(int64_t head, int64_t tail, int64_t lo, int64_t hi, int64_t tiles, int64_t *fast0,
                             int64_t *fast1) {
    const int64_t before = -(lo + head), room = tail - CB - hi;         /* k CB >= before, k CB <= room */
    const int64_t f0 = before <= 0 ? 0 : (before + CB - 1) / CB, f1 = room < 0 ? 0 : room / CB + 1;
    *fast0 = f0 < tiles ? f0 : tiles;
    *fast1 = f1 < *fast0 ? *fast0 : f1 < tiles ? f1 : tiles;
}

#endif

#define PLANE_NAME(x) PLANE_NAME_(x, SUFFIX)
#define PLANE_NAME_(x, s) PLANE_NAME__(x, s)
#define PLANE_NAME__(x, s) x##_##s

/* The coordinates of a tile's CB destination nodes (q: their index in the plane), as vectors. */
#define PLANE_LANES PLANE_NAME(plane_lanes)
typedef struct {
    I q[CB], x[CB], y[CB], z[CB];
} PLANE_LANES;

/* The first tile's: nodes 0 .. CB - 1. */
static void PLANE_NAME(plane_lanes_start)(const plane_map *m, PLANE_LANES *lanes) {
    for (int64_t l = 0; l < CB; l++) {
        lanes->q[l] = (I)l;
        lanes->x[l] = (I)(l % m->dst[2]);
        lanes->y[l] = (I)(l / m->dst[2] % m->dst[1]);
        lanes->z[l] = (I)(l / (m->dst[1] * m->dst[2]));
    }
}

/* The next tile's (CB nodes on): each coordinate that runs past its axis wraps into the one before, with
   compares and masked subtractions (ceil(CB / X) wraps at most along x, as many rows along y). */
static inline __attribute__((always_inline)) void PLANE_NAME(plane_lanes_next)(const plane_map *m,
                                                                                PLANE_LANES *lanes) {
    typedef I M __attribute__((vector_size(CB * sizeof(I))));
    M *q = (M *)lanes->q, *x = (M *)lanes->x, *y = (M *)lanes->y, *z = (M *)lanes->z;
    const I width = (I)m->dst[2], rows = (I)m->dst[1];
    const int64_t wraps = (CB + width - 1) / width;
    *q += (I)CB;
    *x += (I)CB;
    for (int64_t r = 0; r < wraps; r++) {
        const M past = *x >= width;
        *x -= past & width;
        *y -= past;
    }
    for (int64_t r = 0; r < (wraps + rows - 1) / rows; r++) {
        const M past = *y >= rows;
        *y -= past & rows;
        *z -= past;
    }
}

/* masks[t] ([K][CB]) for the tile at `lanes`: lane l is all ones where its node exists and its source at
   offset t lies in the source grid (axis: scratch of (K_0 + K_1 + K_2) CB). Vector compares throughout. */
static inline __attribute__((always_inline)) void PLANE_NAME(plane_masks)(const plane_map *m, const PLANE_LANES *lanes,
                                                                           I *axis, I *masks) {
    typedef I M __attribute__((vector_size(CB * sizeof(I))));
    typedef UI UM __attribute__((vector_size(CB * sizeof(I))));
    const I *coordinate[3] = {lanes->z, lanes->y, lanes->x};
    const M live = *(const M *)lanes->q < (I)(m->dst[0] * m->dst[1] * m->dst[2]);
    M *along[3] = {(M *)axis, (M *)axis + m->kernel[0], (M *)axis + m->kernel[0] + m->kernel[1]};
    for (int a = 0; a < 3; a++)
        for (int64_t k = 0; k < m->kernel[a]; k++)       /* 0 <= c + reach < size, as one unsigned compare */
            along[a][k] = (UM)(*(const M *)coordinate[a] + (I)m->reach[a][k]) < (UI)m->src[a];
    M *out = (M *)masks;
    for (int64_t kz = 0; kz < m->kernel[0]; kz++)
        for (int64_t ky = 0; ky < m->kernel[1]; ky++) {
            const M zy = along[0][kz] & along[1][ky] & live;
            for (int64_t kx = 0; kx < m->kernel[2]; kx++) *out++ = zy & along[2][kx];
        }
}

/* The vector of CB values at p, masked by mask; with `safe`, values outside [begin, end) are read as zeros
   and never touched (the first and last planes' tiles may reach beyond the tensor). */
static inline __attribute__((always_inline)) void PLANE_NAME(plane_load)(int safe, const T *p, const I *mask,
                                                                          const T *begin, const T *end, T *v) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef T U __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));
    typedef I M __attribute__((vector_size(CB * sizeof(I))));
    V r;
    if (!safe || (p >= begin && p + CB <= end)) r = *(const U *)p;
    else
        for (int l = 0; l < CB; l++) r[l] = p + l >= begin && p + l < end ? p[l] : 0;
    *(V *)v = (V)((M)r & *(const M *)mask);
}

/* NG groups of W channels (constants in each expansion, so the NG W sums stay in registers): destination
   planes k = gi W + o get, at the tile's n live nodes from q0, bias[k] + the sum over i < W and offsets t of
   wp[((gi W + i) K + t) W + o] times source plane gi W + i moved by shift[t] and masked by masks[t]. */
static inline __attribute__((always_inline)) void PLANE_NAME(plane_tile)(
        int ng, int w, int safe, const plane_map *m, const T *src, int64_t src_plane, const I *masks,
        const T *wp, const T *bias, T *dst, int64_t dst_plane, int64_t q0, int64_t n, const T *begin, const T *end) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef T U __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));
    const int64_t taps = m->kernel[0] * m->kernel[1] * m->kernel[2];
    V acc[16];
    for (int k = 0; k < ng * w; k++) {
        acc[k] = (V){0} + (bias ? bias[k] : 0);                                 /* a broadcast */
        __builtin_prefetch(src + k * src_plane + q0 + m->hi + PLANE_AHEAD, 0, 3);
        __builtin_prefetch(dst + k * dst_plane + q0 + PLANE_AHEAD, 1, 3);
    }
    for (int i = 0; i < w; i++)
        for (int64_t t = 0; t < taps; t++) {
            const T *wt = wp + (i * taps + t) * w;
            for (int gi = 0; gi < ng; gi++) {
                V v;
                PLANE_NAME(plane_load)(safe, src + (gi * w + i) * src_plane + q0 + m->shift[t], masks + t * CB, begin,
                                       end, (T *)&v);
                for (int o = 0; o < w; o++) acc[gi * w + o] += v * wt[gi * w * taps * w + o];
            }
        }
    for (int k = 0; k < ng * w; k++) {
        T *d = dst + k * dst_plane + q0;
        if (n == CB) *(U *)d = acc[k];
        else
            for (int64_t l = 0; l < n; l++) d[l] = acc[k][l];
    }
}

/* The tiles that may read beyond the tensor (a unit of its first or last planes) take the lane-by-lane
   loads, with the group sizes as variables: one plain expansion rather than one per (NG, W). */
static void PLANE_NAME(plane_tile_safe)(int ng, int w, const plane_map *m, const T *src, int64_t src_plane,
                                        const I *masks, const T *wp, const T *bias, T *dst, int64_t dst_plane,
                                        int64_t q0, int64_t n, const T *begin, const T *end) {
    PLANE_NAME(plane_tile)(ng, w, 1, m, src, src_plane, masks, wp, bias, dst, dst_plane, q0, n, begin, end);
}

#define PLANE_TILE(NG, W)                                                                                    \
    PLANE_NAME(plane_tile)(NG, W, 0, m, s, src_plane, masks, wp + G * W * taps * W, b, d, dst_plane, q0, n,   \
                           begin, end)

/* The plane sum for groups [g0, g1) of one image (src and dst at the image's first plane), tile by tile:
   each tile's masks once, then its groups 8 (or 16) channels a step; tiles outside [fast0, fast1) take
   lane-by-lane loads (plane_fast_tiles). */
CLONES static void PLANE_NAME(plane_unit)(const plane_map *m, int64_t w, const T *src, const T *wp, const T *bias,
                                          T *dst, int64_t g0, int64_t g1, int64_t fast0, int64_t fast1,
                                          const T *begin, const T *end, I *axis, I *masks) {
    const int64_t taps = m->kernel[0] * m->kernel[1] * m->kernel[2];
    const int64_t src_plane = m->src[0] * m->src[1] * m->src[2], dst_plane = m->dst[0] * m->dst[1] * m->dst[2];
    PLANE_LANES lanes;
    PLANE_NAME(plane_lanes_start)(m, &lanes);
    for (int64_t q0 = 0; q0 < dst_plane; q0 += CB, PLANE_NAME(plane_lanes_next)(m, &lanes)) {
        const int64_t n = dst_plane - q0 < CB ? dst_plane - q0 : CB;
        const int safe = q0 < fast0 * CB || q0 >= fast1 * CB;
        PLANE_NAME(plane_masks)(m, &lanes, axis, masks);
        for (int64_t G = g0, ng; G < g1; G += ng) {
            const int64_t most = w <= 8 ? 8 / w : 1, left = g1 - G;
            ng = left >= most ? most : left >= 4 ? 4 : left >= 2 ? 2 : 1;
            const T *s = src + G * w * src_plane, *b = bias ? bias + G * w : NULL;
            T *d = dst + G * w * dst_plane;
            if (safe) {
                PLANE_NAME(plane_tile_safe)((int)ng, (int)w, m, s, src_plane, masks, wp + G * w * taps * w, b, d,
                                            dst_plane, q0, n, begin, end);
                continue;
            }
            switch (w * 16 + ng) {
            case 16 + 8: PLANE_TILE(8, 1); break;
            case 16 + 4: PLANE_TILE(4, 1); break;
            case 16 + 2: PLANE_TILE(2, 1); break;
            case 16 + 1: PLANE_TILE(1, 1); break;
            case 32 + 4: PLANE_TILE(4, 2); break;
            case 32 + 2: PLANE_TILE(2, 2); break;
            case 32 + 1: PLANE_TILE(1, 2); break;
            case 64 + 2: PLANE_TILE(2, 4); break;
            case 64 + 1: PLANE_TILE(1, 4); break;
            case 128 + 1: PLANE_TILE(1, 8); break;
            default: PLANE_TILE(1, 16);
            }
        }
    }
}
#undef PLANE_TILE

/* W ([C][w][K], torch's) as wp[((G w + i) K + t) w + o] = W[G w + o][i][t], or transposed (the input
   gradient's: destination i reads source o) W[G w + i][o][t]; NULL when out of memory. */
static T *PLANE_NAME(plane_weights)(const dw_geometry *g, const T *w, int transposed) {
    const int64_t width = g->group_width, taps = g->kernel[0] * g->kernel[1] * g->kernel[2];
    T *wp = malloc(sizeof(T) * g->channels * width * taps);
    if (!wp) return NULL;
    for (int64_t c = 0; c < g->channels; c++)             /* c = G w + i: source plane i of group G */
        for (int64_t t = 0; t < taps; t++)
            for (int64_t o = 0; o < width; o++) {
                const int64_t G = c / width, i = c % width;
                const int64_t from = transposed ? (G * width + i) * width + o : (G * width + o) * width + i;
                wp[(c * taps + t) * width + o] = w[from * taps + t];
            }
    return wp;
}

/* dst = the plane sum of src (map m, weights packed by plane_weights, bias or NULL) for every image, in units
   of one image and a run of groups (plane_run) shared by the threads. */
static int PLANE_NAME(plane_sum)(const dw_geometry *g, const plane_map *m, const T *src, const T *wp, const T *bias,
                                 T *dst) {
    const int64_t src_plane = m->src[0] * m->src[1] * m->src[2], dst_plane = m->dst[0] * m->dst[1] * m->dst[2];
    const int64_t run = plane_run(g, sizeof(T)) / g->group_width, groups = g->channels / g->group_width;
    const int64_t units = (groups + run - 1) / run, tiles = (dst_plane + CB - 1) / CB;
    const int64_t taps = m->kernel[0] * m->kernel[1] * m->kernel[2], axes = m->kernel[0] + m->kernel[1] + m->kernel[2];
    const T *end = src + g->batch * g->channels * src_plane;
    int failed = 0;
    _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")
    {
        I *axis = alloc_aligned(sizeof(I) * CB * (axes + taps)), *masks = axis ? axis + CB * axes : NULL;
        if (!axis) failed = 1;
        _Pragma("omp for schedule(static)")
        for (int64_t u = 0; u < g->batch * units; u++) {
            if (failed) continue;
            const int64_t image = u / units, g0 = u % units * run, g1 = groups - g0 < run ? groups : g0 + run;
            const int64_t first = (image * g->channels + g0 * g->group_width) * src_plane;
            const int64_t last = (image * g->channels + g1 * g->group_width - 1) * src_plane;
            int64_t fast0, fast1;
            plane_fast_tiles(first, end - src - last, m->lo, m->hi, tiles, &fast0, &fast1);
            PLANE_NAME(plane_unit)(m, g->group_width, src + image * g->channels * src_plane, wp, bias,
                                   dst + image * g->channels * dst_plane, g0, g1, fast0, fast1, src, end, axis, masks);
        }
        free(axis);
    }
    return failed;
}

/* The forward (reading: y = conv(x, w) + bias) or the input gradient (dx = the sum of dy over the reversed
   edges, bias NULL) on the plane kernels (g: plane_applies). 0, or 1 when out of memory. */
static int PLANE_NAME(plane_conv)(const dw_geometry *g, int reading, const T *src, const T *w, const T *bias,
                                  T *dst) {
    plane_map m;
    T *wp = PLANE_NAME(plane_weights)(g, w, !reading);
    int failed = !wp || plane_map_make(g, reading, &m);
    if (!failed) {
        failed = PLANE_NAME(plane_sum)(g, &m, src, wp, bias, dst);
        plane_map_free(&m);
    }
    free(wp);
    return failed;
}

/* The weight gradient on the plane kernels,

       dW[G w + o][i][t] = sum over images and nodes q of dy_G[o][q] (x_G[i][q + s_t] & m_t),

   in units of BO output channels o of one group G over every image (no two units write one weight). A unit
   takes the source pairs j = i K + t in blocks of BT: for each image, a block's BO BT vector sums stay in
   registers across the tiles of a plane, which load BO output-gradient vectors and BT masked input vectors
   for BO BT multiply-adds. The masks are the same for every plane: made once a call, for all tiles. */

/* sums[o BT + j] (vectors, o < BO, j < BT) += dy[o][q] (x[off[j] + q] & masks[row[j]]) over tiles [k0, k1)
   of a plane (x at the group's first plane of an image, dy at the unit's first; masks [tiles][rows][CB], row
   rows - 2 the live lanes, row rows - 1 zeros). */
static inline __attribute__((always_inline)) void PLANE_NAME(plane_weight_tiles)(
        int bo, int bt, int safe, const T *x, const T *dy, int64_t dst_plane, int64_t k0, int64_t k1,
        const int64_t *off, const int64_t *row, const I *masks, int64_t rows, const T *begin, const T *end,
        const T *dy_end, T *sums) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    V a[25], d[4];
    for (int k = 0; k < bo * bt; k++) a[k] = ((const V *)sums)[k];
    masks += k0 * rows * CB;
    for (int64_t q0 = k0 * CB; q0 < k1 * CB; q0 += CB, masks += rows * CB) {
        for (int o = 0; o < bo; o++)
            PLANE_NAME(plane_load)(safe, dy + o * dst_plane + q0, masks + (rows - 2) * CB, dy, dy_end, (T *)&d[o]);
        _Pragma("GCC unroll 25")                            /* whole, so that the sums stay in registers */
        for (int j = 0; j < bt; j++) {
            V v;
            PLANE_NAME(plane_load)(safe, x + off[j] + q0, masks + row[j] * CB, begin, end, (T *)&v);
            for (int o = 0; o < bo; o++) a[o * bt + j] += d[o] * v;
        }
    }
    for (int k = 0; k < bo * bt; k++) ((V *)sums)[k] = a[k];
}

/* The tiles that may read beyond the tensor take lane-by-lane loads, block sizes as variables. */
static void PLANE_NAME(plane_weight_tiles_safe)(int bo, int bt, const T *x, const T *dy, int64_t dst_plane,
                                                int64_t k0, int64_t k1, const int64_t *off, const int64_t *row,
                                                const I *masks, int64_t rows, const T *begin, const T *end,
                                                const T *dy_end, T *sums) {
    PLANE_NAME(plane_weight_tiles)(bo, bt, 1, x, dy, dst_plane, k0, k1, off, row, masks, rows, begin, end, dy_end,
                                   sums);
}

#define PLANE_WEIGHT_TILES(BO, BT)                                                                            \
    PLANE_NAME(plane_weight_tiles)(BO, BT, 0, x, dy, dst_plane, fast0, fast1, off + j0, row + j0, masks, rows, \
                                   begin, end, dy_end, block)

/* One image's share of a unit of bo output channels (w channels a group): every block of source pairs (slots
   of them, in blocks of bt) over the plane's tiles, those outside [fast0, fast1) with lane-by-lane loads
   (plane_fast_tiles). */
CLONES static void PLANE_NAME(plane_weight_unit)(int64_t bo, int64_t bt, int64_t slots, int64_t tiles,
                                                 int64_t fast0, int64_t fast1, const T *x, const T *dy,
                                                 int64_t dst_plane, const int64_t *off, const int64_t *row,
                                                 const I *masks, int64_t rows, const T *begin, const T *end,
                                                 const T *dy_end, T *sums) {
    for (int64_t j0 = 0; j0 < slots; j0 += bt) {
        T *block = sums + j0 * bo * CB;
        for (int side = 0; side < 2; side++)                                /* tiles [0, fast0), [fast1, tiles) */
            if (side ? fast1 < tiles : fast0 > 0)
                PLANE_NAME(plane_weight_tiles_safe)((int)bo, (int)bt, x, dy, dst_plane, side ? fast1 : 0,
                                                    side ? tiles : fast0, off + j0, row + j0, masks, rows, begin, end,
                                                    dy_end, block);
        switch (bo * 32 + bt) {
        case 32 + 9: PLANE_WEIGHT_TILES(1, 9); break;
        case 32 + 25: PLANE_WEIGHT_TILES(1, 25); break;
        case 64 + 9: PLANE_WEIGHT_TILES(2, 9); break;
        default: PLANE_WEIGHT_TILES(4, 6);
        }
    }
}
#undef PLANE_WEIGHT_TILES

/* dw ([C][w][K], torch's) of the conv g (plane_applies) from x and dy. 0, or 1 when out of memory. */
static int PLANE_NAME(plane_weight_grad)(const dw_geometry *g, const T *x, const T *dy, T *dw) {
    const int64_t w = g->group_width, taps = g->kernel[0] * g->kernel[1] * g->kernel[2], pairs = w * taps;
    /* blocks of bo x bt sums: 4 x 6, 2 x 9 or 1 x 9 (whole kernels of 9 or 27 taps; the last block of the
       pairs padded with zero-masked slots) or, for other depthwise kernels, 1 x 25 (5 x 5, 7 x 7 in 2) */
    const int64_t bo = w < 4 ? w : 4, bt = w > 2 ? 6 : w == 2 || taps <= 9 || taps % 9 == 0 ? 9 : 25;
    const int64_t slots = (pairs + bt - 1) / bt * bt, span = slots * bo * CB;
    const int64_t src_plane = g->in[0] * g->in[1] * g->in[2], dst_plane = g->out[0] * g->out[1] * g->out[2];
    const int64_t tiles = (dst_plane + CB - 1) / CB, rows = taps + 2, images = g->batch * g->channels;
    const int64_t axes = g->kernel[0] + g->kernel[1] + g->kernel[2];
    int64_t *off = malloc(sizeof(int64_t) * 2 * slots), *row = off ? off + slots : NULL;
    I *masks = alloc_aligned(sizeof(I) * (tiles * rows + axes) * CB), *axis = masks ? masks + tiles * rows * CB : NULL;
    plane_map m;
    int failed = !off || !masks || plane_map_make(g, 1, &m);
    if (!failed) {
        for (int64_t j = 0; j < slots; j++) {                      /* pair j: source plane i, offset t */
            off[j] = j < pairs ? j / taps * src_plane + m.shift[j % taps] : 0;
            row[j] = j < pairs ? j % taps : rows - 1;
        }
        PLANE_LANES lanes;
        PLANE_NAME(plane_lanes_start)(&m, &lanes);
        for (int64_t k = 0; k < tiles; k++, PLANE_NAME(plane_lanes_next)(&m, &lanes)) {
            I *tile = masks + k * rows * CB;
            PLANE_NAME(plane_masks)(&m, &lanes, axis, tile);
            for (int l = 0; l < CB; l++) {
                tile[taps * CB + l] = lanes.q[l] < dst_plane ? (I)-1 : 0;
                tile[(taps + 1) * CB + l] = 0;
            }
        }
        const T *end = x + images * src_plane, *dy_end = dy + images * dst_plane;
        _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")
        {
            typedef T V __attribute__((vector_size(CB * sizeof(T))));
            T *sums = alloc_aligned(sizeof(T) * span);
            if (!sums) failed = 1;
            _Pragma("omp for schedule(static)")
            for (int64_t c = 0; c < g->channels; c += bo) {          /* a unit: output channels [c, c + bo) */
                if (failed) continue;
                memset(sums, 0, sizeof(T) * span);
                for (int64_t image = 0; image < g->batch; image++) {
                    const int64_t first = (image * g->channels + c / w * w) * src_plane;
                    const int64_t last = first + (w - 1) * src_plane;
                    const int64_t grad = (image * g->channels + c) * dst_plane;
                    int64_t fast0, fast1, grad_fast0, grad_fast1;         /* the input's and the gradient's */
                    plane_fast_tiles(first, end - x - last, m.lo, m.hi, tiles, &fast0, &fast1);
                    plane_fast_tiles(grad, dy_end - dy - grad - (bo - 1) * dst_plane, 0, 0, tiles, &grad_fast0,
                                     &grad_fast1);
                    fast1 = grad_fast1 < fast1 ? grad_fast1 : fast1;
                    PLANE_NAME(plane_weight_unit)(bo, bt, slots, tiles, fast0, fast1 < fast0 ? fast0 : fast1,
                                                  x + first, dy + grad, dst_plane, off, row, masks, rows, x, end,
                                                  dy_end, sums);
                }
                for (int64_t o = 0; o < bo; o++)
                    for (int64_t j = 0; j < pairs; j++) {
                        const V v = ((const V *)sums)[(j / bt * bo + o) * bt + j % bt];
                        T total = 0;
                        for (int l = 0; l < CB; l++) total += v[l];
                        dw[(c + o) * pairs + j] = total;
                    }
            }
            free(sums);
        }
        plane_map_free(&m);
    }
    free(off);
    free(masks);
    return failed;
}

/* The input gradient (dx, or NULL) and the weight gradient (dw, or NULL) on the plane kernels. 0, or 1 when
   out of memory. */
static int PLANE_NAME(plane_backward)(const dw_geometry *g, const T *x, const T *w, const T *dy, T *dx, T *dw) {
    const int failed = !dx ? 0 : row_applies(g, sizeof(T), 0) ? PLANE_NAME(row_conv)(g, 0, dy, w, NULL, dx)
                                                               : PLANE_NAME(plane_conv)(g, 0, dy, w, NULL, dx);
    return failed || (dw && PLANE_NAME(plane_weight_grad)(g, x, dy, dw));
}

#undef PLANE_LANES
#undef PLANE_NAME
#undef PLANE_NAME_
#undef PLANE_NAME__
