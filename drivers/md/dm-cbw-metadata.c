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
 *
 * The first table that names it attaches it to the cbw device: its
 * persistent bitmaps are loaded and the superblock is marked in use.  The
 * bits live in memory, marked on the completion path without I/O; a
 * writeback copies what changed into the dm-bufio buffers and writes them,
 * every CBW_MD_WRITEBACK_SECONDS while a table that names it is live, at
 * every suspend, and when the last table leaves, which then marks the
 * superblock clean.  A superblock found in use at load means that the last
 * writes may be missing from the bitmaps: they all load inconsistent.
 */
#include <linux/crc32c.h>
#include <linux/dm-bufio.h>
#include <linux/log2.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <uapi/linux/dm-cbw-metadata.h>

#include "dm-cbw.h"

/* Only the superblock and the directory are held at once. */
#define CBW_MD_RESERVED_BUFFERS	2
/* Bits reach the metadata device at most this long after the write. */
#define CBW_MD_WRITEBACK_SECONDS	30

/* Attached metadata devices: one cbw device each. */
static LIST_HEAD(cbw_metadata_list);
/* Attaches and detaches, and the list. */
static DEFINE_MUTEX(cbw_metadata_lock);
struct workqueue_struct *cbw_metadata_wq;

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
		if (valid)
			cbw_intent_load_block(md, i, data +
					      sizeof(struct dm_cbw_md_header));
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
	INIT_LIST_HEAD(&md->node);
	md->block = kmalloc(DM_CBW_MD_BLOCK_SIZE, GFP_KERNEL);
	if (!md->block) {
		r = -ENOMEM;
		*error = "Cannot allocate metadata state";
		goto bad;
	}
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
	r = cbw_intent_alloc(md);
	if (r) {
		*error = "Cannot allocate the write-intent state";
		goto bad;
	}
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
	cbw_intent_free(md);
	kfree(md->block);
	kfree(md);
}

/*
 *--------------------------------------------------------------
 * Writing blocks
 *--------------------------------------------------------------
 */
static void cbw_md_seal(void *block, u32 type, u64 blocknr)
{
	struct dm_cbw_md_header *h = block;

	h->type = cpu_to_le32(type);
	h->blocknr = cpu_to_le64(blocknr);
	h->csum = 0;
	h->csum = cpu_to_le32(cbw_md_block_csum(block, blocknr));
}

/*
 * Seal @block as block @blocknr and put it in the cache, dirty if it
 * differs from what is there: only changed blocks are written.  A block
 * that is not cached is not read first, since all of it is replaced.
 * Under intent_lock once the device is attached.
 */
int cbw_md_put_block(struct cbw_metadata *md, void *block, u64 blocknr,
		     u32 type)
{
	struct dm_buffer *b;
	bool fresh = false;
	void *data;

	cbw_md_seal(block, type, blocknr);
	data = dm_bufio_get(md->bufio, blocknr, &b);
	if (!data) {
		data = dm_bufio_new(md->bufio, blocknr, &b);
		fresh = true;
	}
	if (IS_ERR(data))
		return PTR_ERR(data);
	if (!fresh && !memcmp(data, block, DM_CBW_MD_BLOCK_SIZE)) {
		dm_bufio_release(b);
		return 0;
	}
	memcpy(data, block, DM_CBW_MD_BLOCK_SIZE);
	dm_bufio_mark_buffer_dirty(b);
	dm_bufio_release(b);
	md->dirtied = true;
	return 0;
}

static int cbw_md_put_bitmap(struct cbw_metadata *md, struct cbw_device *dev,
			     struct cbw_dirty_bitmap *bm)
{
	u64 i;
	int r;

	for (i = 0; i < bm->md_nr_blocks; i++) {
		memset(md->block, 0, sizeof(struct dm_cbw_md_header));
		cbw_bitmap_get_block(dev, bm, i, md->block +
				     sizeof(struct dm_cbw_md_header));
		r = cbw_md_put_block(md, md->block, bm->md_first_block + i,
				     DM_CBW_MD_TYPE_BITMAP);
		if (r)
			return r;
		cond_resched();
	}
	return 0;
}

