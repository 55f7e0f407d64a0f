/*
 * gridgnn's native grouped grid conv with thin groups (depthwise included): forward and backward on
 * complete 1-D/2-D/3-D grids (CPU, OpenMP).
 *
 * Node-wise, y_i = b + sum_t W_t x_{j(i, t)} with W_t block-diagonal: groups of w channels in and w out
 * (w = 1, 2, 4, 8 or 16; w = 1 is depthwise, a per-channel product for every kernel offset t). The work
 * is cut into units of one image and one block of CB channels. A unit copies its block of the input,
 * zero-padded, into a private buffer laid out [D'][H'][W'][CB] (channels innermost, whatever the input
 * layout), so every message is one CB-wide multiply-add between contiguous vectors and no bounds
 * are tested: a zero in the padding is exactly a missing edge. The output block is accumulated there
 * too and written back in the caller's layout (channel-major for an NCHW image, channels innermost for
 * a channels-last one). The backward runs the same units: the input gradient scatters each output
 * gradient back along the unit's edges into a padded buffer, the weight gradient sums the products of
 * output gradients and buffered inputs per offset in per-thread accumulators. A block of CB channels
 * holds CB / w whole groups, so units never read another block. Depthwise convs on channels-last input
 * skip the buffer and sweep each node's channels in place (DEFINE_DIRECT): there a unit's copy would read
 * 16 channels a node at a stride of C values, which costs more than the sums. On NCHW input at stride 1 with
 * output rows as long as the input's, the channel-plane kernels of _native_planes.h sum each plane in place
 * instead (all thin groups; depthwise convs of up to 9 taps, and larger ones on planes of up to 256 nodes);
 * a depthwise conv's forward and input gradient on planes whose rows fit one vector, and its forward at
 * stride 2 along such rows, take the row kernels of _native_rows.h, with each output row's sum in a register.
 * Those two take their calls only where the geometry's `shifted` says so (AVX-512 CPUs, _native.py).
 *
 * Each call packs its blocks' weights once, in the layout its units read (weight_block_).
 *
 * Vectors are CB = 16 lanes, one AVX-512 register. The AVX2 clone (x86-64-v3) runs the transposes, the
 * group rotations and the register-blocked sums on 8-lane halves instead (HALF_LANES, _native_transpose.h;
 * DEFINE_DIRECT_LANES and DEFINE_UNIT_SUMS are instantiated for both widths): there GCC spills 16-lane
 * sums and moves 16-lane shuffles lane by lane through the stack. There groups of 16 channels (one group a
 * block) sum by broadcasts against unrotated weights, forward and backward (DEFINE_BROADCAST_SUMS), not
 * through 16 rotations of the buffer.
 *
 * Loaded by ctypes (gridgnn/nn/_native.py); no Python or torch headers. Built by setup.py with the
 * package; where it is missing, the pure-torch kernels (gridgnn/nn/_depthwise.py, _dense.py) run.
 */
#define _POSIX_C_SOURCE 200112L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "_native_transpose.h"
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
#endif

#define CB 16   /* channels a unit: one AVX-512 float vector */
#define OB 4    /* output nodes a step: CB-wide accumulators kept in registers */
#define RB 6    /* output nodes a register block of the broadcast units (groups as wide as a block) */

/* fn(N, x, ...) over the nodes [x, end) of an output row: register blocks of FULL nodes, then the rest in
   blocks of 4, 2 and 1, N a constant in every call, so each block's sums stay in registers. (Node by node,
   a tail node's sum is one chain of dependent multiply-adds a vector, each waiting out the last one's
   latency, where a block's independent sums keep both FMA pipes busy.) */
#define IN_BLOCKS(x, end, FULL, fn, ...)                                                                      \
    do {                                                                                                      \
        for (; (x) + (FULL) <= (end); (x) += (FULL)) fn(FULL, x, __VA_ARGS__);                                \
        if ((FULL) > 4 && (x) + 4 <= (end)) fn(4, x, __VA_ARGS__), (x) += 4;                                  \
        if ((FULL) > 2 && (x) + 2 <= (end)) fn(2, x, __VA_ARGS__), (x) += 2;                                  \
        if ((x) < (end)) fn(1, x, __VA_ARGS__), (x) += 1;                                                     \
    } while (0)

/* How a block's weights are laid out for its units (weight_block_): rotated as the grouped units read them,
   or for the broadcast units (groups as wide as a block on 8-lane vectors) W[o][i][t] at [t][i][o] (the
   forward's rows) or at [t][o][i] (the input gradient's). */
enum { ROTATED, BY_INPUT, BY_OUTPUT };

/* The geometry of one call, in the order gridgnn/nn/_native.py fills it. Missing axes have size 1. */
typedef struct {
    int64_t batch, channels;
    int64_t in[3], out[3], kernel[3], stride[3], pad[3], dilation[3];
    int64_t channels_last; /* 1: [B, *S, C] contiguous; 0: [B, C, *S] contiguous */
    int64_t group_width;   /* channels a group (in = out); 1 for depthwise; divides CB */
    int64_t threads;
    int64_t shifted;       /* 1: the row and plane kernels may run (_native_rows.h, _native_planes.h) */
} dw_geometry;

static void *alloc_aligned(size_t bytes) {  /* 64-byte aligned (vector loads), NULL on failure */
    void *p = NULL;
    return posix_memalign(&p, 64, bytes ? bytes : 64) == 0 ? p : NULL;
}

static int64_t span(const dw_geometry *g, int a) {  /* the buffered extent of the input along axis a */
    return (g->out[a] - 1) * g->stride[a] + (g->kernel[a] - 1) * g->dilation[a] + 1;
}

/* Along axis a, the kernel positions k of the edges at coordinate `at` and the coordinates across them:
   reading (the forward's gather), the input coordinate i = at * stride - pad + k * dilation an output
   coordinate reads, where it lies in the input; else (the input gradient's gather), the output coordinates
   o with o * stride - pad + k * dilation = at that read input coordinate `at`. Returns their count. */
static int64_t edges_along(const dw_geometry *g, int a, int64_t at, int reading, int64_t *k, int64_t *across) {
    int64_t n = 0;
    for (int64_t t = 0; t < g->kernel[a]; t++) {
        if (reading) {
            const int64_t i = at * g->stride[a] - g->pad[a] + t * g->dilation[a];
            if (i >= 0 && i < g->in[a]) k[n] = t, across[n++] = i;
        } else {
            const int64_t s = at + g->pad[a] - t * g->dilation[a];
            if (s >= 0 && s % g->stride[a] == 0 && s / g->stride[a] < g->out[a]) k[n] = t, across[n++] = s / g->stride[a];
        }
    }
    return n;
}

/* The edges of a row (z, y) along the two leading axes: taps kz * K_y + ky and planes z' * S_y + y' across
   them (S: the input's sizes when reading, the output's otherwise). Returns their count. */
static int64_t plane_edges(const dw_geometry *g, int64_t z, int64_t y, int reading, int64_t *tap, int64_t *plane) {
    int64_t kz[g->kernel[0]], iz[g->kernel[0]], ky[g->kernel[1]], iy[g->kernel[1]], n = 0;
    const int64_t nz = edges_along(g, 0, z, reading, kz, iz), ny = edges_along(g, 1, y, reading, ky, iy);
    const int64_t rows = reading ? g->in[1] : g->out[1];
    for (int64_t i = 0; i < nz; i++)
        for (int64_t j = 0; j < ny; j++) tap[n] = kz[i] * g->kernel[1] + ky[j], plane[n++] = iz[i] * rows + iy[j];
    return n;
}

/* The edges of node x of a row from its row's plane edges: taps (row-major kernel offsets) and the nodes
   across them (indices in their image). Returns their count. */
static int64_t node_edges(const dw_geometry *g, int64_t x, int reading, const int64_t *plane_tap,
                          const int64_t *plane, int64_t planes, int64_t *tap, int64_t *node) {
    int64_t kx[g->kernel[2]], ix[g->kernel[2]], n = 0;
    const int64_t nx = edges_along(g, 2, x, reading, kx, ix), width = reading ? g->in[2] : g->out[2];
    for (int64_t i = 0; i < planes; i++)
        for (int64_t j = 0; j < nx; j++) tap[n] = plane_tap[i] * g->kernel[2] + kx[j], node[n++] = plane[i] * width + ix[j];
    return n;
}

/* How many nodes x, x + 1, ... (below `end`) of a row have all their edges along the last axis: then
   each one's edges are the first one's, moved by a stride (reading) or one node. At least 1. */
static int64_t full_run(const dw_geometry *g, int64_t x, int reading, int64_t end) {
    int64_t k[g->kernel[2]], across[g->kernel[2]], n = 0;
    while (x + n < end && edges_along(g, 2, x + n, reading, k, across) == g->kernel[2]) n++;
    return n ? n : 1;
}


#ifdef TRANSPOSE_IN_REGISTERS
#define PERMUTE(v, m) __builtin_shuffle(v, m)
#else
#define PERMUTE(v, m) ({ __typeof__(v) r_; for (int l_ = 0; l_ < CB; l_++) r_[l_] = (v)[(m)[l_]]; r_; })
#endif

#ifdef TRANSPOSE_IN_REGISTERS
/* Where HALF_LANES, each 16 x 16 tile goes as four 8 x 8 ones straight between the image and the block
   (transpose8_copy_f32: 8 loads, 24 shuffles, 8 stores), not through 16-lane registers. */
