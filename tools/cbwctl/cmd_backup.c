// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl backup: QEMU's backup job over a fleecing snapshot, on a cbw
 * device.
 *
 * begin   validates the sync and bitmap modes as QEMU does (same order,
 *         same words), starts the snapshot with a cbw table that freezes
 *         the bitmap at the snapshot point (freeze_bitmap; snapshot_bitmap
 *         too for sync bitmap), creates the access device and writes the
 *         job file;
 * run     copies the copy set from the access device to the target
 *         (backup_copy.c);
 * finish  applies the bitmap mode (the success path if run copied
 *         everything, else the failure path), removes the access device,
 *         stops the snapshot and reports;
 * cancel  the same, always on the failure path (QEMU's job-cancel).
 * "cbwctl backup DEV ..." does begin, run and finish in one go.
 *
 * Bitmap modes at the end of a job (QEMU's backup_cleanup_sync_bitmap):
 * sync = (success || mode == always) && mode != never; sync thaws the
 * bitmap without flags (the successor, i.e. the writes since the
 * snapshot, replaces it), otherwise with DM_CBW_BITMAP_THAW_MERGE (old
 * bits plus the writes since).  A failed job with mode always first marks
 * what was not copied, in the successor.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cbwctl.h"

#define CBW_MAX_CHUNK_DEFAULT	(1ULL << 20)
#define CBW_MAX_CHUNK_LIMIT	(64ULL << 20)

struct cbw_backup_opts {
	const char *sync;		/* as given */
	const char *bitmap;
	const char *mode;
	const char *base;		/* the previous backup of the chain */
	bool force_base;		/* even if its generation differs */
	struct cbw_start_opts start;
	struct cbw_run_opts run;
	char access[CBW_DM_NAME_LEN + 8];	/* the default access name */
};

/* What "finish" and "cancel" did, for the report. */
struct cbw_end_result {
	bool success;
	bool cancelled;
	const char *bitmap_action;	/* "replaced", "merged" or NULL */
	uint64_t marked;		/* bytes marked as not copied */
	struct dm_cbw_snapshot_info snap;
};

static const char *const cbw_sync_modes[] = {
	"full", "bitmap", "incremental", "none", "top", NULL,
};

static const char *const cbw_bitmap_modes[] = {
	"on-success", "always", "never", NULL,
};

static bool cbw_one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static bool cbw_is(const char *s, const char *what)
{
	return s && !strcmp(s, what);
}

/* ------------------------------------------------------------------ */
/* Options                                                             */
/* ------------------------------------------------------------------ */

static int cbw_run_option(const struct cbw_cmd *cmd, int opt, const char *arg,
			  struct cbw_run_opts *o)
{
	switch (opt) {
	case CBW_OPT_TARGET:
		o->target = arg;
		return 0;
	case CBW_OPT_FORMAT:
		if (strcmp(arg, "raw") && strcmp(arg, "cbw"))
			return cbw_usage_error(cmd, "invalid format '%s' for --format (use raw or cbw)",
					       arg);
		o->format = arg;
		return 0;
	case CBW_OPT_MAX_CHUNK:
		if (cbw_parse_size(arg, &o->max_chunk) || !o->max_chunk ||
		    o->max_chunk % 512 || o->max_chunk > CBW_MAX_CHUNK_LIMIT)
			return cbw_usage_error(cmd, "invalid size '%s' for --max-chunk (a multiple of 512 from 512 to 64M)",
					       arg);
		return 0;
	case CBW_OPT_DISCARD_SOURCE:
		o->discard = true;
		return 0;
	}
	return cbw_usage_error(cmd, "unknown option");
}

static int cbw_backup_option(const struct cbw_cmd *cmd, int opt,
			     const char *arg, void *ctx)
{
	struct cbw_backup_opts *o = ctx;

	switch (opt) {
	case CBW_OPT_SYNC:
		if (!cbw_one_of(arg, cbw_sync_modes))
			return cbw_usage_error(cmd, "invalid sync mode '%s' for --sync (use full, bitmap, incremental, none or top)",
					       arg);
		o->sync = arg;
		return 0;
	case CBW_OPT_BITMAP:
		o->bitmap = arg;
		return 0;
	case CBW_OPT_BASE:
		o->base = arg;
		return 0;
	case CBW_OPT_FORCE_BASE:
		o->force_base = true;
		return 0;
	case CBW_OPT_BITMAP_MODE:
		if (!cbw_one_of(arg, cbw_bitmap_modes))
			return cbw_usage_error(cmd, "invalid bitmap mode '%s' for --bitmap-mode (use on-success, always or never)",
					       arg);
		o->mode = arg;
		return 0;
	case CBW_OPT_TARGET:
	case CBW_OPT_FORMAT:
	case CBW_OPT_MAX_CHUNK:
	case CBW_OPT_DISCARD_SOURCE:
		return cbw_run_option(cmd, opt, arg, &o->run);
	}
	return cbw_start_option(cmd, opt, arg, &o->start);
}

#define CBW_BEGIN_LONGOPTS \
	{ "sync", required_argument, NULL, CBW_OPT_SYNC }, \
	{ "bitmap", required_argument, NULL, CBW_OPT_BITMAP }, \
	{ "bitmap-mode", required_argument, NULL, CBW_OPT_BITMAP_MODE }, \
	{ "base", required_argument, NULL, CBW_OPT_BASE }, \
	{ "force", no_argument, NULL, CBW_OPT_FORCE_BASE }, \
	{ "cow", required_argument, NULL, CBW_OPT_COW }, \
	{ "cow-file", required_argument, NULL, CBW_OPT_COW_FILE }, \
	{ "cow-thin", required_argument, NULL, CBW_OPT_COW_THIN }, \
	{ "chunk", required_argument, NULL, CBW_OPT_CHUNK }, \
	{ "access", required_argument, NULL, CBW_OPT_ACCESS }, \
	{ "on-cbw-error", required_argument, NULL, CBW_OPT_ON_CBW_ERROR }, \
	{ "cbw-timeout", required_argument, NULL, CBW_OPT_CBW_TIMEOUT }

#define CBW_RUN_LONGOPTS \
	{ "target", required_argument, NULL, CBW_OPT_TARGET }, \
	{ "format", required_argument, NULL, CBW_OPT_FORMAT }, \
	{ "max-chunk", required_argument, NULL, CBW_OPT_MAX_CHUNK }, \
	{ "discard-source", no_argument, NULL, CBW_OPT_DISCARD_SOURCE }

static const struct option cbw_begin_longopts[] = {
	CBW_BEGIN_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static const struct option cbw_run_longopts[] = {
	CBW_RUN_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static const struct option cbw_backup_longopts[] = {
	CBW_BEGIN_LONGOPTS,
	CBW_RUN_LONGOPTS,
	{ NULL, 0, NULL, 0 },
};

static void cbw_backup_opts_init(struct cbw_backup_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->start.chunk = CBW_DEFAULT_CHUNK;
	o->run.max_chunk = CBW_MAX_CHUNK_DEFAULT;
}

/* ------------------------------------------------------------------ */
/* Validation, in the order of QEMU's do_backup_common()               */
/* ------------------------------------------------------------------ */

/* "cbwctl: backup: MESSAGE" and where help is; exit status 2. */
__printf(2, 3)
static int cbw_backup_invalid(const struct cbw_cmd *cmd, const char *fmt, ...)
{
	char title[CBW_TITLE_LEN];
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "cbwctl: %s: ", cbw_cmd_title(cmd, title));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cbwctl %s --help' for more information.\n",
		title);
	return CBW_EXIT_USAGE;
}

/* Steps 1 and 2: before the bitmap is looked up. */
static int cbw_validate_sync(const struct cbw_cmd *cmd,
			     struct cbw_backup_opts *o)
{
	char title[CBW_TITLE_LEN];

	if (!o->sync)
		return cbw_usage_error(cmd, "%s: --sync is required (full, bitmap, incremental, none or top)",
				       cbw_cmd_title(cmd, title));
	if ((cbw_is(o->sync, "bitmap") || cbw_is(o->sync, "incremental")) &&
	    !o->bitmap)
		return cbw_backup_invalid(cmd, "must provide a valid bitmap name for '%s' sync mode",
					  o->sync);
	if (cbw_is(o->sync, "incremental")) {
		if (o->mode && !cbw_is(o->mode, "on-success"))
			return cbw_backup_invalid(cmd, "Bitmap sync mode must be 'on-success' when using sync mode 'incremental'");
		o->sync = "bitmap";
		o->mode = "on-success";
	}
	if ((o->base || o->force_base) && !cbw_is(o->sync, "bitmap"))
		return cbw_usage_error(cmd, "%s: --base and --force need sync mode 'bitmap' or 'incremental'",
				       cbw_cmd_title(cmd, title));
	return 0;
}

/* A job of ours makes its bitmap busy: say so rather than "busy". */
static int cbw_check_no_job(const struct cbw_dev *dev)
{
	struct cbw_job job;

	if (cbw_job_load(dev, &job))
		return 0;
	return cbw_error("a backup job is already running on %s: finish or cancel it first",
			 dev->name);
}

/*
 * --base: the previous backup of the chain must have been made from this
 * bitmap at its current generation, or the bitmap lost writes since then
 * (it was cleared, re-created, or loaded inconsistent) and an increment
 * on top of that backup would miss them.
 */
static int cbw_check_base(const struct cbw_cmd *cmd,
			  const struct cbw_backup_opts *o,
			  const struct dm_cbw_bitmap_info *info)
{
	uint8_t buf[CBW_IMG_HEADER_SIZE];
	char title[CBW_TITLE_LEN];
	struct cbw_img_header h;
	int fd, r;

	if (!o->base)
		return 0;
	cbw_cmd_title(cmd, title);
	fd = open(o->base, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cbw_error("%s: Cannot open the base backup '%s': %s", title,
				 o->base, strerror(errno));
	r = cbw_pread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	if (!r)
		r = cbw_img_decode_header(buf, &h);
	if (r)
		return cbw_error("%s: The base backup '%s' is not an extents file (--format cbw): it records no bitmap generation",
				 title, o->base);
	if (h.generation == info->generation && h.generation)
		return 0;
	if (!info->generation && !o->force_base)
		return cbw_error("%s: Bitmap '%s' is not persistent: it has no generation to check against the base backup (give --force)",
				 title, o->bitmap);
	if (!h.generation && !o->force_base)
		return cbw_error("%s: The base backup '%s' records no bitmap generation (give --force)",
				 title, o->base);
	if (o->force_base) {
		cbw_warn("%s: bitmap '%s' has generation %llu, the base backup '%s' %llu: going on (--force)",
			 title, o->bitmap, (unsigned long long)info->generation,
			 o->base, (unsigned long long)h.generation);
		return 0;
	}
	cbw_errno_error(-ESTALE);
	return cbw_error("%s: Bitmap '%s' has generation %llu, but the base backup '%s' was made at generation %llu: the bitmap lost writes since (make a full backup, or give --force)",
			 title, o->bitmap, (unsigned long long)info->generation,
			 o->base, (unsigned long long)h.generation);
}

/*
 * Steps 3 to 7, which QEMU takes only when a bitmap is given: the bitmap
 * exists, has a mode, is not in use, and the modes make sense with it.
 */
static int cbw_validate_bitmap(const struct cbw_cmd *cmd,
			       const struct cbw_backup_opts *o,
			       const struct cbw_dev *dev,
			       struct dm_cbw_bitmap_info *info)
{
	char title[CBW_TITLE_LEN];
	int r;

	r = cbw_check_bitmap_name(o->bitmap);
	if (r)
		return CBW_EXIT_USAGE;
	r = cbw_ctl_query(dev, o->bitmap, info);
	if (r == -ENOENT)
		return cbw_backup_invalid(cmd, "Bitmap '%s' could not be found",
					  o->bitmap);
	if (r)
		return cbw_bitmap_error(r, dev, o->bitmap);
	if (!o->mode)
		return cbw_backup_invalid(cmd, "Bitmap sync mode must be given when providing a bitmap");
	r = cbw_check_no_job(dev);
	if (r)
		return r;
	if (info->status & DM_CBW_BITMAP_BUSY)
		return cbw_error("%s: Bitmap '%s' is currently in use by another operation and cannot be used",
				 cbw_cmd_title(cmd, title), o->bitmap);
	if (info->status & DM_CBW_BITMAP_INCONSISTENT) {
		cbw_errno_error(-EUCLEAN);
		return cbw_error("%s: Bitmap '%s' is inconsistent and cannot be used",
				 cbw_cmd_title(cmd, title), o->bitmap);
	}
	r = cbw_check_base(cmd, o, info);
	if (r)
		return r;
	if (cbw_is(o->sync, "none"))
		return cbw_backup_invalid(cmd, "sync mode '%s' does not produce meaningful bitmap outputs",
					  o->sync);
	if (cbw_is(o->mode, "never") && !cbw_is(o->sync, "bitmap"))
		return cbw_backup_invalid(cmd, "Bitmap sync mode '%s' has no meaningful effect when combined with sync mode '%s'",
					  o->mode, o->sync);
	return 0;
}

/* Steps 8 and 9. */
static int cbw_validate_modes(const struct cbw_cmd *cmd,
			      const struct cbw_backup_opts *o)
{
	if (o->mode && !o->bitmap)
		return cbw_backup_invalid(cmd, "Cannot specify bitmap sync mode without a bitmap");
	if (cbw_is(o->sync, "top"))
		return cbw_backup_invalid(cmd, "sync mode 'top' needs a backing chain, which a block device does not have: use 'full'");
	return 0;
}

/*
 * Everything QEMU checks, before anything changes; opens @dev on the way
 * (the bitmap is looked up on it).  0 or an exit status.
 */
static int cbw_backup_validate(const struct cbw_cmd *cmd,
			       struct cbw_backup_opts *o, const char *spec,
			       struct cbw_dev *dev,
			       struct dm_cbw_bitmap_info *info)
{
	int r;

	r = cbw_validate_sync(cmd, o);
	if (!r)
		r = cbw_open_device(spec, dev);
	if (!r && o->bitmap)
		r = cbw_validate_bitmap(cmd, o, dev, info);
	if (!r)
		r = cbw_validate_modes(cmd, o);
	if (!r)
		r = cbw_check_start_opts(cmd, &o->start);
	return r;
}

/* ------------------------------------------------------------------ */
/* begin                                                               */
/* ------------------------------------------------------------------ */

static int cbw_no_job_error(const struct cbw_dev *dev, int err)
{
	char path[PATH_MAX];

	cbw_job_path(dev, path);
	if (err == -ENOENT)
		return cbw_error("No backup job on '%s' (start one with: cbwctl backup begin %s --sync MODE --cow COWDEV)",
				 dev->spec, dev->spec);
	return cbw_error("Cannot read the job file %s: %s", path,
			 strerror(-err));
}

/* No job yet, and a kernel that can freeze bitmaps if one is needed. */
static int cbw_begin_preflight(const struct cbw_backup_opts *o,
			       const struct cbw_dev *dev)
{
	struct dm_cbw_version v;
	int r;

	r = cbw_check_no_job(dev);
	if (r)
		return r;
	if (!o->bitmap)
		return 0;
	r = cbw_ctl_version(&v);
	if (r || !(v.features & DM_CBW_FEATURE_FREEZE))
		return cbw_error("The loaded dm-cbw module cannot freeze bitmaps, which a backup with --bitmap needs (interface %u.%u: update the module)",
				 v.major, v.minor);
	return 0;
}

static void cbw_job_fill(struct cbw_job *job, const struct cbw_backup_opts *o,
			 const struct cbw_dev *dev, uint64_t size)
{
	memset(job, 0, sizeof(*job));
	snprintf(job->device, sizeof(job->device), "%s", dev->name);
	snprintf(job->sync, sizeof(job->sync), "%s", o->sync);
	snprintf(job->bitmap, sizeof(job->bitmap), "%s",
		 o->bitmap ? o->bitmap : "");
	snprintf(job->bitmap_mode, sizeof(job->bitmap_mode), "%s",
		 o->mode ? o->mode : "");
	snprintf(job->access, sizeof(job->access), "%s", o->start.access);
	cbw_cow_spec(&o->start, job->cow, sizeof(job->cow));
	snprintf(job->state, sizeof(job->state), "begun");
	job->chunk = o->start.chunk;
	job->size = size;
	job->total_bytes = size;
	job->started = time(NULL);
}

/* The bits frozen at the snapshot point are what sync bitmap copies. */
static int cbw_job_bitmap_total(const struct cbw_dev *dev, struct cbw_job *job)
{
	struct dm_cbw_bitmap_info info;
	int r;

	if (!job->bitmap[0])
		return 0;
	r = cbw_ctl_query(dev, job->bitmap, &info);
	if (r)
		return cbw_bitmap_error(r, dev, job->bitmap);
	job->granularity = info.granularity;
	job->generation = info.generation;
	if (!strcmp(job->sync, "bitmap"))
		job->total_bytes = info.count;
	return 0;
}

static void cbw_begin_report(const struct cbw_job *job)
{
	char size[CBW_SIZE_BUF];

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("event", "begun");
		cbw_json_string("device", job->device);
		cbw_json_string("sync", job->sync);
		cbw_json_string("bitmap", job->bitmap);
		cbw_json_string("bitmap_mode", job->bitmap_mode);
		cbw_json_string("access", job->access);
		cbw_json_u64("total", job->total_bytes);
		cbw_json_object_end();
		return;
	}
	printf("Backup of '%s' begun: sync %s", job->device, job->sync);
	if (job->bitmap[0])
		printf(", bitmap '%s' frozen (%s)", job->bitmap,
		       job->bitmap_mode);
	printf(", %s to copy from /dev/mapper/%s.\n",
	       cbw_format_size(job->total_bytes, size), job->access);
}

/* The job file could not be written: undo begin, bitmap unchanged. */
static void cbw_begin_rollback(const struct cbw_dev *dev,
			       const struct cbw_backup_opts *o)
{
	struct dm_cbw_snapshot_info s;

	if ((o->bitmap &&
	     cbw_ctl_thaw(dev, o->bitmap, DM_CBW_BITMAP_THAW_MERGE)) ||
	    cbw_snapshot_end(dev, &s))
		cbw_warn("The snapshot of '%s' is still running: stop it with: cbwctl snapshot stop %s",
			 dev->spec, dev->spec);
	else
		cbw_warn("The snapshot of '%s' was stopped again", dev->spec);
}

/* The checks of begin, and the options of its snapshot. */
static int cbw_begin_setup(struct cbw_backup_opts *o, const struct cbw_dev *dev)
{
	struct cbw_target t;
	int r;

	r = cbw_begin_preflight(o, dev);
	if (!r)
		r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	cbw_target_free(&t);
	if (!o->start.access) {
		snprintf(o->access, sizeof(o->access), "%s-access", dev->name);
		if (strlen(o->access) >= CBW_DM_NAME_LEN)
			return cbw_error("The name '%s' is too long for a device-mapper device: give --access NAME",
					 o->access);
		o->start.access = o->access;
	}
	/* Writable, so that run --discard-source can discard; data writes fail. */
	o->start.access_rw = true;
	o->start.snap.freeze_bitmap = o->bitmap;
	o->start.snap.bitmap = cbw_is(o->sync, "bitmap") ? o->bitmap : NULL;
	/* A COW that fills up breaks the backup, not the guest's writes. */
	if (cbw_cow_wanted(&o->start) && !o->start.snap.on_cbw_error)
		o->start.snap.on_cbw_error = "break_snapshot";
	return 0;
}

/* Once the snapshot runs: the job file. */
static int cbw_begin_record(const struct cbw_backup_opts *o,
			    const struct cbw_dev *dev, struct cbw_job *job)
{
	struct cbw_target t;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	cbw_target_free(&t);
	cbw_job_fill(job, o, dev, t.length * 512);
	r = cbw_job_bitmap_total(dev, job);
	if (!r)
		r = cbw_job_save(dev, job);
	return r;
}

/*
 * After a failed begin: @bitmap of @dev, if the snapshot froze it, thawed
 * with its bits merged (a bitmap frozen before the begin was refused as
 * busy).
 */
static void cbw_begin_thaw(const struct cbw_dev *dev, const char *bitmap)
{
	struct dm_cbw_bitmap_info info;

	if (bitmap && !cbw_ctl_query(dev, bitmap, &info) &&
	    (info.status & DM_CBW_BITMAP_FROZEN))
		cbw_ctl_thaw(dev, bitmap, DM_CBW_BITMAP_THAW_MERGE);
}

/* Snapshot, frozen bitmap, access device and job file. */
static int cbw_begin(struct cbw_backup_opts *o, const struct cbw_dev *dev,
		     struct cbw_job *job)
{
	int r;

	r = cbw_begin_setup(o, dev);
	if (r)
		return r;
	r = cbw_snapshot_begin(dev, &o->start);
	if (r) {
		/* The access device failed after the snapshot started. */
		cbw_begin_thaw(dev, o->bitmap);
		return r;
	}
	r = cbw_begin_record(o, dev, job);
	if (r) {
		cbw_begin_rollback(dev, o);
		return r;
	}
	cbw_begin_report(job);
	return 0;
}

static struct cbw_multi_opts *cbw_backup_multi_opts(struct cbw_multi_opts *m,
						    struct cbw_backup_opts *o);
static int cbw_backup_multi(const struct cbw_cmd *cmd,
			    struct cbw_multi_opts *mo, int nr, char **specs,
			    bool whole);

static int cbw_backup_begin(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_bitmap_info info;
	struct cbw_multi_opts m;
	struct cbw_backup_opts o;
	struct cbw_job job;
	struct cbw_dev dev;
	int i, r;

	cbw_backup_opts_init(&o);
	r = cbw_parse_cmd(cmd, argc, argv, cbw_begin_longopts,
			  cbw_multi_option, cbw_backup_multi_opts(&m, &o), &i);
	if (!r && argc - i > 1)
		return cbw_backup_multi(cmd, &m, argc - i, argv + i, false);
	if (!r)
		r = cbw_multi_apply(cmd, &m, 1, 0, &o);
	if (!r)
		r = cbw_backup_validate(cmd, &o, argv[i], &dev, &info);
	if (r)
		return r;
	cbw_json_set_compact(true);
	return cbw_begin(&o, &dev, &job);
}

/* ------------------------------------------------------------------ */
/* run                                                                 */
/* ------------------------------------------------------------------ */

static int cbw_run_check(const struct cbw_job *job, const struct cbw_dev *dev)
{
	if (!strcmp(job->sync, "none"))
		return cbw_error("The backup job on '%s' has sync mode 'none': read /dev/mapper/%s yourself, then: cbwctl backup finish %s",
				 dev->spec, job->access, dev->spec);
	if (!strcmp(job->state, "copied"))
		return cbw_error("The backup job on '%s' has copied everything already: cbwctl backup finish %s",
				 dev->spec, dev->spec);
	if (strcmp(job->state, "begun"))
		return cbw_error("The backup job on '%s' failed at offset %llu: end it with: cbwctl backup finish %s (or cancel)",
				 dev->spec, (unsigned long long)job->fail_offset,
				 dev->spec);
	return 0;
}

static void cbw_run_report(const struct cbw_job *job)
{
	char size[CBW_SIZE_BUF];

	if (cbw_opts.json)
		return;		/* the completed or failed event said it */
	if (strcmp(job->state, "copied"))
		printf("Copied %s in %llu chunks before the error.\n",
		       cbw_format_size(job->done_bytes, size),
		       (unsigned long long)job->chunks);
	else
		printf("Copied %s in %llu chunks to %s (%s) in %.2f s.\n",
		       cbw_format_size(job->done_bytes, size),
		       (unsigned long long)job->chunks, job->target,
		       job->format, job->run_ms / 1000.0);
}

/* Copies and records the outcome in the job file. */
static int cbw_run(const struct cbw_dev *dev, struct cbw_job *job,
		   const struct cbw_run_opts *o)
{
	int r, s;

	r = cbw_run_check(job, dev);
	if (r)
		return r;
	snprintf(job->target, sizeof(job->target), "%s", o->target);
	snprintf(job->format, sizeof(job->format), "%s",
		 o->format ? o->format :
		 !strcmp(job->sync, "bitmap") ? "cbw" : "raw");
	r = cbw_backup_copy(dev, job, o);
	if (r)
		cbw_cow_explain_broken(dev);
	if (strcmp(job->state, "begun")) {
		s = cbw_job_save(dev, job);
		if (s)
			return s;
		cbw_run_report(job);
	}
	return r;
}

static int cbw_backup_run(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_backup_opts o;
	char title[CBW_TITLE_LEN];
	struct cbw_job job;
	struct cbw_dev dev;
	int i, r;

	cbw_backup_opts_init(&o);
	r = cbw_parse_cmd(cmd, argc, argv, cbw_run_longopts,
			  cbw_backup_option, &o, &i);
	if (!r && !o.run.target)
		r = cbw_usage_error(cmd, "%s: --target PATH is required",
				    cbw_cmd_title(cmd, title));
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (r)
		return r;
	r = cbw_job_load(&dev, &job);
	if (r)
		return cbw_no_job_error(&dev, r);
	cbw_json_set_compact(true);
	return cbw_run(&dev, &job, &o.run);
}

/* ------------------------------------------------------------------ */
/* finish, cancel                                                      */
/* ------------------------------------------------------------------ */

/* Marks again what the failed job did not copy, from @from on. */
static int cbw_mark_uncopied(const struct cbw_dev *dev,
			     const struct cbw_job *job, uint64_t from,
			     uint64_t *marked)
{
	struct dm_cbw_extent ext[CBW_DEFAULT_BATCH];
	struct dm_cbw_bitmap_read rd;
	unsigned int i;
	int r;

	if (strcmp(job->sync, "bitmap")) {
		if (from >= job->size)
			return 0;
		*marked = job->size - from;
		return cbw_ctl_mark(dev, job->bitmap, from, job->size - from);
	}
	while (from < job->size) {
		rd.offset = from;
		rd.length = job->size - from;
		r = cbw_ctl_read(DM_CBW_IOC_BITMAP_READ, dev, job->bitmap, &rd,
				 ext, ARRAY_SIZE(ext));
		for (i = 0; !r && i < rd.nr_extents && i < ARRAY_SIZE(ext); i++) {
			r = cbw_ctl_mark(dev, job->bitmap, ext[i].offset,
					 ext[i].length);
			*marked += ext[i].length;
		}
		if (r || rd.next_offset <= from)
			return r;
		from = rd.next_offset;
	}
	return 0;
}

/*
 * The bitmap mode: thaw the bitmap, replacing it by its successor or
 * merging them.  A bitmap that is not frozen any more was thawed by an
 * earlier finish that failed later on.
 */
static int cbw_end_bitmap(const struct cbw_dev *dev, const struct cbw_job *job,
			  struct cbw_end_result *res)
{
	bool always = !strcmp(job->bitmap_mode, "always");
	bool never = !strcmp(job->bitmap_mode, "never");
	struct dm_cbw_bitmap_info info;
	bool sync = (res->success || always) && !never;
	uint64_t from;
	int r;

	r = cbw_ctl_query(dev, job->bitmap, &info);
	if (r)
		return cbw_bitmap_error(r, dev, job->bitmap);
	if (!(info.status & DM_CBW_BITMAP_FROZEN)) {
		cbw_warn("Bitmap '%s' is not frozen any more: leaving it as it is",
			 job->bitmap);
		return 0;
	}
	if (!res->success && always && strcmp(job->state, "copied")) {
		from = !strcmp(job->state, "failed") ? job->fail_offset : 0;
		r = cbw_mark_uncopied(dev, job, from, &res->marked);
		if (r)
			return cbw_bitmap_error(r, dev, job->bitmap);
	}
	r = cbw_ctl_thaw(dev, job->bitmap, sync ? 0 : DM_CBW_BITMAP_THAW_MERGE);
	if (r)
		return cbw_bitmap_error(r, dev, job->bitmap);
	res->bitmap_action = sync ? "replaced" : "merged";
	return 0;
}

static void cbw_end_json(const struct cbw_job *job,
			 const struct cbw_end_result *res)
{
	cbw_json_object_begin(NULL);
	cbw_json_string("event", res->cancelled ? "cancelled" : "finished");
	cbw_json_string("device", job->device);
	cbw_json_bool("success", res->success);
	cbw_json_string("sync", job->sync);
	cbw_json_string("bitmap", job->bitmap);
	cbw_json_string("bitmap_mode", job->bitmap_mode);
	if (res->bitmap_action)
		cbw_json_string("bitmap_action", res->bitmap_action);
	else
		cbw_json_null("bitmap_action");
	cbw_json_u64("marked", res->marked);
	cbw_json_string("target", job->target);
	cbw_json_string("format", job->format);
	cbw_json_u64("bytes", job->done_bytes);
	cbw_json_u64("chunks", job->chunks);
	cbw_json_u64("total", job->total_bytes);
	cbw_json_u64("milliseconds", job->run_ms);
	cbw_json_u64("cow_chunk_size", res->snap.chunk_size);
	cbw_json_u64("cow_chunks_used", res->snap.chunks_copied);
	cbw_json_u64("cow_bytes_used",
		     res->snap.chunks_copied * res->snap.chunk_size);
	cbw_json_object_end();
}

static void cbw_end_text(const struct cbw_job *job,
			 const struct cbw_end_result *res)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF], c[CBW_SIZE_BUF];

	printf("Backup of '%s' %s (sync %s): %s copied in %llu chunks in %.2f s",
	       job->device, res->cancelled ? "cancelled" :
	       res->success ? "finished" : "failed",
	       job->sync, cbw_format_size(job->done_bytes, a),
	       (unsigned long long)job->chunks, job->run_ms / 1000.0);
	if (job->target[0])
		printf(" to %s (%s)", job->target, job->format);
	printf(".\nCOW space used: %llu chunks of %s (%s).\n",
	       (unsigned long long)res->snap.chunks_copied,
	       cbw_format_size(res->snap.chunk_size, b),
	       cbw_format_size(res->snap.chunks_copied * res->snap.chunk_size, c));
	if (!res->bitmap_action)
		return;
	if (!strcmp(res->bitmap_action, "replaced"))
		printf("Bitmap '%s' (%s) now holds the writes since the snapshot",
		       job->bitmap, job->bitmap_mode);
	else
		printf("Bitmap '%s' (%s) kept its bits and gained the writes since the snapshot",
		       job->bitmap, job->bitmap_mode);
	if (res->marked)
		printf(", and the %s that were not copied",
		       cbw_format_size(res->marked, a));
	printf(".\n");
}

