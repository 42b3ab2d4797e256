// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl tab: create and remove the cbw devices that a cbwtab file lists
 * (see tab.c), at boot or by hand.
 *
 * "tab start" creates each device with a tracking-only cbw table over the
 * whole origin (and the line's metadata device) and the DM UUID
 * "CBW-NAME", then adds its dirty bitmaps; a device that already has the
 * same origin, length, chunk size and metadata device is left alone, so
 * that start can run again.  "tab stop" removes devices that are
 * not in use.  The systemd units that run them at boot are written by
 * "tab generate" (tab_units.c).
 */
#include <blkid/blkid.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbwctl.h"

/* Hops from a cbw-access device to its cbw device to that one's origin. */
#define CBW_TAB_MAX_HOPS	8

/* What happened to one device, for the text and the JSON report. */
struct cbw_tab_result {
	const char *name;
	unsigned int line;		/* 0: not from the tab file */
	const char *result;		/* created, active, removed, ... */
	char error[512];		/* empty unless result is "failed" */
};

struct cbw_tab_report {
	const char *path;
	unsigned int nr;
	unsigned int failed;
	struct cbw_tab_result *results;
};

/* ------------------------------------------------------------------ */
/* Reporting                                                           */
/* ------------------------------------------------------------------ */

static struct cbw_tab_result *cbw_tab_result(struct cbw_tab_report *rep,
					     const char *name,
					     unsigned int line)
{
	struct cbw_tab_result *res = &rep->results[rep->nr++];

	memset(res, 0, sizeof(*res));
	res->name = name;
	res->line = line;
	return res;
}

/* A success: "NAME: created". */
static int cbw_tab_done(struct cbw_tab_result *res, const char *result)
{
	res->result = result;
	if (!cbw_opts.json)
		printf("%s: %s\n", res->name, result);
	return 0;
}

/* A failure: "cbwctl: FILE:LINE: NAME: MESSAGE" on standard error. */
__printf(3, 4)
static int cbw_tab_fail(struct cbw_tab_report *rep, struct cbw_tab_result *res,
			const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->error, sizeof(res->error), fmt, ap);
	va_end(ap);
	res->result = "failed";
	rep->failed++;
	if (res->line)
		return cbw_error("%s:%u: %s: %s", rep->path, res->line,
				 res->name, res->error);
	return cbw_error("%s: %s", res->name, res->error);
}

/* A line of the file that cannot be used: "FILE:LINE: MESSAGE". */
static void cbw_tab_bad_line(struct cbw_tab_report *rep,
			     const struct cbw_tab_entry *e)
{
	struct cbw_tab_result *res = cbw_tab_result(rep, e->name, e->line);

	snprintf(res->error, sizeof(res->error), "%s", e->error);
	res->result = "failed";
	rep->failed++;
	cbw_error("%s:%u: %s", rep->path, e->line, e->error);
}

static void cbw_tab_report_json(const struct cbw_tab_report *rep)
{
	const struct cbw_tab_result *res;
	unsigned int i;

	cbw_json_object_begin(NULL);
	cbw_json_string("tab", rep->path);
	cbw_json_array_begin("devices");
	for (i = 0; i < rep->nr; i++) {
		res = &rep->results[i];
		cbw_json_object_begin(NULL);
		cbw_json_string("name", res->name);
		if (res->line)
			cbw_json_u64("line", res->line);
		else
			cbw_json_null("line");
		cbw_json_string("result", res->result);
		if (res->error[0])
			cbw_json_string("error", res->error);
		else
			cbw_json_null("error");
		cbw_json_object_end();
	}
	cbw_json_array_end();
	cbw_json_object_end();
}

static int cbw_tab_report_end(struct cbw_tab_report *rep)
{
	if (cbw_opts.json)
		cbw_tab_report_json(rep);
	free(rep->results);
	return rep->failed ? CBW_EXIT_FAIL : CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* The origin                                                          */
/* ------------------------------------------------------------------ */

struct cbw_tab_origin {
	uint32_t major;
	uint32_t minor;
	uint64_t sectors;
	/* The metadata device, if the line names one. */
	bool metadata;
	uint32_t md_major;
	uint32_t md_minor;
};

static bool cbw_is_dm_devno(uint32_t major, uint32_t minor)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm", major, minor);
	return !access(path, F_OK);
}

/*
 * A cbw device shows its origin's content, and a cbw-access device that
 * of a cbw device: either one found by UUID= or LABEL= (udev and blkid
 * may prefer device-mapper devices) stands for the origin below it.
 * Returns true if @o was moved one level down.
 */
