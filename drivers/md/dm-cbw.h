/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cbw internal interfaces.
 *
 * A cbw device remaps guest I/O to an origin device.  While a snapshot is
 * active, the original content of a chunk is copied to a COW device (at the
 * same offset) before the chunk is first overwritten.  A cbw-access device
 * reads the point-in-time image: copied chunks from the COW device, all
 * others from the origin while guest writes to them are held back.
 */
#ifndef DM_CBW_H
#define DM_CBW_H

#include <linux/bio.h>
#include <linux/device-mapper.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <uapi/linux/dm-cbw.h>

#include "dm-cbw-compat.h"

#define DM_MSG_PREFIX "cbw"

/* At most this many copy jobs are in flight per snapshot. */
#define CBW_MAX_COPY_JOBS	64
/* One guest bio runs at most this many copy jobs at once. */
#define CBW_MAX_BIO_COPIES	8
/*
 * A copy job covers at most this many sectors, but always one chunk; a
 * larger chunk is copied in pieces of this size, by up to CBW_COPY_LANES
 * lanes of its job at once.  The lanes beyond a job's first take only
 * buffers and bios to spare, and at most CBW_MAX_EXTRA_LANES of them run
 * per snapshot.
 */
#define CBW_MAX_COPY_SECTORS	2048
#define CBW_COPY_LANES		4
#define CBW_MAX_EXTRA_LANES	16
#define CBW_COPY_BUF_PAGES	(CBW_MAX_COPY_SECTORS >> (PAGE_SHIFT - SECTOR_SHIFT))

/* What a failed copy-before-write breaks (on_cbw_error). */
enum cbw_error_policy {
	CBW_BREAK_GUEST_WRITE,	/* the guest write fails, the snapshot stays */
	CBW_BREAK_SNAPSHOT,	/* the snapshot breaks, guest writes go on */
};

struct cbw_snapshot;

/*
 * Everything that belongs to a mapped device rather than to one table:
 * the published snapshot and, later, dirty bitmaps.  Target instances of
 * successive tables attach to the same object, so it survives reloads.
 */
struct cbw_device {
	struct list_head node;		/* in the module's device list */
	struct mapped_device *md;
	refcount_t ref;

	spinlock_t lock;		/* protects the fields below */
	struct list_head targets;	/* attached cbw targets */
	struct cbw_snapshot __rcu *snap; /* published snapshot or NULL */
	u64 snap_seq;			/* sequence number of the last one */
	sector_t len;			/* length of the newest cbw target */
	sector_t chunk_sectors;		/* chunk size of the newest one */
	unsigned int logical_block_size; /* of its origin and COW device */

	wait_queue_head_t drain_wq;	/* snapshot readers leaving */

	struct mutex bitmaps_lock;	/* changes to the bitmaps */
	struct list_head bitmaps;	/* dirty bitmaps, RCU for marking */
	atomic64_t bitmap_bytes;	/* memory they take */
	/*
	 * The metadata device of the persistent bitmaps, from the first table
	 * that named one until the last table leaves (under bitmaps_lock).
	 */
	struct cbw_metadata *metadata;
};

/*
 * Per-bio data of a cbw target: what a completed write marks in the dirty
 * bitmaps, and what the copy engine keeps about a write that waits for
 * copies (under s->lock).
 */
struct cbw_bio {
	sector_t sector;
	sector_t nr_sectors;		/* 0: marks nothing */
	struct cbw_snapshot *snap;	/* the write's snapshot, or NULL */
	/* Regions of the write-intent log it is counted in, if held. */
	unsigned long intent_first;
	unsigned long intent_last;
	bool intent_held;
	unsigned long wait_start;	/* jiffies: it first waited for a copy */
	bool waited;			/* wait_start is set */
	unsigned int nr_copies;		/* copy jobs it owns */
	int copy_error;			/* first error of those */
};

static inline struct cbw_bio *cbw_bio_data(struct bio *bio)
{
	return dm_per_bio_data(bio, sizeof(struct cbw_bio));
}

/*
 * A write that dm-cbw fails before sending it to the origin (its copy
 * failed or timed out) changed nothing on the device: it marks no dirty
 * bitmap.  The copy engine calls this before it ends such a bio.
 */
static inline void cbw_bio_failed_unsent(struct bio *bio)
{
	cbw_bio_data(bio)->nr_sectors = 0;
}

