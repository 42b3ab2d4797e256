// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl backup run: copy the point-in-time image from the access device
 * to the target.
 *
 * The copy set is the whole device (sync full) or the extents of the
 * frozen bitmap (sync bitmap), read from the kernel in bounded batches.
 * It is copied in ascending offset order, one piece at a time, each piece
 * at most --max-chunk bytes (extents are cut at multiples of it), read
 * with O_DIRECT so that the page cache neither holds stale snapshot data
 * nor grows with the backup.  The first read or write error ends the run:
 * the job is marked failed at that piece, which "finish" uses to apply
 * the bitmap mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/fs.h>

#include "cbwctl.h"

struct cbw_copy {
	const struct cbw_dev *dev;
	struct cbw_job *job;
	const struct cbw_run_opts *o;
	char src_path[PATH_MAX];
	int src;
	int dst;
	bool extents_file;		/* --format cbw */
	bool discard;			/* still discarding */
	uint64_t dst_pos;		/* end of the extents file */
	uint8_t *buf;
	uint64_t done;
	uint64_t records;		/* pieces copied */
	uint64_t chunks;		/* snapshot chunks copied */
	uint64_t next_chunk;		/* first chunk not counted yet */
};

static uint64_t cbw_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* Progress and events                                                 */
/* ------------------------------------------------------------------ */

static void cbw_copy_progress(const struct cbw_copy *c)
{
	if (!cbw_opts.json) {
		cbw_progress("backup", c->done, c->job->total_bytes);
		return;
	}
	cbw_json_object_begin(NULL);
	cbw_json_string("event", "progress");
	cbw_json_u64("done", c->done);
	cbw_json_u64("total", c->job->total_bytes);
	cbw_json_object_end();
}

static void cbw_copy_event(const struct cbw_copy *c, bool ok)
{
	const struct cbw_job *job = c->job;

	cbw_json_object_begin(NULL);
	cbw_json_string("event", ok ? "completed" : "failed");
	cbw_json_string("device", job->device);
	cbw_json_u64("done", c->done);
	cbw_json_u64("total", job->total_bytes);
	cbw_json_u64("chunks", c->chunks);
	cbw_json_string("target", job->target);
	cbw_json_string("format", job->format);
	cbw_json_u64("milliseconds", job->run_ms);
	if (!ok) {
		cbw_json_u64("fail_offset", job->fail_offset);
		cbw_json_string("error", strerror(job->error));
	}
	cbw_json_object_end();
}

/* The run failed at the piece at @off: say why, keep it in the job. */
__printf(4, 5)
static int cbw_copy_fail(struct cbw_copy *c, uint64_t off, int err,
			 const char *fmt, ...)
{
	char msg[PATH_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->job->fail_offset = off;
	c->job->error = -err;
	cbw_error("%s: %s", msg, strerror(-err));
	return CBW_EXIT_FAIL;
}

/* ------------------------------------------------------------------ */
/* Target                                                              */
/* ------------------------------------------------------------------ */

/* A raw target must hold the whole device. */
static int cbw_check_raw_target(struct cbw_copy *c, bool fresh)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];
	const struct cbw_job *job = c->job;
	struct stat st;
	uint64_t size;
	int r;

	if (fstat(c->dst, &st))
		return cbw_error("Cannot stat '%s': %s", job->target,
				 strerror(errno));
	if (S_ISREG(st.st_mode) && fresh && ftruncate(c->dst, job->size))
		return cbw_error("Cannot size '%s' to %s: %s", job->target,
				 cbw_format_size(job->size, a), strerror(errno));
	r = cbw_fd_size(c->dst, &size);
	if (r)
		return cbw_error("Target '%s' must be a regular file or a block device",
				 job->target);
	if (size < job->size || (S_ISREG(st.st_mode) && size != job->size))
		return cbw_error("Target '%s' is %s, not the size of '%s' (%s)%s",
				 job->target, cbw_format_size(size, a),
				 job->device, cbw_format_size(job->size, b),
				 fresh ? "" : ": a raw bitmap backup updates the image of a previous full backup in place");
	return 0;
}