static bool cbw_tab_origin_below(struct cbw_tab_origin *o)
{
	char spec[32];
	struct cbw_target t;
	struct cbw_dev d;
	bool moved = false;

	if (!cbw_is_dm_devno(o->major, o->minor))
		return false;
	snprintf(spec, sizeof(spec), "%u:%u", o->major, o->minor);
	if (cbw_dm_lookup(spec, &d) || cbw_dm_table(d.name, &t))
		return false;
	if (t.nr_targets == 1 && (!strcmp(t.type, DM_CBW_TARGET_NAME) ||
				  !strcmp(t.type, DM_CBW_ACCESS_TARGET_NAME)))
		moved = sscanf(t.params, "%u:%u", &o->major, &o->minor) == 2;
	cbw_target_free(&t);
	return moved;
}

static int cbw_tab_sysfs_size(struct cbw_tab_origin *o)
{
	unsigned long long sectors;
	char path[64];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/size", o->major,
		 o->minor);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fscanf(f, "%llu", &sectors);
	fclose(f);
	if (n != 1)
		return -EIO;
	o->sectors = sectors;
	return 0;
}

/* The device node of @spec; TAG=value is looked up with blkid. */
static int cbw_tab_spec_path(const char *spec, char **path)
{
	const char *value;

	if (!cbw_tab_tag_dir(spec, &value)) {
		*path = strdup(spec);
		return *path ? 0 : -ENOMEM;
	}
	*path = blkid_evaluate_tag(spec, NULL, NULL);
	return *path ? 0 : -ENOENT;
}

/* MAJOR:MINOR of the device node of @e's origin: 0 or a negative errno. */
static int cbw_tab_origin_devno(const struct cbw_tab_entry *e,
				struct cbw_tab_origin *o, char **path)
{
	int r = cbw_tab_spec_path(e->origin, path);

	return r ? r : cbw_devno_of_path(*path, &o->major, &o->minor);
}

/* The metadata device of @e, if it names one, as a device number. */
static int cbw_tab_find_metadata(struct cbw_tab_report *rep,
				 struct cbw_tab_result *res,
				 const struct cbw_tab_entry *e,
				 struct cbw_tab_origin *o)
{
	char *path = NULL;
	int r;

	o->metadata = e->metadata[0];
	if (!o->metadata)
		return 0;
	r = cbw_tab_spec_path(e->metadata, &path);
	if (!r)
		r = cbw_devno_of_path(path, &o->md_major, &o->md_minor);
	if (r == -ENOENT && !path)
		cbw_tab_fail(rep, res, "no device has %s (see: blkid)",
			     e->metadata);
	else if (r)
		cbw_tab_fail(rep, res, "metadata device %s: %s",
			     path ? path : e->metadata, strerror(-r));
	free(path);
	return r ? CBW_EXIT_FAIL : 0;
}

/*
 * The origin of @e, as a device number, after the cbw and cbw-access
 * devices above it, and its size.
 */
static int cbw_tab_find_origin(struct cbw_tab_report *rep,
			       struct cbw_tab_result *res,
			       const struct cbw_tab_entry *e,
			       struct cbw_tab_origin *o)
{
	unsigned int hops = 0;
	char *path = NULL;
	int r;

	r = cbw_tab_origin_devno(e, o, &path);
	if (r == -ENOENT && !path)
		cbw_tab_fail(rep, res, "no device has %s (see: blkid)", e->origin);
	else if (r == -ENOTBLK)
		cbw_tab_fail(rep, res, "origin %s is not a block device", path);
	else if (r)
		cbw_tab_fail(rep, res, "origin %s: %s", path ? path : e->origin,
			     strerror(-r));
	free(path);
	if (r)
		return CBW_EXIT_FAIL;
	while (hops++ < CBW_TAB_MAX_HOPS && cbw_tab_origin_below(o))
		;
	r = cbw_tab_sysfs_size(o);
	if (r)
		return cbw_tab_fail(rep, res, "cannot read the size of origin %s: %s",
				    e->origin, strerror(-r));
	return 0;
}

/* ------------------------------------------------------------------ */
/* tab start                                                           */
/* ------------------------------------------------------------------ */

/*
 * The table "tab start" creates: tracking only, over the whole origin,
 * with the metadata device of the line.
 */
