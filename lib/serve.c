/* serve: `sluice serve`. The tree, in the order it starts:
 *
 *   engine0..N-1   infer-cpu (or infer-gpu) on unix:STATE/engineK.sock,
 *                  or Redis workers on the stream of --queue
 *   front          batchd on unix:STATE/batchd.sock (route when N > 1)
 *   gateway        HTTP on -l; serve makes the listening socket and hands it
 *                  over as fd 3, so it outlives a gateway's restart
 *   metrics        Prometheus text on --metrics, from the front's and the
 *                  engines' stats
 *
 * Each starts once the one before it is ready (its -d newline), a child that
 * dies is started again after a backoff, and SIGTERM or SIGINT drains the
 * tree front to back: the gateway first (no new request, the open ones
 * answered), then the front, the engines, metrics. --emit writes the same
 * command lines as an s6 service directory set, a supervisord.conf or
 * systemd units, instead of running them. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "die.h"
#include "fetch.h"
#include "httpd.h"
#include "io.h"
#include "serve.h"

#define USAGE "sluice serve [-m model] [-l tcp:host:port] [--metrics tcp:host:port|none] " \
	"[--engines N] [-t threads] [--device auto|cpu|gpu] [--queue redis://host:port/stream] " \
	"[--served-model-name name] [--api-key-file file] [--insecure] [--state dir] " \
	"[--drain-timeout s] [--start-timeout s] [-d fd] [-q] [--emit s6|supervisord|systemd dir] [--bin dir]"

#define MAX_ENGINES 16
#define MAX_SVC (MAX_ENGINES + 3)
#define MAX_ARGS (16 + 2 * MAX_ENGINES)
#define BACKOFF_MIN 0.5     /* s, the first restart's delay */
#define BACKOFF_MAX 30      /* s, the longest */
#define STEADY 10           /* s up: the next crash starts from BACKOFF_MIN again */

typedef struct serve_opts {
	const char *model, *listen, *metrics, *device, *queue, *name, *keys, *state, *emit, *emit_dir, *bin;
	int engines, threads, insecure, ready_fd, quiet;
	double drain_timeout, start_timeout;
} serve_opts;

typedef struct svc {
	char name[16];
	char *argv[MAX_ARGS];     /* malloc'd strings; argv[0] the program's path */
	int ready_num;            /* the descriptor its -d names, -1: none */
	int lfd;                  /* a listening socket it gets as fd 3, -1: none */
	pid_t pid;                /* 0: not running */
	int rpipe;                /* the readiness pipe's read end while it starts, -1 */
	int ready;
	double started, restart_at, backoff, kill_at;
	unsigned restarts;
} svc;

typedef struct tree {
	svc s[MAX_SVC];
	int n;
	int front, gateway, metrics;   /* their indexes (the engines come first, 0..front-1);
				        * metrics -1 with --metrics none */
} tree;

static void
arg(svc *v, const char *fmt, ...)
{
	va_list ap;
	int i;

	for (i = 0; v->argv[i]; i++)
		;
	if (i >= MAX_ARGS - 1)
		die_x(EXIT_USAGE, "too many arguments for %s", v->name);
	va_start(ap, fmt);
	if (vasprintf(&v->argv[i], fmt, ap) < 0)
		die_x(EXIT_SYS, "unable to allocate memory");
	va_end(ap);
}

/* a path into p (PATH_MAX bytes): too long is a usage error */
static void
pathf(char *p, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		die_x(EXIT_USAGE, "a path too long: %.64s...", p);
}

static svc *
add(tree *t, const char *name, const char *bin, const char *prog)
{
	svc *v = &t->s[t->n++];

	memset(v, 0, sizeof *v);
	snprintf(v->name, sizeof v->name, "%s", name);
	v->ready_num = v->lfd = v->rpipe = -1;
	arg(v, "%s/%s", bin, prog);
	return v;
}

/* ---- the tree: one list of command lines for running and for --emit */

/* The tree for opts. ready: the -d descriptor each daemon is given (-1: none,
 * systemd's NOTIFY_SOCKET or supervisord). gw_listen: what gateway listens
 * on (fd:3 when a socket is handed over). state: where the sockets live. */