static u32 cbw_md_entry_flags(struct cbw_device *dev,
			      struct cbw_dirty_bitmap *bm)
{
	struct cbw_dirty_bitmap *succ = cbw_bitmap_successor(dev, bm);
	u32 flags = DM_CBW_MD_BITMAP_USED;
	bool enabled;

	if (bm->inconsistent)
		enabled = bm->enabled;
	else
		enabled = READ_ONCE((succ ?: bm)->recording);
	if (enabled)
		flags |= DM_CBW_MD_BITMAP_ENABLED;
	if (bm->inconsistent)
		flags |= DM_CBW_MD_BITMAP_INCONSISTENT;
	return flags;
}

/* The directory of the persistent bitmaps in @bitmaps, as they are now. */
static int cbw_md_put_directory(struct cbw_metadata *md,
				struct cbw_device *dev,
				struct list_head *bitmaps)
{
	struct dm_cbw_md_directory *dir = md->block;
	struct dm_cbw_md_bitmap_entry *e;
	struct cbw_dirty_bitmap *bm;

	memset(md->block, 0, DM_CBW_MD_BLOCK_SIZE);
	dir->nr_entries = cpu_to_le32(DM_CBW_MAX_BITMAPS);
	list_for_each_entry(bm, bitmaps, node) {
		if (!bm->persistent)
			continue;
		e = &dir->entries[bm->md_slot];
		strscpy(e->name, bm->name, sizeof(e->name));
		e->granularity = cpu_to_le64(bm->granularity);
		e->len_sectors = cpu_to_le64(bm->len);
		e->generation = cpu_to_le64(bm->generation);
		e->first_block = cpu_to_le64(bm->md_first_block);
		e->nr_blocks = cpu_to_le64(bm->md_nr_blocks);
		e->flags = cpu_to_le32(cbw_md_entry_flags(dev, bm));
	}
	return cbw_md_put_block(md, md->block, DM_CBW_MD_DIRECTORY_BLOCK,
				DM_CBW_MD_TYPE_DIRECTORY);
}

/*
 * The dirty blocks, on the media: dm_bufio_write_dirty_buffers() ends
 * with a flush (6.1 to 7.3).  Nothing is written when nothing changed.
 */
int cbw_md_write_dirty(struct cbw_metadata *md)
{
	int r;

	if (!md->dirtied)
		return 0;
	r = dm_bufio_write_dirty_buffers(md->bufio);
	if (!r)
		md->dirtied = false;
	return r;
}

/*
 * A write failed: the cache may now hold blocks that are not on the
 * media, and a block equal to its cached copy is not written again.
 * Forget the cache (dm-bufio keeps the dirty buffers) and write every
 * bitmap at the next writeback.
 */
void cbw_md_write_failed(struct cbw_metadata *md)
{
	dm_bufio_forget_buffers(md->bufio, 0, md->nr_blocks);
	md->rewrite_all = true;
}

/*
 * Writes the dirty blocks, flushed, then sets the superblock's flags: it
 * says clean only once everything else is on the media.  Nothing is
 * written (or flushed) when nothing changed.
 */
static int cbw_md_commit(struct cbw_metadata *md, u32 flags)
{
	struct dm_cbw_md_superblock *sb;
	struct dm_buffer *b;
	bool changed;
	int r;

	r = cbw_md_write_dirty(md);
	if (r)
		return r;
	sb = dm_bufio_read(md->bufio, DM_CBW_MD_SUPERBLOCK_BLOCK, &b);
	if (IS_ERR(sb))
		return PTR_ERR(sb);
	changed = le32_to_cpu(sb->flags) != flags;
	if (changed) {
		sb->flags = cpu_to_le32(flags);
		cbw_md_seal(sb, DM_CBW_MD_TYPE_SUPERBLOCK,
			    DM_CBW_MD_SUPERBLOCK_BLOCK);
		dm_bufio_mark_buffer_dirty(b);
	}
	dm_bufio_release(b);
	return changed ? dm_bufio_write_dirty_buffers(md->bufio) : 0;
}

