// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl snapshot: start and stop the copy-before-write snapshot of a cbw
 * device, show its state and what a snapshot reader may read; and
 * cbwctl version.
 *
 * A snapshot starts when a cbw table naming a COW device is resumed, and
 * ends when a table without one is: start and stop load such a table,
 * suspend and resume (the suspend of start freezes a filesystem on the
 * device, so the point in time is consistent).  The snapshot is read
 * through a cbw-access device, which start can create and stop removes.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cbwctl.h"

#define CBW_MIN_CHUNK		(DM_CBW_MIN_CHUNK_SECTORS * 512ULL)
#define CBW_MAX_CHUNK		(1ULL << 30)
#define CBW_DEVNO_LEN		32
#define CBW_MAX_ACCESS		16

/* The arguments of a cbw table line. */
struct cbw_table_args {
	char origin[CBW_DM_NAME_LEN];
	char cow[CBW_DM_NAME_LEN];
	unsigned long long chunk_sectors;
	char bitmap[DM_CBW_NAME_LEN];
	char freeze_bitmap[DM_CBW_NAME_LEN];
	char on_cbw_error[32];
	unsigned int timeout_ms;
	char metadata_dev[CBW_DM_NAME_LEN];	/* kept by every reload */
};

/* The cbw-access devices that read a cbw device. */
struct cbw_access_list {
	char devno[CBW_DEVNO_LEN];	/* of the cbw device */
	unsigned int nr;
	char names[CBW_MAX_ACCESS][CBW_DM_NAME_LEN];
};

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

/* One optional argument of a table line and its value. */
static int cbw_parse_table_opt(struct cbw_table_args *a, const char *key,
			       const char *value)
{
	char tail;

	if (!strcasecmp(key, "snapshot_bitmap"))
		return snprintf(a->bitmap, sizeof(a->bitmap), "%s", value) >=
		       (int)sizeof(a->bitmap);
	if (!strcasecmp(key, "freeze_bitmap"))
		return snprintf(a->freeze_bitmap, sizeof(a->freeze_bitmap),
				"%s", value) >= (int)sizeof(a->freeze_bitmap);
	if (!strcasecmp(key, "on_cbw_error"))
		return snprintf(a->on_cbw_error, sizeof(a->on_cbw_error), "%s",
				value) >= (int)sizeof(a->on_cbw_error);
	if (!strcasecmp(key, "cbw_timeout_ms"))
		return sscanf(value, "%u%c", &a->timeout_ms, &tail) != 1;
	if (!strcasecmp(key, "metadata_dev"))
		return snprintf(a->metadata_dev, sizeof(a->metadata_dev), "%s",
				value) >= (int)sizeof(a->metadata_dev);
	return -1;
}

/*
 * "<origin> <cow|-> <chunk> [<#opts> [snapshot_bitmap <name>]
 *  [freeze_bitmap <name>] [on_cbw_error <policy>] [cbw_timeout_ms <ms>]
 *  [metadata_dev <dev>]]"
 */
static int cbw_parse_table_args(const struct cbw_dev *dev, const char *params,
				struct cbw_table_args *a)
{
	char key[32], value[64];
	unsigned int nr_opts = 0;
	int pos = 0, used;

	memset(a, 0, sizeof(*a));
	if (sscanf(params, "%127s %127s %llu%n", a->origin, a->cow,
		   &a->chunk_sectors, &pos) != 3)
		goto bad;
	if (sscanf(params + pos, "%u%n", &nr_opts, &used) == 1)
		pos += used;
	if (nr_opts % 2)
		goto bad;
	for (; nr_opts; nr_opts -= 2) {
		if (sscanf(params + pos, "%31s %63s%n", key, value, &used) != 2 ||
		    cbw_parse_table_opt(a, key, value))
			goto bad;
		pos += used;
	}
	if (sscanf(params + pos, "%1s", key) != 1)
		return 0;
bad:
	return cbw_error("Device '%s' has a cbw table cbwctl does not understand: %s",
			 dev->spec, params);
}

static void cbw_devno(const struct cbw_dev *dev, char buf[CBW_DEVNO_LEN])
{
	snprintf(buf, CBW_DEVNO_LEN, "%u:%u", dev->major, dev->minor);
}

