/* cat: `sluice cat`, msgpack streams for people: msgpack <-> JSON lines,
 * and a client that sends a stream to an endpoint and prints the answers. */
#ifndef SLUICE_CAT_H
#define SLUICE_CAT_H

/* `sluice cat [-j|-m] [-i json|msgpack] [-u ENDPOINT] [-t MS]` with argv[0]
 * "cat": returns the exit status (0 ok, 1 something was skipped or left
 * unanswered, 99 -t ran out, 100 usage, 111 lost framing or I/O failure). */
int cat_main(int argc, char **argv);

#endif
