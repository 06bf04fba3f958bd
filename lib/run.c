/* run: `sluice run` (see run.h and sluice-run(1)).
 *
 *   input -> [sluice run] -> tokenize | ENGINE | detokenize -> [sluice run] -> results
 *
 * This process reads the input itself: it knows how many requests there are
 * (the progress line's total), gives text lines their ids and every request
 * the defaults of the command line, and keeps what a result needs (the id,
 * the prompt as shown, the request's own keys). It feeds the pipeline and
 * drains it in one poll loop: neither side may wait for the other, as the
 * engine stops reading while it is full and its answers must be taken
 * meanwhile. A request's result is written when its final event comes, so
 * results come in the order requests finish. */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pipeline.h>

#include "detok.h"
#include "die.h"
#include "fetch.h"
#include "idtab.h"
#include "json.h"
#include "msg.h"
#include "run.h"
#include "stream.h"
#include "tokenize.h"

/* Requests packed ahead of the pipeline; past this the input waits. */
#define FEED_MAX ((size_t)64 << 20)

/* The keys DESIGN.md gives a request, and those a result sets itself: a
 * result keeps every other key of its request ("row"). "id" first: a
 * result may keep it. */
static const char *const request_keys[] = {
	"id", "prompt", "messages", "tokens", "max_tokens", "temperature", "top_k", "top_p",
	"min_p", "repeat_penalty", "presence_penalty", "frequency_penalty", "seed", "stop",
	"stream", "priority", "timeout_ms", "cancel", "ignore_eos", "logprobs",
	"finish", "error", "text",
};
#define NREQUEST_KEYS (sizeof request_keys / sizeof request_keys[0])

/* One request read and not yet answered. */
typedef struct job {
	idtab_node node;        /* in run.jobs by id */
	char *shown;            /* text output: the prompt as shown; else NULL */
	char *extra;            /* the request's own keys as a msgpack map, or NULL:
				   for a result written without a final event */
	size_t nextra;
	detok_buf text;         /* the answer so far */
	size_t idlen;
	char id[];
} job;

typedef struct run {
	const run_opts *o;
	int out;                /* STREAM_TEXT, _JSON or _MSGPACK */
	idtab jobs;             /* requests read and not answered, by id */
	stream_in in;           /* the requests */
	stream_in ev;           /* the pipeline's events */
	stream_out res;         /* the results, on stdout */
	msgpack_sbuffer feed;   /* requests packed for the pipeline */
	size_t fed;             /* bytes of feed written to it */
	int sniffing;           /* -i auto and only blank lines so far */
	msgpack_sbuffer tmp;    /* scratch: a request made of a line */
	msgpack_sbuffer keys;   /* scratch: a request's own keys */
	msgpack_zone zone;
	uint64_t total;         /* requests read */
	uint64_t done;          /* results written */
	uint64_t failed;        /* results that are errors */
	uint64_t tokens;        /* tokens generated */
	int input_done;         /* no more requests will be read: total is final */
	char input_err[256];    /* the input could not be read to its end: why */
	int progress;           /* 0 none, 1 redrawn on a terminal, 2 a line now and then */
	int erase;              /* results go to the terminal the progress line is on */
	int drawn;              /* a progress line is on the terminal */
	double t0, last;        /* start, last progress line */
	char line[256];         /* the last progress line */
} run;