/* finish (@cancel false) or cancel: 0 or an exit status. */
static int cbw_end(const struct cbw_dev *dev, struct cbw_job *job, bool cancel)
{
	struct cbw_end_result res = { .cancelled = cancel };
	int r;

	res.success = !cancel && (!strcmp(job->state, "copied") ||
				  !strcmp(job->sync, "none"));
	if (job->bitmap[0]) {
		r = cbw_end_bitmap(dev, job, &res);
		if (r)
			return r;
	}
	r = cbw_snapshot_end(dev, &res.snap);
	if (!r)
		r = cbw_job_remove(dev);
	if (r)
		return r;
	if (cbw_opts.json)
		cbw_end_json(job, &res);
	else
		cbw_end_text(job, &res);
	return res.success || cancel ? CBW_EXIT_OK : CBW_EXIT_FAIL;
}

static int cbw_backup_end(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_job job;
	struct cbw_dev dev;
	int i, r;

	r = cbw_parse_dev_cmd(cmd, argc, argv, &dev, &i);
	if (r)
		return r;
	r = cbw_job_load(&dev, &job);
	if (r)
		return cbw_no_job_error(&dev, r);
	cbw_json_set_compact(true);
	return cbw_end(&dev, &job, !strcmp(cmd->name, "cancel"));
}

