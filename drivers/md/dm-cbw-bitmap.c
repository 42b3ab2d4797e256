// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw dirty bitmaps: which parts of a cbw device were written, for
 * incremental backup.
 *
 * A bitmap has one bit per granule of the device, kept in separately
 * allocated pages so that a large device needs no large contiguous
 * allocation.  Completed guest writes set bits with atomic operations,
 * under RCU only: no lock, no allocation.  Everything else (add, remove,
 * clear, merge) runs under the device's bitmaps mutex.
 */
#include <linux/bitmap.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/rculist.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <uapi/linux/dm-cbw-metadata.h>

#include "dm-cbw.h"

#define CBW_BITS_PER_PAGE	(PAGE_SIZE * BITS_PER_BYTE)
#define CBW_LONGS_PER_PAGE	(PAGE_SIZE / sizeof(long))
/* A metadata block holds a whole number of words: 510 or 1020. */
#define CBW_LONGS_PER_MD_BLOCK	(DM_CBW_MD_BITS_PER_BLOCK / BITS_PER_LONG)
static_assert(DM_CBW_MD_BITS_PER_BLOCK % BITS_PER_LONG == 0);

static unsigned long *cbw_bitmap_page(struct cbw_dirty_bitmap *bm, u64 bit)
{
	return bm->pages[bit / CBW_BITS_PER_PAGE];
}

static unsigned long cbw_bitmap_page_bit(u64 bit)
{
	return bit % CBW_BITS_PER_PAGE;
}

bool cbw_bitmap_name_valid(const char *name)
{
	size_t len = strnlen(name, DM_CBW_NAME_LEN);
	size_t i;

	if (!len || len == DM_CBW_NAME_LEN)
		return false;
	/* ASCII only: isgraph() also accepts Latin-1 letters. */
	for (i = 0; i < len; i++)
		if (name[i] < 0x21 || name[i] > 0x7e)
			return false;
	return true;
}

struct cbw_dirty_bitmap *cbw_bitmap_find(struct cbw_device *dev,
					 const char *name)
{
	struct cbw_dirty_bitmap *bm;

	lockdep_assert_held(&dev->bitmaps_lock);
	list_for_each_entry(bm, &dev->bitmaps, node)
		if (!strcmp(bm->name, name))
			return bm;
	return NULL;
}

void cbw_bitmap_free(struct cbw_dirty_bitmap *bm)
{
	unsigned long i;

	if (bm->pages)
		for (i = 0; i < bm->nr_pages; i++)
			free_page((unsigned long)bm->pages[i]);
	kvfree(bm->pages);
	kfree(bm);
}

struct cbw_dirty_bitmap *cbw_bitmap_create(const char *name, u64 granularity,
					   sector_t len)
{
	struct cbw_dirty_bitmap *bm;
	unsigned long i;

	bm = kzalloc(sizeof(*bm), GFP_KERNEL);
	if (!bm)
		return NULL;
	strscpy(bm->name, name, sizeof(bm->name));
	bm->granularity = granularity;
	bm->shift = ilog2(granularity) - SECTOR_SHIFT;
	bm->len = len;
	bm->nr_bits = (len + (1ULL << bm->shift) - 1) >> bm->shift;
	bm->nr_pages = DIV_ROUND_UP_ULL(bm->nr_bits, CBW_BITS_PER_PAGE);
	atomic64_set(&bm->count, 0);

	/* Fail early rather than drive the machine out of memory. */
	if (bm->nr_pages > totalram_pages() / 2)
		goto nomem;

	bm->pages = kvcalloc(bm->nr_pages, sizeof(*bm->pages), GFP_KERNEL);
	if (!bm->pages)
		goto nomem;
	for (i = 0; i < bm->nr_pages; i++) {
		bm->pages[i] = (unsigned long *)
			get_zeroed_page(GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN);
		if (!bm->pages[i] || fatal_signal_pending(current))
			goto nomem;
	}
	return bm;

nomem:
	cbw_bitmap_free(bm);
	return NULL;
}

/* Bytes of memory a bitmap of @len sectors at @granularity takes. */
static u64 cbw_bitmap_bytes(struct cbw_dirty_bitmap *bm)
{
	return (u64)bm->nr_pages * (PAGE_SIZE + sizeof(*bm->pages)) +
	       sizeof(*bm);
}

