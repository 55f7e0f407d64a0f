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
 *
 * The input gradient is the same sum over the reversed edges: shifts -s_t, from the output gradient's planes
 * into the input's, with each group's weights transposed. The weight gradient of a depthwise conv
 * (dW[c][t] = sum over images and nodes of dy[c][q] x[c][q + s_t] m_t) sums vectors per unit and lanes at its
 * end, per thread; grouped convs take their weight gradient from the buffered units.
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
   for depthwise convs only planes of up to PLANE_DEPTHWISE_MAX nodes. Side by side on an AVX-512 Xeon, NCHW,
   batch 8: at 14 x 14 the plane kernels ran a depthwise 3x3 1.9x faster forward and 1.3x forward+backward than
   the buffered units, and grouped 3x3s (4 and 16 channels a group) 1.5-3.4x at 14 x 14 and 56 x 56; depthwise at
   28 x 28 both ran alike, and at 56 x 56 the buffered units ran 1.5x faster (a 7x7; a 3x3's backward). */
#define PLANE_DEPTHWISE_MAX 256
static int plane_applies(const dw_geometry *g) {
    return !g->channels_last && g->stride[0] == 1 && g->stride[1] == 1 && g->stride[2] == 1
           && g->out[1] == g->in[1] && g->out[2] == g->in[2]
           && (g->group_width > 1 || g->out[0] * g->out[1] * g->out[2] <= PLANE_DEPTHWISE_MAX);
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
    for (int k = 0; k < ng * w; k++)
        for (int l = 0; l < CB; l++) acc[k][l] = bias ? bias[k] : 0;
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
   each tile's masks once, then its groups 8 (or 16) channels a step. */
CLONES static void PLANE_NAME(plane_unit)(const plane_map *m, int64_t w, const T *src, const T *wp, const T *bias,
                                          T *dst, int64_t g0, int64_t g1, int safe, const T *begin, const T *end,
                                          I *axis, I *masks) {
    const int64_t taps = m->kernel[0] * m->kernel[1] * m->kernel[2];
    const int64_t src_plane = m->src[0] * m->src[1] * m->src[2], dst_plane = m->dst[0] * m->dst[1] * m->dst[2];
    PLANE_LANES lanes;
    PLANE_NAME(plane_lanes_start)(m, &lanes);
    for (int64_t q0 = 0; q0 < dst_plane; q0 += CB, PLANE_NAME(plane_lanes_next)(m, &lanes)) {
        const int64_t n = dst_plane - q0 < CB ? dst_plane - q0 : CB;
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

/* Units of one image and a run of groups (plane_run), shared by the threads: the statements after `end` run
   once a unit, with its image, groups [g0, g1), `safe` (its tiles may reach beyond [begin, end): lane-by-lane
   loads) and the thread's mask scratch (axis, masks) in scope. */
#define PLANE_UNITS(g, m, begin, end, ...)                                                                   \
    {                                                                                                        \
        const int64_t run_ = plane_run(g, sizeof(T)) / (g)->group_width;                                     \
        const int64_t groups_ = (g)->channels / (g)->group_width, units_ = (groups_ + run_ - 1) / run_;      \
        const int64_t taps_ = (m)->kernel[0] * (m)->kernel[1] * (m)->kernel[2];                              \
        const int64_t src_plane_ = (m)->src[0] * (m)->src[1] * (m)->src[2];                                  \
        const int64_t tiles_ = ((m)->dst[0] * (m)->dst[1] * (m)->dst[2] + CB - 1) / CB;                       \
        _Pragma("omp parallel num_threads((g)->threads) reduction(|:failed)")                                \
        {                                                                                                    \
            const int64_t axes_ = (m)->kernel[0] + (m)->kernel[1] + (m)->kernel[2];                          \
            I *axis = alloc_aligned(sizeof(I) * CB * (axes_ + taps_)), *masks = axis ? axis + CB * axes_ : NULL; \
            if (!axis) failed = 1;                                                                           \
            _Pragma("omp for schedule(static)")                                                              \
            for (int64_t u_ = 0; u_ < (g)->batch * units_; u_++) {                                           \
                if (failed) continue;                                                                        \
                const int64_t image = u_ / units_, g0 = u_ % units_ * run_;                                  \
                const int64_t g1 = groups_ - g0 < run_ ? groups_ : g0 + run_;                                \
                const int64_t first = (image * (g)->channels + g0 * (g)->group_width) * src_plane_;          \
                const int64_t last = (image * (g)->channels + g1 * (g)->group_width - 1) * src_plane_;       \
                const int safe = first + (m)->lo < 0                                                         \
                                 || last + tiles_ * CB + (m)->hi > (end) - (begin);                           \
                __VA_ARGS__                                                                                  \
            }                                                                                                \
            free(axis);                                                                                      \
        }                                                                                                    \
    }

/* dst = the plane sum of src (map m, weights packed by plane_weights, bias or NULL) for every image. */
static int PLANE_NAME(plane_sum)(const dw_geometry *g, const plane_map *m, const T *src, const T *wp, const T *bias,
                                 T *dst) {
    const int64_t src_plane = m->src[0] * m->src[1] * m->src[2], dst_plane = m->dst[0] * m->dst[1] * m->dst[2];
    const T *begin = src, *end = src + g->batch * g->channels * src_plane;
    int failed = 0;
    PLANE_UNITS(g, m, begin, end, {
        PLANE_NAME(plane_unit)(m, g->group_width, src + image * g->channels * src_plane, wp, bias,
                               dst + image * g->channels * dst_plane, g0, g1, safe, begin, end, axis, masks);
    })
    return failed;
}

/* acc[c][t] (vectors, c < c1 - c0) += dy[c][q] x[c][q + s_t] m_t over the tiles of one image's depthwise planes
   [c0, c1) (x and dy at the image's first plane; m: the forward's map). */
CLONES static void PLANE_NAME(plane_weight_unit)(const plane_map *m, const T *x, const T *dy, int64_t c0, int64_t c1,
                                                 int safe, const T *begin, const T *end, const T *dy_end,
                                                 I *axis, I *masks, T *acc) {
    typedef T V __attribute__((vector_size(CB * sizeof(T))));
    typedef I M __attribute__((vector_size(CB * sizeof(I))));
    const int64_t taps = m->kernel[0] * m->kernel[1] * m->kernel[2];
    const int64_t src_plane = m->src[0] * m->src[1] * m->src[2], dst_plane = m->dst[0] * m->dst[1] * m->dst[2];
    PLANE_LANES lanes;
    PLANE_NAME(plane_lanes_start)(m, &lanes);
    for (int64_t q0 = 0; q0 < dst_plane; q0 += CB, PLANE_NAME(plane_lanes_next)(m, &lanes)) {
        PLANE_NAME(plane_masks)(m, &lanes, axis, masks);
        const M live = *(const M *)lanes.q < (I)dst_plane;
        for (int64_t c = c0; c < c1; c++) {
            V gv, *a = (V *)acc + (c - c0) * taps;
            PLANE_NAME(plane_load)(1, dy + c * dst_plane + q0, (const I *)&live, dy, dy_end, (T *)&gv);
            const T *xs = x + c * src_plane + q0;
            if (safe)
                for (int64_t t = 0; t < taps; t++) {
                    V v;
                    PLANE_NAME(plane_load)(1, xs + m->shift[t], masks + t * CB, begin, end, (T *)&v);
                    a[t] += gv * v;
                }
            else
                for (int64_t t = 0; t < taps; t++) {
                    V v;
                    PLANE_NAME(plane_load)(0, xs + m->shift[t], masks + t * CB, begin, end, (T *)&v);
                    a[t] += gv * v;
                }
        }
    }
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

/* The weight gradient of a depthwise conv on the plane kernels: per-thread sums over the images, then over
   the lanes. 0, or 1 when out of memory. */
static int PLANE_NAME(plane_weight_grad)(const dw_geometry *g, const T *x, const T *dy, T *dw) {
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2], threads = g->threads, weights = g->channels * taps;
    const int64_t src_plane = g->in[0] * g->in[1] * g->in[2], dst_plane = g->out[0] * g->out[1] * g->out[2];
    const int64_t span = plane_run(g, sizeof(T)) * taps * CB;                        /* a unit's vector sums */
    const T *begin = x, *end = x + g->batch * g->channels * src_plane;
    const T *dy_end = dy + g->batch * g->channels * dst_plane;
    plane_map m;
    T *parts = alloc_aligned(sizeof(T) * threads * weights), *sums = alloc_aligned(sizeof(T) * threads * span);
    int failed = !parts || !sums || plane_map_make(g, 1, &m);
    if (!failed) {
        memset(parts, 0, sizeof(T) * threads * weights);
        PLANE_UNITS(g, &m, begin, end, {
            T *acc = sums + omp_get_thread_num() * span, *part = parts + omp_get_thread_num() * weights;
            memset(acc, 0, sizeof(T) * (g1 - g0) * taps * CB);
            PLANE_NAME(plane_weight_unit)(&m, x + image * g->channels * src_plane, dy + image * g->channels * dst_plane,
                                          g0, g1, safe, begin, end, dy_end, axis, masks, acc);
            for (int64_t j = 0; j < (g1 - g0) * taps; j++)
                for (int l = 0; l < CB; l++) part[g0 * taps + j] += acc[j * CB + l];
        })
        plane_map_free(&m);
        for (int64_t j = 0; j < weights; j++) {
            T total = 0;
            for (int64_t r = 0; r < threads; r++) total += parts[r * weights + j];
            dw[j] = total;
        }
    }
    free(parts);
    free(sums);
    return failed;
}

/* The input gradient on the plane kernels (dx, or NULL) and, for a depthwise conv, the weight gradient (dw,
   or NULL; grouped convs' come from the buffered units). 0, or 1 when out of memory. */
static int PLANE_NAME(plane_backward)(const dw_geometry *g, const T *x, const T *w, const T *dy, T *dx, T *dw) {
    const int failed = dx ? PLANE_NAME(plane_conv)(g, 0, dy, w, NULL, dx) : 0;
    return failed || (dw && PLANE_NAME(plane_weight_grad)(g, x, dy, dw));
}

#undef PLANE_LANES
#undef PLANE_NAME
#undef PLANE_NAME_
#undef PLANE_NAME__
