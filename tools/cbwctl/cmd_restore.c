// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl restore: apply a backup chain (a full image, raw or an extents
 * file, then the extents files of incremental backups, oldest first) to a
 * block device or a file, and verify it.
 *
 * Every file is checked before anything is written: its format, its
 * device size (all the same), and for an extents file that it is
 * complete (has its trailer, whose counts match) and not partial (unless
 * --allow-partial).  Then each file in turn is written (the CRC of each
 * record checked first), flushed, and read back and compared with what
 * it holds, before the next file is applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbwctl.h"

#define CBW_RAW_PIECE		(1ULL << 20)
#define CBW_MAX_RECORD		(64ULL << 20)
#define CBW_MAX_IMAGES		256

struct cbw_img {
	const char *path;
	int fd;
	bool extents;			/* an extents file, else raw */
	uint64_t size;			/* of the device it was taken from */
	uint64_t data_end;		/* extents file: where the trailer is */
	struct cbw_img_header h;
	struct cbw_img_trailer tr;
};

struct cbw_restore {
	const char *dest;
	bool allow_partial;
	int fd;				/* DEST, for writing */
	int vfd;			/* DEST, for reading back */
	bool fresh;			/* DEST is a new file: zeros are holes */
	uint8_t *buf;
	uint8_t *vbuf;
	size_t buf_size;
	uint64_t written;
	uint64_t compared;
	const struct cbw_img *img;	/* being applied */
};

/* Called for each piece of an image: 0 or an exit status. */
typedef int (*cbw_piece_fn)(struct cbw_restore *rs, uint64_t off,
			    uint64_t len);

/* ------------------------------------------------------------------ */
/* Checking the files                                                  */
/* ------------------------------------------------------------------ */

static int cbw_scan_records(struct cbw_img *img, bool allow_partial)
{
	uint64_t pos = CBW_IMG_HEADER_SIZE, nr = 0, bytes = 0;
	uint8_t blk[CBW_IMG_BLOCK_SIZE];
	struct cbw_img_record rec;
	int r;

	for (;;) {
		r = cbw_pread_full(img->fd, blk, sizeof(blk), pos);
		if (r == -ENODATA)
			return cbw_error("'%s' is incomplete (it has no trailer: the backup that wrote it did not end); it cannot be restored",
					 img->path);
		if (r)
			return cbw_error("Cannot read '%s': %s", img->path,
					 strerror(-r));
		r = cbw_img_decode_block(blk, &rec, &img->tr);
		if (r == 2)
			break;
		if (r < 0 || rec.length > CBW_MAX_RECORD || rec.offset % 512 ||
		    rec.length % 512 || !rec.length ||
		    rec.offset + rec.length > img->size)
			return cbw_error("'%s' is corrupt: bad record at file position %llu",
					 img->path, (unsigned long long)pos);
		pos += sizeof(blk) + rec.length;
		nr++;
		bytes += rec.length;
	}
	img->data_end = pos;
	if (img->tr.records != nr || img->tr.data_bytes != bytes)
		return cbw_error("'%s' is corrupt: its trailer counts %llu records, the file has %llu",
				 img->path, (unsigned long long)img->tr.records,
				 (unsigned long long)nr);
	if ((img->tr.flags & CBW_IMG_PARTIAL) && !allow_partial)
		return cbw_error("'%s' is partial: its backup failed at offset %llu (restore it anyway with --allow-partial)",
				 img->path,
				 (unsigned long long)img->tr.fail_offset);
	return 0;
}

/* Opens @img and reads what it is; @first may be raw. */
static int cbw_img_open(struct cbw_img *img, bool first, bool allow_partial)
{
	uint8_t head[CBW_IMG_HEADER_SIZE];
	int r;

	img->fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0)
		return cbw_error("Cannot open '%s': %s", img->path,
				 strerror(errno));
	r = cbw_fd_size(img->fd, &img->size);
	if (r)
		return cbw_error("'%s' is neither a regular file nor a block device",
				 img->path);
	r = cbw_pread_full(img->fd, head, sizeof(head), 0);
	if (!r)
		r = cbw_img_decode_header(head, &img->h);
	if (r == -EPROTO)
		return cbw_error("'%s' is an extents file of a version or layout cbwctl does not know (update cbwctl)",
				 img->path);
	img->extents = !r;
	if (img->extents) {
		img->size = img->h.dev_size;
		return cbw_scan_records(img, allow_partial);
	}
	if (!first)
		return cbw_error("'%s' is not a cbw extents file: only the first image of a chain may be raw",
				 img->path);
	if (!img->size || img->size % 512)
		return cbw_error("'%s' cannot be a device image: its size (%llu) is not a multiple of 512",
				 img->path, (unsigned long long)img->size);
	return 0;
}