static void
tree_build(tree *t, const serve_opts *o, const char *engine, const char *state, int ready,
	   const char *gw_listen, const char *metrics_listen)
{
	svc *v;
	int i;

	memset(t, 0, sizeof *t);
	for (i = 0; i < o->engines; i++) {
		char name[16];
		snprintf(name, sizeof name, "engine%d", i % 100);
		v = add(t, name, o->bin, engine);
		arg(v, "-m");
		arg(v, "%s", o->model);
		arg(v, "-l");
		if (o->queue)
			arg(v, "%s", o->queue);
		else
			arg(v, "unix:%s/engine%d.sock", state, i);
		if (o->threads) {   /* 0: --emit without -t, the engine's own default */
			arg(v, "-t");
			arg(v, "%d", o->threads);
		}
	}
	t->front = t->n;
	if (o->engines > 1 && !o->queue) {
		v = add(t, "route", o->bin, "route");
		arg(v, "-m");
		arg(v, "%s", o->model);
	} else {
		v = add(t, "batchd", o->bin, "batchd");
	}
	arg(v, "-l");
	arg(v, "unix:%s/batchd.sock", state);
	for (i = 0; i < (o->queue ? 1 : o->engines); i++) {
		arg(v, "-u");
		if (o->queue)
			arg(v, "%s", o->queue);
		else
			arg(v, "unix:%s/engine%d.sock", state, i);
	}
	t->gateway = t->n;
	v = add(t, "gateway", o->bin, "gateway");
	arg(v, "-u");
	arg(v, "unix:%s/batchd.sock", state);
	arg(v, "-l");
	arg(v, "%s", gw_listen);
	arg(v, "-m");
	arg(v, "%s", o->model);
	if (o->name) {
		arg(v, "--served-model-name");
		arg(v, "%s", o->name);
	}
	if (o->keys) {
		arg(v, "--api-key-file");
		arg(v, "%s", o->keys);
	}
	if (o->insecure)
		arg(v, "--insecure");
	t->metrics = -1;
	if (metrics_listen) {
		t->metrics = t->n;
		v = add(t, "metrics", o->bin, "metrics");
		arg(v, "-u");
		arg(v, "unix:%s/batchd.sock", state);
		for (i = 0; !o->queue && i < o->engines; i++) {
			arg(v, "-u");
			arg(v, "unix:%s/engine%d.sock", state, i);
		}
		arg(v, "-l");
		arg(v, "%s", metrics_listen);
	}
	for (i = 0; i < t->n; i++) {
		v = &t->s[i];
		if (i >= t->front && i != t->metrics) {   /* the engines and metrics have none */
			arg(v, "--drain-timeout");
			arg(v, "%g", o->drain_timeout);
		}
		if (ready >= 0) {
			/* the gateway's listening socket is fd 3 when it is handed over */
			v->ready_num = i == t->gateway && !strcmp(gw_listen, "fd:3") ? ready + 1 : ready;
			arg(v, "-d");
			arg(v, "%d", v->ready_num);
		}
		if (o->quiet && i != t->metrics)
			arg(v, "-q");
	}
}

static void
tree_free(tree *t)
{
	for (int i = 0; i < t->n; i++)
		for (int k = 0; t->s[i].argv[k]; k++)
			free(t->s[i].argv[k]);
	memset(t, 0, sizeof *t);
}

/* The engine program: infer-gpu or infer-cpu, as --device says; auto
 * takes infer-gpu when it is there and so is a CUDA device node (as
 * sluice run does: an infer-gpu built on a machine without a GPU would
 * only exit 111) */
static const char *
engine_prog(const serve_opts *o)
{
	char p[PATH_MAX];

	pathf(p, "%s/infer-gpu", o->bin);
	if (!strcmp(o->device, "cpu"))
		return "infer-cpu";
	if (access(p, X_OK) == 0 && (!strcmp(o->device, "gpu") || access("/dev/nvidiactl", F_OK) == 0))
		return "infer-gpu";
	if (!strcmp(o->device, "gpu"))
		die_x(EXIT_USAGE, "--device gpu: no infer-gpu program in %s", o->bin);
	return "infer-cpu";
}

/* ---- --emit ------------------------------------------------------------ */

