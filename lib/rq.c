/* rq: Redis streams as a durable job queue (rq.h), on hiredis 0.14.
 *
 * Entries. A producer XADDs a job to STREAM as two fields: `m`, the request's
 * msgpack bytes, and `r`, the key of the stream its answers go to. A worker
 * XADDs every answer to that reply stream as one field `m`.
 *
 * Consumer group. Workers read STREAM through a consumer group (?group=,
 * default "sluice"), created on every (re)connect with XGROUP CREATE STREAM
 * GROUP 0 MKSTREAM (BUSYGROUP is fine). The start id is `0`, not `$`: jobs
 * queued before the first worker ever ran must not be skipped. A consumer
 * is named ?consumer=, default HOST:PID: new on each run, so what a dead
 * worker held is reclaimed by the others (below). With a stable name a
 * restarted worker first re-reads its own pending entries (XREADGROUP ... 0),
 * as it also does after every reconnect, then reads new ones (`>`).
 *
 * At-least-once delivery. An entry stays pending (in the group's PEL) from
 * delivery until its final answer is written. Every claim_ms/3 a worker
 * refreshes the entries it holds (XCLAIM to itself, JUSTID: not counted as a
 * delivery), so claim_ms bounds how long a dead worker's jobs wait, not how
 * long a job may run; then it takes over the entries idle for claim_ms
 * (?claim=, 30000) with XAUTOCLAIM: those of dead or stopped workers. A job
 * can thus run more than once (a worker cut off from Redis for claim_ms, or
 * one that resumes after SIGSTOP); handlers must be idempotent per request id.
 *
 * Exactly-once final answers. An answer without "finish" is streamed at once
 * (XADD reply * m BYTES). An answer with "finish" runs one Lua script that,
 * only if the entry is still in the PEL, XADDs the answer and then XACKs the
 * entry. If the job was reclaimed meanwhile and answered elsewhere, or moved
 * to the dead stream, the late answer is dropped, so each job gets at most one
 * final answer, and exactly one unless it is dead-lettered. Streamed partial
 * answers of an abandoned attempt may appear before the final one. The write
 * comes before the ack because Redis runs a script to its end but never rolls
 * it back: a failed XADD after the XACK (a reply key holding a string, say)
 * used to leave the job acked and unanswered. Now the XADD runs under
 * redis.pcall, and if it fails the same script copies the job to STREAM:dead
 * (the dead-letter shape below, error "unable to write the answer: ...")
 * before it acks it.
 *
 * Dead letters. An entry delivered max_deliver times (?dead=, 5: XPENDING's
 * delivery count, which XAUTOCLAIM increments) and idle for claim_ms is copied
 * to STREAM:dead with fields m, r, id (the original entry id), deliveries,
 * consumer (the last owner), error, and then acked, by one script that does
 * both only if the entry is still pending: atomic, so a crash cannot lose it
 * and two workers sweeping at once cannot both bury it (copy before ack: a
 * failed copy leaves it pending). An entry that can never be
 * served (no `m`, `m` longer than lim->max_bytes, not a valid message, no str
 * "id", no reply key) is dead-lettered at once with `error` saying why.
 *
 * Backpressure. A worker holds at most ?prefetch= (64) jobs: it reads only as
 * many entries as it has free slots, and a slot is freed when the job's final
 * answer is written (or could not be written: the entry then stays pending
 * and is delivered again after claim_ms).
 *
 * The reply stream. A producer reads its reply stream (?reply=, default
 * STREAM:reply:HOST:PID, unique per process) with XREAD from 0-0. The key is
 * deleted when the producer opens, before its first job is added, so answers
 * left by an earlier process of the same name are never read (so an explicit
 * key must not be shared by two producers). Entries read are trimmed away
 * (XTRIM MINID ~) once RQ_TRIM_AFTER have piled up, so a long-lived producer
 * does not grow its reply stream without end. A default (generated) key is
 * deleted again at rq_close, an explicit one is kept for inspection. What
 * neither catches is a producer killed before rq_close, or answers that come
 * after it (a job reclaimed late): they would sit in the key for ever. So the
 * answer script gives the reply key a TTL of RQ_REPLY_TTL (a day) at every
 * final answer: a reply stream lives a day past its last final answer, and a
 * live producer, which reads answers within a second, never notices. (A key
 * that only ever got streamed partial answers, whose job was then buried, has
 * no TTL: partials are plain XADDs, kept cheap on purpose.)
 *
 * A vanished job stream. Jobs live only in the job stream: if it goes (a
 * server restarted without persistence, a DEL, an XGROUP DESTROY), nothing
 * will ever answer the jobs, and a producer must not wait for them for ever.
 * So while it has jobs without a final answer (it counts what it added and
 * the answers carrying "finish" it read), a producer checks the stream every
 * RQ_CHECK_MS and at once after each reconnect (check_stream: XINFO GROUPS),
 * and when it is gone says so on stderr, naming the stream and the number of
 * jobs unanswered, and rq_take returns -1 (the caller's I/O failure, 111).
 * Blind spots: after a restart, jobs that other producers add to the new
 * stream can hide the loss until the group's counters pass the ones seen,
 * if they come within the moment between the restart and our reconnect; and
 * a group destroyed before the first check saw it (within about a second of
 * the first job) reads as one not made yet, unless a worker makes it anew.
 *
 * Trimming the job stream. Acked entries keep their request bytes until
 * something trims them, and XTRIM on 7.0 ignores consumer groups. So every
 * worker, RQ_TRIM_MS after an ack or after RQ_TRIM_ACKS acks, whichever comes
 * first, runs rq_trim_script: it trims (MINID ~) below the lowest id any group
 * may still need, and nothing at all while the stream has no group. A group
 * made later (XGROUP CREATE ... 0 after the trim) does not get the trimmed
 * entries: only groups that exist are protected.
 *
 * Threads. Blocking reads run on a thread with its own connection (a hiredis
 * context is not thread-safe) and a socket timeout larger than BLOCK; the
 * owner writes on a second connection. Jobs or answers reach the owner
 * through a locked queue and a pipe whose read end rq_fd returns. A lost
 * connection is reconnected with backoff (50 ms doubling to 2 s), said once
 * on stderr. hiredis writes with write(2), so SIGPIPE is kept blocked on the
 * thread and around the owner's calls. hiredis buffers whatever Redis sends;
 * what rq copies and hands on is bounded by lim->max_bytes. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "die.h"
#include "rq.h"

#define RQ_BACKOFF_MIN 50      /* ms, first reconnect delay */
#define RQ_BACKOFF_MAX 2000    /* ms, longest reconnect delay */
#define RQ_BLOCK_MAX 1000      /* ms, longest XREAD[GROUP] BLOCK */
#define RQ_SLACK_MS 2000       /* socket timeout beyond BLOCK */
#define RQ_CONNECT_MS 2000
#define RQ_EID_MAX 64          /* a stream entry id "ms-seq" is at most 41 bytes */
#define RQ_KEY_MAX 1024        /* a reply key taken from an entry */
#define RQ_PREFETCH_MAX 65536
#define RQ_PENDING_PAGE 100    /* XPENDING entries per call */
#define RQ_SWEEP_ROUNDS 10     /* XPENDING pages / XAUTOCLAIM calls per sweep */
#define RQ_ANSWERS_MAX 1024    /* a producer's queue of answers not yet taken */
#define RQ_TRIM_AFTER 10000    /* answers read before the reply stream is trimmed */
#define RQ_TRIM_ACKS 1000      /* a worker trims the job stream after this many acks */
#define RQ_TRIM_MS 2000        /* or this long after an ack, whichever comes first */
#define RQ_REPLY_TTL "86400000" /* ms a reply stream outlives its last final answer */
#define RQ_CHECK_MS 2000       /* a producer with jobs unanswered checks its stream */

