/*
 * gridgnn's native dense grid conv (groups = 1): y = conv(x, W) + b on complete 1-D/2-D/3-D grids with zero
 * padding (CPU, float32, OpenMP). gridgnn/nn/_native.py calls it only where torch reports AVX-512 or AVX2.
 *
 * Node-wise, y_i = b + sum_t W_t x_{src_t(i)}, src_t(i) = i s + k_t d - p on every axis; a source outside
 * the grid is a zero node. A tile is RB consecutive output nodes (rows and images run on into each
 * other, so short rows fill whole tiles) in one block of 64 output channels; it holds the
 * tile's RB x 64 sums in registers (24 AVX-512 vectors) while every offset t and input channel c adds
 * x_{src_t(i)}[c] (one broadcast) times row c of W_t (4 vectors): RB x 4 FMAs per 4 + RB loads. On AVX2
 * (16 registers of 8 floats) it holds a quarter of them at a time, RB x 16 sums in 12 registers: RB x 2
 * FMAs per 2 + RB loads, the sources read once per quarter. Each tile points every (node, offset) pair at
 * its source node, or at a zero node, once (a node whose window lies in the grid by one add an offset),
 * so no bound is tested in the channel loop and no padded copy of the input is made. The threads run the
 * tiles of one block at a time, sharing its weights in cache, in work items of up to 3072 consecutive
 * nodes; an item takes its input channels in spans of 64, all its tiles a span, their sums going out to
 * memory and back between spans (the item's sums stay in a core's L2 and the span's weights, 9 x 64 x 64
 * for a 3x3, are reused by all its tiles: at C_in = 256 and 512 side by side 15-35% faster than one pass
 * over C_in).
 * A call of at most 3072 nodes whose blocks divide among the threads runs each block on one thread
 * instead, all its nodes one item: the thread packs the block's weights and reads them alone, with no
 * barrier between blocks (3x3 C=512 @7 batch 1 on an AVX2 host: 0.55-0.7x the time of the shared blocks).
 *
 * Layouts: the input is [B][S0][S1][S2][C_in] (channels innermost) or [B][C_in][S0][S1][S2] (an NCHW
 * image's nodes), read in place either way on AVX-512 (channel-major with a channel stride of S0 S1 S2: a
 * transposed copy would cost a pass over memory, more than the strided reads). On AVX2, whose quarters
 * read each source four times, a channel-major input of 8 channels or more goes through a per-thread
 * copy, channels innermost, of the nodes each work item reads (stage_input, a span at a time). The output
 * goes to either layout. A channel-major output is staged: the tiles' sums land channels innermost in a
 * per-thread buffer and, in the last span, every 96 nodes go out as 16 x 16 register transposes (8 x 8
 * ones on AVX2), 16 nodes of a channel a store.
 *
 * The weight W[o][i][t] is read through element strides (torch's [C_out][C_in][K], or its flipped
 * transpose for the input gradient, with no copy) and packed, one block of 64 output channels at a time,
 * into [K][C_in][64] (zeros beyond C_out) just before its tiles run, so the tiles read it from cache.
 * The backward is made of this same forward (gridgnn/nn/_dense.py).
 *
 * Loaded by ctypes (gridgnn/nn/_native.py), beside the kernel of _native_grouped.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "_native_transpose.h"
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif

#define LANES 16             /* floats a vector */
#define NV 4                 /* vectors of output channels a tile */
#define BLOCK (NV * LANES)   /* output channels a tile: 64 */
#define RB 6                 /* output nodes a tile */
#define CHUNK (512 * RB)     /* output nodes a work item: its 64 channels' sums stay in a core's L2 */
#define SPAN 64              /* input channels a pass over a work item's tiles: their weights stay in L2 */
#define UNSTAGED (16 * RB)   /* output nodes unstaged at a time to a channel-major output */

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));
typedef vec vec_f32;                                                                      /* aligned */
typedef float uvec __attribute__((vector_size(LANES * sizeof(float)), aligned(sizeof(float))));  /* unaligned */
DEFINE_TRANSPOSE(float, f32, int32_t)

