/*
 * 16 x 16 tile transposes in vector registers and the CPU variants, shared by gridgnn's native kernels
 * (_native_grouped.c, _native_dense.c). GCC's __builtin_shuffle does the transposes; elsewhere
 * TRANSPOSE_IN_REGISTERS stays undefined and the kernels copy element by element.
 */
#ifndef GRIDGNN_NATIVE_TRANSPOSE_H
#define GRIDGNN_NATIVE_TRANSPOSE_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define TRANSPOSE_IN_REGISTERS 1
#endif

/* The kernels' CPU variants, one picked when the library loads: AVX-512, AVX2 (x86-64-v3: AVX2 with FMA;
   a plain "avx2" clone multiplies and adds apart) and the generic build. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 12
#define CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#elif defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

/* Whether a kernel's float vectors of 16 lanes go as two halves of 8 on this CPU: without AVX-512 (AVX2
   has 16 registers of 8 floats), GCC spills 16-lane sums and moves 16-lane shuffles lane by lane through
   the stack. Asked inside the kernels' target clones, which run after the CPU check is made. */
#define HALF_LANES(T) (sizeof(T) == 4 && !__builtin_cpu_supports("avx512f"))

#ifdef TRANSPOSE_IN_REGISTERS
/* An 8 x 8 float tile in eight 8-lane vectors: three stages of the shuffles that AVX has as single
   instructions (unpack, shufps, perm2f128); GCC's 16-lane shuffles below, where a vector is two AVX2
   registers, become lane-by-lane moves through the stack (perf put 35% of an NCHW depthwise call on an
   AVX2 host in them). */
typedef float half_f32 __attribute__((vector_size(8 * sizeof(float))));
static inline void transpose8_f32(half_f32 r[8]) {
    typedef int32_t mask __attribute__((vector_size(8 * sizeof(int32_t))));
    static const mask unpack_lo = {0, 8, 1, 9, 4, 12, 5, 13}, unpack_hi = {2, 10, 3, 11, 6, 14, 7, 15};
    static const mask pairs_lo = {0, 1, 8, 9, 4, 5, 12, 13}, pairs_hi = {2, 3, 10, 11, 6, 7, 14, 15};
    static const mask halves_lo = {0, 1, 2, 3, 8, 9, 10, 11}, halves_hi = {4, 5, 6, 7, 12, 13, 14, 15};
    half_f32 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {                     /* t[i], t[i+1]: rows i, i+1 interleaved */
        t[i] = __builtin_shuffle(r[i], r[i + 1], unpack_lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], unpack_hi);
    }
    for (int i = 0; i < 8; i += 4)                       /* s[i + c]: column c (and c + 4) of rows i..i+3 */
        for (int k = 0; k < 2; k++) {
            s[i + 2 * k] = __builtin_shuffle(t[i + k], t[i + k + 2], pairs_lo);
            s[i + 2 * k + 1] = __builtin_shuffle(t[i + k], t[i + k + 2], pairs_hi);
        }
    for (int c = 0; c < 4; c++) {                        /* columns c and c + 4 of all eight rows */
        r[c] = __builtin_shuffle(s[c], s[c + 4], halves_lo);
        r[c + 4] = __builtin_shuffle(s[c], s[c + 4], halves_hi);
    }
}

/* dst row i (i < dst_rows, at dst + i * dst_stride) = column i of the 8 x 8 tile whose row r is the 8 floats at
   src + r * src_stride (zeros for r >= src_rows): a transposing copy of 8 loads, 24 shuffles and 8 stores. */
static inline void transpose8_copy_f32(const float *src, int64_t src_stride, int64_t src_rows, float *dst,
                                       int64_t dst_stride, int64_t dst_rows) {
    half_f32 r[8];
    for (int i = 0; i < 8; i++)
        if (i < src_rows) memcpy(&r[i], src + i * src_stride, sizeof(half_f32));
        else r[i] = (half_f32){0};
    transpose8_f32(r);
    for (int i = 0; i < 8 && i < dst_rows; i++) memcpy(dst + i * dst_stride, &r[i], sizeof(half_f32));
}

/* A 16 x 16 float tile as four 8 x 8 ones: row block a, column half h goes to row block h, half a. */
static inline void transpose16_by_halves_f32(void *tile) {
    float(*rows)[16] = tile;
    half_f32 h[2][2][8];                                 /* [row block][column half][row in block] */
    for (int i = 0; i < 16; i++)
        for (int k = 0; k < 2; k++) memcpy(&h[i / 8][k][i % 8], rows[i] + 8 * k, sizeof(half_f32));
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 2; k++) transpose8_f32(h[a][k]);
    for (int j = 0; j < 16; j++)
        for (int a = 0; a < 2; a++) memcpy(rows[j] + 8 * a, &h[a][j / 8][j % 8], sizeof(half_f32));
}

/* transpose_SUFFIX for vec_SUFFIX, a vector of 16 T (I: the integer of T's width). Channel-major tiles of
   16 nodes: 16 rows (one a channel) in, 16 node vectors out, and back. */
#define DEFINE_TRANSPOSE(T, SUFFIX, I)                                                                      \
/* r[i][k] <- r[k][i] for a 16 x 16 tile: log2(16) stages of two-vector shuffles swapping (i, k) and        \
   (i ^ s, k ^ s) where bit s of i is clear and that of k is set. */                                        \
static inline void transpose_##SUFFIX(vec_##SUFFIX r[16]) {                                                 \
    if (HALF_LANES(T)) {                                                                                    \
        vec_##SUFFIX tile[16];                 /* (r's own address kept out of it: r stays in registers) */   \
        for (int i = 0; i < 16; i++) tile[i] = r[i];                                                        \
        transpose16_by_halves_f32(tile);                                                                    \
        for (int i = 0; i < 16; i++) r[i] = tile[i];                                                        \
        return;                                                                                             \
    }                                                                                                       \
    typedef I mask __attribute__((vector_size(16 * sizeof(T))));                                            \
    static const mask low[4] = {                                                                            \
        {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},                                           \
        {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},                                         \
        {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},                                         \
        {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30}};                                       \
    static const mask high[4] = {                                                                           \
        {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},                                     \
        {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},                                       \
        {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},                                       \
        {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31}};                                       \
    for (int stage = 0, s = 8; s > 0; stage++, s /= 2)                                                      \
        for (int i = 0; i < 16; i++)                                                                        \
            if (!(i & s)) {                                                                                 \
                const vec_##SUFFIX a = r[i], b = r[i + s];                                                  \
                r[i] = __builtin_shuffle(a, b, low[stage]);                                                 \
                r[i + s] = __builtin_shuffle(a, b, high[stage]);                                            \
            }                                                                                               \
}
#else
#define DEFINE_TRANSPOSE(T, SUFFIX, I)
#endif

#endif