/* ------------------------------------------------------------------ */
/* status                                                              */
/* ------------------------------------------------------------------ */

static void cbw_status_json(const struct cbw_job *job,
			    const struct dm_cbw_bitmap_info *info,
			    const struct dm_cbw_snapshot_info *s)
{
	cbw_json_object_begin(NULL);
	cbw_json_string("device", job->device);
	cbw_json_string("state", job->state);
	cbw_json_string("sync", job->sync);
	cbw_json_string("bitmap", job->bitmap);
	cbw_json_string("bitmap_mode", job->bitmap_mode);
	cbw_json_string("access", job->access);
	cbw_json_string("cow", job->cow);
	cbw_json_u64("chunk", job->chunk);
	cbw_json_u64("started", job->started);
	cbw_json_u64("done", job->done_bytes);
	cbw_json_u64("total", job->total_bytes);
	cbw_json_u64("chunks", job->chunks);
	cbw_json_u64("fail_offset", job->fail_offset);
	cbw_json_string("error", job->error ? strerror(job->error) : "");
	cbw_json_string("target", job->target);
	cbw_json_string("format", job->format);
	if (info) {
		cbw_json_u64("bitmap_count", info->count);
		cbw_json_u64("successor_count", info->successor_count);
		cbw_json_bool("frozen", info->status & DM_CBW_BITMAP_FROZEN);
	}
	cbw_json_u64("cow_chunks_used", s->chunks_copied);
	cbw_json_bool("snapshot_broken", s->state == DM_CBW_SNAPSHOT_BROKEN);
	cbw_json_object_end();
}