static void cbw_tab_target(const struct cbw_tab_entry *e,
			   const struct cbw_tab_origin *o, struct cbw_target *t,
			   char *params, size_t len)
{
	int n;

	memset(t, 0, sizeof(*t));
	t->length = o->sectors;
	snprintf(t->type, sizeof(t->type), "%s", DM_CBW_TARGET_NAME);
	n = snprintf(params, len, "%u:%u %s %llu", o->major, o->minor,
		     DM_CBW_NO_COW, (unsigned long long)(e->chunk / 512));
	if (o->metadata)
		snprintf(params + n, len - n, " 2 metadata_dev %u:%u",
			 o->md_major, o->md_minor);
	t->params = params;
}

/* "metadata_dev M:m" of a table's parameters, or "" without one. */
static void cbw_tab_metadata_arg(const char *params, char *arg, size_t len)
{
	const char *p = strstr(params, " metadata_dev ");

	*arg = '\0';
	if (p)
		snprintf(arg, len, "%.*s", (int)strcspn(p + 1 + 13, " ") + 13,
			 p + 1);
}

/*
 * The live table of an existing device against the one of @want: the
 * same origin, length, chunk size and metadata device (a snapshot may be
 * running).
 */
static bool cbw_tab_same_table(const struct cbw_target *live,
			       const struct cbw_target *want)
{
	unsigned int major, minor, wmajor, wminor;
	unsigned long long chunk, wchunk;
	char md[64], wmd[64];

	if (live->nr_targets != 1 || strcmp(live->type, want->type) ||
	    live->start || live->length != want->length)
		return false;
	if (sscanf(live->params, "%u:%u %*s %llu", &major, &minor, &chunk) != 3 ||
	    sscanf(want->params, "%u:%u %*s %llu", &wmajor, &wminor, &wchunk) != 3)
		return false;
	cbw_tab_metadata_arg(live->params, md, sizeof(md));
	cbw_tab_metadata_arg(want->params, wmd, sizeof(wmd));
	return major == wmajor && minor == wminor && chunk == wchunk &&
	       !strcmp(md, wmd);
}

static int cbw_tab_check_existing(struct cbw_tab_report *rep,
				  struct cbw_tab_result *res,
				  const struct cbw_target *want)
{
	struct cbw_target live;
	int r;

	r = cbw_dm_table(res->name, &live);
	if (r)
		return cbw_tab_fail(rep, res, "cannot read its table: %s",
				    strerror(-r));
	if (!cbw_tab_same_table(&live, want)) {
		cbw_tab_fail(rep, res, "exists with another table: '%llu %llu %s %s', not '0 %llu %s %s' (remove it, or fix the line)",
			     (unsigned long long)live.start,
			     (unsigned long long)live.length,
			     live.nr_targets ? live.type : "-",
			     live.nr_targets ? live.params : "",
			     (unsigned long long)want->length, want->type,
			     want->params);
		cbw_target_free(&live);
		return CBW_EXIT_FAIL;
	}
	cbw_target_free(&live);
	return cbw_tab_done(res, "active");
}

static int cbw_tab_add_bitmaps(struct cbw_tab_report *rep,
			       struct cbw_tab_result *res,
			       const struct cbw_tab_entry *e)
{
	const struct cbw_tab_bitmap *b;
	struct cbw_dev dev;
	unsigned int i;
	int r;

	if (!e->nr_bitmaps)
		return 0;
	if (cbw_ctl_open() < 0)
		return cbw_tab_fail(rep, res, "cannot add its bitmaps without %s",
				    CBW_CONTROL_PATH);
	r = cbw_dm_lookup(e->name, &dev);
	if (r)
		return cbw_tab_fail(rep, res, "cannot look it up: %s",
				    strerror(-r));
	for (i = 0; i < e->nr_bitmaps; i++) {
		b = &e->bitmaps[i];
		r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_ADD, &dev, b->name,
				   b->granularity,
				   b->persistent ? DM_CBW_BITMAP_PERSISTENT : 0);
		/* Loaded from the metadata device with the table. */
		if (r == -EEXIST && b->persistent)
			r = 0;
		if (r)
			return cbw_tab_fail(rep, res, "cannot add bitmap '%s': %s",
					    b->name, strerror(-r));
	}
	return 0;
}

