// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw copy engine: copy-before-write of guest writes.
 *
 * A guest write (or write-zeroes, or discard) to a chunk that is still to
 * be copied claims the chunk, copies its old content from the origin to
 * the same offset of the COW device, and only then goes to the origin.
 * Writes that overlap a copy in flight, or a snapshot read that is reading
 * the origin, wait on a list and are routed again by a worker when what
 * they waited for completes.  Nothing spins and no lock is held across I/O.
 *
 * The copies are made with bios of our own rather than with dm-kcopyd or
 * dm-io: both report a failed copy as error bits only, while the guest
 * write that needed the copy must fail with the error the copy got (EIO,
 * ENOSPC from a thin pool, ...).  A job reads a piece of at most 1 MiB
 * from the origin into a buffer, writes it to the COW device, and goes on
 * with the next piece.  Its buffer, sized to the job, is one the snapshot
 * kept from an earlier job, or a new one; when memory is short it comes
 * from a mempool that holds one, so at least one copy makes progress.
 *
 * When a copy fails or times out, the on_cbw_error policy decides: either
 * the guest write that needed it fails (the snapshot stays valid), or the
 * snapshot breaks and every guest write goes on without copying.
 */
#include <linux/bitmap.h>
#include <linux/slab.h>

#include "dm-cbw.h"

/* Routing, steps of the copy I/O, timeouts and events. */
static struct workqueue_struct *cbw_wq;
/*
 * Starting copies, which may wait for a buffer.  Buffers come back through
 * cbw_wq, so waiting here never holds up their return.
 */
static struct workqueue_struct *cbw_start_wq;

int cbw_copy_init(void)
{
	cbw_wq = alloc_workqueue("kcbwd", WQ_MEM_RECLAIM, 0);
	if (!cbw_wq)
		return -ENOMEM;
	cbw_start_wq = alloc_workqueue("kcbwd-start", WQ_MEM_RECLAIM, 0);
	if (!cbw_start_wq) {
		destroy_workqueue(cbw_wq);
		return -ENOMEM;
	}
	return 0;
}