static void cbw_status_text(const struct cbw_job *job,
			    const struct dm_cbw_bitmap_info *info,
			    const struct dm_cbw_snapshot_info *s)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF], when[64];
	time_t started = job->started;

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z",
		 localtime(&started));

	cbw_print_field("device", "%s", job->device);
	cbw_print_field("state", "%s", job->state);
	cbw_print_field("sync", "%s", job->sync);
	if (info) {
		cbw_print_field("bitmap", "%s (%s)%s", job->bitmap,
				job->bitmap_mode,
				info->status & DM_CBW_BITMAP_FROZEN ? ", frozen" : "");
		cbw_print_field("frozen count", "%s",
				cbw_format_size(info->count, a));
		cbw_print_field("successor count", "%s",
				cbw_format_size(info->successor_count, b));
	}
	cbw_print_field("access device", "/dev/mapper/%s", job->access);
	cbw_print_field("COW device", "%s", job->cow);
	cbw_print_field("started", "%s", when);
	cbw_print_field("copied", "%s of %s in %llu chunks",
			cbw_format_size(job->done_bytes, a),
			cbw_format_size(job->total_bytes, b),
			(unsigned long long)job->chunks);
	if (!strcmp(job->state, "failed"))
		cbw_print_field("failed at", "%llu (%s)",
				(unsigned long long)job->fail_offset,
				strerror(job->error));
	if (job->target[0])
		cbw_print_field("target", "%s (%s)", job->target, job->format);
	cbw_print_field("COW chunks used", "%llu",
			(unsigned long long)s->chunks_copied);
	if (s->state == DM_CBW_SNAPSHOT_BROKEN)
		cbw_print_field("snapshot", "broken (%s)", strerror(-s->error));
}