/* The geometry of one call, in the order gridgnn/nn/_native.py fills it. Missing axes have size 1. */
typedef struct {
    int64_t batch, c_in, c_out;
    int64_t in[3], out[3], kernel[3], stride[3], dilation[3], pad[3]; /* pad: zeros before the first node */
    int64_t x_major, y_major;  /* 1: channel-major [B, C, *S]; 0: channels innermost [B, *S, C] */
    int64_t w_out, w_in, w_tap; /* element strides of W[o][i][t] from the weight pointer (any sign) */
    int64_t threads;
} dense_geometry;

/* Output node p's source of each offset: its image's input plus the node's first corner, per axis. */
typedef struct {
    const float *image;
    int64_t corner[3];
} node_origin;

/* Where a tile's node (origin o) reads the offset whose k_t d per axis is reach, or the zero node. */
static inline __attribute__((always_inline)) const float *source(const dense_geometry *g, const node_origin *o,
                                                                 const int64_t *reach, int64_t node_stride,
                                                                 const float *zeros) {
    const int64_t a = o->corner[0] + reach[0], b = o->corner[1] + reach[1], c = o->corner[2] + reach[2];
    if ((uint64_t)a >= (uint64_t)g->in[0] || (uint64_t)b >= (uint64_t)g->in[1] || (uint64_t)c >= (uint64_t)g->in[2])
        return zeros;
    return o->image + ((a * g->in[1] + b) * g->in[2] + c) * node_stride;
}

/* N output nodes (N a constant in each expansion, so the sums stay in registers) by NVV vectors V of output
   channels: out[r][COL : COL + WIDTH) = start + sum_t sum_{c in [c0, c0 + cn)} src_t[r][c cs] w_t[c], stored
   channels innermost; start is the bias B (from COL), or with B NULL the sums of the earlier input channels
   already in out. W points at the tile's first weight vector of offset 0, input channel 0; a channel's row
   of weights is ROW vectors on from the one before; sources[t * RB + r] is node r's source of offset t
   at channel c0 (`skip` floats on from its channel 0). */
#define TILE(N, V, NVV, ROW, W, B, COL, WIDTH)                                                              \
    {                                                                                                       \
        V acc[N][NVV];                                                                                      \
        const int64_t full_ = NVV * (int64_t)(sizeof(V) / sizeof(float));                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) {                                               \
            if (B) memcpy(acc[r], B, sizeof(acc[r]));                                                       \
            else if (WIDTH == full_) memcpy(acc[r], dst[r] + COL, sizeof(acc[r]));                          \
            else memset(acc[r], 0, sizeof(acc[r])), memcpy(acc[r], dst[r] + COL, WIDTH * sizeof(float));   \
        }                                                                                                   \
        for (int64_t t = 0; t < taps; t++) {                                                                \
            const float *s[N];                                                                              \
            _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) s[r] = sources[t * RB + r];                 \
            const V *wt = W + (t * c_in + c0) * ROW;                                                        \
            for (int64_t c = 0; c < cn; c++) {                                                              \
                V wc[NVV];                                                                                  \
                _Pragma("GCC unroll 4") for (int j = 0; j < NVV; j++) wc[j] = wt[c * ROW + j];              \
                _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) {                                       \
                    const float xv = s[r][c * cs];                                                          \
                    _Pragma("GCC unroll 4") for (int j = 0; j < NVV; j++) acc[r][j] += xv * wc[j];          \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) {                                               \
            if (WIDTH == full_) memcpy(dst[r] + COL, acc[r], sizeof(acc[r]));                               \
            else memcpy(dst[r] + COL, acc[r], WIDTH * sizeof(float));                                       \
        }                                                                                                   \
    }

/* TILE for n (at most RB) nodes of one block of 64 output channels, `width` of them real: in 16-lane
   vectors (24 sums in 32 AVX-512 registers), or where HALF_LANES in quarters of 16 channels, each 6 x 2
   sums of 8 lanes (12 of AVX2's 16 registers, the 6 x 16 tile of AVX2 GEMM kernels). The quarters read the
   same sources four times (their pointers, made once a tile). */