/* A named dirty bitmap of a cbw device. */
struct cbw_dirty_bitmap {
	struct list_head node;		/* in dev->bitmaps */
	char name[DM_CBW_NAME_LEN];
	u64 granularity;		/* bytes per bit */
	unsigned int shift;		/* log2 of sectors per bit */
	sector_t len;			/* device length it covers */
	u64 nr_bits;
	unsigned long nr_pages;
	unsigned long **pages;		/* bits, one page at a time */
	atomic64_t count;		/* set bits */
	bool recording;			/* enabled: completed writes mark */
	unsigned int busy;		/* users that forbid changes */
	/* While frozen: records the writes since the freeze, for a backup. */
	struct cbw_dirty_bitmap __rcu *successor;

	/* Persistent bitmaps: where they are on the metadata device. */
	bool persistent;
	bool inconsistent;		/* bits lost: only remove or clear it */
	bool enabled;			/* while inconsistent: records once cleared */
	u64 generation;			/* changes when the bits are lost or reset */
	unsigned int md_slot;		/* its directory entry */
	u64 md_first_block;
	u64 md_nr_blocks;
	/* Bit 0 set when its bits changed since they were last written. */
	unsigned long md_changed;
	unsigned long *changed;		/* &md_changed, the parent's, or NULL */
};

/*
 * Pages for the pieces of a copy.  Buffers are sized to their job and kept
 * by the snapshot for the next jobs, up to this many pages, because
 * allocating (and zeroing) them on every first write costs far more than
 * the copy I/O.  A full-size buffer kept aside is the reserve that keeps
 * copies going when memory is short.
 */
#define CBW_MAX_CACHED_BUF_PAGES	(4 * CBW_COPY_BUF_PAGES)

struct cbw_copy_buf {
	struct list_head node;		/* in s->free_bufs */
	unsigned int nr_pages;
	bool reserve;			/* s->reserve */
	struct page *pages[CBW_COPY_BUF_PAGES];
};

/*
 * One stream of pieces of a copy job: it reads a piece from the origin
 * into its buffer, writes it to the COW device, and takes the next piece
 * no lane of the job has taken yet.
 */
struct cbw_copy_lane {
	struct cbw_copy_job *job;
	struct cbw_copy_buf *buf;
	struct bio *bio;
	sector_t pos;			/* start of the current piece */
	unsigned int piece;		/* sectors of the current piece */
	bool writing;			/* current piece: read or write */
	blk_status_t status;		/* of the last I/O */
	struct work_struct io_work;	/* next step after an I/O */
};

/*
 * A copy of chunks first..first+nr-1 from the origin to the COW device.  It
 * is in s->jobs from the moment it claims its chunks until its last I/O has
 * completed, even after it timed out (a "zombie" nobody waits for).
 */
struct cbw_copy_job {
	struct list_head node;		/* in flight or free */
	struct list_head park_node;	/* in s->parked_jobs */
	struct cbw_snapshot *snap;
	unsigned long first;		/* first chunk */
	unsigned long nr;		/* number of chunks */
	unsigned long start;		/* jiffies: when it claimed them */
	struct bio *owner;		/* the write that started it, or NULL */
	struct bio_list waiters;	/* other writes waiting for it */
	bool timed_out;			/* took longer than cbw_timeout_ms */

	/* Used by the copy I/O only, without s->lock. */
	spinlock_t io_lock;		/* the fields below, once lanes run */
	sector_t next;			/* first sector no lane has taken */
	sector_t end;			/* end of the copy */
	sector_t nr_copied;		/* sectors read and written */
	blk_status_t status;		/* first I/O error */
	bool failed_writing;		/* that error: COW write or origin read */
	unsigned int nr_lanes;		/* lanes with I/O to do */
	unsigned int nr_extra;		/* lanes counted in nr_extra_lanes */
	struct cbw_copy_lane lanes[CBW_COPY_LANES];
	struct work_struct start_work;	/* finds a buffer and a bio */
};

/*
 * Chunk state of one snapshot.  A chunk is
 *   to copy:   to_copy set; the next write copies it first
 *   in flight: to_copy and settled clear, a copy job covers it
 *   copied:    settled set; snapshot reads come from the COW device
 *   untracked: settled set, access clear (discarded, or not in the
 *              snapshot); writes pass without copying
 * and readable through the access device while its access bit is set.
 * A chunk that is copied or untracked is settled: it never needs a copy
 * again, so writes to it only wait for snapshot reads of the origin.
 * Access is cleared before a chunk that was not copied is settled, and is
 * never set again, so a chunk that is settled and readable is copied: no
 * bitmap of its own is needed for that (3 bits per chunk in all).
 */
