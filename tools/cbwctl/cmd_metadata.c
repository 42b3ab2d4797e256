// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl metadata: format and check the metadata device of a cbw device.
 *
 * The kernel reads a metadata device (table argument metadata_dev) but
 * never formats one, so that a wrong device is refused rather than
 * overwritten: "metadata format" writes the empty format of
 * <linux/dm-cbw-metadata.h> here, and "metadata check" verifies a device
 * offline, every block's checksum and the directory, like thin_check.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/dm-cbw-metadata.h>
#include <linux/fs.h>

#include "cbwctl.h"

#define CBW_MD_BS		DM_CBW_MD_BLOCK_SIZE
#define CBW_MD_BITS		((uint64_t)DM_CBW_MD_BITS_PER_BLOCK)
#define CBW_MD_MAX_PROBLEMS	64

/* ------------------------------------------------------------------ */
/* Blocks and checksums                                                */
/* ------------------------------------------------------------------ */

/* CRC-32C, reflected polynomial 0x82f63b78, as Linux's crc32c(). */
static uint32_t cbw_crc32c(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	const unsigned char *p = data;
	unsigned int i, j;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			uint32_t c = i;

			for (j = 0; j < 8; j++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
			table[i] = c;
		}
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

static uint32_t cbw_md_csum(const void *block, uint64_t blocknr)
{
	static const uint32_t zero;
	uint32_t crc = cbw_crc32c(DM_CBW_MD_CSUM_SEED(blocknr), &zero,
				  sizeof(zero));

	return cbw_crc32c(crc, (const char *)block + sizeof(zero),
			  CBW_MD_BS - sizeof(zero));
}

static void cbw_md_seal(void *block, uint32_t type, uint64_t blocknr)
{
	struct dm_cbw_md_header *h = block;

	h->csum = 0;
	h->type = htole32(type);
	h->blocknr = htole64(blocknr);
	h->csum = htole32(cbw_md_csum(block, blocknr));
}

static bool cbw_md_valid(const void *block, uint32_t type, uint64_t blocknr)
{
	const struct dm_cbw_md_header *h = block;

	return le32toh(h->csum) == cbw_md_csum(block, blocknr) &&
	       le32toh(h->type) == type && le64toh(h->blocknr) == blocknr;
}

static uint64_t cbw_div_up(uint64_t a, uint64_t b)
{
	return a / b + !!(a % b);
}

static uint64_t cbw_md_intent_blocks(uint64_t origin_sectors,
				     uint64_t region_sectors)
{
	return cbw_div_up(cbw_div_up(origin_sectors, region_sectors),
			  CBW_MD_BITS);
}

static uint64_t cbw_md_bitmap_blocks(uint64_t len_sectors, uint64_t gran)
{
	return cbw_div_up(cbw_div_up(len_sectors * 512, gran), CBW_MD_BITS);
}

static int cbw_read_block(int fd, uint64_t blocknr, void *buf)
{
	ssize_t n = pread(fd, buf, CBW_MD_BS, blocknr * CBW_MD_BS);

	if (n < 0)
		return -errno;
	return n == CBW_MD_BS ? 0 : -EIO;
}

static int cbw_write_block(int fd, uint64_t blocknr, const void *buf)
{
	ssize_t n = pwrite(fd, buf, CBW_MD_BS, blocknr * CBW_MD_BS);

	if (n < 0)
		return -errno;
	return n == CBW_MD_BS ? 0 : -EIO;
}

static void cbw_uuid_string(const uint8_t *u, char buf[37])
{
	snprintf(buf, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		 u[10], u[11], u[12], u[13], u[14], u[15]);
}

/* ------------------------------------------------------------------ */
/* format                                                              */
/* ------------------------------------------------------------------ */

struct cbw_format_opts {
	const char *origin;
	uint64_t region_size;		/* bytes */
	bool force;
};

enum {
	CBW_OPT_ORIGIN = 0x100,
	CBW_OPT_REGION_SIZE,
	CBW_OPT_FORCE,
};

static const struct option cbw_format_longopts[] = {
	{ "origin", required_argument, NULL, CBW_OPT_ORIGIN },
	{ "region-size", required_argument, NULL, CBW_OPT_REGION_SIZE },
	{ "force", no_argument, NULL, CBW_OPT_FORCE },
	{ NULL, 0, NULL, 0 },
};

static int cbw_format_handler(const struct cbw_cmd *cmd, int opt,
			      const char *arg, void *ctx)
{
	struct cbw_format_opts *o = ctx;
	uint64_t v;

	switch (opt) {
	case CBW_OPT_ORIGIN:
		o->origin = arg;
		return 0;
	case CBW_OPT_FORCE:
		o->force = true;
		return 0;
	case CBW_OPT_REGION_SIZE:
		if (cbw_parse_size(arg, &v) || !cbw_is_power_of_2(v) ||
		    v < DM_CBW_MD_MIN_REGION_SECTORS * 512ULL ||
		    v > DM_CBW_MD_MAX_REGION_SECTORS * 512ULL)
			return cbw_usage_error(cmd, "Invalid region size '%s': a power of 2 from 1M to 1T",
					       arg);
		o->region_size = v;
		return 0;
	}
	return CBW_EXIT_USAGE;
}

/* The smallest metadata device: room for one bitmap at 64K granularity. */
static uint64_t cbw_md_min_blocks(uint64_t origin_sectors,
				  uint64_t region_sectors)
{
	return DM_CBW_MD_INTENT_BLOCK +
	       cbw_md_intent_blocks(origin_sectors, region_sectors) +
	       cbw_md_bitmap_blocks(origin_sectors, DM_CBW_DEFAULT_GRANULARITY);
}

/* Opens the origin and returns its size in sectors, or an exit status. */
static int cbw_origin_sectors(const char *path, struct stat *st,
			      uint64_t *sectors)
{
	uint64_t bytes;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cbw_error("Cannot open origin '%s': %s", path,
				 strerror(errno));
	r = fstat(fd, st) ? -errno : cbw_fd_size(fd, &bytes);
	close(fd);
	if (r)
		return cbw_error("Cannot get the size of origin '%s': %s",
				 path, strerror(-r));
	if (!bytes || bytes % 512)
		return cbw_error("Origin '%s' is not whole 512-byte sectors",
				 path);
	*sectors = bytes / 512;
	return 0;
}

static void cbw_format_superblock(void *block, uint64_t origin_sectors,
				  uint64_t nr_blocks, uint64_t region_sectors,
				  const uint8_t uuid[16])
{
	struct dm_cbw_md_superblock *sb = block;
	uint64_t intent = cbw_md_intent_blocks(origin_sectors, region_sectors);

	memset(block, 0, CBW_MD_BS);
	memcpy(sb->magic, DM_CBW_MD_MAGIC, DM_CBW_MD_MAGIC_LEN);
	sb->version = htole32(DM_CBW_MD_VERSION);
	memcpy(sb->uuid, uuid, 16);
	sb->origin_sectors = htole64(origin_sectors);
	sb->nr_blocks = htole64(nr_blocks);
	sb->block_size = htole32(CBW_MD_BS);
	sb->max_bitmaps = htole32(DM_CBW_MAX_BITMAPS);
	sb->region_sectors = htole64(region_sectors);
	sb->intent_blocks = htole64(intent);
	sb->bitmap_block = htole64(DM_CBW_MD_INTENT_BLOCK + intent);
	sb->next_generation = htole64(1);
	cbw_md_seal(block, DM_CBW_MD_TYPE_SUPERBLOCK,
		    DM_CBW_MD_SUPERBLOCK_BLOCK);
}

/* Directory and intent area first, the superblock last, each synced. */
static int cbw_format_write(int fd, uint64_t origin_sectors, uint64_t nr_blocks,
			    uint64_t region_sectors, const uint8_t uuid[16])
{
	uint64_t intent = cbw_md_intent_blocks(origin_sectors, region_sectors);
	struct dm_cbw_md_directory *dir;
	char block[CBW_MD_BS];
	uint64_t i;
	int r;

	memset(block, 0, sizeof(block));
	dir = (void *)block;
	dir->nr_entries = htole32(DM_CBW_MAX_BITMAPS);
	cbw_md_seal(block, DM_CBW_MD_TYPE_DIRECTORY, DM_CBW_MD_DIRECTORY_BLOCK);
	r = cbw_write_block(fd, DM_CBW_MD_DIRECTORY_BLOCK, block);
	for (i = 0; !r && i < intent; i++) {
		memset(block, 0, sizeof(block));
		cbw_md_seal(block, DM_CBW_MD_TYPE_INTENT,
			    DM_CBW_MD_INTENT_BLOCK + i);
		r = cbw_write_block(fd, DM_CBW_MD_INTENT_BLOCK + i, block);
	}
	if (!r && fsync(fd))
		r = -errno;
	if (r)
		return r;
	cbw_format_superblock(block, origin_sectors, nr_blocks, region_sectors,
			      uuid);
	r = cbw_write_block(fd, DM_CBW_MD_SUPERBLOCK_BLOCK, block);
	if (!r && fsync(fd))
		r = -errno;
	return r;
}

/* Refuses to overwrite dm-cbw metadata unless forced. */
static int cbw_format_check_old(int fd, const char *path, bool force)
{
	const struct dm_cbw_md_superblock *sb;
	char block[CBW_MD_BS], uuid[37];

	if (force || cbw_read_block(fd, 0, block))
		return 0;
	sb = (const void *)block;
	if (memcmp(sb->magic, DM_CBW_MD_MAGIC, DM_CBW_MD_MAGIC_LEN))
		return 0;
	cbw_uuid_string(sb->uuid, uuid);
	return cbw_error("'%s' already holds dm-cbw metadata (uuid %s): --force formats it again, and its bitmaps are lost",
			 path, uuid);
}

/* Opens META for writing into *@fdp; 0 or an exit status. */
static int cbw_format_open(const char *path, const struct stat *origin_st,
			   int *fdp, uint64_t *bytes)
{
	struct stat st;
	int fd, r;

	/* O_EXCL: a block device that a table or a mount holds is refused. */
	fd = open(path, O_RDWR | O_EXCL | O_CLOEXEC);
	if (fd < 0) {
		r = errno;
		return cbw_error("Cannot open metadata device '%s': %s%s", path,
				 strerror(r), r == EBUSY ?
				 " (a table or a mount uses it)" : "");
	}
	r = fstat(fd, &st) ? -errno : cbw_fd_size(fd, bytes);
	if (r) {
		close(fd);
		return cbw_error("Cannot get the size of '%s': %s", path,
				 strerror(-r));
	}
	if (S_ISBLK(st.st_mode) ? st.st_rdev == origin_st->st_rdev &&
				  S_ISBLK(origin_st->st_mode) :
				  st.st_ino == origin_st->st_ino &&
				  st.st_dev == origin_st->st_dev) {
		close(fd);
		return cbw_error("The metadata device must not be the origin");
	}
	*fdp = fd;
	return 0;
}

static int cbw_metadata_check_path(const char *path, const char *origin,
				   bool quiet);

static int cbw_metadata_format(const struct cbw_cmd *cmd, int argc,
			       char **argv)
{
	struct cbw_format_opts o = {
		.region_size = DM_CBW_MD_DEFAULT_REGION_SECTORS * 512ULL,
	};
	uint64_t origin_sectors, bytes, min_blocks, region_sectors;
	char min_size[CBW_SIZE_BUF];
	const char *path;
	struct stat origin_st;
	uint8_t uuid[16];
	int i, fd = -1, r;

	r = cbw_parse_cmd(cmd, argc, argv, cbw_format_longopts,
			  cbw_format_handler, &o, &i);
	if (r)
		return r;
	path = argv[i];
	if (!o.origin)
		return cbw_usage_error(cmd, "metadata format: --origin DEV is required");
	r = cbw_origin_sectors(o.origin, &origin_st, &origin_sectors);
	if (r)
		return r;
	region_sectors = o.region_size / 512;
	r = cbw_format_open(path, &origin_st, &fd, &bytes);
	if (r)
		return r;
	min_blocks = cbw_md_min_blocks(origin_sectors, region_sectors);
	if (bytes / CBW_MD_BS < min_blocks) {
		close(fd);
		return cbw_error("Metadata device '%s' is too small: an origin of %llu sectors needs at least %s",
				 path, (unsigned long long)origin_sectors,
				 cbw_format_size(min_blocks * CBW_MD_BS,
						 min_size));
	}
	r = cbw_format_check_old(fd, path, o.force);
	if (r) {
		close(fd);
		return r;
	}
	if (getrandom(uuid, sizeof(uuid), 0) != sizeof(uuid)) {
		close(fd);
		return cbw_error("Cannot make a UUID: %s", strerror(errno));
	}
	r = cbw_format_write(fd, origin_sectors, bytes / CBW_MD_BS,
			     region_sectors, uuid);
	close(fd);
	if (r)
		return cbw_error("Cannot write '%s': %s", path, strerror(-r));
	return cbw_metadata_check_path(path, NULL, false);
}

/* ------------------------------------------------------------------ */
/* check                                                               */
/* ------------------------------------------------------------------ */

/* What a check found. */
struct cbw_md_report {
	const char *path;
	uint64_t dev_bytes;
	bool have_sb;			/* the fields below are valid */
	struct dm_cbw_md_superblock sb;
	bool have_dir;
	struct dm_cbw_md_directory dir;
	unsigned int nr_problems;
	char *problems[CBW_MD_MAX_PROBLEMS];
};

static void cbw_md_problem(struct cbw_md_report *rep, const char *fmt, ...)
	__printf(2, 3);

static void cbw_md_problem(struct cbw_md_report *rep, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (rep->nr_problems >= CBW_MD_MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg)
		rep->problems[rep->nr_problems++] = msg;
}

static bool cbw_md_geometry_valid(const struct dm_cbw_md_superblock *sb)
{
	uint64_t region = le64toh(sb->region_sectors);
	uint64_t origin = le64toh(sb->origin_sectors);
	uint64_t intent = le64toh(sb->intent_blocks);
	uint64_t bitmap_block = le64toh(sb->bitmap_block);

	if (le32toh(sb->block_size) != CBW_MD_BS ||
	    le32toh(sb->max_bitmaps) != DM_CBW_MAX_BITMAPS ||
	    le32toh(sb->flags) & ~DM_CBW_MD_IN_USE)
		return false;
	if (!cbw_is_power_of_2(region) ||
	    region < DM_CBW_MD_MIN_REGION_SECTORS ||
	    region > DM_CBW_MD_MAX_REGION_SECTORS || !origin)
		return false;
	return intent == cbw_md_intent_blocks(origin, region) &&
	       bitmap_block == DM_CBW_MD_INTENT_BLOCK + intent &&
	       le64toh(sb->nr_blocks) >= bitmap_block;
}

/* 0 when the superblock can be used to look further. */
static int cbw_check_superblock(int fd, struct cbw_md_report *rep)
{
	struct dm_cbw_md_superblock *sb = &rep->sb;
	char block[CBW_MD_BS];
	int r;

	if (rep->dev_bytes < CBW_MD_BS) {
		cbw_md_problem(rep, "Metadata device is too small");
		return -EINVAL;
	}
	r = cbw_read_block(fd, DM_CBW_MD_SUPERBLOCK_BLOCK, block);
	if (r) {
		cbw_md_problem(rep, "Cannot read the superblock: %s",
			       strerror(-r));
		return r;
	}
	memcpy(sb, block, sizeof(*sb));
	if (memcmp(sb->magic, DM_CBW_MD_MAGIC, DM_CBW_MD_MAGIC_LEN)) {
		cbw_md_problem(rep, "Metadata device is not formatted for dm-cbw");
		return -EINVAL;
	}
	if (!cbw_md_valid(block, DM_CBW_MD_TYPE_SUPERBLOCK,
			  DM_CBW_MD_SUPERBLOCK_BLOCK)) {
		cbw_md_problem(rep, "Metadata superblock is corrupt (checksum mismatch)");
		return -EINVAL;
	}
	if (le32toh(sb->version) != DM_CBW_MD_VERSION) {
		cbw_md_problem(rep, "Unsupported metadata version %u",
			       le32toh(sb->version));
		return -EINVAL;
	}
	if (!cbw_md_geometry_valid(sb)) {
		cbw_md_problem(rep, "Metadata superblock is corrupt (inconsistent geometry)");
		return -EINVAL;
	}
	rep->have_sb = true;
	if (le64toh(sb->nr_blocks) > rep->dev_bytes / CBW_MD_BS) {
		cbw_md_problem(rep, "Metadata device is too small: the format has %llu blocks, the device %llu",
			       (unsigned long long)le64toh(sb->nr_blocks),
			       (unsigned long long)(rep->dev_bytes / CBW_MD_BS));
		return -EINVAL;
	}
	return 0;
}

static bool cbw_md_name_valid(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;

	if (!memchr(name, 0, DM_CBW_NAME_LEN) || !*p)
		return false;
	for (; *p; p++)
		if (*p < 0x21 || *p > 0x7e)
			return false;
	return true;
}

static bool cbw_md_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	while (len--)
		if (*c++)
			return false;
	return true;
}

