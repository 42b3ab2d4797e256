// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw chunk state: which chunks of a snapshot still need copying, which
 * are copied, and which a snapshot reader may read.
 */
#include <linux/bitmap.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include "dm-cbw.h"

static unsigned long *cbw_bitmap_alloc(unsigned long nr_bits, bool set)
{
	unsigned long *map;

	map = kvcalloc(BITS_TO_LONGS(nr_bits), sizeof(unsigned long),
		       GFP_KERNEL);
	if (map && set)
		bitmap_set(map, 0, nr_bits);
	return map;
}

struct cbw_copy_buf *cbw_buf_alloc_pages(unsigned int nr_pages, gfp_t gfp)
{
	struct cbw_copy_buf *buf;
	unsigned int i;

	buf = kmalloc(sizeof(*buf), gfp);
	if (!buf)
		return NULL;
	buf->nr_pages = nr_pages;
	buf->reserve = false;
	for (i = 0; i < nr_pages; i++) {
		buf->pages[i] = alloc_page(gfp);
		if (!buf->pages[i])
			goto nomem;
	}
	return buf;

nomem:
	while (i--)
		__free_page(buf->pages[i]);
	kfree(buf);
	return NULL;
}

void cbw_buf_free_pages(struct cbw_copy_buf *buf)
{
	unsigned int i;

	for (i = 0; i < buf->nr_pages; i++)
		__free_page(buf->pages[i]);
	kfree(buf);
}

/*
 * Copy jobs, and what their I/O needs: one buffer and one bio in reserve,
 * so that a copy can always start once another one has ended.
 */
static int cbw_snapshot_alloc_jobs(struct cbw_snapshot *s)
{
	unsigned int i;
	int r;

	s->reserve = cbw_buf_alloc_pages(CBW_COPY_BUF_PAGES, GFP_KERNEL);
	if (!s->reserve)
		return -ENOMEM;
	s->reserve->reserve = true;
	r = bioset_init(&s->bios, 1, 0, BIOSET_NEED_BVECS);
	if (r)
		return r;

	s->job_pool = kcalloc(CBW_MAX_COPY_JOBS, sizeof(*s->job_pool),
			      GFP_KERNEL);
	if (!s->job_pool)
		return -ENOMEM;
	for (i = 0; i < CBW_MAX_COPY_JOBS; i++) {
		s->job_pool[i].snap = s;
		cbw_copy_init_job(&s->job_pool[i]);
		list_add_tail(&s->job_pool[i].node, &s->free_jobs);
	}
	return 0;
}

/*
 * Frozen reads are counted per bucket of chunks, so that a write checks
 * only the buckets it touches; at most 2^CBW_FROZEN_BUCKETS_SHIFT buckets.
 */
#define CBW_FROZEN_BUCKETS_SHIFT 12

static int cbw_frozen_alloc(struct cbw_snapshot *s)
{
	unsigned int order = order_base_2(s->nr_chunks);

	s->bucket_shift = order > CBW_FROZEN_BUCKETS_SHIFT ?
			  order - CBW_FROZEN_BUCKETS_SHIFT : 0;
	s->frozen_buckets = kvcalloc(((s->nr_chunks - 1) >> s->bucket_shift) + 1,
				     sizeof(atomic_t), GFP_KERNEL);
	return s->frozen_buckets ? 0 : -ENOMEM;
}

/*
 * A new snapshot in which every chunk is to be copied and readable.  It
 * takes effect when it is published; until then nothing is copied.
 */
struct cbw_snapshot *cbw_snapshot_create(struct block_device *origin,
					 struct block_device *cow,
					 sector_t len, sector_t chunk_sectors)
{
	struct cbw_snapshot *s;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return ERR_PTR(-ENOMEM);

	s->origin = origin;
	s->cow = cow;
	s->len = len;
	s->chunk_sectors = chunk_sectors;
	s->chunk_shift = ilog2(chunk_sectors);
	s->nr_chunks = DIV_ROUND_UP_SECTOR_T(len, chunk_sectors);
	s->max_job_chunks = max_t(sector_t, 1,
				  CBW_MAX_COPY_SECTORS >> s->chunk_shift);
	s->state = DM_CBW_SNAPSHOT_ACTIVE;
	spin_lock_init(&s->lock);
	INIT_LIST_HEAD(&s->jobs);
	INIT_LIST_HEAD(&s->free_jobs);
	INIT_LIST_HEAD(&s->free_bufs);
	INIT_LIST_HEAD(&s->parked_jobs);
	INIT_LIST_HEAD(&s->frozen_reads);
	atomic_set(&s->nr_readers, 0);
	bio_list_init(&s->read_waiters);
	bio_list_init(&s->throttled);
	bio_list_init(&s->deferred);
	INIT_WORK(&s->worker, cbw_copy_worker);
	INIT_WORK(&s->event_work, cbw_copy_event);
	init_waitqueue_head(&s->jobs_wq);
	cbw_copy_init_snapshot(s);

	s->to_copy = cbw_bitmap_alloc(s->nr_chunks, true);
	s->access = cbw_bitmap_alloc(s->nr_chunks, true);
	s->settled = cbw_bitmap_alloc(s->nr_chunks, false);
	if (!s->to_copy || !s->access || !s->settled)
		goto nomem;
	if (cbw_frozen_alloc(s))
		goto nomem;
	s->nr_to_copy = s->nr_chunks;
	s->nr_accessible = s->nr_chunks;

	if (cbw_snapshot_alloc_jobs(s))
		goto nomem;
	return s;

nomem:
	cbw_snapshot_destroy(s);
	return ERR_PTR(-ENOMEM);
}