static int cbw_write_header(struct cbw_copy *c)
{
	uint8_t buf[CBW_IMG_HEADER_SIZE];
	struct cbw_img_header h = {
		.dev_size = c->job->size,
		.granularity = c->job->granularity,
		.created = time(NULL),
		.sync = c->job->bitmap[0] && !strcmp(c->job->sync, "bitmap") ?
			CBW_IMG_SYNC_BITMAP : CBW_IMG_SYNC_FULL,
		.generation = c->job->generation,
	};
	int r;

	snprintf(h.bitmap, sizeof(h.bitmap), "%s", c->job->bitmap);
	cbw_img_encode_header(&h, buf);
	r = cbw_pwrite_full(c->dst, buf, sizeof(buf), 0);
	if (r)
		return cbw_error("Cannot write to '%s': %s", c->job->target,
				 strerror(-r));
	c->dst_pos = sizeof(buf);
	return 0;
}

/*
 * raw: full backups create (or truncate) the target, bitmap backups
 * update an existing image in place; cbw: a new extents file.
 */
static int cbw_open_target(struct cbw_copy *c)
{
	const struct cbw_job *job = c->job;
	bool full = strcmp(job->sync, "bitmap");
	int flags = O_WRONLY | O_CLOEXEC;
	struct stat st;

	c->extents_file = !strcmp(job->format, "cbw");
	if (c->extents_file || full)
		flags |= O_CREAT;
	if (!stat(job->target, &st) && S_ISREG(st.st_mode) &&
	    (c->extents_file || full))
		flags |= O_TRUNC;
	c->dst = open(job->target, flags, 0600);
	if (c->dst < 0)
		return cbw_error("Cannot open target '%s': %s%s", job->target,
				 strerror(errno),
				 errno == ENOENT && !full && !c->extents_file ?
				 " (a raw bitmap backup updates the image of a previous full backup: give its path, or use --format cbw)" : "");
	if (c->extents_file)
		return cbw_write_header(c);
	return cbw_check_raw_target(c, full);
}

static int cbw_write_record(struct cbw_copy *c, uint64_t off, uint64_t len)
{
	uint8_t head[CBW_IMG_BLOCK_SIZE];
	struct cbw_img_record rec = {
		.crc = cbw_crc32(0, c->buf, len),
		.offset = off,
		.length = len,
	};
	int r;

	cbw_img_encode_record(&rec, head);
	r = cbw_pwrite_full(c->dst, head, sizeof(head), c->dst_pos);
	if (!r)
		r = cbw_pwrite_full(c->dst, c->buf, len, c->dst_pos + sizeof(head));
	if (!r)
		c->dst_pos += sizeof(head) + len;
	return r;
}

/* The trailer of an extents file, then everything to stable storage. */
static int cbw_close_target(struct cbw_copy *c, bool ok)
{
	uint8_t buf[CBW_IMG_BLOCK_SIZE];
	struct cbw_img_trailer tr = {
		.flags = ok ? 0 : CBW_IMG_PARTIAL,
		.records = c->records,
		.data_bytes = c->done,
		.fail_offset = ok ? 0 : c->job->fail_offset,
	};
	int r = 0;

	if (c->extents_file) {
		cbw_img_encode_trailer(&tr, buf);
		r = cbw_pwrite_full(c->dst, buf, sizeof(buf), c->dst_pos);
	}
	if (!r && fdatasync(c->dst))
		r = -errno;
	if (close(c->dst) && !r)
		r = -errno;
	c->dst = -1;
	if (r)
		return cbw_error("Cannot write to '%s': %s", c->job->target,
				 strerror(-r));
	return 0;
}

/* ------------------------------------------------------------------ */
/* The copy                                                            */
/* ------------------------------------------------------------------ */

/* Pieces ascend, but two may share a chunk when granules are smaller. */
static void cbw_count_chunks(struct cbw_copy *c, uint64_t off, uint64_t len)
{
	uint64_t chunk = c->job->chunk ? c->job->chunk : 65536;
	uint64_t first = off / chunk, end = (off + len + chunk - 1) / chunk;

	if (first < c->next_chunk)
		first = c->next_chunk;
	if (end > first)
		c->chunks += end - first;
	if (end > c->next_chunk)
		c->next_chunk = end;
}

/* After a piece is on stable storage, its COW chunks are not needed. */
static void cbw_discard_piece(struct cbw_copy *c, uint64_t off, uint64_t len)
{
	uint64_t range[2] = { off, len };

	if (fdatasync(c->dst) || ioctl(c->src, BLKDISCARD, range)) {
		cbw_warn("Cannot discard %s at offset %llu: %s (copying on without discarding)",
			 c->src_path, (unsigned long long)off, strerror(errno));
		c->discard = false;
	}
}