struct cbw_snapshot {
	struct cbw_device *dev;
	struct block_device *origin;
	struct block_device *cow;
	u64 seq;			/* publication sequence number */

	sector_t len;
	sector_t chunk_sectors;
	unsigned int chunk_shift;
	unsigned long nr_chunks;
	unsigned long max_job_chunks;

	spinlock_t lock;		/* chunk state, jobs and lists below */
	unsigned long *to_copy;
	unsigned long *access;
	unsigned long *settled;		/* read without s->lock; only set */
	unsigned long nr_to_copy;
	unsigned long nr_copied;
	unsigned long nr_accessible;
	unsigned long nr_copying;	/* chunks in flight */
	unsigned long nr_failed;	/* copies failed by an I/O error */
	unsigned long nr_timed_out;	/* copies that took too long */
	enum dm_cbw_snapshot_state state;
	int error;			/* what broke it (negative errno) */
	enum cbw_error_policy policy;
	unsigned long timeout;		/* jiffies per copy, 0: no limit */
	struct delayed_work timeout_work;	/* finds what waited too long */
	struct dm_table *table;		/* gets an event when it breaks */
	struct work_struct event_work;

	struct list_head jobs;		/* copy jobs in flight */
	struct list_head free_jobs;
	struct cbw_copy_job *job_pool;
	unsigned int nr_jobs;		/* in s->jobs */
	wait_queue_head_t jobs_wq;	/* nr_jobs dropped to 0 */
	bool stopping;			/* suspended: no new copy I/O */
	struct cbw_copy_buf *reserve;	/* when no job holds it */
	struct list_head free_bufs;	/* kept for the next jobs */
	unsigned int nr_free_buf_pages;
	struct bio_set bios;		/* copy I/O */
	struct list_head parked_jobs;	/* waiting for a buffer or a bio */
	unsigned long nr_returns;	/* buffers and bios given back */
	unsigned int nr_extra_lanes;	/* running beyond the jobs' first */

	struct list_head frozen_reads;	/* access reads served by the origin */
	atomic_t *frozen_buckets;	/* frozen reads over each bucket */
	unsigned int bucket_shift;	/* chunks per bucket, log2 */
	struct bio_list read_waiters;	/* writes waiting for frozen reads */
	struct bio_list throttled;	/* writes waiting for a free job */
	struct bio_list deferred;	/* writes to route again */
	struct work_struct worker;

	atomic_t nr_readers;		/* access bios inside the snapshot */
};

/* An access read that reads the origin and holds back guest writes. */
struct cbw_frozen_read {
	struct list_head node;
	unsigned long first;
	unsigned long last;
};

static inline unsigned long cbw_sector_to_chunk(struct cbw_snapshot *s,
						sector_t sector)
{
	return sector >> s->chunk_shift;
}

static inline sector_t cbw_chunk_to_sector(struct cbw_snapshot *s,
					   unsigned long chunk)
{
	return (sector_t)chunk << s->chunk_shift;
}

/* dm-cbw-device.c */
struct cbw_device *cbw_device_get(struct mapped_device *md);
void cbw_device_detach(struct cbw_device *dev, struct list_head *target);
struct cbw_device *cbw_device_find(struct mapped_device *md);
void cbw_device_put(struct cbw_device *dev);
void cbw_devices_exit(void);
bool cbw_device_publish(struct cbw_device *dev, struct cbw_snapshot *snap,
			sector_t len, sector_t chunk_sectors,
			unsigned int logical_block_size);
void cbw_device_unpublish(struct cbw_device *dev, struct cbw_snapshot *snap);
int cbw_device_can_publish(struct cbw_device *dev, struct cbw_snapshot *snap);
struct cbw_snapshot *cbw_device_enter_snapshot(struct cbw_device *dev,
					       u64 *seq);
void cbw_snapshot_leave(struct cbw_snapshot *s);

/* dm-cbw-bitmap.c */
bool cbw_bitmap_name_valid(const char *name);
struct cbw_dirty_bitmap *cbw_bitmap_find(struct cbw_device *dev,
					 const char *name);
int cbw_bitmap_add(struct cbw_device *dev, const char *name,
		   u64 granularity, u32 flags);
struct cbw_dirty_bitmap *cbw_bitmap_create(const char *name, u64 granularity,
					   sector_t len);
void cbw_bitmap_free(struct cbw_dirty_bitmap *bm);
void cbw_bitmap_insert(struct cbw_device *dev, struct cbw_dirty_bitmap *bm);
void cbw_bitmap_reset(struct cbw_dirty_bitmap *bm);
void cbw_bitmap_get_block(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
			  u64 index, void *bits);
