/* Unit tests of lib/stream: the first byte's kind for each default, the
 * reader over a pipe (JSON lines, text, msgpack with a rejected, a cut and
 * a broken message), and the writer on a non-blocking pipe that fills up. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stream.h"
#include "tap.h"

static void
test_sniff(void)
{
	ok(stream_sniff(0x81, STREAM_TEXT) == STREAM_MSGPACK && stream_sniff(0xde, STREAM_JSON) == STREAM_MSGPACK &&
	   stream_sniff(0xdf, STREAM_MSGPACK) == STREAM_MSGPACK, "a msgpack map is msgpack");
	ok(stream_sniff('{', STREAM_TEXT) == STREAM_JSON && stream_sniff('{', STREAM_MSGPACK) == STREAM_JSON,
	   "'{' is JSON");
	ok(stream_sniff('[', STREAM_TEXT) == STREAM_TEXT && stream_sniff(' ', STREAM_TEXT) == STREAM_TEXT &&
	   stream_sniff('h', STREAM_TEXT) == STREAM_TEXT, "tokenize: anything else is text");
	ok(stream_sniff('[', STREAM_MSGPACK) == STREAM_JSON && stream_sniff('\n', STREAM_MSGPACK) == STREAM_JSON &&
	   stream_sniff('\t', STREAM_MSGPACK) == STREAM_JSON, "cat: '[' and white space are JSON");
	ok(stream_sniff(0x92, STREAM_MSGPACK) == STREAM_MSGPACK && stream_sniff('h', STREAM_MSGPACK) == STREAM_MSGPACK,
	   "cat: anything else is msgpack");
	ok(stream_sniff(0x92, STREAM_JSON) == STREAM_JSON && stream_sniff('h', STREAM_JSON) == STREAM_JSON,
	   "detokenize: anything else is JSON");
}

/* what the reader handed over, one line of text per call */
static char seen[4096];

static void
add(const char *fmt, const char *p, size_t n)
{
	size_t k = strlen(seen);

	snprintf(seen + k, sizeof seen - k, fmt, (int)n, p);
}

static void
on_msg(const msg *m, void *ud)
{
	const char *id = "";
	size_t n = 0;

	(void)ud;
	msg_str(m, "id", &id, &n);
	add("msg %.*s\n", id, n);
}

static void
on_line(const char *p, size_t n, uint64_t lineno, void *ud)
{
	(void)lineno, (void)ud;
	add("line %.*s\n", p, n);
}

static void
on_bad(const char *why, void *ud)
{
	(void)ud;
	add("bad %.*s\n", why, strlen(why));
}

/* Reads bytes[0..n) through a pipe with the given default and kind. */
static int
read_all(const char *bytes, size_t n, int kind, int dflt, size_t max_line, char *err, size_t errlen)
{
	stream_in s = { 0 };
	int fd[2], r;

	seen[0] = 0;
	if (pipe(fd) < 0)
		return -2;
	if (fork() == 0) {
		close(fd[0]);
		if (write(fd[1], bytes, n) < 0)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	s.kind = kind;
	s.dflt = dflt;
	s.max_line = max_line;
	s.on_msg = on_msg;
	s.on_line = on_line;
	s.on_bad = on_bad;
	stream_in_init(&s);
	r = stream_in_run(&s, fd[0], err, errlen);
	stream_in_free(&s);
	close(fd[0]);
	wait(NULL);
	return r;
}

static void
test_read(void)
{
	static const char json[] = "{\"id\":\"a\"}\n\n  \n[1]\n{\"id\":\"b\",}\n{\"id\":\"toolong\"}\n{\"id\":\"c\"}";
	static const char mp[] = "\x81\xa2id\xa1" "a" "\x05" "\x81\xa2id\xa1" "b" "\x81\xa2id\xa5" "abc";
	static const char broken[] = "\x81\xa2id\xa1" "a" "\xc1" "\x81\xa2id\xa1" "b";
	char err[256] = "";

	ok(read_all(json, sizeof json - 1, STREAM_AUTO, STREAM_TEXT, 15, err, sizeof err) == 0 &&
	   !strcmp(seen, "msg a\n"
		   "bad line 4: not a JSON object\n"
		   "bad line 5: invalid JSON at byte 10: expected a string key\n"
		   "bad line 6: longer than 15 bytes\n"
		   "msg c\n"), "JSON lines: blank lines, a non-object, bad JSON, a long line, no final newline");
	ok(read_all("hi\n\nthere", 9, STREAM_AUTO, STREAM_TEXT, 0, err, sizeof err) == 0 &&
	   !strcmp(seen, "line hi\nline \nline there\n"), "text lines, the empty one too");
	ok(read_all("hi\n", 3, STREAM_AUTO, STREAM_JSON, 0, err, sizeof err) == 0 &&
	   !strncmp(seen, "bad line 1: invalid JSON", 24), "detokenize's default: JSON");
	ok(read_all(mp, sizeof mp - 1, STREAM_AUTO, STREAM_TEXT, 0, err, sizeof err) == 0 &&
	   !strcmp(seen, "msg a\nbad message 2: message is not a map\nmsg b\n"
		   "bad message 4: input ends inside a message (8 bytes)\n"), "msgpack: rejected and cut messages");
	ok(read_all(broken, sizeof broken - 1, STREAM_MSGPACK, STREAM_TEXT, 0, err, sizeof err) == -1 &&
	   !strcmp(seen, "msg a\n") && !strcmp(err, "message 2: invalid msgpack byte 0xc1"),
	   "msgpack: lost framing ends the read after what came before it");
}

static void
test_write(void)
{
	stream_out o;
	msgpack_packer pk;
	char *buf = malloc(1 << 20);
	size_t got = 0, i;
	ssize_t r;
	int fd[2], st = -1;

	if (pipe(fd) < 0 || !buf)
		return;
	fcntl(fd[1], F_SETFL, O_NONBLOCK);
	if (fork() == 0) {
		/* a slow reader: the writer sees EAGAIN many times */
		close(fd[1]);
		while ((r = read(fd[0], buf, 4096)) > 0) {
			got += (size_t)r;
			usleep(100);
		}
		_exit(got == 200000 * 8 ? 0 : 1);
	}
	close(fd[0]);
	stream_out_init(&o, fd[1], 1);
	for (i = 0; i < 200000; i++) {
		stream_out_begin(&o, &pk);
		msgpack_pack_map(&pk, 1);
		msg_pk_str(&pk, "a");
		msgpack_pack_uint32(&pk, 1);
		stream_out_end(&o);     /* {"a":1}\n: 8 bytes */
	}
	stream_out_flush(&o);
	stream_out_free(&o);
	close(fd[1]);
	wait(&st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "every byte through a non-blocking pipe to a slow reader");
	free(buf);
}

int
main(void)
{
	test_sniff();
	test_read();
	test_write();
	return done_testing();
}