/* Answers with "finish", for a job still pending (under any consumer: the
 * first final answer wins). The answer is written first and the job acked
 * after: Redis does not roll a script back, so an ack made before a failed
 * XADD (a reply key of another type) would lose the job. If the answer cannot
 * be written the job goes to STREAM:dead with the reason instead, in the same
 * step. Returns 1 answered, 0 not pending (answered elsewhere or buried), or
 * the reason it was buried. A reply stream written to expires RQ_REPLY_TTL
 * after its last final answer (see the top). KEYS: stream, reply, dead.
 * ARGV: group, entry id, bytes, ttl. */
static const char rq_script[] =
	"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) "
	"if #p == 0 then return 0 end "
	"local w = redis.pcall('XADD', KEYS[2], '*', 'm', ARGV[3]) "
	"if type(w) == 'table' and w.err then "
	"local m, e = '', redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) "
	"if #e == 1 then for i = 1, #e[1][2] - 1, 2 do "
	"if e[1][2][i] == 'm' then m = e[1][2][i + 1] end end end "
	"local why = 'unable to write the answer: ' .. w.err "
	"redis.call('XADD', KEYS[3], '*', 'm', m, 'r', KEYS[2], 'id', ARGV[2], "
	"'deliveries', p[1][4], 'consumer', p[1][2], 'error', why) "
	"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) return why end "
	"redis.call('PEXPIRE', KEYS[2], ARGV[4]) "
	"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) return 1";

/* Heartbeat: resets the idle time of the entries this consumer still owns
 * (XCLAIM JUSTID does not count a delivery), so a job that runs longer than
 * claim_ms is not taken over while its worker lives. KEYS: stream. ARGV:
 * group, consumer, entry ids. */
static const char rq_beat_script[] =
	"local n = 0 for i = 3, #ARGV do "
	"if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) == 1 then "
	"redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID') n = n + 1 end end "
	"return n";

/* Trims the job stream below what every group has delivered and acked.
 * XTRIM on 7.0 knows nothing of groups, so the bound is computed here, for
 * each group: its lowest pending id if it has any (an entry pending at X may
 * need X again), else its last-delivered-id (everything up to it delivered,
 * nothing of it pending: acked); the minimum over groups goes to XTRIM MINID,
 * which keeps entries >= the bound, the bound itself among them (one acked
 * entry kept: simpler than forming the next id). No group: nothing is known
 * to be acked, nothing trimmed. `~` frees whole radix-tree nodes only, never
 * past the bound, with XTRIM's default LIMIT of 100 nodes' worth, so one call
 * stays cheap. Ids compare as (ms, seq) by length, then bytes: both are
 * decimal u64s without leading zeros, too wide for Lua's doubles.
 * KEYS: stream. Returns the number of entries trimmed. */
static const char rq_trim_script[] =
	"local function lt(a, b) "
	"local am, as = string.match(a, '^(%d+)-(%d+)$') "
	"local bm, bs = string.match(b, '^(%d+)-(%d+)$') "
	"if #am ~= #bm then return #am < #bm end if am ~= bm then return am < bm end "
	"if #as ~= #bs then return #as < #bs end return as < bs end "
	"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
	"local min "
	"for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do "
	"local f = {} for i = 1, #g - 1, 2 do f[g[i]] = g[i + 1] end "
	"local b = f['last-delivered-id'] "
	"if f['pending'] > 0 then b = redis.call('XPENDING', KEYS[1], f['name'])[2] end "
	"if not min or lt(b, min) then min = b end end "
	"if not min then return 0 end "
	"return redis.call('XTRIM', KEYS[1], 'MINID', '~', min)";

/* Dead letters: only an entry still pending is copied, and the copy is made
 * before the ack (a failed XADD leaves it pending). KEYS: stream, dead.
 * ARGV: group, entry id, then the dead entry's field/value pairs. */
static const char rq_bury_script[] =
	"if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) == 0 then return 0 end "
	"redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3)) "
	"redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) return 1";

struct rq_item {               /* one message for rq_take */
	struct rq_item *next;
	char *data;
	size_t n;
};

struct rq_job {                /* a worker's job in flight, oldest first */
	struct rq_job *next;
	char eid[RQ_EID_MAX];  /* the stream entry id */
	char *id;              /* the request's "id" */
	size_t idn;
	char *reply;           /* the reply stream key */
	unsigned long long serial;   /* this delivery, among this worker's: its "attempt" */
};

struct rq {
	int worker;
	char *host;
	int port;
	char *stream, *group, *consumer, *reply, *dead;
	int reply_own;         /* the reply key was generated: delete it at close */
	unsigned long long serial;   /* deliveries taken so far (under mu) */
	unsigned claim_ms, max_deliver, prefetch, block_ms;
	msg_limits lim;

	pthread_mutex_t mu;    /* guards everything down to the thread-only part */
	pthread_cond_t cv;     /* stop, a freed slot, a taken answer, reply_ready */
	pthread_t th;
	int th_ok;
	int stop;
	int tfd;               /* the thread's socket, shut down by rq_close */
	int pfd[2];            /* readable while the queue is not empty */
	struct rq_item *qh, *qt;
	size_t nq;
	struct rq_job *jh, *jt;
	size_t njobs;          /* slots in use */
	int reply_ready;       /* producer: the reply key was deleted */
	unsigned acked;        /* worker: jobs acked since the job stream was trimmed */
	long long nsent;       /* producer: jobs added (or being added) */
	char newest[RQ_EID_MAX]; /* producer: the entry id of the last job added */
	int gone;              /* producer: the job stream vanished, rq_take says -1 */
	long long q_lag, q_pending; /* producer: the group's, at the latest check; -1 unknown */

	/* the thread's own */
	redisContext *tc;
	unsigned backoff;
	int twarned;
	char last[RQ_EID_MAX]; /* producer: the last reply entry read */
	unsigned untrimmed;    /* producer: answers read since the last trim */
	long long trim_at;     /* worker: trim the job stream once past this (ms) */
	long long nfinal;      /* producer: final answers read */
	long long check_at;    /* producer: check the job stream once past this (ms) */
	int seen_group;        /* producer: the group was seen while jobs were out */
	char seen_ld[RQ_EID_MAX]; /* and its last-delivered-id then */
	long long seen_read;   /* and its entries-read then, -1 unknown */

	/* the owner's own */
	redisContext *wc;
	char sha[48];          /* the loaded script, "" if not loaded */
	int wwarned;
	long long wnext;       /* no reconnect before this (monotonic ms) */
	unsigned wbackoff;
};

