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
 * with the next piece; a job of several pieces runs up to CBW_COPY_LANES
 * such streams (lanes) at once, the ones beyond the first only with
 * buffers to spare.  The first lane's buffer, sized to the job, is one the
 * snapshot kept from an earlier job, or a new one; when memory is short it
 * is the snapshot's reserve buffer, so at least one copy makes progress.
 * Starting a copy never sleeps: a job that finds neither a buffer nor a
 * bio is parked until another job gives its own back, so one device's
 * stuck COW never holds up the copies of another.  One guest bio runs up to
 * CBW_MAX_BIO_COPIES jobs at once, so a large write or discard copies in
 * parallel.
 *
 * When a copy fails or times out, the on_cbw_error policy decides: either
 * the guest write that needed it fails (the snapshot stays valid), or the
 * snapshot breaks and every guest write goes on without copying.  With
 * cbw_timeout_ms, no guest write waits longer than that for copies: its own,
 * another write's, or a free job.
 *
 * A suspended target issues no I/O: postsuspend waits for every job, also
 * those that timed out, and they start no further piece once it began.
 */
#include <linux/bitmap.h>
#include <linux/slab.h>

#include "dm-cbw.h"

/* Routing, steps of the copy I/O, timeouts and events. */
static struct workqueue_struct *cbw_wq;

/*
 * A guest write waits for every step of its copy, and each step is a short
 * work item (tens of microseconds).  On a normal-priority kworker a step
 * queued on a CPU that the submitting tasks keep busy waited for the end of
 * their time slice: milliseconds per step at queue depth 32 with 4 jobs
 * (tools/bench/trace-copy).  High-priority kworkers run it next, as dm-crypt
 * does for its I/O.
 */