static unsigned int cbw_bitmaps_count(struct cbw_device *dev)
{
	struct cbw_dirty_bitmap *bm;
	unsigned int n = 0;

	lockdep_assert_held(&dev->bitmaps_lock);
	list_for_each_entry(bm, &dev->bitmaps, node)
		n++;
	return n;
}

static bool cbw_bitmap_exists(struct cbw_device *dev, const char *name)
{
	bool exists;

	mutex_lock(&dev->bitmaps_lock);
	exists = cbw_bitmap_find(dev, name);
	mutex_unlock(&dev->bitmaps_lock);
	return exists;
}

/* Under bitmaps_lock: @bm joins the device's bitmaps. */
void cbw_bitmap_insert(struct cbw_device *dev, struct cbw_dirty_bitmap *bm)
{
	lockdep_assert_held(&dev->bitmaps_lock);
	atomic64_add(cbw_bitmap_bytes(bm), &dev->bitmap_bytes);
	list_add_tail_rcu(&bm->node, &dev->bitmaps);
}

/* Under bitmaps_lock: a persistent bitmap gets its place on the metadata. */
static int cbw_bitmap_make_persistent(struct cbw_device *dev,
				      struct cbw_dirty_bitmap *bm)
{
	int r;

	if (!dev->metadata)
		return -EOPNOTSUPP;
	r = cbw_metadata_place(dev, bm);
	if (r)
		return r;
	bm->persistent = true;
	bm->generation = cbw_metadata_new_generation();
	bm->changed = &bm->md_changed;
	/* Its blocks are written at the next writeback, zero. */
	set_bit(0, bm->changed);
	WRITE_ONCE(dev->metadata->intent_on, true);
	return 0;
}

/*
 * The bits are allocated without bitmaps_lock: preresume takes it, and
 * must not wait for an allocation that may need reclaim, which may need
 * I/O to the suspended device.  The name and the count are checked again
 * under the lock.
 */
int cbw_bitmap_add(struct cbw_device *dev, const char *name,
		   u64 granularity, u32 flags)
{
	struct cbw_dirty_bitmap *bm;
	sector_t len;
	int r = 0;

	if (!granularity)
		granularity = DM_CBW_DEFAULT_GRANULARITY;
	if (granularity < DM_CBW_MIN_GRANULARITY ||
	    granularity > DM_CBW_MAX_GRANULARITY ||
	    !is_power_of_2(granularity))
		return -EINVAL;
	if (cbw_bitmap_exists(dev, name))
		return -EEXIST;
	if (flags & DM_CBW_BITMAP_PERSISTENT && !READ_ONCE(dev->metadata))
		return -EOPNOTSUPP;

	spin_lock_irq(&dev->lock);
	len = dev->len;
	spin_unlock_irq(&dev->lock);
	bm = cbw_bitmap_create(name, granularity, len);
	if (!bm)
		return -ENOMEM;
	bm->recording = !(flags & DM_CBW_BITMAP_ADD_DISABLED);

	mutex_lock(&dev->bitmaps_lock);
	if (cbw_bitmap_find(dev, name))
		r = -EEXIST;
	else if (cbw_bitmaps_count(dev) >= DM_CBW_MAX_BITMAPS)
		r = -ENOSPC;
	else if (flags & DM_CBW_BITMAP_PERSISTENT)
		r = cbw_bitmap_make_persistent(dev, bm);
	if (!r)
		cbw_bitmap_insert(dev, bm);
	if (!r && bm->persistent)
		cbw_metadata_sync_locked(dev);
	mutex_unlock(&dev->bitmaps_lock);
	if (r)
		cbw_bitmap_free(bm);
	return r;
}

/* Called under bitmaps_lock; the bitmap must not be busy. */
void cbw_bitmap_remove(struct cbw_device *dev, struct cbw_dirty_bitmap *bm)
{
	list_del_rcu(&bm->node);
	/* Writes completing now may still be marking it. */
	synchronize_rcu();
	atomic64_sub(cbw_bitmap_bytes(bm), &dev->bitmap_bytes);
	cbw_bitmap_free(bm);
}

void cbw_bitmaps_destroy(struct cbw_device *dev)
{
	struct cbw_dirty_bitmap *bm, *tmp, *succ;

	/* No target is attached any more: nothing marks. */
	list_for_each_entry_safe(bm, tmp, &dev->bitmaps, node) {
		list_del(&bm->node);
		succ = rcu_dereference_protected(bm->successor, true);
		if (succ)
			cbw_bitmap_free(succ);
		cbw_bitmap_free(bm);
	}
}