static int cbw_open_images(struct cbw_img *imgs, unsigned int nr,
			   bool allow_partial)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];
	unsigned int i;
	int r;

	for (i = 0; i < nr; i++) {
		r = cbw_img_open(&imgs[i], !i, allow_partial);
		if (r)
			return r;
		if (imgs[i].size != imgs[0].size)
			return cbw_error("'%s' is a backup of a device of %s, but '%s' of one of %s: they are not one chain",
					 imgs[i].path,
					 cbw_format_size(imgs[i].size, a),
					 imgs[0].path,
					 cbw_format_size(imgs[0].size, b));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* DEST                                                                */
/* ------------------------------------------------------------------ */

/* A block device at least @size large, or a file (created, sized). */
static int cbw_open_dest(struct cbw_restore *rs, uint64_t size)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];
	struct stat st;
	uint64_t have;

	if (stat(rs->dest, &st) || !S_ISBLK(st.st_mode)) {
		rs->fresh = true;
		rs->fd = open(rs->dest, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			      0600);
		if (rs->fd >= 0 && ftruncate(rs->fd, size))
			return cbw_error("Cannot size '%s': %s", rs->dest,
					 strerror(errno));
	} else {
		rs->fd = open(rs->dest, O_RDWR | O_EXCL | O_CLOEXEC);
	}
	if (rs->fd < 0)
		return cbw_error("Cannot open '%s': %s", rs->dest,
				 strerror(errno));
	if (cbw_fd_size(rs->fd, &have) || have < size)
		return cbw_error("'%s' (%s) is smaller than the image (%s)",
				 rs->dest, cbw_format_size(have, a),
				 cbw_format_size(size, b));
	/* Read back from the device, not from the page cache. */
	rs->vfd = open(rs->dest, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (rs->vfd < 0)
		rs->vfd = open(rs->dest, O_RDONLY | O_CLOEXEC);
	if (rs->vfd < 0)
		return cbw_error("Cannot open '%s': %s", rs->dest,
				 strerror(errno));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Applying and verifying                                              */
/* ------------------------------------------------------------------ */

static int cbw_restore_buffers(struct cbw_restore *rs, uint64_t len)
{
	if (len <= rs->buf_size)
		return 0;
	free(rs->buf);
	free(rs->vbuf);
	rs->buf = rs->vbuf = NULL;
	if (posix_memalign((void **)&rs->buf, 4096, len) ||
	    posix_memalign((void **)&rs->vbuf, 4096, len))
		return cbw_error("Not enough memory for a %llu-byte piece",
				 (unsigned long long)len);
	rs->buf_size = len;
	return 0;
}

static bool cbw_all_zero(const uint8_t *p, uint64_t len)
{
	return !*p && !memcmp(p, p + 1, len - 1);
}

static int cbw_apply_piece(struct cbw_restore *rs, uint64_t off, uint64_t len)
{
	int r;

	if (rs->fresh && cbw_all_zero(rs->buf, len))
		return 0;
	r = cbw_pwrite_full(rs->fd, rs->buf, len, off);
	if (r)
		return cbw_error("write error at offset %llu of %s: %s",
				 (unsigned long long)off, rs->dest,
				 strerror(-r));
	rs->written += len;
	return 0;
}

static int cbw_verify_piece(struct cbw_restore *rs, uint64_t off, uint64_t len)
{
	int r;

	r = cbw_pread_full(rs->vfd, rs->vbuf, len, off);
	if (r)
		return cbw_error("read error at offset %llu of %s: %s",
				 (unsigned long long)off, rs->dest,
				 strerror(-r));
	if (memcmp(rs->buf, rs->vbuf, len))
		return cbw_error("Verification failed: %s differs from '%s' in the %llu bytes at offset %llu",
				 rs->dest, rs->img->path,
				 (unsigned long long)len,
				 (unsigned long long)off);
	rs->compared += len;
	return 0;
}

static int cbw_raw_for_each(struct cbw_restore *rs, const struct cbw_img *img,
			    cbw_piece_fn fn)
{
	uint64_t off, len;
	int r;

	r = cbw_restore_buffers(rs, CBW_RAW_PIECE);
	for (off = 0; !r && off < img->size; off += len) {
		len = img->size - off < CBW_RAW_PIECE ? img->size - off :
		      CBW_RAW_PIECE;
		r = cbw_pread_full(img->fd, rs->buf, len, off);
		if (r)
			return cbw_error("Cannot read '%s': %s", img->path,
					 strerror(-r));
		r = fn(rs, off, len);
	}
	return r;
}

/* Each record, its CRC checked, in rs->buf. */
static int cbw_ext_for_each(struct cbw_restore *rs, const struct cbw_img *img,
			    cbw_piece_fn fn)
{
	uint8_t blk[CBW_IMG_BLOCK_SIZE];
	uint64_t pos = CBW_IMG_HEADER_SIZE;
	struct cbw_img_trailer tr;
	struct cbw_img_record rec;
	int r;

	while (pos < img->data_end) {
		r = cbw_pread_full(img->fd, blk, sizeof(blk), pos);
		if (!r && cbw_img_decode_block(blk, &rec, &tr) != 1)
			r = -EILSEQ;
		if (!r)
			r = cbw_restore_buffers(rs, rec.length) ? -ENOMEM : 0;
		if (!r)
			r = cbw_pread_full(img->fd, rs->buf, rec.length,
					   pos + sizeof(blk));
		if (r)
			return cbw_error("Cannot read '%s' at position %llu: %s",
					 img->path, (unsigned long long)pos,
					 strerror(-r));
		if (cbw_crc32(0, rs->buf, rec.length) != rec.crc)
			return cbw_error("'%s' is corrupt: the record of offset %llu fails its CRC check",
					 img->path,
					 (unsigned long long)rec.offset);
		r = fn(rs, rec.offset, rec.length);
		if (r)
			return r;
		pos += sizeof(blk) + rec.length;
	}
	return 0;
}

/* Writes @img, flushes, reads it back and compares. */
static int cbw_restore_one(struct cbw_restore *rs, const struct cbw_img *img)
{
	int (*each)(struct cbw_restore *, const struct cbw_img *, cbw_piece_fn);
	int r;

	each = img->extents ? cbw_ext_for_each : cbw_raw_for_each;
	rs->img = img;
	r = each(rs, img, cbw_apply_piece);
	if (r)
		return r;
	if (fdatasync(rs->fd))
		return cbw_error("Cannot flush %s: %s", rs->dest,
				 strerror(errno));
	posix_fadvise(rs->vfd, 0, 0, POSIX_FADV_DONTNEED);
	return each(rs, img, cbw_verify_piece);
}

/* ------------------------------------------------------------------ */
/* Output and command                                                  */
/* ------------------------------------------------------------------ */

static void cbw_restore_report(const struct cbw_restore *rs,
			       const struct cbw_img *imgs, unsigned int nr)
{
	char a[CBW_SIZE_BUF], b[CBW_SIZE_BUF];
	unsigned int i;

	if (cbw_opts.json) {
		cbw_json_object_begin(NULL);
		cbw_json_string("dest", rs->dest);
		cbw_json_u64("size", imgs[0].size);
		cbw_json_array_begin("images");
		for (i = 0; i < nr; i++) {
			cbw_json_object_begin(NULL);
			cbw_json_string("path", imgs[i].path);
			cbw_json_string("format", imgs[i].extents ? "cbw" : "raw");
			cbw_json_u64("records", imgs[i].tr.records);
			cbw_json_u64("bytes", imgs[i].extents ?
				     imgs[i].tr.data_bytes : imgs[i].size);
			cbw_json_bool("partial",
				      imgs[i].tr.flags & CBW_IMG_PARTIAL);
			cbw_json_object_end();
		}
		cbw_json_array_end();
		cbw_json_u64("bytes_written", rs->written);
		cbw_json_u64("bytes_verified", rs->compared);
		cbw_json_bool("verified", true);
		cbw_json_object_end();
		return;
	}
	for (i = 0; i < nr; i++)
		printf("%s: %s, %s%s\n", imgs[i].path,
		       imgs[i].extents ? "extents file" : "raw image",
		       cbw_format_size(imgs[i].extents ? imgs[i].tr.data_bytes :
				       imgs[i].size, a),
		       imgs[i].tr.flags & CBW_IMG_PARTIAL ? " (partial)" : "");
	printf("Restored %u image%s to %s (%s): %s written, verified.\n", nr,
	       nr == 1 ? "" : "s", rs->dest, cbw_format_size(imgs[0].size, b),
	       cbw_format_size(rs->written, a));
}

static int cbw_restore_option(const struct cbw_cmd *cmd, int opt,
			      const char *arg, void *ctx)
{
	struct cbw_restore *rs = ctx;

	if (opt == CBW_OPT_TO) {
		rs->dest = arg;
		return 0;
	}
	if (opt == CBW_OPT_ALLOW_PARTIAL) {
		rs->allow_partial = true;
		return 0;
	}
	return cbw_usage_error(cmd, "unknown option");
}

static int cbw_restore_chain(struct cbw_restore *rs, struct cbw_img *imgs,
			     unsigned int nr)
{
	unsigned int i;
	int r;

	r = cbw_open_images(imgs, nr, rs->allow_partial);
	if (!r)
		r = cbw_open_dest(rs, imgs[0].size);
	for (i = 0; !r && i < nr; i++) {
		r = cbw_restore_one(rs, &imgs[i]);
		/* Later images may write zeros over data. */
		rs->fresh = false;
	}
	if (!r)
		cbw_restore_report(rs, imgs, nr);
	return r;
}

static int cbw_restore(const struct cbw_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, CBW_OPT_TO },
		{ "allow-partial", no_argument, NULL, CBW_OPT_ALLOW_PARTIAL },
		{ NULL, 0, NULL, 0 },
	};
	struct cbw_restore rs = { .fd = -1, .vfd = -1 };
	struct cbw_img imgs[CBW_MAX_IMAGES];
	unsigned int nr, j;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, longopts, cbw_restore_option, &rs,
			  &i);
	if (r)
		return r;
	if (!rs.dest)
		return cbw_usage_error(cmd, "restore: --to DEST is required");
	nr = argc - i;
	if (nr > CBW_MAX_IMAGES)
		return cbw_usage_error(cmd, "restore: at most %u images at once",
				       CBW_MAX_IMAGES);
	memset(imgs, 0, sizeof(imgs));
	for (j = 0; j < nr; j++) {
		imgs[j].path = argv[i + j];
		imgs[j].fd = -1;
	}
	r = cbw_restore_chain(&rs, imgs, nr);
	for (j = 0; j < nr; j++)
		if (imgs[j].fd >= 0)
			close(imgs[j].fd);
	if (rs.fd >= 0)
		close(rs.fd);
	if (rs.vfd >= 0)
		close(rs.vfd);
	free(rs.buf);
	free(rs.vbuf);
	return r;
}