void cbw_bitmap_set_block(struct cbw_dirty_bitmap *bm, u64 index,
			  const void *bits);
void cbw_bitmap_remove(struct cbw_device *dev, struct cbw_dirty_bitmap *bm);
void cbw_bitmaps_destroy(struct cbw_device *dev);
void cbw_bitmap_mark(struct cbw_dirty_bitmap *bm, sector_t sector,
		     sector_t nr_sectors);
void cbw_bitmaps_mark_write(struct cbw_device *dev, sector_t sector,
			    sector_t nr_sectors);
void cbw_bitmap_clear(struct cbw_dirty_bitmap *bm);
bool cbw_bitmap_next_extent(struct cbw_dirty_bitmap *bm, sector_t sector,
			    sector_t *start, sector_t *end);
void cbw_bitmap_merge(struct cbw_dirty_bitmap *dst,
		      struct cbw_dirty_bitmap *src);
u64 cbw_bitmap_dirty_bytes(struct cbw_dirty_bitmap *bm);
void cbw_bitmap_to_chunks(struct cbw_dirty_bitmap *bm, struct cbw_snapshot *s,
			  unsigned long *chunks);
struct cbw_dirty_bitmap *cbw_bitmap_new_successor(struct cbw_dirty_bitmap *bm);
void cbw_bitmap_free_successor(struct cbw_dirty_bitmap *succ);
struct cbw_dirty_bitmap *cbw_bitmap_successor(struct cbw_device *dev,
					      struct cbw_dirty_bitmap *bm);
void cbw_bitmap_freeze(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
		       struct cbw_dirty_bitmap *succ);
void cbw_bitmap_thaw(struct cbw_device *dev, struct cbw_dirty_bitmap *bm,
		     bool merge);

/*
 * The metadata device of a cbw table, read through a dm-bufio client of
 * its own: what its superblock says (see <uapi/linux/dm-cbw-metadata.h>).
 */
struct cbw_metadata {
	struct list_head node;		/* in the list of attached ones */
	struct block_device *bdev;
	struct dm_bufio_client *bufio;
	struct cbw_device *dev;		/* the device it is attached to */
	u8 uuid[16];
	sector_t origin_sectors;	/* the origin it was formatted for */
	u64 nr_blocks;			/* blocks of the format */
	u64 region_sectors;		/* write-intent region size */
	u64 intent_blocks;
	u64 bitmap_block;		/* first block of the bitmap area */
	bool in_use;			/* the superblock says in use */
	void *block;			/* a block being built */
	bool dirtied;			/* buffers were dirtied since the commit */
	bool rewrite_all;		/* a write failed: write every bitmap */
	int error;			/* of the last writeback */

	/*
	 * Write-intent log (dm-cbw-intent.c), one bit per region.  The
	 * bitmaps are changed under intent_lock, except durable (cleared
	 * only under it, set by commits) and touched (set by writes).
	 */
	bool intent_on;			/* writes wait for their intent bits */
	unsigned int region_shift;	/* log2 of region_sectors */
	unsigned long nr_regions;
	unsigned long *wanted;		/* the intent area as it is to be */
	unsigned long *durable;		/* on the media: writes pass */
	unsigned long *touched;		/* written since the last checkpoint */
	unsigned long *idle;		/* a checkpoint clears these */
	unsigned long *intent_dirty;	/* intent blocks to put in the cache */
	atomic_t *inflight;		/* writes in flight per bucket */
	void *intent_block;		/* an intent block being built */
	struct mutex intent_lock;	/* commits, checkpoints, the cache */
	spinlock_t park_lock;		/* parked */
	struct bio_list parked;		/* writes waiting for a commit */
	struct work_struct commit_work;

	/* Periodic writeback, while a table that names it is live. */
	struct delayed_work writeback_work;
	bool writeback_armed;		/* under bitmaps_lock */
};

/* dm-cbw-metadata.c */
extern struct workqueue_struct *cbw_metadata_wq;
int cbw_md_put_block(struct cbw_metadata *md, void *block, u64 blocknr,
		     u32 type);
int cbw_md_write_dirty(struct cbw_metadata *md);
void cbw_md_write_failed(struct cbw_metadata *md);
void cbw_metadata_update_gate(struct cbw_device *dev);
void cbw_metadata_sync_locked(struct cbw_device *dev);
struct cbw_metadata *cbw_metadata_open(struct block_device *bdev,
				       sector_t origin_sectors, char **error);