/* ---- small things ------------------------------------------------------ */

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval
ms_tv(unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

/* Waits on q->cv for at most ms; mu must be held. */
static void
cv_wait_ms(rq *q, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static int
stopping(rq *q)
{
	int s;

	pthread_mutex_lock(&q->mu);
	s = q->stop;
	pthread_mutex_unlock(&q->mu);
	return s;
}

static unsigned
free_slots(rq *q)
{
	unsigned f;

	pthread_mutex_lock(&q->mu);
	f = q->njobs < q->prefetch ? q->prefetch - (unsigned)q->njobs : 0;
	pthread_mutex_unlock(&q->mu);
	return f;
}

static int
is_str(const redisReply *r)
{
	return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static int
is_err(const redisReply *r, const char *code)
{
	size_t n = strlen(code);

	return r && r->type == REDIS_REPLY_ERROR && r->len >= n &&
	       memcmp(r->str, code, n) == 0;
}

/* Copies an entry id; 0 if it is not one. */
static int
eid_copy(char *dst, const redisReply *r)
{
	if (!is_str(r) || r->len == 0 || r->len >= RQ_EID_MAX)
		return 0;
	memcpy(dst, r->str, r->len);
	dst[r->len] = 0;
	return 1;
}

/* a < b for entry ids "ms-seq" (a bare "ms" is "ms-0"). */
static int
eid_lt(const char *a, const char *b)
{
	unsigned long long am, as = 0, bm, bs = 0;
	char *e;

	am = strtoull(a, &e, 10);
	if (*e == '-')
		as = strtoull(e + 1, NULL, 10);
	bm = strtoull(b, &e, 10);
	if (*e == '-')
		bs = strtoull(e + 1, NULL, 10);
	return am < bm || (am == bm && as < bs);
}

/* The value of field name in a flat [field, value, ...] array, or NULL. */
static const redisReply *
field(const redisReply *f, const char *name)
{
	size_t i, n = strlen(name);

	if (!f || f->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (i = 0; i + 1 < f->elements; i += 2)
		if (is_str(f->element[i]) && f->element[i]->len == n &&
		    memcmp(f->element[i]->str, name, n) == 0)
			return is_str(f->element[i + 1]) ? f->element[i + 1] : NULL;
	return NULL;
}

/* An argument vector for redisCommandArgv. */
typedef struct rq_argv {
	int n;
	const char *v[24];
	size_t l[24];
} rq_argv;

static void
av_add(rq_argv *a, const void *s, size_t n)
{
	if (a->n < 24) {
		a->v[a->n] = s;
		a->l[a->n++] = n;
	}
}

static void
av_str(rq_argv *a, const char *s)
{
	av_add(a, s, strlen(s));
}

/* Runs a command with SIGPIPE blocked, consuming one it raised. */
static redisReply *
cmdv(redisContext *c, int n, const char **v, const size_t *l)
{
	sigset_t pipe_set, old, pend;
	struct timespec zero = {0, 0};
	redisReply *r;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	r = redisCommandArgv(c, n, v, l);
	if (!sigismember(&old, SIGPIPE)) {
		if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE))
			sigtimedwait(&pipe_set, NULL, &zero);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return r;
}

static redisReply *
argv_cmd(redisContext *c, rq_argv *a)
{
	return cmdv(c, a->n, a->v, a->l);
}

static redisContext *
connect_to(const rq *q, char *why, size_t whylen)
{
	redisContext *c;

	c = redisConnectWithTimeout(q->host, q->port, ms_tv(RQ_CONNECT_MS));
	if (!c) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(why, whylen, "%s", c->errstr);
		redisFree(c);
		return NULL;
	}
	/* strictly longer than any BLOCK, so a timeout means a dead server */
	redisSetTimeout(c, ms_tv(q->block_ms + RQ_SLACK_MS));
	return c;
}

/* ---- the queue to the owner ---------------------------------------------- */

/* Queues bytes for rq_take; mu must be held. Takes data. */
static void
push_locked(rq *q, char *data, size_t n)
{
	struct rq_item *it = xcalloc(1, sizeof *it);
	ssize_t w;

	it->data = data;
	it->n = n;
	if (q->qt)
		q->qt->next = it;
	else
		q->qh = it;
	q->qt = it;
	if (q->nq++ == 0)
		do
			w = write(q->pfd[1], "", 1);
		while (w < 0 && errno == EINTR);
}

static void
job_free(struct rq_job *j)
{
	if (j) {
		free(j->id);
		free(j->reply);
		free(j);
	}
}

/* ---- the thread: connection -------------------------------------------- */

static redisReply *
tcmd(rq *q, rq_argv *a)
{
	return q->tc ? argv_cmd(q->tc, a) : NULL;
}

static redisReply *
tcmdf(rq *q, const char *fmt, ...)
{
	va_list ap;
	redisReply *r;

	if (!q->tc)
		return NULL;
	va_start(ap, fmt);
	r = redisvCommand(q->tc, fmt, ap);
	va_end(ap);
	return r;
}

static void
tdrop(rq *q, const char *why)
{
	char buf[128];

	if (!q->tc)
		return;
	snprintf(buf, sizeof buf, "%s", why ? why : q->tc->err ? q->tc->errstr : "connection lost");
	pthread_mutex_lock(&q->mu);
	q->tfd = -1;
	pthread_mutex_unlock(&q->mu);
	redisFree(q->tc);
	q->tc = NULL;
	if (!stopping(q) && !q->twarned) {
		warn_x("lost redis at %s:%d (%s), reconnecting", q->host, q->port, buf);
		q->twarned = 1;
	}
}

static void
tbackoff(rq *q)
{
	pthread_mutex_lock(&q->mu);
	if (!q->stop)
		cv_wait_ms(q, q->backoff);
	pthread_mutex_unlock(&q->mu);
	q->backoff = q->backoff * 2 > RQ_BACKOFF_MAX ? RQ_BACKOFF_MAX : q->backoff * 2;
}

/* Creates the group (and stream). 0 ok, -1 connection lost or refused. */
static int
tgroup(rq *q)
{
	redisReply *r;
	int rc = 0;

	r = tcmdf(q, "XGROUP CREATE %s %s 0 MKSTREAM", q->stream, q->group);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR && !is_err(r, "BUSYGROUP")) {
		char why[160];

		snprintf(why, sizeof why, "XGROUP CREATE: %.*s", (int)(r->len > 120 ? 120 : r->len), r->str);
		freeReplyObject(r);
		tdrop(q, why);
		return -1;
	}
	freeReplyObject(r);
	return rc;
}

/* ---- the thread: worker -------------------------------------------------- */

static int
tack(rq *q, const char *eid)
{
	redisReply *r = tcmdf(q, "XACK %s %s %s", q->stream, q->group, eid);

	if (!r)
		return -1;
	freeReplyObject(r);
	return 0;
}

/* Moves an entry to STREAM:dead in one script that copies it, then acks it,
 * only if it is still pending: two workers sweeping at once cannot both bury
 * it and a crash cannot lose it. deliveries 0: unknown.
 * 0 ok, -1 connection lost. */
static int
bury(rq *q, const char *eid, const redisReply *m, const redisReply *rk,
     unsigned deliveries, const char *owner, const char *why)
{
	rq_argv a = {0};
	char nbuf[16];
	redisReply *r;

	av_str(&a, "EVAL");
	av_str(&a, rq_bury_script);
	av_str(&a, "2");
	av_str(&a, q->stream);
	av_str(&a, q->dead);
	av_str(&a, q->group);
	av_str(&a, eid);
	av_str(&a, "m");
	av_add(&a, m ? m->str : "", m ? m->len : 0);
	av_str(&a, "r");
	av_add(&a, rk ? rk->str : "", rk ? rk->len : 0);
	av_str(&a, "id");
	av_str(&a, eid);
	if (deliveries) {
		snprintf(nbuf, sizeof nbuf, "%u", deliveries);
		av_str(&a, "deliveries");
		av_str(&a, nbuf);
	}
	av_str(&a, "consumer");
	av_str(&a, owner);
	av_str(&a, "error");
	av_str(&a, why);
	r = tcmd(q, &a);
	if (!r)
		return -1;
	if (r->type == REDIS_REPLY_ERROR)
		/* still pending: tried again at the next sweep */
		warn_x("unable to move %s of %s to %s: %s", eid, q->stream, q->dead, r->str);
	else if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		info_x("moved %s of %s to %s: %s", eid, q->stream, q->dead, why);
		pthread_mutex_lock(&q->mu);
		q->acked++;
		pthread_mutex_unlock(&q->mu);
	}
	freeReplyObject(r);
	return 0;
}

