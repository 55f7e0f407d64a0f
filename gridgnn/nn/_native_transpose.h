/*
 * 16 x 16 tile transposes in vector registers, shared by gridgnn's native kernels (_native_grouped.c,
 * _native_dense.c). GCC's __builtin_shuffle does them; elsewhere TRANSPOSE_IN_REGISTERS stays undefined
 * and the kernels copy element by element.
 */
#ifndef GRIDGNN_NATIVE_TRANSPOSE_H
#define GRIDGNN_NATIVE_TRANSPOSE_H

#if defined(__GNUC__) && !defined(__clang__)
#define TRANSPOSE_IN_REGISTERS 1
#endif

#ifdef TRANSPOSE_IN_REGISTERS
/* transpose_SUFFIX for vec_SUFFIX, a vector of 16 T (I: the integer of T's width). Channel-major tiles of
   16 nodes: 16 rows (one a channel) in, 16 node vectors out, and back. */
#define DEFINE_TRANSPOSE(T, SUFFIX, I)                                                                      \
/* r[i][k] <- r[k][i] for a 16 x 16 tile: log2(16) stages of two-vector shuffles swapping (i, k) and        \
   (i ^ s, k ^ s) where bit s of i is clear and that of k is set. */                                        \
static inline void transpose_##SUFFIX(vec_##SUFFIX r[16]) {                                                 \
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