void cbw_metadata_close(struct cbw_metadata *md);
int cbw_metadata_attach(struct cbw_device *dev, struct block_device *bdev,
			sector_t origin_sectors, char **error);
void cbw_metadata_detach(struct cbw_device *dev);
int cbw_metadata_writeback(struct cbw_device *dev);
void cbw_metadata_start_writeback(struct cbw_device *dev);
void cbw_metadata_stop_writeback(struct cbw_device *dev);
int cbw_metadata_place(struct cbw_device *dev, struct cbw_dirty_bitmap *bm);
u64 cbw_metadata_new_generation(void);
int cbw_metadata_init(void);
void cbw_metadata_exit(void);

/* dm-cbw-intent.c */
int cbw_intent_alloc(struct cbw_metadata *md);
void cbw_intent_free(struct cbw_metadata *md);
void cbw_intent_load_block(struct cbw_metadata *md, u64 index,
			   const void *bits);
void cbw_intent_mark_bitmap(struct cbw_metadata *md,
			    struct cbw_dirty_bitmap *bm);
bool cbw_intent_gate(struct cbw_metadata *md, struct bio *bio,
		     sector_t sector, sector_t nr_sectors);
void cbw_intent_end(struct cbw_metadata *md, struct bio *bio);
void cbw_intent_commit_work(struct work_struct *work);
void cbw_intent_pick_idle(struct cbw_metadata *md, bool clean);
void cbw_intent_keep_idle(struct cbw_metadata *md);
int cbw_intent_clear_idle(struct cbw_metadata *md);
void cbw_intent_quiesce(struct cbw_metadata *md);

/* Word @k of little-endian on-disk bits, as dm-cbw's bitmaps hold them. */
static inline void cbw_put_le_word(void *bits, unsigned int k,
				   unsigned long word)
{
#if BITS_PER_LONG == 64
	((__le64 *)bits)[k] = cpu_to_le64(word);
#else
	((__le32 *)bits)[k] = cpu_to_le32(word);
#endif
}

static inline unsigned long cbw_get_le_word(const void *bits, unsigned int k)
{
#if BITS_PER_LONG == 64
	return le64_to_cpu(((const __le64 *)bits)[k]);
#else
	return le32_to_cpu(((const __le32 *)bits)[k]);
#endif
}

/* dm-cbw-ctl.c */
int cbw_ctl_init(void);
void cbw_ctl_exit(void);

/* dm-cbw-chunk.c */
struct cbw_snapshot *cbw_snapshot_create(struct block_device *origin,
					 struct block_device *cow,
					 sector_t len, sector_t chunk_sectors);
void cbw_snapshot_destroy(struct cbw_snapshot *s);
struct cbw_copy_buf *cbw_buf_alloc_pages(unsigned int nr_pages, gfp_t gfp);
void cbw_buf_free_pages(struct cbw_copy_buf *buf);
void cbw_snapshot_restrict(struct cbw_snapshot *s, struct cbw_dirty_bitmap *bm);
bool cbw_chunks_accessible(struct cbw_snapshot *s, unsigned long first,
			   unsigned long last);
bool cbw_chunks_settled(struct cbw_snapshot *s, unsigned long first,
			unsigned long last);
void cbw_chunks_settle(struct cbw_snapshot *s, unsigned long first,
		       unsigned long last);
void cbw_frozen_add(struct cbw_snapshot *s, struct cbw_frozen_read *fr,
		    int delta);
bool cbw_frozen_any(struct cbw_snapshot *s, unsigned long first,
		    unsigned long last);
void cbw_chunks_drop(struct cbw_snapshot *s, unsigned long first,
		     unsigned long last);
const char *cbw_state_name(enum dm_cbw_snapshot_state state);

/* dm-cbw-copy.c */
int cbw_copy_init(void);
void cbw_copy_exit(void);
int cbw_copy_map_write(struct cbw_snapshot *s, struct bio *bio);
void cbw_copy_release_frozen(struct cbw_snapshot *s,
			     struct cbw_frozen_read *fr);
void cbw_copy_worker(struct work_struct *work);
void cbw_copy_event(struct work_struct *work);
void cbw_copy_init_job(struct cbw_copy_job *job);
void cbw_copy_init_snapshot(struct cbw_snapshot *s);
void cbw_copy_stop(struct cbw_snapshot *s);
void cbw_copy_restart(struct cbw_snapshot *s);
bool cbw_copy_idle(struct cbw_snapshot *s);

/* dm-cbw-access.c */
int cbw_access_register(void);
void cbw_access_unregister(void);

#endif /* DM_CBW_H */