static inline __attribute__((always_inline)) void tile(const dense_geometry *g, const node_origin *origins,
                                                       const int64_t *reach, const int64_t *offsets,
                                                       int64_t taps, int64_t c_in, int64_t c0, int64_t cn,
                                                       int64_t cs, int64_t node_stride, int64_t skip,
                                                       const float *zeros, const float *w, const float *bias,
                                                       float *const *dst, int64_t width, int64_t n) {
    const float *sources[RB * taps];
    const int64_t *last = reach + 3 * (taps - 1);                    /* the farthest reach on every axis */
    for (int64_t r = 0; r < n; r++) {
        const int64_t *at = origins[r].corner;
        if (at[0] >= 0 && at[1] >= 0 && at[2] >= 0 && at[0] + last[0] < g->in[0] && at[1] + last[1] < g->in[1]
            && at[2] + last[2] < g->in[2]) {            /* the whole window in the grid: one add an offset */
            const float *corner = origins[r].image + ((at[0] * g->in[1] + at[1]) * g->in[2] + at[2]) * node_stride;
            for (int64_t t = 0; t < taps; t++) sources[t * RB + r] = corner + offsets[t] + skip;
        } else
            for (int64_t t = 0; t < taps; t++)
                sources[t * RB + r] = source(g, origins + r, reach + 3 * t, node_stride, zeros) + skip;
    }
/* TILE_N(N) for the n nodes (a constant in each case, up to RB) */
#define FOR_NODES(TILE_N)                                                                                   \
    switch (n) {                                                                                            \
    case 6: TILE_N(6) break;                                                                                \
    case 5: TILE_N(5) break;                                                                                \
    case 4: TILE_N(4) break;                                                                                \
    case 3: TILE_N(3) break;                                                                                \
    case 2: TILE_N(2) break;                                                                                \
    default: TILE_N(1)                                                                                      \
    }
#ifdef TRANSPOSE_IN_REGISTERS
    if (HALF_LANES(float)) {
        for (int64_t col = 0; col < width; col += 16) {
            const int64_t part = width - col < 16 ? width - col : 16;
            const half_f32 *wq = (const half_f32 *)(w + col), *bq = bias ? (const half_f32 *)(bias + col) : NULL;
#define QUARTER(N) TILE(N, half_f32, 2, BLOCK / 8, wq, bq, col, part)
            FOR_NODES(QUARTER)
#undef QUARTER
        }
        return;
    }
#endif
    const vec *wv = (const vec *)w, *bv = (const vec *)bias;
#define WHOLE(N) TILE(N, vec, NV, NV, wv, bv, 0, width)
    FOR_NODES(WHOLE)
#undef WHOLE
#undef FOR_NODES
}

/* Staged sums (n nodes from output node `first`, [n][64] channels innermost, width of them real)
   to the channel-major output [B][C_out][P] at channel c0: 16 x 16 register transposes where 16 nodes of
   one image and 16 channels are there, single values elsewhere. */
CLONES static void unstage(const float *stage, int64_t first, int64_t n, int64_t width, float *y, int64_t c_out,
                           int64_t pixels, int64_t c0) {
    for (int64_t p = first, m; p < first + n; p += m) {
        const int64_t b = p / pixels, q = p % pixels, rest = first + n - p;
        const float *src = stage + (p - first) * BLOCK;
        float *dst = y + (b * c_out + c0) * pixels + q;              /* + c * pixels + node */
        m = pixels - q < 16 ? pixels - q : 16;
        m = rest < m ? rest : m;
        int64_t c = 0;
#ifdef TRANSPOSE_IN_REGISTERS
        if (m == 16 && HALF_LANES(float))              /* 8 x 8 transposes (16-lane ones go through memory) */
            for (; c + 8 <= width; c += 8)
                for (int64_t k = 0; k < 16; k += 8)
                    transpose8_copy_f32(src + k * BLOCK + c, BLOCK, 8, dst + c * pixels + k, pixels, 8);
        if (m == 16)
            for (; c + 16 <= width; c += 16) {
                vec r[16];
                for (int64_t i = 0; i < 16; i++) r[i] = *(const vec *)(src + i * BLOCK + c);
                transpose_f32(r);
                for (int64_t i = 0; i < 16; i++) *(uvec *)(dst + (c + i) * pixels) = r[i];
            }
#endif
        for (; c < width; c++)
            for (int64_t i = 0; i < m; i++) dst[c * pixels + i] = src[i * BLOCK + c];
    }
}