/*
 * Set the bits of @mask in @word; returns how many were clear.  Atomic, so
 * that each bit that a concurrent mark, clear or thaw changes is counted
 * once.
 */
static unsigned long cbw_bitmap_set_word(unsigned long *word,
					 unsigned long mask)
{
	unsigned long old;

	/* A plain read first keeps written granules cache-friendly. */
	if ((READ_ONCE(*word) & mask) == mask)
		return 0;
	if (mask == ~0UL)
		old = xchg(word, ~0UL);
	else
		old = set_mask_bits(word, 0, mask);
	return hweight_long(mask & ~old);
}

/* Bits @bit..@last, inside one page; returns how many were clear. */
static unsigned long cbw_bitmap_set_in_page(unsigned long *page,
					    unsigned long bit,
					    unsigned long last)
{
	unsigned long w = BIT_WORD(bit), last_w = BIT_WORD(last);
	unsigned long first_mask = BITMAP_FIRST_WORD_MASK(bit);
	unsigned long last_mask = BITMAP_LAST_WORD_MASK(last + 1);
	unsigned long set = 0;

	if (w == last_w)
		return cbw_bitmap_set_word(&page[w], first_mask & last_mask);
	set += cbw_bitmap_set_word(&page[w], first_mask);
	for (w++; w < last_w; w++)
		set += cbw_bitmap_set_word(&page[w], ~0UL);
	return set + cbw_bitmap_set_word(&page[w], last_mask);
}

/*
 * Set bits @bit..@last, a word at a time (never a granule at a time: a
 * huge discard is marked from interrupt context), and count the bits that
 * were clear with one atomic add per page.  Returns whether any was clear.
 */
static bool cbw_bitmap_set_bits(struct cbw_dirty_bitmap *bm, u64 bit,
				u64 last)
{
	unsigned long set;
	bool any = false;
	u64 page_last;

	while (bit <= last) {
		page_last = min_t(u64, last, (bit | (CBW_BITS_PER_PAGE - 1)));
		set = cbw_bitmap_set_in_page(cbw_bitmap_page(bm, bit),
					     cbw_bitmap_page_bit(bit),
					     cbw_bitmap_page_bit(page_last));
		if (set) {
			atomic64_add(set, &bm->count);
			any = true;
		}
		bit = page_last + 1;
	}
	return any;
}

/*
 * A persistent bitmap (or its successor) changed: the writeback writes its
 * blocks.  The bits are set first, with full barriers: a writeback that
 * takes the flag before this sees them.
 */
static void cbw_bitmap_changed(struct cbw_dirty_bitmap *bm)
{
	if (bm->changed && !test_bit(0, bm->changed))
		set_bit(0, bm->changed);
}

/* Mark the granules of [@sector, @sector + @nr_sectors) in @bm. */
void cbw_bitmap_mark(struct cbw_dirty_bitmap *bm, sector_t sector,
		     sector_t nr_sectors)
{
	sector_t end = min_t(sector_t, sector + nr_sectors, bm->len);

	if (!nr_sectors || sector >= end)
		return;
	if (cbw_bitmap_set_bits(bm, sector >> bm->shift,
				(end - 1) >> bm->shift))
		cbw_bitmap_changed(bm);
}

/* A guest write completed: mark it in every recording bitmap. */
void cbw_bitmaps_mark_write(struct cbw_device *dev, sector_t sector,
			    sector_t nr_sectors)
{
	struct cbw_dirty_bitmap *bm, *succ;

	rcu_read_lock();
	list_for_each_entry_rcu(bm, &dev->bitmaps, node) {
		if (READ_ONCE(bm->recording))
			cbw_bitmap_mark(bm, sector, nr_sectors);
		succ = rcu_dereference(bm->successor);
		if (succ && READ_ONCE(succ->recording))
			cbw_bitmap_mark(succ, sector, nr_sectors);
	}
	rcu_read_unlock();
}

void cbw_bitmap_clear(struct cbw_dirty_bitmap *bm)
{
	unsigned long i, w;

	for (i = 0; i < bm->nr_pages; i++) {
		unsigned long *page = bm->pages[i];

		for (w = 0; w < PAGE_SIZE / sizeof(long); w++) {
			unsigned long old;

			if (!READ_ONCE(page[w]))
				continue;
			/* Exact even against concurrent marking. */
			old = xchg(&page[w], 0);
			atomic64_sub(hweight_long(old), &bm->count);
		}
	}
	/* After the bits: a writeback that sees the flag sees them clear. */
	cbw_bitmap_changed(bm);
}

