// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: the extents file of "backup run --format cbw", read back by
 * "restore".
 *
 * An extents file holds the data of some ranges of a device, as a backup
 * copied them: a 512-byte header, then one record per copied piece (a
 * 32-byte record head followed by the data), then a 32-byte trailer.  All
 * integers are little-endian.
 *
 *   header   "DMCBWEXT", u32 version (1), u32 header size (512),
 *            u64 device size, u64 granularity (0 for a full backup),
 *            u64 created (Unix time), u32 sync (0 full, 1 bitmap),
 *            u32 flags (0), char bitmap[64], u64 generation of the
 *            bitmap (0: none), zeros up to 512 bytes
 *   record   "EXT1", u32 CRC-32 of the data, u64 offset, u64 length,
 *            u64 0; then length bytes of data
 *   trailer  "END1", u32 flags (1: partial, the backup failed),
 *            u64 records, u64 data bytes, u64 fail offset (or 0)
 *
 * A file that ends without a trailer is incomplete (the writer died).
 * The CRC is the one of zlib, gzip and Ethernet (reflected polynomial
 * 0xedb88320, initial and final value 0xffffffff).
 */
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fs.h>

#include "cbwctl.h"

static uint32_t cbw_crc_table[256];

static void cbw_crc_init(void)
{
	uint32_t c, i, k;

	for (i = 0; i < 256; i++) {
		c = i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320U ^ (c >> 1) : c >> 1;
		cbw_crc_table[i] = c;
	}
}

/* zlib's crc32(): start with @crc = 0, chain over pieces. */
uint32_t cbw_crc32(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (!cbw_crc_table[1])
		cbw_crc_init();
	crc = ~crc;
	while (len--)
		crc = cbw_crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void cbw_put32(uint8_t *p, uint32_t v)
{
	unsigned int i;

	for (i = 0; i < 4; i++)
		p[i] = v >> (8 * i);
}

static void cbw_put64(uint8_t *p, uint64_t v)
{
	unsigned int i;

	for (i = 0; i < 8; i++)
		p[i] = v >> (8 * i);
}

static uint32_t cbw_get32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t cbw_get64(const uint8_t *p)
{
	return cbw_get32(p) | (uint64_t)cbw_get32(p + 4) << 32;
}

void cbw_img_encode_header(const struct cbw_img_header *h,
			   uint8_t buf[CBW_IMG_HEADER_SIZE])
{
	memset(buf, 0, CBW_IMG_HEADER_SIZE);
	memcpy(buf, CBW_IMG_MAGIC, 8);
	cbw_put32(buf + 8, CBW_IMG_VERSION);
	cbw_put32(buf + 12, CBW_IMG_HEADER_SIZE);
	cbw_put64(buf + 16, h->dev_size);
	cbw_put64(buf + 24, h->granularity);
	cbw_put64(buf + 32, h->created);
	cbw_put32(buf + 40, h->sync);
	cbw_put32(buf + 44, h->flags);
	memcpy(buf + 48, h->bitmap, strnlen(h->bitmap, DM_CBW_NAME_LEN - 1));
	cbw_put64(buf + 112, h->generation);
}

/* 0; -ENOMSG: not an extents file; -EPROTO: unknown version or size. */
int cbw_img_decode_header(const uint8_t buf[CBW_IMG_HEADER_SIZE],
			  struct cbw_img_header *h)
{
	if (memcmp(buf, CBW_IMG_MAGIC, 8))
		return -ENOMSG;
	if (cbw_get32(buf + 8) != CBW_IMG_VERSION ||
	    cbw_get32(buf + 12) != CBW_IMG_HEADER_SIZE)
		return -EPROTO;
	h->dev_size = cbw_get64(buf + 16);
	h->granularity = cbw_get64(buf + 24);
	h->created = cbw_get64(buf + 32);
	h->sync = cbw_get32(buf + 40);
	h->flags = cbw_get32(buf + 44);
	memcpy(h->bitmap, buf + 48, DM_CBW_NAME_LEN);
	h->bitmap[DM_CBW_NAME_LEN - 1] = 0;
	h->generation = cbw_get64(buf + 112);
	return 0;
}

void cbw_img_encode_record(const struct cbw_img_record *rec,
			   uint8_t buf[CBW_IMG_BLOCK_SIZE])
{
	memset(buf, 0, CBW_IMG_BLOCK_SIZE);
	memcpy(buf, CBW_IMG_REC_MAGIC, 4);
	cbw_put32(buf + 4, rec->crc);
	cbw_put64(buf + 8, rec->offset);
	cbw_put64(buf + 16, rec->length);
}

void cbw_img_encode_trailer(const struct cbw_img_trailer *tr,
			    uint8_t buf[CBW_IMG_BLOCK_SIZE])
{
	memcpy(buf, CBW_IMG_END_MAGIC, 4);
	cbw_put32(buf + 4, tr->flags);
	cbw_put64(buf + 8, tr->records);
	cbw_put64(buf + 16, tr->data_bytes);
	cbw_put64(buf + 24, tr->fail_offset);
}

/* A record head (returns 1), a trailer (2) or garbage (-EILSEQ). */
int cbw_img_decode_block(const uint8_t buf[CBW_IMG_BLOCK_SIZE],
			 struct cbw_img_record *rec,
			 struct cbw_img_trailer *tr)
{
	if (!memcmp(buf, CBW_IMG_REC_MAGIC, 4)) {
		rec->crc = cbw_get32(buf + 4);
		rec->offset = cbw_get64(buf + 8);
		rec->length = cbw_get64(buf + 16);
		return cbw_get64(buf + 24) ? -EILSEQ : 1;
	}
	if (!memcmp(buf, CBW_IMG_END_MAGIC, 4)) {
		tr->flags = cbw_get32(buf + 4);
		tr->records = cbw_get64(buf + 8);
		tr->data_bytes = cbw_get64(buf + 16);
		tr->fail_offset = cbw_get64(buf + 24);
		return 2;
	}
	return -EILSEQ;
}

/* pread() until @len bytes are read; -ENODATA at the end of the file. */
int cbw_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	while (len) {
		n = pread(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ENODATA;
		buf = (char *)buf + n;
		len -= n;
		off += n;
	}
	return 0;
}

int cbw_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	ssize_t n;

	while (len) {
		n = pwrite(fd, buf, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -ENOSPC;
		buf = (const char *)buf + n;
		len -= n;
		off += n;
	}
	return 0;
}

/* Size of a regular file or a block device. */
int cbw_fd_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) ? -errno : 0;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	*size = st.st_size;
	return 0;
}