/* The bitmaps that changed (@all: every one), into the cache. */
static int cbw_md_put_bitmaps(struct cbw_device *dev, bool all)
{
	struct cbw_metadata *md = dev->metadata;
	struct cbw_dirty_bitmap *bm;
	int r;

	list_for_each_entry(bm, &dev->bitmaps, node) {
		if (!bm->persistent ||
		    (!test_and_clear_bit(0, &bm->md_changed) && !all))
			continue;
		r = cbw_md_put_bitmap(md, dev, bm);
		if (r) {
			set_bit(0, &bm->md_changed);
			return r;
		}
	}
	return cbw_md_put_directory(md, dev, &dev->bitmaps);
}

/*
 * A checkpoint, under bitmaps_lock: write the bitmaps that changed (@all:
 * every one) and the directory, flushed; only then clear the intent bits
 * of the idle regions (all of them when @flags says clean), flushed; and
 * set the superblock's @flags.
 */
static int cbw_md_writeback_locked(struct cbw_device *dev, bool all, u32 flags)
{
	struct cbw_metadata *md = dev->metadata;
	int r;

	lockdep_assert_held(&dev->bitmaps_lock);
	mutex_lock(&md->intent_lock);
	cbw_intent_pick_idle(md, !(flags & DM_CBW_MD_IN_USE));
	all |= md->rewrite_all;
	r = cbw_md_put_bitmaps(dev, all);
	if (!r)
		r = cbw_md_write_dirty(md);
	if (r) {
		cbw_intent_keep_idle(md);
	} else {
		if (all)
			md->rewrite_all = false;
		r = cbw_intent_clear_idle(md);
	}
	if (!r)
		r = cbw_md_commit(md, flags);
	if (r)
		cbw_md_write_failed(md);
	mutex_unlock(&md->intent_lock);
	if (r && r != md->error)
		DMERR("metadata writeback failed: %d", r);
	md->error = r;
	return r;
}

/*
 * Under bitmaps_lock: a persistent bitmap was added, removed or cleared;
 * the change is on the media when the command returns, unless the device
 * is suspended (then at the first writeback after the resume).
 */
void cbw_metadata_sync_locked(struct cbw_device *dev)
{
	lockdep_assert_held(&dev->bitmaps_lock);
	if (dev->metadata && dev->metadata->writeback_armed)
		cbw_md_writeback_locked(dev, false, DM_CBW_MD_IN_USE);
}

/* Write back what changed (a suspend, a table without periodic work). */
int cbw_metadata_writeback(struct cbw_device *dev)
{
	int r = 0;

	mutex_lock(&dev->bitmaps_lock);
	if (dev->metadata)
		r = cbw_md_writeback_locked(dev, false, DM_CBW_MD_IN_USE);
	mutex_unlock(&dev->bitmaps_lock);
	return r;
}

static void cbw_md_writeback_work(struct work_struct *work)
{
	struct cbw_metadata *md = container_of(to_delayed_work(work),
					       struct cbw_metadata,
					       writeback_work);
	struct cbw_device *dev = md->dev;

	mutex_lock(&dev->bitmaps_lock);
	if (md->writeback_armed) {
		cbw_md_writeback_locked(dev, false, DM_CBW_MD_IN_USE);
		queue_delayed_work(cbw_metadata_wq, &md->writeback_work,
				   CBW_MD_WRITEBACK_SECONDS * HZ);
	}
	mutex_unlock(&dev->bitmaps_lock);
}

/* A table that names the metadata device goes live. */
void cbw_metadata_start_writeback(struct cbw_device *dev)
{
	struct cbw_metadata *md;

	mutex_lock(&dev->bitmaps_lock);
	md = dev->metadata;
	if (md && !md->writeback_armed) {
		md->writeback_armed = true;
		queue_delayed_work(cbw_metadata_wq, &md->writeback_work,
				   CBW_MD_WRITEBACK_SECONDS * HZ);
	}
	mutex_unlock(&dev->bitmaps_lock);
}

