// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl lvextend: extend an attached LVM logical volume, keeping its cbw
 * layer and its dirty bitmaps.
 *
 * A plain lvextend loads LVM's new table into the LV, which replaces the
 * cbw table and loses the bitmaps.  So LVM only changes its metadata here
 * (lvextend --driverloaded n), and cbwctl builds the new table from that
 * metadata (linear segments: the PV's device at pe_start plus the first
 * extent times the extent size, as LVM does), checks that it maps the old
 * part as the hidden device does, loads it into the hidden device, and
 * gives the LV a cbw table of the new length.  The device is never without
 * its cbw table.  A bitmap covers the length the device had when it was
 * added, so each bitmap is then added again at the new length under its
 * own name, with its bits (through a temporary bitmap that records the
 * writes meanwhile), and the new space is marked dirty in it.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbwctl.h"

#define CBW_GROW_TMP		"cbwctl-grow"
#define CBW_LVM_HIDDEN_UUID	CBW_DM_UUID_PREFIX "hidden-LVM-"
#define CBW_LVS_OUT		65536

/* An attached LV and what extending it changes. */
struct cbw_lvx {
	struct cbw_dev dev;
	struct cbw_target live;		/* its cbw table */
	struct cbw_dev hidden;
	struct cbw_dm_lines hidden_table;
	struct cbw_dm_lines new_table;	/* LVM's, for the hidden device */
	char vg[CBW_DM_NAME_LEN];
	char lv[CBW_DM_NAME_LEN];
	char vg_lv[2 * CBW_DM_NAME_LEN];
	uint64_t old_len;		/* sectors */
	uint64_t new_len;
	struct dm_cbw_bitmap_info *bitmaps;
	unsigned int nr_bitmaps;
};

/* ------------------------------------------------------------------ */
/* What is there                                                       */
/* ------------------------------------------------------------------ */

/* VG and LV of an LVM device-mapper name: "--" is a '-', "-" splits. */
static int cbw_lvm_split(const char *name, char *vg, char *lv)
{
	char *out = vg;
	size_t n = 0;

	for (; *name; name++) {
		if (*name == '-' && name[1] == '-') {
			name++;
		} else if (*name == '-' && out == vg) {
			out[n] = 0;
			out = lv;
			n = 0;
			continue;
		}
		if (n >= CBW_DM_NAME_LEN - 1)
			return -EINVAL;
		out[n++] = *name;
	}
	out[n] = 0;
	return out == lv && *vg && *lv ? 0 : -EINVAL;
}

static int cbw_not_attached_lv(const struct cbw_lvx *x)
{
	return cbw_error("'%s' is not an attached LVM logical volume (attach it with: cbwctl attach %s; or use lvextend itself)",
			 x->dev.spec, x->dev.spec);
}

/* The LV's cbw table over its hidden device, the hidden device's table. */
static int cbw_lvx_tables(struct cbw_lvx *x)
{
	char uuid[CBW_DM_UUID_LEN], origin[32];
	int r;

	r = cbw_dm_table(x->dev.name, &x->live);
	if (r)
		return cbw_error("Cannot read the table of '%s': %s",
				 x->dev.spec, strerror(-r));
	if (x->live.nr_targets != 1 ||
	    strcmp(x->live.type, DM_CBW_TARGET_NAME) ||
	    sscanf(x->live.params, "%31s", origin) != 1 ||
	    cbw_dm_lookup(origin, &x->hidden) ||
	    cbw_dm_uuid(x->hidden.name, uuid) ||
	    strncmp(uuid, CBW_LVM_HIDDEN_UUID, strlen(CBW_LVM_HIDDEN_UUID)) ||
	    cbw_lvm_split(x->dev.name, x->vg, x->lv))
		return cbw_not_attached_lv(x);
	r = cbw_dm_get_lines(x->hidden.name, false, &x->hidden_table);
	if (r)
		return cbw_error("Cannot read the table of the hidden device '%s': %s",
				 x->hidden.name, strerror(-r));
	x->old_len = x->live.length;
	snprintf(x->vg_lv, sizeof(x->vg_lv), "%s/%s", x->vg, x->lv);
	return 0;
}