const struct cbw_cmd cbw_restore_cmd = {
	.name = "restore",
	.params = { "IMAGE", "[INCREMENT...]" }, .min_args = 1, .max_args = 1024,
	.synopsis = "--to DEST [--allow-partial]",
	.summary = "Restore a backup chain to a device or a file, and verify it.",
	.help =
	"IMAGE is a full backup: a raw image or an extents file (--format cbw);\n"
	"each INCREMENT an extents file of a later backup, oldest first.  All\n"
	"must be backups of devices of the same size.  DEST is a block device\n"
	"at least that large, or a file (created or truncated to that size).\n\n"
	"Options:\n"
	"  --to DEST           where to restore (required)\n"
	"  --allow-partial     also apply extents files of failed backups (their\n"
	"                      trailer says partial); incomplete files (without\n"
	"                      a trailer) are always refused\n\n"
	"Nothing is written until every file has been checked.  Each record's\n"
	"CRC is checked before it is written; after each file, DEST is flushed,\n"
	"read back (with O_DIRECT where possible) and compared with the file.\n"
	"Exit status 1 on any mismatch.  With --json: {\"dest\", \"size\",\n"
	"\"images\": [{\"path\", \"format\", \"records\", \"bytes\", \"partial\"}],\n"
	"\"bytes_written\", \"bytes_verified\", \"verified\"}.\n",
	.run = cbw_restore,
};