/* A suspended target issues no I/O: no writeback until the resume. */
void cbw_metadata_stop_writeback(struct cbw_device *dev)
{
	struct cbw_metadata *md;

	mutex_lock(&dev->bitmaps_lock);
	md = dev->metadata;
	if (md)
		md->writeback_armed = false;
	mutex_unlock(&dev->bitmaps_lock);
	if (md) {
		cancel_delayed_work_sync(&md->writeback_work);
		cbw_intent_quiesce(md);
	}
}

/*
 *--------------------------------------------------------------
 * Persistent bitmaps
 *--------------------------------------------------------------
 */
/*
 * Under bitmaps_lock, after a persistent bitmap came or went: writes pass
 * the write-intent log while the device has one.
 */
void cbw_metadata_update_gate(struct cbw_device *dev)
{
	struct cbw_dirty_bitmap *bm;
	bool any = false;

	lockdep_assert_held(&dev->bitmaps_lock);
	if (!dev->metadata)
		return;
	list_for_each_entry(bm, &dev->bitmaps, node)
		any |= bm->persistent;
	WRITE_ONCE(dev->metadata->intent_on, any);
}

/*
 * A generation: random, so that none is ever handed out twice, and below
 * 2^53, so that JSON readers that use doubles keep it exact.
 */
u64 cbw_metadata_new_generation(void)
{
	u64 gen;

	do {
		gen = get_random_u64() & (BIT_ULL(53) - 1);
	} while (!gen);
	return gen;
}

static bool cbw_md_overlaps(struct cbw_dirty_bitmap *bm, u64 first, u64 nr)
{
	return bm->persistent && first < bm->md_first_block + bm->md_nr_blocks &&
	       bm->md_first_block < first + nr;
}

/* The first run of @nr free blocks of the bitmap area, or 0. */
static u64 cbw_md_find_blocks(struct cbw_device *dev, u64 nr)
{
	struct cbw_metadata *md = dev->metadata;
	u64 first = md->bitmap_block;
	struct cbw_dirty_bitmap *bm;
	bool moved;

	do {
		moved = false;
		list_for_each_entry(bm, &dev->bitmaps, node) {
			if (cbw_md_overlaps(bm, first, nr)) {
				first = bm->md_first_block + bm->md_nr_blocks;
				moved = true;
			}
		}
	} while (moved);
	return first <= md->nr_blocks && nr <= md->nr_blocks - first ?
	       first : 0;
}

/*
 * Under bitmaps_lock: a directory entry and blocks for a new persistent
 * bitmap; EFBIG when the bitmap area has no room for it.
 */
int cbw_metadata_place(struct cbw_device *dev, struct cbw_dirty_bitmap *bm)
{
	unsigned long used = 0;
	struct cbw_dirty_bitmap *other;
	u64 nr, first;

	lockdep_assert_held(&dev->bitmaps_lock);
	if (bm->len > dev->metadata->origin_sectors)
		return -EFBIG;
	nr = cbw_md_bit_blocks(bm->nr_bits);
	first = cbw_md_find_blocks(dev, nr);
	if (!first)
		return -EFBIG;
	list_for_each_entry(other, &dev->bitmaps, node)
		if (other->persistent)
			__set_bit(other->md_slot, &used);
	bm->md_slot = find_first_zero_bit(&used, DM_CBW_MAX_BITMAPS);
	bm->md_first_block = first;
	bm->md_nr_blocks = nr;
	return 0;
}

/* Its bits cannot be trusted: it keeps nothing and records nothing. */
static void cbw_md_make_inconsistent(struct cbw_dirty_bitmap *bm, bool known)
{
	cbw_bitmap_clear(bm);
	bm->inconsistent = true;
	bm->recording = false;
	if (!known)
		bm->generation = cbw_metadata_new_generation();
}

static bool cbw_md_read_bits(struct cbw_metadata *md,
			     struct cbw_dirty_bitmap *bm)
{
	struct dm_buffer *b;
	bool valid;
	void *data;
	u64 i, blocknr;

	for (i = 0; i < bm->md_nr_blocks; i++) {
		blocknr = bm->md_first_block + i;
		data = dm_bufio_read(md->bufio, blocknr, &b);
		if (IS_ERR(data))
			return false;
		valid = cbw_md_block_valid(data, blocknr, DM_CBW_MD_TYPE_BITMAP);
		if (valid)
			cbw_bitmap_set_block(bm, i, data +
					     sizeof(struct dm_cbw_md_header));
		dm_bufio_release(b);
		if (!valid)
			return false;
		cond_resched();
	}
	return true;
}

