// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw write-intent log: the persistent bitmaps stay a superset of the
 * writes after a crash.
 *
 * The intent area of the metadata device has one bit per region of the
 * origin.  While the device has a persistent bitmap, a write (anything
 * that changes data) is sent to the origin only once the bits of the
 * regions it touches are on the media.  Their copy in memory, "durable",
 * is tested without a lock; a write that finds a bit clear is parked and
 * the commit worker writes the intent blocks for every parked write at
 * once, flushed, before it sends them on: one metadata write and flush
 * for all the writes that came while the previous one ran.
 *
 * A checkpoint (the periodic writeback, a suspend, the last table leaving)
 * writes the bitmaps, flushed, and only then clears the intent bits of
 * the regions that are idle: no write since the previous checkpoint and
 * none in flight.  Dirty bits are set when a write completes, so a write
 * in flight is not in the bitmaps yet: each write counts itself in a
 * bucket of regions from before it tests "durable" until after it has
 * marked the bitmaps.
 *
 * After an unclean shutdown every region marked in the intent area is set
 * dirty in every persistent bitmap (dm-cbw-metadata.c).
 */
#include <linux/bitmap.h>
#include <linux/dm-bufio.h>
#include <linux/log2.h>
#include <linux/slab.h>
#include <uapi/linux/dm-cbw-metadata.h>

#include "dm-cbw.h"

/* In-flight counters: region r counts in bucket r % CBW_INTENT_BUCKETS. */
#define CBW_INTENT_BUCKETS	1024
#define CBW_LONGS_PER_MD_BLOCK	(DM_CBW_MD_BITS_PER_BLOCK / BITS_PER_LONG)

static atomic_t *cbw_intent_bucket(struct cbw_metadata *md, unsigned long r)
{
	return &md->inflight[r % CBW_INTENT_BUCKETS];
}

int cbw_intent_alloc(struct cbw_metadata *md)
{
	unsigned long words;

	md->region_shift = ilog2(md->region_sectors);
	md->nr_regions = DIV_ROUND_UP_ULL(md->origin_sectors,
					  md->region_sectors);
	/* Whole intent blocks, so that a block is built from whole words. */
	words = md->intent_blocks * CBW_LONGS_PER_MD_BLOCK;
	md->wanted = kvcalloc(words, sizeof(long), GFP_KERNEL);
	md->durable = kvcalloc(words, sizeof(long), GFP_KERNEL);
	md->touched = kvcalloc(words, sizeof(long), GFP_KERNEL);
	md->idle = kvcalloc(words, sizeof(long), GFP_KERNEL);
	md->intent_dirty = bitmap_zalloc(md->intent_blocks, GFP_KERNEL);
	md->inflight = kcalloc(CBW_INTENT_BUCKETS, sizeof(atomic_t),
			       GFP_KERNEL);
	md->intent_block = kmalloc(DM_CBW_MD_BLOCK_SIZE, GFP_KERNEL);
	if (!md->wanted || !md->durable || !md->touched || !md->idle ||
	    !md->intent_dirty || !md->inflight || !md->intent_block)
		return -ENOMEM;
	mutex_init(&md->intent_lock);
	spin_lock_init(&md->park_lock);
	bio_list_init(&md->parked);
	INIT_WORK(&md->commit_work, cbw_intent_commit_work);
	return 0;
}

void cbw_intent_free(struct cbw_metadata *md)
{
	kvfree(md->wanted);
	kvfree(md->durable);
	kvfree(md->touched);
	kvfree(md->idle);
	bitmap_free(md->intent_dirty);
	kfree(md->inflight);
	kfree(md->intent_block);
}

/* Intent block @index (from 0) as it was read: its bits become wanted. */
void cbw_intent_load_block(struct cbw_metadata *md, u64 index,
			   const void *bits)
{
	unsigned long *w = md->wanted + index * CBW_LONGS_PER_MD_BLOCK;
	unsigned int k;

	for (k = 0; k < CBW_LONGS_PER_MD_BLOCK; k++)
		w[k] = cbw_get_le_word(bits, k);
	/* Bits past the last region are not ours. */
	if (index == md->intent_blocks - 1)
		bitmap_clear(md->wanted, md->nr_regions,
			     md->intent_blocks * DM_CBW_MD_BITS_PER_BLOCK -
			     md->nr_regions);
	bitmap_copy(md->durable, md->wanted, md->nr_regions);
}

/* Sets the regions marked in the intent area dirty in @bm. */
void cbw_intent_mark_bitmap(struct cbw_metadata *md,
			    struct cbw_dirty_bitmap *bm)
{
	unsigned long r;

	for_each_set_bit(r, md->wanted, md->nr_regions)
		cbw_bitmap_mark(bm, (sector_t)r << md->region_shift,
				md->region_sectors);
}

/*
 *--------------------------------------------------------------
 * Writes
 *--------------------------------------------------------------
 */