static const char *cbw_md_entry_problem(const struct dm_cbw_md_superblock *sb,
					const struct dm_cbw_md_bitmap_entry *e)
{
	uint64_t gran = le64toh(e->granularity);
	uint64_t len = le64toh(e->len_sectors);
	uint64_t first = le64toh(e->first_block);
	uint64_t nr = le64toh(e->nr_blocks);
	uint64_t nr_blocks = le64toh(sb->nr_blocks);
	uint32_t flags = le32toh(e->flags);

	if (!(flags & DM_CBW_MD_BITMAP_USED))
		return cbw_md_zero(e, sizeof(*e)) ? NULL :
		       "a free entry is not zero";
	if (flags & ~(DM_CBW_MD_BITMAP_USED | DM_CBW_MD_BITMAP_ENABLED |
		      DM_CBW_MD_BITMAP_INCONSISTENT) || e->reserved)
		return "unknown flags";
	if (!cbw_md_name_valid(e->name))
		return "invalid name";
	if (!cbw_is_power_of_2(gran) || gran < DM_CBW_MIN_GRANULARITY ||
	    gran > DM_CBW_MAX_GRANULARITY)
		return "invalid granularity";
	if (!len || len > le64toh(sb->origin_sectors))
		return "invalid length";
	if (nr != cbw_md_bitmap_blocks(len, gran))
		return "wrong number of blocks";
	if (first < le64toh(sb->bitmap_block) || first > nr_blocks ||
	    nr > nr_blocks - first)
		return "blocks outside the bitmap area";
	return NULL;
}

