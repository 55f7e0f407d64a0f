/*
 * gridgnn's native dense grid conv (groups = 1, stride 1): y = conv(x, W) + b on complete 1-D/2-D/3-D
 * grids (CPU, float32, OpenMP). gridgnn/nn/_native.py calls it only where torch reports AVX-512.
 *
 * Node-wise, y_i = b + sum_t W_t x_{i + off_t}. The input comes padded, [B][P0][P1][P2][C_in] (channels
 * innermost, the padding already in place), so the source of output node i's message of offset t is
 * the padded node off_t further on and no bound is ever tested. A work item is a tile of RB consecutive
 * output nodes (rows and images run on into each other, so short rows fill whole tiles) and one block
 * of 64 output channels; it holds the tile's RB x 64 sums in registers (24 AVX-512 vectors) while every
 * offset t and input channel c adds x_{i + off_t}[c] (one broadcast) times row c of W_t (4 vectors):
 * RB x 4 FMAs per 4 + RB loads. The threads run the tiles of one block at a time, sharing its weights
 * in cache.
 * Weights come packed [C_out / 64][K][C_in][64] (zeros beyond C_out), the bias as [C_out / 64 * 64]
 * (or NULL); the output is [B][S0][S1][S2][C_out] or, for an NCHW image's nodes, [B][C_out][S0][S1][S2]
 * (each tile's sums stored to their channel planes), C_out a multiple of 16. The backward is made of
 * this same forward (gridgnn/nn/_dense.py).
 *
 * Loaded by ctypes (gridgnn/nn/_native.py), beside the kernel of _native_grouped.c.
 */
#include <stdint.h>
#include <stdlib.h>

#define LANES 16  /* floats a vector */
#define NV 4      /* vectors of output channels a tile: a block of 64 channels */
#define RB 6      /* output nodes a tile */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define CLONES
#endif

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

/* The geometry of one call, in the order gridgnn/nn/_native.py fills it. Missing axes have size 1. */
typedef struct {
    int64_t batch, c_in, c_out;
    int64_t padded[3], out[3], kernel[3], dilation[3];
    int64_t channels_last; /* the output: 1: [B, *S, C_out] contiguous; 0: [B, C_out, *S] contiguous */
    int64_t threads;
} dense_geometry;

/* N output nodes (N a constant in each expansion, so the sums stay in registers): out[r][0 : 16 vectors)
   = bias + sum_t sum_c src[r][off_t + c] w_t[c], src[r] the padded input at node r's window corner. */
#define TILE(N)                                                                                             \
    {                                                                                                       \
        vec acc[N][NV];                                                                                     \
        _Pragma("GCC unroll 8") for (int r = 0; r < N; r++)                                                 \
            _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) acc[r][j] = bias[j];                       \
        for (int64_t t = 0; t < taps; t++) {                                                                \
            const float *s[N];                                                                              \
            _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) s[r] = src[r] + offsets[t];                 \
            const vec *wt = w + t * c_in * NV;                                                              \
            for (int64_t c = 0; c < c_in; c++) {                                                            \
                vec wc[NV];                                                                                 \
                _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) wc[j] = wt[c * NV + j];                \
                _Pragma("GCC unroll 8") for (int r = 0; r < N; r++) {                                       \
                    const float xv = s[r][c];                                                               \
                    _Pragma("GCC unroll 4") for (int j = 0; j < NV; j++) acc[r][j] += xv * wc[j];           \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        if (channel_stride == 1)                                                                            \
            _Pragma("GCC unroll 8") for (int r = 0; r < N; r++)                                             \
                for (int64_t j = 0; j < vectors; j++)                                                       \
                    __builtin_memcpy(dst[r] + j * LANES, &acc[r][j], sizeof(vec));                          \
        else                                          /* channel-major output: each value to its plane */   \
            _Pragma("GCC unroll 8") for (int r = 0; r < N; r++)                                             \
                for (int64_t j = 0; j < vectors; j++)                                                       \
                    for (int l = 0; l < LANES; l++) dst[r][(j * LANES + l) * channel_stride] = acc[r][j][l];\
    }

static inline __attribute__((always_inline)) void tile(const float *const *src, int64_t c_in,
                                                       const int64_t *offsets, int64_t taps, const vec *w,
                                                       const vec *bias, float *const *dst,
                                                       int64_t channel_stride, int64_t vectors, int64_t n) {
    switch (n) {
    case 6: TILE(6) break;
    case 5: TILE(5) break;
    case 4: TILE(4) break;
    case 3: TILE(3) break;
    case 2: TILE(2) break;
    default: TILE(1)
    }
}

/* y = conv(x, w) + bias, as the header says. 0 on success, 1 when out of memory. */
CLONES int gridgnn_dense_forward_f32(const dense_geometry *g, const float *x, const float *w, const float *bias,
                                     float *y) {
    const int64_t taps = g->kernel[0] * g->kernel[1] * g->kernel[2], c_in = g->c_in, c_out = g->c_out;
    const int64_t blocks = (c_out + NV * LANES - 1) / (NV * LANES);
    int64_t *offsets = malloc(sizeof(int64_t) * taps);  /* of every kernel offset's source, row-major */
    if (!offsets) return 1;
    int64_t k = 0;
    for (int64_t a = 0; a < g->kernel[0]; a++)
        for (int64_t b = 0; b < g->kernel[1]; b++)
            for (int64_t e = 0; e < g->kernel[2]; e++)
                offsets[k++] = ((a * g->dilation[0] * g->padded[1] + b * g->dilation[1]) * g->padded[2]
                                + e * g->dilation[2]) * c_in;
    const vec zeros[NV] = {{0}};
    const int64_t pixels = g->out[0] * g->out[1] * g->out[2], nodes = g->batch * pixels;
    const int64_t tiles = (nodes + RB - 1) / RB;
    _Pragma("omp parallel num_threads(g->threads)")
    for (int64_t block = 0; block < blocks; block++) {      /* the threads share a block's weights in cache */
        const vec *wb = (const vec *)w + block * taps * c_in * NV;
        const vec *bb = bias ? (const vec *)bias + block * NV : zeros;
        const int64_t left = c_out / LANES - block * NV, vectors = left < NV ? left : NV;
        _Pragma("omp for schedule(static)")
        for (int64_t i = 0; i < tiles; i++) {                /* RB consecutive output nodes, across rows too */
            const int64_t first = i * RB, n = nodes - first < RB ? nodes - first : RB;
            const float *src[RB];
            float *dst[RB];                                  /* where node r's channel block * 64 goes */
            for (int64_t r = 0; r < n; r++) {
                const int64_t p = first + r, b = p / pixels, q = p % pixels;
                const int64_t z = q / (g->out[1] * g->out[2]), yy = q / g->out[2] % g->out[1], xx = q % g->out[2];
                src[r] = x + (((b * g->padded[0] + z) * g->padded[1] + yy) * g->padded[2] + xx) * c_in;
                dst[r] = g->channels_last ? y + p * c_out + block * NV * LANES
                                          : y + (b * c_out + block * NV * LANES) * pixels + q;
            }
            tile(src, c_in, offsets, taps, wb, bb, dst, g->channels_last ? 1 : pixels, vectors, n);
        }
    }
    free(offsets);
    return 0;
}
