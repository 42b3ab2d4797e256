// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw copy engine: copy-before-write of guest writes.
 *
 * A guest write (or write-zeroes, or discard) to a chunk that is still to
 * be copied claims the chunk, copies its old content from the origin to
 * the same offset of the COW device with dm-kcopyd, and only then goes to
 * the origin.  Writes that overlap a copy in flight, or a snapshot read
 * that is reading the origin, wait on a list and are routed again by a
 * worker when what they waited for completes.  Nothing spins and no lock
 * is held across I/O.
 */
#include <linux/bitmap.h>

#include "dm-cbw.h"

static struct workqueue_struct *cbw_wq;

int cbw_copy_init(void)
{
	cbw_wq = alloc_workqueue("kcbwd", WQ_MEM_RECLAIM, 0);
	return cbw_wq ? 0 : -ENOMEM;
}

void cbw_copy_exit(void)
{
	destroy_workqueue(cbw_wq);
}

static void cbw_bio_chunks(struct cbw_snapshot *s, struct bio *bio,
			   unsigned long *first, unsigned long *last)
{
	sector_t sector = bio->bi_iter.bi_sector;

	*first = cbw_sector_to_chunk(s, sector);
	*last = cbw_sector_to_chunk(s, sector + bio_sectors(bio) - 1);
}

static bool cbw_ranges_overlap(unsigned long first1, unsigned long last1,
			       unsigned long first2, unsigned long last2)
{
	return first1 <= last2 && first2 <= last1;
}

static bool cbw_frozen_overlap(struct cbw_snapshot *s, unsigned long first,
			       unsigned long last)
{
	struct cbw_frozen_read *fr;

	list_for_each_entry(fr, &s->frozen_reads, node)
		if (cbw_ranges_overlap(first, last, fr->first, fr->last))
			return true;
	return false;
}

static struct cbw_copy_job *cbw_job_overlapping(struct cbw_snapshot *s,
						unsigned long first,
						unsigned long last)
{
	struct cbw_copy_job *job;

	list_for_each_entry(job, &s->jobs, node)
		if (cbw_ranges_overlap(first, last, job->first,
				       job->first + job->nr - 1))
			return job;
	return NULL;
}

/* Claim chunks from @chunk on (at most up to @last) for a new copy job. */
static struct cbw_copy_job *cbw_job_claim(struct cbw_snapshot *s,
					  unsigned long chunk,
					  unsigned long last,
					  struct bio *owner)
{
	struct cbw_copy_job *job;
	unsigned long end;

	job = list_first_entry_or_null(&s->free_jobs, struct cbw_copy_job,
				       node);
	if (!job)
		return NULL;

	end = min(last + 1, chunk + s->max_job_chunks);
	end = find_next_zero_bit(s->to_copy, end, chunk);
	bitmap_clear(s->to_copy, chunk, end - chunk);

	job->first = chunk;
	job->nr = end - chunk;
	job->owner = owner;
	bio_list_init(&job->waiters);
	bio_list_add(&job->waiters, owner);
	list_move_tail(&job->node, &s->jobs);
	s->nr_to_copy -= job->nr;
	s->nr_copying += job->nr;
	return job;
}

enum cbw_route {
	CBW_ROUTE_PROCEED,	/* the bio may go to the origin now */
	CBW_ROUTE_WAIT,		/* the bio waits on a list */
	CBW_ROUTE_COPY,		/* the bio started a copy job and waits */
};

/*
 * Decide what a write to the origin must wait for.  In order: copy the
 * first run of its chunks that is still to be copied; wait for copies in
 * flight over its chunks; wait for snapshot reads of its chunks that are
 * reading the origin.  Called under s->lock.
 */
static enum cbw_route cbw_route_write(struct cbw_snapshot *s, struct bio *bio,
				      struct cbw_copy_job **new_job)
{
	unsigned long first, last, chunk;
	struct cbw_copy_job *job;

	cbw_bio_chunks(s, bio, &first, &last);

	if (s->state == DM_CBW_SNAPSHOT_ACTIVE) {
		chunk = find_next_bit(s->to_copy, last + 1, first);
		if (chunk <= last) {
			*new_job = cbw_job_claim(s, chunk, last, bio);
			if (*new_job)
				return CBW_ROUTE_COPY;
			bio_list_add(&s->throttled, bio);
			return CBW_ROUTE_WAIT;
		}
	}

	job = cbw_job_overlapping(s, first, last);
	if (job) {
		bio_list_add(&job->waiters, bio);
		return CBW_ROUTE_WAIT;
	}

	if (cbw_frozen_overlap(s, first, last)) {
		bio_list_add(&s->read_waiters, bio);
		return CBW_ROUTE_WAIT;
	}
	return CBW_ROUTE_PROCEED;
}