static int cbw_status(const struct cbw_dev *dev)
{
	struct dm_cbw_bitmap_info info;
	struct dm_cbw_snapshot_info s;
	struct cbw_job job;
	int r;

	r = cbw_job_load(dev, &job);
	if (r == -ENOENT) {
		if (cbw_opts.json) {
			cbw_json_object_begin(NULL);
			cbw_json_string("device", dev->name);
			cbw_json_string("state", "none");
			cbw_json_object_end();
		} else {
			printf("No backup job on '%s'.\n", dev->name);
		}
		return CBW_EXIT_OK;
	}
	if (r)
		return cbw_no_job_error(dev, r);
	if (job.bitmap[0]) {
		r = cbw_ctl_query(dev, job.bitmap, &info);
		if (r)
			return cbw_bitmap_error(r, dev, job.bitmap);
	}
	r = cbw_ctl_snapshot_info(dev, &s);
	if (r)
		return cbw_device_error(r, dev);
	if (cbw_opts.json)
		cbw_status_json(&job, job.bitmap[0] ? &info : NULL, &s);
	else
		cbw_status_text(&job, job.bitmap[0] ? &info : NULL, &s);
	return CBW_EXIT_OK;
}

static int cbw_backup_status(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_dev dev;
	int i, r;

	r = cbw_parse_dev_cmd(cmd, argc, argv, &dev, &i);
	if (r)
		return r;
	return cbw_status(&dev);
}

