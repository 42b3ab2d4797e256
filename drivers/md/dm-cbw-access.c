// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw snapshot access: the cbw-access target.
 *
 * A cbw-access device reads the point-in-time image of a cbw device.
 * Copied chunks come from the COW device.  Other chunks come from the
 * origin, and while such a read is in flight, guest writes to its chunks
 * wait: snapshot reads never wait, guest writes wait only for snapshot
 * reads of their own chunks.  A read of a chunk that is not accessible, or
 * after the snapshot ended, fails: it never returns other data.
 */
#include <linux/blkdev.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "dm-cbw.h"

/* O_DIRECT readers see ENODATA for data that is not in the snapshot. */
#define CBW_STS_NOT_ACCESSIBLE	BLK_STS_MEDIUM
/* The device is read-only: writes fail with EOPNOTSUPP. */
#define CBW_STS_READ_ONLY	BLK_STS_NOTSUPP

struct cbw_access_c {
	dev_t cbw_devt;
	struct cbw_device *dev;
	u64 seq;		/* the snapshot this device reads; under dev->lock */
	bool bound;		/* seq is set for good */
	sector_t len;		/* of this target and of the snapshot it reads */
	sector_t chunk_sectors;	/* of the cbw table when this one was made */
	unsigned int logical_block_size;	/* likewise */
	/* The snapshot's devices, if it had one when this one was made. */
	struct dm_dev *origin;
	struct dm_dev *cow;
};

struct cbw_access_io {
	struct cbw_snapshot *snap;	/* entered snapshot or NULL */
	bool frozen;
	struct cbw_frozen_read frozen_read;
};

/*
 * The cbw device is found by its device number but not opened: a file
 * system mounted on it holds it exclusively, and dm_get_device() would
 * claim it exclusively too.  All I/O goes to the devices of the cbw
 * table, which the published snapshot keeps alive while it is read; they
 * are stacked too (cbw_access_get_devices()).
 */
static int cbw_access_find_device(struct cbw_access_c *ac, const char *path)
{
	struct mapped_device *md;
	unsigned int major, minor;
	char dummy;
	int r;

	if (sscanf(path, "%u:%u%c", &major, &minor, &dummy) == 2) {
		ac->cbw_devt = MKDEV(major, minor);
		if (MAJOR(ac->cbw_devt) != major || MINOR(ac->cbw_devt) != minor)
			return -EINVAL;
	} else {
		r = lookup_bdev(path, &ac->cbw_devt);
		if (r)
			return r;
	}

	md = dm_get_md(ac->cbw_devt);
	if (md) {
		ac->dev = cbw_device_find(md);
		dm_put(md);
	}
	return 0;
}

static int cbw_access_get_device(struct dm_target *ti, dev_t devt,
				 struct dm_dev **result)
{
	char name[24];

	snprintf(name, sizeof(name), "%u:%u", MAJOR(devt), MINOR(devt));
	return dm_get_device(ti, name, dm_table_get_mode(ti->table), result);
}

/*
 * Hold the origin and COW device of the snapshot this device reads, so
 * that their limits stack (segment and DMA limits, polling), and dmsetup
 * deps and the holders directories show them.  The cbw table has claimed
 * them with dm's common holder, so this open does not conflict with it.
 * A device made while there is no snapshot binds later, to a snapshot
 * whose devices it cannot open in the I/O path: it holds none.
 */
static int cbw_access_get_devices(struct dm_target *ti, dev_t origin,
				  dev_t cow)
{
	struct cbw_access_c *ac = ti->private;
	int r;

	if (!ac->seq)
		return 0;
	r = cbw_access_get_device(ti, origin, &ac->origin);
	if (r) {
		ti->error = "Error opening the origin device of the snapshot";
		return r;
	}
	r = cbw_access_get_device(ti, cow, &ac->cow);
	if (r) {
		ti->error = "Error opening the COW device of the snapshot";
		return r;
	}
	return 0;
}

static void cbw_access_destroy(struct dm_target *ti, struct cbw_access_c *ac)
{
	if (ac->cow)
		dm_put_device(ti, ac->cow);
	if (ac->origin)
		dm_put_device(ti, ac->origin);
	if (ac->dev)
		cbw_device_put(ac->dev);
	kfree(ac);
}

