// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl bitmap: dirty bitmaps of a cbw device.
 *
 * A dirty bitmap records which granules of the device completed writes
 * touched while it was enabled.  The messages follow QEMU's
 * block-dirty-bitmap-* commands where QEMU has one, and the JSON keys are
 * those of QEMU's BlockDirtyInfo.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbwctl.h"

/* ------------------------------------------------------------------ */
/* Shared checks and messages                                          */
/* ------------------------------------------------------------------ */

/* Checks a bitmap name (printable ASCII, 0x21 to 0x7e); prints why not. */
int cbw_check_bitmap_name(const char *name)
{
	const unsigned char *p;

	if (!*name)
		return cbw_error("Bitmap name cannot be empty");
	if (strlen(name) >= DM_CBW_NAME_LEN)
		return cbw_error("Bitmap name too long (at most %d bytes): %s",
				 DM_CBW_NAME_LEN - 1, name);
	for (p = (const unsigned char *)name; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return cbw_error("Bitmap name must not contain white space or control characters: %s",
					 name);
	for (p = (const unsigned char *)name; *p; p++)
		if (*p > 0x7f)
			return cbw_error("Bitmap name must be printable ASCII: %s",
					 name);
	return 0;
}

/* Messages for errnos any control ioctl on @dev may return. */
int cbw_device_error(int err, const struct cbw_dev *dev)
{
	cbw_errno_error(err);
	switch (-err) {
	case ENODEV:
		return cbw_error("Device '%s' is not a cbw device (load the dm-cbw module and create it with a cbw table)",
				 dev->spec);
	case EPERM:
	case EACCES:
		return cbw_error("Permission denied (cbwctl must run as root)");
	case ENOTTY:
		return cbw_error("The loaded dm-cbw module does not know this operation (update the module)");
	case EBADF:
		return CBW_EXIT_FAIL;	/* the control device: said so */
	default:
		return cbw_error("Operation on device '%s' failed: %s",
				 dev->spec, strerror(-err));
	}
}

/* Messages for the errnos of a bitmap ioctl naming bitmap @name. */
int cbw_bitmap_error(int err, const struct cbw_dev *dev, const char *name)
{
	cbw_errno_error(err);
	switch (-err) {
	case ENOENT:
		return cbw_error("Dirty bitmap '%s' not found", name);
	case EEXIST:
		return cbw_error("Bitmap already exists: %s", name);
	case ENOSPC:
		return cbw_error("Device '%s' already has the maximum of %d dirty bitmaps: remove one first (cbwctl bitmap remove %s NAME)",
				 dev->spec, DM_CBW_MAX_BITMAPS, dev->spec);
	case EBUSY:
		return cbw_error("Bitmap '%s' is currently in use by another operation and cannot be used",
				 name);
	case ENOMEM:
		return cbw_error("Not enough memory for bitmap '%s' (try a larger granularity)",
				 name);
	case EINVAL:
		return cbw_error("The kernel refused the request for bitmap '%s': %s",
				 name, strerror(EINVAL));
	case EUCLEAN:
		return cbw_error("Bitmap '%s' is inconsistent and cannot be used",
				 name);
	case EOPNOTSUPP:
		return cbw_error("Device '%s' has no metadata device: a persistent bitmap needs one (table argument metadata_dev)",
				 dev->spec);
	case EFBIG:
		return cbw_error("The metadata device of '%s' has no room for bitmap '%s' (a larger --granularity takes less)",
				 dev->spec, name);
	}
	return cbw_device_error(err, dev);
}

/* The control device, then the device: 0 or an exit status. */
int cbw_open_device(const char *spec, struct cbw_dev *dev)
{
	if (cbw_ctl_open() < 0)
		return CBW_EXIT_FAIL;
	return cbw_dm_resolve(spec, dev);
}

/* The live table of @dev, which must be a cbw table. */
int cbw_cbw_table(const struct cbw_dev *dev, struct cbw_target *t)
{
	int r = cbw_dm_table(dev->name, t);

	if (r)
		return cbw_error("Cannot read the table of '%s': %s", dev->spec,
				 strerror(-r));
	if (t->nr_targets == 1 && !strcmp(t->type, DM_CBW_TARGET_NAME))
		return 0;
	cbw_target_free(t);
	if (!t->nr_targets)
		return cbw_error("Device '%s' has no active table (is it still being created? see: dmsetup info %s)",
				 dev->spec, dev->name);
	return cbw_device_error(-ENODEV, dev);
}

/* ------------------------------------------------------------------ */
/* Output of bitmap information                                        */
/* ------------------------------------------------------------------ */

static const char *const cbw_bitmap_head[] = {
	"NAME", "GRANULARITY", "COUNT", "RECORDING", "BUSY", "PERSISTENT",
	"FROZEN", "SUCCESSOR", "INCONSISTENT", "GENERATION",
};

#define CBW_BITMAP_COLS	ARRAY_SIZE(cbw_bitmap_head)

static const char *cbw_yes_no(bool v)
{
	return v ? "yes" : "no";
}

/* A BlockDirtyInfo object. */
static void cbw_bitmap_json(const struct dm_cbw_bitmap_info *info)
{
	cbw_json_object_begin(NULL);
	cbw_json_string("name", info->name);
	cbw_json_u64("count", info->count);
	cbw_json_u64("granularity", info->granularity);
	cbw_json_bool("recording", info->status & DM_CBW_BITMAP_RECORDING);
	cbw_json_bool("busy", info->status & DM_CBW_BITMAP_BUSY);
	cbw_json_bool("persistent", info->status & DM_CBW_BITMAP_PERSISTENT);
	cbw_json_bool("frozen", info->status & DM_CBW_BITMAP_FROZEN);
	cbw_json_u64("successor-count", info->successor_count);
	cbw_json_bool("inconsistent", info->status & DM_CBW_BITMAP_INCONSISTENT);
	cbw_json_u64("generation", info->generation);
	cbw_json_object_end();
}

static void cbw_bitmap_row(struct cbw_table *t,
			   const struct dm_cbw_bitmap_info *info)
{
	char gran[CBW_SIZE_BUF], count[CBW_SIZE_BUF], succ[CBW_SIZE_BUF];
	bool frozen = info->status & DM_CBW_BITMAP_FROZEN;
	char gen[24] = "-";
	const char *cells[CBW_BITMAP_COLS] = {
		info->name,
		cbw_format_size(info->granularity, gran),
		cbw_format_size(info->count, count),
		cbw_yes_no(info->status & DM_CBW_BITMAP_RECORDING),
		cbw_yes_no(info->status & DM_CBW_BITMAP_BUSY),
		cbw_yes_no(info->status & DM_CBW_BITMAP_PERSISTENT),
		cbw_yes_no(frozen),
		frozen ? cbw_format_size(info->successor_count, succ) : "-",
		cbw_yes_no(info->status & DM_CBW_BITMAP_INCONSISTENT),
		gen,
	};

	if (info->generation)
		snprintf(gen, sizeof(gen), "%llu",
			 (unsigned long long)info->generation);

	cbw_table_add(t, cells);
}

static void cbw_print_bitmaps(const struct cbw_dev *dev,
			      const struct dm_cbw_bitmap_info *infos,
			      unsigned int nr)
{
	struct cbw_table *t;
	unsigned int i;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("device", dev->name);
		cbw_json_array_begin("bitmaps");
		for (i = 0; i < nr; i++)
			cbw_bitmap_json(&infos[i]);
		cbw_json_array_end();
		cbw_json_object_end();
		return;
	}
	t = cbw_table_new(CBW_BITMAP_COLS, cbw_bitmap_head);
	for (i = 0; i < nr; i++)
		cbw_bitmap_row(t, &infos[i]);
	cbw_table_print(t);
	cbw_table_free(t);
}