/* one word, shell-safe (single quotes where needed) */
static void
put_word(FILE *f, const char *a)
{
	if (a[strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@%+,")] || !*a) {
		fputc('\'', f);
		for (; *a; a++)
			if (*a == '\'')
				fputs("'\\''", f);
			else
				fputc(*a, f);
		fputc('\'', f);
	} else {
		fputs(a, f);
	}
}

/* a command line as one shell-safe line */
static void
put_cmd(FILE *f, const svc *v)
{
	for (int k = 0; v->argv[k]; k++) {
		fputs(k ? " " : "", f);
		put_word(f, v->argv[k]);
	}
}

static FILE *
create(const char *dir, const char *name, mode_t mode)
{
	char p[PATH_MAX];
	FILE *f;
	int fd;

	pathf(p, "%s/%s", dir, name);
	if ((fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0 || !(f = fdopen(fd, "w")))
		die_sys("unable to create %s", p);
	return f;
}

static void
done(FILE *f, const char *dir, const char *name)
{
	if (fflush(f) || ferror(f) || fclose(f))
		die_sys("unable to write %s/%s", dir, name);
}

static void
mkdir_p(const char *dir)
{
	char p[PATH_MAX], *s;

	pathf(p, "%s", dir);
	for (s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = 0;
			if (mkdir(p, 0755) < 0 && errno != EEXIST)
				die_sys("unable to create %s", p);
			if (!(*s = c))
				break;
		}
	}
}

static const char *
desc(const char *name)
{
	return !strncmp(name, "engine", 6) ? "an engine" : !strcmp(name, "gateway") ? "the HTTP front, the OpenAI API"
	       : !strcmp(name, "metrics") ? "Prometheus metrics" : "the queue in front of the engines";
}

/* s6: one service directory each, ready by notification-fd 3; the files
 * s6-rc reads (type, dependencies.d) are there too, so the same directories
 * serve as an s6-rc source. s6-svscan itself starts them all at once: the
 * daemons dial their upstream again until it answers, so the order only
 * matters to s6-rc. */
static void
emit_s6(const tree *t, const serve_opts *o, const char *dir, const char *state)
{
	char sub[PATH_MAX], dep[PATH_MAX];
	FILE *f;

	for (int i = 0; i < t->n; i++) {
		const svc *v = &t->s[i];
		pathf(sub, "%s/sluice-%s", dir, v->name);
		pathf(dep, "%s/dependencies.d", sub);
		mkdir_p(sub);
		f = create(sub, "run", 0755);
		fprintf(f, "#!/bin/sh\n# sluice: %s (%s). Written by sluice serve --emit s6.\n", v->name, desc(v->name));
		fputs("mkdir -p ", f);
		put_word(f, state);
		fputs(" || exit 111\nexec 2>&1\nexec ", f);
		put_cmd(f, v);
		fputc('\n', f);
		done(f, sub, "run");
		f = create(sub, "notification-fd", 0644);
		fprintf(f, "%d\n", v->ready_num);
		done(f, sub, "notification-fd");
		f = create(sub, "type", 0644);
		fputs("longrun\n", f);
		done(f, sub, "type");
		/* s6-rc: each depends on the one it talks to (empty files
		 * named after them); the gateway and metrics on the front, the
		 * front on the engines (not on Redis workers: any number, anywhere) */
		for (int k = 0; k < t->n; k++) {
			char name[64];
			int on = (i == t->gateway || i == t->metrics) ? k == t->front
				 : i == t->front ? !o->queue && k < t->front : 0;
			if (!on)
				continue;
			snprintf(name, sizeof name, "sluice-%s", t->s[k].name);
			mkdir_p(dep);   /* only where there is one: an empty one is not kept by git */
			done(create(dep, name, 0644), dep, name);
		}
	}
}

/* supervisord: a whole configuration, for `supervisord -c`; its [program:]
 * sections also work alone in /etc/supervisor/conf.d. supervisord has no
 * readiness protocol: priority orders the start (and the stop, reversed),
 * startsecs is how long a program must stay up to count as started. */
static void
emit_supervisord(const tree *t, const serve_opts *o, const char *dir, const char *state)
{
	FILE *f = create(dir, "supervisord.conf", 0644);

	fprintf(f, "; sluice under supervisord. Written by sluice serve --emit supervisord.\n"
		"; supervisord -c %s/supervisord.conf   (logs and the control socket in %s)\n\n", dir, state);
	fprintf(f, "[supervisord]\nnodaemon=true\nlogfile=%s/supervisord.log\npidfile=%s/supervisord.pid\n"
		"childlogdir=%s\n\n", state, state, state);
	fprintf(f, "[unix_http_server]\nfile=%s/supervisor.sock\n\n[supervisorctl]\nserverurl=unix://%s/supervisor.sock\n\n"
		"[rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n",
		state, state);
	for (int i = 0; i < t->n; i++) {
		const svc *v = &t->s[i];
		int engine = i < t->front;
		fprintf(f, "; %s\n[program:sluice-%s]\ncommand=", desc(v->name), v->name);
		put_cmd(f, v);
		fprintf(f, "\npriority=%d\nautostart=true\nautorestart=true\n%sstartsecs=%d\nstartretries=10\n"
			"stopsignal=TERM\n; the drain, and then some\nstopwaitsecs=%d\nstopasgroup=true\nkillasgroup=true\n"
			"redirect_stderr=true\nstdout_logfile=%s/%%(program_name)s.log\nstdout_logfile_maxbytes=10MB\n\n",
			engine ? 10 : i == t->front ? 20 : i == t->gateway ? 30 : 40,
			engine ? "; an engine maps and checks its model before it listens\n" : "", engine ? 3 : 1,
			(int)o->drain_timeout + 10, state);
	}
	fprintf(f, "[group:sluice]\nprograms=");
	for (int i = 0; i < t->n; i++)
		fprintf(f, "%ssluice-%s", i ? "," : "", t->s[i].name);
	fputc('\n', f);
	done(f, dir, "supervisord.conf");
}

/* systemd: a unit per daemon (Type=notify: they say READY=1 on
 * $NOTIFY_SOCKET), the gateway socket-activated (its .socket listens; the
 * service gets it as fd 3), all under sluice.target. After= orders the
 * start, and the stop in reverse: the gateway drains first. */
static void
emit_systemd(const tree *t, const serve_opts *o, const char *dir)
{
	char name[64];
	FILE *f;

	for (int i = 0; i < t->n; i++) {
		const svc *v = &t->s[i];
		snprintf(name, sizeof name, "sluice-%s.service", v->name);
		f = create(dir, name, 0644);
		fprintf(f, "# Written by sluice serve --emit systemd.\n[Unit]\nDescription=sluice %s: %s\n"
			"PartOf=sluice.target\n", v->name, desc(v->name));
		if (i >= t->front) {
			int from = i == t->front ? 0 : t->front, to = i == t->front ? t->front : t->gateway;
			for (int k = from; k < to && !(o->queue && i == t->front); k++)
				fprintf(f, "Wants=sluice-%s.service\nAfter=sluice-%s.service\n", t->s[k].name, t->s[k].name);
		}
		if (i == t->gateway)
			fprintf(f, "Requires=sluice-gateway.socket\nAfter=sluice-gateway.socket\n");
		fprintf(f, "\n[Service]\nType=notify\nExecStart=");
		put_cmd(f, v);
		fprintf(f, "\nRuntimeDirectory=sluice\nRuntimeDirectoryPreserve=yes\nRestart=on-failure\nRestartSec=1\n"
			"TimeoutStopSec=%d\nKillMode=mixed\n\n[Install]\nWantedBy=sluice.target\n", (int)o->drain_timeout + 10);
		done(f, dir, name);
	}
	f = create(dir, "sluice-gateway.socket", 0644);
	{
		const char *hp = o->listen + 4;   /* tcp:HOST:PORT */
		fprintf(f, "# Written by sluice serve --emit systemd.\n[Unit]\nDescription=sluice gateway socket\n"
			"PartOf=sluice.target\n\n[Socket]\nListenStream=%s\nBacklog=512\n\n[Install]\nWantedBy=sockets.target\n",
			hp);
	}
	done(f, dir, "sluice-gateway.socket");
	f = create(dir, "sluice.target", 0644);
	fprintf(f, "# Written by sluice serve --emit systemd.\n[Unit]\nDescription=sluice: a model served over HTTP\nWants=");
	for (int i = 0; i < t->n; i++)
		fprintf(f, "%ssluice-%s.service", i ? " " : "", t->s[i].name);
	fprintf(f, " sluice-gateway.socket\n\n[Install]\nWantedBy=multi-user.target\n");
	done(f, dir, "sluice.target");
}

static int
emit(const serve_opts *o, const char *engine)
{
	tree t;
	const char *kind = o->emit, *dir = o->emit_dir;
	const char *state = o->state ? o->state : "/run/sluice";
	const char *ml = o->metrics && strcmp(o->metrics, "none") ? o->metrics : NULL;

	/* systemd and supervisord give % a meaning of their own (specifiers,
	 * Python's % expansion) and quote unlike sh: a path that needs either
	 * is refused rather than written wrong */
	if (strcmp(kind, "s6")) {
		const char *words[] = { o->model, o->bin, state, o->keys, o->name, o->queue };
		for (size_t i = 0; i < sizeof words / sizeof *words; i++)
			if (words[i] && words[i][strcspn(words[i], "%'\" \t\n\\")])
				die_x(EXIT_USAGE, "--emit %s: %s: a %% sign, a quote, a backslash or white space "
				      "would be read otherwise there; use a path without", kind, words[i]);
	}
	mkdir_p(dir);
	if (!strcmp(kind, "s6")) {
		tree_build(&t, o, engine, state, 3, o->listen, ml);
		emit_s6(&t, o, dir, state);
	} else if (!strcmp(kind, "supervisord")) {
		tree_build(&t, o, engine, state, -1, o->listen, ml);
		emit_supervisord(&t, o, dir, state);
	} else if (!strcmp(kind, "systemd")) {
		tree_build(&t, o, engine, "%t/sluice", -1, "fd:3", ml);
		emit_systemd(&t, o, dir);
	} else {
		die_usage(USAGE);
	}
	if (!o->quiet)
		info_x("wrote the %s tree (%d services) to %s", kind, t.n, dir);
	tree_free(&t);
	return 0;
}

/* ---- the supervisor ------------------------------------------------------ */

enum { S_START, S_RUN, S_DRAIN };

typedef struct sup {
	tree t;
	const serve_opts *o;
	int phase;
	int cur;                  /* S_START: the one starting; S_DRAIN: the one stopping */
	double deadline;          /* S_START: cur's start timeout */
	int failed;               /* a child ended badly during the drain, or the start failed */
	sigset_t mask;
} sup;

/* The drain order, k = 0, 1, ...: the gateway (no new request; those it
 * has are answered), metrics (what it would see next is only the rest
 * going), the front, the engines; -1 past the end. */
static int
drain_order(const tree *t, int k)
{
	if (k == 0)
		return t->gateway;
	if (k == 1)
		return t->metrics;    /* -1 without one: skipped */
	if (k == 2)
		return t->front;
	return k - 3 < t->front ? k - 3 : -1;
}

static void
spawn(sup *s, svc *v)
{
	int p[2] = { -1, -1 };
	pid_t pid;

	if (v->ready_num >= 0 && pipe2(p, O_CLOEXEC) < 0)
		die_sys("unable to create a pipe");
	if ((pid = fork()) < 0)
		die_sys("unable to fork");
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		/* its own process group: a Ctrl-C reaches serve alone, which
		 * drains the tree in order; and it goes when serve dies */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		signal(SIGPIPE, SIG_DFL);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (v->lfd >= 0 && (v->lfd == 3 ? fcntl(3, F_SETFD, 0) : dup2(v->lfd, 3)) < 0)
			_exit(EXIT_SYS);
		if (p[1] >= 0 && dup2(p[1], v->ready_num) < 0)
			_exit(EXIT_SYS);
		execv(v->argv[0], v->argv);
		fprintf(stderr, "sluice: fatal: unable to run %s: %s\n", v->argv[0], strerror(errno));
		_exit(errno == ENOENT ? EXIT_NOTFOUND : EXIT_EXEC);
	}
	if (p[1] >= 0)
		close(p[1]);
	v->pid = pid;
	v->kill_at = 0;
	v->rpipe = p[0];
	v->ready = v->ready_num < 0;
	v->started = io_now();
	(void)s;
}