/* ------------------------------------------------------------------ */
/* Several devices: one snapshot point (QEMU's transaction)            */
/* ------------------------------------------------------------------ */

static struct cbw_multi_opts *cbw_backup_multi_opts(struct cbw_multi_opts *m,
						    struct cbw_backup_opts *o)
{
	memset(m, 0, sizeof(*m));
	m->rules = cbw_multi_backup_rules;
	m->handle = cbw_backup_option;
	m->ctx = o;
	return m;
}

/* The bitmaps that the snapshots froze, thawed with their bits merged. */
static void cbw_backup_multi_thaw(const struct cbw_multi *m,
				  const struct cbw_backup_opts *opts)
{
	unsigned int i;

	for (i = 0; i < m->nr; i++)
		cbw_begin_thaw(&m->devs[i].dev, opts[i].bitmap);
}

/* Undoes the begin of every device of @m; @nr_saved have a job file. */
static void cbw_backup_multi_undo(struct cbw_multi *m,
				  struct cbw_backup_opts *opts,
				  unsigned int nr_saved)
{
	unsigned int i;

	for (i = 0; i < nr_saved; i++)
		cbw_job_remove(&m->devs[i].dev);
	cbw_multi_undo(m);
	cbw_backup_multi_thaw(m, opts);
}

/* Every device's checks and snapshot options, the options of device k. */
static int cbw_backup_multi_setup(const struct cbw_cmd *cmd,
				  struct cbw_multi_opts *mo, char **specs,
				  struct cbw_multi *m,
				  struct cbw_backup_opts *opts)
{
	struct dm_cbw_bitmap_info info;
	unsigned int i;
	int r;

	for (i = 0; i < m->nr; i++) {
		opts[i] = *(struct cbw_backup_opts *)mo->ctx;
		r = cbw_multi_apply(cmd, mo, m->nr, i, &opts[i]);
		if (!r)
			r = cbw_multi_check_cow(cmd, &opts[i].start);
		if (r)
			return r;
	}
	for (i = 0; i < m->nr; i++) {
		r = cbw_backup_validate(cmd, &opts[i], specs[i],
					&m->devs[i].dev, &info);
		if (!r)
			r = cbw_begin_setup(&opts[i], &m->devs[i].dev);
		if (r) {
			cbw_warn("No backup was begun: '%s' failed its checks, no device was changed",
				 specs[i]);
			return r;
		}
		m->devs[i].o = &opts[i].start;
	}
	return 0;
}

/* begin on every device at one snapshot point, then the job files. */
static int cbw_backup_multi_begin(struct cbw_multi *m,
				  struct cbw_backup_opts *opts,
				  struct cbw_job *jobs)
{
	unsigned int i;
	int r;

	r = cbw_multi_begin(m);
	if (r) {
		/* The snapshots may have started before the access devices. */
		cbw_backup_multi_thaw(m, opts);
		return r;
	}
	for (i = 0; i < m->nr; i++) {
		r = cbw_begin_record(&opts[i], &m->devs[i].dev, &jobs[i]);
		if (r) {
			cbw_backup_multi_undo(m, opts, i);
			return r;
		}
	}
	for (i = 0; i < m->nr; i++)
		cbw_begin_report(&jobs[i]);
	return 0;
}

/*
 * "backup begin DEV1 DEV2 ..." and, with @whole, "backup DEV1 DEV2 ...":
 * one snapshot point; then each device is copied and finished in turn.
 */
