/* engine: lib/engine as a library, with no loop and no connection: a tiny
 * synth model on the CPU backend, requests in as parsed messages, events
 * collected from the callback per owner. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu.h"
#include "die.h"
#include "engine.h"
#include "json.h"
#include "synth.h"
#include "tap.h"

#define NOWN 4
#define NANS 32

/* what came back for one (owner, id) */
typedef struct ans {
	int owner;
	char id[16];
	uint32_t tok[256];
	uint32_t n, events;
	char finish[16], code[32];
} ans;

static struct {
	int added[NOWN], ended[NOWN], backlogged[NOWN];
	ans a[NANS];
	int na;
} R;

static int
own(const void *owner)
{
	return (int)((uintptr_t)owner - 1);
}

#define OWNER(i) ((void *)(uintptr_t)((i) + 1))

static ans *
answer(int owner, const char *id, size_t n)
{
	int i;

	for (i = 0; i < R.na; i++)
		if (R.a[i].owner == owner && strlen(R.a[i].id) == n && !memcmp(R.a[i].id, id, n))
			return &R.a[i];
	if (R.na == NANS || n >= sizeof R.a[0].id)
		abort();
	memset(&R.a[R.na], 0, sizeof R.a[0]);
	R.a[R.na].owner = owner;
	memcpy(R.a[R.na].id, id, n);
	return &R.a[R.na++];
}

static void
copy_str(const msgpack_object *o, char *buf, size_t n)
{
	size_t k = o && o->type == MSGPACK_OBJECT_STR ? o->via.str.size : 0;

	if (k >= n)
		k = n - 1;
	if (k)
		memcpy(buf, o->via.str.ptr, k);
	buf[k] = 0;
}

static void
ev_send(void *ud, void *owner, const void *data, size_t n)
{
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *err, *id = "";
	size_t idlen = 0, i;
	const msgpack_object *o, *er;
	ans *a;

	(void)ud;
	msgpack_zone_init(&z, 1024);
	if (msg_unpack(data, n, 0, &z, &m, &err) != MSG_GOT)
		abort();
	msg_str(&m, "id", &id, &idlen);
	a = answer(own(owner), id, idlen);
	a->events++;
	if ((o = msg_get(&m, "tokens")) && o->type == MSGPACK_OBJECT_ARRAY)
		for (i = 0; i < o->via.array.size && a->n < 256; i++)
			a->tok[a->n++] = (uint32_t)o->via.array.ptr[i].via.u64;
	copy_str(msg_get(&m, "finish"), a->finish, sizeof a->finish);
	if ((er = msg_get(&m, "error")) && er->type == MSGPACK_OBJECT_MAP)
		for (i = 0; i < er->via.map.size; i++)
			if (er->via.map.ptr[i].key.via.str.size == 4
			    && !memcmp(er->via.map.ptr[i].key.via.str.ptr, "code", 4))
				copy_str(&er->via.map.ptr[i].val, a->code, sizeof a->code);
	msgpack_zone_destroy(&z);
}

static void
ev_added(void *ud, void *owner)
{
	(void)ud;
	R.added[own(owner)]++;
}

static void
ev_ended(void *ud, void *owner)
{
	(void)ud;
	R.ended[own(owner)]++;
}

static int
ev_backlogged(void *ud, const void *owner)
{
	(void)ud;
	return R.backlogged[own(owner)];
}

/* a request from JSON text into e; engine_add's answer */
static int
add(engine *e, int owner, const char *json, uint64_t order)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone z;
	msg m = MSG_ZERO;
	const char *err;
	char e2[256];
	int r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (json_to_msgpack(json, strlen(json), 0, &pk, e2, sizeof e2) < 0)
		abort();
	msgpack_zone_init(&z, 1024);
	if (msg_unpack(sb.data, sb.size, 0, &z, &m, &err) != MSG_GOT)
		abort();
	r = engine_add(e, OWNER(owner), &m, order);
	msgpack_zone_destroy(&z);
	msgpack_sbuffer_destroy(&sb);
	return r;
}

static uint32_t
run(engine *e)
{
	uint32_t steps = 0;

	while (engine_step(e))
		steps++;
	return steps;
}