static const char *
how(int st, char *buf, size_t n)
{
	if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, n, "exit status %d", WEXITSTATUS(st));
	return buf;
}

static void
reap(sup *s)
{
	char b[64];
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		svc *v = NULL;
		for (int i = 0; i < s->t.n; i++)
			if (s->t.s[i].pid == pid)
				v = &s->t.s[i];
		if (!v)
			continue;
		v->pid = 0;
		v->ready = 0;
		if (v->rpipe >= 0) {
			close(v->rpipe);
			v->rpipe = -1;
		}
		if (s->phase == S_DRAIN) {
			if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
				s->failed = 1;
				warn_x("%s ended its drain with %s", v->name, how(st, b, sizeof b));
			} else if (!s->o->quiet) {
				info_x("%s drained", v->name);
			}
			continue;
		}
		if (s->phase == S_START && v == &s->t.s[s->cur]) {
			warn_x("%s ended before it was ready (%s): stopping", v->name, how(st, b, sizeof b));
			s->failed = 1;
			continue;
		}
		/* a crash while serving: again after a backoff that doubles while
		 * it keeps crashing soon after its start */
		v->backoff = io_now() - v->started >= STEADY || v->backoff <= 0 ? BACKOFF_MIN
			     : v->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : v->backoff * 2;
		v->restart_at = io_now() + v->backoff;
		v->restarts++;
		warn_x("%s ended (%s); starting it again in %.1f s", v->name, how(st, b, sizeof b), v->backoff);
	}
}