static bool cbw_md_used(const struct dm_cbw_md_bitmap_entry *e)
{
	return le32toh(e->flags) & DM_CBW_MD_BITMAP_USED;
}

static void cbw_check_overlaps(struct cbw_md_report *rep, const bool *ok)
{
	const struct dm_cbw_md_bitmap_entry *a, *b;
	unsigned int i, j;

	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++) {
		for (j = i + 1; j < DM_CBW_MAX_BITMAPS; j++) {
			a = &rep->dir.entries[i];
			b = &rep->dir.entries[j];
			if (!ok[i] || !ok[j] || !cbw_md_used(a) ||
			    !cbw_md_used(b))
				continue;
			if (!strcmp(a->name, b->name))
				cbw_md_problem(rep, "Metadata directory is corrupt: entries %u and %u have the same name",
					       i, j);
			else if (le64toh(a->first_block) +
				 le64toh(a->nr_blocks) >
				 le64toh(b->first_block) &&
				 le64toh(b->first_block) +
				 le64toh(b->nr_blocks) >
				 le64toh(a->first_block))
				cbw_md_problem(rep, "Metadata directory is corrupt: the blocks of entries %u and %u overlap",
					       i, j);
		}
	}
}

static void cbw_check_directory(int fd, struct cbw_md_report *rep)
{
	bool ok[DM_CBW_MAX_BITMAPS];
	char block[CBW_MD_BS];
	const char *why;
	unsigned int i;
	int r;

	r = cbw_read_block(fd, DM_CBW_MD_DIRECTORY_BLOCK, block);
	if (r) {
		cbw_md_problem(rep, "Cannot read the directory: %s",
			       strerror(-r));
		return;
	}
	memcpy(&rep->dir, block, sizeof(rep->dir));
	if (!cbw_md_valid(block, DM_CBW_MD_TYPE_DIRECTORY,
			  DM_CBW_MD_DIRECTORY_BLOCK)) {
		cbw_md_problem(rep, "Metadata directory is corrupt (checksum mismatch)");
		return;
	}
	if (le32toh(rep->dir.nr_entries) != DM_CBW_MAX_BITMAPS ||
	    rep->dir.reserved) {
		cbw_md_problem(rep, "Metadata directory is corrupt (wrong number of entries)");
		return;
	}
	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++) {
		why = cbw_md_entry_problem(&rep->sb, &rep->dir.entries[i]);
		ok[i] = !why;
		if (why)
			cbw_md_problem(rep, "Metadata directory is corrupt: entry %u: %s",
				       i, why);
	}
	cbw_check_overlaps(rep, ok);
	rep->have_dir = !rep->nr_problems;
}