/* Units [*lo, *hi) of n: this thread's static share where the team shares them, else all n. */
static inline void my_share(int64_t n, int shared, int64_t *lo, int64_t *hi) {
    const int64_t team = shared ? omp_get_num_threads() : 1, me = shared ? omp_get_thread_num() : 0;
    *lo = n * me / team, *hi = n * (me + 1) / team;
}

/* Block `block` of the weight W[o][i][t] (strides in g) into [K][C_in][64] (its 64 output channels, zeros
   beyond C_out). With `shared` the team shares the work and meets at a barrier after it (call it from every
   thread of the parallel region); else the calling thread packs the block alone. Where each W[o][i] is one
   run of K values in memory (torch's layout, w_tap = 1, or its flipped transpose for the input gradient,
   w_tap = -1), 8 output channels by 8 offsets go as an 8 x 8 register transpose (a store a row of 8
   channels; the offsets after the last whole 8, value by value); on AVX-512 torch's layout goes by 16 x 16
   transposes of 16 output channels by 16 (i, t) pairs. Others value by value. */
CLONES static void pack_weight(const dense_geometry *g, const float *w, float *packed, int64_t block,
                               int64_t taps, int shared) {
    const int64_t c_in = g->c_in, tap_stride = c_in * BLOCK;   /* packed[t][i][o] at (t * C_in + i) * 64 + o */
    int64_t lo, hi;
#ifdef TRANSPOSE_IN_REGISTERS
    if (g->w_tap == 1 && g->w_in == taps && !HALF_LANES(float)) {
        const int64_t run = c_in * taps, spans = (run + 15) / 16;
        my_share(NV * spans, shared, &lo, &hi);
        for (int64_t u = lo; u < hi; u++) {
            const int64_t o0 = u / spans * LANES, j0 = u % spans * 16;
            const int64_t first = block * BLOCK + o0, m = run - j0 < 16 ? run - j0 : 16;
            float *panel = packed + o0;                                        /* + (t * C_in + i) * 64 + o */
            vec r[16];
            for (int64_t o = 0; o < 16; o++) {
                const float *src = w + (first + o) * g->w_out + j0;
                r[o] = (vec){0};
                if (first + o < g->c_out && m == 16) r[o] = *(const uvec *)src;
                else if (first + o < g->c_out)
                    for (int64_t k = 0; k < m; k++) r[o][k] = src[k];
            }
            transpose_f32(r);                                 /* r[k]: the 16 channels' values of pair j0 + k */
            for (int64_t k = 0, i = j0 / taps, t = j0 % taps; k < m; k++) {      /* pair j0 + k is (i, t) */
                *(vec *)(panel + t * tap_stride + i * BLOCK) = r[k];
                if (++t == taps) t = 0, i++;
            }
        }
        if (shared) {
            _Pragma("omp barrier")
        }
        return;
    }
    if (g->w_tap == 1 || g->w_tap == -1) {
        my_share(BLOCK / 8 * c_in, shared, &lo, &hi);
        for (int64_t u = lo; u < hi; u++) {                        /* 8 output channels of input channel i */
            const int64_t o0 = u / c_in * 8, i = u % c_in, first = block * BLOCK + o0;
            const int64_t rows = g->c_out - first < 8 ? g->c_out - first : 8;
            float *dst = packed + i * BLOCK + o0;                                     /* + t * tap_stride + o */
            if (rows <= 0) {
                for (int64_t t = 0; t < taps; t++) memset(dst + t * tap_stride, 0, 8 * sizeof(float));
                continue;
            }
            const float *src = w + first * g->w_out + i * g->w_in;                   /* + o * w_out + t * w_tap */
            int64_t t = 0;
            for (; t + 8 <= taps; t += 8) {           /* offsets t..t+7 lie from the lower one on in memory */
                const int64_t low = g->w_tap > 0 ? t : t + 7;
                transpose8_copy_f32(src + low * g->w_tap, g->w_out, rows, dst + low * tap_stride,
                                    g->w_tap * tap_stride, 8);
            }
            for (; t < taps; t++)
                for (int64_t o = 0; o < 8; o++)
                    dst[t * tap_stride + o] = o < rows ? src[o * g->w_out + t * g->w_tap] : 0.0f;
        }
        if (shared) {
            _Pragma("omp barrier")
        }
        return;
    }
#endif
    my_share(c_in, shared, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        float *dst = packed + i * BLOCK;                                       /* + t * tap_stride + o */
        for (int64_t o = 0; o < BLOCK; o++) {
            const int64_t oc = block * BLOCK + o;
            const float *src = w + oc * g->w_out + i * g->w_in;
            for (int64_t t = 0; t < taps; t++) dst[t * tap_stride + o] = oc < g->c_out ? src[t * g->w_tap] : 0.0f;
        }
    }
    if (shared) {
        _Pragma("omp barrier")
    }
}