/* No snapshot, job, persistent or busy bitmap, nor half-done reload. */
static int cbw_lvx_check(struct cbw_lvx *x)
{
	char cow[CBW_DM_NAME_LEN] = "";
	struct cbw_job job;
	unsigned int i;
	int r;

	if (!cbw_job_load(&x->dev, &job))
		return cbw_error("A backup job is running on '%s': finish or cancel it first",
				 x->dev.spec);
	if (sscanf(x->live.params, "%*s %127s", cow) != 1 ||
	    strcmp(cow, DM_CBW_NO_COW))
		return cbw_error("A snapshot is active on '%s': stop it first (cbwctl snapshot stop %s)",
				 x->dev.spec, x->dev.spec);
	if (strstr(x->live.params, "metadata_dev"))
		return cbw_error("'%s' has a metadata device: cbwctl lvextend does not grow persistent bitmaps",
				 x->dev.spec);
	if (x->dev.suspended || x->dev.inactive_table ||
	    x->hidden.suspended || x->hidden.inactive_table)
		return cbw_error("'%s' or its hidden device '%s' is suspended or has an inactive table: see dmsetup info",
				 x->dev.spec, x->hidden.name);
	r = cbw_ctl_list(&x->dev, &x->bitmaps, &x->nr_bitmaps);
	if (r)
		return cbw_device_error(r, &x->dev);
	for (i = 0; i < x->nr_bitmaps; i++)
		if (x->bitmaps[i].status & (DM_CBW_BITMAP_BUSY |
					    DM_CBW_BITMAP_PERSISTENT) ||
		    !strcmp(x->bitmaps[i].name, CBW_GROW_TMP))
			return cbw_error("Bitmap '%s' of '%s' is busy, persistent or left by an extend that did not finish: cbwctl lvextend cannot keep it",
					 x->bitmaps[i].name, x->dev.spec);
	return 0;
}

/* lvextend's own options that would touch the device behind our back. */
static int cbw_lvx_check_args(const struct cbw_cmd *cmd, int argc,
			      char **argv)
{
	char title[CBW_TITLE_LEN];
	int i;

	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--resizefs") ||
		    !strncmp(argv[i], "--driverloaded", 14) ||
		    (argv[i][0] == '-' && argv[i][1] == 'r'))
			return cbw_usage_error(cmd, "%s: '%s' is not taken: resize the file system after the extend (resize2fs, xfs_growfs)",
					       cbw_cmd_title(cmd, title), argv[i]);
	return 0;
}

/* ------------------------------------------------------------------ */
/* LVM's new table                                                     */
/* ------------------------------------------------------------------ */