/* Checks the checksums of @nr blocks from @first, of @type. */
static void cbw_check_blocks(int fd, struct cbw_md_report *rep, uint64_t first,
			     uint64_t nr, uint32_t type, const char *what)
{
	char block[CBW_MD_BS];
	uint64_t i;
	int r;

	for (i = first; i < first + nr; i++) {
		r = cbw_read_block(fd, i, block);
		if (r)
			cbw_md_problem(rep, "Cannot read block %llu of %s: %s",
				       (unsigned long long)i, what,
				       strerror(-r));
		else if (!cbw_md_valid(block, type, i))
			cbw_md_problem(rep, "%s is corrupt: block %llu fails its checksum",
				       what, (unsigned long long)i);
	}
}

static void cbw_check_bitmaps(int fd, struct cbw_md_report *rep)
{
	const struct dm_cbw_md_bitmap_entry *e;
	char what[96];
	unsigned int i;

	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++) {
		e = &rep->dir.entries[i];
		if (!cbw_md_used(e))
			continue;
		snprintf(what, sizeof(what), "Bitmap '%s'", e->name);
		cbw_check_blocks(fd, rep, le64toh(e->first_block),
				 le64toh(e->nr_blocks), DM_CBW_MD_TYPE_BITMAP,
				 what);
	}
}

