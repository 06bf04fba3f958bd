/* maxrss: `maxrss CMD [ARG...]` runs CMD and then prints "maxrss KB" (its
 * peak resident memory, from wait4) on stderr; exits as CMD did (128+N for
 * a signal). A tiny parent, so that its own pages do not count. */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "die.h"

int
main(int argc, char **argv)
{
	struct rusage ru;
	int st;
	pid_t pid;

	die_init("maxrss");
	if (argc < 2)
		die_usage("maxrss cmd [arg...]");
	pid = fork();
	if (pid < 0)
		die_sys("unable to fork");
	if (pid == 0) {
		execvp(argv[1], argv + 1);
		die_sys("unable to run %s", argv[1]);
	}
	if (wait4(pid, &st, 0, &ru) < 0)
		die_sys("unable to wait for %s", argv[1]);
	fprintf(stderr, "maxrss %ld\n", ru.ru_maxrss);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