/* A new table for @dev: @a with @cow ("-" for none) and @snap's options. */
static int cbw_load_table(const struct cbw_dev *dev, const struct cbw_target *t,
			  const struct cbw_table_args *a, const char *cow,
			  unsigned long long chunk_sectors,
			  const struct cbw_snapshot_args *snap)
{
	struct cbw_target nt = *t;
	char params[512], opts[256] = "";
	unsigned int nr = 0;
	size_t len = 0;
	int r;

	if (snap && snap->bitmap) {
		len += snprintf(opts + len, sizeof(opts) - len,
				" snapshot_bitmap %s", snap->bitmap);
		nr += 2;
	}
	if (snap && snap->freeze_bitmap) {
		len += snprintf(opts + len, sizeof(opts) - len,
				" freeze_bitmap %s", snap->freeze_bitmap);
		nr += 2;
	}
	if (snap && snap->on_cbw_error) {
		len += snprintf(opts + len, sizeof(opts) - len,
				" on_cbw_error %s", snap->on_cbw_error);
		nr += 2;
	}
	if (snap && snap->timeout_ms) {
		len += snprintf(opts + len, sizeof(opts) - len,
				" cbw_timeout_ms %u", snap->timeout_ms);
		nr += 2;
	}
	/* The metadata device belongs to the device, not to a snapshot. */
	if (a->metadata_dev[0]) {
		len += snprintf(opts + len, sizeof(opts) - len,
				" metadata_dev %s", a->metadata_dev);
		nr += 2;
	}
	if (nr)
		snprintf(params, sizeof(params), "%s %s %llu %u%s", a->origin,
			 cow, chunk_sectors, nr, opts);
	else
		snprintf(params, sizeof(params), "%s %s %llu", a->origin, cow,
			 chunk_sectors);
	nt.params = params;
	r = cbw_dm_reload(dev->name, &nt);
	if (r)
		return cbw_error("Cannot load the new table of '%s': %s (the kernel log says why: dmesg | tail)",
				 dev->spec, strerror(-r));
	return 0;
}