/* With --json, a changed bitmap is shown as "bitmap query" shows it. */
static int cbw_bitmap_show_changed(const struct cbw_dev *dev, const char *name)
{
	struct dm_cbw_bitmap_info info;
	int err;

	if (!cbw_opts.json)
		return CBW_EXIT_OK;
	err = cbw_ctl_query(dev, name, &info);
	if (err)
		return cbw_bitmap_error(err, dev, name);
	cbw_bitmap_json(&info);
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* bitmap add                                                          */
/* ------------------------------------------------------------------ */

struct cbw_add_opts {
	uint64_t granularity;
	uint32_t flags;
};

static int cbw_add_option(const struct cbw_cmd *cmd, int opt,
			  const char *arg, void *ctx)
{
	struct cbw_add_opts *o = ctx;

	if (opt == CBW_OPT_DISABLED) {
		o->flags |= DM_CBW_BITMAP_ADD_DISABLED;
		return 0;
	}
	if (opt == CBW_OPT_PERSISTENT) {
		o->flags |= DM_CBW_BITMAP_PERSISTENT;
		return 0;
	}
	if (cbw_parse_size(arg, &o->granularity))
		return cbw_usage_error(cmd, "invalid size '%s' for --granularity (use bytes or a number with K, M, G: 64K)",
				       arg);
	if (o->granularity < DM_CBW_MIN_GRANULARITY ||
	    !cbw_is_power_of_2(o->granularity))
		return cbw_error("Granularity must be power of 2 and at least 512");
	if (o->granularity > CBW_MAX_GRANULARITY)
		return cbw_error("Granularity must be at most 2G");
	return 0;
}

/* MemAvailable of /proc/meminfo in bytes, or 0 if unknown. */
static uint64_t cbw_mem_available(void)
{
	unsigned long long kib = 0;
	char line[128];
	FILE *f;

	f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib << 10;
}

/*
 * The kernel allocates the bits at once: refuse a bitmap that would take
 * more than half of the available memory rather than exhaust it.
 */
static int cbw_check_bitmap_memory(const struct cbw_dev *dev, const char *name,
				   uint64_t granularity)
{
	char need[CBW_SIZE_BUF], avail[CBW_SIZE_BUF];
	uint64_t bytes, mem;
	struct cbw_target t;
	int r;

	r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	cbw_target_free(&t);
	if (!t.length)
		return 0;
	bytes = ((t.length * 512 - 1) / granularity + 1 + 7) / 8;
	mem = cbw_mem_available();
	if (!mem || bytes <= mem / 2)
		return 0;
	return cbw_error("Bitmap '%s' would take %s of kernel memory, more than half of the %s available (use a larger --granularity)",
			 name, cbw_format_size(bytes & ~4095ULL, need),
			 cbw_format_size(mem & ~((1ULL << 20) - 1), avail));
}

static int cbw_bitmap_add(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "granularity", required_argument, NULL, CBW_OPT_GRANULARITY },
		{ "disabled", no_argument, NULL, CBW_OPT_DISABLED },
		{ "persistent", no_argument, NULL, CBW_OPT_PERSISTENT },
		{ NULL, 0, NULL, 0 },
	};
	struct cbw_add_opts o = { DM_CBW_DEFAULT_GRANULARITY, 0 };
	struct cbw_dev dev;
	const char *name;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, longopts, cbw_add_option, &o, &i);
	if (r)
		return r;
	name = argv[i + 1];
	r = cbw_check_bitmap_name(name);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (!r)
		r = cbw_check_bitmap_memory(&dev, name, o.granularity);
	if (r)
		return r;
	r = cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_ADD, &dev, name, o.granularity,
			   o.flags);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	return cbw_bitmap_show_changed(&dev, name);
}