#define TRANSPOSING_LOAD(SUFFIX)                                                                            \
    if (node_stride == 1 && HALF_LANES(*src))                                                               \
        for (; p + CB <= n; p += CB)                                                                        \
            for (int a = 0; a < 2; a++)                       /* channels 8a.. of nodes p + 8k.. */         \
                for (int k = 0; k < 2; k++)                                                                 \
                    transpose8_copy_f32((const float *)(src + p + 8 * k + 8 * a * channel_stride), channel_stride, \
                                        cb - 8 * a, (float *)(block + (p + 8 * k) * CB + 8 * a), CB, 8);    \
    if (node_stride == 1)                                                                                   \
        for (; p + CB <= n; p += CB) {                                                                      \
            vec_##SUFFIX r[CB];                                                                             \
            for (int64_t j = 0; j < CB; j++)                                                                \
                r[j] = j < cb ? *(const uvec_##SUFFIX *)(src + p + j * channel_stride) : (vec_##SUFFIX){0}; \
            transpose_##SUFFIX(r);                                                                          \
            for (int64_t i = 0; i < CB; i++) ((vec_##SUFFIX *)block)[p + i] = r[i];                         \
        }
#define TRANSPOSING_STORE(SUFFIX)                                                                           \
    if (node_stride == 1 && HALF_LANES(*block))                                                             \
        for (; p + CB <= n; p += CB)                                                                        \
            for (int a = 0; a < 2; a++)                                                                     \
                for (int k = 0; k < 2; k++)                                                                 \
                    transpose8_copy_f32((const float *)(block + (p + 8 * k) * CB + 8 * a), CB, 8,           \
                                        (float *)(dst + p + 8 * k + 8 * a * channel_stride), channel_stride, \
                                        cb - 8 * a);                                                        \
    if (node_stride == 1)                                                                                   \
        for (; p + CB <= n; p += CB) {                                                                      \
            vec_##SUFFIX r[CB];                                                                             \
            for (int64_t i = 0; i < CB; i++) r[i] = ((const vec_##SUFFIX *)block)[p + i];                   \
            transpose_##SUFFIX(r);                                                                          \
            for (int64_t j = 0; j < cb; j++) *(uvec_##SUFFIX *)(dst + p + j * channel_stride) = r[j];       \
        }
#else
#define TRANSPOSING_LOAD(SUFFIX)
#define TRANSPOSING_STORE(SUFFIX)
#endif

/* The direct kernels' register blocks on VL-lane vectors, at most NB of them a node in the slides: AVX-512
   runs them on 16 lanes (CB), AVX2 on 8, which its 16 vector registers hold (the 16-lane sums went through
   the stack there). */
#define DEFINE_DIRECT_LANES(T, SUFFIX, VL, NB)                                                                 \
/* NB channel vectors from channel c of NN nodes n (nodes + n * step): out + n * C gets first + sum_p         \
   w[tap[p]] * nodes[node[p] + n * step]. NB x NN independent sums hide the multiply-add latency and          \
   share each weight vector; always inlined with constant NB and NN, so they stay in registers. */            \
static inline __attribute__((always_inline)) void direct_vectors_##SUFFIX(                                    \
        int nb, int nn, int64_t c, const T *w, int64_t padded, const T *first, const T *nodes, int64_t channels, \
        const int64_t *tap, const int64_t *node, int64_t pairs, int64_t step, T *out) {                       \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    typedef T U __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));                             \
    V a[4][4];                                                                                                \
    for (int n = 0; n < nn; n++)                                                                              \
        for (int j = 0; j < nb; j++) a[n][j] = ((const V *)(first + c))[j];                                   \
    for (int64_t p = 0; p < pairs; p++) {                                                                     \
        const V *wt = (const V *)(w + tap[p] * padded + c);                                                   \
        const T *src = nodes + node[p] * channels + c;                                                        \
        for (int j = 0; j < nb; j++)                                                                          \
            for (int n = 0; n < nn; n++) a[n][j] += wt[j] * ((const U *)(src + n * step))[j];                 \
    }                                                                                                         \
    for (int n = 0; n < nn; n++)                                                                              \
        for (int j = 0; j < nb; j++) ((U *)(out + n * channels + c))[j] = a[n][j];                            \
}                                                                                                             \
                                                                                                              \
/* The above over all C channels of NN nodes (the last C mod VL one by one). */                               \
static inline __attribute__((always_inline)) void direct_nodes_##SUFFIX(                                      \
        int nn, const T *w, int64_t padded, const T *first, const T *nodes, int64_t channels,                 \
        const int64_t *tap, const int64_t *node, int64_t pairs, int64_t step, T *out) {                       \
    int64_t c = 0;                                                                                            \
    for (; c + 4 * VL <= channels; c += 4 * VL)                                                               \
        direct_vectors_##SUFFIX(4, nn, c, w, padded, first, nodes, channels, tap, node, pairs, step, out);    \
    switch ((channels - c) / VL) {                                                                            \
        case 3: direct_vectors_##SUFFIX(3, nn, c, w, padded, first, nodes, channels, tap, node, pairs, step, out); break; \
        case 2: direct_vectors_##SUFFIX(2, nn, c, w, padded, first, nodes, channels, tap, node, pairs, step, out); break; \
        case 1: direct_vectors_##SUFFIX(1, nn, c, w, padded, first, nodes, channels, tap, node, pairs, step, out); break; \
    }                                                                                                         \
    for (c += (channels - c) / VL * VL; c < channels; c++)                                                    \
        for (int n = 0; n < nn; n++) {                                                                        \
            T a = first[c];                                                                                   \
            for (int64_t p = 0; p < pairs; p++) a += w[tap[p] * padded + c] * nodes[node[p] * channels + n * step + c]; \
            out[n * channels + c] = a;                                                                        \
        }                                                                                                     \
}                                                                                                             \
                                                                                                              \
/* Runs of interior nodes at stride 1 and dilation 1 along the row (K = 3, 5 or 7 taps along it): four        \
   neighbouring nodes read K + 3 neighbouring nodes of each row of the kernel, so each of those is loaded     \
   once for all four (and the row's K weights once), not once per edge: about 0.7 loads a multiply-add        \
   instead of 1.5. `reverse` reads the taps from the end (the input gradient's gather). */                    \
static inline __attribute__((always_inline)) void direct_slide_block_##SUFFIX(                                \
        int K, int nb, int reverse, int64_t c, const T *w, int64_t padded, const T *first, const T *image,    \
        int64_t channels, const int64_t *plane_tap, const int64_t *plane, int64_t planes, int64_t width,      \
        int64_t x0, T *out) {                                                                                 \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    typedef T U __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));                             \
    V a[4][2], wk[7][2];                                                                                      \
    for (int n = 0; n < 4; n++)                                                                               \
        for (int j = 0; j < nb; j++) a[n][j] = ((const V *)(first + c))[j];                                   \
    for (int64_t i = 0; i < planes; i++) {                                                                    \
        const T *src = image + (plane[i] * width + x0) * channels + c;                                        \
        for (int k = 0; k < K; k++)                                                                           \
            for (int j = 0; j < nb; j++) wk[k][j] = ((const V *)(w + (plane_tap[i] * K + (reverse ? K - 1 - k : k)) * padded + c))[j]; \
        _Pragma("GCC unroll 10")                                                                              \
        for (int m = 0; m < K + 3; m++)                                                                       \
            for (int j = 0; j < nb; j++) {                                                                    \
                const V v = ((const U *)(src + m * channels))[j];                                             \
                _Pragma("GCC unroll 4")                                                                       \
                for (int n = 0; n < 4; n++)                                                                   \
                    if (m - n >= 0 && m - n < K) a[n][j] += wk[m - n][j] * v;                                 \
            }                                                                                                 \
    }                                                                                                         \
    for (int n = 0; n < 4; n++)                                                                               \
        for (int j = 0; j < nb; j++) ((U *)(out + n * channels + c))[j] = a[n][j];                            \
}                                                                                                             \
                                                                                                              \
static inline __attribute__((always_inline)) void direct_slide_K_##SUFFIX(                                    \
        int K, int reverse, const T *w, int64_t padded, const T *first, const T *image, int64_t channels,     \
        const int64_t *plane_tap, const int64_t *plane, int64_t planes, int64_t width, int64_t x0, int64_t count, \
        T *out) {                                                                                             \
    for (int64_t n = 0; n + 4 <= count; n += 4, out += 4 * channels) {                                        \
        int64_t c = 0;                                                                                        \
        for (; NB > 1 && c + 2 * VL <= channels; c += 2 * VL)                                                 \
            direct_slide_block_##SUFFIX(K, 2, reverse, c, w, padded, first, image, channels, plane_tap, plane, planes, width, x0 + n, out); \
        for (; c < channels; c += VL)                                                                         \
            direct_slide_block_##SUFFIX(K, 1, reverse, c, w, padded, first, image, channels, plane_tap, plane, planes, width, x0 + n, out); \
    }                                                                                                         \
}                                                                                                             \
                                                                                                              \
/* out[n][c] = first[c] + sum_p w[tap[p]][c] * nodes[node[p] + n * step][c] for `count` nodes n, c < C        \
   (w [K][C'] aligned, nodes [*][C], out [count][C]): two nodes a pass where the edges are shared. */         \
static inline __attribute__((always_inline)) void direct_sum_##SUFFIX(                                        \
        const T *w, int64_t padded, const T *first, const T *nodes, int64_t channels, const int64_t *tap,      \
        const int64_t *node, int64_t pairs, int64_t count, int64_t step, T *out) {                            \
    int64_t n = 0;                                                                                            \
    for (; n + 2 <= count; n += 2)                                                                            \
        direct_nodes_##SUFFIX(2, w, padded, first, nodes + n * step, channels, tap, node, pairs, step, out + n * channels); \
    if (n < count) direct_nodes_##SUFFIX(1, w, padded, first, nodes + n * step, channels, tap, node, pairs, step, out + n * channels); \
}                                                                                                             \
                                                                                                              \