int cbw_copy_init(void)
{
	cbw_wq = alloc_workqueue("kcbwd", WQ_MEM_RECLAIM | WQ_HIGHPRI, 0);
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

/*
 *--------------------------------------------------------------
 * Waiting writes and their deadline
 *--------------------------------------------------------------
 */
static unsigned long cbw_timeout_period(struct cbw_snapshot *s)
{
	return max(s->timeout / 4, 1UL);
}

/* A write starts waiting for a copy.  Called under s->lock. */
static void cbw_bio_wait(struct cbw_snapshot *s, struct bio *bio)
{
	struct cbw_bio *cb = cbw_bio_data(bio);

	if (!cb->waited) {
		cb->waited = true;
		cb->wait_start = jiffies;
	}
	if (s->timeout)
		queue_delayed_work(cbw_wq, &s->timeout_work,
				   cbw_timeout_period(s));
}

static bool cbw_bio_expired(struct cbw_snapshot *s, struct bio *bio,
			    unsigned long now)
{
	struct cbw_bio *cb = cbw_bio_data(bio);

	return cb->waited && time_after_eq(now, cb->wait_start + s->timeout);
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
	job->start = jiffies;
	job->owner = owner;
	job->timed_out = false;
	bio_list_init(&job->waiters);
	list_move_tail(&job->node, &s->jobs);
	s->nr_jobs++;
	s->nr_to_copy -= job->nr;
	s->nr_copying += job->nr;
	return job;
}

/*
 * Claim jobs for the runs of chunks of @owner that are still to be copied,
 * up to CBW_MAX_BIO_COPIES of them, into @jobs.  Called under s->lock.
 */
static unsigned int cbw_claim_jobs(struct cbw_snapshot *s, struct bio *owner,
				   unsigned long first, unsigned long last,
				   struct cbw_copy_job **jobs)
{
	unsigned long chunk = first;
	unsigned int nr = 0;

	while (nr < CBW_MAX_BIO_COPIES) {
		chunk = find_next_bit(s->to_copy, last + 1, chunk);
		if (chunk > last)
			break;
		jobs[nr] = cbw_job_claim(s, chunk, last, owner);
		if (!jobs[nr])
			break;
		chunk = jobs[nr]->first + jobs[nr]->nr;
		nr++;
	}
	cbw_bio_data(owner)->nr_copies = nr;
	return nr;
}

enum cbw_route {
	CBW_ROUTE_PROCEED,	/* the bio may go to the origin now */
	CBW_ROUTE_WAIT,		/* the bio waits on a list */
	CBW_ROUTE_COPY,		/* the bio started copy jobs and waits */
};

/*
 * Decide what a write to the origin must wait for.  In order: copy the
 * runs of its chunks that are still to be copied; wait for copies in
 * flight over its chunks (also for one that timed out: its late read of
 * the origin must not see this write); wait for snapshot reads of its
 * chunks that are reading the origin.  Once the snapshot is broken only
 * the snapshot reads already in flight hold a write back.  Called under
 * s->lock.
 */
static enum cbw_route cbw_route_write(struct cbw_snapshot *s, struct bio *bio,
				      struct cbw_copy_job **jobs,
				      unsigned int *nr_jobs)
{
	unsigned long first, last;
	struct cbw_copy_job *job;

	cbw_bio_chunks(s, bio, &first, &last);

	if (s->state == DM_CBW_SNAPSHOT_ACTIVE) {
		if (find_next_bit(s->to_copy, last + 1, first) <= last) {
			cbw_bio_wait(s, bio);
			*nr_jobs = cbw_claim_jobs(s, bio, first, last, jobs);
			if (*nr_jobs)
				return CBW_ROUTE_COPY;
			bio_list_add(&s->throttled, bio);
			return CBW_ROUTE_WAIT;
		}

		job = cbw_job_overlapping(s, first, last);
		if (job) {
			cbw_bio_wait(s, bio);
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
 * A write needs no lock when its chunks are settled (copied, or not in the
 * snapshot) or the snapshot is broken, and no snapshot read is reading
 * the origin in the buckets of chunks it touches.  Chunks settle and the
 * snapshot breaks only after an smp_mb(), under s->lock: a snapshot read
 * registered before is then seen in its buckets here, and one registered
 * after never reads these chunks from the origin.
 */
static bool cbw_write_needs_nothing(struct cbw_snapshot *s, struct bio *bio)
{
	unsigned long first, last;

	cbw_bio_chunks(s, bio, &first, &last);
	if (READ_ONCE(s->state) == DM_CBW_SNAPSHOT_ACTIVE &&
	    !cbw_chunks_settled(s, first, last))
		return false;
	/* Pairs with smp_mb() in cbw_job_settle() and cbw_chunks_drop(). */
	smp_rmb();
	return !cbw_frozen_any(s, first, last);
}

static void cbw_job_arm(struct cbw_copy_job *job);

static enum cbw_route cbw_route(struct cbw_snapshot *s, struct bio *bio)
{
	struct cbw_copy_job *jobs[CBW_MAX_BIO_COPIES];
	unsigned int i, nr_jobs = 0;
	enum cbw_route route;

	spin_lock_irq(&s->lock);
	route = cbw_route_write(s, bio, jobs, &nr_jobs);
	spin_unlock_irq(&s->lock);

	/* @bio completes only once all of them have ended. */
	for (i = 0; i < nr_jobs; i++)
		cbw_job_arm(jobs[i]);
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
	cbw_frozen_add(s, fr, -1);
	cbw_requeue(s, &s->read_waiters);
	spin_unlock_irqrestore(&s->lock, flags);
}

/*
 *--------------------------------------------------------------
 * Owners, failures and timeouts
 *--------------------------------------------------------------
 */
/*
 * @job no longer holds its owner back; @err is what its copy got under
 * break_guest_write (0 otherwise).  Returns the owner when it waits for no
 * other job any more, with the first error of its copies in copy_error.
 * Called under s->lock.
 */
static struct bio *cbw_release_owner(struct cbw_copy_job *job, int err)
{
	struct bio *bio = job->owner;
	struct cbw_bio *cb;

	if (!bio)
		return NULL;
	job->owner = NULL;
	cb = cbw_bio_data(bio);
	if (err && !cb->copy_error)
		cb->copy_error = err;
	return --cb->nr_copies ? NULL : bio;
}

/* Route the owner (once free) and the waiters of @job again.  Under s->lock. */
static void cbw_requeue_job(struct cbw_snapshot *s, struct cbw_copy_job *job)
{
	struct bio *owner = cbw_release_owner(job, 0);

	if (owner) {
		bio_list_add(&s->deferred, owner);
		queue_work(cbw_wq, &s->worker);
	}
	cbw_requeue(s, &job->waiters);
}

/* @bio fails: it waits for none of its copies any more.  Under s->lock. */
static void cbw_fail_owner(struct cbw_snapshot *s, struct bio *bio, int err,
			   struct bio_list *failed)
{
	struct cbw_copy_job *job;

	list_for_each_entry(job, &s->jobs, node)
		if (job->owner == bio)
			job->owner = NULL;
	cbw_bio_data(bio)->nr_copies = 0;
	bio->bi_status = errno_to_blk_status(err);
	bio_list_add(failed, bio);
}

/* Break the snapshot: every waiting write goes on.  Under s->lock. */
static void cbw_break_snapshot(struct cbw_snapshot *s, int err)
{
	struct cbw_copy_job *job;

	if (s->state != DM_CBW_SNAPSHOT_ACTIVE)
		return;
	/* Pairs with smp_rmb() in cbw_write_needs_nothing(). */
	smp_mb();
	WRITE_ONCE(s->state, DM_CBW_SNAPSHOT_BROKEN);
	s->error = err;
	list_for_each_entry(job, &s->jobs, node)
		cbw_requeue_job(s, job);
	cbw_requeue(s, &s->throttled);
	queue_work(cbw_wq, &s->event_work);
}

/*
 * The copy of @job failed with @err (or took too long), and was counted.
 * Under break_guest_write its owner fails with @err once its other copies
 * have ended; waiters try the copy again; the first such failure raises a
 * dm event, as the snapshot stays active.  Under break_snapshot the first
 * failure breaks the snapshot.  Called under s->lock.
 */
static void cbw_copy_failed(struct cbw_snapshot *s, struct cbw_copy_job *job,
			    int err, struct bio_list *failed)
{
	struct bio *owner;

	if (s->policy == CBW_BREAK_SNAPSHOT) {
		cbw_requeue_job(s, job);
		cbw_break_snapshot(s, err);
		return;
	}
	if (s->nr_failed + s->nr_timed_out == 1)
		queue_work(cbw_wq, &s->event_work);
	owner = cbw_release_owner(job, err);
	if (owner) {
		owner->bi_status =
			errno_to_blk_status(cbw_bio_data(owner)->copy_error);
		bio_list_add(failed, owner);
	}
}

static void cbw_fail_bio(struct bio *bio, int err)
{
	cbw_bio_failed_unsent(bio);
	bio->bi_status = errno_to_blk_status(err);
	bio_endio(bio);
}

static void cbw_fail_bios(struct bio_list *failed)
{
	struct bio *bio;

	while ((bio = bio_list_pop(failed))) {
		cbw_bio_failed_unsent(bio);
		bio_endio(bio);
	}
}

/*
 * Tell dmsetup wait and dmeventd that the snapshot broke, or that a first
 * copy failed under break_guest_write.
 */
void cbw_copy_event(struct work_struct *work)
{
	struct cbw_snapshot *s = container_of(work, struct cbw_snapshot,
					      event_work);

	if (READ_ONCE(s->state) == DM_CBW_SNAPSHOT_BROKEN)
		DMERR("snapshot broken by a failed copy-before-write (error %d)",
		      s->error);
	dm_table_event(s->table);
}

/* Move the writes of @bios that waited too long to @failed. */
static void cbw_expire_list(struct cbw_snapshot *s, struct bio_list *bios,
			    unsigned long now, struct bio_list *failed)
{
	struct bio_list keep;
	struct bio *bio;

	bio_list_init(&keep);
	while ((bio = bio_list_pop(bios))) {
		if (cbw_bio_expired(s, bio, now)) {
			bio->bi_status = BLK_STS_TIMEOUT;
			bio_list_add(failed, bio);
		} else {
			bio_list_add(&keep, bio);
		}
	}
	*bios = keep;
}

/* Under break_guest_write, writes that waited too long fail. */
static void cbw_expire_writes(struct cbw_snapshot *s, unsigned long now,
			      struct bio_list *failed)
{
	struct cbw_copy_job *job;

	list_for_each_entry(job, &s->jobs, node) {
		cbw_expire_list(s, &job->waiters, now, failed);
		if (job->owner && cbw_bio_expired(s, job->owner, now))
			cbw_fail_owner(s, job->owner, -ETIMEDOUT, failed);
	}
	cbw_expire_list(s, &s->throttled, now, failed);
}

/*
 * Runs every quarter of cbw_timeout_ms while copies are in flight or
 * writes wait.  A copy that takes longer than that times out (it fails
 * under the policy, but its I/O goes on: the job stays in s->jobs, its
 * chunks claimed, until that I/O has completed), and so does every write
 * that waited that long.
 */
static void cbw_copy_timeout(struct work_struct *work)
{
	struct cbw_snapshot *s = container_of(to_delayed_work(work),
					      struct cbw_snapshot,
					      timeout_work);
	unsigned long now = jiffies;
	struct cbw_copy_job *job;
	struct bio_list failed;
	bool again;

	bio_list_init(&failed);
	spin_lock_irq(&s->lock);
	list_for_each_entry(job, &s->jobs, node) {
		if (job->timed_out ||
		    time_before(now, job->start + s->timeout))
			continue;
		job->timed_out = true;
		s->nr_timed_out++;
		DMERR_LIMIT("copy of chunk %lu timed out", job->first);
		cbw_copy_failed(s, job, -ETIMEDOUT, &failed);
	}
	if (s->state == DM_CBW_SNAPSHOT_ACTIVE &&
	    s->policy == CBW_BREAK_GUEST_WRITE)
		cbw_expire_writes(s, now, &failed);
	again = s->nr_jobs || !bio_list_empty(&s->throttled);
	if (again)
		queue_delayed_work(cbw_wq, &s->timeout_work,
				   cbw_timeout_period(s));
	spin_unlock_irq(&s->lock);

	cbw_fail_bios(&failed);
}

/*
 *--------------------------------------------------------------
 * Copy I/O
 *--------------------------------------------------------------
 */
static void cbw_lane_endio(struct bio *bio)
{
	struct cbw_copy_lane *lane = bio->bi_private;

	lane->status = bio->bi_status;
	queue_work(cbw_wq, &lane->io_work);
}

/* Read the piece of @lane from the origin, or write it to the COW device. */
static void cbw_lane_submit(struct cbw_copy_lane *lane)
{
	struct cbw_snapshot *s = lane->job->snap;
	struct bio *bio = lane->bio;
	unsigned int i, left, len;

	if (lane->writing)
		bio_reset(bio, s->cow, REQ_OP_WRITE);
	else
		bio_reset(bio, s->origin, REQ_OP_READ);
	bio->bi_iter.bi_sector = lane->pos;
	bio->bi_end_io = cbw_lane_endio;
	bio->bi_private = lane;
	left = lane->piece << SECTOR_SHIFT;
	for (i = 0; left; i++) {
		len = min_t(unsigned int, left, PAGE_SIZE);
		__bio_add_page(bio, lane->buf->pages[i], len, 0);
		left -= len;
	}
	submit_bio(bio);
}

/* A kept buffer of at least @nr_pages, or NULL.  Called under s->lock. */
static struct cbw_copy_buf *__cbw_buf_get_kept(struct cbw_snapshot *s,
					       unsigned int nr_pages)
{
	struct cbw_copy_buf *buf;

	list_for_each_entry(buf, &s->free_bufs, node) {
		if (buf->nr_pages >= nr_pages) {
			list_del(&buf->node);
			s->nr_free_buf_pages -= buf->nr_pages;
			return buf;
		}
	}
	return NULL;
}

static struct cbw_copy_buf *cbw_buf_get_kept(struct cbw_snapshot *s,
					     unsigned int nr_pages)
{
	struct cbw_copy_buf *buf;
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	buf = __cbw_buf_get_kept(s, nr_pages);
	spin_unlock_irqrestore(&s->lock, flags);
	return buf;
}

/* The reserve buffer, if no job holds it.  Called under s->lock. */
static struct cbw_copy_buf *cbw_buf_get_reserve(struct cbw_snapshot *s)
{
	struct cbw_copy_buf *buf = s->reserve;

	s->reserve = NULL;
	return buf;
}

static void cbw_buf_put(struct cbw_snapshot *s, struct cbw_copy_buf *buf)
{
	unsigned long flags;

	spin_lock_irqsave(&s->lock, flags);
	if (buf->reserve) {
		s->reserve = buf;
		buf = NULL;
	} else if (s->nr_free_buf_pages + buf->nr_pages <=
		   CBW_MAX_CACHED_BUF_PAGES) {
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
	job->next = cbw_chunk_to_sector(s, job->first);
	job->end = min(cbw_chunk_to_sector(s, job->first + job->nr), s->len);
	job->nr_copied = 0;
	job->nr_lanes = 0;
	job->nr_extra = 0;
	largest_piece = min_t(sector_t, job->end - job->next,
			      CBW_MAX_COPY_SECTORS);
	return DIV_ROUND_UP(largest_piece << SECTOR_SHIFT, PAGE_SIZE);
}

/* A bio for the pieces of @lane, without waiting. */
static bool cbw_lane_get_bio(struct cbw_copy_lane *lane)
{
	struct cbw_snapshot *s = lane->job->snap;

	lane->bio = bio_alloc_bioset(NULL, lane->buf->nr_pages, REQ_OP_READ,
				     GFP_NOWAIT | __GFP_NOWARN, &s->bios);
	if (lane->bio)
		return true;
	cbw_buf_put(s, lane->buf);
	lane->buf = NULL;
	return false;
}

/*
 * A buffer and a bio for the first lane of @job without waiting: a kept
 * buffer, a new one, or the reserve.  Failing that, the job is parked and
 * started again when another job gives a buffer and a bio back; the count
 * of returns tells whether one came back while we looked.
 */
static bool cbw_job_get_resources(struct cbw_copy_job *job,
				  unsigned int nr_pages)
{
	struct cbw_copy_lane *lane = &job->lanes[0];
	struct cbw_snapshot *s = job->snap;
	unsigned long returns;
	bool parked = false;

	spin_lock_irq(&s->lock);
	returns = s->nr_returns;
	lane->buf = __cbw_buf_get_kept(s, nr_pages);
	spin_unlock_irq(&s->lock);
	if (!lane->buf)
		lane->buf = cbw_buf_alloc_pages(nr_pages, GFP_NOIO |
						__GFP_NORETRY | __GFP_NOWARN);
	if (!lane->buf) {
		spin_lock_irq(&s->lock);
		lane->buf = cbw_buf_get_reserve(s);
		spin_unlock_irq(&s->lock);
	}
	if (lane->buf && cbw_lane_get_bio(lane))
		return true;

	spin_lock_irq(&s->lock);
	if (returns == s->nr_returns) {
		list_add_tail(&job->park_node, &s->parked_jobs);
		parked = true;
	}
	spin_unlock_irq(&s->lock);
	if (!parked)
		queue_work(cbw_wq, &job->start_work);
	return false;
}

/* Reserve up to @want extra lanes of the snapshot's budget for @job. */
static unsigned int cbw_job_reserve_extra(struct cbw_copy_job *job,
					  unsigned int want)
{
	struct cbw_snapshot *s = job->snap;

	spin_lock_irq(&s->lock);
	want = min(want, CBW_MAX_EXTRA_LANES - s->nr_extra_lanes);
	s->nr_extra_lanes += want;
	spin_unlock_irq(&s->lock);
	job->nr_extra = want;
	return want;
}

/* Give back the extra lanes of @job's budget.  Called under s->lock. */
static void cbw_job_release_extra(struct cbw_copy_job *job)
{
	job->snap->nr_extra_lanes -= job->nr_extra;
	job->nr_extra = 0;
}

/* @job runs only @nr of the extra lanes it reserved. */
static void cbw_job_shrink_extra(struct cbw_copy_job *job, unsigned int nr)
{
	struct cbw_snapshot *s = job->snap;

	spin_lock_irq(&s->lock);
	s->nr_extra_lanes -= job->nr_extra - nr;
	job->nr_extra = nr;
	spin_unlock_irq(&s->lock);
}

/*
 * Lanes beyond the first, for a copy of several pieces, with buffers and
 * bios to spare only: a kept buffer or, if @may_alloc, a new one that needs
 * no reclaim; never the reserve, so they cannot hold up another job's first
 * lane for long.  Returns how many lanes @job runs.
 */
static unsigned int cbw_job_add_lanes(struct cbw_copy_job *job,
				      unsigned int nr_pages, bool may_alloc)
{
	sector_t pieces = DIV_ROUND_UP(job->end - job->next,
				       CBW_MAX_COPY_SECTORS);
	unsigned int nr = 1, extra;
	struct cbw_copy_lane *lane;

	if (pieces < 2)
		return 1;
	extra = cbw_job_reserve_extra(job, min_t(sector_t, pieces,
						 CBW_COPY_LANES) - 1);
	for (; nr <= extra; nr++) {
		lane = &job->lanes[nr];
		lane->buf = cbw_buf_get_kept(job->snap, nr_pages);
		if (!lane->buf && may_alloc)
			lane->buf = cbw_buf_alloc_pages(nr_pages, GFP_NOIO |
							__GFP_NORETRY |
							__GFP_NOWARN);
		if (!lane->buf || !cbw_lane_get_bio(lane))
			break;
	}
	if (nr - 1 < extra)
		cbw_job_shrink_extra(job, nr - 1);
	return nr;
}

static void cbw_job_finish(struct cbw_copy_job *job);

/*
 * Once the target is suspended no guest bio is in flight, so every job
 * left is one that timed out or lost its writes: it starts no more I/O.
 */
static bool cbw_job_stopped(struct cbw_copy_job *job)
{
	return READ_ONCE(job->snap->stopping);
}

/* @lane has no piece left to copy: the last lane to end ends the job. */
static void cbw_lane_end(struct cbw_copy_lane *lane)
{
	struct cbw_copy_job *job = lane->job;
	bool last;

	spin_lock(&job->io_lock);
	last = !--job->nr_lanes;
	spin_unlock(&job->io_lock);
	if (last)
		cbw_job_finish(job);
}

/* Take the next piece no lane has taken, unless the copy failed. */
static bool cbw_lane_take_piece(struct cbw_copy_lane *lane)
{
	struct cbw_copy_job *job = lane->job;
	bool taken = false;

	spin_lock(&job->io_lock);
	if (job->next < job->end && job->status == BLK_STS_OK) {
		lane->pos = job->next;
		lane->piece = min_t(sector_t, job->end - job->next,
				    CBW_MAX_COPY_SECTORS);
		job->next += lane->piece;
		taken = true;
	}
	spin_unlock(&job->io_lock);
	return taken;
}

static void cbw_lane_next_piece(struct cbw_copy_lane *lane)
{
	if (cbw_job_stopped(lane->job) || !cbw_lane_take_piece(lane)) {
		cbw_lane_end(lane);
		return;
	}
	lane->writing = false;
	cbw_lane_submit(lane);
}

/*
 * Start the first @nr_lanes lanes of @job, which have their buffers and
 * bios.  The count is set first, so that no lane that ends early can end
 * the job while another is yet to start.
 */
static void cbw_job_run(struct cbw_copy_job *job, unsigned int nr_lanes)
{
	unsigned int i;

	job->nr_lanes = nr_lanes;
	for (i = 0; i < nr_lanes; i++)
		cbw_lane_next_piece(&job->lanes[i]);
}

static void cbw_job_start(struct work_struct *work)
{
	struct cbw_copy_job *job = container_of(work, struct cbw_copy_job,
						start_work);
	unsigned int nr_pages = cbw_job_prepare(job);

	if (cbw_job_stopped(job)) {
		job->status = BLK_STS_AGAIN;
		cbw_job_finish(job);
		return;
	}
	if (cbw_job_get_resources(job, nr_pages))
		cbw_job_run(job, cbw_job_add_lanes(job, nr_pages, true));
}

/*
 * Start the copy at once, from the caller's context, if that needs neither
 * an allocation that could wait nor a new buffer: the common case once a
 * few copies have run.  Saves a trip through the workqueue.
 */
static bool cbw_job_start_nowait(struct cbw_copy_job *job)
{
	unsigned int nr_pages = cbw_job_prepare(job);
	struct cbw_copy_lane *lane = &job->lanes[0];

	lane->buf = cbw_buf_get_kept(job->snap, nr_pages);
	if (!lane->buf || !cbw_lane_get_bio(lane))
		return false;
	cbw_job_run(job, cbw_job_add_lanes(job, nr_pages, false));
	return true;
}

/*
 * Chunks of a copy that did not complete are to be copied again, unless a
 * snapshot discard dropped them meanwhile.  Called under s->lock.
 */
static void cbw_job_unclaim(struct cbw_snapshot *s, struct cbw_copy_job *job)
{
	unsigned long chunk;

	for (chunk = job->first; chunk < job->first + job->nr; chunk++) {
		if (test_bit(chunk, s->access)) {
			__set_bit(chunk, s->to_copy);
			s->nr_to_copy++;
		} else {
			/* Dropped while in flight: untracked now. */
			__set_bit(chunk, s->settled);
		}
	}
}

/*
 * The chunks of @job are copied, or back to be copied (or untracked).
 * Under s->lock.
 */
static void cbw_job_settle(struct cbw_snapshot *s, struct cbw_copy_job *job,
			   bool copied)
{
	/* Pairs with smp_rmb() in cbw_write_needs_nothing(). */
	smp_mb();
	if (!copied) {
		cbw_job_unclaim(s, job);
		return;
	}
	cbw_chunks_settle(s, job->first, job->first + job->nr - 1);
	s->nr_copied += job->nr;
}

/* A buffer and a bio came back: start a parked job.  Under s->lock. */
static void cbw_job_unpark(struct cbw_snapshot *s)
{
	struct cbw_copy_job *job;

	s->nr_returns++;
	job = list_first_entry_or_null(&s->parked_jobs, struct cbw_copy_job,
				       park_node);
	if (!job)
		return;
	list_del(&job->park_node);
	queue_work(cbw_wq, &job->start_work);
}

/* Give back the buffers and bios of @job's lanes; how many lanes had them. */
static unsigned int cbw_job_put_lanes(struct cbw_copy_job *job)
{
	struct cbw_copy_lane *lane;
	unsigned int nr = 0;

	for (lane = job->lanes; lane < job->lanes + CBW_COPY_LANES; lane++) {
		if (lane->bio)
			bio_put(lane->bio);
		lane->bio = NULL;
		if (!lane->buf)
			continue;
		cbw_buf_put(job->snap, lane->buf);
		lane->buf = NULL;
		nr++;
	}
	return nr;
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
	sector_t len = job->end - cbw_chunk_to_sector(s, job->first);
	bool copied = job->status == BLK_STS_OK && job->nr_copied == len;
	struct bio *owner = NULL;
	struct bio_list failed;
	unsigned int returned;

	bio_list_init(&failed);
	returned = max(cbw_job_put_lanes(job), 1U);
	if (err && job->status != BLK_STS_AGAIN && !job->timed_out)
		DMERR_LIMIT("copy of chunk %lu failed: %s error %d", job->first,
			    job->failed_writing ? "COW write" : "origin read",
			    err);

	spin_lock_irq(&s->lock);
	s->nr_copying -= job->nr;
	cbw_job_settle(s, job, copied);
	if (copied) {
		/* Routed from here rather than through the worker. */
		owner = cbw_release_owner(job, 0);
	} else if (err && job->status != BLK_STS_AGAIN && !job->timed_out) {
		s->nr_failed++;
		cbw_copy_failed(s, job, err, &failed);
	}
	cbw_requeue_job(s, job);
	cbw_job_release_extra(job);
	list_move(&job->node, &s->free_jobs);
	cbw_requeue(s, &s->throttled);
	while (returned--)
		cbw_job_unpark(s);
	if (!--s->nr_jobs)
		wake_up(&s->jobs_wq);
	spin_unlock_irq(&s->lock);

	cbw_fail_bios(&failed);
	/* The owner is a guest bio in flight: the snapshot outlives it. */
	if (owner && cbw_bio_data(owner)->copy_error) {
		cbw_fail_bio(owner, cbw_bio_data(owner)->copy_error);
		return;
	}
	if (owner && cbw_route(s, owner) == CBW_ROUTE_PROCEED)
		dm_submit_bio_remap(owner, NULL);
}

/* The first error of the copy: no lane takes a further piece. */
static void cbw_lane_failed(struct cbw_copy_lane *lane)
{
	struct cbw_copy_job *job = lane->job;

	spin_lock(&job->io_lock);
	if (job->status == BLK_STS_OK) {
		job->status = lane->status;
		job->failed_writing = lane->writing;
	}
	spin_unlock(&job->io_lock);
}

/*
 * One read or write of a piece completed.  A broken snapshot needs no
 * copies any more, and a suspended target starts no I/O: the lane then
 * ends after the I/O it had in flight.
 */
static void cbw_lane_io_done(struct work_struct *work)
{
	struct cbw_copy_lane *lane = container_of(work, struct cbw_copy_lane,
						  io_work);
	struct cbw_copy_job *job = lane->job;

	if (lane->status)
		cbw_lane_failed(lane);
	if (lane->status ||
	    READ_ONCE(job->snap->state) != DM_CBW_SNAPSHOT_ACTIVE) {
		cbw_lane_end(lane);
		return;
	}
	if (!lane->writing) {
		lane->writing = true;
		cbw_lane_submit(lane);
		return;
	}
	spin_lock(&job->io_lock);
	job->nr_copied += lane->piece;
	spin_unlock(&job->io_lock);
	cbw_lane_next_piece(lane);
}

/* Start the copy of a job that has just claimed its chunks. */
static void cbw_job_arm(struct cbw_copy_job *job)
{
	if (!cbw_job_start_nowait(job))
		queue_work(cbw_wq, &job->start_work);
}

void cbw_copy_init_job(struct cbw_copy_job *job)
{
	unsigned int i;

	spin_lock_init(&job->io_lock);
	INIT_LIST_HEAD(&job->park_node);
	INIT_WORK(&job->start_work, cbw_job_start);
	for (i = 0; i < CBW_COPY_LANES; i++) {
		job->lanes[i].job = job;
		INIT_WORK(&job->lanes[i].io_work, cbw_lane_io_done);
	}
}

void cbw_copy_init_snapshot(struct cbw_snapshot *s)
{
	INIT_DELAYED_WORK(&s->timeout_work, cbw_copy_timeout);
}

/*
 * The target is suspended: no guest bio is in flight, so only copies that
 * timed out (or lost their writes when the snapshot broke) can be left.
 * They start no further piece; wait until their I/O has completed, and
 * for the work it queued.  A COW device that does not answer makes this
 * wait until it does.
 */
void cbw_copy_stop(struct cbw_snapshot *s)
{
	WRITE_ONCE(s->stopping, true);
	wait_event(s->jobs_wq, !READ_ONCE(s->nr_jobs));
	/* The last job woke us under s->lock: let it leave the lock. */
	spin_lock_irq(&s->lock);
	spin_unlock_irq(&s->lock);
	flush_work(&s->worker);
	flush_work(&s->event_work);
	cancel_delayed_work_sync(&s->timeout_work);
}

/* The same table resumes: copies may start again. */
void cbw_copy_restart(struct cbw_snapshot *s)
{
	WRITE_ONCE(s->stopping, false);
}

/* Has the snapshot no copy job left? */
bool cbw_copy_idle(struct cbw_snapshot *s)
{
	return !READ_ONCE(s->nr_jobs);
}