/* Next bit at or after @bit that is set (or clear), or bm->nr_bits. */
static u64 cbw_bitmap_next(struct cbw_dirty_bitmap *bm, u64 bit, bool set)
{
	while (bit < bm->nr_bits) {
		unsigned long *page = cbw_bitmap_page(bm, bit);
		unsigned long nr = cbw_bitmap_page_bit(bit);
		u64 base = bit - nr;
		unsigned long size = min_t(u64, CBW_BITS_PER_PAGE,
					   bm->nr_bits - base);

		nr = set ? find_next_bit(page, size, nr) :
			   find_next_zero_bit(page, size, nr);
		if (nr < size)
			return base + nr;
		bit = base + CBW_BITS_PER_PAGE;
	}
	return bm->nr_bits;
}

/*
 * Find the first dirty extent at or after @sector: sets *@start and *@end
 * (sectors, clamped to the device) and returns true, or returns false.
 */
bool cbw_bitmap_next_extent(struct cbw_dirty_bitmap *bm, sector_t sector,
			    sector_t *start, sector_t *end)
{
	u64 bit, stop;

	if (sector >= bm->len)
		return false;
	bit = cbw_bitmap_next(bm, sector >> bm->shift, true);
	if (bit >= bm->nr_bits)
		return false;
	stop = cbw_bitmap_next(bm, bit, false);
	*start = max_t(sector_t, sector, bit << bm->shift);
	*end = min_t(sector_t, stop << bm->shift, bm->len);
	return true;
}

/* @dst |= @src; a source bit marks every target bit it overlaps. */
void cbw_bitmap_merge(struct cbw_dirty_bitmap *dst,
		      struct cbw_dirty_bitmap *src)
{
	sector_t sector = 0, start, end;

	while (cbw_bitmap_next_extent(src, sector, &start, &end)) {
		cbw_bitmap_mark(dst, start, end - start);
		sector = end;
	}
}

/*
 * Dirty bytes: whole granules, the last one only inside the device.  A
 * mark adds the bits it set once per page, after setting them: a clear
 * that takes those bits first may leave the count below zero meanwhile.
 */
u64 cbw_bitmap_dirty_bytes(struct cbw_dirty_bitmap *bm)
{
	s64 bits = max_t(s64, atomic64_read(&bm->count), 0);
	u64 count = (u64)bits << (bm->shift + SECTOR_SHIFT);
	u64 tail = bm->len & ((1ULL << bm->shift) - 1);

	if (tail && count &&
	    test_bit(cbw_bitmap_page_bit(bm->nr_bits - 1),
		     cbw_bitmap_page(bm, bm->nr_bits - 1)))
		count -= ((1ULL << bm->shift) - tail) << SECTOR_SHIFT;
	return count;
}

/*
 * Chunks of a snapshot to copy and to read: the granules dirty in @bm,
 * rounded out to whole chunks.
 */
void cbw_bitmap_to_chunks(struct cbw_dirty_bitmap *bm, struct cbw_snapshot *s,
			  unsigned long *chunks)
{
	sector_t sector = 0, start, end;
	unsigned long first, last;

	bitmap_zero(chunks, s->nr_chunks);
	while (cbw_bitmap_next_extent(bm, sector, &start, &end)) {
		if (start >= s->len)
			break;
		end = min_t(sector_t, end, s->len);
		first = cbw_sector_to_chunk(s, start);
		last = cbw_sector_to_chunk(s, end - 1);
		bitmap_set(chunks, first, last - first + 1);
		sector = end;
	}
}

/*
 * Freezing a bitmap (a backup's snapshot point, inside the suspend window
 * of the snapshot start): its bits stay as they are and a successor of
 * the same geometry records the writes from then on, QEMU's "successor".
 * The successor is allocated when the table is loaded, so that a resume
 * cannot fail for lack of memory.
 */
struct cbw_dirty_bitmap *cbw_bitmap_new_successor(struct cbw_dirty_bitmap *bm)
{
	struct cbw_dirty_bitmap *succ;

	succ = cbw_bitmap_create(bm->name, bm->granularity, bm->len);
	/* The writeback keeps the union of both: a crash loses nothing. */
	if (succ)
		succ->changed = bm->changed;
	return succ;
}