/* The above for count / 4 * 4 nodes from x0 (the first node's first column read); C a multiple of CB. */     \
static inline __attribute__((always_inline)) void direct_slide_##SUFFIX(                                      \
        int64_t K, int reverse, const T *w, int64_t padded, const T *first, const T *image, int64_t channels,  \
        const int64_t *plane_tap, const int64_t *plane, int64_t planes, int64_t width, int64_t x0,            \
        int64_t count, T *out) {                                                                              \
    switch (K * 2 + reverse) {                                                                                \
        case 6: direct_slide_K_##SUFFIX(3, 0, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
        case 7: direct_slide_K_##SUFFIX(3, 1, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
        case 10: direct_slide_K_##SUFFIX(5, 0, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
        case 11: direct_slide_K_##SUFFIX(5, 1, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
        case 14: direct_slide_K_##SUFFIX(7, 0, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
        case 15: direct_slide_K_##SUFFIX(7, 1, w, padded, first, image, channels, plane_tap, plane, planes, width, x0, count, out); break; \
    }                                                                                                         \
}                                                                                                             \
                                                                                                              \
/* acc[tap[p]][c] += sum_n grad[n][c] * nodes[node[p] + n * step][c] over `count` nodes n, every pair p,      \
   c < C (acc [K][C'] aligned). */                                                                            \
static inline __attribute__((always_inline)) void direct_weight_grad_##SUFFIX(                                \
        const T *grad, const T *nodes, int64_t channels, const int64_t *tap, const int64_t *node, int64_t pairs, \
        int64_t count, int64_t step, T *acc, int64_t padded) {                                                \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    typedef T U __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T))));                             \
    for (int64_t n = 0; n < count; n += 4) {                                                                  \
        const int64_t nn = count - n < 4 ? count - n : 4;                                                     \
        const T *go = grad + n * channels, *from = nodes + n * step;                                          \
        int64_t c = 0;                                                                                        \
        for (; c + VL <= channels; c += VL) {                                                                 \
            V g[4];                                                                                           \
            for (int64_t i = 0; i < nn; i++) g[i] = *(const U *)(go + i * channels + c);                      \
            for (int64_t p = 0; p < pairs; p++) {                                                             \
                const T *src = from + node[p] * channels + c;                                                 \
                V sum = g[0] * *(const U *)src;                                                               \
                for (int64_t i = 1; i < nn; i++) sum += g[i] * *(const U *)(src + i * step);                  \
                *(V *)(acc + tap[p] * padded + c) += sum;                                                     \
            }                                                                                                 \
        }                                                                                                     \
        for (; c < channels; c++)                                                                             \
            for (int64_t i = 0; i < nn; i++)                                                                  \
                for (int64_t p = 0; p < pairs; p++)                                                           \
                    acc[tap[p] * padded + c] += go[i * channels + c] * from[node[p] * channels + i * step + c]; \
    }                                                                                                         \
}

#define DEFINE_DIRECT(T, SUFFIX)                                                                              \
/* Depthwise convs on channels-last input (group width 1, [B, *S, C] contiguous) read and write the nodes     \
   in place: no buffer, since a node's C channels lie together and a sweep over them streams memory           \
   (a unit's buffer would read every node's 16-channel slice at a stride of C values). For each node the      \
   kernel lists the (offset, node) pairs of its edges that exist, so padding and borders cost nothing in      \
   the channel loop: the forward's pairs are the nodes an output node reads, the input gradient's the         \
   output nodes an input node was read by (the same sum over the transposed edges, gathered, so no two        \
   threads write one node). Interior nodes of a row share one list, moved along the row. */                   \
static T *direct_pack_##SUFFIX(const T *w, const T *bias, int64_t channels, int64_t padded, int64_t taps) {   \
    /* [K][C'] weights and [C'] bias (zeros where NULL and beyond C; C' = C rounded up to CB), or NULL. */    \
    T *packed = alloc_aligned(sizeof(T) * (taps + 1) * padded);                                               \
    if (!packed) return NULL;                                                                                 \
    memset(packed, 0, sizeof(T) * (taps + 1) * padded);                                                       \
    for (int64_t c = 0; c < channels; c++) {                                                                  \
        for (int64_t t = 0; t < taps; t++) packed[t * padded + c] = w ? w[c * taps + t] : 0;                  \
        packed[taps * padded + c] = bias ? bias[c] : 0;                                                       \
    }                                                                                                         \
    return packed;                                                                                            \
}                                                                                                             \
                                                                                                              \
DEFINE_DIRECT_LANES(T, SUFFIX##_wide, CB, 2)                                                                  \
DEFINE_DIRECT_LANES(T, SUFFIX##_half, (CB / 2), 1)                                                            \
                                                                                                              \
/* out[n][c] = first[c] + sum_p w[tap[p]][c] * nodes[node[p] + n * step][c] for `count` nodes n, c < C        \
   (w [K][C'] aligned, nodes [*][C], out [count][C]): two nodes a pass where the edges are shared. */         \
CLONES static void direct_sum_##SUFFIX(const T *w, int64_t padded, const T *first, const T *nodes, int64_t channels, \
                                       const int64_t *tap, const int64_t *node, int64_t pairs, int64_t count, \
                                       int64_t step, T *out) {                                                \
    if (HALF_LANES(T))                                                                                        \
        direct_sum_##SUFFIX##_half(w, padded, first, nodes, channels, tap, node, pairs, count, step, out);    \
    else                                                                                                      \
        direct_sum_##SUFFIX##_wide(w, padded, first, nodes, channels, tap, node, pairs, count, step, out);    \
}                                                                                                             \
                                                                                                              \
/* Runs of count / 4 * 4 interior nodes from x0 (the first node's first column read), K = 3, 5 or 7 taps      \
   along the row, by the slides of DEFINE_DIRECT_LANES; C a multiple of CB. */                                \
CLONES static void direct_slide_##SUFFIX(int64_t K, int reverse, const T *w, int64_t padded, const T *first,  \
                                         const T *image, int64_t channels, const int64_t *plane_tap,          \
                                         const int64_t *plane, int64_t planes, int64_t width, int64_t x0,     \
                                         int64_t count, T *out) {                                             \
    if (HALF_LANES(T))                                                                                        \
        direct_slide_##SUFFIX##_half(K, reverse, w, padded, first, image, channels, plane_tap, plane, planes, \
                                     width, x0, count, out);                                                  \
    else                                                                                                      \
        direct_slide_##SUFFIX##_wide(K, reverse, w, padded, first, image, channels, plane_tap, plane, planes, \
                                     width, x0, count, out);                                                  \
}                                                                                                             \
                                                                                                              \
/* acc[tap[p]][c] += sum_n grad[n][c] * nodes[node[p] + n * step][c] over `count` nodes n, every pair p,      \
   c < C (acc [K][C'] aligned). */                                                                            \
CLONES static void direct_weight_grad_##SUFFIX(const T *grad, const T *nodes, int64_t channels, const int64_t *tap, \
                                               const int64_t *node, int64_t pairs, int64_t count, int64_t step, \
                                               T *acc, int64_t padded) {                                      \
    if (HALF_LANES(T))                                                                                        \
        direct_weight_grad_##SUFFIX##_half(grad, nodes, channels, tap, node, pairs, count, step, acc, padded); \
    else                                                                                                      \
        direct_weight_grad_##SUFFIX##_wide(grad, nodes, channels, tap, node, pairs, count, step, acc, padded); \
}                                                                                                             \
                                                                                                              \
                                                                                                              \
/* One row of nodes (b, z, y), flat index r: reading, an output row whose nodes read `from` (the input);      \
   else an input row, whose nodes gather from the output nodes that read them (`from`: output gradients).     \
   Writes row [X][C] = first + the sums of w times `from` over each node's edges; or, with acc, adds          \
   row[x] (output gradients) times `from` to acc's offsets. scratch: 2 (K + K_z K_y) indices. */              \
static void direct_row_##SUFFIX(const dw_geometry *g, int64_t r, int reading, const T *w, int64_t padded,     \
                                const T *first, const T *from, T *row, T *acc, int64_t *scratch) {            \
    const int64_t *rows = reading ? g->out : g->in, *across = reading ? g->in : g->out;                       \
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2], channels = g->channels;                  \
    const int64_t b = r / (rows[0] * rows[1]), z = r / rows[1] % rows[0], y = r % rows[1];                    \
    const int64_t step = (reading ? g->stride[2] : 1) * channels;                                             \
    int64_t *tap = scratch, *node = tap + taps, *plane_tap = node + taps, *plane = plane_tap + g->kernel[0] * g->kernel[1]; \
    const int64_t planes = plane_edges(g, z, y, reading, plane_tap, plane);                                   \
    const T *image = from + b * across[0] * across[1] * across[2] * channels;                                 \
    row += r * rows[2] * channels;                                                                            \
    const int64_t k = g->kernel[2];                                                                           \
    const int slides = !acc && g->stride[2] == 1 && g->dilation[2] == 1 && (k == 3 || k == 5 || k == 7)       \
                       && channels % CB == 0;                                                                 \
    for (int64_t x = 0, count; x < rows[2]; x += count) {                                                     \
        count = full_run(g, x, reading, rows[2]);                                                             \
        if (slides && count >= 4) {                   /* the first column read: the kernel's first or last */ \
            const int64_t x0 = reading ? x - g->pad[2] : x + g->pad[2] - (k - 1);                             \
            direct_slide_##SUFFIX(k, !reading, w, padded, first, image, channels, plane_tap, plane, planes,   \
                                  across[2], x0, count, row + x * channels);                                  \
            count = count / 4 * 4;                                                                            \
            continue;                                                                                         \
        }                                                                                                     \
        const int64_t pairs = node_edges(g, x, reading, plane_tap, plane, planes, tap, node);                 \
        if (acc)                                                                                              \
            direct_weight_grad_##SUFFIX(row + x * channels, image, channels, tap, node, pairs, count, step, acc, padded); \
        else                                                                                                  \
            direct_sum_##SUFFIX(w, padded, first, image, channels, tap, node, pairs, count, step, row + x * channels); \
    }                                                                                                         \
}                                                                                                             \
                                                                                                              \