/* Suspends (optionally freezing the filesystem) and resumes @dev. */
static int cbw_swap_table(const struct cbw_dev *dev, bool freeze)
{
	int r;

	r = cbw_dm_suspend(dev->name, freeze);
	if (r) {
		cbw_dm_clear(dev->name);
		return cbw_error("Cannot suspend '%s': %s", dev->spec,
				 strerror(-r));
	}
	r = cbw_dm_resume(dev->name);
	if (r)
		return cbw_error("Cannot resume '%s': %s (it may still be suspended: dmsetup resume %s)",
				 dev->spec, strerror(-r), dev->name);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Access devices                                                      */
/* ------------------------------------------------------------------ */

static int cbw_access_scan_one(const char *name, void *ctx)
{
	struct cbw_access_list *l = ctx;
	struct cbw_target t;

	if (cbw_dm_table(name, &t))
		return 0;	/* removed meanwhile */
	if (t.nr_targets == 1 && !strcmp(t.type, DM_CBW_ACCESS_TARGET_NAME) &&
	    !strcmp(t.params, l->devno) && l->nr < CBW_MAX_ACCESS)
		snprintf(l->names[l->nr++], CBW_DM_NAME_LEN, "%s", name);
	cbw_target_free(&t);
	return 0;
}

/* The cbw-access devices whose table names @dev. */
static int cbw_find_access(const struct cbw_dev *dev, struct cbw_access_list *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	cbw_devno(dev, l->devno);
	r = cbw_dm_for_each(cbw_access_scan_one, l);
	if (r)
		return cbw_error("Cannot list device-mapper devices: %s",
				 strerror(-r));
	return 0;
}

#define CBW_ACCESS_UUID_PREFIX	CBW_DM_UUID_PREFIX "access-"
/* The longest access device name whose UUID fits: 117. */
#define CBW_ACCESS_NAME_MAX \
	((int)(CBW_DM_UUID_LEN - sizeof(CBW_ACCESS_UUID_PREFIX)))

/*
 * The DM UUID of access device @name, CBW-access-NAME: unique as the name
 * is, and one pattern for udev rules.  -ENAMETOOLONG past 128 characters.
 */
static int cbw_access_uuid(const char *name, char uuid[CBW_DM_UUID_LEN])
{
	int n = snprintf(uuid, CBW_DM_UUID_LEN, "%s%s", CBW_ACCESS_UUID_PREFIX,
			 name);

	return n < CBW_DM_UUID_LEN ? 0 : -ENAMETOOLONG;
}

/* A snapshot image: private, so that it never stands in for the origin. */
static int cbw_create_access(const struct cbw_dev *dev,
			     const struct cbw_target *t, const char *name,
			     bool rw)
{
	struct cbw_target at = { .start = 0, .length = t->length };
	char devno[CBW_DEVNO_LEN], uuid[CBW_DM_UUID_LEN];
	int r;

	cbw_devno(dev, devno);
	snprintf(at.type, sizeof(at.type), "%s", DM_CBW_ACCESS_TARGET_NAME);
	at.params = devno;
	r = cbw_access_uuid(name, uuid);
	if (!r)
		r = cbw_dm_create(name, uuid, &at,
				  CBW_DM_PRIVATE | (rw ? 0 : CBW_DM_RO));
	if (r)
		return cbw_error("Cannot create access device '%s': %s", name,
				 strerror(-r));
	return 0;
}

static int cbw_remove_access(const struct cbw_access_list *l)
{
	unsigned int i;
	int r;

	for (i = 0; i < l->nr; i++) {
		r = cbw_dm_remove(l->names[i]);
		if (r)
			return cbw_error("Cannot remove access device '%s': %s (close what has it open, e.g. an NBD export, or pass --keep-access)",
					 l->names[i], strerror(-r));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Snapshot state output                                               */
/* ------------------------------------------------------------------ */

static const char *cbw_state_name(uint32_t state)
{
	switch (state) {
	case DM_CBW_SNAPSHOT_NONE:
		return "none";
	case DM_CBW_SNAPSHOT_ACTIVE:
		return "active";
	case DM_CBW_SNAPSHOT_BROKEN:
		return "broken";
	}
	return "unknown";
}

static void cbw_json_opt_string(const char *key, const char *value)
{
	if (value && *value && strcmp(value, DM_CBW_NO_COW))
		cbw_json_string(key, value);
	else
		cbw_json_null(key);
}

static void cbw_snapshot_json(const struct cbw_dev *dev,
			      const struct dm_cbw_snapshot_info *s,
			      const struct cbw_table_args *a,
			      const struct cbw_access_list *l)
{
	unsigned int i;

	cbw_json_string("device", dev->name);
	cbw_json_string("state", cbw_state_name(s->state));
	cbw_json_i64("error", s->error);
	cbw_json_u64("chunk_size", s->chunk_size);
	cbw_json_u64("chunks_total", s->chunks_total);
	cbw_json_u64("chunks_to_copy", s->chunks_to_copy);
	cbw_json_u64("chunks_copied", s->chunks_copied);
	cbw_json_u64("chunks_accessible", s->chunks_accessible);
	cbw_json_u64("copies_in_flight", s->copies_in_flight);
	cbw_json_u64("copies_failed", s->copies_failed);
	cbw_json_u64("copies_timed_out", s->copies_timed_out);
	cbw_json_opt_string("cow", a->cow);
	cbw_json_opt_string("bitmap", a->bitmap);
	cbw_json_opt_string("freeze_bitmap", a->freeze_bitmap);
	/* Without a snapshot there is no policy. */
	cbw_json_opt_string("on_cbw_error",
			    !strcmp(a->cow, DM_CBW_NO_COW) ? NULL :
			    a->on_cbw_error[0] ? a->on_cbw_error :
			    "break_guest_write");
	cbw_json_u64("cbw_timeout_ms", a->timeout_ms);
	cbw_json_opt_string("metadata_dev", a->metadata_dev);
	cbw_cow_show(dev);
	cbw_json_array_begin("access_devices");
	for (i = 0; i < l->nr; i++)
		cbw_json_string(NULL, l->names[i]);
	cbw_json_array_end();
}

static void cbw_print_count(const char *label, uint64_t v)
{
	cbw_print_field(label, "%llu", (unsigned long long)v);
}

static void cbw_snapshot_text(const struct cbw_dev *dev,
			      const struct dm_cbw_snapshot_info *s,
			      const struct cbw_table_args *a,
			      const struct cbw_access_list *l)
{
	char size[CBW_SIZE_BUF];
	unsigned int i;

	cbw_print_field("device", "%s (%u:%u)", dev->name, dev->major,
			dev->minor);
	cbw_print_field("state", "%s", cbw_state_name(s->state));
	if (s->error)
		cbw_print_field("error", "%d (%s)", s->error,
				strerror(-s->error));
	else
		cbw_print_field("error", "-");
	cbw_print_field("chunk size", "%s", cbw_format_size(s->chunk_size, size));
	cbw_print_count("chunks total", s->chunks_total);
	cbw_print_count("chunks to copy", s->chunks_to_copy);
	cbw_print_count("chunks copied", s->chunks_copied);
	cbw_print_count("chunks accessible", s->chunks_accessible);
	cbw_print_count("copies in flight", s->copies_in_flight);
	cbw_print_count("copies failed", s->copies_failed);
	cbw_print_count("copies timed out", s->copies_timed_out);
	cbw_print_field("COW device", "%s", a->cow[0] ? a->cow : DM_CBW_NO_COW);
	cbw_cow_show(dev);
	cbw_print_field("snapshot bitmap", "%s", a->bitmap[0] ? a->bitmap : "-");
	cbw_print_field("frozen bitmap", "%s",
			a->freeze_bitmap[0] ? a->freeze_bitmap : "-");
	cbw_print_field("on copy error", "%s", a->on_cbw_error[0] ?
			a->on_cbw_error : "break_guest_write");
	cbw_print_field("copy timeout", "%u ms%s", a->timeout_ms,
			a->timeout_ms ? "" : " (none)");
	cbw_print_field("metadata device", "%s",
			a->metadata_dev[0] ? a->metadata_dev : "-");
	if (!l->nr)
		cbw_print_field("access devices", "-");
	for (i = 0; i < l->nr; i++)
		cbw_print_field(i ? "" : "access devices", "/dev/mapper/%s",
				l->names[i]);
}

/*
 * Everything "snapshot info" shows, read fresh; @headline (text only)
 * comes first.
 */
static int cbw_show_snapshot(const struct cbw_dev *dev, const char *headline)
{
	struct dm_cbw_snapshot_info s;
	struct cbw_access_list l;
	struct cbw_table_args a;
	struct cbw_target t;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	r = cbw_parse_table_args(dev, t.params, &a);
	cbw_target_free(&t);
	if (!r)
		r = cbw_find_access(dev, &l);
	if (r)
		return r;
	r = cbw_ctl_snapshot_info(dev, &s);
	if (r)
		return cbw_device_error(r, dev);

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_snapshot_json(dev, &s, &a, &l);
		cbw_json_object_end();
		return CBW_EXIT_OK;
	}
	if (headline)
		printf("%s\n", headline);
	cbw_snapshot_text(dev, &s, &a, &l);
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* snapshot start                                                      */
/* ------------------------------------------------------------------ */

/* Milliseconds: a whole number from 0 to UINT_MAX. */
static int cbw_parse_ms(const char *arg, unsigned int *ms)
{
	unsigned long long v;
	char *end;

	if (!*arg || *arg == '-')
		return -1;
	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || *end || v > UINT_MAX)
		return -1;
	*ms = v;
	return 0;
}

/* The options of "snapshot start", also taken by "backup begin". */
int cbw_start_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     void *ctx)
{
	struct cbw_start_opts *o = ctx;

	switch (opt) {
	case CBW_OPT_COW:
		o->cow = arg;
		return 0;
	case CBW_OPT_COW_FILE:
		o->cow_file = arg;
		return 0;
	case CBW_OPT_COW_THIN:
		o->cow_thin = arg;
		return 0;
	case CBW_OPT_CHUNK:
		if (cbw_parse_size(arg, &o->chunk))
			return cbw_usage_error(cmd, "invalid size '%s' for --chunk (use bytes or a number with K, M, G: 64K)",
					       arg);
		return 0;
	case CBW_OPT_BITMAP:
		o->snap.bitmap = arg;
		return 0;
	case CBW_OPT_ON_CBW_ERROR:
		if (strcmp(arg, "break_guest_write") &&
		    strcmp(arg, "break_snapshot"))
			return cbw_usage_error(cmd, "invalid policy '%s' for --on-cbw-error (use break_guest_write or break_snapshot)",
					       arg);
		o->snap.on_cbw_error = arg;
		return 0;
	case CBW_OPT_CBW_TIMEOUT:
		if (cbw_parse_ms(arg, &o->snap.timeout_ms))
			return cbw_usage_error(cmd, "invalid time '%s' for --cbw-timeout (milliseconds, 0 for none)",
					       arg);
		return 0;
	case CBW_OPT_ACCESS:
		o->access = arg;
		return 0;
	case CBW_OPT_ACCESS_RW:
		o->access_rw = true;
		return 0;
	}
	return cbw_usage_error(cmd, "unknown option");
}

int cbw_check_start_opts(const struct cbw_cmd *cmd,
			 const struct cbw_start_opts *o)
{
	char buf[CBW_SIZE_BUF], title[CBW_TITLE_LEN];

	if (!!o->cow + !!o->cow_file + !!o->cow_thin > 1)
		return cbw_usage_error(cmd, "%s: give only one of --cow, --cow-file and --cow-thin",
				       cbw_cmd_title(cmd, title));
	if (!o->cow && !cbw_cow_wanted(o))
		return cbw_usage_error(cmd, "%s: --cow COWDEV is required",
				       cbw_cmd_title(cmd, title));
	if (o->access_rw && !o->access)
		return cbw_usage_error(cmd, "%s: --access-rw needs --access NAME",
				       cbw_cmd_title(cmd, title));
	if (!cbw_is_power_of_2(o->chunk) || o->chunk < CBW_MIN_CHUNK ||
	    o->chunk > CBW_MAX_CHUNK)
		return cbw_error("Chunk size must be a power of 2 from 4K to 1G: %s",
				 cbw_format_size(o->chunk, buf));
	if (o->snap.bitmap)
		return cbw_check_bitmap_name(o->snap.bitmap);
	if (o->snap.freeze_bitmap)
		return cbw_check_bitmap_name(o->snap.freeze_bitmap);
	return 0;
}

/* The COW device as MAJOR:MINOR: a path, a dm name, a /dev name or M:m. */
static int cbw_resolve_cow(const char *spec, char devno[CBW_DEVNO_LEN])
{
	uint32_t major, minor;
	struct cbw_dev d;
	char path[256];
	char tail;
	int r;

	if (sscanf(spec, "%u:%u%c", &major, &minor, &tail) == 2) {
		snprintf(devno, CBW_DEVNO_LEN, "%u:%u", major, minor);
		return 0;
	}
	if (!strchr(spec, '/') && !cbw_dm_lookup(spec, &d)) {
		snprintf(devno, CBW_DEVNO_LEN, "%u:%u", d.major, d.minor);
		return 0;
	}
	snprintf(path, sizeof(path), "%s%s", strchr(spec, '/') ? "" : "/dev/",
		 spec);
	r = cbw_devno_of_path(path, &major, &minor);
	if (r == -ENOTBLK)
		return cbw_error("COW device '%s' is not a block device", spec);
	if (r)
		return cbw_error("COW device '%s' not found: %s", spec,
				 strerror(-r));
	snprintf(devno, CBW_DEVNO_LEN, "%u:%u", major, minor);
	return 0;
}

/* What must hold before the table is replaced. */
static int cbw_start_preflight(const struct cbw_dev *dev,
			       const struct cbw_table_args *a,
			       const struct cbw_start_opts *o,
			       const char *cow)
{
	struct dm_cbw_bitmap_info info;
	char devno[CBW_DEVNO_LEN], uuid[CBW_DM_UUID_LEN];
	struct cbw_dev other;
	int r;

	cbw_devno(dev, devno);
	if (strcmp(a->cow, DM_CBW_NO_COW))
		return cbw_error("Device '%s' already has a snapshot (COW device %s): stop it first with: cbwctl snapshot stop %s",
				 dev->spec, a->cow, dev->spec);
	if (dev->inactive_table)
		return cbw_error("Device '%s' has an inactive table loaded: drop it first with: dmsetup clear %s",
				 dev->spec, dev->name);
	if (dev->suspended)
		return cbw_error("Device '%s' is suspended: resume it first with: dmsetup resume %s",
				 dev->spec, dev->name);
	if (!strcmp(cow, a->origin))
		return cbw_error("The COW device must differ from the origin device (%s)",
				 cow);
	if (!strcmp(cow, devno))
		return cbw_error("The COW device cannot be the cbw device itself");
	if (o->snap.bitmap) {
		r = cbw_ctl_query(dev, o->snap.bitmap, &info);
		if (!r && info.status & DM_CBW_BITMAP_INCONSISTENT)
			r = -EUCLEAN;
		if (r)
			return cbw_bitmap_error(r, dev, o->snap.bitmap);
	}
	if (o->access && !cbw_dm_lookup(o->access, &other))
		return cbw_error("Device '%s' already exists: choose another --access name",
				 o->access);
	if (o->access && cbw_access_uuid(o->access, uuid))
		return cbw_error("Access device name '%s' is too long: at most %d characters, so that its DM UUID %sNAME fits in %d",
				 o->access, CBW_ACCESS_NAME_MAX,
				 CBW_ACCESS_UUID_PREFIX, CBW_DM_UUID_LEN - 1);
	return 0;
}

/* The access device could not be made: end the snapshot again. */
static void cbw_start_rollback(const struct cbw_dev *dev,
			       const struct cbw_target *t,
			       const struct cbw_table_args *a)
{
	if (cbw_load_table(dev, t, a, DM_CBW_NO_COW, a->chunk_sectors, NULL) ||
	    cbw_swap_table(dev, false))
		cbw_warn("The snapshot of '%s' is still running: stop it with: cbwctl snapshot stop %s",
			 dev->spec, dev->spec);
	else
		cbw_warn("The snapshot of '%s' was stopped again", dev->spec);
}

static int cbw_start(const struct cbw_dev *dev, const struct cbw_target *t,
		     const struct cbw_table_args *a,
		     const struct cbw_start_opts *o)
{
	char cow[CBW_DEVNO_LEN];
	int r;

	r = cbw_resolve_cow(o->cow, cow);
	if (!r)
		r = cbw_start_preflight(dev, a, o, cow);
	if (!r)
		r = cbw_load_table(dev, t, a, cow, o->chunk / 512, &o->snap);
	if (!r)
		r = cbw_swap_table(dev, true);
	if (r)
		return r;
	if (o->access) {
		r = cbw_create_access(dev, t, o->access, o->access_rw);
		if (r) {
			cbw_start_rollback(dev, t, a);
			return r;
		}
	}
	return 0;
}

/* cbw_start with the COW device that --cow-file or --cow-thin asks for. */
static int cbw_start_made_cow(const struct cbw_dev *dev,
			      const struct cbw_target *t,
			      const struct cbw_table_args *a,
			      const struct cbw_start_opts *o)
{
	struct cbw_start_opts mo = *o;
	struct cbw_cow_made m;
	int r;

	if (strcmp(a->cow, DM_CBW_NO_COW))
		return cbw_error("Device '%s' already has a snapshot (COW device %s): stop it first with: cbwctl snapshot stop %s",
				 dev->spec, a->cow, dev->spec);
	r = cbw_cow_make(dev, t->length * 512, a->origin, o, &m);
	if (r)
		return r;
	mo.cow = m.cow;
	r = cbw_start(dev, t, a, &mo);
	cbw_cow_made_end(dev, &m, r);
	return r;
}

/*
 * Starts the snapshot of @dev as "snapshot start" does (with the access
 * device, if o->access): 0 or an exit status, the message printed.
 */
int cbw_snapshot_begin(const struct cbw_dev *dev,
		       const struct cbw_start_opts *o)
{
	struct cbw_table_args a;
	struct cbw_target t;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	r = cbw_parse_table_args(dev, t.params, &a);
	if (!r && cbw_cow_wanted(o))
		r = cbw_start_made_cow(dev, &t, &a, o);
	else if (!r)
		r = cbw_start(dev, &t, &a, o);
	cbw_target_free(&t);
	return r;
}

static int cbw_snapshot_start(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cow", required_argument, NULL, CBW_OPT_COW },
		{ "cow-file", required_argument, NULL, CBW_OPT_COW_FILE },
		{ "cow-thin", required_argument, NULL, CBW_OPT_COW_THIN },
		{ "chunk", required_argument, NULL, CBW_OPT_CHUNK },
		{ "bitmap", required_argument, NULL, CBW_OPT_BITMAP },
		{ "access", required_argument, NULL, CBW_OPT_ACCESS },
		{ "access-rw", no_argument, NULL, CBW_OPT_ACCESS_RW },
		{ "on-cbw-error", required_argument, NULL, CBW_OPT_ON_CBW_ERROR },
		{ "cbw-timeout", required_argument, NULL, CBW_OPT_CBW_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	struct cbw_start_opts o = { .chunk = CBW_DEFAULT_CHUNK };
	char headline[256];
	struct cbw_dev dev;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, longopts, cbw_start_option, &o, &i);
	if (!r)
		r = cbw_check_start_opts(cmd, &o);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (!r)
		r = cbw_snapshot_begin(&dev, &o);
	if (r)
		return r;
	snprintf(headline, sizeof(headline), "Snapshot of '%s' started.",
		 dev.name);
	return cbw_show_snapshot(&dev, headline);
}

/* ------------------------------------------------------------------ */
/* snapshot stop                                                       */
/* ------------------------------------------------------------------ */

static int cbw_stop_option(const struct cbw_cmd *cmd, int opt,
			   const char *arg, void *ctx)
{
	(void)cmd;
	(void)arg;
	(void)opt;
	*(bool *)ctx = true;
	return 0;
}

static void cbw_stop_report(const struct cbw_dev *dev, bool had_cow,
			    const struct dm_cbw_snapshot_info *s,
			    const struct cbw_access_list *removed)
{
	unsigned int i;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", dev->name);
		cbw_json_bool("stopped", had_cow);
		cbw_json_string("state", cbw_state_name(s->state));
		cbw_json_u64("chunks_copied", s->chunks_copied);
		cbw_json_array_begin("removed_access_devices");
		for (i = 0; i < removed->nr; i++)
			cbw_json_string(NULL, removed->names[i]);
		cbw_json_array_end();
		cbw_json_object_end();
		return;
	}
	for (i = 0; i < removed->nr; i++)
		printf("Removed access device '%s'.\n", removed->names[i]);
	if (had_cow)
		printf("Snapshot of '%s' stopped (state was %s; chunks copied: %llu).\n",
		       dev->name, cbw_state_name(s->state),
		       (unsigned long long)s->chunks_copied);
}