static void cbw_check_origin(struct cbw_md_report *rep, const char *origin)
{
	struct stat st;
	uint64_t sectors;

	if (!origin || !rep->have_sb)
		return;
	if (cbw_origin_sectors(origin, &st, &sectors)) {
		cbw_md_problem(rep, "Cannot check origin '%s'", origin);
		return;
	}
	if (sectors != le64toh(rep->sb.origin_sectors))
		cbw_md_problem(rep, "Metadata device belongs to another origin: it was formatted for %llu sectors, '%s' has %llu",
			       (unsigned long long)le64toh(rep->sb.origin_sectors),
			       origin, (unsigned long long)sectors);
}

static void cbw_check_fd(int fd, struct cbw_md_report *rep, const char *origin)
{
	uint64_t intent;

	if (cbw_check_superblock(fd, rep))
		return;
	cbw_check_origin(rep, origin);
	intent = le64toh(rep->sb.intent_blocks);
	cbw_check_directory(fd, rep);
	cbw_check_blocks(fd, rep, DM_CBW_MD_INTENT_BLOCK, intent,
			 DM_CBW_MD_TYPE_INTENT, "Metadata intent area");
	if (rep->have_dir)
		cbw_check_bitmaps(fd, rep);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

static void cbw_md_bitmap_json(const struct dm_cbw_md_bitmap_entry *e)
{
	uint32_t flags = le32toh(e->flags);

	cbw_json_object_begin(NULL);
	cbw_json_string("name", e->name);
	cbw_json_u64("granularity", le64toh(e->granularity));
	cbw_json_u64("length", le64toh(e->len_sectors) * 512);
	cbw_json_u64("generation", le64toh(e->generation));
	cbw_json_bool("enabled", flags & DM_CBW_MD_BITMAP_ENABLED);
	cbw_json_bool("inconsistent", flags & DM_CBW_MD_BITMAP_INCONSISTENT);
	cbw_json_u64("first_block", le64toh(e->first_block));
	cbw_json_u64("blocks", le64toh(e->nr_blocks));
	cbw_json_object_end();
}

static void cbw_md_report_json(const struct cbw_md_report *rep)
{
	const struct dm_cbw_md_superblock *sb = &rep->sb;
	char uuid[37];
	unsigned int i;

	cbw_json_object_begin(NULL);
	cbw_json_string("metadata", rep->path);
	cbw_json_bool("ok", !rep->nr_problems);
	cbw_json_array_begin("errors");
	for (i = 0; i < rep->nr_problems; i++)
		cbw_json_string(NULL, rep->problems[i]);
	cbw_json_array_end();
	cbw_json_u64("size", rep->dev_bytes);
	if (rep->have_sb) {
		cbw_uuid_string(sb->uuid, uuid);
		cbw_json_u64("version", le32toh(sb->version));
		cbw_json_string("uuid", uuid);
		cbw_json_string("state", le32toh(sb->flags) & DM_CBW_MD_IN_USE ?
				"in-use" : "clean");
		cbw_json_u64("origin_size", le64toh(sb->origin_sectors) * 512);
		cbw_json_u64("region_size", le64toh(sb->region_sectors) * 512);
		cbw_json_u64("blocks", le64toh(sb->nr_blocks));
		cbw_json_u64("intent_blocks", le64toh(sb->intent_blocks));
		cbw_json_u64("bitmap_area_block", le64toh(sb->bitmap_block));
	}
	if (rep->have_dir) {
		cbw_json_array_begin("bitmaps");
		for (i = 0; i < DM_CBW_MAX_BITMAPS; i++)
			if (cbw_md_used(&rep->dir.entries[i]))
				cbw_md_bitmap_json(&rep->dir.entries[i]);
		cbw_json_array_end();
	}
	cbw_json_object_end();
}

static void cbw_md_report_text(const struct cbw_md_report *rep)
{
	const struct dm_cbw_md_superblock *sb = &rep->sb;
	const struct dm_cbw_md_bitmap_entry *e;
	char a[CBW_SIZE_BUF], uuid[37];
	unsigned int i, n = 0;

	cbw_print_field("metadata", "%s", rep->path);
	cbw_print_field("size", "%s", cbw_format_size(rep->dev_bytes, a));
	if (!rep->have_sb)
		return;
	cbw_uuid_string(sb->uuid, uuid);
	cbw_print_field("version", "%u", le32toh(sb->version));
	cbw_print_field("uuid", "%s", uuid);
	cbw_print_field("state", "%s", le32toh(sb->flags) & DM_CBW_MD_IN_USE ?
			"in-use" : "clean");
	cbw_print_field("origin size", "%s",
			cbw_format_size(le64toh(sb->origin_sectors) * 512, a));
	cbw_print_field("region size", "%s",
			cbw_format_size(le64toh(sb->region_sectors) * 512, a));
	cbw_print_field("blocks", "%llu",
			(unsigned long long)le64toh(sb->nr_blocks));
	if (!rep->have_dir)
		return;
	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++) {
		e = &rep->dir.entries[i];
		if (!cbw_md_used(e))
			continue;
		cbw_print_field(n++ ? "" : "bitmaps",
				"%s granularity %s generation %llu%s%s", e->name,
				cbw_format_size(le64toh(e->granularity), a),
				(unsigned long long)le64toh(e->generation),
				le32toh(e->flags) & DM_CBW_MD_BITMAP_ENABLED ?
				"" : " disabled",
				le32toh(e->flags) & DM_CBW_MD_BITMAP_INCONSISTENT ?
				" inconsistent" : "");
	}
	if (!n)
		cbw_print_field("bitmaps", "-");
}