/* The forward of a depthwise conv on channels-last nodes (see above). */                                     \
static int direct_forward_##SUFFIX(const dw_geometry *g, const T *x, const T *w, const T *bias, T *y) {       \
    const int64_t padded = (g->channels + CB - 1) / CB * CB, taps = g->kernel[0] * g->kernel[1] * g->kernel[2]; \
    const int64_t rows = g->batch * g->out[0] * g->out[1];                                                    \
    T *packed = direct_pack_##SUFFIX(w, bias, g->channels, padded, taps);                                     \
    if (!packed) return 1;                                                                                    \
    int failed = 0;                                                                                           \
    _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")                                       \
    {                                                                                                         \
        int64_t *scratch = malloc(sizeof(int64_t) * 2 * (taps + g->kernel[0] * g->kernel[1]));                \
        if (!scratch) failed = 1;                                                                             \
        _Pragma("omp for schedule(static)")                                                                   \
        for (int64_t r = 0; r < rows; r++)                                                                    \
            if (!failed) direct_row_##SUFFIX(g, r, 1, packed, padded, packed + taps * padded, x, y, NULL, scratch); \
        free(scratch);                                                                                        \
    }                                                                                                         \
    free(packed);                                                                                             \
    return failed;                                                                                            \
}                                                                                                             \
                                                                                                              \
/* The input and weight gradients of direct_forward (either may be NULL). */                                  \
static int direct_backward_##SUFFIX(const dw_geometry *g, const T *x, const T *w, const T *grad_y, T *grad_x, \
                                    T *grad_w) {                                                              \
    const int64_t channels = g->channels, padded = (channels + CB - 1) / CB * CB;                             \
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2], weights = taps * padded;                 \
    const int threads = (int)g->threads;                                                                      \
    T *packed = direct_pack_##SUFFIX(w, NULL, channels, padded, taps);                                        \
    T *parts = grad_w ? alloc_aligned(sizeof(T) * threads * weights) : NULL;                                  \
    if (!packed || (grad_w && !parts)) {                                                                      \
        free(packed);                                                                                         \
        free(parts);                                                                                          \
        return 1;                                                                                             \
    }                                                                                                         \
    if (parts) memset(parts, 0, sizeof(T) * threads * weights);                                               \
    int failed = 0;                                                                                           \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                          \
    {                                                                                                         \
        int64_t *scratch = malloc(sizeof(int64_t) * 2 * (taps + g->kernel[0] * g->kernel[1]));                \
        if (!scratch) failed = 1;                                                                             \
        if (grad_x) {                                                 /* gathered into each input node */     \
            const int64_t rows = g->batch * g->in[0] * g->in[1];                                              \
            _Pragma("omp for schedule(static)")                                                               \
            for (int64_t r = 0; r < rows; r++)                                                                \
                if (!failed) direct_row_##SUFFIX(g, r, 0, packed, padded, packed + weights, grad_y, grad_x, NULL, scratch); \
        }                                                                                                     \
        if (grad_w) {                                                 /* per-thread sums over the output nodes */ \
            const int64_t rows = g->batch * g->out[0] * g->out[1];                                            \
            T *acc = parts + omp_get_thread_num() * weights;                                                  \
            _Pragma("omp for schedule(static)")                                                               \
            for (int64_t r = 0; r < rows; r++)                                                                \
                if (!failed) direct_row_##SUFFIX(g, r, 1, NULL, padded, NULL, x, (T *)grad_y, acc, scratch);  \
        }                                                                                                     \
        free(scratch);                                                                                        \
    }                                                                                                         \
    if (grad_w && !failed)                                                                                    \
        for (int64_t c = 0; c < channels; c++)                                                                \
            for (int64_t t = 0; t < taps; t++) {                                                              \
                T total = 0;                                                                                  \
                for (int r = 0; r < threads; r++) total += parts[r * weights + t * padded + c];               \
                grad_w[c * taps + t] = total;                                                                 \
            }                                                                                                 \
    free(parts);                                                                                              \
    free(packed);                                                                                             \
    return failed;                                                                                            \
}

#define DEFINE_UNIT_SUMS(T, SUFFIX, VL)                                                                 \
/* N <= 6 output nodes from x of one output row (forward_rows_'s register block; N a constant). */            \
static inline __attribute__((always_inline)) void rows_block_##SUFFIX(                                        \
        int N, int64_t x, const T *row, int64_t width, const T *w, const T *bias, const int64_t *offsets,     \
        int64_t taps, int64_t cells, int64_t step, T *out) {                                                  \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    enum { P = CB / (VL) };                                                      /* vectors a node */         \
    const V *in = (const V *)row, *wv = (const V *)w, *b = (const V *)bias;                                   \
    V *o = (V *)out, a[P][6];                                                                                \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) a[h][n] = b[h];                                   \
    for (int64_t t = 0; t < taps; t++)                                                                        \
        for (int64_t j = 0; j < width; j++) {                                                                 \
            const V *src = in + (j * cells + offsets[t]) * P + x * step, *wt = wv + (t * width + j) * P;      \
            _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                               \
                _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) a[h][n] += wt[h] * src[n * step + h];     \
        }                                                                                                     \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) o[(x + n) * P + h] = a[h][n];                     \
}                                                                                                             \
                                                                                                              \
/* out [P_out][CB] = bias + sum_t sum_j wb[t][j] * in[j][node + offset_t] for every output node, in: the      \
   w rotations of the buffer ([w][cells] vectors; the buffer itself for w = 1). Always inlined, so the        \
   depthwise call (w the constant 1) compiles without the j loop. A node's CB lanes are P = CB / VL vectors:  \
   on AVX2 two of 8 lanes, whose 6 x 2 (depthwise) or OB x 2 sums its 16 registers hold (16-lane ones went  \
   through the stack). */                                                                                     \