/*
 * Removes the access devices (unless @keep_access) and ends the snapshot;
 * *@s is the snapshot state just before.  Sets *@had_cow; 0 or an exit
 * status.
 */
static int cbw_stop_core(const struct cbw_dev *dev, const struct cbw_target *t,
			 bool keep_access, struct dm_cbw_snapshot_info *s,
			 struct cbw_access_list *l, bool *had_cow)
{
	struct cbw_table_args a;
	int r;

	r = cbw_parse_table_args(dev, t->params, &a);
	if (!r)
		r = cbw_find_access(dev, l);
	if (r)
		return r;
	*had_cow = strcmp(a.cow, DM_CBW_NO_COW);
	if (keep_access)
		l->nr = 0;
	r = cbw_remove_access(l);
	if (r)
		return r;
	r = cbw_ctl_snapshot_info(dev, s);
	if (r)
		return cbw_device_error(r, dev);
	if (*had_cow) {
		r = cbw_load_table(dev, t, &a, DM_CBW_NO_COW, a.chunk_sectors,
				   NULL);
		if (!r)
			r = cbw_swap_table(dev, false);
	}
	/* No table uses a COW device that cbwctl made any more. */
	return r ? r : cbw_cow_release(dev);
}

static int cbw_stop(const struct cbw_dev *dev, const struct cbw_target *t,
		    bool keep_access)
{
	struct dm_cbw_snapshot_info s;
	struct cbw_access_list l;
	struct cbw_table_args a;
	bool had_cow;
	int r;

	r = cbw_parse_table_args(dev, t->params, &a);
	if (!r)
		r = cbw_find_access(dev, &l);
	if (r)
		return r;
	if (strcmp(a.cow, DM_CBW_NO_COW) == 0 && (keep_access || !l.nr))
		return cbw_error("Device '%s' has no snapshot to stop", dev->spec);
	r = cbw_stop_core(dev, t, keep_access, &s, &l, &had_cow);
	if (r)
		return r;
	cbw_stop_report(dev, had_cow, &s, &l);
	return CBW_EXIT_OK;
}

