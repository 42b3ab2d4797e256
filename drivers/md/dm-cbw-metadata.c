// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw metadata device.
 *
 * A cbw table may name a metadata device (metadata_dev), formatted from
 * user space by "cbwctl metadata format" in the layout of
 * <uapi/linux/dm-cbw-metadata.h>.  It is read through a dm-bufio client of
 * its own.  The kernel never formats it: a device that is not formatted,
 * is damaged, is too small or was formatted for another origin is refused
 * with a message that says which, so that nothing on it is overwritten.
 */
#include <linux/crc32c.h>
#include <linux/dm-bufio.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include <uapi/linux/dm-cbw-metadata.h>

#include "dm-cbw.h"

/* Only the superblock and the directory are held at once. */
#define CBW_MD_RESERVED_BUFFERS	2

static_assert(sizeof(struct dm_cbw_md_superblock) <= DM_CBW_MD_BLOCK_SIZE);
static_assert(sizeof(struct dm_cbw_md_directory) <= DM_CBW_MD_BLOCK_SIZE);
static_assert(sizeof(struct dm_cbw_md_bitmap_entry) == 112);
static_assert(ARRAY_SIZE(((struct dm_cbw_md_directory *)NULL)->entries) ==
	      DM_CBW_MAX_BITMAPS);

/* The checksum of a block: its CRC-32C with the csum field taken as zero. */
static u32 cbw_md_block_csum(const void *block, u64 blocknr)
{
	static const __le32 zero;
	u32 crc = crc32c(DM_CBW_MD_CSUM_SEED(blocknr), &zero, sizeof(zero));

	return crc32c(crc, block + sizeof(zero),
		      DM_CBW_MD_BLOCK_SIZE - sizeof(zero));
}

static bool cbw_md_block_valid(const void *block, u64 blocknr, u32 type)
{
	const struct dm_cbw_md_header *h = block;

	return le32_to_cpu(h->csum) == cbw_md_block_csum(block, blocknr) &&
	       le32_to_cpu(h->type) == type &&
	       le64_to_cpu(h->blocknr) == blocknr;
}

/* Blocks for @nr_bits bits. */
static u64 cbw_md_bit_blocks(u64 nr_bits)
{
	return DIV_ROUND_UP_ULL(nr_bits, DM_CBW_MD_BITS_PER_BLOCK);
}

static u64 cbw_md_intent_blocks(u64 origin_sectors, u64 region_sectors)
{
	return cbw_md_bit_blocks(DIV_ROUND_UP_ULL(origin_sectors,
						  region_sectors));
}

/* The geometry of the superblock holds together. */
static bool cbw_md_geometry_valid(const struct dm_cbw_md_superblock *sb)
{
	u64 region = le64_to_cpu(sb->region_sectors);
	u64 origin = le64_to_cpu(sb->origin_sectors);
	u64 intent = le64_to_cpu(sb->intent_blocks);
	u64 bitmap_block = le64_to_cpu(sb->bitmap_block);

	if (le32_to_cpu(sb->block_size) != DM_CBW_MD_BLOCK_SIZE ||
	    le32_to_cpu(sb->max_bitmaps) != DM_CBW_MAX_BITMAPS ||
	    le32_to_cpu(sb->flags) & ~DM_CBW_MD_IN_USE)
		return false;
	if (!is_power_of_2(region) || region < DM_CBW_MD_MIN_REGION_SECTORS ||
	    region > DM_CBW_MD_MAX_REGION_SECTORS || !origin)
		return false;
	return intent == cbw_md_intent_blocks(origin, region) &&
	       bitmap_block == DM_CBW_MD_INTENT_BLOCK + intent &&
	       le64_to_cpu(sb->nr_blocks) >= bitmap_block;
}