static inline __attribute__((always_inline)) void forward_rows_##SUFFIX(                                      \
        const dw_geometry *g, const T *buffers, int64_t width, const T *w, const T *bias,                     \
        const int64_t *offsets, int64_t taps, T *out) {                                                       \
    const int64_t sh = span(g, 1), sw = span(g, 2), cells = span(g, 0) * sh * sw;                             \
    const int64_t step = g->stride[2] * (CB / (VL));                         /* in vectors */                 \
    for (int64_t z = 0; z < g->out[0]; z++)                                                                   \
        for (int64_t y = 0; y < g->out[1]; y++, out += g->out[2] * CB) {                                      \
            const T *row = buffers + ((z * g->stride[0] * sh) + y * g->stride[1]) * sw * CB;                  \
            int64_t x = 0;                                                                                    \
            if (CB / (VL) == 2 && width == 1)       /* depthwise on 8 lanes: 6 x 2 sums, 0.94x the time */    \
                IN_BLOCKS(x, g->out[2], 6, rows_block_##SUFFIX, row, width, w, bias, offsets, taps, cells, step, out); \
            else                                    /* (groups of 4 and 8 took 1.02-1.06x with 6) */          \
                IN_BLOCKS(x, g->out[2], OB, rows_block_##SUFFIX, row, width, w, bias, offsets, taps, cells, step, out); \
        }                                                                                                     \
}                                                                                                             \
                                                                                                              \
/* The grouped unit's gradients (backward_grouped_unit_): grad_buf[node + offset_t] += sum_j wback[t][j] *   \
   goback[j][node] and grad_w[t][j] += sum_node grad[node] * in[j][node + offset_t], from the rotations in   \
   scratch; on VL-lane vectors, in CB / VL passes over the unit, one a VL-lane part of each node. */       \
static inline __attribute__((always_inline)) void grouped_grads_##SUFFIX(                                    \
        const dw_geometry *g, const T *grad, const T *rotated_in, const T *rotated_grad, const T *rotated_w, \
        const int64_t *offsets, int64_t taps, T *grad_buf, T *grad_w) {                                      \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                \
    const int64_t P = CB / (VL), width = g->group_width, sh = span(g, 1), sw = span(g, 2);                   \
    const int64_t step = g->stride[2] * P, cells = span(g, 0) * sh * sw, nodes = g->out[0] * g->out[1] * g->out[2]; \
    for (int64_t h = 0; h < P; h++) {                                                                        \
        const V *in = (const V *)rotated_in + h, *go_back = (const V *)rotated_grad + h;                     \
        const V *w_back = (const V *)rotated_w + h, *go = (const V *)grad + h;                               \
        V *gin = grad_buf ? (V *)grad_buf + h : NULL, *gw = grad_w ? (V *)grad_w + h : NULL;                 \
        for (int64_t z = 0; z < g->out[0]; z++)                                                              \
            for (int64_t y = 0; y < g->out[1]; y++) {                                                        \
                const int64_t row = ((z * g->stride[0] * sh) + y * g->stride[1]) * sw;                       \
                const int64_t first = (z * g->out[1] + y) * g->out[2];                                       \
                for (int64_t t = 0; t < taps; t++) {                                                         \
                    if (gin)                                                                                 \
                        for (int64_t x = 0; x < g->out[2]; x++) {                                            \
                            V sum = w_back[t * width * P] * go_back[(first + x) * P];                        \
                            for (int64_t j = 1; j < width; j++)                                              \
                                sum += w_back[(t * width + j) * P] * go_back[(j * nodes + first + x) * P];   \
                            gin[(row + offsets[t]) * P + x * step] += sum;                                   \
                        }                                                                                    \
                    if (gw)                                                                                  \
                        for (int64_t j = 0; j < width; j++) {                                                \
                            const V *src = in + (j * cells + row + offsets[t]) * P;                          \
                            V acc = gw[(t * width + j) * P];                                                 \
                            for (int64_t x = 0; x < g->out[2]; x++) acc += go[(first + x) * P] * src[x * step]; \
                            gw[(t * width + j) * P] = acc;                                                   \
                        }                                                                                    \
                }                                                                                            \
            }                                                                                                \
    }                                                                                                        \
}                                                                                                            \
                                                                                                             \
/* The depthwise unit's gradients (backward_unit_): grad_buf[node + offset_t] += w[t] * grad[node] and       \
   grad_w[t] += sum_node grad[node] * buf[node + offset_t]; on VL-lane vectors, CB / VL passes. */           \
static inline __attribute__((always_inline)) void depthwise_grads_##SUFFIX(                                  \
        const dw_geometry *g, const T *buf, const T *grad, const T *w, const int64_t *offsets, int64_t taps, \
        T *grad_buf, T *grad_w) {                                                                            \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                \
    const int64_t P = CB / (VL), sh = span(g, 1), sw = span(g, 2), step = g->stride[2] * P, width = g->out[2]; \
    for (int64_t h = 0; h < P; h++) {                                                                        \
        const V *in = (const V *)buf + h, *wv = (const V *)w + h;                                            \
        V *gin = grad_buf ? (V *)grad_buf + h : NULL, *gw = grad_w ? (V *)grad_w + h : NULL;                 \
        for (int64_t z = 0; z < g->out[0]; z++)                                                              \
            for (int64_t y = 0; y < g->out[1]; y++) {                                                        \
                const int64_t row = ((z * g->stride[0] * sh) + y * g->stride[1]) * sw;                       \
                const V *go = (const V *)grad + h + (z * g->out[1] + y) * width * P;                         \
                for (int64_t t = 0; t < taps; t++) {                                                         \
                    const int64_t at = (row + offsets[t]) * P;                                               \
                    if (gin) {                                                                               \
                        const V wt = wv[t * P];                                                              \
                        V *dst = gin + at;                                                                   \
                        for (int64_t x = 0; x < width; x++) dst[x * step] += wt * go[x * P];                 \
                    }                                                                                        \
                    if (gw) {                                                                                \
                        const V *src = in + at;                                                              \
                        V a0 = gw[t * P], a1 = {0}, a2 = {0}, a3 = {0};                                      \
                        int64_t x = 0;                                                                       \
                        for (; x + 4 <= width; x += 4) {                                                     \
                            a0 += go[x * P] * src[x * step];                                                 \
                            a1 += go[(x + 1) * P] * src[(x + 1) * step];                                     \
                            a2 += go[(x + 2) * P] * src[(x + 2) * step];                                     \
                            a3 += go[(x + 3) * P] * src[(x + 3) * step];                                     \
                        }                                                                                    \
                        for (; x < width; x++) a0 += go[x * P] * src[x * step];                              \
                        gw[t * P] = (a0 + a1) + (a2 + a3);                                                   \
                    }                                                                                        \
                }                                                                                            \
            }                                                                                                \
    }                                                                                                        \
}

/* Groups as wide as a block (w = CB) on VL-lane vectors, by broadcasts instead of rotations: out[node][o] =  \
   bias[o] + sum_t sum_i buf[node + offset_t][i] * wd[t][i][o], each input value broadcast against a row of   \
   the group's weights, RB nodes x CB / VL vectors of sums in registers. The rotations would fill w = 16       \
   times the buffer (256 KB for a 14x14 plane) and read it back from L2; this reads the buffer in place.      \
   wd [K][CB][CB]: the weights BY_INPUT (weight_block_). */                                                   \
#define DEFINE_BROADCAST_SUMS(T, SUFFIX, VL)                                                                  \
/* N <= RB output nodes from x of one output row (forward_broadcast_'s register block; N a constant). */      \
static inline __attribute__((always_inline)) void broadcast_block_##SUFFIX(                                   \
        int N, int64_t x, const T *row, const T *wd, const T *bias, const int64_t *offsets, int64_t taps,     \
        int64_t step, T *out) {                                                                               \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    enum { P = CB / (VL) };                                                      /* vectors a node */         \
    const V *b = (const V *)bias;                                                                             \
    V *o = (V *)out, a[P][RB];                                                                                \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) a[h][n] = b[h];                                   \
    for (int64_t t = 0; t < taps; t++) {                                                                      \
        const T *src = row + offsets[t] * CB + x * step;                                                      \
        for (int i = 0; i < CB; i++) {                                                                        \
            const V *wt = (const V *)(wd + (t * CB + i) * CB);                                                \
            _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) {                                             \
                const T xv = src[n * step + i];                                                               \
                _Pragma("GCC unroll 2") for (int h = 0; h < P; h++) a[h][n] += wt[h] * xv;                    \
            }                                                                                                 \
        }                                                                                                     \
    }                                                                                                         \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) o[(x + n) * P + h] = a[h][n];                     \
}                                                                                                             \
                                                                                                              \
static inline __attribute__((always_inline)) void forward_broadcast_##SUFFIX(                                 \
        const dw_geometry *g, const T *buf, const T *wd, const T *bias, const int64_t *offsets, int64_t taps, \
        T *out) {                                                                                             \
    const int64_t sh = span(g, 1), sw = span(g, 2), step = g->stride[2] * CB;                                 \
    for (int64_t z = 0; z < g->out[0]; z++)                                                                   \
        for (int64_t y = 0; y < g->out[1]; y++, out += g->out[2] * CB) {                                      \
            const T *row = buf + ((z * g->stride[0] * sh) + y * g->stride[1]) * sw * CB;                      \
            int64_t x = 0;                                                                                    \
            IN_BLOCKS(x, g->out[2], RB, broadcast_block_##SUFFIX, row, wd, bias, offsets, taps, step, out);   \
        }                                                                                                     \
}                                                                                                             \
                                                                                                              \
/* dst[(x + n) step] += sum_o grad[x + n][o] * wt[t][o] for N <= RB output nodes from x (broadcast_grads_'s   \
   register block; N a constant). */                                                                          \
static inline __attribute__((always_inline)) void broadcast_grad_block_##SUFFIX(                              \
        int N, int64_t x, const T *go, const T *wt, int64_t t, int64_t step, T *dst) {                        \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    enum { P = CB / (VL) };                                                      /* vectors a node */         \
    V a[P][RB];                                                                                               \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) a[h][n] = (V){0};                                 \
    for (int o = 0; o < CB; o++) {                                                                            \
        const V *wr = (const V *)(wt + (t * CB + o) * CB);                                                    \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) {                                                 \
            const T gv = go[(x + n) * CB + o];                                                                \
            _Pragma("GCC unroll 2") for (int h = 0; h < P; h++) a[h][n] += wr[h] * gv;                        \
        }                                                                                                     \
    }                                                                                                         \
    _Pragma("GCC unroll 2") for (int h = 0; h < P; h++)                                                       \
        _Pragma("GCC unroll 6") for (int n = 0; n < N; n++) ((V *)(dst + (x + n) * step))[h] += a[h][n];      \
}                                                                                                             \
                                                                                                              \
/* The same units' gradients by broadcasts: grad_buf[node + offset_t][i] += sum_o grad[node][o] * wt[t][o][i], \
   RB nodes x CB / VL vectors of sums in registers, added into the buffer once a tap; and grad_w[t][i][o] +=   \
   sum_node buf[node + offset_t][i] * grad[node][o], IB inputs x CB / VL vectors of sums held over the whole  \
   unit. wt [K][CB][CB]: the weights BY_OUTPUT (weight_block_); grad_w [K][CB][CB], or NULL. */               \