/* The snapshot must be unpublished and have no bio in flight. */
void cbw_snapshot_destroy(struct cbw_snapshot *s)
{
	struct cbw_copy_buf *buf, *tmp;

	/* Also copies that timed out: none may write to the COW device later. */
	cbw_copy_stop(s);

	list_for_each_entry_safe(buf, tmp, &s->free_bufs, node)
		cbw_buf_free_pages(buf);
	WARN_ON(!list_empty(&s->jobs));
	WARN_ON(!list_empty(&s->frozen_reads));
	if (bioset_initialized(&s->bios))
		bioset_exit(&s->bios);
	if (s->reserve)
		cbw_buf_free_pages(s->reserve);
	kfree(s->job_pool);
	kvfree(s->frozen_buckets);
	kvfree(s->settled);
	kvfree(s->access);
	kvfree(s->to_copy);
	kfree(s);
}

/*
 * Are chunks @first..@last all settled?  Called without s->lock: a chunk
 * once settled stays so.
 */
bool cbw_chunks_settled(struct cbw_snapshot *s, unsigned long first,
			unsigned long last)
{
	return find_next_zero_bit(s->settled, last + 1, first) > last;
}

/*
 * Chunks @first..@last are copied or untracked for good.  A write that
 * sees them settled must see every snapshot read of the origin that was
 * registered before: the caller issues smp_mb() first.  Under s->lock.
 */
void cbw_chunks_settle(struct cbw_snapshot *s, unsigned long first,
		       unsigned long last)
{
	bitmap_set(s->settled, first, last - first + 1);
}

/* Count @fr in (@delta 1) or out of (-1) its buckets.  Under s->lock. */
void cbw_frozen_add(struct cbw_snapshot *s, struct cbw_frozen_read *fr,
		    int delta)
{
	unsigned long b;

	for (b = fr->first >> s->bucket_shift;
	     b <= fr->last >> s->bucket_shift; b++)
		atomic_add(delta, &s->frozen_buckets[b]);
}

/*
 * Might a snapshot read be reading chunks @first..@last from the origin?
 * Called without s->lock, after the chunks were seen settled.
 */
bool cbw_frozen_any(struct cbw_snapshot *s, unsigned long first,
		    unsigned long last)
{
	unsigned long b;

	for (b = first >> s->bucket_shift; b <= last >> s->bucket_shift; b++)
		if (atomic_read(&s->frozen_buckets[b]))
			return true;
	return false;
}

/* May a snapshot reader read chunks @first..@last?  Under s->lock. */
bool cbw_chunks_accessible(struct cbw_snapshot *s, unsigned long first,
			   unsigned long last)
{
	return find_next_zero_bit(s->access, last + 1, first) > last;
}

static unsigned long cbw_bitmap_clear_counted(unsigned long *map,
					      unsigned long first,
					      unsigned long last)
{
	unsigned long bit = first, cleared = 0;

	for_each_set_bit_from(bit, map, last + 1) {
		__clear_bit(bit, map);
		cleared++;
	}
	return cleared;
}

/*
 * Snapshot discard: chunks @first..@last are no longer readable and need
 * no copy.  A copy already in flight finishes.  Called under s->lock.
 */
void cbw_chunks_drop(struct cbw_snapshot *s, unsigned long first,
		     unsigned long last)
{
	unsigned long chunk = first;

	s->nr_accessible -= cbw_bitmap_clear_counted(s->access, first, last);
	/* Pairs with smp_rmb() in cbw_write_needs_nothing(). */
	smp_mb();
	for_each_set_bit_from(chunk, s->to_copy, last + 1) {
		__clear_bit(chunk, s->to_copy);
		__set_bit(chunk, s->settled);
		s->nr_to_copy--;
	}
}

/*
 * Before the snapshot starts: only the chunks dirty in @bm (rounded out to
 * whole chunks) are copied and readable.  Called under dev->bitmaps_lock,
 * from the preresume that publishes @s afterwards: until then no bio and no
 * reader can see @s, so s->lock is not needed, and the whole-map work does
 * not run with interrupts off.  (A concurrent "dmsetup status" may show
 * the counts from before or after.)
 */
void cbw_snapshot_restrict(struct cbw_snapshot *s, struct cbw_dirty_bitmap *bm)
{
	cbw_bitmap_to_chunks(bm, s, s->to_copy);
	bitmap_copy(s->access, s->to_copy, s->nr_chunks);
	bitmap_complement(s->settled, s->to_copy, s->nr_chunks);
	s->nr_to_copy = bitmap_weight(s->to_copy, s->nr_chunks);
	s->nr_accessible = s->nr_to_copy;
}

const char *cbw_state_name(enum dm_cbw_snapshot_state state)
{
	switch (state) {
	case DM_CBW_SNAPSHOT_ACTIVE:
		return "active";
	case DM_CBW_SNAPSHOT_BROKEN:
		return "broken";
	default:
		return "none";
	}
}