void cbw_copy_exit(void)
{
	destroy_workqueue(cbw_start_wq);
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
	job->timed_out = false;
	bio_list_init(&job->waiters);
	list_move_tail(&job->node, &s->jobs);
	s->nr_jobs++;
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
 * flight over its chunks (also for one that timed out: its late read of
 * the origin must not see this write); wait for snapshot reads of its
 * chunks that are reading the origin.  Once the snapshot is broken only
 * the snapshot reads already in flight hold a write back.  Called under
 * s->lock.
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

		job = cbw_job_overlapping(s, first, last);
		if (job) {
			bio_list_add(&job->waiters, bio);
			return CBW_ROUTE_WAIT;
		}
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

static void cbw_job_arm(struct cbw_snapshot *s, struct cbw_copy_job *job);

static enum cbw_route cbw_route(struct cbw_snapshot *s, struct bio *bio)
{
	struct cbw_copy_job *job = NULL;
	enum cbw_route route;

	spin_lock_irq(&s->lock);
	route = cbw_route_write(s, bio, &job);
	spin_unlock_irq(&s->lock);

	if (route == CBW_ROUTE_COPY)
		cbw_job_arm(s, job);
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

/*
 *--------------------------------------------------------------
 * Failures
 *--------------------------------------------------------------
 */
/* Route the writes waiting for @job again.  Called under s->lock. */
static void cbw_requeue_job(struct cbw_snapshot *s, struct cbw_copy_job *job)
{
	if (job->owner) {
		bio_list_add(&s->deferred, job->owner);
		job->owner = NULL;
		queue_work(cbw_wq, &s->worker);
	}
	cbw_requeue(s, &job->waiters);
}

/*
 * The copy of @job failed with @err (or took too long).  Under
 * break_guest_write its owner is returned in @failed, to fail with @err.
 * Under break_snapshot the first failure breaks the snapshot: every write
 * waiting for any copy is routed again and goes on without copying.
 * Called under s->lock.
 */
static void cbw_copy_failed(struct cbw_snapshot *s, struct cbw_copy_job *job,
			    int err, struct bio **failed)
{
	struct cbw_copy_job *other;

	if (s->policy == CBW_BREAK_GUEST_WRITE) {
		*failed = job->owner;
		job->owner = NULL;
		return;
	}

	cbw_requeue_job(s, job);
	if (s->state != DM_CBW_SNAPSHOT_ACTIVE)
		return;
	s->state = DM_CBW_SNAPSHOT_BROKEN;
	s->error = err;
	list_for_each_entry(other, &s->jobs, node)
		cbw_requeue_job(s, other);
	cbw_requeue(s, &s->throttled);
	queue_work(cbw_wq, &s->event_work);
}

static void cbw_fail_bio(struct bio *bio, int err)
{
	cbw_bio_failed_unsent(bio);
	bio->bi_status = errno_to_blk_status(err);
	bio_endio(bio);
}

/* Tell dmsetup wait and dmeventd that the snapshot broke. */
void cbw_copy_event(struct work_struct *work)
{
	struct cbw_snapshot *s = container_of(work, struct cbw_snapshot,
					      event_work);

	DMERR("snapshot broken by a failed copy-before-write (error %d)",
	      s->error);
	dm_table_event(s->table);
}

/*
 * The copy did not finish within cbw_timeout_ms: it fails with ETIMEDOUT
 * under the policy, but its I/O goes on.  The job stays in s->jobs, its
 * chunks claimed, until that I/O has completed (cbw_job_finish()).
 */
static void cbw_job_timeout(struct work_struct *work)
{
	struct cbw_copy_job *job = container_of(to_delayed_work(work),
						struct cbw_copy_job,
						timeout_work);
	struct cbw_snapshot *s = job->snap;
	struct bio *failed = NULL;

	spin_lock_irq(&s->lock);
	job->timed_out = true;
	s->nr_timed_out++;
	cbw_copy_failed(s, job, -ETIMEDOUT, &failed);
	spin_unlock_irq(&s->lock);

	DMERR_LIMIT("copy of chunk %lu timed out", job->first);
	if (failed)
		cbw_fail_bio(failed, -ETIMEDOUT);
}

/*
 *--------------------------------------------------------------
 * Copy I/O
 *--------------------------------------------------------------
 */
static void cbw_job_endio(struct bio *bio)
{
	struct cbw_copy_job *job = bio->bi_private;

	job->status = bio->bi_status;
	queue_work(cbw_wq, &job->io_work);
}

/* Read the current piece from the origin, or write it to the COW device. */
static void cbw_job_submit(struct cbw_copy_job *job)
{
	struct cbw_snapshot *s = job->snap;
	struct bio *bio = job->bio;
	unsigned int i, left, len;

	if (job->writing)
		bio_reset(bio, s->cow, REQ_OP_WRITE);
	else
		bio_reset(bio, s->origin, REQ_OP_READ);
	bio->bi_iter.bi_sector = job->pos;
	bio->bi_end_io = cbw_job_endio;
	bio->bi_private = job;
	left = job->piece << SECTOR_SHIFT;
	for (i = 0; left; i++) {
		len = min_t(unsigned int, left, PAGE_SIZE);
		__bio_add_page(bio, job->buf->pages[i], len, 0);
		left -= len;
	}
	submit_bio(bio);
}

static void cbw_job_next_piece(struct cbw_copy_job *job)
{
	job->writing = false;
	job->piece = min_t(sector_t, job->end - job->pos,
			   CBW_MAX_COPY_SECTORS);
	cbw_job_submit(job);
}

/* A kept buffer of at least @nr_pages, or NULL. */
static struct cbw_copy_buf *cbw_buf_get_kept(struct cbw_snapshot *s,
					     unsigned int nr_pages)
{
	struct cbw_copy_buf *buf, *found = NULL;
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	list_for_each_entry(buf, &s->free_bufs, node) {
		if (buf->nr_pages >= nr_pages) {
			found = buf;
			list_del(&buf->node);
			s->nr_free_buf_pages -= buf->nr_pages;
			break;
		}
	}
	spin_unlock_irqrestore(&s->lock, flags);
	return found;
}

/* A kept buffer, a new one, or the reserve (which may wait). */
static struct cbw_copy_buf *cbw_buf_get(struct cbw_snapshot *s,
					unsigned int nr_pages)
{
	struct cbw_copy_buf *buf = cbw_buf_get_kept(s, nr_pages);

	if (!buf)
		buf = cbw_buf_alloc_pages(nr_pages, GFP_NOIO | __GFP_NORETRY |
						    __GFP_NOWARN);
	return buf ?: mempool_alloc(s->buf_pool, GFP_NOIO);
}

static void cbw_buf_put(struct cbw_snapshot *s, struct cbw_copy_buf *buf)
{
	unsigned long flags;

	if (buf->reserve) {
		mempool_free(buf, s->buf_pool);
		return;
	}
	spin_lock_irqsave(&s->lock, flags);
	if (s->nr_free_buf_pages + buf->nr_pages <= CBW_MAX_CACHED_BUF_PAGES) {
		list_add(&buf->node, &s->free_bufs);
		s->nr_free_buf_pages += buf->nr_pages;
		buf = NULL;
	}
	spin_unlock_irqrestore(&s->lock, flags);
	if (buf)
		cbw_buf_free_pages(buf);
}

/* Where the copy of @job starts and ends; the pages its pieces need. */
static unsigned int cbw_job_prepare(struct cbw_copy_job *job)
{
	struct cbw_snapshot *s = job->snap;
	sector_t largest_piece;

	job->status = BLK_STS_OK;
	job->pos = cbw_chunk_to_sector(s, job->first);
	job->end = min(cbw_chunk_to_sector(s, job->first + job->nr), s->len);
	largest_piece = min_t(sector_t, job->end - job->pos,
			      CBW_MAX_COPY_SECTORS);
	return DIV_ROUND_UP(largest_piece << SECTOR_SHIFT, PAGE_SIZE);
}

static void cbw_job_start(struct work_struct *work)
{
	struct cbw_copy_job *job = container_of(work, struct cbw_copy_job,
						start_work);
	struct cbw_snapshot *s = job->snap;

	job->buf = cbw_buf_get(s, cbw_job_prepare(job));
	job->bio = bio_alloc_bioset(NULL, job->buf->nr_pages, REQ_OP_READ,
				    GFP_NOIO, &s->bios);
	cbw_job_next_piece(job);
}

/*
 * Start the copy at once, from the caller's context, if that needs neither
 * an allocation that could wait nor a new buffer: the common case once a
 * few copies have run.  Saves a trip through the start workqueue.
 */
static bool cbw_job_start_nowait(struct cbw_copy_job *job)
{
	struct cbw_snapshot *s = job->snap;

	job->buf = cbw_buf_get_kept(s, cbw_job_prepare(job));
	if (!job->buf)
		return false;
	job->bio = bio_alloc_bioset(NULL, job->buf->nr_pages, REQ_OP_READ,
				    GFP_NOWAIT | __GFP_NOWARN, &s->bios);
	if (!job->bio) {
		cbw_buf_put(s, job->buf);
		job->buf = NULL;
		return false;
	}
	cbw_job_next_piece(job);
	return true;
}

/*
 * The copy I/O of @job is over (all of it, or up to the first error): the
 * chunks are copied, or to be copied again.  The job leaves s->jobs only
 * now, also when it timed out long ago.
 */
static void cbw_job_finish(struct cbw_copy_job *job)
{
	struct cbw_snapshot *s = job->snap;
	int err = blk_status_to_errno(job->status);
	struct bio *failed = NULL, *owner = NULL;

	/* Afterwards the timeout has run to its end or will never run. */
	cancel_delayed_work_sync(&job->timeout_work);
	bio_put(job->bio);
	job->bio = NULL;
	cbw_buf_put(s, job->buf);
	job->buf = NULL;

	if (err && !job->timed_out)
		DMERR_LIMIT("copy of chunk %lu failed: %s error %d", job->first,
			    job->writing ? "COW write" : "origin read", err);

	spin_lock_irq(&s->lock);
	s->nr_copying -= job->nr;
	if (!err && job->pos >= job->end) {
		/* Pairs with smp_rmb() in cbw_write_needs_nothing(). */
		smp_mb();
		bitmap_set(s->done, job->first, job->nr);
		s->nr_copied += job->nr;
		/* Routed from here rather than through the worker. */
		owner = job->owner;
		job->owner = NULL;
	} else {
		bitmap_set(s->to_copy, job->first, job->nr);
		s->nr_to_copy += job->nr;
		if (err && !job->timed_out) {
			s->nr_failed++;
			cbw_copy_failed(s, job, err, &failed);
		}
	}
	cbw_requeue_job(s, job);
	list_move(&job->node, &s->free_jobs);
	cbw_requeue(s, &s->throttled);
	if (!--s->nr_jobs)
		wake_up(&s->jobs_wq);
	spin_unlock_irq(&s->lock);

	if (failed)
		cbw_fail_bio(failed, err);
	/* The owner is a guest bio in flight: the snapshot outlives it. */
	if (owner && cbw_route(s, owner) == CBW_ROUTE_PROCEED)
		dm_submit_bio_remap(owner, NULL);
}

/*
 * One read or write of a piece completed.  A broken snapshot needs no
 * copies any more: the job then ends after the I/O it has in flight.
 */
static void cbw_job_io_done(struct work_struct *work)
{
	struct cbw_copy_job *job = container_of(work, struct cbw_copy_job,
						io_work);
	struct cbw_snapshot *s = job->snap;

	if (job->status || READ_ONCE(s->state) != DM_CBW_SNAPSHOT_ACTIVE) {
		cbw_job_finish(job);
		return;
	}
	if (!job->writing) {
		job->writing = true;
		cbw_job_submit(job);
		return;
	}
	job->pos += job->piece;
	if (job->pos < job->end)
		cbw_job_next_piece(job);
	else
		cbw_job_finish(job);
}

/* Start the copy of a job that has just claimed its chunks. */
static void cbw_job_arm(struct cbw_snapshot *s, struct cbw_copy_job *job)
{
	if (s->timeout)
		queue_delayed_work(cbw_wq, &job->timeout_work, s->timeout);
	if (!cbw_job_start_nowait(job))
		queue_work(cbw_start_wq, &job->start_work);
}

void cbw_copy_init_job(struct cbw_copy_job *job)
{
	INIT_WORK(&job->start_work, cbw_job_start);
	INIT_WORK(&job->io_work, cbw_job_io_done);
	INIT_DELAYED_WORK(&job->timeout_work, cbw_job_timeout);
}

/*
 * Wait until the I/O of every copy job, timed out ones too, has completed,
 * and for the work it queued.  No guest bio may be in flight.
 */
void cbw_copy_wait_jobs(struct cbw_snapshot *s)
{
	wait_event(s->jobs_wq, !READ_ONCE(s->nr_jobs));
	/* The last job woke us under s->lock: let it leave the lock. */
	spin_lock_irq(&s->lock);
	spin_unlock_irq(&s->lock);
	flush_work(&s->worker);
	flush_work(&s->event_work);
}