/* ------------------------------------------------------------------ */
/* bitmap remove, clear, enable, disable                               */
/* ------------------------------------------------------------------ */

/* DEV NAME: the device is opened once the name is known to be valid. */
static int cbw_parse_dev_bitmap(const struct cbw_cmd *cmd, int argc,
				char **argv, struct cbw_dev *dev,
				const char **name)
{
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, NULL, NULL, NULL, &i);
	if (r)
		return r;
	*name = argv[i + 1];
	r = cbw_check_bitmap_name(*name);
	return r ? r : cbw_open_device(argv[i], dev);
}

static int cbw_bitmap_simple(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct cbw_dev dev;
	const char *name;
	int r;

	r = cbw_parse_dev_bitmap(cmd, argc, argv, &dev, &name);
	if (r)
		return r;
	r = cbw_ctl_bitmap(cmd->req, &dev, name, 0, 0);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	if (cmd->req != DM_CBW_IOC_BITMAP_REMOVE)
		return cbw_bitmap_show_changed(&dev, name);
	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_object_end();
	}
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* bitmap thaw                                                         */
/* ------------------------------------------------------------------ */

static int cbw_thaw_option(const struct cbw_cmd *cmd, int opt,
			   const char *arg, void *ctx)
{
	(void)cmd;
	(void)opt;
	(void)arg;
	*(uint32_t *)ctx |= DM_CBW_BITMAP_THAW_MERGE;
	return 0;
}

/*
 * A bitmap stays frozen when its backup job is lost (job file removed,
 * cbwctl killed before "backup finish") or a hand-made table froze it.
 */