/*
 * Construct a snapshot-access mapping:
 *   cbw-access <cbw dev>
 */
static int cbw_access_ctr(struct dm_target *ti, unsigned int argc,
			  char **argv)
{
	struct cbw_access_c *ac;
	struct cbw_snapshot *snap;
	dev_t origin = 0, cow = 0;
	int r;

	if (argc != 1) {
		ti->error = "Invalid argument count";
		return -EINVAL;
	}

	ac = kzalloc(sizeof(*ac), GFP_KERNEL);
	if (!ac) {
		ti->error = "Cannot allocate cbw-access context";
		return -ENOMEM;
	}
	ti->private = ac;
	ac->len = ti->len;

	r = cbw_access_find_device(ac, argv[0]);
	if (r) {
		ti->error = "Error opening cbw device";
		goto bad;
	}
	if (!ac->dev) {
		ti->error = "Device is not a cbw device";
		r = -EINVAL;
		goto bad;
	}

	spin_lock_irq(&ac->dev->lock);
	snap = rcu_dereference_protected(ac->dev->snap,
					 lockdep_is_held(&ac->dev->lock));
	if (ac->dev->len != ti->len) {
		r = -EINVAL;
	} else if (snap) {
		ac->seq = snap->seq;
		ac->bound = true;
		origin = snap->origin->bd_dev;
		cow = snap->cow->bd_dev;
	}
	ac->chunk_sectors = ac->dev->chunk_sectors;
	ac->logical_block_size = ac->dev->logical_block_size;
	spin_unlock_irq(&ac->dev->lock);
	if (r) {
		ti->error = "Length does not match the cbw device";
		goto bad;
	}
	r = cbw_access_get_devices(ti, origin, cow);
	if (r)
		goto bad;

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->discards_supported = true;
	ti->per_io_data_size = sizeof(struct cbw_access_io);
	return 0;

bad:
	cbw_access_destroy(ti, ac);
	return r;
}

static void cbw_access_dtr(struct dm_target *ti)
{
	cbw_access_destroy(ti, ti->private);
}

static unsigned int cbw_snapshot_logical_block_size(struct cbw_snapshot *s)
{
	return max(bdev_logical_block_size(s->origin),
		   bdev_logical_block_size(s->cow));
}

/*
 * A device made while the cbw device had no snapshot binds to the first
 * snapshot it enters, if that snapshot has the geometry the device was
 * made with: the same length and chunk size (its chunk bitmaps cover every
 * sector the device can read, and discards are in its chunks) and no
 * larger logical blocks.  It never binds to another one.
 */
static bool cbw_access_bind(struct cbw_access_c *ac, struct cbw_snapshot *s)
{
	unsigned long flags;
	bool bound;

	if (s->len != ac->len || s->chunk_sectors != ac->chunk_sectors ||
	    cbw_snapshot_logical_block_size(s) > ac->logical_block_size)
		return false;

	spin_lock_irqsave(&ac->dev->lock, flags);
	if (!ac->seq) {
		ac->seq = s->seq;
		/* Pairs with smp_load_acquire() in cbw_access_enter(). */
		smp_store_release(&ac->bound, true);
	}
	bound = ac->seq == s->seq;
	spin_unlock_irqrestore(&ac->dev->lock, flags);
	return bound;
}

/* Enter the snapshot this device reads, or NULL if there is none. */
static struct cbw_snapshot *cbw_access_enter(struct cbw_access_c *ac)
{
	struct cbw_snapshot *s;
	u64 seq = 0;

	/* Pairs with smp_store_release() in cbw_access_bind(). */
	if (smp_load_acquire(&ac->bound))
		return cbw_device_enter_snapshot(ac->dev, &ac->seq);

	s = cbw_device_enter_snapshot(ac->dev, &seq);
	if (s && !cbw_access_bind(ac, s)) {
		cbw_snapshot_leave(s);
		s = NULL;
	}
	return s;
}

static int cbw_access_fail(struct bio *bio, blk_status_t status)
{
	bio->bi_status = status;
	bio_endio(bio);
	return DM_MAPIO_SUBMITTED;
}