/* One entry [id, [field, value, ...]] now delivered to this consumer: hand it
 * to the owner, or bury it if it can never be served. 0 ok, -1 connection lost. */
static int
take_entry(rq *q, const redisReply *e, unsigned deliveries)
{
	const redisReply *f, *m, *rk;
	char eid[RQ_EID_MAX], why[160];
	msgpack_zone zone;
	msg mm = MSG_ZERO;
	const char *err = NULL, *id = NULL;
	size_t idn = 0;
	struct rq_job *j;
	char *data;

	if (!e || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !eid_copy(eid, e->element[0]))
		return 0;   /* not an entry (a deleted one in Redis 6.2's XAUTOCLAIM) */
	f = e->element[1];
	if (f->type == REDIS_REPLY_NIL)
		return tack(q, eid);   /* deleted while pending: nothing to do */
	m = field(f, "m");
	rk = field(f, "r");
	why[0] = 0;
	if (!m)
		snprintf(why, sizeof why, "no field m");
	else if (m->len > q->lim.max_bytes)
		snprintf(why, sizeof why, "message of %zu bytes, over %zu", m->len, q->lim.max_bytes);
	else if (!rk || rk->len == 0 || rk->len > RQ_KEY_MAX || memchr(rk->str, 0, rk->len))
		snprintf(why, sizeof why, "no usable reply stream (field r)");
	if (why[0])
		return bury(q, eid, m, rk, deliveries, q->consumer, why);

	if (!msgpack_zone_init(&zone, 2048))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	if (msg_unpack(m->str, m->len, &q->lim, &zone, &mm, &err) != MSG_GOT)
		snprintf(why, sizeof why, "bad message: %s", err ? err : "?");
	else if (msg_str(&mm, "id", &id, &idn) != 1)
		snprintf(why, sizeof why, "bad message: no str id");
	if (why[0]) {
		msgpack_zone_destroy(&zone);
		return bury(q, eid, m, rk, deliveries, q->consumer, why);
	}

	pthread_mutex_lock(&q->mu);
	for (j = q->jh; j; j = j->next)
		if (strcmp(j->eid, eid) == 0)
			break;
	if (!j) {   /* not already held (re-read after a reconnect, or reclaimed) */
		j = xcalloc(1, sizeof *j);
		memcpy(j->eid, eid, sizeof eid);
		j->id = xmalloc(idn + 1);
		memcpy(j->id, id, idn);
		j->id[idn] = 0;
		j->idn = idn;
		j->reply = xmalloc(rk->len + 1);
		memcpy(j->reply, rk->str, rk->len);
		j->reply[rk->len] = 0;
		j->serial = ++q->serial;
		if (q->jt)
			q->jt->next = j;
		else
			q->jh = j;
		q->jt = j;
		q->njobs++;
		data = xmalloc(m->len);
		memcpy(data, m->str, m->len);
		push_locked(q, data, m->len);
	}
	pthread_mutex_unlock(&q->mu);
	msgpack_zone_destroy(&zone);
	return 0;
}

/* An XREAD[GROUP] reply: [[key, [entry, ...]], ...]. Returns the number of
 * entries seen (last = the last id), -1 connection lost. */
static int
take_read(rq *q, const redisReply *r, unsigned deliveries, char *last)
{
	const redisReply *s, *es;
	size_t i, k;
	int n = 0;

	if (!r || r->type != REDIS_REPLY_ARRAY)
		return 0;
	for (i = 0; i < r->elements; i++) {
		s = r->element[i];
		if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
		    s->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		es = s->element[1];
		for (k = 0; k < es->elements; k++) {
			if (take_entry(q, es->element[k], deliveries) < 0)
				return -1;
			if (es->element[k]->type == REDIS_REPLY_ARRAY && es->element[k]->elements == 2)
				eid_copy(last, es->element[k]->element[0]);
			n++;
		}
	}
	return n;
}

/* Re-reads this consumer's own pending entries. 0 ok, -1 connection lost. */
static int
read_own(rq *q)
{
	char from[RQ_EID_MAX] = "0";
	redisReply *r;
	unsigned round, free;
	int n;

	for (round = 0; round < 1000; round++) {
		if (!(free = free_slots(q)))
			break;
		r = tcmdf(q, "XREADGROUP GROUP %s %s COUNT %u STREAMS %s %s",
			  q->group, q->consumer, free, q->stream, from);
		if (!r)
			return -1;
		n = take_read(q, r, 0, from);
		freeReplyObject(r);
		if (n <= 0)
			return n;
	}
	return 0;
}

/* Buries entries delivered too often. 0 ok, -1 connection lost. */
static int
sweep_dead(rq *q)
{
	char start[RQ_EID_MAX + 1] = "-", why[64];
	const redisReply *p;
	redisReply *r, *e;
	unsigned round;
	size_t i;
	int rc;

	for (round = 0; round < RQ_SWEEP_ROUNDS; round++) {
		r = tcmdf(q, "XPENDING %s %s IDLE %u %s + %d", q->stream, q->group,
			  q->claim_ms, start, RQ_PENDING_PAGE);
		if (!r)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY) {
			if (is_err(r, "NOGROUP")) {
				freeReplyObject(r);
				return tgroup(q);
			}
			freeReplyObject(r);
			return 0;
		}
		for (i = 0; i < r->elements; i++) {
			char eid[RQ_EID_MAX], owner[256];
			unsigned long long count;

			p = r->element[i];
			if (p->type != REDIS_REPLY_ARRAY || p->elements < 4 || !eid_copy(eid, p->element[0]) ||
			    !is_str(p->element[1]) || p->element[3]->type != REDIS_REPLY_INTEGER)
				continue;
			snprintf(start, sizeof start, "(%s", eid);
			count = (unsigned long long)p->element[3]->integer;
			if (count < q->max_deliver)
				continue;
			snprintf(owner, sizeof owner, "%.*s", (int)(p->element[1]->len > 250 ? 250 : p->element[1]->len),
				 p->element[1]->str);
			e = tcmdf(q, "XRANGE %s %s %s", q->stream, eid, eid);
			if (!e) {
				freeReplyObject(r);
				return -1;
			}
			snprintf(why, sizeof why, "delivered %llu times", count);
			if (e->type == REDIS_REPLY_ARRAY && e->elements == 1 &&
			    e->element[0]->type == REDIS_REPLY_ARRAY && e->element[0]->elements == 2) {
				const redisReply *f = e->element[0]->element[1];

				rc = bury(q, eid, field(f, "m"), field(f, "r"),
					  count > 999999 ? 999999 : (unsigned)count, owner, why);
			} else {
				rc = tack(q, eid);   /* trimmed away: nothing to keep */
			}
			freeReplyObject(e);
			if (rc < 0) {
				freeReplyObject(r);
				return -1;
			}
		}
		i = r->elements;
		freeReplyObject(r);
		if (i < RQ_PENDING_PAGE)
			break;
	}
	return 0;
}