/*
 * A bitmap of the directory, with its bits.  One whose blocks fail their
 * checksum loads inconsistent.  After an unclean shutdown, the regions
 * marked in the intent area are set dirty in every other one, enabled or
 * not: the last writes may be missing from its blocks, never from those
 * regions.
 */
static struct cbw_dirty_bitmap *
cbw_md_load_bitmap(struct cbw_metadata *md, unsigned int slot,
		   const struct dm_cbw_md_bitmap_entry *e)
{
	u32 flags = le32_to_cpu(e->flags);
	struct cbw_dirty_bitmap *bm;

	bm = cbw_bitmap_create(e->name, le64_to_cpu(e->granularity),
			       le64_to_cpu(e->len_sectors));
	if (!bm)
		return NULL;
	bm->persistent = true;
	bm->changed = &bm->md_changed;
	bm->md_slot = slot;
	bm->md_first_block = le64_to_cpu(e->first_block);
	bm->md_nr_blocks = le64_to_cpu(e->nr_blocks);
	bm->generation = le64_to_cpu(e->generation);
	bm->enabled = flags & DM_CBW_MD_BITMAP_ENABLED;
	if (flags & DM_CBW_MD_BITMAP_INCONSISTENT)
		cbw_md_make_inconsistent(bm, true);
	else if (!cbw_md_read_bits(md, bm))
		cbw_md_make_inconsistent(bm, false);
	else
		bm->recording = bm->enabled;
	if (md->in_use && !bm->inconsistent)
		cbw_intent_mark_bitmap(md, bm);
	return bm;
}

static void cbw_md_free_bitmaps(struct list_head *bitmaps)
{
	struct cbw_dirty_bitmap *bm, *tmp;

	list_for_each_entry_safe(bm, tmp, bitmaps, node) {
		list_del(&bm->node);
		cbw_bitmap_free(bm);
	}
}

/* The persistent bitmaps of the directory, into @bitmaps. */
static int cbw_md_load_bitmaps(struct cbw_metadata *md,
			       struct list_head *bitmaps, char **error)
{
	struct dm_cbw_md_directory *dir;
	struct cbw_dirty_bitmap *bm;
	struct dm_buffer *b;
	unsigned int i;
	int r = 0;

	dir = dm_bufio_read(md->bufio, DM_CBW_MD_DIRECTORY_BLOCK, &b);
	if (IS_ERR(dir)) {
		*error = "Cannot read the metadata directory";
		return PTR_ERR(dir);
	}
	for (i = 0; i < DM_CBW_MAX_BITMAPS; i++) {
		if (!(le32_to_cpu(dir->entries[i].flags) &
		      DM_CBW_MD_BITMAP_USED))
			continue;
		bm = cbw_md_load_bitmap(md, i, &dir->entries[i]);
		if (!bm) {
			*error = "Cannot allocate the persistent bitmaps";
			r = -ENOMEM;
			break;
		}
		list_add_tail(&bm->node, bitmaps);
	}
	dm_bufio_release(b);
	if (r)
		cbw_md_free_bitmaps(bitmaps);
	return r;
}

static bool cbw_md_names_free(struct cbw_device *dev, struct list_head *bitmaps)
{
	struct cbw_dirty_bitmap *bm;
	unsigned int n = 0;

	lockdep_assert_held(&dev->bitmaps_lock);
	list_for_each_entry(bm, &dev->bitmaps, node)
		n++;
	list_for_each_entry(bm, bitmaps, node) {
		if (cbw_bitmap_find(dev, bm->name))
			return false;
		n++;
	}
	return n <= DM_CBW_MAX_BITMAPS;
}

static struct cbw_metadata *cbw_md_find_attached(struct block_device *bdev)
{
	struct cbw_metadata *md;

	list_for_each_entry(md, &cbw_metadata_list, node)
		if (md->bdev == bdev)
			return md;
	return NULL;
}

