// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: extent listings of a byte range, for "bitmap dump" (dirty
 * extents of a bitmap) and "snapshot access-map" (what a snapshot reader
 * may read).
 *
 * The kernel returns at most a buffer's worth of extents per call and the
 * offset where the next call continues, so a range of any size (a 64 TiB
 * device) is listed with a small buffer, printing as it goes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbwctl.h"

/* The options of the commands that list extents. */
const struct option cbw_range_longopts[] = {
	{ "offset", required_argument, NULL, CBW_OPT_OFFSET },
	{ "length", required_argument, NULL, CBW_OPT_LENGTH },
	{ "batch", required_argument, NULL, CBW_OPT_BATCH },
	{ NULL, 0, NULL, 0 },
};

void cbw_range_init(struct cbw_range *r)
{
	memset(r, 0, sizeof(*r));
	r->batch = CBW_DEFAULT_BATCH;
}

static int cbw_range_size(const struct cbw_cmd *cmd, const char *opt,
			  const char *arg, uint64_t *v)
{
	if (cbw_parse_size(arg, v))
		return cbw_usage_error(cmd, "invalid size '%s' for %s (use bytes or a number with K, M, G, T: 64K)",
				       arg, opt);
	return 0;
}

/* --offset, --length and --batch. */
int cbw_range_option(const struct cbw_cmd *cmd, int opt, const char *arg,
		     struct cbw_range *r)
{
	char *end;
	unsigned long n;

	switch (opt) {
	case CBW_OPT_OFFSET:
		return cbw_range_size(cmd, "--offset", arg, &r->offset);
	case CBW_OPT_LENGTH:
		r->have_length = true;
		return cbw_range_size(cmd, "--length", arg, &r->length);
	case CBW_OPT_BATCH:
		n = strtoul(arg, &end, 10);
		if (*arg < '1' || *arg > '9' || *end || n > DM_CBW_MAX_EXTENTS)
			return cbw_usage_error(cmd, "--batch takes a number from 1 to %u",
					       DM_CBW_MAX_EXTENTS);
		r->batch = n;
		return 0;
	}
	return cbw_usage_error(cmd, "unknown option");
}

/* Checks the range against the device and sets r->end. */
int cbw_range_check(struct cbw_range *r, uint64_t dev_bytes)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];

	if (r->offset % 512 || r->length % 512)
		return cbw_error("Offset and length must be multiples of 512 bytes");
	if (r->offset > dev_bytes)
		return cbw_error("Offset %s is beyond the end of the device (%s)",
				 cbw_format_size(r->offset, a),
				 cbw_format_size(dev_bytes, b));
	r->end = dev_bytes;
	if (r->have_length && r->length < dev_bytes - r->offset)
		r->end = r->offset + r->length;
	return 0;
}

/* "offset" and "length" of the range, in the caller's JSON object. */
void cbw_range_json(const struct cbw_range *r)
{
	cbw_json_u64("offset", r->offset);
	cbw_json_u64("length", r->end - r->offset);
}

static void cbw_print_extent(const struct dm_cbw_extent *e)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_u64("offset", e->offset);
		cbw_json_u64("length", e->length);
		cbw_json_object_end();
		return;
	}
	printf("%-20s  %s\n", cbw_format_size(e->offset, a),
	       cbw_format_size(e->length, b));
}

/*
 * One read ioctl from @off: prints the extents it returns, adds them to
 * @res and sets *@next where the next call continues.
 */
static int cbw_walk_batch(unsigned long req, const struct cbw_dev *dev,
			  const char *name, const struct cbw_range *r,
			  struct dm_cbw_extent *ext, uint64_t off,
			  uint64_t *next, struct cbw_walk_result *res)
{
	struct dm_cbw_bitmap_read rd;
	unsigned int i;
	int err;

	rd.offset = off;
	rd.length = r->end - off;
	err = cbw_ctl_read(req, dev, name, &rd, ext, r->batch);
	if (err)
		return err;
	for (i = 0; i < rd.nr_extents && i < r->batch; i++) {
		cbw_print_extent(&ext[i]);
		res->bytes += ext[i].length;
		res->extents++;
	}
	*next = rd.next_offset;
	return 0;
}

/*
 * Lists the extents of [r->offset, r->end) from @req (DM_CBW_IOC_BITMAP_READ
 * of bitmap @name, or DM_CBW_IOC_SNAPSHOT_ACCESS), as a JSON array
 * "extents" or as table rows.  Returns 0 or a negative errno.
 */
int cbw_walk_extents(unsigned long req, const struct cbw_dev *dev,
		     const char *name, const struct cbw_range *r,
		     struct cbw_walk_result *res)
{
	const char *what = name ? "reading bitmap" : "reading access map";
	uint64_t off = r->offset, next;
	struct dm_cbw_extent *ext;
	int err = 0;

	memset(res, 0, sizeof(*res));
	ext = calloc(r->batch, sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	if (cbw_opts.json)
		cbw_json_array_begin("extents");
	else
		printf("%-20s  %s\n", "OFFSET", "LENGTH");

	/* Stop also without progress: the device shrank under us. */
	while (off < r->end) {
		err = cbw_walk_batch(req, dev, name, r, ext, off, &next, res);
		if (err || next <= off)
			break;
		off = next;
		cbw_progress(what, off - r->offset, r->end - r->offset);
	}
	cbw_progress_end();
	if (cbw_opts.json)
		cbw_json_array_end();
	free(ext);
	return err;
}