static void
start_drain(sup *s)
{
	s->phase = S_DRAIN;
	s->cur = -1;
	if (!s->o->quiet)
		info_x("draining: the gateway, metrics, the queue, then the engines");
}

/* S_DRAIN: SIGTERM to the next one once the one before has gone; SIGKILL to
 * one still there past its drain and ten seconds more. 1: all gone. */
static int
drain_step(sup *s)
{
	for (;;) {
		int i = s->cur >= 0 ? drain_order(&s->t, s->cur) : -1;
		svc *v = i >= 0 ? &s->t.s[i] : NULL;
		if (v && v->pid) {
			if (io_now() >= v->kill_at) {
				warn_x("%s still there after %.0f s: killed", v->name, s->o->drain_timeout + 10);
				kill(v->pid, SIGKILL);
				v->kill_at = io_now() + 3600;
				s->failed = 1;
			}
			return 0;
		}
		if (++s->cur > 2 && drain_order(&s->t, s->cur) < 0)
			return 1;
		i = drain_order(&s->t, s->cur);
		if (i < 0)
			continue;
		v = &s->t.s[i];
		if (v->pid) {
			kill(v->pid, SIGTERM);
			v->kill_at = io_now() + s->o->drain_timeout + 10;
		}
	}
}

static void
say_url(const sup *s, int fd, const char *what, int out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			if (a->sin_addr.s_addr == htonl(INADDR_ANY))
				a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			char h[INET6_ADDRSTRLEN];
			if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
				a->sin6_addr = in6addr_loopback;
			inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof h);
			snprintf(host, sizeof host, "[%.*s]", (int)sizeof host - 3, h);
			port = ntohs(a->sin6_port);
		}
	}
	if (out) {
		printf("http://%s:%d/v1\n", host, port);
		fflush(stdout);
	}
	if (!s->o->quiet && out) {
		/* the name clients give as "model": the gateway's, the file's stem */
		const char *b = strrchr(s->o->model, '/') ? strrchr(s->o->model, '/') + 1 : s->o->model;
		size_t n = strlen(b) > 5 && !strcmp(b + strlen(b) - 5, ".gguf") ? strlen(b) - 5 : strlen(b);
		if (s->o->name)
			b = s->o->name, n = strlen(b);
		info_x("serving %.*s at http://%s:%d/v1", (int)n, b, host, port);
	} else if (!s->o->quiet) {
		info_x("%s at http://%s:%d/metrics", what, host, port);
	}
}