static int cbw_lines_append(struct cbw_dm_lines *l, const struct cbw_target *t)
{
	struct cbw_target *lines;

	lines = realloc(l->lines, (l->nr + 1) * sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	l->lines = lines;
	lines[l->nr] = *t;
	lines[l->nr].params = strdup(t->params);
	if (!lines[l->nr].params)
		return -ENOMEM;
	l->nr++;
	return 0;
}

static void cbw_free_args(char **args)
{
	free(args);
}

/* "lvm lvextend --driverloaded n VG/LV ARGS...": metadata only. */
static int cbw_lvx_run_lvextend(const struct cbw_lvx *x, int argc, char **argv)
{
	const char **args = calloc(argc + 6, sizeof(*args));
	int i, r;

	if (!args)
		return cbw_errno_error(-ENOMEM);
	args[0] = "lvm";
	args[1] = "lvextend";
	args[2] = "--driverloaded";
	args[3] = "n";
	args[4] = x->vg_lv;
	for (i = 0; i < argc; i++)
		args[5 + i] = argv[i];
	r = cbw_lvm_run(NULL, 0, args);
	cbw_free_args((char **)args);
	if (r)
		return cbw_error("lvextend of %s failed (its message is above): nothing changed",
				 x->vg_lv);
	return 0;
}

/* One "lvs --segments" row: START|SIZE|TYPE|PV:FIRST-LAST|EXTENT. */
static int cbw_lvx_segment(struct cbw_lvx *x, char *row, uint64_t pe_start,
			   const char *pv)
{
	unsigned long long start, size, first, extent;
	char type[32], params[64], *colon;
	struct cbw_target t = { .nr_targets = 1 };
	uint32_t ma, mi;

	if (sscanf(row, " %llu|%llu|%31[^|]|", &start, &size, type) != 3)
		return -EINVAL;
	colon = strrchr(row, ':');
	if (strcmp(type, "linear") || !colon ||
	    sscanf(colon, ":%llu-%*u|%llu", &first, &extent) != 2)
		return -EOPNOTSUPP;
	if (cbw_devno_of_path(pv, &ma, &mi))
		return -ENODEV;
	snprintf(params, sizeof(params), "%u:%u %llu", ma, mi,
		 (unsigned long long)pe_start + first * extent);
	t.start = start;
	t.length = size;
	snprintf(t.type, sizeof(t.type), "linear");
	t.params = params;
	return cbw_lines_append(&x->new_table, &t);
}

/* The first sector of the extents of @pv (pvs -o pe_start). */
static int cbw_pv_pe_start(const char *pv, uint64_t *pe_start)
{
	const char *const args[] = { "lvm", "pvs", "--noheadings", "--units",
				     "s", "--nosuffix", "-o", "pe_start", pv,
				     NULL };
	unsigned long long v;
	char out[64];

	if (cbw_lvm_run(out, sizeof(out), args) ||
	    sscanf(out, " %llu", &v) != 1)
		return -EIO;
	*pe_start = v;
	return 0;
}

/* The PV of a row: what precedes the last ':' of its fourth field. */
static int cbw_row_pv(const char *row, char *pv, size_t len)
{
	const char *p = row, *colon;
	int i;

	for (i = 0; i < 3 && p; i++) {
		p = strchr(p, '|');
		if (p)
			p++;
	}
	colon = p ? strrchr(p, ':') : NULL;
	if (!colon || (size_t)(colon - p) >= len)
		return -EINVAL;
	snprintf(pv, len, "%.*s", (int)(colon - p), p);
	while (*pv == ' ')
		memmove(pv, pv + 1, strlen(pv));
	return 0;
}

/* The table LVM would load for the LV now, from its metadata. */
static int cbw_lvx_lvm_table(struct cbw_lvx *x)
{
	const char *const args[] = { "lvm", "lvs", "--noheadings", "--segments",
				     "--units", "s", "--nosuffix",
				     "--separator", "|", "-o",
				     "seg_start,seg_size,segtype,seg_pe_ranges,vg_extent_size",
				     x->vg_lv, NULL };
	char *out = malloc(CBW_LVS_OUT), *row, *save = NULL, pv[PATH_MAX];
	uint64_t pe_start;
	int r = 0;

	if (!out)
		return -ENOMEM;
	if (cbw_lvm_run(out, CBW_LVS_OUT, args))
		r = -EIO;
	for (row = strtok_r(out, "\n", &save); !r && row;
	     row = strtok_r(NULL, "\n", &save)) {
		r = cbw_row_pv(row, pv, sizeof(pv));
		if (!r)
			r = cbw_pv_pe_start(pv, &pe_start);
		if (!r)
			r = cbw_lvx_segment(x, row, pe_start, pv);
	}
	free(out);
	if (!r && !x->new_table.nr)
		r = -EIO;
	x->new_len = r ? 0 : cbw_dm_lines_length(&x->new_table);
	return r;
}

/* Where a linear table maps @sector: device, offset, sectors left. */
static int cbw_linear_at(const struct cbw_dm_lines *l, uint64_t sector,
			 char *devno, uint64_t *off, uint64_t *left)
{
	unsigned long long o;
	unsigned int i;

	for (i = 0; i < l->nr; i++) {
		const struct cbw_target *t = &l->lines[i];

		if (sector < t->start || sector >= t->start + t->length)
			continue;
		if (strcmp(t->type, "linear") ||
		    sscanf(t->params, "%31s %llu", devno, &o) != 2)
			return -EINVAL;
		*off = o + sector - t->start;
		*left = t->start + t->length - sector;
		return 0;
	}
	return -ERANGE;
}

/* LVM kept the old extents where they were: the data stays. */
static bool cbw_same_mapping(const struct cbw_dm_lines *a,
			     const struct cbw_dm_lines *b, uint64_t len)
{
	char da[32], db[32];
	uint64_t s = 0, oa, ob, la, lb;

	while (s < len) {
		if (cbw_linear_at(a, s, da, &oa, &la) ||
		    cbw_linear_at(b, s, db, &ob, &lb) || strcmp(da, db) ||
		    oa != ob)
			return false;
		s += la < lb ? la : lb;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* The new length                                                      */
/* ------------------------------------------------------------------ */

/* Suspends and resumes @name, signals held back in between. */
static int cbw_lvx_swap(const char *name)
{
	sigset_t old;
	int r;

	cbw_block_stop_signals(&old);
	r = cbw_dm_suspend(name, false);
	if (r)
		cbw_dm_clear(name);
	else
		r = cbw_dm_resume(name);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* The hidden device gets LVM's table, then the LV a longer cbw table. */
static int cbw_lvx_grow_tables(struct cbw_lvx *x)
{
	struct cbw_target t = x->live;
	int r;

	r = cbw_dm_reload_lines(x->hidden.name, &x->new_table);
	if (!r)
		r = cbw_lvx_swap(x->hidden.name);
	if (r)
		return cbw_error("Cannot give the hidden device '%s' the new table: %s",
				 x->hidden.name, strerror(-r));
	t.length = x->new_len;
	r = cbw_dm_reload(x->dev.name, &t);
	if (!r)
		r = cbw_lvx_swap(x->dev.name);
	if (r)
		return cbw_error("Cannot give '%s' its new length: %s (the kernel log says why: dmesg | tail)",
				 x->dev.spec, strerror(-r));
	return 0;
}

/*
 * Adds bitmap @b again at the device's new length, with its bits: a
 * temporary bitmap takes them and records the writes while @b is away.
 */
static int cbw_lvx_grow_bitmap(const struct cbw_lvx *x,
			       const struct dm_cbw_bitmap_info *b)
{
	uint32_t flags = b->status & DM_CBW_BITMAP_RECORDING ? 0 :
			 DM_CBW_BITMAP_ADD_DISABLED;
	char *name = (char *)b->name, *tmp = CBW_GROW_TMP;
	int r;

	r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_ADD, &x->dev, tmp,
			   b->granularity, flags);
	if (!r)
		r = cbw_ctl_merge(&x->dev, tmp, &name, 1);
	if (!r)
		r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_REMOVE, &x->dev, name, 0, 0);
	if (!r)
		r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_ADD, &x->dev, name,
				   b->granularity, flags);
	if (!r)
		r = cbw_ctl_merge(&x->dev, name, &tmp, 1);
	if (!r)
		r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_REMOVE, &x->dev, tmp, 0, 0);
	if (!r)
		r = cbw_ctl_mark(&x->dev, name, x->old_len * 512,
				 (x->new_len - x->old_len) * 512);
	if (r)
		return cbw_error("Cannot grow bitmap '%s' of '%s': %s (if it is gone, bitmap '%s' has its bits; take the next backup in full)",
				 name, x->dev.spec, strerror(-r), CBW_GROW_TMP);
	return 0;
}