static int cbw_tab_create(struct cbw_tab_report *rep,
			  struct cbw_tab_result *res,
			  const struct cbw_tab_entry *e,
			  const struct cbw_target *t)
{
	char uuid[CBW_DM_NAME_LEN + sizeof(CBW_DM_UUID_PREFIX)];
	int r;

	snprintf(uuid, sizeof(uuid), "%s%s", CBW_DM_UUID_PREFIX, e->name);
	r = cbw_dm_create(e->name, uuid, t, 0);
	if (r)
		return cbw_tab_fail(rep, res, "cannot create the device '0 %llu %s %s': %s (the kernel log says why: dmesg | tail)",
				    (unsigned long long)t->length, t->type,
				    t->params, strerror(-r));
	/* All or nothing: a start that failed can simply be run again. */
	if (cbw_tab_add_bitmaps(rep, res, e)) {
		r = cbw_dm_remove(e->name);
		if (r)
			cbw_warn("%s: cannot remove it again: %s", e->name,
				 strerror(-r));
		return CBW_EXIT_FAIL;
	}
	return cbw_tab_done(res, "created");
}

static void cbw_tab_start_one(struct cbw_tab_report *rep,
			      const struct cbw_tab_entry *e)
{
	struct cbw_tab_result *res;
	struct cbw_tab_origin o;
	struct cbw_target t;
	struct cbw_dev dev;
	char params[160];
	int r;

	if (e->error[0]) {
		cbw_tab_bad_line(rep, e);
		return;
	}
	res = cbw_tab_result(rep, e->name, e->line);
	if (cbw_tab_find_origin(rep, res, e, &o) ||
	    cbw_tab_find_metadata(rep, res, e, &o))
		return;
	cbw_tab_target(e, &o, &t, params, sizeof(params));
	r = cbw_dm_lookup(e->name, &dev);
	if (!r)
		cbw_tab_check_existing(rep, res, &t);
	else if (r == -ENOENT)
		cbw_tab_create(rep, res, e, &t);
	else
		cbw_tab_fail(rep, res, "cannot look it up: %s", strerror(-r));
}

/* ------------------------------------------------------------------ */
/* tab stop                                                            */
/* ------------------------------------------------------------------ */

/* Why @dev may not be removed, or 0. */
static int cbw_tab_check_stop(struct cbw_tab_report *rep,
			      struct cbw_tab_result *res,
			      const struct cbw_dev *dev)
{
	char cow[CBW_DM_NAME_LEN] = "";
	struct cbw_target t;
	bool is_cbw;
	int r;

	r = cbw_dm_table(dev->name, &t);
	if (r)
		return cbw_tab_fail(rep, res, "cannot read its table: %s",
				    strerror(-r));
	is_cbw = t.nr_targets == 1 && !strcmp(t.type, DM_CBW_TARGET_NAME);
	if (is_cbw)
		sscanf(t.params, "%*s %127s", cow);
	cbw_target_free(&t);
	if (!is_cbw)
		return cbw_tab_fail(rep, res, "not a cbw device: not removed");
	if (dev->open_count)
		return cbw_tab_fail(rep, res, "in use (open %d times): unmount it, or close what has it open, first",
				    dev->open_count);
	if (strcmp(cow, DM_CBW_NO_COW))
		return cbw_tab_fail(rep, res, "has a running snapshot: stop it first (cbwctl snapshot stop %s)",
				    dev->name);
	return 0;
}

