/* sluice.h: the subcommands of `sluice`, each `cmd_<name>` in its own
 * cmd/sluice-<name>.c (git's builtin.h), dispatched from the table in
 * cmd/sluice.c. argv[0] is the subcommand's name; each returns the exit
 * status. */
#ifndef SLUICE_CMD_H
#define SLUICE_CMD_H

int cmd_cat(int argc, char **argv);     /* cmd/sluice-cat.c */
int cmd_gguf(int argc, char **argv);    /* cmd/sluice-gguf.c */
int cmd_model(int argc, char **argv);   /* cmd/sluice-model.c */
int cmd_run(int argc, char **argv);     /* cmd/sluice-run.c */
int cmd_serve(int argc, char **argv);   /* cmd/sluice-serve.c */

#endif
