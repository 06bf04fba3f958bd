/* run: `sluice run`, the offline batch job as one command: the requests of a
 * file go through tokenize | infer-cpu | detokenize (a libpipeline pipeline),
 * fed and read by this process, which counts them for a progress line and
 * writes one result per request. */
#ifndef SLUICE_RUN_H
#define SLUICE_RUN_H

#include <stdint.h>

/* Which engine program runs the requests. */
enum { RUN_AUTO, RUN_CPU, RUN_GPU };

typedef struct run_opts {
	const char *model;      /* NULL: fetch_model_path() */
	const char *input;      /* a file, or "-" / NULL: stdin */
	int device;             /* RUN_*; AUTO: infer-gpu if found and a GPU is there */
	int in;                 /* STREAM_*; AUTO: by the first byte that is not white space */
	int out;                /* STREAM_TEXT, _JSON or _MSGPACK; AUTO: text on a terminal, else JSON */
	int progress;           /* 1 always, 0 never, -1 when stderr is a terminal */
	int chat;               /* text lines become one user message, not a prompt */
	unsigned threads;       /* the engine's -t; 0: its default */
	int64_t max_tokens;     /* for requests that give none; -1: the engine's default */
	int has_temperature;
	double temperature;     /* for requests that give none (with has_temperature) */
	int has_seed;
	uint64_t seed;          /* for requests that give none (with has_seed) */
} run_opts;
#define RUN_OPTS_DEFAULT {0, 0, RUN_AUTO, 0, 0, -1, 0, 0, -1, 0, 0.0, 0, 0}

/* The whole job; returns the exit status: 0, the worst stage's exit status,
 * 111 when a stage was killed by a signal or the input could not be read,
 * 127 when a program is not found. */
int run_main(const run_opts *o);

#endif