static int
supervise(const serve_opts *o, const char *engine)
{
	sup s = { .o = o };
	char err[512], state[PATH_MAX];
	int gfd, mfd = -1, sfd, made_state = 0;
	const char *ml = o->metrics && strcmp(o->metrics, "none") ? o->metrics : NULL;

	if (o->state) {
		snprintf(state, sizeof state, "%s", o->state);
		mkdir_p(state);
	} else {
		const char *rt = getenv("XDG_RUNTIME_DIR");
		snprintf(state, sizeof state, "%s/sluice-serve.XXXXXX", rt && *rt ? rt : "/tmp");
		if (!mkdtemp(state))
			die_sys("unable to create %s", state);
		made_state = 1;
	}
	if ((gfd = httpd_listen(o->listen, err, sizeof err)) < 0)
		die_x(EXIT_SYS, "unable to listen on %s: %s", o->listen, err);
	if (ml && (mfd = httpd_listen(ml, err, sizeof err)) < 0)
		die_x(EXIT_SYS, "unable to listen on %s: %s", ml, err);
	fcntl(gfd, F_SETFD, FD_CLOEXEC);
	if (mfd >= 0)
		fcntl(mfd, F_SETFD, FD_CLOEXEC);
	tree_build(&s.t, o, engine, state, 3, "fd:3", ml ? "fd:3" : NULL);
	s.t.s[s.t.gateway].lfd = gfd;
	if (s.t.metrics >= 0) {
		s.t.s[s.t.metrics].lfd = mfd;
		s.t.s[s.t.metrics].ready_num = 4;
		/* "-d 3" was written for it: the socket takes 3, readiness 4 */
		for (int k = 0; s.t.s[s.t.metrics].argv[k]; k++)
			if (!strcmp(s.t.s[s.t.metrics].argv[k], "-d")) {
				free(s.t.s[s.t.metrics].argv[k + 1]);
				s.t.s[s.t.metrics].argv[k + 1] = xstrdup("4");
			}
	}

	sigemptyset(&s.mask);
	sigaddset(&s.mask, SIGCHLD);
	sigaddset(&s.mask, SIGTERM);
	sigaddset(&s.mask, SIGINT);
	sigaddset(&s.mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &s.mask, NULL);
	if ((sfd = signalfd(-1, &s.mask, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		die_sys("unable to create a signalfd");
	signal(SIGPIPE, SIG_IGN);

	if (!o->quiet)
		info_x("starting %d services in %s: %d engine%s (%s, %d thread%s each), %s, gateway%s",
		       s.t.n, state, o->engines, o->engines == 1 ? "" : "s", engine, o->threads,
		       o->threads == 1 ? "" : "s", s.t.s[s.t.front].name, ml ? ", metrics" : "");
	s.phase = S_START;
	s.cur = 0;
	spawn(&s, &s.t.s[0]);
	s.deadline = io_now() + o->start_timeout;

	for (;;) {
		struct pollfd pf[MAX_SVC + 1];
		int np = 0, idx[MAX_SVC + 1];
		double wake = -1, t = io_now();

		/* what is due now */
		if (s.phase == S_START) {
			svc *v = &s.t.s[s.cur];
			if (s.failed || t >= s.deadline) {
				if (!s.failed)
					warn_x("%s not ready after %.0f s (--start-timeout): stopping", v->name, o->start_timeout);
				s.failed = 1;
				start_drain(&s);
				continue;
			}
			if (v->ready) {
				if (++s.cur < s.t.n) {
					spawn(&s, &s.t.s[s.cur]);
					s.deadline = t + o->start_timeout;
					continue;
				}
				s.phase = S_RUN;
				say_url(&s, gfd, "serving", 1);
				if (mfd >= 0)
					say_url(&s, mfd, "metrics", 0);
				if (o->ready_fd >= 0) {
					(void)!write(o->ready_fd, "\n", 1);
					close(o->ready_fd);
				}
			}
			wake = s.deadline;
		} else if (s.phase == S_RUN) {
			for (int i = 0; i < s.t.n; i++) {
				svc *v = &s.t.s[i];
				if (v->pid == 0 && v->restart_at <= t)
					spawn(&s, v);
				else if (v->pid == 0 && (wake < 0 || v->restart_at < wake))
					wake = v->restart_at;
			}
		} else {
			if (drain_step(&s))
				break;
			/* only those sent SIGTERM have a deadline; the rest wait
			 * their turn (without this, poll would spin through a
			 * long drain) */
			for (int i = 0; i < s.t.n; i++)
				if (s.t.s[i].pid && s.t.s[i].kill_at > 0 && (wake < 0 || s.t.s[i].kill_at < wake))
					wake = s.t.s[i].kill_at;
		}

		pf[np].fd = sfd;
		pf[np++].events = POLLIN;
		for (int i = 0; i < s.t.n; i++)
			if (s.t.s[i].rpipe >= 0) {
				idx[np] = i;
				pf[np].fd = s.t.s[i].rpipe;
				pf[np++].events = POLLIN;
			}
		t = io_now();
		if (poll(pf, (nfds_t)np, wake < 0 ? -1 : wake <= t ? 0 : (int)((wake - t) * 1000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			die_sys("unable to poll");
		}
		for (int k = 1; k < np; k++) {
			svc *v = &s.t.s[idx[k]];
			char c[64];
			ssize_t r;
			if (!pf[k].revents)
				continue;
			r = read(v->rpipe, c, sizeof c);
			if (r < 0 && errno == EINTR)
				continue;
			close(v->rpipe);
			v->rpipe = -1;
			if (r > 0 && memchr(c, '\n', (size_t)r)) {
				v->ready = 1;
				if (v->restarts && !o->quiet)
					info_x("%s is ready again", v->name);
			}
		}
		if (pf[0].revents) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if (si.ssi_signo == SIGCHLD)
					continue;
				if (s.phase == S_DRAIN) {
					warn_x("a second signal: killing what is left");
					for (int i = 0; i < s.t.n; i++)
						if (s.t.s[i].pid)
							kill(s.t.s[i].pid, SIGKILL);
					s.failed = 1;
				} else {
					start_drain(&s);
				}
			}
			reap(&s);
		}
	}
	close(sfd);
	close(gfd);
	if (mfd >= 0)
		close(mfd);
	if (made_state) {
		/* the sockets the daemons left, then the directory */
		char p[PATH_MAX];
		for (int i = 0; i < s.t.n; i++) {
			pathf(p, "%s/%s.sock", state, s.t.s[i].name);
			unlink(p);
		}
		pathf(p, "%s/batchd.sock", state);
		unlink(p);
		rmdir(state);
	}
	tree_free(&s.t);
	if (!o->quiet && !s.failed)
		info_x("stopped");
	return s.failed ? EXIT_SYS : 0;
}

/* ---- options ------------------------------------------------------------- */

static double
num(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		die_x(EXIT_USAGE, "%s %s: want a number from %g to %g", opt, s, lo, hi);
	return v;
}

int
serve_main(int argc, char **argv)
{
	enum { O_METRICS = 256, O_ENGINES, O_DEVICE, O_QUEUE, O_NAME, O_KEYS, O_INSECURE, O_STATE,
	       O_DRAIN, O_START, O_EMIT, O_BIN };
	static const struct option lo[] = {
		{ "model", 1, 0, 'm' }, { "listen", 1, 0, 'l' }, { "metrics", 1, 0, O_METRICS },
		{ "engines", 1, 0, O_ENGINES }, { "threads", 1, 0, 't' }, { "device", 1, 0, O_DEVICE },
		{ "queue", 1, 0, O_QUEUE }, { "served-model-name", 1, 0, O_NAME }, { "api-key-file", 1, 0, O_KEYS },
		{ "insecure", 0, 0, O_INSECURE }, { "state", 1, 0, O_STATE }, { "drain-timeout", 1, 0, O_DRAIN },
		{ "start-timeout", 1, 0, O_START }, { "emit", 1, 0, O_EMIT }, { "bin", 1, 0, O_BIN },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 }
	};
	serve_opts o = { .listen = "tcp:127.0.0.1:8080", .metrics = "tcp:127.0.0.1:9464", .device = "auto",
			 .engines = 1, .ready_fd = -1, .drain_timeout = 30, .start_timeout = 300 };
	char exe[PATH_MAX], *model = NULL, *slash;
	const char *engine;
	ssize_t n;
	int c;
	long cpus;

	optind = 1;
	while ((c = getopt_long(argc, argv, "m:l:t:d:qh", lo, NULL)) != -1)
		switch (c) {
		case 'm': o.model = optarg; break;
		case 'l': o.listen = optarg; break;
		case 't': o.threads = (int)num("-t", optarg, 1, 1024); break;
		case 'd': o.ready_fd = (int)num("-d", optarg, 0, 1 << 20); break;
		case 'q': o.quiet = 1; break;
		case 'h': printf("usage: %s\n", USAGE); return 0;
		case O_METRICS: o.metrics = optarg; break;
		case O_ENGINES: o.engines = (int)num("--engines", optarg, 1, MAX_ENGINES); break;
		case O_DEVICE: o.device = optarg; break;
		case O_QUEUE: o.queue = optarg; break;
		case O_NAME: o.name = optarg; break;
		case O_KEYS: o.keys = optarg; break;
		case O_INSECURE: o.insecure = 1; break;
		case O_STATE: o.state = optarg; break;
		case O_DRAIN: o.drain_timeout = num("--drain-timeout", optarg, 0, 86400); break;
		case O_START: o.start_timeout = num("--start-timeout", optarg, 1, 86400); break;
		case O_BIN: o.bin = optarg; break;
		case O_EMIT:
			if (optind >= argc)
				die_usage(USAGE);
			o.emit = optarg;
			o.emit_dir = argv[optind++];
			break;
		default: die_usage(USAGE);
		}
	if (optind != argc)
		die_usage(USAGE);
	die_verbose = !o.quiet;
	if (strcmp(o.device, "auto") && strcmp(o.device, "cpu") && strcmp(o.device, "gpu"))
		die_x(EXIT_USAGE, "--device %s: want auto, cpu or gpu", o.device);
	if (strncmp(o.listen, "tcp:", 4))
		die_x(EXIT_USAGE, "-l %s: the gateway listens on tcp:HOST:PORT", o.listen);
	if (strcmp(o.metrics, "none") && strncmp(o.metrics, "tcp:", 4))
		die_x(EXIT_USAGE, "--metrics %s: want tcp:HOST:PORT or none", o.metrics);
	if (o.queue && strncmp(o.queue, "redis://", 8))
		die_x(EXIT_USAGE, "--queue %s: want redis://HOST:PORT/STREAM", o.queue);
	if (o.ready_fd >= 0 && fcntl(o.ready_fd, F_GETFD) < 0)
		die_x(EXIT_USAGE, "-d %d: not an open descriptor", o.ready_fd);
	if (o.ready_fd >= 0)
		fcntl(o.ready_fd, F_SETFD, FD_CLOEXEC);   /* serve's alone: no child holds it open */
	/* the programs: beside this sluice, unless --bin says where */
	if (!o.bin) {
		if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) < 0)
			die_sys("unable to find the sluice program");
		exe[n] = 0;
		if ((slash = strrchr(exe, '/')))
			*slash = 0;
		o.bin = exe;
	}
	if (!o.model) {
		if (!(model = fetch_model_path()))
			die_x(EXIT_SYS, "no model: give -m, or run sluice model fetch");
		o.model = model;
	} else if (o.model[0] != '/') {
		/* the daemons may run elsewhere (s6, systemd): an absolute path,
		 * even to a file that is not there yet (--emit) */
		char cwd[PATH_MAX];
		if (!(model = realpath(o.model, NULL))) {
			if (!getcwd(cwd, sizeof cwd) || asprintf(&model, "%s/%s", cwd, o.model) < 0)
				die_sys("unable to find the current directory");
		}
		o.model = model;
	}
	if (access(o.model, R_OK) < 0 && !o.emit)
		die_x(EXIT_SYS, "unable to read the model %s: %s%s", o.model, strerror(errno),
		      errno == ENOENT ? " (sluice model fetch gets the default one)" : "");
	/* the threads: this machine's CPUs shared by the engines; an emitted
	 * tree runs elsewhere, so without -t its engines choose (all of theirs) */
	if (!o.threads && !o.emit) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		o.threads = cpus > o.engines ? (int)(cpus / o.engines) : 1;
	}
	engine = engine_prog(&o);
	c = o.emit ? emit(&o, engine) : supervise(&o, engine);
	free(model);
	return c;
}