static int cbw_md_check_superblock(struct cbw_metadata *md,
				   const struct dm_cbw_md_superblock *sb,
				   sector_t origin_sectors, char **error)
{
	if (memcmp(sb->magic, DM_CBW_MD_MAGIC, DM_CBW_MD_MAGIC_LEN)) {
		*error = "Metadata device is not formatted for dm-cbw";
		return -EINVAL;
	}
	if (!cbw_md_block_valid(sb, DM_CBW_MD_SUPERBLOCK_BLOCK,
				DM_CBW_MD_TYPE_SUPERBLOCK)) {
		*error = "Metadata superblock is corrupt";
		return -EINVAL;
	}
	if (le32_to_cpu(sb->version) != DM_CBW_MD_VERSION) {
		*error = "Unsupported metadata version";
		return -EINVAL;
	}
	if (!cbw_md_geometry_valid(sb)) {
		*error = "Metadata superblock is corrupt";
		return -EINVAL;
	}
	if (le64_to_cpu(sb->origin_sectors) != origin_sectors) {
		*error = "Metadata device belongs to another origin";
		return -EINVAL;
	}
	md->nr_blocks = le64_to_cpu(sb->nr_blocks);
	if (md->nr_blocks >
	    bdev_nr_sectors(md->bdev) / DM_CBW_MD_BLOCK_SECTORS) {
		*error = "Metadata device is too small";
		return -EINVAL;
	}
	memcpy(md->uuid, sb->uuid, sizeof(md->uuid));
	md->origin_sectors = origin_sectors;
	md->region_sectors = le64_to_cpu(sb->region_sectors);
	md->intent_blocks = le64_to_cpu(sb->intent_blocks);
	md->bitmap_block = le64_to_cpu(sb->bitmap_block);
	md->in_use = le32_to_cpu(sb->flags) & DM_CBW_MD_IN_USE;
	return 0;
}

static int cbw_md_read_superblock(struct cbw_metadata *md,
				  sector_t origin_sectors, char **error)
{
	struct dm_buffer *b;
	void *data;
	int r;

	data = dm_bufio_read(md->bufio, DM_CBW_MD_SUPERBLOCK_BLOCK, &b);
	if (IS_ERR(data)) {
		*error = "Cannot read the metadata superblock";
		return PTR_ERR(data);
	}
	r = cbw_md_check_superblock(md, data, origin_sectors, error);
	dm_bufio_release(b);
	return r;
}

static bool cbw_md_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/* A used entry names a valid bitmap whose blocks lie in the bitmap area. */
static bool cbw_md_entry_valid(struct cbw_metadata *md,
			       const struct dm_cbw_md_bitmap_entry *e)
{
	u64 gran = le64_to_cpu(e->granularity);
	u64 len = le64_to_cpu(e->len_sectors);
	u64 first = le64_to_cpu(e->first_block);
	u64 nr = le64_to_cpu(e->nr_blocks);
	u32 flags = le32_to_cpu(e->flags);

	if (!(flags & DM_CBW_MD_BITMAP_USED))
		return cbw_md_zero(e, sizeof(*e));
	if (flags & ~(DM_CBW_MD_BITMAP_USED | DM_CBW_MD_BITMAP_ENABLED |
		      DM_CBW_MD_BITMAP_INCONSISTENT) || e->reserved)
		return false;
	if (!memchr(e->name, 0, sizeof(e->name)) ||
	    !cbw_bitmap_name_valid(e->name))
		return false;
	if (!is_power_of_2(gran) || gran < DM_CBW_MIN_GRANULARITY ||
	    gran > DM_CBW_MAX_GRANULARITY)
		return false;
	if (!len || len > md->origin_sectors)
		return false;
	if (nr != cbw_md_bit_blocks(DIV_ROUND_UP_ULL(len << SECTOR_SHIFT, gran)))
		return false;
	return first >= md->bitmap_block && first <= md->nr_blocks &&
	       nr <= md->nr_blocks - first;
}

/* Used entries have different names and blocks. */
static bool cbw_md_entries_disjoint(const struct dm_cbw_md_bitmap_entry *a,
				    const struct dm_cbw_md_bitmap_entry *b)
{
	u64 a_first = le64_to_cpu(a->first_block);
	u64 b_first = le64_to_cpu(b->first_block);

	if (!(le32_to_cpu(a->flags) & DM_CBW_MD_BITMAP_USED) ||
	    !(le32_to_cpu(b->flags) & DM_CBW_MD_BITMAP_USED))
		return true;
	if (!strcmp(a->name, b->name))
		return false;
	return a_first + le64_to_cpu(a->nr_blocks) <= b_first ||
	       b_first + le64_to_cpu(b->nr_blocks) <= a_first;
}