/* Checks @path; prints the report unless @quiet and all is well. */
static int cbw_metadata_check_path(const char *path, const char *origin,
				   bool quiet)
{
	struct cbw_md_report rep = { .path = path };
	unsigned int i;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cbw_error("Cannot open metadata device '%s': %s", path,
				 strerror(errno));
	r = cbw_fd_size(fd, &rep.dev_bytes);
	if (r) {
		close(fd);
		return cbw_error("Cannot get the size of '%s': %s", path,
				 strerror(-r));
	}
	cbw_check_fd(fd, &rep, origin);
	close(fd);
	if (cbw_opts.json) {
		cbw_md_report_json(&rep);
		cbw_json_result_printed();
	} else if (!quiet || rep.nr_problems) {
		cbw_md_report_text(&rep);
	}
	for (i = 0; i < rep.nr_problems; i++) {
		if (!cbw_opts.json || !i)
			cbw_error("%s: %s", path, rep.problems[i]);
		free(rep.problems[i]);
	}
	return rep.nr_problems ? CBW_EXIT_FAIL : CBW_EXIT_OK;
}

static const struct option cbw_check_longopts[] = {
	{ "origin", required_argument, NULL, CBW_OPT_ORIGIN },
	{ NULL, 0, NULL, 0 },
};