static void cbw_lvx_report(const struct cbw_lvx *x)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];
	unsigned int i;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", x->dev.name);
		cbw_json_string("lv", x->vg_lv);
		cbw_json_u64("old_size", x->old_len * 512);
		cbw_json_u64("new_size", x->new_len * 512);
		cbw_json_array_begin("bitmaps");
		for (i = 0; i < x->nr_bitmaps; i++)
			cbw_json_string(NULL, x->bitmaps[i].name);
		cbw_json_array_end();
		cbw_json_object_end();
		return;
	}
	printf("%s: extended from %s to %s", x->dev.name,
	       cbw_format_size(x->old_len * 512, a),
	       cbw_format_size(x->new_len * 512, b));
	if (x->nr_bitmaps)
		printf("; %u bitmap%s kept, the new space marked dirty",
		       x->nr_bitmaps, x->nr_bitmaps == 1 ? "" : "s");
	printf(".\n");
}

/* After lvextend changed LVM's metadata: make the kernel follow. */
static int cbw_lvx_follow(struct cbw_lvx *x)
{
	unsigned int i;
	int r;

	r = cbw_lvx_lvm_table(x);
	if (r)
		return cbw_error("LVM's new table of %s is not one cbwctl can build (only linear segments are): %s",
				 x->vg_lv, strerror(-r));
	if (x->new_len <= x->old_len)
		return cbw_error("%s did not grow (%llu sectors)", x->vg_lv,
				 (unsigned long long)x->new_len);
	if (!cbw_same_mapping(&x->hidden_table, &x->new_table, x->old_len))
		return cbw_error("LVM maps the old part of %s elsewhere than the hidden device '%s' does",
				 x->vg_lv, x->hidden.name);
	r = cbw_lvx_grow_tables(x);
	for (i = 0; !r && i < x->nr_bitmaps; i++)
		r = cbw_lvx_grow_bitmap(x, &x->bitmaps[i]);
	return r;
}