/*
 * Removes every access device of @dev and ends its snapshot, if any, as
 * "snapshot stop" does; *@s is the snapshot state just before.
 */
int cbw_snapshot_end(const struct cbw_dev *dev, struct dm_cbw_snapshot_info *s)
{
	struct cbw_access_list l;
	struct cbw_target t;
	bool had_cow;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	r = cbw_stop_core(dev, &t, false, s, &l, &had_cow);
	cbw_target_free(&t);
	return r;
}

static int cbw_snapshot_stop(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keep-access", no_argument, NULL, CBW_OPT_KEEP_ACCESS },
		{ NULL, 0, NULL, 0 },
	};
	bool keep_access = false;
	struct cbw_target t;
	struct cbw_dev dev;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, longopts, cbw_stop_option,
			  &keep_access, &i);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (!r)
		r = cbw_cbw_table(&dev, &t);
	if (r)
		return r;
	r = cbw_stop(&dev, &t, keep_access);
	cbw_target_free(&t);
	return r;
}

/* ------------------------------------------------------------------ */
/* snapshot info, access-map                                           */
/* ------------------------------------------------------------------ */

static int cbw_snapshot_info(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_dev dev;
	int i, r;

	r = cbw_parse_dev_cmd(cmd, argc, argv, &dev, &i);
	if (r)
		return r;
	return cbw_show_snapshot(&dev, NULL);
}