/* Appends n bytes to b. */
static void
add(detok_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	if (b->cap - b->n < n) {
		while (b->cap - b->n < n)
			b->cap = b->cap ? b->cap * 2 : 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- programs */

/* The path of program name: beside this program's own file first, then in
 * PATH; malloc'd, NULL when it is nowhere. */
static char *
find_program(const char *name)
{
	char self[PATH_MAX], *p, *path, *dir, *save = 0, *found = 0;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = 0;
		if ((p = strrchr(self, '/'))) {
			p[1] = 0;
			found = xmalloc(strlen(self) + strlen(name) + 1);
			strcpy(stpcpy(found, self), name);
			if (access(found, X_OK) == 0)
				return found;
			free(found);
		}
	}
	path = xstrdup(getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin");
	for (dir = strtok_r(path, ":", &save); dir; dir = strtok_r(0, ":", &save)) {
		found = xmalloc(strlen(dir) + strlen(name) + 2);
		sprintf(found, "%s/%s", dir, name);   /* strtok_r skips empty entries */
		if (access(found, X_OK) == 0)
			break;
		free(found);
		found = 0;
	}
	free(path);
	return found;
}

static char *
need_program(const char *name)
{
	char *p = find_program(name);

	if (!p)
		die_x(EXIT_NOTFOUND, "unable to find %s beside this program or in PATH", name);
	return p;
}

/* The engine for --device: "gpu" must find infer-gpu; "auto" takes it when
 * it is found and a CUDA device node is there, else infer-cpu. */
static char *
engine_program(int device, const char **name)
{
	char *p = 0;

	if (device != RUN_CPU)
		p = find_program("infer-gpu");
	if (device == RUN_GPU && !p)
		die_x(EXIT_NOTFOUND, "no infer-gpu program found beside this program or in PATH; "
		      "use --device cpu");
	if (p && device == RUN_AUTO && access("/dev/nvidiactl", F_OK) < 0) {
		free(p);
		p = 0;
	}
	*name = p ? "infer-gpu" : "infer-cpu";
	return p ? p : need_program("infer-cpu");
}

/* ------------------------------------------------------------- progress */

static void
erase(run *r)
{
	if (r->drawn)
		fputs("\r\033[K", stderr);
	r->drawn = 0;
}

/* "1:05", "2:03:04" */
static void
clock_str(char *b, size_t n, double secs)
{
	unsigned long s = secs > 0 && secs < 1e8 ? (unsigned long)(secs + 0.5) : 0;

	if (s >= 3600)
		snprintf(b, n, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(b, n, "%lu:%02lu", s / 60, s % 60);
}

/* "sluice: 120/500 requests, 3840 tokens, 812.4 tok/s, ETA 0:23": redrawn
 * at most ten times a second on a terminal, once a second elsewhere; final
 * ends the line with the time taken */
static void
progress(run *r, int final)
{
	double t = now(), el = t - r->t0;
	char eta[32] = "?", line[256];

	if (!r->progress || (!final && t - r->last < (r->progress == 1 ? 0.1 : 1.0)))
		return;
	r->last = t;
	if (final) {
		clock_str(eta, sizeof eta, el);
		snprintf(line, sizeof line, "%s: %llu/%llu requests, %llu tokens, %.1f tok/s, took %s%s",
			 die_prog, (unsigned long long)r->done, (unsigned long long)r->total,
			 (unsigned long long)r->tokens, el > 0 ? r->tokens / el : 0.0, eta,
			 r->failed ? ", some failed" : "");
	} else {
		if (r->input_done && r->done && r->done <= r->total)
			clock_str(eta, sizeof eta, el / r->done * (r->total - r->done));
		snprintf(line, sizeof line, "%s: %llu/%llu%s requests, %llu tokens, %.1f tok/s, ETA %s",
			 die_prog, (unsigned long long)r->done, (unsigned long long)r->total,
			 r->input_done ? "" : "+", (unsigned long long)r->tokens,
			 el > 0 ? r->tokens / el : 0.0, eta);
	}
	if (!final && (r->drawn || r->progress == 2) && !strcmp(line, r->line))
		return;         /* the terminal shows it already */
	snprintf(r->line, sizeof r->line, "%s", line);
	if (r->progress == 1) {
		fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
		r->drawn = !final;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	fflush(stderr);
}

/* -------------------------------------------------------------- results */

/* Text output: the prompt, then the answer (or the error), then a blank line. */
static void
text_result(run *r, const char *shown, const char *text, size_t n, const char *code,
	    const char *message, size_t mlen)
{
	stream_out *o = &r->res;

	if (shown) {
		stream_out_raw(o, ">>> ", 4);
		stream_out_raw(o, shown, strlen(shown));
		stream_out_raw(o, "\n", 1);
	}
	stream_out_raw(o, text, n);
	if (n && text[n - 1] != '\n')
		stream_out_raw(o, "\n", 1);
	if (code) {
		stream_out_raw(o, "[error: ", 8);
		stream_out_raw(o, code, strlen(code));
		stream_out_raw(o, ": ", 2);
		stream_out_raw(o, message, mlen);
		stream_out_raw(o, "]\n", 2);
	}
	stream_out_raw(o, "\n", 1);
}

/* Before and after a result: off the progress line's terminal, and on it
 * at once when it is stdout too. */
static void
result_begin(run *r)
{
	if (r->erase)
		erase(r);
}

static void
result_end(run *r, int failed)
{
	r->done++;
	r->failed += failed;
	if (r->erase) {
		stream_out_flush(&r->res);
		progress(r, 0);
	}
}

/* A result of our own, never sent or never answered: {id?, the request's
 * own keys, finish: "error", error: {code, message}, text}. keys is the
 * request (or its own keys, or NULL); keep_id: its "id" is kept from it. */
static void
error_result(run *r, const char *id, size_t idlen, const msg *keys, int keep_id, const char *shown,
	     const detok_buf *text, const char *code, const char *message)
{
	msgpack_packer pk;
	const char *t = text && text->p ? text->p : "";
	size_t tn = text ? text->n : 0;

	result_begin(r);
	if (r->out == STREAM_TEXT) {
		text_result(r, shown, t, tn, code, message, strlen(message));
	} else {
		stream_out_begin(&r->res, &pk);
		if (keys)
			msg_pk_passthrough(&pk, keys, request_keys + !!keep_id,
					   NREQUEST_KEYS - !!keep_id, 3 + !!id);
		else
			msgpack_pack_map(&pk, 3 + !!id);
		if (id) {
			msg_pk_str(&pk, "id");
			msg_pk_strn(&pk, id, idlen);
		}
		msg_pk_str(&pk, "finish");
		msg_pk_str(&pk, "error");
		msg_pk_error_pair(&pk, code, message);
		msg_pk_str(&pk, "text");
		msg_pk_strn(&pk, t, tn);
		stream_out_end(&r->res);
	}
	result_end(r, 1);
}

static void
job_free(run *r, job *j)
{
	idtab_del(&r->jobs, &j->node);
	detok_buf_free(&j->text);
	free(j->shown);
	free(j->extra);
	free(j);
}

/* A request with no final event: its result says why. */
static void
job_lost(run *r, job *j, const char *why)
{
	msg keys = MSG_ZERO;
	const char *e;
	int have = 0;

	if (j->extra)
		have = msg_unpack(j->extra, j->nextra, NULL, &r->zone, &keys, &e) == MSG_GOT;
	error_result(r, j->id, j->idlen, have ? &keys : 0, 0, j->shown, &j->text, "upstream_lost", why);
	msgpack_zone_clear(&r->zone);
	job_free(r, j);
}

/* The key's string in map o, or NULL. */
static const char *
map_str(const msgpack_object *o, const char *key, size_t *n)
{
	size_t i, kl = strlen(key);

	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return 0;
	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    !memcmp(k->via.str.ptr, key, kl) && v->type == MSGPACK_OBJECT_STR) {
			*n = v->via.str.size;
			return v->via.str.ptr;
		}
	}
	return 0;
}

/* A request's final event: its result. */
static void
final_result(run *r, job *j, const msg *ev)
{
	static const char *const drop[] = { "text", "tokens", "t" };
	const char *fin = 0, *code = 0, *message = 0;
	char cbuf[64];
	size_t n = 0, mlen = 0;
	msgpack_packer pk;
	int failed;

	msg_str(ev, "finish", &fin, &n);
	failed = fin && n == 5 && !memcmp(fin, "error", 5);
	result_begin(r);
	if (r->out == STREAM_TEXT) {
		if (failed) {
			code = map_str(msg_get(ev, "error"), "code", &n);
			snprintf(cbuf, sizeof cbuf, "%.*s", code ? (int)(n > 60 ? 60 : n) : 0, code ? code : "");
			code = cbuf;
			message = map_str(msg_get(ev, "error"), "message", &mlen);
			if (!message)
				message = "", mlen = 0;
		}
		text_result(r, j->shown, j->text.p ? j->text.p : "", j->text.n, code, message, mlen);
	} else {
		msg_pk_passthrough(stream_out_begin(&r->res, &pk), ev, drop, 3, 1);
		msg_pk_str(&pk, "text");
		msg_pk_strn(&pk, j->text.p ? j->text.p : "", j->text.n);
		stream_out_end(&r->res);
	}
	result_end(r, failed);
}

/* ---------------------------------------------------- reading the input */

/* How a request reads in text output: its prompt, or the lines of its
 * conversation (all but a user's led by the role). */
static char *
shown(const msg *m)
{
	const msgpack_object *msgs = msg_get(m, "messages"), *tokens = msg_get(m, "tokens");
	const char *s, *role, *content;
	detok_buf b = { 0 };
	size_t n, rl, cl, i;
	char num[64];

	if (msg_str(m, "prompt", &s, &n) == 1)
		return xstrndup(s, n);
	if (msgs && msgs->type == MSGPACK_OBJECT_ARRAY && msgs->via.array.size) {
		for (i = 0; i < msgs->via.array.size; i++) {
			role = map_str(&msgs->via.array.ptr[i], "role", &rl);
			content = map_str(&msgs->via.array.ptr[i], "content", &cl);
			if (i)
				add(&b, "\n>>> ", 5);
			if (role && !(rl == 4 && !memcmp(role, "user", 4))) {
				add(&b, role, rl);
				add(&b, ": ", 2);
			}
			if (content)
				add(&b, content, cl);
		}
		add(&b, "", 1);
		return b.p;
	}
	if (tokens && tokens->type == MSGPACK_OBJECT_ARRAY) {
		snprintf(num, sizeof num, "(%u tokens)", tokens->via.array.size);
		return xstrdup(num);
	}
	return xstrdup("(no prompt)");
}

static job *
job_new(run *r, const char *id, size_t idlen, const msg *m)
{
	job *j = xcalloc(1, sizeof *j + idlen);
	msgpack_packer pk;

	j->idlen = idlen;
	memcpy(j->id, id, idlen);
	idtab_add(&r->jobs, &j->node, NULL, j->id, idlen);
	if (r->out == STREAM_TEXT)
		j->shown = shown(m);
	if (m->root.type == MSGPACK_OBJECT_MAP && m->root.via.map.size) {
		r->keys.size = 0;
		msg_pk_init(&pk, &r->keys);
		msg_pk_passthrough(&pk, m, request_keys, NREQUEST_KEYS, 0);
		if (r->keys.size > 1) {  /* not an empty map */
			j->extra = xmalloc(r->keys.size);
			memcpy(j->extra, r->keys.data, r->keys.size);
			j->nextra = r->keys.size;
		}
	}
	r->total++;
	return j;
}

/* Is key absent (or nil) in m? */
static int
absent(const msg *m, const char *key)
{
	const msgpack_object *o = msg_get(m, key);

	return !o || o->type == MSGPACK_OBJECT_NIL;
}

/* Packs request m for the pipeline: with id (when m has none) and the
 * command line's defaults where m gives none. */
static void
feed(run *r, const msg *m, const char *id, size_t idlen)
{
	const run_opts *o = r->o;
	const char *drop[4];
	size_t nd = 0, k;
	msgpack_packer pk;

	if (id)
		drop[nd++] = "id";
	if (o->max_tokens >= 0 && absent(m, "max_tokens"))
		drop[nd++] = "max_tokens";
	if (o->has_temperature && absent(m, "temperature"))
		drop[nd++] = "temperature";
	if (o->has_seed && absent(m, "seed"))
		drop[nd++] = "seed";
	msg_pk_init(&pk, &r->feed);
	msg_pk_passthrough(&pk, m, drop, nd, nd);
	for (k = 0; k < nd; k++) {
		msg_pk_str(&pk, drop[k]);
		if (!strcmp(drop[k], "id"))
			msg_pk_strn(&pk, id, idlen);
		else if (!strcmp(drop[k], "max_tokens"))
			msgpack_pack_uint64(&pk, (uint64_t)o->max_tokens);
		else if (!strcmp(drop[k], "temperature"))
			msgpack_pack_double(&pk, o->temperature);
		else
			msgpack_pack_uint64(&pk, o->seed);
	}
}

/* One request of the input (a JSON line or a MessagePack map). */
static void
on_request(const msg *m, void *ud)
{
	run *r = ud;
	const msgpack_object *ido = msg_get(m, "id");
	const char *id;
	char num[24], *sh;
	size_t idlen;
	int k;

	r->sniffing = 0;
	if (!ido || ido->type == MSGPACK_OBJECT_NIL) {
		/* no id: its line (or message) number */
		k = snprintf(num, sizeof num, "%llu", (unsigned long long)(r->in.kind == STREAM_MSGPACK ?
									 r->in.nmsg : r->in.lineno));
		job_new(r, num, (size_t)k, m);
		feed(r, m, num, (size_t)k);
		return;
	}
	if (ido->type != MSGPACK_OBJECT_STR || msg_str(m, "id", &id, &idlen) != 1) {
		sh = r->out == STREAM_TEXT ? shown(m) : 0;
		r->total++;
		error_result(r, 0, 0, m, 1, sh, 0, "bad_request", "key \"id\" must be a string");
		free(sh);
		return;
	}
	if (idtab_find(&r->jobs, NULL, id, idlen)) {
		char why[300];

		snprintf(why, sizeof why, "id \"%.*s\" is already in flight", (int)(idlen > 200 ? 200 : idlen), id);
		sh = r->out == STREAM_TEXT ? shown(m) : 0;
		r->total++;
		error_result(r, 0, 0, m, 1, sh, 0, "duplicate_id", why);
		free(sh);
		return;
	}
	job_new(r, id, idlen, m);
	feed(r, m, 0, 0);
}

/* A line or message of the input that is not a request. */
static void
on_bad_input(const char *why, void *ud)
{
	run *r = ud;

	r->sniffing = 0;
	r->total++;
	error_result(r, 0, 0, 0, 0, r->out == STREAM_TEXT ? "(unreadable)" : 0, 0, "bad_request", why);
}

/* The first line that is not blank told JSON lines (-i auto). */
static void
json_line(run *r, const char *p, size_t n, uint64_t lineno)
{
	msgpack_packer pk;
	msg m = MSG_ZERO;
	const char *e;
	char err[256], why[300];

	r->in.kind = STREAM_JSON;       /* for the lines after it */
	r->tmp.size = 0;
	msg_pk_init(&pk, &r->tmp);
	if (json_to_msgpack(p, n, NULL, &pk, err, sizeof err) < 0) {
		snprintf(why, sizeof why, "line %llu: %s", (unsigned long long)lineno, err);
		on_bad_input(why, r);
		return;
	}
	if (msg_unpack(r->tmp.data, r->tmp.size, NULL, &r->zone, &m, &e) != MSG_GOT ||
	    m.root.type != MSGPACK_OBJECT_MAP) {
		snprintf(why, sizeof why, "line %llu: not a JSON object", (unsigned long long)lineno);
		on_bad_input(why, r);
	} else {
		on_request(&m, r);
	}
	msgpack_zone_clear(&r->zone);
}

/* One text line: a prompt (or one user message with --chat), its id the
 * line's number; blank lines are skipped. */
static void
on_line(const char *p, size_t n, uint64_t lineno, void *ud)
{
	run *r = ud;
	msgpack_packer pk;
	msg m = MSG_ZERO;
	const char *e;
	char id[24], why[300];
	size_t i;
	int k;

	if (n && p[n - 1] == '\r')
		n--;
	for (i = 0; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	if (i == n)
		return;
	if (r->sniffing && p[i] == '{') {
		json_line(r, p, n, lineno);
		return;
	}
	r->sniffing = 0;
	k = snprintf(id, sizeof id, "%llu", (unsigned long long)lineno);
	r->tmp.size = 0;
	msg_pk_init(&pk, &r->tmp);
	msgpack_pack_map(&pk, 2);
	msg_pk_str(&pk, "id");
	msg_pk_strn(&pk, id, (size_t)k);
	if (r->o->chat) {
		msg_pk_str(&pk, "messages");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 2);
		msg_pk_str(&pk, "role");
		msg_pk_str(&pk, "user");
		msg_pk_str(&pk, "content");
	} else {
		msg_pk_str(&pk, "prompt");
	}
	msg_pk_strn(&pk, p, n);
	if (msg_unpack(r->tmp.data, r->tmp.size, NULL, &r->zone, &m, &e) == MSG_GOT) {
		job_new(r, id, (size_t)k, &m);
		feed(r, &m, 0, 0);
	} else {
		snprintf(why, sizeof why, "line %llu: %s", (unsigned long long)lineno, e);
		on_bad_input(why, r);
	}
	msgpack_zone_clear(&r->zone);
}

/* ------------------------------------------------- reading the pipeline */

static void
on_event(const msg *m, void *ud)
{
	run *r = ud;
	const msgpack_object *tokens = msg_get(m, "tokens");
	const char *id, *text;
	size_t idlen, n;
	idtab_node *e;
	job *j;

	if (tokens && tokens->type == MSGPACK_OBJECT_ARRAY)
		r->tokens += tokens->via.array.size;
	if (msg_str(m, "id", &id, &idlen) != 1 || !(e = idtab_find(&r->jobs, NULL, id, idlen))) {
		/* every request sent has a string id in the table: a stage's bug */
		erase(r);
		warn_x("the pipeline answered a request it was not sent (id %.*s)",
		       id ? (int)(idlen > 200 ? 200 : idlen) : 1, id ? id : "?");
		return;
	}
	j = idtab_entry(e, job, node);
	if (msg_str(m, "text", &text, &n) == 1)
		add(&j->text, text, n);
	if (msg_get(m, "finish")) {
		final_result(r, j, m);
		job_free(r, j);
	}
}

static void
on_bad_event(const char *why, void *ud)
{
	erase(ud);
	warn_x("the pipeline wrote a message that cannot be read: %s", why);
}

/* ------------------------------------------------------------- the loop */

/* Feeds the pipeline through fd to and reads its events from fd from until
 * they end; reads the input from infd while there is room. */
static void
pump(run *r, int infd, int to, int from)
{
	struct pollfd p[3];
	char err[256];
	ssize_t w;
	int rc;

	for (;;) {
		if (r->input_done && to >= 0 && r->fed == r->feed.size) {
			close(to);      /* the pipeline's input ends */
			to = -1;
		}
		if (stream_out_pending(&r->res))
			stream_out_flush(&r->res);
		progress(r, 0);
		p[0] = (struct pollfd){ r->input_done || r->feed.size - r->fed >= FEED_MAX ? -1 : infd, POLLIN, 0 };
		p[1] = (struct pollfd){ to >= 0 && r->fed < r->feed.size ? to : -1, POLLOUT, 0 };
		p[2] = (struct pollfd){ from, POLLIN, 0 };
		if (poll(p, 3, r->progress ? 100 : -1) < 0) {
			if (errno == EINTR)
				continue;
			die_sys("unable to poll");
		}
		if (p[0].revents) {
			rc = stream_in_read(&r->in, infd, err, sizeof err);
			if (rc < 0)
				snprintf(r->input_err, sizeof r->input_err, "%s", err);
			if (rc <= 0)
				r->input_done = 1;
		}
		if (p[1].revents) {
			w = write(to, r->feed.data + r->fed, r->feed.size - r->fed);
			if (w > 0)
				r->fed += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				/* the first stage is gone: the rest is not read */
				close(to);
				to = -1;
				r->input_done = 1;
			}
			if (r->fed > r->feed.size / 2) {   /* keep only what is still due */
				memmove(r->feed.data, r->feed.data + r->fed, r->feed.size - r->fed);
				r->feed.size -= r->fed;
				r->fed = 0;
			}
		}
		if (p[2].revents) {
			rc = stream_in_read(&r->ev, from, err, sizeof err);
			if (rc < 0) {
				erase(r);
				warn_x("unable to read the pipeline's output: %s", err);
			}
			if (rc <= 0)
				break;
		}
	}
	if (to >= 0)
		close(to);
}

/* ---------------------------------------------------- the stages' ends */

/* How bad a wait status is: a signal is worse than any exit code. */
static int
badness(int status)
{
	if (WIFSIGNALED(status))
		return 1000 + WTERMSIG(status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 999;
}

static void
describe(char *b, size_t n, const char *stage, int status)
{
	if (WIFSIGNALED(status))
		snprintf(b, n, "%s was killed by signal %d (%s)", stage, WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(b, n, "%s exited %d", stage, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* The exit status for the stages' wait statuses; each failed stage said
 * on stderr, the worst first. why: the worst, for the lost requests. */
static int
stages_status(const char *const *names, const int *st, int n, char *why, size_t whylen)
{
	int i, worst = -1;
	char b[256];

	for (i = 0; i < n; i++)
		if (badness(st[i]) && (worst < 0 || badness(st[i]) > badness(st[worst])))
			worst = i;
	if (worst < 0) {
		snprintf(why, whylen, "the pipeline ended without answering it");
		return 0;
	}
	describe(b, sizeof b, names[worst], st[worst]);
	snprintf(why, whylen, "%s", b);
	fprintf(stderr, "%s: fatal: %s\n", die_prog, b);
	for (i = 0; i < n; i++)
		if (i != worst && badness(st[i])) {
			describe(b, sizeof b, names[i], st[i]);
			warn_x("%s", b);
		}
	if (WIFEXITED(st[worst]))
		return WEXITSTATUS(st[worst]);
	return EXIT_SYS;
}

/* ----------------------------------------------------------- run_main */

/* fd 0, 1 and 2 open, as libpipeline wants (on /dev/null when not) */
static void
std_fds(void)
{
	int fd;

	for (fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd)
			die_sys("unable to open /dev/null");
}

static void
cloexec_nonblock(int fd)
{
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		die_sys("unable to set up a pipe");
}

int
run_main(const run_opts *o)
{
	const char *names[3] = { "tokenize", 0, "detokenize" };
	char *prog[3], *model, why[300], num[24];
	int in[2], out[2], infd = 0, *st = 0, nst = 0, code, i;
	run r;
	pipeline *p;
	pipecmd *c;
	idtab_node *e, *next;
	size_t b;

	std_fds();
	/* libpipeline says itself which stage a signal killed, in error(3)'s voice */
	program_invocation_name = (char *)die_prog;
	signal(SIGPIPE, SIG_IGN);     /* a closed pipe is a write error */
	memset(&r, 0, sizeof r);
	r.o = o;
	r.out = o->out != STREAM_AUTO ? o->out : isatty(1) ? STREAM_TEXT : STREAM_JSON;
	r.progress = o->progress < 0 ? isatty(2) : o->progress;
	if (r.progress)
		r.progress = isatty(2) ? 1 : 2;
	r.erase = r.progress == 1 && isatty(1);

	/* the programs and the model, before anything runs */
	prog[0] = need_program("tokenize");
	prog[1] = engine_program(o->device, &names[1]);
	prog[2] = need_program("detokenize");
	model = o->model ? xstrdup(o->model) : fetch_model_path();
	if (!model)
		die_x(EXIT_SYS, "unable to find a model: no home directory; use -m MODEL");
	if (o->input && strcmp(o->input, "-") && (infd = open(o->input, O_RDONLY | O_CLOEXEC)) < 0)
		die_sys("unable to open %s", o->input);

	/* tokenize | ENGINE | detokenize, between two pipes of our own */
	if (pipe(in) < 0 || pipe(out) < 0)
		die_sys("unable to make a pipe");
	cloexec_nonblock(in[1]);
	cloexec_nonblock(out[0]);
	p = pipeline_new();
	c = pipecmd_new_args(prog[0], "-m", model, "-i", "msgpack", (char *)0);
	pipeline_command(p, c);
	c = pipecmd_new_args(prog[1], "-q", "-m", model, (char *)0);
	if (o->threads) {
		snprintf(num, sizeof num, "%u", o->threads);
		pipecmd_args(c, "-t", num, (char *)0);
	}
	pipeline_command(p, c);
	c = pipecmd_new_args(prog[2], "-m", model, "-o", "msgpack", (char *)0);
	pipeline_command(p, c);
	pipeline_want_in(p, in[0]);      /* libpipeline closes them here once started */
	pipeline_want_out(p, out[1]);
	pipeline_ignore_signals(p, 0);   /* ^C ends us as it ends them */

	r.in.kind = o->in;
	r.in.dflt = STREAM_TEXT;
	r.in.max_line = TOKENIZE_MAX_LINE;
	r.in.on_msg = on_request;
	r.in.on_line = on_line;
	r.in.on_bad = on_bad_input;
	r.in.ud = &r;
	stream_in_init(&r.in);
	r.sniffing = o->in == STREAM_AUTO;
	r.ev.kind = STREAM_MSGPACK;
	r.ev.on_msg = on_event;
	r.ev.on_bad = on_bad_event;
	r.ev.ud = &r;
	stream_in_init(&r.ev);
	stream_out_init(&r.res, 1, r.out == STREAM_JSON);
	msgpack_sbuffer_init(&r.feed);
	msgpack_sbuffer_init(&r.tmp);
	msgpack_sbuffer_init(&r.keys);
	if (!msgpack_zone_init(&r.zone, 8192))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	r.t0 = r.last = now();

	fflush(stdout);
	fflush(stderr);
	pipeline_start(p);
	pump(&r, infd, in[1], out[0]);
	close(out[0]);
	pipeline_wait_all(p, &st, &nst);

	/* the requests left without an answer, and why */
	erase(&r);
	code = stages_status(names, st, nst < 3 ? nst : 3, why, sizeof why);
	for (b = 0; b < r.jobs.nb; b++)
		for (e = r.jobs.b[b]; e; e = next) {
			next = e->next;
			job_lost(&r, idtab_entry(e, job, node), why);
		}
	stream_out_flush(&r.res);
	progress(&r, 1);
	if (r.input_err[0]) {
		fprintf(stderr, "%s: fatal: unable to read %s: %s\n", die_prog,
			infd ? o->input : "the input", r.input_err);
		code = code ? code : EXIT_SYS;
	}
	if (!code && r.failed)
		warn_x("%llu of %llu requests failed", (unsigned long long)r.failed,
		       (unsigned long long)r.total);

	free(st);
	pipeline_free(p);
	for (i = 0; i < 3; i++)
		free(prog[i]);
	free(model);
	idtab_free(&r.jobs);
	stream_in_free(&r.in);
	stream_in_free(&r.ev);
	stream_out_free(&r.res);
	msgpack_sbuffer_destroy(&r.feed);
	msgpack_sbuffer_destroy(&r.tmp);
	msgpack_sbuffer_destroy(&r.keys);
	msgpack_zone_destroy(&r.zone);
	if (infd > 0)
		close(infd);
	return code;
}