static bool cbw_md_directory_valid(struct cbw_metadata *md,
				   const struct dm_cbw_md_directory *dir)
{
	unsigned int i, j;

	if (!cbw_md_block_valid(dir, DM_CBW_MD_DIRECTORY_BLOCK,
				DM_CBW_MD_TYPE_DIRECTORY) ||
	    le32_to_cpu(dir->nr_entries) != DM_CBW_MAX_BITMAPS || dir->reserved)
		return false;
	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++)
		if (!cbw_md_entry_valid(md, &dir->entries[i]))
			return false;
	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++)
		for (j = i + 1; j < DM_CBW_MAX_BITMAPS; j++)
			if (!cbw_md_entries_disjoint(&dir->entries[i],
						     &dir->entries[j]))
				return false;
	return true;
}

static int cbw_md_read_directory(struct cbw_metadata *md, char **error)
{
	struct dm_buffer *b;
	void *data;
	int r = 0;

	data = dm_bufio_read(md->bufio, DM_CBW_MD_DIRECTORY_BLOCK, &b);
	if (IS_ERR(data)) {
		*error = "Cannot read the metadata directory";
		return PTR_ERR(data);
	}
	if (!cbw_md_directory_valid(md, data)) {
		*error = "Metadata directory is corrupt";
		r = -EINVAL;
	}
	dm_bufio_release(b);
	return r;
}

static int cbw_md_read_intent(struct cbw_metadata *md, char **error)
{
	struct dm_buffer *b;
	bool valid;
	void *data;
	u64 i;

	for (i = 0; i < md->intent_blocks; i++) {
		data = dm_bufio_read(md->bufio, DM_CBW_MD_INTENT_BLOCK + i, &b);
		if (IS_ERR(data)) {
			*error = "Cannot read the metadata intent area";
			return PTR_ERR(data);
		}
		valid = cbw_md_block_valid(data, DM_CBW_MD_INTENT_BLOCK + i,
					   DM_CBW_MD_TYPE_INTENT);
		dm_bufio_release(b);
		if (!valid) {
			*error = "Metadata intent area is corrupt";
			return -EINVAL;
		}
		cond_resched();
	}
	return 0;
}

/*
 * Reads and checks the metadata on @bdev for an origin of @origin_sectors.
 * Returns the metadata, or an ERR_PTR with *@error saying what is wrong.
 */
struct cbw_metadata *cbw_metadata_open(struct block_device *bdev,
				       sector_t origin_sectors, char **error)
{
	struct cbw_metadata *md;
	int r;

	if (bdev_logical_block_size(bdev) > DM_CBW_MD_BLOCK_SIZE) {
		*error = "Metadata device has logical blocks larger than 4 KiB";
		return ERR_PTR(-EINVAL);
	}
	if (bdev_nr_sectors(bdev) < DM_CBW_MD_BLOCK_SECTORS) {
		*error = "Metadata device is too small";
		return ERR_PTR(-EINVAL);
	}
	md = kzalloc(sizeof(*md), GFP_KERNEL);
	if (!md) {
		*error = "Cannot allocate metadata state";
		return ERR_PTR(-ENOMEM);
	}
	md->bdev = bdev;
	md->bufio = dm_bufio_client_create(bdev, DM_CBW_MD_BLOCK_SIZE,
					   CBW_MD_RESERVED_BUFFERS, 0, NULL,
					   NULL, 0);
	if (IS_ERR(md->bufio)) {
		r = PTR_ERR(md->bufio);
		md->bufio = NULL;
		*error = "Cannot create the metadata cache";
		goto bad;
	}
	r = cbw_md_read_superblock(md, origin_sectors, error);
	if (r)
		goto bad;
	r = cbw_md_read_directory(md, error);
	if (r)
		goto bad;
	r = cbw_md_read_intent(md, error);
	if (r)
		goto bad;
	return md;

bad:
	cbw_metadata_close(md);
	return ERR_PTR(r);
}

void cbw_metadata_close(struct cbw_metadata *md)
{
	if (md->bufio)
		dm_bufio_client_destroy(md->bufio);
	kfree(md);
}
