/* cat: `sluice cat`, msgpack streams for people: msgpack <-> JSON lines,
 * and a client that sends a stream to an endpoint and prints the answers. */
#ifndef SLUICE_CAT_H
#define SLUICE_CAT_H

/* `sluice cat [-j|-m] [-u ENDPOINT]`: returns the exit status. */
int cat_main(int argc, char **argv);

#endif