static int cbw_copy_piece(struct cbw_copy *c, uint64_t off, uint64_t len)
{
	int r;

	r = cbw_pread_full(c->src, c->buf, len, off);
	if (r)
		return cbw_copy_fail(c, off, r, "read error at offset %llu of %s",
				     (unsigned long long)off, c->src_path);
	if (c->extents_file)
		r = cbw_write_record(c, off, len);
	else
		r = cbw_pwrite_full(c->dst, c->buf, len, off);
	if (r)
		return cbw_copy_fail(c, off, r, "write error at offset %llu of %s",
				     (unsigned long long)off, c->job->target);
	if (c->discard)
		cbw_discard_piece(c, off, len);
	c->done += len;
	c->records++;
	cbw_count_chunks(c, off, len);
	cbw_copy_progress(c);
	return 0;
}

/* [@off, @end) in pieces that end at multiples of --max-chunk. */
static int cbw_copy_extent(struct cbw_copy *c, uint64_t off, uint64_t end)
{
	uint64_t max = c->o->max_chunk, next;
	int r;

	while (off < end) {
		next = (off / max + 1) * max;
		if (next > end)
			next = end;
		r = cbw_copy_piece(c, off, next - off);
		if (r)
			return r;
		off = next;
	}
	return 0;
}

/* The extents of the frozen bitmap, a batch at a time. */
static int cbw_copy_bitmap(struct cbw_copy *c)
{
	struct dm_cbw_extent ext[CBW_DEFAULT_BATCH];
	struct dm_cbw_bitmap_read rd;
	uint64_t off = 0;
	unsigned int i;
	int r;

	while (off < c->job->size) {
		rd.offset = off;
		rd.length = c->job->size - off;
		r = cbw_ctl_read(DM_CBW_IOC_BITMAP_READ, c->dev, c->job->bitmap,
				 &rd, ext, ARRAY_SIZE(ext));
		if (r) {
			c->job->fail_offset = off;
			c->job->error = -r;
			return cbw_bitmap_error(r, c->dev, c->job->bitmap);
		}
		for (i = 0; i < rd.nr_extents && i < ARRAY_SIZE(ext); i++) {
			r = cbw_copy_extent(c, ext[i].offset,
					    ext[i].offset + ext[i].length);
			if (r)
				return r;
		}
		if (rd.next_offset <= off)
			break;
		off = rd.next_offset;
	}
	return 0;
}

static int cbw_copy_open(struct cbw_copy *c)
{
	int flags = (c->o->discard ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC;

	snprintf(c->src_path, sizeof(c->src_path), "/dev/mapper/%s",
		 c->job->access);
	c->src = open(c->src_path, flags);
	if (c->src < 0)
		return cbw_error("Cannot open the access device %s: %s (is the job's snapshot still there? see: cbwctl backup status %s)",
				 c->src_path, strerror(errno), c->job->device);
	if (posix_memalign((void **)&c->buf, 4096, c->o->max_chunk)) {
		c->buf = NULL;
		return cbw_error("Not enough memory for a %llu-byte buffer (use a smaller --max-chunk)",
				 (unsigned long long)c->o->max_chunk);
	}
	return cbw_open_target(c);
}

/*
 * Copies the copy set of @job to o->target; sets the job's state (copied
 * or failed), counters and times.  0 or an exit status.
 */
int cbw_backup_copy(const struct cbw_dev *dev, struct cbw_job *job,
		    const struct cbw_run_opts *o)
{
	struct cbw_copy c = { .dev = dev, .job = job, .o = o, .src = -1,
			      .dst = -1, .discard = o->discard };
	uint64_t t0 = cbw_now_ms();
	int r;

	/* Nothing was copied yet: the job stays as it was. */
	r = cbw_copy_open(&c);
	if (r)
		goto out;
	if (cbw_opts.json)
		cbw_copy_progress(&c);
	if (!strcmp(job->sync, "bitmap"))
		r = cbw_copy_bitmap(&c);
	else
		r = cbw_copy_extent(&c, 0, job->size);
	cbw_progress_end();
	if (c.dst >= 0 && cbw_close_target(&c, !r) && !r) {
		job->fail_offset = job->size;
		job->error = EIO;
		r = CBW_EXIT_FAIL;
	}
	job->run_ms = cbw_now_ms() - t0;
	job->done_bytes = c.done;
	job->chunks = c.chunks;
	snprintf(job->state, sizeof(job->state), "%s", r ? "failed" : "copied");
	if (!job->error && r)
		job->error = EIO;
	if (cbw_opts.json)
		cbw_copy_event(&c, !r);
out:
	if (c.dst >= 0)
		close(c.dst);
	if (c.src >= 0)
		close(c.src);
	free(c.buf);
	return r;
}