/*
 * Joins the loaded bitmaps to the device once the superblock says in use
 * (and the directory which ones loaded inconsistent): from now on it is
 * clean only once the last writeback has been written.
 */
static int cbw_md_join(struct cbw_device *dev, struct cbw_metadata *md,
		       struct list_head *bitmaps, char **error)
{
	struct cbw_dirty_bitmap *bm, *tmp;
	int r;

	mutex_lock(&dev->bitmaps_lock);
	if (!cbw_md_names_free(dev, bitmaps)) {
		*error = "Persistent bitmap names are in use on the device";
		r = -EEXIST;
		goto out;
	}
	r = cbw_md_put_directory(md, dev, bitmaps);
	if (!r)
		r = cbw_md_commit(md, DM_CBW_MD_IN_USE);
	if (r) {
		*error = "Cannot write the metadata device";
		goto out;
	}
	list_for_each_entry_safe(bm, tmp, bitmaps, node) {
		list_del(&bm->node);
		cbw_bitmap_insert(dev, bm);
	}
	md->dev = dev;
	dev->metadata = md;
	cbw_metadata_update_gate(dev);
out:
	mutex_unlock(&dev->bitmaps_lock);
	return r;
}

/*
 * The metadata device of a new table of @dev: the one the device has
 * already, or, for the first, read and attached with its bitmaps.
 */
int cbw_metadata_attach(struct cbw_device *dev, struct block_device *bdev,
			sector_t origin_sectors, char **error)
{
	struct cbw_metadata *md;
	LIST_HEAD(bitmaps);
	int r = 0;

	mutex_lock(&cbw_metadata_lock);
	if (dev->metadata) {
		if (dev->metadata->bdev != bdev) {
			*error = "The device already has another metadata device";
			r = -EINVAL;
		} else if (dev->metadata->origin_sectors != origin_sectors) {
			/* Its write-intent log covers that origin only. */
			*error = "Metadata device belongs to another origin";
			r = -EINVAL;
		}
		goto out;
	}
	if (cbw_md_find_attached(bdev)) {
		*error = "Metadata device is in use by another cbw device";
		r = -EBUSY;
		goto out;
	}
	md = cbw_metadata_open(bdev, origin_sectors, error);
	if (IS_ERR(md)) {
		r = PTR_ERR(md);
		goto out;
	}
	INIT_DELAYED_WORK(&md->writeback_work, cbw_md_writeback_work);
	r = cbw_md_load_bitmaps(md, &bitmaps, error);
	if (!r)
		r = cbw_md_join(dev, md, &bitmaps, error);
	if (r) {
		cbw_md_free_bitmaps(&bitmaps);
		cbw_metadata_close(md);
	} else {
		list_add(&md->node, &cbw_metadata_list);
	}
out:
	mutex_unlock(&cbw_metadata_lock);
	return r;
}

/*
 * The last table of @dev left: write everything back and mark the
 * superblock clean, so that the next load finds the bitmaps exact.
 */
void cbw_metadata_detach(struct cbw_device *dev)
{
	struct cbw_metadata *md;
	struct cbw_dirty_bitmap *bm;

	mutex_lock(&cbw_metadata_lock);
	md = dev->metadata;
	if (!md)
		goto out;
	cbw_metadata_stop_writeback(dev);
	mutex_lock(&dev->bitmaps_lock);
	if (cbw_md_writeback_locked(dev, true, 0))
		DMERR("metadata device %pg left in use: the next load marks its intent regions",
		      md->bdev);
	list_for_each_entry(bm, &dev->bitmaps, node)
		bm->persistent = false;
	dev->metadata = NULL;
	mutex_unlock(&dev->bitmaps_lock);
	list_del(&md->node);
	cbw_metadata_close(md);
out:
	mutex_unlock(&cbw_metadata_lock);
}

int cbw_metadata_init(void)
{
	cbw_metadata_wq = alloc_workqueue("kcbwmd", WQ_MEM_RECLAIM, 0);
	return cbw_metadata_wq ? 0 : -ENOMEM;
}

void cbw_metadata_exit(void)
{
	destroy_workqueue(cbw_metadata_wq);
}