static inline __attribute__((always_inline)) void broadcast_grads_##SUFFIX(                                   \
        const dw_geometry *g, const T *buf, const T *grad, const T *wt, const int64_t *offsets, int64_t taps, \
        T *grad_buf, T *grad_w) {                                                                              \
    typedef T V __attribute__((vector_size(VL * sizeof(T))));                                                 \
    enum { P = CB / (VL), IB = 4 };                       /* vectors a node, inputs a register block */       \
    const int64_t sh = span(g, 1), sw = span(g, 2), step = g->stride[2] * CB, width = g->out[2];              \
    for (int64_t z = 0; z < g->out[0] && grad_buf; z++)                                                       \
        for (int64_t y = 0; y < g->out[1]; y++) {                                                             \
            const T *go = grad + (z * g->out[1] + y) * width * CB;                                            \
            T *row = grad_buf + ((z * g->stride[0] * sh) + y * g->stride[1]) * sw * CB;                       \
            for (int64_t t = 0; t < taps; t++) {                                                              \
                int64_t x = 0;                                                                                \
                IN_BLOCKS(x, width, RB, broadcast_grad_block_##SUFFIX, go, wt, t, step, row + offsets[t] * CB); \
            }                                                                                                 \
        }                                                                                                     \
    for (int64_t t = 0; t < taps && grad_w; t++)                                                               \
        for (int i0 = 0; i0 < CB; i0 += IB) {                                                                 \
            V a[IB][P];                                                                                       \
            _Pragma("GCC unroll 4") for (int k = 0; k < IB; k++)                                              \
                _Pragma("GCC unroll 2") for (int h = 0; h < P; h++) a[k][h] = ((V *)(grad_w + (t * CB + i0 + k) * CB))[h]; \
            for (int64_t z = 0; z < g->out[0]; z++)                                                           \
                for (int64_t y = 0; y < g->out[1]; y++) {                                                     \
                    const V *go = (const V *)(grad + (z * g->out[1] + y) * width * CB);                       \
                    const T *src = buf + (((z * g->stride[0] * sh) + y * g->stride[1]) * sw + offsets[t]) * CB + i0; \
                    for (int64_t x = 0; x < width; x++)                                                       \
                        _Pragma("GCC unroll 4") for (int k = 0; k < IB; k++) {                                \
                            const T xv = src[x * step + k];                                                   \
                            _Pragma("GCC unroll 2") for (int h = 0; h < P; h++) a[k][h] += go[x * P + h] * xv; \
                        }                                                                                     \
                }                                                                                             \
            _Pragma("GCC unroll 4") for (int k = 0; k < IB; k++)                                              \
                _Pragma("GCC unroll 2") for (int h = 0; h < P; h++) ((V *)(grad_w + (t * CB + i0 + k) * CB))[h] = a[k][h]; \
        }                                                                                                     \
}

#define DEFINE_KERNELS(T, SUFFIX, I)                                                                         \
                                                                                                             \
typedef T vec_##SUFFIX __attribute__((vector_size(CB * sizeof(T))));                   /* aligned */         \
typedef T uvec_##SUFFIX __attribute__((vector_size(CB * sizeof(T)), aligned(sizeof(T))));  /* unaligned */   \
                                                                                                             \
DEFINE_TRANSPOSE(T, SUFFIX, I)                                                                               \
                                                                                                             \
DEFINE_UNIT_SUMS(T, SUFFIX##_wide, CB)                                                                     \
DEFINE_UNIT_SUMS(T, SUFFIX##_half, (CB / 2))                                                               \
DEFINE_BROADCAST_SUMS(T, SUFFIX##_half, (CB / 2))                                                             \
                                                                                                             \
/* block[p][j] = src[p * node_stride + j * channel_stride] for n nodes and cb channels, zeros beyond cb.    \
   block is CB-aligned; channels innermost (channel_stride 1) copies vectors, channel-major (node_stride    \
   1) transposes CB x CB tiles. */                                                                          \
CLONES static void to_block_##SUFFIX(const T *src, int64_t node_stride, int64_t channel_stride, int64_t n,         \
                              int64_t cb, T *block) {                                                       \
    int64_t p = 0;                                                                                          \
    if (channel_stride == 1 && cb == CB)                                                                    \
        for (; p < n; p++) ((vec_##SUFFIX *)block)[p] = *(const uvec_##SUFFIX *)(src + p * node_stride);   \
    TRANSPOSING_LOAD(SUFFIX)                                                                              \
    for (; p < n; p++)                                                                                      \
        for (int64_t j = 0; j < CB; j++)                                                                    \
            block[p * CB + j] = j < cb ? src[p * node_stride + j * channel_stride] : 0;                     \
}                                                                                                            \
                                                                                                             \
/* dst[p * node_stride + j * channel_stride] = block[p][j] for n nodes and cb channels (to_block reversed). */ \
CLONES static void from_block_##SUFFIX(const T *block, int64_t n, int64_t cb, T *dst, int64_t node_stride,          \
                                int64_t channel_stride) {                                                   \
    int64_t p = 0;                                                                                          \
    if (channel_stride == 1 && cb == CB)                                                                    \
        for (; p < n; p++) *(uvec_##SUFFIX *)(dst + p * node_stride) = ((const vec_##SUFFIX *)block)[p];   \
    TRANSPOSING_STORE(SUFFIX)                                                                             \
    for (; p < n; p++)                                                                                      \
        for (int64_t j = 0; j < cb; j++) dst[p * node_stride + j * channel_stride] = block[p * CB + j];     \
}                                                                                                            \
                                                                                                             \
/* The strides of image b's nodes and channels in t ([B][P][C] or [B][C][P]) and its channel c0. */         \
static const T *image_##SUFFIX(const dw_geometry *g, const T *t, int64_t pixels, int64_t b, int64_t c0,     \
                               int64_t *node_stride, int64_t *channel_stride) {                             \
    *node_stride = g->channels_last ? g->channels : 1;                                                      \
    *channel_stride = g->channels_last ? 1 : pixels;                                                        \
    return t + b * pixels * g->channels + c0 * *channel_stride;                                             \
}                                                                                                            \
                                                                                                             \
/* Copy channels [c0, c0 + cb) of image b into buf [D'][H'][W'][CB], zeros in the padding. */              \
static void load_##SUFFIX(const dw_geometry *g, const T *x, int64_t b, int64_t c0, int64_t cb, T *buf) {    \
    const int64_t sd = span(g, 0), sh = span(g, 1), sw = span(g, 2);                                        \
    int64_t node_stride, channel_stride;                                                                    \
    const T *image = image_##SUFFIX(g, x, g->in[0] * g->in[1] * g->in[2], b, c0, &node_stride,            \
                                    &channel_stride);                                                       \
    const int64_t x_lo = g->pad[2] < sw ? g->pad[2] : sw;                                                   \
    const int64_t x_hi = g->in[2] + g->pad[2] < sw ? g->in[2] + g->pad[2] : sw;                             \
    for (int64_t z = 0; z < sd; z++)                                                                        \
        for (int64_t y = 0; y < sh; y++) {                                                                  \
            const int64_t iz = z - g->pad[0], iy = y - g->pad[1];                                           \
            T *dst = buf + (z * sh + y) * sw * CB;                                                          \
            if (iz < 0 || iz >= g->in[0] || iy < 0 || iy >= g->in[1] || x_hi <= x_lo) {                     \
                memset(dst, 0, sizeof(T) * sw * CB);                                /* a padding row */    \
                continue;                                                                                   \
            }                                                                                               \
            memset(dst, 0, sizeof(T) * x_lo * CB);                                                          \
            memset(dst + x_hi * CB, 0, sizeof(T) * (sw - x_hi) * CB);                                       \
            to_block_##SUFFIX(image + (iz * g->in[1] + iy) * g->in[2] * node_stride, node_stride,           \
                              channel_stride, x_hi - x_lo, cb, dst + x_lo * CB);                            \
        }                                                                                                   \
}                                                                                                            \
                                                                                                             \
/* Write block [P][CB] (P nodes in grid order) to channels [c0, c0 + cb) of image b of t (P nodes). */      \
static void store_##SUFFIX(const dw_geometry *g, const T *block, int64_t pixels, int64_t b, int64_t c0,       \
                           int64_t cb, T *t) {                                                               \
    int64_t node_stride, channel_stride;                                                                    \
    T *image = (T *)image_##SUFFIX(g, t, pixels, b, c0, &node_stride, &channel_stride);                     \
    from_block_##SUFFIX(block, pixels, cb, image, node_stride, channel_stride);                             \
}                                                                                                            \
                                                                                                             \
/* Read channels [c0, c0 + cb) of image b of t (P nodes) into block [P][CB], zeros beyond cb. */            \
static void gather_##SUFFIX(const dw_geometry *g, const T *t, int64_t pixels, int64_t b, int64_t c0,         \
                            int64_t cb, T *block) {                                                          \
    int64_t node_stride, channel_stride;                                                                    \
    const T *image = image_##SUFFIX(g, t, pixels, b, c0, &node_stride, &channel_stride);                    \
    to_block_##SUFFIX(image, node_stride, channel_stride, pixels, cb, block);                               \
}                                                                                                            \
                                                                                                             \
/* Offsets into the buffer (in CB vectors) of every kernel offset, row-major; returns their count. */       \
static int64_t tap_offsets_##SUFFIX(const dw_geometry *g, int64_t *offsets) {                               \
    const int64_t sh = span(g, 1), sw = span(g, 2);                                                         \
    int64_t k = 0;                                                                                          \
    for (int64_t a = 0; a < g->kernel[0]; a++)                                                              \
        for (int64_t c = 0; c < g->kernel[1]; c++)                                                          \
            for (int64_t e = 0; e < g->kernel[2]; e++)                                                      \
                offsets[k++] = ((a * g->dilation[0] * sh) + c * g->dilation[1]) * sw + e * g->dilation[2];  \
    return k;                                                                                               \
}                                                                                                            \
                                                                                                             \
/* grad_buf[node + offset_t] += w_t * grad[node] and grad_w[t] += grad[node] * buf[node + offset_t]. */    \
CLONES static void backward_unit_##SUFFIX(const dw_geometry *g, const T *buf, const T *grad, const T *w,     \
                                          const int64_t *offsets, int64_t taps, T *grad_buf, T *grad_w) {    \
    if (HALF_LANES(T))                                                                                       \
        depthwise_grads_##SUFFIX##_half(g, buf, grad, w, offsets, taps, grad_buf, grad_w);                   \
    else                                                                                                     \
        depthwise_grads_##SUFFIX##_wide(g, buf, grad, w, offsets, taps, grad_buf, grad_w);                   \
}                                                                                                            \
                                                                                                             \
/* Grouped units (group_width w > 1): a block holds CB / w whole groups. Output lane o of group G reads    \
   the group's input lanes G w + (o + j) mod w, j < w: the input vector permuted by rotation j within each   \
   group (rot[j]); the weights are stored rotated alike, wb[t][j][o] = W[o][(o + j) mod w][t]. The input   \
   gradient sends lane o's products back by the inverse rotations (back[j]). Each node's w rotations are   \
   made once into scratch ([w][nodes] vectors) rather than once per kernel offset reading it. */           \