static void cbw_tab_stop_one(struct cbw_tab_report *rep, const char *name,
			     unsigned int line)
{
	struct cbw_tab_result *res = cbw_tab_result(rep, name, line);
	struct cbw_dev dev;
	int r;

	r = cbw_dm_lookup(name, &dev);
	if (r == -ENOENT) {
		cbw_tab_done(res, "inactive");
		return;
	}
	if (r) {
		cbw_tab_fail(rep, res, "cannot look it up: %s", strerror(-r));
		return;
	}
	if (cbw_tab_check_stop(rep, res, &dev))
		return;
	r = cbw_dm_remove(name);
	if (r)
		cbw_tab_fail(rep, res, "cannot remove it: %s", strerror(-r));
	else
		cbw_tab_done(res, "removed");
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

static int cbw_tab_option(const struct cbw_cmd *cmd, int opt, const char *arg,
			  void *ctx)
{
	(void)cmd;
	(void)opt;
	*(const char **)ctx = arg;
	return 0;
}

static const struct option cbw_tab_longopts[] = {
	{ "tab", required_argument, NULL, CBW_OPT_TAB },
	{ NULL, 0, NULL, 0 },
};

/* Reads the file; "tab stop NAME..." does without one. */
static int cbw_tab_load(const char *path, struct cbw_tab *tab, bool optional)
{
	int r = cbw_tab_read(path, tab);

	if (!r || (r == -ENOENT && optional))
		return 0;
	return cbw_error("Cannot read %s: %s", path, strerror(-r));
}

typedef void (*cbw_tab_action)(struct cbw_tab_report *rep,
			       const struct cbw_tab_entry *e);

/* @act on every line of @tab named in @names, or on every line if none. */
static void cbw_tab_for_each(struct cbw_tab_report *rep, struct cbw_tab *tab,
			     char **names, int nr_names, bool all_lines,
			     cbw_tab_action act)
{
	struct cbw_tab_result *res;
	unsigned int i;
	int n, hits;

	if (!nr_names) {
		for (i = 0; i < tab->nr; i++)
			if (all_lines || !tab->entries[i].noauto ||
			    tab->entries[i].error[0])
				act(rep, &tab->entries[i]);
		return;
	}
	for (n = 0; n < nr_names; n++) {
		for (i = 0, hits = 0; i < tab->nr; i++) {
			if (strcmp(tab->entries[i].name, names[n]))
				continue;
			act(rep, &tab->entries[i]);
			hits++;
		}
		if (hits)
			continue;
		res = cbw_tab_result(rep, names[n], 0);
		cbw_tab_fail(rep, res, "no line of %s names it", tab->path);
	}
}

static int cbw_tab_run(const struct cbw_cmd *cmd, int argc, char **argv,
		       bool all_lines, cbw_tab_action act)
{
	struct cbw_tab_report rep = { 0 };
	const char *opt_path = NULL;
	struct cbw_tab tab;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, cbw_tab_longopts, cbw_tab_option,
			  &opt_path, &i);
	if (r)
		return r;
	rep.path = cbw_tab_path(opt_path);
	r = cbw_tab_load(rep.path, &tab, false);
	if (r)
		return r;
	rep.results = calloc(tab.nr + argc, sizeof(*rep.results));
	if (!rep.results) {
		cbw_tab_free(&tab);
		return cbw_error("Out of memory");
	}
	cbw_tab_for_each(&rep, &tab, argv + i, argc - i, all_lines, act);
	r = cbw_tab_report_end(&rep);
	cbw_tab_free(&tab);
	return r;
}

static int cbw_tab_start(const struct cbw_cmd *cmd, int argc, char **argv)
{
	return cbw_tab_run(cmd, argc, argv, false, cbw_tab_start_one);
}

static void cbw_tab_stop_entry(struct cbw_tab_report *rep,
			       const struct cbw_tab_entry *e)
{
	if (e->error[0])
		cbw_tab_bad_line(rep, e);
	else
		cbw_tab_stop_one(rep, e->name, e->line);
}

/*
 * "tab stop NAME" needs no line for NAME, so that a unit can stop a device
 * whose line was removed since.
 */
static int cbw_tab_stop(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_tab_report rep = { 0 };
	const char *opt_path = NULL;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, cbw_tab_longopts, cbw_tab_option,
			  &opt_path, &i);
	if (r)
		return r;
	if (i == argc)
		return cbw_tab_run(cmd, argc, argv, true, cbw_tab_stop_entry);
	rep.path = cbw_tab_path(opt_path);
	rep.results = calloc(argc - i, sizeof(*rep.results));
	if (!rep.results)
		return cbw_error("Out of memory");
	for (; i < argc; i++)
		cbw_tab_stop_one(&rep, argv[i], 0);
	return cbw_tab_report_end(&rep);
}

/* The running cbwctl, for the units' command lines. */
static void cbw_tab_exe(char *exe, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", exe, len - 1);

	if (n <= 0)
		snprintf(exe, len, "cbwctl");
	else
		exe[n] = '\0';
}

/* Lines in error are reported, the others written: 0 or an exit status. */
static int cbw_tab_write_units(const char *dir, const struct cbw_tab *tab)
{
	const struct cbw_tab_entry *e;
	char exe[PATH_MAX];
	bool any = false;
	int status = 0;
	unsigned int i;

	cbw_tab_exe(exe, sizeof(exe));
	for (i = 0; i < tab->nr; i++) {
		e = &tab->entries[i];
		if (e->error[0])
			status = cbw_error("%s:%u: %s", tab->path, e->line,
					   e->error);
		else if (cbw_tab_write_unit(dir, tab, e, exe))
			status = CBW_EXIT_FAIL;
		else
			any = true;
	}
	if (any && cbw_tab_write_target_link(dir))
		status = CBW_EXIT_FAIL;
	return status;
}