static bool cbw_intent_all_durable(struct cbw_metadata *md,
				   unsigned long first, unsigned long last)
{
	if (first == last)
		return test_bit(first, md->durable);
	return find_next_zero_bit(md->durable, last + 1, first) > last;
}

/* Count the write in (@delta 1) or out (-1) of its regions' buckets. */
static void cbw_intent_count(struct cbw_metadata *md, unsigned long first,
			     unsigned long last, int delta)
{
	unsigned long r, n = min_t(unsigned long, last - first + 1,
				   CBW_INTENT_BUCKETS);

	for (r = first; r < first + n; r++)
		atomic_add(delta, cbw_intent_bucket(md, r));
}

static void cbw_intent_touch(struct cbw_metadata *md, unsigned long first,
			     unsigned long last)
{
	unsigned long r;

	for (r = first; r <= last; r++)
		if (!test_bit(r, md->touched))
			set_bit(r, md->touched);
}

/*
 * A write of @nr_sectors at @sector is about to be mapped: true when it
 * may go on now, false when it was parked for the commit worker, which
 * sends it on (or fails it) later.  Never blocks.
 */
bool cbw_intent_gate(struct cbw_metadata *md, struct bio *bio,
		     sector_t sector, sector_t nr_sectors)
{
	struct cbw_bio *cb = cbw_bio_data(bio);
	unsigned long flags;

	cb->intent_first = sector >> md->region_shift;
	cb->intent_last = (sector + nr_sectors - 1) >> md->region_shift;
	cb->intent_held = true;
	cbw_intent_count(md, cb->intent_first, cb->intent_last, 1);
	cbw_intent_touch(md, cb->intent_first, cb->intent_last);
	/*
	 * Counted in, then test durable; a checkpoint clears durable, then
	 * reads the count (cbw_intent_pick_idle()).  Either the checkpoint
	 * sees this write and keeps the region, or this write sees the bit
	 * clear and waits for a commit that sets it again.
	 */
	smp_mb__after_atomic();
	if (cbw_intent_all_durable(md, cb->intent_first, cb->intent_last))
		return true;

	spin_lock_irqsave(&md->park_lock, flags);
	bio_list_add(&md->parked, bio);
	spin_unlock_irqrestore(&md->park_lock, flags);
	queue_work(cbw_metadata_wq, &md->commit_work);
	return false;
}

/* The write ended, after it marked the bitmaps. */
void cbw_intent_end(struct cbw_metadata *md, struct bio *bio)
{
	struct cbw_bio *cb = cbw_bio_data(bio);

	/* Its bits before the count: pairs with smp_rmb() in the checkpoint. */
	smp_mb__before_atomic();
	cbw_intent_count(md, cb->intent_first, cb->intent_last, -1);
}

/*
 *--------------------------------------------------------------
 * Commits
 *--------------------------------------------------------------
 */
/* Intent block @index from the wanted bits, into the cache. */
static int cbw_intent_put_block(struct cbw_metadata *md, u64 index)
{
	const unsigned long *w = md->wanted + index * CBW_LONGS_PER_MD_BLOCK;
	void *bits = md->intent_block + sizeof(struct dm_cbw_md_header);
	unsigned int k;

	memset(md->intent_block, 0, sizeof(struct dm_cbw_md_header));
	for (k = 0; k < CBW_LONGS_PER_MD_BLOCK; k++)
		cbw_put_le_word(bits, k, w[k]);
	return cbw_md_put_block(md, md->intent_block,
				DM_CBW_MD_INTENT_BLOCK + index,
				DM_CBW_MD_TYPE_INTENT);
}

static void cbw_intent_want(struct cbw_metadata *md, unsigned long r)
{
	__set_bit(r, md->wanted);
	__set_bit(r / DM_CBW_MD_BITS_PER_BLOCK, md->intent_dirty);
}

/* The intent blocks whose wanted bits changed, into the cache. */
static int cbw_intent_put_dirty(struct cbw_metadata *md)
{
	unsigned long index;
	int err = 0;

	for_each_set_bit(index, md->intent_dirty, md->intent_blocks) {
		if (!err)
			err = cbw_intent_put_block(md, index);
		__clear_bit(index, md->intent_dirty);
	}
	return err;
}

/*
 * The intent bits of the parked @bios that are not durable yet, into the
 * cache: a wanted bit that is not durable may be missing on the media (a
 * failed commit), so its block is written again.
 */
static int cbw_intent_put_bios(struct cbw_metadata *md, struct bio_list *bios)
{
	struct cbw_bio *cb;
	unsigned long r;
	struct bio *bio;

	bio_list_for_each(bio, bios) {
		cb = cbw_bio_data(bio);
		for (r = cb->intent_first; r <= cb->intent_last; r++)
			if (!test_bit(r, md->durable))
				cbw_intent_want(md, r);
	}
	return cbw_intent_put_dirty(md);
}

