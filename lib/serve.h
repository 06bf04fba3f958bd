/* serve: `sluice serve`, a model served over HTTP by a tree of sluice's own
 * daemons (engines, batchd or route, gateway, metrics), either supervised
 * here in the foreground or written out as an s6, supervisord or systemd
 * tree. One list of services and their command lines feeds both. */
#ifndef SLUICE_SERVE_H
#define SLUICE_SERVE_H

/* The whole subcommand: options in argv (argv[0] is "serve"); the exit status. */
int serve_main(int argc, char **argv);

#endif