static int cbw_backup_multi(const struct cbw_cmd *cmd,
			    struct cbw_multi_opts *mo, int nr, char **specs,
			    bool whole)
{
	static struct cbw_backup_opts opts[CBW_MULTI_MAX];
	static struct cbw_job jobs[CBW_MULTI_MAX];
	static struct cbw_multi m;
	char title[CBW_TITLE_LEN];
	int i, r, status = CBW_EXIT_OK;

	m.nr = nr;
	r = cbw_backup_multi_setup(cmd, mo, specs, &m, opts);
	for (i = 0; !r && whole && i < nr; i++) {
		if (cbw_is(opts[i].sync, "none"))
			return cbw_backup_invalid(cmd, "sync mode 'none' cannot be one command: an external reader must read the access device between 'cbwctl backup begin' and 'cbwctl backup finish'");
		if (!opts[i].run.target)
			return cbw_usage_error(cmd, "%s: --target PATH is required, once per device",
					       cbw_cmd_title(cmd, title));
	}
	if (r)
		return r;
	cbw_json_set_compact(true);
	r = cbw_backup_multi_begin(&m, opts, jobs);
	for (i = 0; !r && whole && i < nr; i++) {
		r = cbw_run(&m.devs[i].dev, &jobs[i], &opts[i].run);
		if (r && status == CBW_EXIT_OK)
			status = r;
		r = cbw_end(&m.devs[i].dev, &jobs[i], false);
		if (r && status == CBW_EXIT_OK)
			status = r;
		r = 0;
	}
	return r ? r : status;
}

/* ------------------------------------------------------------------ */
/* backup: begin, run and finish in one command                        */
/* ------------------------------------------------------------------ */

static int cbw_backup_all(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_bitmap_info info;
	struct cbw_multi_opts m;
	struct cbw_backup_opts o;
	char title[CBW_TITLE_LEN];
	struct cbw_job job;
	struct cbw_dev dev;
	int i, r;

	cbw_backup_opts_init(&o);
	r = cbw_parse_cmd(cmd, argc, argv, cbw_backup_longopts,
			  cbw_multi_option, cbw_backup_multi_opts(&m, &o), &i);
	if (!r && argc - i > 1)
		return cbw_backup_multi(cmd, &m, argc - i, argv + i, true);
	if (!r)
		r = cbw_multi_apply(cmd, &m, 1, 0, &o);
	if (!r)
		r = cbw_backup_validate(cmd, &o, argv[i], &dev, &info);
	if (r)
		return r;
	if (cbw_is(o.sync, "none"))
		return cbw_backup_invalid(cmd, "sync mode 'none' cannot be one command: an external reader must read the access device between 'cbwctl backup begin' and 'cbwctl backup finish'");
	if (!o.run.target)
		return cbw_usage_error(cmd, "%s: --target PATH is required",
				       cbw_cmd_title(cmd, title));
	cbw_json_set_compact(true);
	r = cbw_begin(&o, &dev, &job);
	if (r)
		return r;
	r = cbw_run(&dev, &job, &o.run);
	i = cbw_end(&dev, &job, false);
	return r ? r : i;
}

/* ------------------------------------------------------------------ */
/* The table of backup subcommands                                     */
/* ------------------------------------------------------------------ */

#define CBW_BEGIN_HELP \
	"  --sync MODE         what to copy: full (the whole device), bitmap\n" \
	"                      (the granules dirty in --bitmap at the snapshot\n" \
	"                      point), incremental (bitmap with --bitmap-mode\n" \
	"                      on-success), none (nothing: an external reader\n" \
	"                      reads the access device); top is refused\n" \
	"  --bitmap NAME       the dirty bitmap: frozen at the snapshot point,\n" \
	"                      while a successor records later writes\n" \
	"  --bitmap-mode MODE  what the bitmap holds after the job:\n" \
	"                      on-success: the writes since the snapshot if the\n" \
	"                        backup succeeded, else its old bits plus those\n" \
	"                      always: the writes since the snapshot, plus what\n" \
	"                        a failed backup did not copy\n" \
	"                      never: its old bits plus the writes since (sync\n" \
	"                        bitmap only: a differential backup)\n" \
	"  --cow COWDEV        where the snapshot keeps old data, at least as\n" \
	"                      large as DEV (this, --cow-file or --cow-thin is\n" \
	"                      required)\n" \
	"  --cow-file PATH     a sparse file made for the job, through a loop\n" \
	"                      device; PATH must not exist\n" \
	"  --cow-thin VG/POOL  a thin LV, VG/cbw-cow-NAME, made for the job\n" \
	"                      (both are removed when the job ends; with them\n" \
	"                      --on-cbw-error defaults to break_snapshot)\n" \
	"  --chunk SIZE        copy-before-write granularity (default 64K)\n" \
	"  --access NAME       name of the access device (default DEV-access)\n" \
	"  --on-cbw-error POLICY, --cbw-timeout MS\n" \
	"                      as for 'cbwctl snapshot start'\n" \
	"  --base FILE         sync bitmap and incremental: the previous backup\n" \
	"                      of the chain, an extents file; refused unless it\n" \
	"                      records the bitmap's current generation (the\n" \
	"                      bitmap holds every write since it)\n" \
	"  --force             go on when the generations differ\n"

#define CBW_RUN_HELP \
	"  --target PATH       file or block device the image is written to\n" \
	"  --format FMT        raw: the data at its own offset (full: PATH is\n" \
	"                      created, or truncated, to the device size;\n" \
	"                      bitmap: PATH is the image of an earlier backup,\n" \
	"                      updated in place); cbw: an extents file, see\n" \
	"                      cbwctl(8) (default: raw for full, cbw for bitmap)\n" \
	"  --max-chunk SIZE    largest piece read at once, a multiple of 512 up\n" \
	"                      to 64M (default 1M); extents are cut at its\n" \
	"                      multiples\n" \
	"  --discard-source    discard each piece on the access device once it\n" \
	"                      is on stable storage: frees COW space, and guest\n" \
	"                      writes there are not copied any more\n"

#define CBW_MULTI_HELP \
	"Several devices (at most 16) get one snapshot point, as 'snapshot\n" \
	"start' gives it: give --cow, --target, and --access and --base if any,\n" \
	"once per device, in the order of the devices; --bitmap once for all\n" \
	"(the same name on each device) or once per device; the other options\n" \
	"apply to all.  Each device has its own job, which 'backup run',\n" \
	"'finish', 'cancel' and 'status' take one device at a time.\n"