/*
 * Under intent_lock: the intent bits of the parked @bios, on the media.
 * A wanted bit is durable once a commit that wrote it succeeded; the
 * bits of a failed one stay wanted but not durable, and the cache forgets
 * what it could not write, so that the next commit writes it again.
 */
static int cbw_intent_commit(struct cbw_metadata *md, struct bio_list *bios)
{
	struct cbw_bio *cb;
	struct bio *bio;
	int r;

	r = cbw_intent_put_bios(md, bios);
	if (!r)
		r = cbw_md_write_dirty(md);
	if (r) {
		cbw_md_write_failed(md);
		return r;
	}
	bio_list_for_each(bio, bios) {
		cb = cbw_bio_data(bio);
		bitmap_set(md->durable, cb->intent_first,
			   cb->intent_last - cb->intent_first + 1);
	}
	return 0;
}

static void cbw_intent_send(struct bio_list *bios, int err)
{
	struct cbw_bio *cb;
	struct bio *bio;

	while ((bio = bio_list_pop(bios))) {
		cb = cbw_bio_data(bio);
		if (err) {
			/* Nothing was sent: nothing changed on the device. */
			cbw_bio_failed_unsent(bio);
			bio->bi_status = errno_to_blk_status(err);
			bio_endio(bio);
		} else if (!cb->snap ||
			   cbw_copy_map_write(cb->snap, bio) == DM_MAPIO_REMAPPED) {
			dm_submit_bio_remap(bio, NULL);
		}
	}
}

/*
 * Commit the intent bits of every parked write, then send them on.
 * Writes parked meanwhile queue the work again: they share the next
 * commit.
 */
void cbw_intent_commit_work(struct work_struct *work)
{
	struct cbw_metadata *md = container_of(work, struct cbw_metadata,
					       commit_work);
	struct bio_list bios;
	unsigned int n;
	int r;

	mutex_lock(&md->intent_lock);
	spin_lock_irq(&md->park_lock);
	bios = md->parked;
	bio_list_init(&md->parked);
	spin_unlock_irq(&md->park_lock);
	r = bio_list_empty(&bios) ? 0 : cbw_intent_commit(md, &bios);
	mutex_unlock(&md->intent_lock);

	if (r) {
		n = bio_list_size(&bios);
		DMERR_LIMIT("%pg: write-intent commit failed (%d): %u writes fail with EIO",
			    md->bdev, r, n);
		r = -EIO;
	}
	cbw_intent_send(&bios, r);
}

/*
 *--------------------------------------------------------------
 * Checkpoints
 *--------------------------------------------------------------
 */
/*
 * Under intent_lock, before the bitmaps are written: the regions whose
 * intent bits the checkpoint clears, into md->idle, and cleared in
 * "durable" so that a new write to one of them waits for the next commit
 * (which needs intent_lock: after the checkpoint).  @clean: the last
 * table left, nothing is in flight, every bit goes.
 */
void cbw_intent_pick_idle(struct cbw_metadata *md, bool clean)
{
	unsigned long r;

	lockdep_assert_held(&md->intent_lock);
	bitmap_zero(md->idle, md->nr_regions);
	for_each_set_bit(r, md->wanted, md->nr_regions) {
		if (clean) {
			__set_bit(r, md->idle);
			continue;
		}
		/* Written since the previous checkpoint: may be written again. */
		if (!test_bit(r, md->durable) ||
		    test_and_clear_bit(r, md->touched))
			continue;
		clear_bit(r, md->durable);
		/* Pairs with smp_mb__after_atomic() in cbw_intent_gate(). */
		smp_mb__after_atomic();
		if (atomic_read(cbw_intent_bucket(md, r))) {
			set_bit(r, md->durable);
			continue;
		}
		__set_bit(r, md->idle);
	}
	/* The marks of the writes counted out: pairs with cbw_intent_end(). */
	smp_rmb();
}

/* The bitmaps could not be written: the idle regions stay marked. */
void cbw_intent_keep_idle(struct cbw_metadata *md)
{
	lockdep_assert_held(&md->intent_lock);
	bitmap_or(md->durable, md->durable, md->idle, md->nr_regions);
}

/*
 * Under intent_lock, once the bitmaps are on the media: clear the intent
 * bits of the idle regions, into the cache (the caller writes them).
 */
int cbw_intent_clear_idle(struct cbw_metadata *md)
{
	unsigned long r;

	lockdep_assert_held(&md->intent_lock);
	for_each_set_bit(r, md->idle, md->nr_regions) {
		__clear_bit(r, md->wanted);
		__set_bit(r / DM_CBW_MD_BITS_PER_BLOCK, md->intent_dirty);
	}
	return cbw_intent_put_dirty(md);
}

/*
 * A suspended target issues no I/O: its writes have all ended, but the
 * commit worker may still be leaving.
 */
void cbw_intent_quiesce(struct cbw_metadata *md)
{
	flush_work(&md->commit_work);
}
