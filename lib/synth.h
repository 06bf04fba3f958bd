/* synth: `sluice model synth`, a small llama-architecture GGUF with seeded
 * random weights and a real tokenizer (copied from a GGUF, or a tiny built-in
 * byte-level BPE one), for tests that need a model of a chosen shape. */
#ifndef SLUICE_SYNTH_H
#define SLUICE_SYNTH_H

/* argv[0] is "synth"; returns the exit status (0 ok, 100 usage, 111 failure). */
int synth_main(int argc, char **argv);

#endif