#ifdef TRANSPOSE_IN_REGISTERS
/* The input nodes that output nodes [start, end) read, flat over the batch: [*lo, *hi). Per axis, a node's
   sources lie between its corner and its corner plus the last offset's reach, within the grid; where the
   first node's bound leaves the grid on an axis, the axes after it are left free (a later node's may be
   lower there), and likewise the last node's. */
static void input_range(const dense_geometry *g, int64_t start, int64_t end, const int64_t *last_reach,
                        int64_t *lo, int64_t *hi) {
    const int64_t pixels = g->out[0] * g->out[1] * g->out[2];
    for (int side = 0; side < 2; side++) {
        const int64_t p = side ? end - 1 : start, q = p % pixels;
        const int64_t at[3] = {q / (g->out[1] * g->out[2]), q / g->out[2] % g->out[1], q % g->out[2]};
        int64_t flat = p / pixels, loose = 0;
        for (int d = 0; d < 3; d++) {
            const int64_t bound = at[d] * g->stride[d] - g->pad[d] + (side ? last_reach[d] : 0);
            int64_t v = bound < 0 ? 0 : bound >= g->in[d] ? g->in[d] - 1 : bound;
            if (loose) v = side ? g->in[d] - 1 : 0;
            loose |= v != bound;
            flat = flat * g->in[d] + v;
        }
        if (side) *hi = flat + 1;
        else *lo = flat;
    }
}

/* Input nodes [lo, hi) (flat over the batch) of a channel-major input [B][C_in][P], channels [c0, c0 + cn),
   into buf as [node - lo][SPAN] (channels innermost): 8 x 8 register transposes, single values at the
   edges. */
CLONES static void stage_input(const float *x, int64_t c_in, int64_t pixels, int64_t lo, int64_t hi, int64_t c0,
                               int64_t cn, float *buf) {
    for (int64_t p = lo, m; p < hi; p += m) {                                   /* the part in one image */
        const int64_t q = p % pixels;
        const float *src = x + (p / pixels * c_in + c0) * pixels + q;           /* + c * pixels + node */
        float *dst = buf + (p - lo) * SPAN;                                     /* + node * SPAN + c */
        m = pixels - q < hi - p ? pixels - q : hi - p;
        int64_t i = 0, c;
        for (; i + 8 <= m; i += 8) {
            for (c = 0; c + 8 <= cn; c += 8)
                transpose8_copy_f32(src + c * pixels + i, pixels, 8, dst + i * SPAN + c, SPAN, 8);
            for (; c < cn; c++)
                for (int64_t k = i; k < i + 8; k++) dst[k * SPAN + c] = src[c * pixels + k];
        }
        for (; i < m; i++)
            for (c = 0; c < cn; c++) dst[i * SPAN + c] = src[c * pixels + i];
    }
}
#endif

