/* ggufcmd: `sluice gguf info|tensors|kv FILE`, a GGUF file shown to people:
 * a summary, the tensor table, or the metadata (arrays summarised). */
#ifndef SLUICE_GGUFCMD_H
#define SLUICE_GGUFCMD_H

/* argv[0] is "gguf"; returns the exit status (0 ok, 100 usage, 111 failure:
 * "sluice: fatal: unable to read FILE: <what is wrong>"). */
int ggufcmd_main(int argc, char **argv);

#endif