static void cbw_lvx_free(struct cbw_lvx *x)
{
	cbw_target_free(&x->live);
	cbw_dm_lines_free(&x->hidden_table);
	cbw_dm_lines_free(&x->new_table);
	free(x->bitmaps);
}

static int cbw_lvextend(const struct cbw_cmd *cmd, int argc, char **argv)
{
	char title[CBW_TITLE_LEN];
	struct cbw_lvx x;
	int r;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		cbw_print_cmd_help(cmd);
		return CBW_HELP_SHOWN;
	}
	if (argc < 2 || argv[1][0] == '-')
		return cbw_usage_error(cmd, "%s: missing argument DEV",
				       cbw_cmd_title(cmd, title));
	memset(&x, 0, sizeof(x));
	r = cbw_lvx_check_args(cmd, argc - 2, argv + 2);
	if (!r && (cbw_ctl_open() < 0 || cbw_dm_resolve_lv(argv[1], &x.dev)))
		r = CBW_EXIT_FAIL;
	if (!r)
		r = cbw_lvx_tables(&x);
	if (!r)
		r = cbw_lvx_check(&x);
	if (!r)
		r = cbw_lvx_run_lvextend(&x, argc - 2, argv + 2);
	if (!r && cbw_lvx_follow(&x)) {
		cbw_error("LVM's metadata gives %s its new size, but '%s' keeps its old size: to use the new space, detach, run lvchange --refresh %s and attach again (the bitmaps are lost then: take the next backup in full)",
			  x.vg_lv, x.dev.spec, x.vg_lv);
		r = CBW_EXIT_FAIL;
	}
	if (!r)
		cbw_lvx_report(&x);
	cbw_lvx_free(&x);
	return r;
}

const struct cbw_cmd cbw_lvextend_cmd = {
	.name = "lvextend",
	.params = { "DEV", "LVEXTEND-OPTION..." },
	.min_args = 1,
	.max_args = ~0U,
	.synopsis = "",
	.summary = "Extend an attached LVM logical volume, keeping its bitmaps.",
	.help =
	"DEV is an LV that 'cbwctl attach' attached (VG/LV, /dev/VG/LV or its\n"
	"device-mapper name); the other arguments go to lvextend (a size such\n"
	"as -L +10G or -l +100%FREE, PVs to take the space from).  LVM changes\n"
	"its metadata only (lvextend --driverloaded n); cbwctl then gives the\n"
	"hidden device LVM's new table (linear segments only) and DEV a cbw\n"
	"table of the new length, without taking the cbw layer away, adds each\n"
	"dirty bitmap again at the new length with its bits, and marks the new\n"
	"space dirty in every bitmap.  Refused during a snapshot or a backup\n"
	"job, with persistent bitmaps (a metadata device), and with -r or\n"
	"--resizefs: grow the file system afterwards (resize2fs, xfs_growfs).\n"
	"With --json: {\"device\", \"lv\", \"old_size\", \"new_size\",\n"
	"\"bitmaps\": [NAME, ...]}.\n",
	.run = cbw_lvextend,
};