/* Keeps the jobs held here from looking abandoned. 0 ok, -1 connection lost. */
static int
heartbeat(rq *q)
{
	enum { BATCH = 256 };
	const char *v[BATCH + 6];
	size_t l[BATCH + 6], n, i, k;
	char (*ids)[RQ_EID_MAX];
	struct rq_job *j;
	redisReply *r;
	int rc = 0;

	pthread_mutex_lock(&q->mu);
	n = q->njobs;
	ids = n ? xmalloc(n * sizeof *ids) : NULL;
	for (i = 0, j = q->jh; j && i < n; j = j->next, i++)
		memcpy(ids[i], j->eid, RQ_EID_MAX);
	n = i;
	pthread_mutex_unlock(&q->mu);
	for (i = 0; i < n && rc == 0; i += k) {
		k = n - i < BATCH ? n - i : BATCH;
		v[0] = "EVAL";
		v[1] = rq_beat_script;
		v[2] = "1";
		v[3] = q->stream;
		v[4] = q->group;
		v[5] = q->consumer;
		for (size_t x = 0; x < 6; x++)
			l[x] = strlen(v[x]);
		for (size_t x = 0; x < k; x++) {
			v[6 + x] = ids[i + x];
			l[6 + x] = strlen(ids[i + x]);
		}
		if (!(r = cmdv(q->tc, (int)(6 + k), v, l)))
			rc = -1;
		else
			freeReplyObject(r);
	}
	free(ids);
	return rc;
}

/* Takes over entries idle for claim_ms (dead or hung workers). 0 ok, -1 lost. */
static int
sweep_claim(rq *q)
{
	char cur[RQ_EID_MAX] = "0-0";
	redisReply *r;
	unsigned round, free;
	size_t k;

	for (round = 0; round < RQ_SWEEP_ROUNDS; round++) {
		if (!(free = free_slots(q)))
			break;
		r = tcmdf(q, "XAUTOCLAIM %s %s %s %u %s COUNT %u", q->stream, q->group,
			  q->consumer, q->claim_ms, cur, free);
		if (!r)
			return -1;
		/* [cursor, [entry, ...]] and, since Redis 7, [deleted ids] */
		if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !eid_copy(cur, r->element[0]) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			break;
		}
		for (k = 0; k < r->element[1]->elements; k++)
			if (take_entry(q, r->element[1]->element[k], 0) < 0) {
				freeReplyObject(r);
				return -1;
			}
		freeReplyObject(r);
		if (strcmp(cur, "0-0") == 0)
			break;
	}
	return 0;
}

static int
tconnect(rq *q)
{
	char why[128];
	int stop;

	if (!(q->tc = connect_to(q, why, sizeof why))) {
		if (!q->twarned && !stopping(q)) {
			warn_x("unable to reach redis at %s:%d (%s), retrying", q->host, q->port, why);
			q->twarned = 1;
		}
		return -1;
	}
	pthread_mutex_lock(&q->mu);
	stop = q->stop;
	if (!stop)
		q->tfd = q->tc->fd;
	pthread_mutex_unlock(&q->mu);
	if (stop) {
		redisFree(q->tc);
		q->tc = NULL;
		return -1;
	}
	if (q->worker && (tgroup(q) < 0 || read_own(q) < 0)) {
		tdrop(q, NULL);
		return -1;
	}
	if (q->twarned)
		warn_x("connected to redis at %s:%d again", q->host, q->port);
	q->check_at = 0;   /* a producer: a new server may hold nothing of ours */
	q->twarned = 0;
	q->backoff = RQ_BACKOFF_MIN;
	return 0;
}

/* Trims the job stream now and then: after RQ_TRIM_ACKS acks, or RQ_TRIM_MS
 * after the first ack since the last trim; never while nothing was acked, so
 * idle workers cost nothing. 0 ok (or not due), -1 connection lost. */
static int
trim_jobs(rq *q)
{
	rq_argv a = {0};
	redisReply *r;
	unsigned acked;
	long long t = now_ms();

	pthread_mutex_lock(&q->mu);
	acked = q->acked;
	pthread_mutex_unlock(&q->mu);
	if (!acked) {
		q->trim_at = t + RQ_TRIM_MS;
		return 0;
	}
	if (acked < RQ_TRIM_ACKS && t < q->trim_at)
		return 0;
	av_str(&a, "EVAL");
	av_str(&a, rq_trim_script);
	av_str(&a, "1");
	av_str(&a, q->stream);
	if (!(r = tcmd(q, &a)))
		return -1;
	if (r->type == REDIS_REPLY_ERROR)
		warn_x("unable to trim %s: %s", q->stream, r->str);
	freeReplyObject(r);
	pthread_mutex_lock(&q->mu);
	q->acked -= acked;
	pthread_mutex_unlock(&q->mu);
	q->trim_at = t + RQ_TRIM_MS;
	return 0;
}

static void
worker_loop(rq *q)
{
	long long next_sweep = 0, t;
	unsigned free, wait;
	redisReply *r;

	while (!stopping(q)) {
		if (!q->tc && tconnect(q) < 0) {
			tbackoff(q);
			continue;
		}
		t = now_ms();
		if (t >= next_sweep) {
			if (heartbeat(q) < 0 || sweep_dead(q) < 0 || sweep_claim(q) < 0) {
				tdrop(q, NULL);
				continue;
			}
			/* a third of claim_ms, so that with a BLOCK as long the
			 * heartbeat comes well before an entry reads as idle */
			next_sweep = t + (q->claim_ms / 3 ? q->claim_ms / 3 : 1);
		}
		if (trim_jobs(q) < 0) {
			tdrop(q, NULL);
			continue;
		}
		if (!(free = free_slots(q))) {
			wait = (unsigned)(next_sweep - now_ms() > 0 ? next_sweep - now_ms() : 1);
			pthread_mutex_lock(&q->mu);
			if (!q->stop && q->njobs >= q->prefetch)
				cv_wait_ms(q, wait < q->block_ms ? wait : q->block_ms);
			pthread_mutex_unlock(&q->mu);
			continue;
		}
		r = tcmdf(q, "XREADGROUP GROUP %s %s COUNT %u BLOCK %u STREAMS %s >",
			  q->group, q->consumer, free, q->block_ms, q->stream);
		if (!r) {
			tdrop(q, NULL);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			/* NOGROUP: the stream or group was deleted (or a new server) */
			if (is_err(r, "NOGROUP")) {
				freeReplyObject(r);
				if (tgroup(q) < 0)
					tdrop(q, NULL);
				continue;
			}
			warn_x("XREADGROUP on %s: %s", q->stream, r->str);
			freeReplyObject(r);
			tbackoff(q);
			continue;
		}
		{
			char last[RQ_EID_MAX];

			if (take_read(q, r, 1, last) < 0)
				tdrop(q, NULL);
		}
		freeReplyObject(r);
	}
}

/* ---- the thread: producer ------------------------------------------------ */

/* Is the job stream still the one our unanswered jobs went to? A server that
 * restarted without persistence, or a DEL or XGROUP DESTROY, takes the jobs
 * with it, and nothing would ever answer them: the producer must say so
 * rather than wait for ever. XINFO GROUPS is the check: one short reply, no
 * entry bytes. The stream gone, or no longer a stream, is final (XADD made
 * it, and an empty stream is never removed by Redis). The group can be
 * missing while no worker ever ran (jobs may be queued before the workers),
 * so only a group seen before and now missing counts, or one made anew by a
 * worker (the XGROUP CREATE ... MKSTREAM of its reconnect): its
 * last-delivered-id and entries-read never go back otherwise (short of
 * XGROUP SETID), and a fresh group that was never given our last job yet
 * sees nothing left to deliver (lag 0) has lost it. 0 fine, 1 gone (why says
 * how), 2 no job added yet to judge by, -1 connection lost. */