static int cbw_bitmap_thaw(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "merge", no_argument, NULL, CBW_OPT_MERGE },
		{ NULL, 0, NULL, 0 },
	};
	struct dm_cbw_bitmap_info info;
	struct cbw_dev dev;
	uint32_t flags = 0;
	const char *name;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, longopts, cbw_thaw_option, &flags,
			  &i);
	if (r)
		return r;
	name = argv[i + 1];
	r = cbw_check_bitmap_name(name);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (r)
		return r;
	r = cbw_ctl_query(&dev, name, &info);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	if (!(info.status & DM_CBW_BITMAP_FROZEN)) {
		cbw_errno_error(-EINVAL);
		return cbw_error("Bitmap '%s' is not frozen", name);
	}
	r = cbw_ctl_thaw(&dev, name, flags);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	return cbw_bitmap_show_changed(&dev, name);
}

/* ------------------------------------------------------------------ */
/* bitmap merge                                                        */
/* ------------------------------------------------------------------ */

/* Names the first bitmap that does not exist (the kernel cannot). */
static int cbw_merge_check(const struct cbw_dev *dev, const char *target,
			   char **sources, unsigned int nr)
{
	struct dm_cbw_bitmap_info info;
	unsigned int i;
	int err;

	err = cbw_ctl_query(dev, target, &info);
	if (!err && info.status & DM_CBW_BITMAP_INCONSISTENT)
		err = -EUCLEAN;
	if (err)
		return cbw_bitmap_error(err, dev, target);
	for (i = 0; i < nr; i++) {
		err = cbw_ctl_query(dev, sources[i], &info);
		if (!err && info.status & DM_CBW_BITMAP_INCONSISTENT)
			err = -EUCLEAN;
		if (err)
			return cbw_bitmap_error(err, dev, sources[i]);
	}
	return 0;
}

static int cbw_bitmap_merge(const struct cbw_cmd *cmd, int argc, char **argv)
{
	unsigned int nr, j;
	struct cbw_dev dev;
	const char *target;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, NULL, NULL, NULL, &i);
	if (r)
		return r;
	target = argv[i + 1];
	nr = argc - i - 2;
	if (nr > DM_CBW_MAX_MERGE_SOURCES)
		return cbw_usage_error(cmd, "at most %u source bitmaps can be merged at once (got %u)",
				       DM_CBW_MAX_MERGE_SOURCES, nr);
	r = cbw_check_bitmap_name(target);
	for (j = 0; !r && j < nr; j++)
		r = cbw_check_bitmap_name(argv[i + 2 + j]);
	if (!r)
		r = cbw_open_device(argv[i], &dev);
	if (!r)
		r = cbw_merge_check(&dev, target, argv + i + 2, nr);
	if (r)
		return r;
	r = cbw_ctl_merge(&dev, target, argv + i + 2, nr);
	if (r)
		return cbw_bitmap_error(r, &dev, target);
	return cbw_bitmap_show_changed(&dev, target);
}

/* ------------------------------------------------------------------ */
/* bitmap list, query                                                  */
/* ------------------------------------------------------------------ */

static int cbw_bitmap_list(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_bitmap_info *infos;
	struct cbw_dev dev;
	unsigned int nr;
	int i, r;

	r = cbw_parse_dev_cmd(cmd, argc, argv, &dev, &i);
	if (r)
		return r;
	r = cbw_ctl_list(&dev, &infos, &nr);
	if (r)
		return cbw_device_error(r, &dev);
	cbw_print_bitmaps(&dev, infos, nr);
	free(infos);
	return CBW_EXIT_OK;
}

static int cbw_bitmap_query(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_bitmap_info info;
	struct cbw_dev dev;
	const char *name;
	int r;

	r = cbw_parse_dev_bitmap(cmd, argc, argv, &dev, &name);
	if (r)
		return r;
	r = cbw_ctl_query(&dev, name, &info);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	if (cbw_opts.json)
		cbw_bitmap_json(&info);
	else
		cbw_print_bitmaps(&dev, &info, 1);
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* bitmap dump                                                         */
/* ------------------------------------------------------------------ */

static int cbw_range_handler(const struct cbw_cmd *cmd, int opt,
			     const char *arg, void *ctx)
{
	return cbw_range_option(cmd, opt, arg, ctx);
}

static void cbw_dump_summary(const struct dm_cbw_bitmap_info *info,
			     const struct cbw_walk_result *res)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];

	if (cbw_opts.json) {
		cbw_json_u64("count", res->bytes);
		cbw_json_object_end();
		return;
	}
	printf("%s dirty in %llu extents (granularity %s)\n",
	       cbw_format_size(res->bytes, a),
	       (unsigned long long)res->extents,
	       cbw_format_size(info->granularity, b));
}

