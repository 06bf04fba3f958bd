/* quantize: the quantize(1) program's library: target types and llama.cpp's
 * quantization mixes (recipes), the per-tensor plan, the streaming loop that
 * converts one tensor at a time on a few threads, and the error report. */
#ifndef SLUICE_QUANTIZE_H
#define SLUICE_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct quantize_opts {
	int type;               /* -t TYPE: every matrix weight this type (llama.cpp's --pure); -1 unset */
	int recipe;             /* -r RECIPE: index from quantize_recipe_from_name; -1 unset */
	int threads;            /* -j: 0 = every online core */
	const char **keep;      /* --keep GLOBs (fnmatch): tensors left as they are */
	size_t n_keep;
	const char *report;     /* --report FILE.json, or NULL */
	int quiet;              /* -q: no progress, no report on stderr */
	int dry_run;            /* -n: print the plan on stdout, write nothing */
	int allow_nonfinite;    /* --allow-nonfinite: NaN/inf weights warned about, not refused */
} quantize_opts;
#define QUANTIZE_OPTS_ZERO { -1, -1, 0, 0, 0, 0, 0, 0, 0 }

/* One tensor's fate. */
typedef struct quantize_item {
	const gguf_tensor *t;
	uint32_t from, to;      /* ggml types */
	uint32_t want;          /* what the recipe asked for, before the block fallback */
	int fallback;           /* 1: ne[0] did not fit want's block, to is the nearest that fits */
	int copy;               /* 1: bytes copied as they are (same type, --keep, not a matrix) */
	int kept;               /* 1: matched --keep */
} quantize_item;

/* -t names ("q4_k", "Q8_0", ...): the ggml type, or -1 (also for ggml
 * types quantize does not make). */
int quantize_type_from_name(const char *name);
/* Recipe names ("q4_k_m", ...): index >= 0, or -1. */
int quantize_recipe_from_name(const char *name);
/* "f32 f16 bf16 q8_0 ..." for usage messages. */
const char *quantize_types_known(void);
const char *quantize_recipes_known(void);

/* Fills it[g->n_tensors] (file order) and *file_type (llama_ftype). 0 ok,
 * -1 with err (a type or recipe that is not known). */
int quantize_plan(const gguf *g, const quantize_opts *o, quantize_item *it,
	uint32_t *file_type, char *err, size_t errlen);

/* The whole program after option parsing: reads in, writes out. Dies with
 * 111 on a bad input or a failed write (no output file, no temporary file
 * left behind); returns 0. */
int quantize_run(const char *in, const char *out, const quantize_opts *o);

#endif