static int cbw_range_handler(const struct cbw_cmd *cmd, int opt,
			     const char *arg, void *ctx)
{
	return cbw_range_option(cmd, opt, arg, ctx);
}

static int cbw_access_map_error(int err, const struct cbw_dev *dev)
{
	if (err == -ENODATA)
		return cbw_error("Device '%s' has no snapshot (start one with: cbwctl snapshot start %s --cow COWDEV)",
				 dev->spec, dev->spec);
	return cbw_device_error(err, dev);
}

static void cbw_access_map_summary(const struct dm_cbw_snapshot_info *s,
				   const struct cbw_walk_result *res)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];

	if (cbw_opts.json) {
		cbw_json_u64("accessible", res->bytes);
		cbw_json_object_end();
		return;
	}
	printf("%s accessible in %llu extents (chunk size %s)\n",
	       cbw_format_size(res->bytes, a),
	       (unsigned long long)res->extents,
	       cbw_format_size(s->chunk_size, b));
}

static int cbw_access_map(const struct cbw_dev *dev, struct cbw_range *range)
{
	struct dm_cbw_snapshot_info s;
	struct cbw_walk_result res;
	struct cbw_target t;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	cbw_target_free(&t);
	r = cbw_range_check(range, t.length * 512);
	if (r)
		return r;
	r = cbw_ctl_snapshot_info(dev, &s);
	if (!r && s.state == DM_CBW_SNAPSHOT_NONE)
		r = -ENODATA;
	if (r)
		return cbw_access_map_error(r, dev);

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", dev->name);
		cbw_json_u64("chunk_size", s.chunk_size);
		cbw_range_json(range);
	}
	r = cbw_walk_extents(DM_CBW_IOC_SNAPSHOT_ACCESS, dev, NULL, range,
			     &res);
	if (r)
		return cbw_access_map_error(r, dev);
	cbw_access_map_summary(&s, &res);
	return CBW_EXIT_OK;
}