/*
 * "tab generate DIR [EARLY-DIR LATE-DIR]": the generator's work, into its
 * first directory.  No file is no device: nothing to do.
 */
static int cbw_tab_generate(const struct cbw_cmd *cmd, int argc, char **argv)
{
	char path[PATH_MAX];
	const char *opt_path = NULL;
	struct cbw_tab tab;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, cbw_tab_longopts, cbw_tab_option,
			  &opt_path, &i);
	if (r)
		return r;
	/* The units run "cbwctl tab start" from another directory. */
	if (!realpath(cbw_tab_path(opt_path), path))
		snprintf(path, sizeof(path), "%s", cbw_tab_path(opt_path));
	r = cbw_tab_load(path, &tab, true);
	if (r)
		return r;
	r = cbw_tab_write_units(argv[i], &tab);
	cbw_tab_free(&tab);
	return r;
}

/* ------------------------------------------------------------------ */
/* The table of subcommands                                            */
/* ------------------------------------------------------------------ */

const struct cbw_cmd cbw_tab_cmds[] = {
	{
		.group = "tab", .name = "start",
		.params = { "[NAME...]" }, .min_args = 0, .max_args = 1024,
		.synopsis = "[--tab FILE]",
		.summary = "Create the cbw devices of the cbwtab file and add their bitmaps.",
		.help =
		"Creates each device named, or of every line without noauto: a\n"
		"cbw table without a COW device over the whole origin, with the\n"
		"chunk size and metadata device of the line and the DM UUID\n"
		"CBW-NAME, then adds the line's dirty bitmaps (if one cannot be\n"
		"added, the device is removed again; a persistent one that came\n"
		"back with the metadata device is kept).  A device that exists\n"
		"with the same origin, length, chunk size and metadata device is\n"
		"left alone (\"active\"); one with another\n"
		"table is an error.  Bad lines are reported as FILE:LINE: and\n"
		"skipped; the others are still created.\n\n"
		"Options:\n"
		"  --tab FILE          the cbwtab to read (default $CBWTAB, or\n"
		"                      /etc/cbwtab); see cbwtab(5)\n\n"
		"Prints \"NAME: created\" or \"NAME: active\" for each device.  With\n"
		"--json: {\"tab\", \"devices\": [{\"name\", \"line\", \"result\",\n"
		"\"error\"}, ...]}, result created, active or failed.\n",
		.run = cbw_tab_start,
	},
	{
		.group = "tab", .name = "stop",
		.params = { "[NAME...]" }, .min_args = 0, .max_args = 1024,
		.synopsis = "[--tab FILE]",
		.summary = "Remove cbw devices of the cbwtab file.",
		.help =
		"Removes each device named (which needs no line in the file), or\n"
		"of every line.  A device that is open (mounted, or read by a\n"
		"cbw-access device), that has a running snapshot or that is not\n"
		"a cbw device is not removed, and is an error.  Its dirty bitmaps\n"
		"go with it.\n\n"
		"Options:\n"
		"  --tab FILE          the cbwtab to read (default $CBWTAB, or\n"
		"                      /etc/cbwtab)\n\n"
		"Prints \"NAME: removed\" or \"NAME: inactive\" (no such device) for\n"
		"each.  With --json: as 'tab start', result removed, inactive or\n"
		"failed.\n",
		.run = cbw_tab_stop,
	},
	{
		.group = "tab", .name = "generate",
		.params = { "DIR", "[EARLY-DIR", "LATE-DIR]" },
		.min_args = 1, .max_args = 3,
		.synopsis = "[--tab FILE]",
		.summary = "Write the systemd units of the cbwtab file into DIR.",
		.help =
		"The work of cbwtab-generator, which systemd runs at boot with its\n"
		"three directories: for each good line, the unit cbw@NAME.service\n"
		"(its name escaped as systemd-escape does) into DIR, with links\n"
		"that make cbw.target (unless noauto) and the device unit of\n"
		"/dev/mapper/NAME pull it in.  Touches no device.  Without a\n"
		"cbwtab file, writes nothing.\n\n"
		"Options:\n"
		"  --tab FILE          the cbwtab to read (default $CBWTAB, or\n"
		"                      /etc/cbwtab)\n",
		.run = cbw_tab_generate,
	},
	{ .name = NULL },
};