/* y = conv(x, w) + bias, as the header says (bias may be NULL). 0 on success, 1 when out of memory. */
CLONES int gridgnn_dense_forward_f32(const dense_geometry *g, const float *x, const float *w, const float *bias,
                                     float *y) {
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2], c_in = g->c_in, c_out = g->c_out;
    const int64_t blocks = (c_out + BLOCK - 1) / BLOCK;
    const int64_t pixels_in = g->in[0] * g->in[1] * g->in[2], pixels = g->out[0] * g->out[1] * g->out[2];
    const int64_t cs = g->x_major ? pixels_in : 1;                                /* the channel stride */
    const int64_t nodes = g->batch * pixels;
    /* a call of one work item a thread with whole blocks for every thread runs each block on one thread (it packs
       and reads its weights alone, with no barrier); else the threads share each block's packing and items */
    const int by_block = nodes <= CHUNK && blocks % g->threads == 0;
    float *packed = aligned_alloc(64, sizeof(float) * taps * c_in * BLOCK * (by_block ? g->threads : 1));
    float *packed_bias = aligned_alloc(64, sizeof(float) * blocks * BLOCK);
    float *zeros = calloc((c_in - 1) * cs + 1, sizeof(float)); /* the zero node, read with the channel stride */
    int64_t *reach = malloc(sizeof(int64_t) * 4 * taps);       /* k_t d per axis, offsets row-major */
    int64_t *offsets = reach + 3 * taps;                  /* an offset's source, from a window's corner node */
    /* work items of whole tiles, as many for each thread, CHUNK nodes or fewer (by block: one, all nodes) */
    const int64_t per_thread = (nodes + g->threads * CHUNK - 1) / (g->threads * CHUNK);
    const int64_t items = by_block ? 1 : g->threads * per_thread, tiles = (nodes + RB - 1) / RB;
    const int64_t size = (tiles + items - 1) / items * RB;                           /* nodes an item */
    const int64_t spans = (c_in + SPAN - 1) / SPAN;  /* one: the stage is a ring of UNSTAGED nodes, else the item's */
    float *stages = g->y_major ? aligned_alloc(64, sizeof(float) * g->threads * size * BLOCK) : NULL;
    /* AVX2 tiles read a channel-major input's span through a per-thread copy of the nodes an item reads,
       channels innermost (as they read a channels-innermost input) */
    float *staged_inputs = NULL;
    int64_t staged_nodes = 0;
    int failed = !packed || !packed_bias || !zeros || !reach || (g->y_major && !stages);
    if (failed) goto done;
    for (int64_t t = 0; t < taps; t++) {
        const int64_t k[3] = {t / (g->kernel[1] * g->kernel[2]), t / g->kernel[2] % g->kernel[1], t % g->kernel[2]};
        for (int d = 0; d < 3; d++) reach[3 * t + d] = k[d] * g->dilation[d];
    }
#ifdef TRANSPOSE_IN_REGISTERS
    if (g->x_major && HALF_LANES(float) && c_in >= 8) {     /* (fewer: no 8 x 8 transposes, few lines a node) */
        for (int64_t item = 0, lo, hi; item * size < nodes; item++) {
            input_range(g, item * size, nodes - item * size < size ? nodes : item * size + size,
                        reach + 3 * (taps - 1), &lo, &hi);
            staged_nodes = hi - lo > staged_nodes ? hi - lo : staged_nodes;
        }
        staged_inputs = aligned_alloc(64, sizeof(float) * g->threads * staged_nodes * SPAN);
        if ((failed = !staged_inputs)) goto done;
    }