/* Device, range and bitmap of "bitmap dump": 0 or an exit status. */
static int cbw_dump_prepare(const char *spec, const char *name,
			    struct cbw_dev *dev, struct cbw_range *range,
			    struct dm_cbw_bitmap_info *info)
{
	struct cbw_target t;
	int r;

	r = cbw_check_bitmap_name(name);
	if (!r)
		r = cbw_open_device(spec, dev);
	if (!r)
		r = cbw_cbw_table(dev, &t);
	if (r)
		return r;
	cbw_target_free(&t);
	r = cbw_range_check(range, t.length * 512);
	if (r)
		return r;
	r = cbw_ctl_query(dev, name, info);
	return r ? cbw_bitmap_error(r, dev, name) : 0;
}

static void cbw_dump_json_head(const struct cbw_dev *dev, const char *name,
			       const struct dm_cbw_bitmap_info *info,
			       const struct cbw_range *range)
{
	cbw_json_object_begin(NULL);
	cbw_json_string("device", dev->name);
	cbw_json_string("name", name);
	cbw_json_u64("granularity", info->granularity);
	cbw_range_json(range);
}

static int cbw_bitmap_dump(const struct cbw_cmd *cmd, int argc, char **argv)
{
	struct dm_cbw_bitmap_info info;
	struct cbw_walk_result res;
	struct cbw_range range;
	struct cbw_dev dev;
	const char *name;
	int i, r;

	cbw_range_init(&range);
	r = cbw_parse_cmd(cmd, argc, argv, cbw_range_longopts,
			  cbw_range_handler, &range, &i);
	if (r)
		return r;
	name = argv[i + 1];
	r = cbw_dump_prepare(argv[i], name, &dev, &range, &info);
	if (r)
		return r;
	if (cbw_opts.json)
		cbw_dump_json_head(&dev, name, &info, &range);
	r = cbw_walk_extents(DM_CBW_IOC_BITMAP_READ, &dev, name, &range, &res);
	if (r)
		return cbw_bitmap_error(r, &dev, name);
	cbw_dump_summary(&info, &res);
	return CBW_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* The table of bitmap subcommands                                     */
/* ------------------------------------------------------------------ */

#define CBW_NAME_HELP \
	"NAME is 1 to 63 printable ASCII characters other than space.\n"

const struct cbw_cmd cbw_bitmap_cmds[] = {
	{
		.group = "bitmap", .name = "add",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.synopsis = "[--granularity SIZE] [--disabled] [--persistent]",
		.summary = "Add a dirty bitmap; it records every write that completes from now on.",
		.help =
		"Options:\n"
		"  --granularity SIZE  bytes per bit: a power of 2 from 512 to 2G\n"
		"                      (default 64K); a write marks every granule\n"
		"                      it touches\n"
		"  --disabled          create it disabled: it records nothing until\n"
		"                      'cbwctl bitmap enable'\n"
		"  --persistent        keep it on the device's metadata device\n"
		"                      (table argument metadata_dev): it is back\n"
		"                      when a table with that metadata device is\n"
		"                      loaded again\n\n"
		CBW_NAME_HELP
		"The bitmap takes one bit of kernel memory per granule (16M per\n"
		"TiB at 64K); a bitmap that would take more than half of the\n"
		"available memory is refused.  With --json, prints the new bitmap\n"
		"as 'bitmap query' does.\n",
		.run = cbw_bitmap_add,
	},
	{
		.group = "bitmap", .name = "remove",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.summary = "Remove a dirty bitmap (refused while it is busy).",
		.run = cbw_bitmap_simple, .req = DM_CBW_IOC_BITMAP_REMOVE,
	},
	{
		.group = "bitmap", .name = "clear",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.summary = "Clear every bit of a dirty bitmap (refused while it is busy).",
		.help = "With --json, prints the bitmap as 'bitmap query' does.\n",
		.run = cbw_bitmap_simple, .req = DM_CBW_IOC_BITMAP_CLEAR,
	},
	{
		.group = "bitmap", .name = "enable",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.summary = "Enable a dirty bitmap: completed writes mark it again.",
		.help = "With --json, prints the bitmap as 'bitmap query' does.\n",
		.run = cbw_bitmap_simple, .req = DM_CBW_IOC_BITMAP_ENABLE,
	},
	{
		.group = "bitmap", .name = "disable",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.summary = "Disable a dirty bitmap: it keeps its bits but records nothing.",
		.help = "With --json, prints the bitmap as 'bitmap query' does.\n",
		.run = cbw_bitmap_simple, .req = DM_CBW_IOC_BITMAP_DISABLE,
	},
	{
		.group = "bitmap", .name = "thaw",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.synopsis = "[--merge]",
		.summary = "End the freeze of a bitmap left frozen (no backup job of its own).",
		.help =
		"Options:\n"
		"  --merge             keep the frozen bits and add the successor's\n"
		"                      (as a failed backup does); without it the\n"
		"                      bitmap becomes its successor, the writes\n"
		"                      since the freeze (as a successful backup does)\n\n"
		"For a bitmap that a lost backup job (removed job file, cbwctl\n"
		"killed before 'backup finish') or a freeze_bitmap table left\n"
		"frozen.  It does not end the snapshot; do not use it on the\n"
		"bitmap of a backup that is still running ('backup finish' thaws\n"
		"that one).  Fails if the bitmap is not frozen.  With --json,\n"
		"prints the bitmap as 'bitmap query' does.\n",
		.run = cbw_bitmap_thaw,
	},
	{
		.group = "bitmap", .name = "merge",
		.params = { "DEV", "TARGET", "SOURCE..." },
		.min_args = 3, .max_args = 1024,
		.summary = "Add the bits of the SOURCE bitmaps to TARGET (TARGET |= SOURCE...).",
		.help =
		"Granularities may differ: a source bit marks every granule of\n"
		"TARGET that its range overlaps.  At most 64 sources at once.\n"
		"Refused while TARGET is busy.  With --json, prints TARGET as\n"
		"'bitmap query' does.\n",
		.run = cbw_bitmap_merge,
	},
	{
		.group = "bitmap", .name = "list",
		.params = { "DEV" }, .min_args = 1, .max_args = 1,
		.summary = "List the dirty bitmaps of a device.",
		.help =
		"Columns: name, granularity, count (dirty bytes), recording\n"
		"(enabled), busy (in use, e.g. named by a loaded snapshot table\n"
		"that is not resumed yet, or frozen), persistent (always no),\n"
		"frozen (by a backup: its bits stay as they were at the snapshot\n"
		"point) and successor (for a frozen bitmap, the dirty bytes that\n"
		"the writes since the freeze recorded; QEMU's anonymous\n"
		"successor).  A frozen bitmap is recording when its successor is.\n"
		"With --json: {\"device\": NAME, \"bitmaps\": [{\"name\", \"count\",\n"
		"\"granularity\", \"recording\", \"busy\", \"persistent\",\n"
		"\"frozen\", \"successor-count\"}, ...]}, the keys of QEMU's\n"
		"BlockDirtyInfo plus the last two.\n",
		.run = cbw_bitmap_list,
	},
	{
		.group = "bitmap", .name = "query",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.summary = "Show one dirty bitmap.",
		.help =
		"As one row of 'bitmap list'; with --json one BlockDirtyInfo\n"
		"object: name, count, granularity, recording, busy, persistent,\n"
		"frozen, successor-count.\n",
		.run = cbw_bitmap_query,
	},
	{
		.group = "bitmap", .name = "dump",
		.params = { "DEV", "NAME" }, .min_args = 2, .max_args = 2,
		.synopsis = "[--offset SIZE] [--length SIZE] [--batch N]",
		.summary = "List the dirty extents of a bitmap.",
		.help =
		"Options:\n"
		"  --offset SIZE       start of the range (default 0)\n"
		"  --length SIZE       length of the range (default: to the end)\n"
		"  --batch N           extents fetched per call, 1 to 4096\n"
		"                      (default 1024)\n\n"
		"Extents are whole granules, clipped to the range and the device.\n"
		"Offset and length must be multiples of 512.  With --json:\n"
		"{\"device\", \"name\", \"granularity\", \"offset\", \"length\",\n"
		"\"extents\": [{\"offset\", \"length\"}, ...], \"count\"}, count being\n"
		"the dirty bytes in the range.  Progress goes to a terminal on\n"
		"standard error.\n",
		.run = cbw_bitmap_dump,
	},
	{ .name = NULL },
};