int
main(void)
{
	static const engine_events ev = { ev_send, ev_added, ev_ended, ev_backlogged };
	char dir[] = "/tmp/sluice-engine-XXXXXX", path[64], err[512] = "";
	synth_opts so = SYNTH_OPTS_DEFAULT;
	engine_opts o = ENGINE_OPTS_DEFAULT;
	model m;
	stats st;
	engine *e = 0;
	ans *a, *b, alone;
	int lowered, rc;

	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/tiny.gguf", dir);
	so.out = path;
	so.dim = 64;
	so.layers = 2;
	so.seed = 7;
	rc = synth_write(&so);
	ok(rc == 0, "a tiny model is made");
	ok(model_open(&m, path, cpu_backend.supports, err, sizeof err) == 0, "it opens with the CPU's types: %s",
	   err);
	o.ctx = 128;
	o.kv_mem = 1 << 20;
	o.threads = 1;
	o.max_tokens = 8;
	stats_init(&st, "engine");
	o.st = &st;
	rc = engine_size(&o, &m, &cpu_backend, &lowered, err, sizeof err);
	ok(rc == 0 && !lowered && o.ctx == 128 && o.n_blocks > 0, "engine_size: %u blocks for ctx %u", o.n_blocks,
	   o.ctx);
	rc = engine_new(&e, &m, &cpu_backend, &o, &ev, 0, err, sizeof err);
	ok(rc == 0 && e, "engine_new: %s", rc ? err : "ok");
	if (!e)
		return done_testing();

	/* one request alone, greedy */
	ok(add(e, 0, "{\"id\":\"a\",\"tokens\":[1,3,17,42,100]}", 0) == 1, "a request waits");
	ok(engine_has(e, OWNER(0), "a", 1) && !engine_has(e, OWNER(1), "a", 1), "its id is in flight for its owner only");
	ok(run(e) > 0 && engine_n_requests(e) == 0, "steps run it to the end");
	a = answer(0, "a", 1);
	ok(a->n == 8 && !strcmp(a->finish, "length") && a->events == 1, "8 tokens in one final event, finish length");
	ok(R.added[0] == 1 && R.ended[0] == 1, "added and ended once each");
	alone = *a;

	/* the same beside others, one of them with the same id from another owner */
	R.na = 0;
	ok(add(e, 1, "{\"id\":\"a\",\"tokens\":[5,6,7,8,9,10,11],\"stream\":true}", 0) == 1
	   && add(e, 0, "{\"id\":\"a\",\"tokens\":[1,3,17,42,100]}", 1) == 1
	   && add(e, 2, "{\"id\":\"c\",\"tokens\":[2,4],\"max_tokens\":20}", 2) == 1, "three wait at once");
	run(e);
	a = answer(0, "a", 1);
	b = answer(1, "a", 1);
	ok(a->n == alone.n && !memcmp(a->tok, alone.tok, sizeof a->tok[0] * a->n),
	   "a greedy request gives the same tokens alone or in a batch");
	ok(b->n == 8 && b->events >= 2 && !strcmp(b->finish, "length"), "a streamed one has an event per token");
	ok(answer(2, "c", 1)->n == 20, "max_tokens is the request's own");

	/* refusals and ends */
	R.na = 0;
	ok(add(e, 0, "{\"id\":\"z\",\"tokens\":[1],\"max_tokens\":0}", 0) == 0
	   && !strcmp(answer(0, "z", 1)->finish, "length"), "max_tokens 0 ends at once");
	ok(add(e, 0, "{\"id\":\"big\",\"tokens\":[99999]}", 0) == -1
	   && !strcmp(answer(0, "big", 3)->code, "bad_request"), "a token outside the vocabulary is a bad request");
	ok(add(e, 0, "{\"id\":\"x\",\"tokens\":[1,2],\"max_tokens\":50}", 0) == 1, "x waits");
	engine_cancel(e, OWNER(0), "x", 1);
	ok(!strcmp(answer(0, "x", 1)->finish, "cancelled") && engine_n_requests(e) == 0, "engine_cancel ends it");
	add(e, 3, "{\"id\":\"p\",\"tokens\":[1,2],\"max_tokens\":50}", 0);
	add(e, 3, "{\"id\":\"q\",\"tokens\":[1,2],\"max_tokens\":50}", 0);
	ok(engine_drop(e, OWNER(3), "slow_consumer", "too slow") == 2 && !strcmp(answer(3, "q", 1)->code, "slow_consumer"),
	   "engine_drop with a code: an error event each");
	add(e, 3, "{\"id\":\"r\",\"tokens\":[1,2],\"max_tokens\":50}", 0);
	ok(engine_drop(e, OWNER(3), 0, 0) == 1 && answer(3, "r", 1)->events == 0 && st.gone == 1,
	   "engine_drop without a code: silent, counted gone");

	/* a backlogged owner's request waits, keeping its place */
	R.backlogged[2] = 1;
	add(e, 2, "{\"id\":\"w\",\"tokens\":[1,2,3]}", 0);
	ok(engine_step(e) == 0 && engine_n_waiting(e) == 1, "a backlogged owner's request does not run");
	R.backlogged[2] = 0;
	engine_backlog_changed(e);
	ok(run(e) > 0 && !strcmp(answer(2, "w", 1)->finish, "length"), "and runs once its owner reads again");
	ok(R.added[0] + R.added[1] + R.added[2] + R.added[3] == R.ended[0] + R.ended[1] + R.ended[2] + R.ended[3],
	   "every request added has ended");

	engine_free(e);
	model_close(&m);
	unlink(path);
	rmdir(dir);
	return done_testing();
}