static int
check_stream(rq *q, char *why, size_t whylen)
{
	const redisReply *g, *ld, *v;
	char newest[RQ_EID_MAX];
	redisReply *r;
	long long read, lag;
	size_t i, n;
	int rc = 0;

	/* taken before the question, so that this job was in the stream by then;
	 * none yet: the first XADD is under way, and may not have made the key */
	pthread_mutex_lock(&q->mu);
	memcpy(newest, q->newest, sizeof newest);
	pthread_mutex_unlock(&q->mu);
	if (!newest[0])
		return 2;
	if (!(r = tcmdf(q, "XINFO GROUPS %s", q->stream)))
		return -1;
	if (is_err(r, "ERR no such key")) {
		snprintf(why, whylen, "no such key: a server restarted without persistence, "
			 "or the stream deleted");
		rc = 1;
		goto out;
	}
	if (is_err(r, "WRONGTYPE")) {
		snprintf(why, whylen, "the key holds something else now");
		rc = 1;
		goto out;
	}
	if (r->type != REDIS_REPLY_ARRAY)
		goto out;   /* nothing to judge by: the next check */
	n = strlen(q->group);
	for (i = 0; i < r->elements; i++) {
		const redisReply *name = field(r->element[i], "name");

		if (name && name->len == n && memcmp(name->str, q->group, n) == 0)
			break;
	}
	if (i == r->elements) {
		if (q->seen_group) {
			snprintf(why, whylen, "its consumer group %s was deleted", q->group);
			rc = 1;
		}
		goto out;
	}
	g = r->element[i];
	ld = field(g, "last-delivered-id");
	read = lag = -1;
	{
		/* what the owner's stats say of the queue: entries not yet given
		 * to a worker (lag, Redis 7) and given but not acked (pending) */
		long long pend = -1, lg = -1;
		for (size_t k = 0; k + 1 < g->elements; k += 2)
			if (is_str(g->element[k]) && g->element[k + 1]->type == REDIS_REPLY_INTEGER) {
				if (!strcmp(g->element[k]->str, "pending"))
					pend = g->element[k + 1]->integer;
				else if (!strcmp(g->element[k]->str, "lag"))
					lg = g->element[k + 1]->integer;
			}
		pthread_mutex_lock(&q->mu);
		q->q_lag = lg;
		q->q_pending = pend;
		pthread_mutex_unlock(&q->mu);
	}
	for (i = 0; i + 1 < g->elements; i += 2) {   /* integers: not for field() */
		v = g->element[i + 1];
		if (!is_str(g->element[i]) || v->type != REDIS_REPLY_INTEGER)
			continue;
		if (!strcmp(g->element[i]->str, "entries-read"))
			read = v->integer;
		else if (!strcmp(g->element[i]->str, "lag"))
			lag = v->integer;
	}
	if (!ld || ld->len >= RQ_EID_MAX)
		goto out;
	/* Without a snapshot: our last job is past what the group was given, so
	 * it is undelivered, yet the group sees nothing undelivered (lag, when
	 * Redis knows it). An undelivered entry is never trimmed: it is gone. */
	if ((lag == 0 && eid_lt(ld->str, newest)) ||
	    (q->seen_group && (eid_lt(ld->str, q->seen_ld) ||
			       (read >= 0 && q->seen_read >= 0 && read < q->seen_read)))) {
		snprintf(why, whylen, "its consumer group %s was made anew: a server restarted "
			 "without persistence, or the stream or group deleted", q->group);
		rc = 1;
		goto out;
	}
	q->seen_group = 1;
	memcpy(q->seen_ld, ld->str, ld->len + 1);
	q->seen_read = read;
out:
	freeReplyObject(r);
	return rc;
}

/* Checks the job stream while jobs are unanswered: every RQ_CHECK_MS, and at
 * once after a reconnect. 0 fine, 1 gone (said, and rq_take will say -1),
 * -1 connection lost. */
static int
check_jobs(rq *q)
{
	char why[200];
	long long out, t = now_ms();
	int r;

	pthread_mutex_lock(&q->mu);
	out = q->nsent - q->nfinal;
	pthread_mutex_unlock(&q->mu);
	if (out <= 0) {
		/* nothing to lose: what a later job finds is judged afresh */
		q->seen_group = 0;
		return 0;
	}
	if (t < q->check_at)
		return 0;
	if ((r = check_stream(q, why, sizeof why)) != 1) {
		if (r == 0)
			q->check_at = t + RQ_CHECK_MS;
		return r < 0 ? -1 : 0;   /* 2, not yet: next time round */
	}
	warn_x("redis stream %s at %s:%d is gone (%s): %lld job%s unanswered",
	       q->stream, q->host, q->port, why, out, out == 1 ? "" : "s");
	pthread_mutex_lock(&q->mu);
	q->gone = 1;
	while (write(q->pfd[1], "", 1) < 0 && errno == EINTR)
		;
	pthread_mutex_unlock(&q->mu);
	return 1;
}

static void
producer_loop(rq *q)
{
	const redisReply *s, *es, *e, *m;
	msgpack_zone zone;
	msg mm = MSG_ZERO;
	const char *err;
	unsigned room;
	redisReply *r;
	size_t i, k;
	int wait, c;

	if (!msgpack_zone_init(&zone, 2048))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	while (!stopping(q)) {
		if (!q->tc && tconnect(q) < 0) {
			tbackoff(q);
			continue;
		}
		if ((c = check_jobs(q)) < 0) {
			tdrop(q, NULL);
			continue;
		}
		if (c) {
			q->twarned = 1;   /* the closing below is no lost connection */
			break;
		}
		pthread_mutex_lock(&q->mu);
		wait = !q->stop && (!q->reply_ready || q->nq >= RQ_ANSWERS_MAX);
		if (wait)
			cv_wait_ms(q, q->block_ms);
		room = q->nq < RQ_ANSWERS_MAX ? RQ_ANSWERS_MAX - (unsigned)q->nq : 0;
		pthread_mutex_unlock(&q->mu);
		if (wait)
			continue;
		r = tcmdf(q, "XREAD COUNT %u BLOCK %u STREAMS %s %s", room < 256 ? room : 256,
			  q->block_ms, q->reply, q->last);
		if (!r) {
			tdrop(q, NULL);
			continue;
		}
		if (r->type == REDIS_REPLY_ERROR) {
			warn_x("XREAD on %s: %s", q->reply, r->str);
			freeReplyObject(r);
			tbackoff(q);
			continue;
		}
		for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
			s = r->element[i];
			if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
			    s->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			es = s->element[1];
			for (k = 0; k < es->elements; k++) {
				e = es->element[k];
				if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !eid_copy(q->last, e->element[0]))
					continue;
				m = field(e->element[1], "m");
				if (!m || m->len == 0 || m->len > q->lim.max_bytes) {
					warn_x("skipped answer %s on %s: no field m or over %zu bytes",
					       q->last, q->reply, q->lim.max_bytes);
					continue;
				}
				/* counted for check_jobs, as the caller counts them */
				msgpack_zone_clear(&zone);
				c = msg_unpack(m->str, m->len, &q->lim, &zone, &mm, &err) == MSG_GOT &&
				    msg_get(&mm, "finish");
				pthread_mutex_lock(&q->mu);
				push_locked(q, memcpy(xmalloc(m->len), m->str, m->len), m->len);
				q->nfinal += c;
				pthread_mutex_unlock(&q->mu);
				q->untrimmed++;
			}
		}
		freeReplyObject(r);
		if (q->untrimmed >= RQ_TRIM_AFTER) {
			/* the answers before the last one read are taken: drop them */
			if (!(r = tcmdf(q, "XTRIM %s MINID ~ %s", q->reply, q->last))) {
				tdrop(q, NULL);
				continue;
			}
			freeReplyObject(r);
			q->untrimmed = 0;
		}
	}
	msgpack_zone_destroy(&zone);
}