static void rotations_##SUFFIX(int64_t w, I rot[CB][CB], I back[CB][CB]) {                                  \
    for (int64_t j = 0; j < w; j++)                                                                         \
        for (int64_t o = 0; o < CB; o++) {                                                                  \
            rot[j][o] = (I)((o / w) * w + (o % w + j) % w);                                                 \
            back[j][o] = (I)((o / w) * w + (o % w + w - j) % w);                                            \
        }                                                                                                   \
}                                                                                                            \
                                                                                                             \
/* rotated[j][p] = the vector src[p] permuted by masks[j], for p < n and j < w. */                          \
CLONES static void rotate_all_##SUFFIX(const T *src, int64_t n, int64_t w, I masks[CB][CB], T *rotated) {   \
    typedef T V __attribute__((vector_size(CB * sizeof(T))));                                               \
    typedef I M __attribute__((vector_size(CB * sizeof(T))));                                               \
    const V *in = (const V *)src;                                                                           \
    V *out = (V *)rotated;                                                                                  \
    if (HALF_LANES(T)) {                                                                                      \
        /* 8-lane halves: each a two-source permute (two vpermps and a blend on AVX2), where a 16-lane one    \
           would go lane by lane through the stack */                                                       \
        typedef T H __attribute__((vector_size(CB / 2 * sizeof(T))));                                       \
        typedef I HM __attribute__((vector_size(CB / 2 * sizeof(T))));                                      \
        const H *hin = (const H *)src;                                                                      \
        H *hout = (H *)rotated;                                                                             \
        for (int64_t j = 0; j < w; j++) {                                                                   \
            HM lo, hi;                                                                                      \
            memcpy(&lo, masks[j], sizeof(lo)), memcpy(&hi, masks[j] + CB / 2, sizeof(hi));                  \
            for (int64_t p = 0; p < n; p++) {                                                               \
                hout[2 * (j * n + p)] = __builtin_shuffle(hin[2 * p], hin[2 * p + 1], lo);                  \
                hout[2 * (j * n + p) + 1] = __builtin_shuffle(hin[2 * p], hin[2 * p + 1], hi);              \
            }                                                                                               \
        }                                                                                                   \
        return;                                                                                             \
    }                                                                                                       \
    for (int64_t j = 0; j < w; j++) {                                                                       \
        const M mask = *(const M *)masks[j];                                                                \
        for (int64_t p = 0; p < n; p++) out[j * n + p] = PERMUTE(in[p], mask);                              \
    }                                                                                                       \
}                                                                                                            \
                                                                                                             \
                                                                                                             \
static inline __attribute__((always_inline)) void forward_rows_##SUFFIX(                                   \
        const dw_geometry *g, const T *buffers, int64_t width, const T *w, const T *bias,                   \
        const int64_t *offsets, int64_t taps, T *out) {                                                     \
    if (HALF_LANES(T))                                                                                      \
        forward_rows_##SUFFIX##_half(g, buffers, width, w, bias, offsets, taps, out);                       \
    else                                                                                                    \
        forward_rows_##SUFFIX##_wide(g, buffers, width, w, bias, offsets, taps, out);                       \
}                                                                                                            \
                                                                                                             \
/* The forward of one unit: depthwise straight from the buffer; groups from its rotations in scratch, or by   \
   broadcasts where the weights come BY_INPUT (weight_block_). */                                             \
CLONES static void forward_unit_##SUFFIX(const dw_geometry *g, const T *buf, const T *w, const T *bias,     \
                                         const int64_t *offsets, int64_t taps, int layout, T *out, T *scratch) { \
    const int64_t width = g->group_width;                                                                   \
    if (width == 1) {                                                                                       \
        forward_rows_##SUFFIX(g, buf, 1, w, bias, offsets, taps, out);                                      \
        return;                                                                                             \
    }                                                                                                       \
    if (layout == BY_INPUT) {                                                                                 \
        forward_broadcast_##SUFFIX##_half(g, buf, w, bias, offsets, taps, out);                               \
        return;                                                                                             \
    }                                                                                                       \
    I rot[CB][CB], back[CB][CB];                                                                            \
    rotations_##SUFFIX(width, rot, back);                                                                   \
    rotate_all_##SUFFIX(buf, span(g, 0) * span(g, 1) * span(g, 2), width, rot, scratch);                    \
    forward_rows_##SUFFIX(g, scratch, width, w, bias, offsets, taps, out);                                  \
}                                                                                                            \
                                                                                                             \
/* The gradients of one grouped unit: by broadcasts where the weights come BY_OUTPUT (grad_w then gathers     \
   [K][CB][CB] by input lane), else from the rotations of the inputs, the output gradients and the weights    \
   in scratch (grad_w by rotation, as the weights). */                                                        \
CLONES static void backward_grouped_unit_##SUFFIX(const dw_geometry *g, const T *buf, const T *grad,        \
                                                  const T *w, const int64_t *offsets, int64_t taps, int layout, \
                                                  T *grad_buf, T *grad_w, T *scratch) {                     \
    typedef T V __attribute__((vector_size(CB * sizeof(T))));                                               \
    typedef I M __attribute__((vector_size(CB * sizeof(T))));                                               \
    if (layout == BY_OUTPUT) {                                                                                \
        broadcast_grads_##SUFFIX##_half(g, buf, grad, w, offsets, taps, grad_buf, grad_w);                    \
        return;                                                                                               \
    }                                                                                                         \
    I rot[CB][CB], back[CB][CB];                                                                              \
    const int64_t width = g->group_width, cells = span(g, 0) * span(g, 1) * span(g, 2);                       \
    const int64_t nodes = g->out[0] * g->out[1] * g->out[2];                                                  \
    rotations_##SUFFIX(width, rot, back);                                                                   \
    V *in = (V *)scratch, *go_back = in + width * cells, *w_back = go_back + width * nodes;                \
    if (grad_w) rotate_all_##SUFFIX(buf, cells, width, rot, (T *)in);       /* the inputs, as read */      \
    if (grad_buf) {                                          /* output gradients and weights, sent back */ \
        rotate_all_##SUFFIX(grad, nodes, width, back, (T *)go_back);                                        \
        for (int64_t t = 0; t < taps; t++)                                                                  \
            for (int64_t j = 0; j < width; j++)                                                             \
                w_back[t * width + j] = PERMUTE(((const V *)w)[t * width + j], *(const M *)back[j]);        \
    }                                                                                                       \
    if (HALF_LANES(T))                                                                                       \
        grouped_grads_##SUFFIX##_half(g, grad, (T *)in, (T *)go_back, (T *)w_back, offsets, taps, grad_buf, grad_w); \
    else                                                                                                     \
        grouped_grads_##SUFFIX##_wide(g, grad, (T *)in, (T *)go_back, (T *)w_back, offsets, taps, grad_buf, grad_w); \
}                                                                                                            \
                                                                                                             \
/* The layout of the weights a call's units read: broadcasts for groups as wide as a block on 8-lane          \
   vectors (forward: BY_INPUT, backward: BY_OUTPUT), else ROTATED. */                                         \
static int unit_layout_##SUFFIX(const dw_geometry *g, int by) {                                               \
    return g->group_width == CB && HALF_LANES(T) ? by : ROTATED;                                              \
}                                                                                                             \
                                                                                                             \
/* Weights [C][w][K] (w = group_width) of channels [c0, c0 + cb) as the units read them, [K][w][CB]           \
   ROTATED (wb[t][j][o] = W[o][(o + j) mod w][t]; plain [K][CB] for depthwise), [K][w][CB] BY_INPUT           \
   (W[o][i][t] at [t][i][o]) or [K][CB][w] BY_OUTPUT (at [t][o][i]); and bias [C] as bb [CB]. Zeros           \
   beyond cb. */                                                                                              \
static void weight_block_##SUFFIX(const T *w, const T *bias, int64_t taps, int64_t width, int64_t c0,       \
                                  int64_t cb, int layout, T *wb, T *bb) {                                     \
    memset(wb, 0, sizeof(T) * taps * width * CB);                                                           \
    memset(bb, 0, sizeof(T) * CB);                                                                          \
    for (int64_t t = 0; t < taps; t++)                                                                      \
        for (int64_t j = 0; j < width; j++)                                                                 \
            for (int64_t o = 0; o < cb; o++) {                                                                \
                const int64_t i = layout == ROTATED ? (o % width + j) % width : j;                            \
                wb[layout == BY_OUTPUT ? (t * CB + o) * width + j : (t * width + j) * CB + o] =               \
                    w[((c0 + o) * width + i) * taps + t];                                                     \
            }                                                                                                 \
    if (bias)                                                                                               \
        for (int64_t o = 0; o < cb; o++) bb[o] = bias[c0 + o];                                              \
}                                                                                                             \
                                                                                                             \
/* Every block's weights (weight_block_) for one call: [blocks][K w CB + CB], or NULL when out of memory. */  \
static T *weight_blocks_##SUFFIX(const dw_geometry *g, const T *w, const T *bias, int64_t taps, int layout) { \
    const int64_t width = g->group_width, blocks = (g->channels + CB - 1) / CB, each = (taps * width + 1) * CB; \
    T *packed = alloc_aligned(sizeof(T) * blocks * each);                                                     \
    for (int64_t k = 0; packed && k < blocks; k++) {                                                          \
        const int64_t cb = g->channels - k * CB < CB ? g->channels - k * CB : CB;                             \
        weight_block_##SUFFIX(w, bias, taps, width, k * CB, cb, layout, packed + k * each,                    \
                              packed + k * each + taps * width * CB);                                         \
    }                                                                                                         \
    return packed;                                                                                            \
}                                                                                                            \
                                                                                                             \