/* Send the chunks of @bio before chunk @end to the COW or origin device. */
static int cbw_access_remap(struct cbw_snapshot *s, struct bio *bio,
			    unsigned long end, bool copied)
{
	sector_t sector = bio->bi_iter.bi_sector;

	if (cbw_chunk_to_sector(s, end) < bio_end_sector(bio))
		dm_accept_partial_bio(bio, cbw_chunk_to_sector(s, end) - sector);
	bio_set_dev(bio, copied ? s->cow : s->origin);
	return DM_MAPIO_REMAPPED;
}

/*
 * A read that starts in a copied chunk needs no lock: settled is final, a
 * chunk settled and readable is copied, and a chunk's COW data is written
 * before it is settled.  (A snapshot discard or a break racing with the
 * read may let it through, as it would with the lock taken just before
 * them.)  Returns the end of the run of copied and readable chunks from
 * @first, or @first.
 */
static unsigned long cbw_access_copied_run(struct cbw_snapshot *s,
					   unsigned long first,
					   unsigned long last)
{
	unsigned long end;

	if (READ_ONCE(s->state) != DM_CBW_SNAPSHOT_ACTIVE ||
	    !test_bit(first, s->settled))
		return first;
	end = find_next_zero_bit(s->settled, last + 1, first);
	if (find_next_zero_bit(s->access, end, first) < end)
		return first;
	return end;
}

/*
 * Serve the first run of chunks of @bio that are all copied (from the COW
 * device) or all not copied (from the origin, holding back guest writes);
 * dm core sends the rest of the bio again.
 */
static int cbw_access_map_read(struct cbw_snapshot *s, struct bio *bio,
			       struct cbw_access_io *io)
{
	sector_t sector = bio->bi_iter.bi_sector;
	unsigned long first = cbw_sector_to_chunk(s, sector);
	unsigned long last = cbw_sector_to_chunk(s, sector + bio_sectors(bio) - 1);
	unsigned long end;
	bool copied;

	end = cbw_access_copied_run(s, first, last);
	if (end > first)
		return cbw_access_remap(s, bio, end, true);

	spin_lock_irq(&s->lock);
	if (s->state != DM_CBW_SNAPSHOT_ACTIVE ||
	    !cbw_chunks_accessible(s, first, last)) {
		spin_unlock_irq(&s->lock);
		return cbw_access_fail(bio, CBW_STS_NOT_ACCESSIBLE);
	}

	/* All readable here, so settled means copied. */
	copied = test_bit(first, s->settled);
	if (copied)
		end = find_next_zero_bit(s->settled, last + 1, first);
	else
		end = find_next_bit(s->settled, last + 1, first);

	if (!copied) {
		io->frozen_read.first = first;
		io->frozen_read.last = end - 1;
		list_add_tail(&io->frozen_read.node, &s->frozen_reads);
		cbw_frozen_add(s, &io->frozen_read, 1);
		io->frozen = true;
	}
	spin_unlock_irq(&s->lock);
	return cbw_access_remap(s, bio, end, copied);
}

/*
 * Snapshot discard: the whole chunks inside the range are dropped from the
 * snapshot (not readable, never copied) and their COW space is discarded.
 */
static int cbw_access_map_discard(struct cbw_snapshot *s, struct bio *bio)
{
	sector_t start = round_up(bio->bi_iter.bi_sector, s->chunk_sectors);
	sector_t end = round_down(bio_end_sector(bio), s->chunk_sectors);

	if (end > s->len)
		end = s->len;
	if (start >= end || s->state != DM_CBW_SNAPSHOT_ACTIVE) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}

	spin_lock_irq(&s->lock);
	cbw_chunks_drop(s, cbw_sector_to_chunk(s, start),
			cbw_sector_to_chunk(s, end - 1));
	spin_unlock_irq(&s->lock);

	if (!bdev_max_discard_sectors(s->cow)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	bio_set_dev(bio, s->cow);
	bio->bi_iter.bi_sector = start;
	bio->bi_iter.bi_size = (end - start) << SECTOR_SHIFT;
	return DM_MAPIO_REMAPPED;
}

