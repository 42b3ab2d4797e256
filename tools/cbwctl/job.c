// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: the state of a backup job, kept between "backup begin", "run"
 * and "finish" in ${CBW_RUN_DIR:-/run/dm-cbw}/backup-MAJOR-MINOR.job.
 *
 * The file holds key=value lines; unknown keys are ignored, so that a
 * newer cbwctl can add some.  It is replaced atomically (written to a
 * temporary file and renamed).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbwctl.h"

#define CBW_RUN_DIR_DEFAULT	"/run/dm-cbw"

const char *cbw_run_dir(void)
{
	const char *dir = getenv("CBW_RUN_DIR");

	return dir && *dir ? dir : CBW_RUN_DIR_DEFAULT;
}

void cbw_job_path(const struct cbw_dev *dev, char *path)
{
	snprintf(path, PATH_MAX, "%s/backup-%u-%u.job", cbw_run_dir(),
		 dev->major, dev->minor);
}

#define CBW_JOB_STR(key, field)	{ key, offsetof(struct cbw_job, field), \
				  sizeof(((struct cbw_job *)0)->field), false }
#define CBW_JOB_U64(key, field)	{ key, offsetof(struct cbw_job, field), \
				  0, true }

static const struct {
	const char *key;
	size_t off;
	size_t size;		/* of a string field */
	bool number;
} cbw_job_keys[] = {
	CBW_JOB_STR("device", device),
	CBW_JOB_STR("sync", sync),
	CBW_JOB_STR("bitmap", bitmap),
	CBW_JOB_STR("bitmap_mode", bitmap_mode),
	CBW_JOB_STR("access", access),
	CBW_JOB_STR("cow", cow),
	CBW_JOB_U64("chunk", chunk),
	CBW_JOB_U64("size", size),
	CBW_JOB_U64("granularity", granularity),
	CBW_JOB_U64("generation", generation),
	CBW_JOB_STR("state", state),
	CBW_JOB_U64("fail_offset", fail_offset),
	CBW_JOB_U64("error", error),
	CBW_JOB_U64("done_bytes", done_bytes),
	CBW_JOB_U64("total_bytes", total_bytes),
	CBW_JOB_U64("chunks", chunks),
	CBW_JOB_U64("started", started),
	CBW_JOB_U64("run_ms", run_ms),
	CBW_JOB_STR("target", target),
	CBW_JOB_STR("format", format),
};

static void cbw_job_set(void *ctx, const char *key, const char *v)
{
	struct cbw_job *job = ctx;
	unsigned int i;
	char *p;

	for (i = 0; i < ARRAY_SIZE(cbw_job_keys); i++) {
		if (strcmp(key, cbw_job_keys[i].key))
			continue;
		p = (char *)job + cbw_job_keys[i].off;
		if (cbw_job_keys[i].number)
			*(uint64_t *)p = strtoull(v, NULL, 10);
		else
			snprintf(p, cbw_job_keys[i].size, "%s", v);
		return;
	}
}

/*
 * Reads the KEY=VALUE lines of @path into @set (lines that start with '#'
 * are comments): 0, -ENOENT if there is no such file, or another errno.
 */
int cbw_kv_load(const char *path, cbw_kv_setter set, void *ctx)
{
	char line[PATH_MAX + 64], *eq, *nl;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		eq = strchr(line, '=');
		if (!eq || line[0] == '#')
			continue;
		*eq = 0;
		set(ctx, line, eq + 1);
	}
	fclose(f);
	return 0;
}

/* The job of @dev: 0, -ENOENT if there is none, or another errno. */
int cbw_job_load(const struct cbw_dev *dev, struct cbw_job *job)
{
	char path[PATH_MAX];

	memset(job, 0, sizeof(*job));
	cbw_job_path(dev, path);
	return cbw_kv_load(path, cbw_job_set, job);
}

static int cbw_job_write(FILE *f, const void *ctx)
{
	const struct cbw_job *job = ctx;
	const char *p;
	unsigned int i;

	fprintf(f, "# dm-cbw backup job: see cbwctl(8)\n");
	for (i = 0; i < ARRAY_SIZE(cbw_job_keys); i++) {
		p = (const char *)job + cbw_job_keys[i].off;
		if (cbw_job_keys[i].number)
			fprintf(f, "%s=%" PRIu64 "\n", cbw_job_keys[i].key,
				*(const uint64_t *)p);
		else
			fprintf(f, "%s=%s\n", cbw_job_keys[i].key, p);
	}
	return fflush(f) || ferror(f) || fsync(fileno(f)) ? -EIO : 0;
}

/*
 * Replaces @path, a file of the run directory, with what @write writes,
 * atomically (a temporary file renamed over it): 0 or an exit status, the
 * error printed with @what, the name of the file for the user.
 */
int cbw_run_file_save(const char *path, const char *what,
		      cbw_file_writer write, const void *ctx)
{
	char tmp[PATH_MAX + 8];
	FILE *f;
	int r;

	if (mkdir(cbw_run_dir(), 0700) && errno != EEXIST)
		return cbw_error("Cannot create %s: %s (set CBW_RUN_DIR to a writable directory)",
				 cbw_run_dir(), strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return cbw_error("Cannot write %s %s: %s", what, tmp,
				 strerror(errno));
	r = write(f, ctx);
	if (fclose(f) && !r)
		r = -errno;
	if (!r && rename(tmp, path))
		r = -errno;
	if (r) {
		unlink(tmp);
		return cbw_error("Cannot write %s %s: %s", what, path,
				 strerror(-r));
	}
	return 0;
}

/* Writes the job file of @dev: 0 or an exit status, the error printed. */
int cbw_job_save(const struct cbw_dev *dev, const struct cbw_job *job)
{
	char path[PATH_MAX];

	cbw_job_path(dev, path);
	return cbw_run_file_save(path, "the job file", cbw_job_write, job);
}

int cbw_job_remove(const struct cbw_dev *dev)
{
	char path[PATH_MAX];

	cbw_job_path(dev, path);
	if (unlink(path) && errno != ENOENT)
		return cbw_error("Cannot remove the job file %s: %s", path,
				 strerror(errno));
	return 0;
}