void cbw_bitmap_free_successor(struct cbw_dirty_bitmap *succ)
{
	if (succ)
		cbw_bitmap_free(succ);
}

struct cbw_dirty_bitmap *cbw_bitmap_successor(struct cbw_device *dev,
					      struct cbw_dirty_bitmap *bm)
{
	return rcu_dereference_protected(bm->successor,
					 lockdep_is_held(&dev->bitmaps_lock));
}

/* Called under bitmaps_lock with no write in flight (device suspended). */
void cbw_bitmap_freeze(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
		       struct cbw_dirty_bitmap *succ)
{
	succ->recording = bm->recording;
	atomic64_add(cbw_bitmap_bytes(succ), &dev->bitmap_bytes);
	rcu_assign_pointer(bm->successor, succ);
	WRITE_ONCE(bm->recording, false);
	bm->busy++;
}

/*
 * End the freeze: the bitmap becomes the successor's bits, or with @merge
 * its own bits and the successor's.  Writes may complete all along: once
 * the bitmap records again, an RCU grace period lets every write that
 * marked only the successor finish, and the merge picks those up.
 */
void cbw_bitmap_thaw(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
		     bool merge)
{
	struct cbw_dirty_bitmap *succ = cbw_bitmap_successor(dev, bm);

	if (!merge)
		cbw_bitmap_clear(bm);
	WRITE_ONCE(bm->recording, READ_ONCE(succ->recording));
	synchronize_rcu();
	cbw_bitmap_merge(bm, succ);

	rcu_assign_pointer(bm->successor, NULL);
	synchronize_rcu();
	atomic64_sub(cbw_bitmap_bytes(succ), &dev->bitmap_bytes);
	cbw_bitmap_free(succ);
	bm->busy--;
}

/*
 * Clear a bitmap, which makes an inconsistent one usable again: it records
 * from then on if it was enabled.  A persistent one gets a new generation,
 * since its bits were reset.
 */
void cbw_bitmap_reset(struct cbw_dirty_bitmap *bm)
{
	cbw_bitmap_clear(bm);
	if (bm->inconsistent) {
		bm->inconsistent = false;
		WRITE_ONCE(bm->recording, bm->enabled);
	}
	if (bm->persistent)
		bm->generation = cbw_metadata_new_generation();
}

/* Word @w of the bits, 0 beyond the pages. */
static unsigned long cbw_bitmap_word(struct cbw_dirty_bitmap *bm, u64 w)
{
	if (!bm || w >= (u64)bm->nr_pages * CBW_LONGS_PER_PAGE)
		return 0;
	return READ_ONCE(bm->pages[w / CBW_LONGS_PER_PAGE][w % CBW_LONGS_PER_PAGE]);
}

/*
 * The bits of metadata block @index of @bm, little-endian, into @bits: a
 * frozen bitmap's with its successor's, so that a crash during a backup
 * loses no write since the last one.  Under bitmaps_lock.
 */
void cbw_bitmap_get_block(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
			  u64 index, void *bits)
{
	struct cbw_dirty_bitmap *succ = cbw_bitmap_successor(dev, bm);
	u64 w = index * CBW_LONGS_PER_MD_BLOCK;
	unsigned int k;

	for (k = 0; k < CBW_LONGS_PER_MD_BLOCK; k++, w++)
		cbw_put_le_word(bits, k, cbw_bitmap_word(bm, w) |
					 cbw_bitmap_word(succ, w));
}

/*
 * Load metadata block @index of a bitmap that nothing marks yet; bits
 * beyond the bitmap's length are ignored.
 */
void cbw_bitmap_set_block(struct cbw_dirty_bitmap *bm, u64 index,
			  const void *bits)
{
	u64 w = index * CBW_LONGS_PER_MD_BLOCK;
	u64 nr_words = BITS_TO_LONGS(bm->nr_bits);
	unsigned long word;
	unsigned int k;

	for (k = 0; k < CBW_LONGS_PER_MD_BLOCK && w < nr_words; k++, w++) {
		word = cbw_get_le_word(bits, k);
		if (w == nr_words - 1 && bm->nr_bits % BITS_PER_LONG)
			word &= BITMAP_LAST_WORD_MASK(bm->nr_bits);
		bm->pages[w / CBW_LONGS_PER_PAGE][w % CBW_LONGS_PER_PAGE] = word;
		atomic64_add(hweight_long(word), &bm->count);
	}
}