static int cbw_snapshot_access_map(const struct cbw_cmd *cmd, int argc,
				   char **argv)
{
	struct cbw_range range;
	struct cbw_dev dev;
	int i, r;

	cbw_range_init(&range);
	r = cbw_parse_cmd(cmd, argc, argv, cbw_range_longopts,
			  cbw_range_handler, &range, &i);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (r)
		return r;
	return cbw_access_map(&dev, &range);
}

/* ------------------------------------------------------------------ */
/* version                                                             */
/* ------------------------------------------------------------------ */

static const struct {
	uint64_t bit;
	const char *name;
} cbw_features[] = {
	{ DM_CBW_FEATURE_BITMAPS, "bitmaps" },
	{ DM_CBW_FEATURE_SNAPSHOT_BITMAP, "snapshot_bitmap" },
	{ DM_CBW_FEATURE_FREEZE, "freeze" },
	{ DM_CBW_FEATURE_PERSISTENT, "persistent" },
};

static void cbw_version_print(const struct dm_cbw_version *v)
{
	char iface[48];
	unsigned int i;

	snprintf(iface, sizeof(iface), "%u.%u.%u", v->major, v->minor,
		 v->patch);
	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("cbwctl", CBWCTL_VERSION);
		cbw_json_string("interface", iface);
		cbw_json_array_begin("features");
		for (i = 0; i < ARRAY_SIZE(cbw_features); i++)
			if (v->features & cbw_features[i].bit)
				cbw_json_string(NULL, cbw_features[i].name);
		cbw_json_array_end();
		cbw_json_object_end();
		return;
	}
	printf("cbwctl %s\ndm-cbw control interface %s, features:",
	       CBWCTL_VERSION, iface);
	for (i = 0; i < ARRAY_SIZE(cbw_features); i++)
		if (v->features & cbw_features[i].bit)
			printf(" %s", cbw_features[i].name);
	putchar('\n');
}

static int cbw_version(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_version v;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, NULL, NULL, NULL, &i);
	if (r)
		return r;
	if (cbw_ctl_open() < 0)
		return CBW_EXIT_FAIL;
	r = cbw_ctl_version(&v);
	if (r)
		return cbw_error("Cannot read the dm-cbw interface version: %s",
				 strerror(-r));
	cbw_version_print(&v);
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* The tables of subcommands                                           */
/* ------------------------------------------------------------------ */