/* y = conv(x, w) + bias. x: input nodes, w [C][w][K], bias [C] or NULL, y: output nodes. 0 on success,     \
   1 when out of memory, 2 for a group width that does not divide CB. */                                    \
int gridgnn_grouped_forward_##SUFFIX(const dw_geometry *g, const T *x, const T *w, const T *bias, T *y) { \
    const int64_t width = g->group_width;                                                                   \
    if (width < 1 || CB % width) return 2;                                                                  \
    if (width == 1 && g->channels_last) return direct_forward_##SUFFIX(g, x, w, bias, y);                   \
    if (g->shifted && row_applies(g, sizeof(T), 1)) return row_conv_##SUFFIX(g, 1, x, w, bias, y);          \
    if (g->shifted && plane_applies(g)) return plane_conv_##SUFFIX(g, 1, x, w, bias, y);                    \
    const int64_t blocks = (g->channels + CB - 1) / CB, units = g->batch * blocks;                        \
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2];                                       \
    const int64_t buffered = span(g, 0) * span(g, 1) * span(g, 2) * CB;                                    \
    const int64_t out_pixels = g->out[0] * g->out[1] * g->out[2];                                          \
    const int layout = unit_layout_##SUFFIX(g, BY_INPUT);                                                     \
    T *packed = weight_blocks_##SUFFIX(g, w, bias, taps, layout);                                             \
    if (!packed) return 1;                                                                                    \
    int failed = 0;                                                                                         \
    _Pragma("omp parallel num_threads(g->threads) reduction(|:failed)")                                     \
    {                                                                                                       \
        const int64_t scratch = width > 1 && layout == ROTATED ? width * buffered : 0;    /* the rotations */ \
        T *buf = alloc_aligned(sizeof(T) * (buffered + out_pixels * CB + scratch));                           \
        int64_t *offsets = malloc(sizeof(int64_t) * taps);                                                  \
        if (!buf || !offsets) failed = 1;                                                                     \
        else tap_offsets_##SUFFIX(g, offsets);                                                                \
        _Pragma("omp for schedule(static)")                                                                 \
        for (int64_t u = 0; u < units; u++) {                                                               \
            if (failed) continue;                                                                           \
            const int64_t b = u / blocks, block = u % blocks, c0 = block * CB;                                \
            const int64_t cb = g->channels - c0 < CB ? g->channels - c0 : CB;                               \
            const T *wb = packed + block * (taps * width + 1) * CB, *bb = wb + taps * width * CB;             \
            T *out = buf + buffered;                                                                          \
            load_##SUFFIX(g, x, b, c0, cb, buf);                                                            \
            forward_unit_##SUFFIX(g, buf, wb, bb, offsets, taps, layout, out, out + out_pixels * CB);         \
            store_##SUFFIX(g, out, out_pixels, b, c0, cb, y);                                               \
        }                                                                                                   \
        free(buf);                                                                                          \
        free(offsets);                                                                                      \
    }                                                                                                       \
    free(packed);                                                                                             \
    return failed;                                                                                          \
}                                                                                                            \
                                                                                                             \
/* grad_x (input nodes, or NULL) and grad_w ([C][w][K], or NULL) of y = conv(x, w), from grad_y. */             \
int gridgnn_grouped_backward_##SUFFIX(const dw_geometry *g, const T *x, const T *w, const T *grad_y,       \
                                        T *grad_x, T *grad_w) {                                             \
    const int64_t width = g->group_width;                                                                   \
    if (width < 1 || CB % width) return 2;                                                                  \
    if (width == 1 && g->channels_last) return direct_backward_##SUFFIX(g, x, w, grad_y, grad_x, grad_w);   \
    if (g->shifted && plane_applies(g)) return plane_backward_##SUFFIX(g, x, w, grad_y, grad_x, grad_w);    \
    const int64_t blocks = (g->channels + CB - 1) / CB, units = g->batch * blocks;                        \
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2];                                       \
    const int64_t sd = span(g, 0), sh = span(g, 1), sw = span(g, 2), buffered = sd * sh * sw * CB;         \
    const int64_t out_pixels = g->out[0] * g->out[1] * g->out[2];                                          \
    const int64_t in_pixels = g->in[0] * g->in[1] * g->in[2];                                              \
    const int64_t weights = taps * width * blocks * CB;                                                             \
    const int threads = (int)g->threads, layout = unit_layout_##SUFFIX(g, BY_OUTPUT);                         \
    int failed = 0;                                                                                         \
    T *packed = weight_blocks_##SUFFIX(g, w, NULL, taps, layout);                                             \
    T *grad_w_parts = grad_w ? alloc_aligned(sizeof(T) * threads * weights) : NULL;                        \
    if (!packed || (grad_w && !grad_w_parts)) {                                                               \
        free(packed);                                                                                         \
        free(grad_w_parts);                                                                                   \
        return 1;                                                                                             \
    }                                                                                                         \
    if (grad_w_parts) memset(grad_w_parts, 0, sizeof(T) * threads * weights);                               \
    _Pragma("omp parallel num_threads(threads) reduction(|:failed)")                                        \
    {                                                                                                       \
        const int rank = omp_get_thread_num();                                                              \
        const int64_t scratch = width > 1 && layout == ROTATED ? width * (buffered + (out_pixels + taps) * CB) : 0; \
        T *buf = alloc_aligned(sizeof(T) * (2 * buffered + (out_pixels + in_pixels) * CB + scratch));         \
        int64_t *offsets = malloc(sizeof(int64_t) * taps);                                                  \
        if (!buf || !offsets) failed = 1;                                                                     \
        else tap_offsets_##SUFFIX(g, offsets);                                                                \
        _Pragma("omp for schedule(static)")                                                                 \
        for (int64_t u = 0; u < units; u++) {                                                               \
            if (failed) continue;                                                                           \
            const int64_t b = u / blocks, block = u % blocks, c0 = block * CB;                              \
            const int64_t cb = g->channels - c0 < CB ? g->channels - c0 : CB;                               \
            const T *wb = packed + block * (taps * width + 1) * CB;                                           \
            T *grad_buf = buf + buffered, *go = grad_buf + buffered, *gi = go + out_pixels * CB;            \
            T *gw = grad_w ? grad_w_parts + rank * weights + block * taps * width * CB : NULL;              \
            if (grad_w) load_##SUFFIX(g, x, b, c0, cb, buf);                                                \
            if (grad_x) memset(grad_buf, 0, sizeof(T) * buffered);                                          \
            gather_##SUFFIX(g, grad_y, out_pixels, b, c0, cb, go);                                          \
            if (width == 1)                                                                                 \
                backward_unit_##SUFFIX(g, buf, go, wb, offsets, taps, grad_x ? grad_buf : NULL, gw);        \
            else                                                                                            \
                backward_grouped_unit_##SUFFIX(g, buf, go, wb, offsets, taps, layout, grad_x ? grad_buf : NULL, \
                                               gw, gi + in_pixels * CB);                                      \
            if (grad_x) {                                                                                   \
                /* the input nodes' gradient: the buffer's inner box, zeros where no edge reached */        \
                for (int64_t iz = 0; iz < g->in[0]; iz++)                                                   \
                    for (int64_t iy = 0; iy < g->in[1]; iy++)                                               \
                        for (int64_t ix = 0; ix < g->in[2]; ix++) {                                         \
                            const int64_t z = iz + g->pad[0], yy = iy + g->pad[1], xx = ix + g->pad[2];     \
                            T *dst = gi + ((iz * g->in[1] + iy) * g->in[2] + ix) * CB;                      \
                            if (z < sd && yy < sh && xx < sw)                                               \
                                memcpy(dst, grad_buf + ((z * sh + yy) * sw + xx) * CB, sizeof(T) * CB);     \
                            else                                                                            \
                                memset(dst, 0, sizeof(T) * CB);                                             \
                        }                                                                                   \
                store_##SUFFIX(g, gi, in_pixels, b, c0, cb, grad_x);                                        \
            }                                                                                               \
        }                                                                                                   \
        free(buf);                                                                                          \
        free(offsets);                                                                                      \
    }                                                                                                       \
    if (grad_w_parts) {                                                                                     \
        for (int64_t c = 0; c < g->channels; c++)                                                           \
            for (int64_t i = 0; i < width; i++)                                                             \
                for (int64_t t = 0; t < taps; t++) {                                                        \
                    const int64_t j = layout == ROTATED ? (i - c % width + width) % width : i;  /* input i's slot */ \
                    const int64_t at = ((c / CB) * taps * width + t * width + j) * CB + c % CB;             \
                    T total = 0;                                                                            \
                    for (int r = 0; r < threads; r++) total += grad_w_parts[r * weights + at];              \
                    grad_w[(c * width + i) * taps + t] = total;                                             \
                }                                                                                           \
        free(grad_w_parts);                                                                                 \
    }                                                                                                       \
    free(packed);                                                                                             \
    return failed;                                                                                          \
}

#define T float
#define SUFFIX f32
#define I int32_t
#define UI uint32_t
#include "_native_rows.h"
#include "_native_planes.h"
#undef T
#undef SUFFIX
#undef I
#undef UI
#define T double
#define SUFFIX f64
#define I int64_t
#define UI uint64_t
#include "_native_rows.h"
#include "_native_planes.h"
#undef T
#undef SUFFIX
#undef I
#undef UI

DEFINE_DIRECT(float, f32)
DEFINE_KERNELS(float, f32, int32_t)
DEFINE_DIRECT(double, f64)
DEFINE_KERNELS(double, f64, int64_t)