static void *
thread_main(void *arg)
{
	rq *q = arg;

	q->backoff = RQ_BACKOFF_MIN;
	if (q->worker)
		worker_loop(q);
	else
		producer_loop(q);
	tdrop(q, "closing");
	return NULL;
}

/* ---- the owner's connection ---------------------------------------------- */

static int
wconnect(rq *q, int now)
{
	char why[128];
	redisReply *r;

	if (q->wc)
		return 0;
	if (!now && now_ms() < q->wnext)
		return -1;
	if (!(q->wc = connect_to(q, why, sizeof why))) {
		if (!q->wwarned)
			warn_x("unable to reach redis at %s:%d (%s)", q->host, q->port, why);
		q->wwarned = 1;
		q->wnext = now_ms() + q->wbackoff;
		q->wbackoff = q->wbackoff * 2 > RQ_BACKOFF_MAX ? RQ_BACKOFF_MAX : q->wbackoff * 2;
		return -1;
	}
	q->wwarned = 0;
	q->wbackoff = RQ_BACKOFF_MIN;
	q->sha[0] = 0;
	if (q->worker) {
		rq_argv a = {0};

		av_str(&a, "SCRIPT");
		av_str(&a, "LOAD");
		av_str(&a, rq_script);
		r = argv_cmd(q->wc, &a);
		if (r && is_str(r) && r->len < sizeof q->sha) {
			memcpy(q->sha, r->str, r->len);
			q->sha[r->len] = 0;
		}
		if (r)
			freeReplyObject(r);
	}
	return 0;
}

/* Runs a command on the owner's connection. A connection found broken (a
 * restarted server) is replaced once at once; NULL when Redis is gone. */
static redisReply *
wcmd(rq *q, rq_argv *a)
{
	redisReply *r;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if (wconnect(q, tries > 0) < 0)
			return NULL;
		if ((r = argv_cmd(q->wc, a)))
			return r;
		if (tries && !q->wwarned) {
			warn_x("lost redis at %s:%d (%s)", q->host, q->port, q->wc->errstr);
			q->wwarned = 1;
		}
		redisFree(q->wc);
		q->wc = NULL;
	}
	q->wnext = now_ms() + q->wbackoff;
	return NULL;
}

static int
del_reply(rq *q)
{
	rq_argv a = {0};
	redisReply *r;

	av_str(&a, "DEL");
	av_str(&a, q->reply);
	if (!(r = wcmd(q, &a)))
		return -1;
	freeReplyObject(r);
	return 0;
}

/* ---- open, take, send, close --------------------------------------------- */

static rq *
rq_open(int worker, const addr *a, const msg_limits *lim, char *err, size_t errlen)
{
	char host[256], *end;
	unsigned long port = 6379;
	sigset_t all, old;
	size_t n;
	rq *q;

	if (!a || !a->stream || !*a->stream) {
		snprintf(err, errlen, "redis endpoint without a stream key");
		return NULL;
	}
	if (a->port && *a->port) {
		errno = 0;
		port = strtoul(a->port, &end, 10);
		if (errno || *end || port == 0 || port > 65535) {
			snprintf(err, errlen, "bad redis port: %s", a->port);
			return NULL;
		}
	}
	if (a->prefetch > RQ_PREFETCH_MAX) {
		snprintf(err, errlen, "prefetch %u is over %d", a->prefetch, RQ_PREFETCH_MAX);
		return NULL;
	}
	q = xcalloc(1, sizeof *q);
	q->q_lag = q->q_pending = -1;
	q->worker = worker;
	q->tfd = q->pfd[0] = q->pfd[1] = -1;
	q->host = xstrdup(a->host && *a->host ? a->host : "127.0.0.1");
	q->port = (int)port;
	q->stream = xstrdup(a->stream);
	q->group = xstrdup(a->group && *a->group ? a->group : "sluice");
	if (gethostname(host, sizeof host) < 0)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = 0;
	if (a->consumer && *a->consumer) {
		q->consumer = xstrdup(a->consumer);
	} else {
		n = strlen(host) + 24;
		q->consumer = xmalloc(n);
		snprintf(q->consumer, n, "%s:%ld", host, (long)getpid());
	}
	if (a->reply && *a->reply) {
		q->reply = xstrdup(a->reply);
	} else {
		n = strlen(a->stream) + strlen(host) + 32;
		q->reply = xmalloc(n);
		snprintf(q->reply, n, "%s:reply:%s:%ld", a->stream, host, (long)getpid());
		q->reply_own = 1;
	}
	n = strlen(a->stream) + 6;
	q->dead = xmalloc(n);
	snprintf(q->dead, n, "%s:dead", a->stream);
	q->claim_ms = a->claim_ms ? a->claim_ms : 30000;
	q->max_deliver = a->max_deliver ? a->max_deliver : 5;
	q->prefetch = a->prefetch ? a->prefetch : 64;
	q->block_ms = q->claim_ms / 3 < RQ_BLOCK_MAX ? q->claim_ms / 3 : RQ_BLOCK_MAX;
	if (q->block_ms < 10)
		q->block_ms = 10;
	q->lim = lim ? *lim : msg_limits_default;
	q->wbackoff = RQ_BACKOFF_MIN;
	strcpy(q->last, "0-0");
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&q->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&q->mu, NULL);
	if (pipe2(q->pfd, O_NONBLOCK | O_CLOEXEC) < 0) {
		snprintf(err, errlen, "unable to create pipe: %s", strerror(errno));
		goto fail;
	}
	if (!worker && del_reply(q) == 0)
		q->reply_ready = 1;

	/* the thread gets no signals: they belong to the owner */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	errno = pthread_create(&q->th, NULL, thread_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (errno) {
		snprintf(err, errlen, "unable to start thread: %s", strerror(errno));
		goto fail;
	}
	q->th_ok = 1;
	return q;
fail:
	rq_close(q);
	return NULL;
}

rq *
rq_open_worker(const addr *a, const msg_limits *lim, char *err, size_t errlen)
{
	return rq_open(1, a, lim, err, errlen);
}

rq *
rq_open_producer(const addr *a, const msg_limits *lim, char *err, size_t errlen)
{
	return rq_open(0, a, lim, err, errlen);
}

int
rq_backlog(rq *q, long long *lag, long long *pending)
{
	pthread_mutex_lock(&q->mu);
	*lag = q->q_lag;
	*pending = q->q_pending;
	pthread_mutex_unlock(&q->mu);
	return *lag >= 0 || *pending >= 0;
}

int
rq_fd(const rq *q)
{
	return q ? q->pfd[0] : -1;
}

int
rq_take(rq *q, char **data, size_t *n)
{
	struct rq_item *it;
	char buf[64];
	int gone;

	pthread_mutex_lock(&q->mu);
	it = q->qh;
	if (it) {
		q->qh = it->next;
		if (!q->qh) {
			q->qt = NULL;
			while (read(q->pfd[0], buf, sizeof buf) > 0)
				;
		}
		q->nq--;
		pthread_cond_broadcast(&q->cv);   /* room for a producer's answers */
	}
	gone = q->gone;
	pthread_mutex_unlock(&q->mu);
	if (!it)
		return gone ? -1 : 0;
	*data = it->data;
	*n = it->n;
	free(it);
	return 1;
}