const struct cbw_cmd cbw_snapshot_cmds[] = {
	{
		.group = "snapshot", .name = "start",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.synopsis = "--cow COWDEV|--cow-file PATH|--cow-thin VG/POOL [--chunk SIZE] [--bitmap NAME] [--on-cbw-error POLICY] [--cbw-timeout MS] [--access NAME [--access-rw]]",
		.summary = "Start a copy-before-write snapshot of a cbw device.",
		.help =
		"Loads a cbw table naming COWDEV, suspends the device (freezing a\n"
		"filesystem on it) and resumes it: the resume is the point in time.\n"
		"From then on, the old content of a chunk is copied to COWDEV (at\n"
		"the same offset) before a guest write first changes it.\n\n"
		"Options:\n"
		"  --cow COWDEV        device the old data is copied to: a path, a\n"
		"                      device-mapper name, a /dev name or MAJOR:MINOR;\n"
		"                      at least as large as DEV (this, --cow-file or\n"
		"                      --cow-thin is required)\n"
		"  --cow-file PATH     create PATH, a sparse file of DEV's size on\n"
		"                      another file system, and use it through a loop\n"
		"                      device; PATH must not exist\n"
		"  --cow-thin VG/POOL  create the thin LV VG/cbw-cow-NAME of DEV's\n"
		"                      size in that thin pool and use it\n"
		"                      (cbwctl removes the file, loop device or LV\n"
		"                      when the snapshot ends or fails to start)\n"
		"  --chunk SIZE        copy granularity: a power of 2 from 4K to 1G\n"
		"                      (default 64K)\n"
		"  --bitmap NAME       only the chunks dirty in this bitmap at the\n"
		"                      snapshot point are copied and readable\n"
		"                      (rounded out to whole chunks)\n"
		"  --on-cbw-error POLICY\n"
		"                      when a copy fails: break_guest_write (default)\n"
		"                      fails the guest write that needed it and keeps\n"
		"                      the snapshot; break_snapshot lets guest writes\n"
		"                      through and makes snapshot reads fail\n"
		"  --cbw-timeout MS    a copy not done within MS milliseconds fails\n"
		"                      with ETIMEDOUT (default 0: no limit)\n"
		"  --access NAME       also create the cbw-access device NAME\n"
		"                      (/dev/mapper/NAME) that reads the snapshot;\n"
		"                      read-only unless --access-rw\n"
		"  --access-rw         make the access device writable, so that a\n"
		"                      reader can discard what it no longer needs\n\n"
		"Prints the state as 'snapshot info' does.\n",
		.run = cbw_snapshot_start,
	},
	{
		.group = "snapshot", .name = "stop",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.synopsis = "[--keep-access]",
		.summary = "Stop the snapshot of a cbw device and remove its access devices.",
		.help =
		"Removes every cbw-access device of DEV, then loads a cbw table\n"
		"without a COW device and swaps it in (without freezing).  The\n"
		"dirty bitmaps stay.  A COW file and its loop device, or a thin\n"
		"LV, that --cow-file or --cow-thin made is removed.\n\n"
		"Options:\n"
		"  --keep-access       leave the access devices (their reads fail\n"
		"                      from now on)\n",
		.run = cbw_snapshot_stop,
	},
	{
		.group = "snapshot", .name = "info",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.summary = "Show the snapshot state of a cbw device.",
		.help =
		"State (none, active, broken), error, chunk size and chunk counts\n"
		"(total, to copy, copied, accessible), copies in flight, failed\n"
		"and timed out, the COW device, the snapshot bitmap, the error\n"
		"policy, the copy timeout, the COW device cbwctl made (--cow-file,\n"
		"--cow-thin) and the access devices.  With --json:\n"
		"{\"device\", \"state\", \"error\", \"chunk_size\", \"chunks_total\",\n"
		"\"chunks_to_copy\", \"chunks_copied\", \"chunks_accessible\",\n"
		"\"copies_in_flight\", \"copies_failed\", \"copies_timed_out\",\n"
		"\"cow\", \"bitmap\", \"on_cbw_error\", \"cbw_timeout_ms\",\n"
		"\"access_devices\"}, and \"cow_made\" ({\"kind\": \"file\", \"path\",\n"
		"\"loop\"} or {\"kind\": \"thin\", \"lv\", \"pool\"}) before\n"
		"\"access_devices\" when cbwctl made the COW device.\n",
		.run = cbw_snapshot_info,
	},
	{
		.group = "snapshot", .name = "access-map",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.synopsis = "[--offset SIZE] [--length SIZE] [--batch N]",
		.summary = "List the extents a snapshot reader may read.",
		.help =
		"Options:\n"
		"  --offset SIZE       start of the range (default 0)\n"
		"  --length SIZE       length of the range (default: to the end)\n"
		"  --batch N           extents fetched per call, 1 to 4096\n"
		"                      (default 1024)\n\n"
		"Reads of the access device outside these extents fail with\n"
		"ENODATA.  With --json: {\"device\", \"chunk_size\", \"offset\",\n"
		"\"length\", \"extents\": [{\"offset\", \"length\"}, ...],\n"
		"\"accessible\"}.\n",
		.run = cbw_snapshot_access_map,
	},
	{ .name = NULL },
};

const struct cbw_cmd cbw_other_cmds[] = {
	{
		.name = "version",
		.summary = "Show the versions of cbwctl and of the dm-cbw interface.",
		.help =
		"With --json: {\"cbwctl\", \"interface\", \"features\": [...]}.\n"
		"'cbwctl --version' shows only the version of cbwctl.\n",
		.run = cbw_version,
	},
	{ .name = NULL },
};