static int cbw_check_handler(const struct cbw_cmd *cmd, int opt,
			     const char *arg, void *ctx)
{
	(void)cmd;
	if (opt != CBW_OPT_ORIGIN)
		return CBW_EXIT_USAGE;
	*(const char **)ctx = arg;
	return 0;
}

static int cbw_metadata_check(const struct cbw_cmd *cmd, int argc, char **argv)
{
	const char *origin = NULL;
	int i, r;

	r = cbw_parse_cmd(cmd, argc, argv, cbw_check_longopts,
			  cbw_check_handler, &origin, &i);
	if (r)
		return r;
	return cbw_metadata_check_path(argv[i], origin, false);
}

const struct cbw_cmd cbw_metadata_cmds[] = {
	{
		.group = "metadata", .name = "format",
		.params = { "META" }, .min_args = 1, .max_args = 1,
		.synopsis = "--origin DEV [--region-size SIZE] [--force]",
		.summary = "Format a metadata device for the cbw device over an origin.",
		.help =
		"Options:\n"
		"  --origin DEV        the origin device of the cbw table (its size\n"
		"                      is recorded: a table over another origin is\n"
		"                      refused)\n"
		"  --region-size SIZE  write-intent region: a power of 2 from 1M to\n"
		"                      1T (default 64M)\n"
		"  --force             format META even if it holds dm-cbw metadata\n\n"
		"META must not be in use.  It must hold at least 2 + I + B 4K blocks:\n"
		"I = ceil(ceil(origin size / region size) / 32640) for the intent\n"
		"area, B = ceil(ceil(origin size / 64K) / 32640) for one bitmap at\n"
		"64K granularity.  Prints what 'metadata check' prints.\n",
		.run = cbw_metadata_format,
	},
	{
		.group = "metadata", .name = "check",
		.params = { "META" }, .min_args = 1, .max_args = 1,
		.synopsis = "[--origin DEV]",
		.summary = "Verify a metadata device offline: checksums and directory.",
		.help =
		"Options:\n"
		"  --origin DEV        also check that META belongs to this origin\n\n"
		"Reads every block in use (superblock, directory, intent area,\n"
		"bitmaps) and checks its checksum, and the directory's entries.\n"
		"Exit status 1 and a message for each problem if META is damaged.\n"
		"With --json: {\"metadata\", \"ok\", \"errors\": [...], \"size\",\n"
		"\"version\", \"uuid\", \"state\", \"origin_size\", \"region_size\",\n"
		"\"blocks\", \"intent_blocks\", \"bitmap_area_block\", \"bitmaps\": [...]}.\n",
		.run = cbw_metadata_check,
	},
	{ .name = NULL },
};
