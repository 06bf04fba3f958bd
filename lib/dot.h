/* dot: the engine's matrix products on GGUF weight types. Activations are
 * quantized the way ggml quantizes them (Q8_0, Q8_1, Q8_K blocks) and
 * multiplied against the quantized weights with integer dot products:
 * AVX-512 or AVX2 kernels chosen at run time, with a scalar twin that gives
 * the same integer sums. lib/quant is the reference these are tested against. */
#ifndef SLUICE_DOT_H
#define SLUICE_DOT_H

#include <stddef.h>
#include <stdint.h>

/* The format activations take to meet a weight type (a QUANT_* id):
 * Q4_0, Q8_0 -> Q8_0; Q4_1 -> Q8_1; Q4_K, Q6_K -> Q8_K; F32, F16, BF16 -> F32;
 * (uint32_t)-1 for a weight type the engine cannot multiply. */
uint32_t dot_act_type(uint32_t wtype);
/* Bytes of one activation row of n values in that format; 0 if n does not
 * fit the block size or the type is unknown. */
size_t dot_act_bytes(uint32_t wtype, size_t n);
/* Converts one row of n floats into that format (for F32 a copy). */
void dot_quantize_act(uint32_t wtype, const float *x, void *dst, size_t n);

/* The product of rows [r0, r1) of a weight matrix with nb activation rows:
 *   y[b*ldy + r] = sum_k W[r][k] * x_b[k]     r0 <= r < r1, 0 <= b < nb
 * W holds rows of quant_row_bytes(wtype, n) bytes one after another (row r
 * at W + r*row_bytes); x_b starts at xq + b*xq_stride and was made by
 * dot_quantize_act(wtype, ...). Threads call this on disjoint row ranges
 * of the same matrix at once; it keeps no shared state.
 * Nearly all of the engine's time is spent here. */
void dot_rows(uint32_t wtype, const void *W, size_t r0, size_t r1, size_t n,
	      const void *xq, size_t xq_stride, size_t nb, float *y, size_t ldy);

/* The kernel paths, each a superset of the one before: plain C; AVX2 with
 * FMA and F16C; AVX-512 (F, BW, VL and VNNI) besides. Every path gives
 * the same bits as AVX2 for every weight type (the scalar one the same
 * integer sums, its floats added in another order). The best path the CPU
 * has is used, unless SLUICE_ISA (scalar, avx2, avx512) in the
 * environment names one it has, or SLUICE_SCALAR is set and not "0". */
enum { DOT_SCALAR, DOT_AVX2, DOT_AVX512 };
int dot_isa(void);                      /* the path in use now */
int dot_isa_max(void);                  /* the best path this CPU runs */
/* Forces a path for all threads (-1: back to the default); -1 when the
 * CPU lacks it. */
int dot_set_isa(int isa);
const char *dot_isa_name(int isa);      /* "scalar", "AVX2", "AVX-512" */
int dot_isa_parse(const char *s);       /* "scalar", "avx2", "avx512"; else -1 */

/* dot_isa() >= DOT_AVX2; dot_force_scalar(1) is dot_set_isa(DOT_SCALAR),
 * (0) dot_set_isa(-1) */
int dot_simd(void);
void dot_force_scalar(int on);

#endif