#endif
    const int64_t node_stride = g->x_major ? (staged_inputs ? SPAN : 1) : c_in;        /* as the tiles read */
    for (int64_t t = 0; t < taps; t++)
        offsets[t] = ((reach[3 * t] * g->in[1] + reach[3 * t + 1]) * g->in[2] + reach[3 * t + 2]) * node_stride;
    for (int64_t o = 0; o < blocks * BLOCK; o++) packed_bias[o] = bias && o < c_out ? bias[o] : 0.0f;
    _Pragma("omp parallel num_threads(g->threads)")
    {
        float *stage = g->y_major ? stages + omp_get_thread_num() * size * BLOCK : NULL;
        float *staged_input = staged_inputs ? staged_inputs + omp_get_thread_num() * staged_nodes * SPAN : NULL;
        float *weights = packed + (by_block ? omp_get_thread_num() * taps * c_in * BLOCK : 0);
        const int64_t block_step = by_block ? omp_get_num_threads() : 1;
        for (int64_t block = by_block ? omp_get_thread_num() : 0; block < blocks; block += block_step) {
            pack_weight(g, w, weights, block, taps, !by_block);        /* shared: the team's weights in cache */
            const float *bb = packed_bias + block * BLOCK;
            const int64_t left = c_out - block * BLOCK, width = left < BLOCK ? left : BLOCK;
            int64_t first_item, end_item;
            my_share(items, !by_block, &first_item, &end_item);
            for (int64_t item = first_item; item < end_item; item++) {
                const int64_t start = item * size < nodes ? item * size : nodes;
                const int64_t end = nodes - start < size ? nodes : start + size;
                int64_t first_in = 0, end_in = 0;
#ifdef TRANSPOSE_IN_REGISTERS
                if (staged_input && start < end)
                    input_range(g, start, end, reach + 3 * (taps - 1), &first_in, &end_in);
#endif
                for (int64_t c0 = 0; c0 < c_in; c0 += SPAN) {  /* its sums go out and back between spans */
                    const int64_t cn = c_in - c0 < SPAN ? c_in - c0 : SPAN;
#ifdef TRANSPOSE_IN_REGISTERS
                    if (staged_input && start < end)
                        stage_input(x, c_in, pixels_in, first_in, end_in, c0, cn, staged_input);
#endif
                    int64_t staged = start;                  /* in the last span, staged sums go out from here */
                    int64_t at[4];             /* the next node's image and place per axis (no division a node) */
                    at[0] = start / pixels, at[1] = start % pixels / (g->out[1] * g->out[2]);
                    at[2] = start % (g->out[1] * g->out[2]) / g->out[2], at[3] = start % g->out[2];
                    for (int64_t first = start; first < end; first += RB) {  /* RB consecutive nodes */
                        const int64_t n = end - first < RB ? end - first : RB;
                        node_origin origins[RB];
                        float *dst[RB];                      /* where node r's channel block goes */
                        for (int64_t r = 0; r < n; r++) {
                            const int64_t p = first + r;
                            origins[r].image = staged_input ? staged_input + (at[0] * pixels_in - first_in) * SPAN
                                                            : x + at[0] * pixels_in * c_in;
                            for (int d = 0; d < 3; d++) origins[r].corner[d] = at[d + 1] * g->stride[d] - g->pad[d];
                            dst[r] = stage ? stage + (p - (spans > 1 ? start : staged)) * BLOCK
                                           : y + p * c_out + block * BLOCK;
                            for (int d = 3; d > 0 && ++at[d] == g->out[d - 1]; d--) /* the next node: carries */
                                at[d] = 0, at[0] += d == 1;
                        }
                        if (g->x_major && !staged_input)                  /* (channels one after another) */
                            tile(g, origins, reach, offsets, taps, c_in, c0, cn, cs, 1, c0 * cs, zeros, weights,
                                 c0 ? NULL : bb, dst, width, n);
                        else                              /* a constant channel stride: one register fewer */
                            tile(g, origins, reach, offsets, taps, c_in, c0, cn, 1, staged_input ? SPAN : c_in,
                                 staged_input ? 0 : c0, zeros, weights, c0 ? NULL : bb, dst, width, n);
                        if (stage && c0 + cn == c_in && (first + n - staged >= UNSTAGED || first + n == end)) {
                            unstage(stage + (spans > 1 ? staged - start : 0) * BLOCK, staged, first + n - staged,
                                    width, y, c_out, pixels, block * BLOCK);  /* (while they are still in L1) */
                            staged = first + n;
                        }
                    }
                }
            }
            if (!by_block) {                               /* the next block's packing overwrites the weights */
                _Pragma("omp barrier")
            }
        }
    }
done:
    free(packed), free(packed_bias), free(zeros), free(reach), free(stages), free(staged_inputs);
    return failed;
}