/*
 * A write whose chunks are all copied, while no snapshot read is reading
 * the origin, needs no lock.  Copied is final for a chunk, and the
 * smp_mb() before the done bits are set makes a snapshot read that was
 * registered before them visible in nr_frozen_reads here.
 */
static bool cbw_write_needs_nothing(struct cbw_snapshot *s, struct bio *bio)
{
	unsigned long first, last;

	cbw_bio_chunks(s, bio, &first, &last);
	if (find_next_bit(s->to_copy, last + 1, first) <= last)
		return false;
	if (!cbw_chunks_copied(s, first, last))
		return false;
	/* Pairs with smp_mb() in cbw_copy_done(). */
	smp_rmb();
	return !atomic_read(&s->nr_frozen_reads);
}

static void cbw_copy_done(int read_err, unsigned long write_err, void *context);

static void cbw_job_start(struct cbw_snapshot *s, struct cbw_copy_job *job)
{
	struct dm_io_region from, to;
	sector_t sector = cbw_chunk_to_sector(s, job->first);

	from.bdev = s->origin;
	from.sector = sector;
	from.count = min(cbw_chunk_to_sector(s, job->nr), s->len - sector);
	to = from;
	to.bdev = s->cow;

	dm_kcopyd_copy(s->kcopyd, &from, 1, &to, 0, cbw_copy_done, job);
}

static enum cbw_route cbw_route(struct cbw_snapshot *s, struct bio *bio)
{
	struct cbw_copy_job *job = NULL;
	enum cbw_route route;

	spin_lock_irq(&s->lock);
	route = cbw_route_write(s, bio, &job);
	spin_unlock_irq(&s->lock);

	if (route == CBW_ROUTE_COPY)
		cbw_job_start(s, job);
	return route;
}

/*
 * Map a guest write that has already been remapped to the origin (same
 * sector numbers as the snapshot's chunks).
 */
int cbw_copy_map_write(struct cbw_snapshot *s, struct bio *bio)
{
	if (cbw_write_needs_nothing(s, bio))
		return DM_MAPIO_REMAPPED;
	if (cbw_route(s, bio) == CBW_ROUTE_PROCEED)
		return DM_MAPIO_REMAPPED;
	return DM_MAPIO_SUBMITTED;
}

/* Route waiting writes again from the worker.  Called under s->lock. */
static void cbw_requeue(struct cbw_snapshot *s, struct bio_list *bios)
{
	if (bio_list_empty(bios))
		return;
	bio_list_merge(&s->deferred, bios);
	bio_list_init(bios);
	queue_work(cbw_wq, &s->worker);
}

void cbw_copy_worker(struct work_struct *work)
{
	struct cbw_snapshot *s = container_of(work, struct cbw_snapshot,
					      worker);
	struct bio_list bios;
	struct bio *bio;

	spin_lock_irq(&s->lock);
	bios = s->deferred;
	bio_list_init(&s->deferred);
	spin_unlock_irq(&s->lock);

	while ((bio = bio_list_pop(&bios)))
		if (cbw_route(s, bio) == CBW_ROUTE_PROCEED)
			dm_submit_bio_remap(bio, NULL);
}

/*
 * kcopyd completion.  On success the chunks become copied and every waiter
 * is routed again.  On failure the chunks are to be copied again: the bio
 * that started the copy fails with the origin untouched, the snapshot
 * stays valid, and other waiters retry the copy themselves.
 */
static void cbw_copy_done(int read_err, unsigned long write_err, void *context)
{
	struct cbw_copy_job *job = context;
	struct cbw_snapshot *s = job->snap;
	unsigned long first = job->first;
	struct bio *failed = NULL;
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	s->nr_copying -= job->nr;
	if (!read_err && !write_err) {
		/* Pairs with smp_rmb() in cbw_write_needs_nothing(). */
		smp_mb();
		bitmap_set(s->done, job->first, job->nr);
		s->nr_copied += job->nr;
	} else {
		bitmap_set(s->to_copy, job->first, job->nr);
		s->nr_to_copy += job->nr;
		s->nr_failed++;
		failed = job->owner;
		bio_list_pop(&job->waiters);
	}
	list_move(&job->node, &s->free_jobs);
	cbw_requeue(s, &job->waiters);
	cbw_requeue(s, &s->throttled);
	spin_unlock_irqrestore(&s->lock, flags);

	if (failed) {
		DMERR_LIMIT("copy of chunk %lu failed (%s error)", first,
			    read_err ? "origin read" : "COW write");
		bio_io_error(failed);
	}
}

/* A snapshot read of the origin ended: writes waiting for it may go on. */
void cbw_copy_release_frozen(struct cbw_snapshot *s,
			     struct cbw_frozen_read *fr)
{
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	list_del(&fr->node);
	atomic_dec(&s->nr_frozen_reads);
	cbw_requeue(s, &s->read_waiters);
	spin_unlock_irqrestore(&s->lock, flags);
}