static int cbw_access_map(struct dm_target *ti, struct bio *bio)
{
	struct cbw_access_io *io = dm_per_bio_data(bio, sizeof(*io));
	struct cbw_access_c *ac = ti->private;

	io->snap = NULL;
	io->frozen = false;

	if (op_is_flush(bio->bi_opf) && !bio_sectors(bio)) {
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	if (bio_op(bio) != REQ_OP_READ && bio_op(bio) != REQ_OP_DISCARD)
		return cbw_access_fail(bio, CBW_STS_READ_ONLY);

	io->snap = cbw_access_enter(ac);
	if (!io->snap)
		return cbw_access_fail(bio, CBW_STS_NOT_ACCESSIBLE);

	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);
	/*
	 * A bio completed here goes through cbw_access_end_io(), which leaves
	 * the snapshot, before bio_endio() returns; @io may be gone after.
	 */
	if (bio_op(bio) == REQ_OP_DISCARD)
		return cbw_access_map_discard(io->snap, bio);
	return cbw_access_map_read(io->snap, bio, io);
}

static int cbw_access_end_io(struct dm_target *ti, struct bio *bio,
			     blk_status_t *error)
{
	struct cbw_access_io *io = dm_per_bio_data(bio, sizeof(*io));

	if (io->frozen)
		cbw_copy_release_frozen(io->snap, &io->frozen_read);
	if (io->snap)
		cbw_snapshot_leave(io->snap);
	io->snap = NULL;
	io->frozen = false;
	return DM_ENDIO_DONE;
}

static void cbw_access_status(struct dm_target *ti, status_type_t type,
			      unsigned int status_flags, char *result,
			      unsigned int maxlen)
{
	struct cbw_access_c *ac = ti->private;
	unsigned long accessible = 0, total = 0;
	enum dm_cbw_snapshot_state state = DM_CBW_SNAPSHOT_NONE;
	struct cbw_snapshot *s;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		s = cbw_access_enter(ac);
		if (s) {
			spin_lock_irq(&s->lock);
			state = s->state;
			accessible = s->nr_accessible;
			total = s->nr_chunks;
			spin_unlock_irq(&s->lock);
			cbw_snapshot_leave(s);
		}
		DMEMIT("%s %lu %lu", cbw_state_name(state), accessible, total);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%u:%u", MAJOR(ac->cbw_devt), MINOR(ac->cbw_devt));
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",cbw_name=%u:%u;", MAJOR(ac->cbw_devt),
		       MINOR(ac->cbw_devt));
		break;
	}
}

/*
 * The devices of the snapshot, when this device holds them; dm core
 * applies io_hints only to targets that have this method.
 */
static int cbw_access_iterate_devices(struct dm_target *ti,
				      iterate_devices_callout_fn fn,
				      void *data)
{
	struct cbw_access_c *ac = ti->private;
	int r = 0;

	if (ac->origin)
		r = fn(ti, ac->origin, 0, ti->len, data);
	if (!r && ac->cow)
		r = fn(ti, ac->cow, 0, ti->len, data);
	return r;
}

static void cbw_access_io_hints(struct dm_target *ti,
				struct queue_limits *limits)
{
	struct cbw_access_c *ac = ti->private;

	/*
	 * The block size of the cbw device: the larger one of the origin and
	 * COW device, also when no device is held.
	 */
	limits->logical_block_size = ac->logical_block_size;
	limits->physical_block_size = ac->logical_block_size;
	limits->io_min = ac->logical_block_size;
	/* A read-only image of a host-aware origin has no zones to manage. */
	cbw_limits_clear_zoned(limits);

	/* Only whole chunks can be dropped from a snapshot. */
	limits->discard_granularity = ac->chunk_sectors << SECTOR_SHIFT;
	limits->max_hw_discard_sectors = round_down(UINT_MAX >> SECTOR_SHIFT,
						    ac->chunk_sectors);
	limits->max_discard_sectors = limits->max_hw_discard_sectors;
}

static struct target_type cbw_access_target = {
	.name = DM_CBW_ACCESS_TARGET_NAME,
	.version = {1, 1, 0},
	.features = DM_TARGET_SINGLETON,
	.module = THIS_MODULE,
	.ctr = cbw_access_ctr,
	.dtr = cbw_access_dtr,
	.map = cbw_access_map,
	.end_io = cbw_access_end_io,
	.status = cbw_access_status,
	.iterate_devices = cbw_access_iterate_devices,
	.io_hints = cbw_access_io_hints,
};

int cbw_access_register(void)
{
	return dm_register_target(&cbw_access_target);
}

void cbw_access_unregister(void)
{
	dm_unregister_target(&cbw_access_target);
}