/* A producer: adds one job. */
static int
send_job(rq *q, const void *bytes, size_t n)
{
	char newest[RQ_EID_MAX];
	rq_argv a = {0};
	redisReply *r;
	int rc = -1;

	if (!q->reply_ready) {
		if (del_reply(q) < 0)
			return -1;
		pthread_mutex_lock(&q->mu);
		q->reply_ready = 1;
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
	}
	av_str(&a, "XADD");
	av_str(&a, q->stream);
	av_str(&a, "*");
	av_str(&a, "m");
	av_add(&a, bytes, n);
	av_str(&a, "r");
	av_str(&a, q->reply);
	/* counted before it is added: its answer may be read before XADD returns */
	pthread_mutex_lock(&q->mu);
	if (q->gone) {
		pthread_mutex_unlock(&q->mu);
		errno = EPIPE;
		return -1;
	}
	q->nsent++;
	pthread_mutex_unlock(&q->mu);
	if (!(r = wcmd(q, &a)))
		goto out;
	if (r->type == REDIS_REPLY_ERROR) {
		warn_x("unable to add a job to %s: %s", q->stream, r->str);
		errno = EIO;
	} else {
		rc = 0;
		if (eid_copy(newest, r)) {
			pthread_mutex_lock(&q->mu);
			memcpy(q->newest, newest, sizeof newest);
			pthread_mutex_unlock(&q->mu);
		}
	}
	freeReplyObject(r);
out:
	if (rc < 0) {
		pthread_mutex_lock(&q->mu);
		q->nsent--;
		pthread_mutex_unlock(&q->mu);
	}
	return rc;
}

/* A worker: streams an answer, or writes the final one and acks the job. */
static int
send_answer(rq *q, const void *bytes, size_t n)
{
	msgpack_zone zone;
	msg m = MSG_ZERO;
	const char *err, *id, *fin;
	size_t idn, finn;
	struct rq_job *j, *prev = NULL;
	rq_argv a = {0};
	redisReply *r = NULL;
	int final, rc = -1;
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	if (!msgpack_zone_init(&zone, 2048))
		die_x(EXIT_SYS, "unable to allocate memory: msgpack zone");
	if (msg_unpack(bytes, n, &q->lim, &zone, &m, &err) != MSG_GOT ||
	    msg_str(&m, "id", &id, &idn) != 1) {
		errno = EINVAL;
		goto out;
	}
	final = msg_str(&m, "finish", &fin, &finn) != 0;
	pthread_mutex_lock(&q->mu);
	for (j = q->jh; j; j = j->next)
		if (j->idn == idn && memcmp(j->id, id, idn) == 0)
			break;
	pthread_mutex_unlock(&q->mu);
	if (!j) {
		errno = ENOENT;
		goto out;
	}
	/* every answer names its attempt, "CONSUMER/N": a job run again (here
	 * or elsewhere) answers under another, so that a producer can tell a
	 * second run's streamed tokens from the first's */
	{
		static const char *const drop[] = { "attempt" };
		msgpack_packer pk;
		char at[64 + RQ_KEY_MAX];

		msg_pk_init(&pk, &sb);
		msg_pk_passthrough(&pk, &m, drop, 1, 1);
		msg_pk_str(&pk, "attempt");
		msg_pk_strn(&pk, at, (size_t)snprintf(at, sizeof at, "%.*s/%llu",
						     RQ_KEY_MAX, q->consumer, j->serial));
		bytes = sb.data;
		n = sb.size;
	}
	if (!final) {
		av_str(&a, "XADD");
		av_str(&a, j->reply);
		av_str(&a, "*");
		av_str(&a, "m");
		av_add(&a, bytes, n);
		if ((r = wcmd(q, &a)) && r->type != REDIS_REPLY_ERROR)
			rc = 0;
		goto out;
	}
	av_str(&a, q->sha[0] ? "EVALSHA" : "EVAL");
	av_str(&a, q->sha[0] ? q->sha : rq_script);
	av_str(&a, "3");
	av_str(&a, q->stream);
	av_str(&a, j->reply);
	av_str(&a, q->dead);
	av_str(&a, q->group);
	av_str(&a, j->eid);
	av_add(&a, bytes, n);
	av_str(&a, RQ_REPLY_TTL);
	r = wcmd(q, &a);
	if (r && is_err(r, "NOSCRIPT")) {   /* a restarted or flushed server */
		freeReplyObject(r);
		q->sha[0] = 0;
		a.v[0] = "EVAL";
		a.l[0] = 4;
		a.v[1] = rq_script;
		a.l[1] = strlen(rq_script);
		r = wcmd(q, &a);
	}
	if (r && r->type == REDIS_REPLY_INTEGER) {
		rc = 0;
		if (r->integer != 1)
			info_x("job %s of %s was answered elsewhere or buried: answer dropped",
			       j->eid, q->stream);
	} else if (r && r->type == REDIS_REPLY_STRING) {
		/* the job is finished all the same: its slot is free, nothing to retry */
		rc = 0;
		warn_x("moved %s of %s to %s: %s", j->eid, q->stream, q->dead, r->str);
	} else if (r) {
		warn_x("unable to answer job %s of %s: %s", j->eid, q->stream,
		       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
	}
	/* answered or not, the slot is free: an unanswered entry stays pending
	 * and is delivered again after claim_ms */
	pthread_mutex_lock(&q->mu);
	if (rc == 0)
		q->acked++;   /* by this script or another: the stream may shrink */
	prev = NULL;
	{
		struct rq_job *k;

		for (k = q->jh; k && k != j; prev = k, k = k->next)
			;
	}
	if (prev)
		prev->next = j->next;
	else
		q->jh = j->next;
	if (q->jt == j)
		q->jt = prev;
	q->njobs--;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	job_free(j);
out:
	if (r)
		freeReplyObject(r);
	msgpack_zone_destroy(&zone);
	msgpack_sbuffer_destroy(&sb);
	if (rc < 0 && !errno)
		errno = EIO;
	return rc;
}

int
rq_send(rq *q, const void *bytes, size_t n)
{
	if (n == 0 || n > q->lim.max_bytes) {
		errno = EMSGSIZE;
		return -1;
	}
	errno = 0;
	return q->worker ? send_answer(q, bytes, n) : send_job(q, bytes, n);
}

void
rq_close(rq *q)
{
	struct rq_item *it;
	struct rq_job *j;

	if (!q)
		return;
	if (q->th_ok) {
		pthread_mutex_lock(&q->mu);
		q->stop = 1;
		if (q->tfd >= 0)
			shutdown(q->tfd, SHUT_RDWR);   /* wakes a blocked XREAD at once */
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
		pthread_join(q->th, NULL);
	}
	if (!q->worker && q->reply_own && q->wc) {
		rq_argv a = {0};
		redisReply *r;

		av_str(&a, "DEL");
		av_str(&a, q->reply);
		if ((r = argv_cmd(q->wc, &a)))
			freeReplyObject(r);
	}
	if (q->wc)
		redisFree(q->wc);
	while ((it = q->qh)) {
		q->qh = it->next;
		free(it->data);
		free(it);
	}
	while ((j = q->jh)) {
		q->jh = j->next;
		job_free(j);
	}
	if (q->pfd[0] >= 0)
		close(q->pfd[0]);
	if (q->pfd[1] >= 0)
		close(q->pfd[1]);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q->host);
	free(q->stream);
	free(q->group);
	free(q->consumer);
	free(q->reply);
	free(q->dead);
	free(q);
}
