/* quant: GGUF weight types: block sizes, F16/BF16 conversions, and
 * dequantize/quantize of one row, bit-exact with ggml's reference (scalar)
 * quantizers for the simple types. The K types (Q4_K, Q6_K) live in
 * lib/quant_k.c and are reached through the same dispatch. */
#ifndef SLUICE_QUANT_H
#define SLUICE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml type ids (the values stored in GGUF tensor infos). */
enum {
	QUANT_F32 = 0,
	QUANT_F16 = 1,
	QUANT_Q4_0 = 2,
	QUANT_Q4_1 = 3,
	QUANT_Q5_0 = 6,
	QUANT_Q5_1 = 7,
	QUANT_Q8_0 = 8,
	QUANT_Q8_1 = 9,
	QUANT_Q4_K = 12,
	QUANT_Q6_K = 14,
	QUANT_Q8_K = 15,
	QUANT_BF16 = 30
};

/* Block geometry (bytes per block of QK elements). */
#define QUANT_QK 32             /* Q4_0 .. Q8_1 */
#define QUANT_QK_K 256          /* K types */

/* 1 if type can be both quantized and dequantized here, else 0. */
int quant_supported(uint32_t type);
/* Bytes of a row of n elements; 0 if the type is unknown or n is not a
 * multiple of its block size. */
size_t quant_row_bytes(uint32_t type, size_t n);
/* Elements per block (1 for F32/F16/BF16); 0 if unknown. */
size_t quant_block_size(uint32_t type);
/* "q4_k", "Q4_K", "f16", "bf16", ... (case-insensitive) -> type id, or -1. */
int quant_type_from_name(const char *name);
/* "Q4_K", ... or "unknown" (gguf_type_name). */
const char *quant_type_name(uint32_t type);

/* Row conversions. n must be a multiple of the type's block size.
 * dequantize: unsupported type or bad n zero-fills dst (never crashes).
 * quantize: 0 ok, -1 unsupported type or bad n (dst untouched).
 * Inputs with NaN or inf: never a crash; what comes out follows ggml's
 * reference arithmetic (garbage in, garbage out, see quant.c). */
void quant_dequantize_row(uint32_t type, const void *src, float *dst, size_t n);
int quant_quantize_row(uint32_t type, const float *src, void *dst, size_t n);

/* Scalar conversions. f32 -> f16: round to nearest even, overflow to inf,
 * subnormals exact, NaN stays a (quiet) NaN. bf16: ggml's rounding (round
 * to nearest even; NaN -> quiet NaN). */
float quant_f16_to_f32(uint16_t h);
uint16_t quant_f32_to_f16(float f);
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f);
void quant_f16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void quant_f32_to_f16_row(const float *src, uint16_t *dst, size_t n);
void quant_bf16_to_f32_row(const uint16_t *src, float *dst, size_t n);
void quant_f32_to_bf16_row(const float *src, uint16_t *dst, size_t n);

/* K types, defined in lib/quant_k.c (same contract as the row functions
 * above; n a multiple of QUANT_QK_K). quant.c dispatches to these. */
void quant_q4_k_dequantize(const void *src, float *dst, size_t n);
int quant_q4_k_quantize(const float *src, void *dst, size_t n);
void quant_q6_k_dequantize(const void *src, float *dst, size_t n);
int quant_q6_k_quantize(const float *src, void *dst, size_t n);

#endif