#define CBW_VALIDATION_HELP \
	"Modes are checked as QEMU's backup job checks them, with its messages\n" \
	"(exit status 2): a bitmap is needed by sync bitmap and incremental;\n" \
	"incremental takes only on-success; the bitmap must exist; a bitmap\n" \
	"needs a mode and a mode a bitmap; sync none takes no bitmap; never\n" \
	"goes with sync bitmap only.  A busy or inconsistent bitmap, a --base of\n" \
	"another generation, or a job already running on DEV, fails with exit\n" \
	"status 1.\n"

const struct cbw_cmd cbw_backup_cmd = {
	.name = "backup",
	.params = { "DEV..." }, .min_args = 1, .max_args = CBW_MULTI_MAX,
	.synopsis = "--sync MODE [--bitmap NAME --bitmap-mode MODE] [--base FILE [--force]] --cow COWDEV|--cow-file PATH|--cow-thin VG/POOL --target PATH [--format raw|cbw] [--max-chunk SIZE] [--discard-source] [--chunk SIZE] [--access NAME] [--on-cbw-error POLICY] [--cbw-timeout MS]",
	.summary = "Back up a cbw device: begin, run and finish in one command.",
	.help =
	"Starts a snapshot of DEV (freezing a filesystem on it for a moment),\n"
	"copies the point-in-time image from the access device to PATH in\n"
	"ascending offset order and stops the snapshot; guest writes go on\n"
	"meanwhile.  If the copy fails, the job ends on the failure path (the\n"
	"bitmap follows its mode) and the exit status is 1.  --sync none needs\n"
	"the steps: begin, an external reader, finish.\n\n"
	"Options:\n"
	CBW_BEGIN_HELP
	CBW_RUN_HELP "\n"
	CBW_VALIDATION_HELP "\n"
	CBW_MULTI_HELP
	"With several devices, they are copied and finished one after the\n"
	"other; the exit status is 1 if any of them failed.\n\n"
	"The steps, for scripts:\n"
	"  cbwctl backup begin DEV --sync MODE ... --cow COWDEV\n"
	"  cbwctl backup run DEV --target PATH ...\n"
	"  cbwctl backup finish DEV      (or: cbwctl backup cancel DEV)\n"
	"  cbwctl backup status DEV\n"
	"A device-mapper device named like a step (begin, run, ...) must be\n"
	"given as /dev/mapper/NAME.\n\n"
	"Output: a line when the job begins, progress on a terminal, and a\n"
	"report (bytes and chunks copied, time, COW space used, what the\n"
	"bitmap now holds).  With --json, one JSON object per line: events\n"
	"\"begun\", \"progress\" ({\"done\", \"total\"}), \"completed\" or \"failed\",\n"
	"then \"finished\".\n",
	.run = cbw_backup_all,
};

const struct cbw_cmd cbw_backup_cmds[] = {
	{
		.group = "backup", .name = "begin",
		.params = { "DEV..." }, .min_args = 1, .max_args = CBW_MULTI_MAX,
		.synopsis = "--sync MODE [--bitmap NAME --bitmap-mode MODE] [--base FILE [--force]] --cow COWDEV|--cow-file PATH|--cow-thin VG/POOL [--chunk SIZE] [--access NAME] [--on-cbw-error POLICY] [--cbw-timeout MS]",
		.summary = "Begin a backup job: snapshot, frozen bitmap, access device.",
		.help =
		"Loads a cbw table with COWDEV (and freeze_bitmap, plus\n"
		"snapshot_bitmap for sync bitmap), swaps it in, creates the access\n"
		"device /dev/mapper/NAME and writes the job file\n"
		"${CBW_RUN_DIR:-/run/dm-cbw}/backup-MAJOR-MINOR.job.  The access\n"
		"device is writable so that discards reach it; writes of data to it\n"
		"fail.\n\n"
		"Options:\n"
		CBW_BEGIN_HELP "\n"
		CBW_VALIDATION_HELP "\n"
		CBW_MULTI_HELP "\n"
		"With --json: {\"event\": \"begun\", \"device\", \"sync\", \"bitmap\",\n"
		"\"bitmap_mode\", \"access\", \"total\"} on one line.\n",
		.run = cbw_backup_begin,
	},
	{
		.group = "backup", .name = "run",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.synopsis = "--target PATH [--format raw|cbw] [--max-chunk SIZE] [--discard-source]",
		.summary = "Copy the backup job's data from the access device to PATH.",
		.help =
		"Options:\n"
		CBW_RUN_HELP "\n"
		"Reads with O_DIRECT, one piece at a time, in ascending offset order.\n"
		"The first read error ends the run: \"read error at offset OFF of\n"
		"/dev/mapper/NAME: ERROR\", the job is marked failed at that piece\n"
		"and the exit status is 1; end the job with finish or cancel.\n"
		"Progress: a percentage on a terminal; with --json one line per\n"
		"piece, {\"event\": \"progress\", \"done\", \"total\"}, and at the end\n"
		"{\"event\": \"completed\" or \"failed\", \"device\", \"done\", \"total\",\n"
		"\"chunks\", \"target\", \"format\", \"milliseconds\"[, \"fail_offset\",\n"
		"\"error\"]}.\n",
		.run = cbw_backup_run,
	},
	{
		.group = "backup", .name = "finish",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.summary = "End the backup job: success path if run copied everything.",
		.help =
		"Applies the bitmap mode (on the failure path if run did not copy\n"
		"everything), removes the access device, stops the snapshot, removes\n"
		"the job file and reports.  Exit status 1 if the backup had failed.\n"
		"With --json: {\"event\": \"finished\", \"device\", \"success\", \"sync\",\n"
		"\"bitmap\", \"bitmap_mode\", \"bitmap_action\" (replaced, merged or\n"
		"null), \"marked\", \"target\", \"format\", \"bytes\", \"chunks\",\n"
		"\"total\", \"milliseconds\", \"cow_chunk_size\", \"cow_chunks_used\",\n"
		"\"cow_bytes_used\"}.\n",
		.run = cbw_backup_end,
	},
	{
		.group = "backup", .name = "cancel",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.summary = "End the backup job on the failure path (QEMU's job-cancel).",
		.help =
		"As finish, but always on the failure path, even after a complete\n"
		"run: with on-success and never the bitmap keeps its bits and gains\n"
		"the writes since the snapshot.  Exit status 0 when cancelled.\n"
		"With --json: as finish, with \"event\": \"cancelled\".\n",
		.run = cbw_backup_end,
	},
	{
		.group = "backup", .name = "status",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.summary = "Show the backup job of a device.",
		.help =
		"The job file and the live counts: state (begun, copied, failed),\n"
		"sync, bitmap and mode, the frozen and successor counts, bytes\n"
		"copied, the failure, the target, COW chunks used.  Without a job:\n"
		"\"No backup job on 'DEV'.\" (with --json: {\"device\", \"state\":\n"
		"\"none\"}), exit status 0.\n",
		.run = cbw_backup_status,
	},
	{ .name = NULL },
};
