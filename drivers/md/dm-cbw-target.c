// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw: copy-before-write target.
 *
 * The cbw target remaps guest I/O to an origin device.  A table that names
 * a COW device starts a snapshot when it is first resumed; until the table
 * is replaced, the original content of each chunk is copied to the COW
 * device before the chunk is first overwritten.  The point-in-time image is
 * read through a cbw-access device (dm-cbw-access.c).
 */
#include <linux/blkdev.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "dm-cbw.h"

/* Chunks larger than this make copy-before-write latency unreasonable. */
#define CBW_MAX_CHUNK_SECTORS	BIT(21)
/*
 * The chunk bitmaps of a snapshot are handled with the bitmap helpers,
 * whose sizes and offsets are (unsigned) int in 6.1: a larger count would
 * be cut modulo 2^32 and leave chunks unprotected.  This also keeps each
 * bitmap's kvcalloc() below INT_MAX bytes, and every chunk index within an
 * unsigned long on 32-bit kernels.
 */
#define CBW_MAX_CHUNKS		INT_MAX

struct cbw_c {
	struct dm_target *ti;
	struct cbw_device *dev;
	struct list_head dev_node;	/* in dev->targets */
	struct dm_dev *origin;
	struct dm_dev *cow;		/* NULL: no snapshot */
	sector_t chunk_sectors;
	struct cbw_snapshot *snap;	/* NULL: no snapshot */
	bool started;			/* the snapshot was published */
	/* Restricts the snapshot; busy until the snapshot starts. */
	struct cbw_dirty_bitmap *snap_bitmap;
	char snap_bitmap_name[DM_CBW_NAME_LEN];
	/* Frozen when the snapshot starts; busy until then. */
	struct cbw_dirty_bitmap *freeze_bitmap;
	struct cbw_dirty_bitmap *successor;	/* allocated at load */
	char freeze_bitmap_name[DM_CBW_NAME_LEN];
	enum cbw_error_policy policy;	/* on_cbw_error */
	unsigned int timeout_ms;	/* cbw_timeout_ms, 0: no limit */
	bool policy_set;
	bool timeout_set;
	const char *metadata_path;	/* metadata_dev, during the ctr */
	struct dm_dev *metadata_dev;	/* NULL: no metadata device */
};

/*
 *--------------------------------------------------------------
 * Constructor and destructor
 *--------------------------------------------------------------
 */
static int cbw_parse_chunk_size(struct cbw_c *c, const char *arg,
				char **error)
{
	unsigned long long chunk;
	char dummy;

	if (sscanf(arg, "%llu%c", &chunk, &dummy) != 1) {
		*error = "Invalid chunk size";
		return -EINVAL;
	}
	if (chunk < DM_CBW_MIN_CHUNK_SECTORS || !is_power_of_2(chunk)) {
		*error = "Chunk size must be a power of 2 and at least 8 sectors";
		return -EINVAL;
	}
	if (chunk > CBW_MAX_CHUNK_SECTORS) {
		*error = "Chunk size is larger than 1 GiB";
		return -EINVAL;
	}
	c->chunk_sectors = chunk;
	return 0;
}

static int cbw_open_devices(struct cbw_c *c, char **argv)
{
	struct dm_target *ti = c->ti;
	int r;

	r = dm_get_device(ti, argv[0], dm_table_get_mode(ti->table),
			  &c->origin);
	if (r) {
		ti->error = "Error opening origin device";
		return r;
	}
	if (!strcmp(argv[1], DM_CBW_NO_COW))
		return 0;

	r = dm_get_device(ti, argv[1], dm_table_get_mode(ti->table), &c->cow);
	if (r) {
		ti->error = "Error opening COW device";
		return r;
	}
	if (c->cow->bdev == c->origin->bdev) {
		ti->error = "COW device must differ from the origin device";
		return -EINVAL;
	}
	return 0;
}

static bool cbw_chunk_fits_block(struct cbw_c *c, struct dm_dev *d)
{
	return !d || bdev_logical_block_size(d->bdev) >> SECTOR_SHIFT <=
		     c->chunk_sectors;
}

/*
 * A copy ends at the end of the target: its last piece must be whole
 * logical blocks of the COW device, or every write to the last chunk
 * fails.  dm checks the origin too, but with a message that does not
 * name the target, and for a reload only at resume.
 */
static bool cbw_len_fits_block(struct cbw_c *c, struct dm_dev *d)
{
	return !d || IS_ALIGNED(c->ti->len,
				bdev_logical_block_size(d->bdev) >> SECTOR_SHIFT);
}

static int cbw_check_devices(struct cbw_c *c)
{
	struct dm_target *ti = c->ti;

	if (!cbw_chunk_fits_block(c, c->origin) ||
	    !cbw_chunk_fits_block(c, c->cow)) {
		ti->error =
		    "Chunk size is smaller than a logical block of the origin or COW device";
		return -EINVAL;
	}
	if (!cbw_len_fits_block(c, c->origin) ||
	    !cbw_len_fits_block(c, c->cow)) {
		ti->error =
		    "Target length is not whole logical blocks of the origin or COW device";
		return -EINVAL;
	}
	if (c->cow && DIV_ROUND_UP_SECTOR_T(ti->len, c->chunk_sectors) >
		      CBW_MAX_CHUNKS) {
		ti->error = "Too many chunks: increase the chunk size";
		return -EINVAL;
	}
	if (bdev_nr_sectors(c->origin->bdev) < ti->len) {
		ti->error = "Origin device is smaller than the target";
		return -EINVAL;
	}
	if (c->cow && bdev_nr_sectors(c->cow->bdev) < ti->len) {
		ti->error = "COW device is smaller than the target";
		return -EINVAL;
	}
	return 0;
}

/* The value of an optional argument, or NULL when its key came last. */
static const char *cbw_shift_value(struct dm_arg_set *as, unsigned int *argc)
{
	if (!*argc)
		return NULL;
	(*argc)--;
	return dm_shift_arg(as);
}

/* snapshot_bitmap <name> or freeze_bitmap <name>, into @name. */
static int cbw_parse_bitmap_arg(char *name, struct dm_arg_set *as,
				unsigned int *argc, char **error)
{
	const char *arg = cbw_shift_value(as, argc);

	if (!arg) {
		*error = "Bitmap argument needs a bitmap name";
		return -EINVAL;
	}
	if (!cbw_bitmap_name_valid(arg)) {
		*error = "Invalid bitmap name";
		return -EINVAL;
	}
	strscpy(name, arg, DM_CBW_NAME_LEN);
	return 0;
}

static const char *cbw_policy_name(enum cbw_error_policy policy)
{
	return policy == CBW_BREAK_SNAPSHOT ? "break_snapshot" :
					      "break_guest_write";
}

/* on_cbw_error break_guest_write|break_snapshot */
static int cbw_parse_policy(struct cbw_c *c, struct dm_arg_set *as,
			    unsigned int *argc, char **error)
{
	const char *arg = cbw_shift_value(as, argc);

	if (arg && !strcasecmp(arg, "break_guest_write")) {
		c->policy = CBW_BREAK_GUEST_WRITE;
	} else if (arg && !strcasecmp(arg, "break_snapshot")) {
		c->policy = CBW_BREAK_SNAPSHOT;
	} else {
		*error = "Invalid on_cbw_error policy";
		return -EINVAL;
	}
	c->policy_set = true;
	return 0;
}

/* cbw_timeout_ms <milliseconds> */
static int cbw_parse_timeout(struct cbw_c *c, struct dm_arg_set *as,
			     unsigned int *argc, char **error)
{
	const char *arg = cbw_shift_value(as, argc);
	unsigned int ms;

	if (!arg || kstrtouint(arg, 10, &ms)) {
		*error = "Invalid cbw_timeout_ms";
		return -EINVAL;
	}
	c->timeout_ms = ms;
	c->timeout_set = true;
	return 0;
}

/* metadata_dev <dev>: opened once all arguments are parsed. */
static int cbw_parse_metadata_dev(struct cbw_c *c, struct dm_arg_set *as,
				  unsigned int *argc, char **error)
{
	const char *arg = cbw_shift_value(as, argc);

	if (!arg) {
		*error = "metadata_dev needs a device";
		return -EINVAL;
	}
	c->metadata_path = arg;
	return 0;
}

static int cbw_parse_optional_arg(struct cbw_c *c, const char *arg,
				  struct dm_arg_set *as, unsigned int *argc,
				  char **error)
{
	char *no_cow;
	bool dup;
	int r;

	if (!strcasecmp(arg, "metadata_dev")) {
		dup = c->metadata_path;
		r = cbw_parse_metadata_dev(c, as, argc, error);
		if (!r && dup) {
			*error = "Duplicate optional argument";
			return -EINVAL;
		}
		return r;
	}

	/* The other optional arguments are about the snapshot: need a COW. */
	if (!strcasecmp(arg, "snapshot_bitmap")) {
		dup = c->snap_bitmap_name[0];
		r = cbw_parse_bitmap_arg(c->snap_bitmap_name, as, argc, error);
		no_cow = "snapshot_bitmap needs a COW device";
	} else if (!strcasecmp(arg, "freeze_bitmap")) {
		dup = c->freeze_bitmap_name[0];
		r = cbw_parse_bitmap_arg(c->freeze_bitmap_name, as, argc, error);
		no_cow = "freeze_bitmap needs a COW device";
	} else if (!strcasecmp(arg, "on_cbw_error")) {
		dup = c->policy_set;
		r = cbw_parse_policy(c, as, argc, error);
		no_cow = "on_cbw_error needs a COW device";
	} else if (!strcasecmp(arg, "cbw_timeout_ms")) {
		dup = c->timeout_set;
		r = cbw_parse_timeout(c, as, argc, error);
		no_cow = "cbw_timeout_ms needs a COW device";
	} else {
		*error = "Unknown optional argument";
		return -EINVAL;
	}
	if (!r && !c->cow) {
		*error = no_cow;
		return -EINVAL;
	}
	if (!r && dup) {
		*error = "Duplicate optional argument";
		return -EINVAL;
	}
	return r;
}

static int cbw_parse_optional_args(struct cbw_c *c, struct dm_arg_set *as,
				   char **error)
{
	static const struct dm_arg optional_args = {
		0, 16, "Invalid number of optional arguments"
	};
	unsigned int argc = 0;
	const char *arg;
	int r;

	if (as->argc) {
		r = dm_read_arg_group(&optional_args, as, &argc, error);
		if (r)
			return r;
	}
	while (argc) {
		arg = dm_shift_arg(as);
		argc--;
		r = cbw_parse_optional_arg(c, arg, as, &argc, error);
		if (r)
			return r;
	}
	if (as->argc) {
		*error = "Invalid argument count";
		return -EINVAL;
	}
	return 0;
}

static int cbw_open_metadata(struct cbw_c *c)
{
	struct dm_target *ti = c->ti;
	struct block_device *bdev;
	int r;

	if (!c->metadata_path)
		return 0;
	r = dm_get_device(ti, c->metadata_path, dm_table_get_mode(ti->table),
			  &c->metadata_dev);
	c->metadata_path = NULL;
	if (r) {
		ti->error = "Error opening metadata device";
		return r;
	}
	bdev = c->metadata_dev->bdev;
	if (bdev == c->origin->bdev || (c->cow && bdev == c->cow->bdev)) {
		ti->error = "Metadata device must differ from the origin and COW devices";
		return -EINVAL;
	}
	return 0;
}

/*
 * The metadata device must be formatted for this origin (cbwctl metadata
 * format); it is never formatted here, so that a wrong device is refused
 * rather than overwritten.  The first table that names it attaches it to
 * the device, with its persistent bitmaps; later tables must name it too.
 */
static int cbw_attach_metadata(struct cbw_c *c)
{
	struct dm_target *ti = c->ti;

	if (!c->metadata_dev) {
		if (!READ_ONCE(c->dev->metadata))
			return 0;
		ti->error = "The device has a metadata device: the table must name it";
		return -EINVAL;
	}
	return cbw_metadata_attach(c->dev, c->metadata_dev->bdev,
				   bdev_nr_sectors(c->origin->bdev),
				   &ti->error);
}

/* The snapshot bitmap must exist now; it stays busy until it is used. */
static int cbw_hold_snapshot_bitmap(struct cbw_c *c)
{
	struct cbw_device *dev = c->dev;

	if (!c->snap_bitmap_name[0])
		return 0;
	mutex_lock(&dev->bitmaps_lock);
	c->snap_bitmap = cbw_bitmap_find(dev, c->snap_bitmap_name);
	if (c->snap_bitmap && c->snap_bitmap->inconsistent) {
		mutex_unlock(&dev->bitmaps_lock);
		c->snap_bitmap = NULL;
		c->ti->error = "Dirty bitmap is inconsistent";
		return -EUCLEAN;
	}
	if (c->snap_bitmap)
		c->snap_bitmap->busy++;
	mutex_unlock(&dev->bitmaps_lock);
	if (!c->snap_bitmap) {
		c->ti->error = "Dirty bitmap not found";
		return -ENOENT;
	}
	return 0;
}

static void cbw_release_snapshot_bitmap(struct cbw_c *c)
{
	if (!c->snap_bitmap)
		return;
	mutex_lock(&c->dev->bitmaps_lock);
	c->snap_bitmap->busy--;
	c->snap_bitmap = NULL;
	mutex_unlock(&c->dev->bitmaps_lock);
}

/*
 * The bitmap to freeze must exist and not be frozen already; its
 * successor is allocated now so that the resume cannot fail.
 */
static int cbw_hold_freeze_bitmap(struct cbw_c *c)
{
	struct cbw_device *dev = c->dev;
	struct cbw_dirty_bitmap *bm;
	int r = 0;

	if (!c->freeze_bitmap_name[0])
		return 0;
	mutex_lock(&dev->bitmaps_lock);
	bm = cbw_bitmap_find(dev, c->freeze_bitmap_name);
	if (!bm) {
		c->ti->error = "Dirty bitmap not found";
		r = -ENOENT;
	} else if (bm->inconsistent) {
		c->ti->error = "Dirty bitmap is inconsistent";
		r = -EUCLEAN;
	} else if (cbw_bitmap_successor(dev, bm)) {
		c->ti->error = "Dirty bitmap is already frozen";
		r = -EBUSY;
	} else {
		c->successor = cbw_bitmap_new_successor(bm);
		if (!c->successor) {
			c->ti->error = "Cannot allocate the bitmap successor";
			r = -ENOMEM;
		} else {
			bm->busy++;
			c->freeze_bitmap = bm;
		}
	}
	mutex_unlock(&dev->bitmaps_lock);
	return r;
}

static void cbw_release_freeze_bitmap(struct cbw_c *c)
{
	if (!c->freeze_bitmap)
		return;
	mutex_lock(&c->dev->bitmaps_lock);
	c->freeze_bitmap->busy--;
	c->freeze_bitmap = NULL;
	mutex_unlock(&c->dev->bitmaps_lock);
	cbw_bitmap_free_successor(c->successor);
	c->successor = NULL;
}

/* At the snapshot point: restrict the snapshot, then freeze. */
static int cbw_start_bitmaps(struct cbw_c *c)
{
	struct cbw_device *dev = c->dev;
	int r = 0;

	mutex_lock(&dev->bitmaps_lock);
	if (c->freeze_bitmap && cbw_bitmap_successor(dev, c->freeze_bitmap)) {
		DMERR("bitmap %s was frozen after the table was loaded",
		      c->freeze_bitmap_name);
		r = -EBUSY;
		goto out;
	}
	if (c->snap_bitmap)
		cbw_snapshot_restrict(c->snap, c->snap_bitmap);
	if (c->freeze_bitmap) {
		cbw_bitmap_freeze(dev, c->freeze_bitmap, c->successor);
		c->successor = NULL;
	}
out:
	mutex_unlock(&dev->bitmaps_lock);
	if (!r) {
		cbw_release_snapshot_bitmap(c);
		cbw_release_freeze_bitmap(c);
	}
	return r;
}

static void cbw_destroy(struct cbw_c *c)
{
	cbw_release_snapshot_bitmap(c);
	cbw_release_freeze_bitmap(c);
	if (c->snap) {
		cbw_device_unpublish(c->dev, c->snap);
		cbw_snapshot_destroy(c->snap);
	}
	if (c->dev)
		cbw_device_detach(c->dev, &c->dev_node);
	if (c->metadata_dev)
		dm_put_device(c->ti, c->metadata_dev);
	if (c->cow)
		dm_put_device(c->ti, c->cow);
	if (c->origin)
		dm_put_device(c->ti, c->origin);
	kfree(c);
}

static unsigned int cbw_logical_block_size(struct cbw_c *c)
{
	unsigned int lbs = bdev_logical_block_size(c->origin->bdev);

	if (c->cow)
		lbs = max(lbs, bdev_logical_block_size(c->cow->bdev));
	return lbs;
}

static int cbw_attach(struct cbw_c *c)
{
	struct cbw_device *dev;

	dev = cbw_device_get(dm_table_get_md(c->ti->table));
	if (!dev)
		return -ENOMEM;

	spin_lock_irq(&dev->lock);
	if (list_empty(&dev->targets)) {
		dev->len = c->ti->len;
		dev->chunk_sectors = c->chunk_sectors;
		dev->logical_block_size = cbw_logical_block_size(c);
	}
	list_add_tail(&c->dev_node, &dev->targets);
	spin_unlock_irq(&dev->lock);
	c->dev = dev;
	return 0;
}

/*
 * Construct a cbw mapping:
 *   cbw <origin dev> <COW dev|-> <chunk sectors> [<#opt args> <opt arg>*]
 * Optional arguments (each a key and a value):
 *   snapshot_bitmap <name>
 *   freeze_bitmap <name>
 *   on_cbw_error break_guest_write|break_snapshot
 *   cbw_timeout_ms <milliseconds, 0: no limit>
 *   metadata_dev <dev>
 */
static int cbw_ctr(struct dm_target *ti, unsigned int argc, char **argv)
{
	struct dm_arg_set as = { .argc = argc, .argv = argv };
	struct cbw_c *c;
	int r;

	if (argc < 3) {
		ti->error = "Invalid argument count";
		return -EINVAL;
	}

	c = kzalloc(sizeof(*c), GFP_KERNEL);
	if (!c) {
		ti->error = "Cannot allocate cbw context";
		return -ENOMEM;
	}
	c->ti = ti;
	INIT_LIST_HEAD(&c->dev_node);

	r = cbw_parse_chunk_size(c, argv[2], &ti->error);
	if (r)
		goto bad;
	r = cbw_open_devices(c, argv);
	if (r)
		goto bad;
	r = cbw_check_devices(c);
	if (r)
		goto bad;
	dm_consume_args(&as, 3);
	r = cbw_parse_optional_args(c, &as, &ti->error);
	if (r)
		goto bad;
	r = cbw_open_metadata(c);
	if (r)
		goto bad;

	r = cbw_attach(c);
	if (r) {
		ti->error = "Cannot allocate device state";
		goto bad;
	}
	r = cbw_attach_metadata(c);
	if (r)
		goto bad;
	r = cbw_hold_snapshot_bitmap(c);
	if (r)
		goto bad;
	r = cbw_hold_freeze_bitmap(c);
	if (r)
		goto bad;

	if (c->cow) {
		c->snap = cbw_snapshot_create(c->origin->bdev, c->cow->bdev,
					      ti->len, c->chunk_sectors);
		if (IS_ERR(c->snap)) {
			r = PTR_ERR(c->snap);
			c->snap = NULL;
			ti->error = "Cannot allocate snapshot chunk state";
			goto bad;
		}
		c->snap->dev = c->dev;
		c->snap->table = ti->table;
		c->snap->policy = c->policy;
		c->snap->timeout = c->timeout_ms ?
				   max(msecs_to_jiffies(c->timeout_ms), 1UL) : 0;
	}

	ti->num_flush_bios = 1;
	ti->num_discard_bios = 1;
	ti->num_write_zeroes_bios = 1;
	/* Writes that wait for a copy are sent with dm_submit_bio_remap(). */
	ti->accounts_remapped_io = true;
	ti->per_io_data_size = sizeof(struct cbw_bio);
	ti->private = c;
	return 0;

bad:
	cbw_destroy(c);
	return r;
}

static void cbw_dtr(struct dm_target *ti)
{
	cbw_destroy(ti->private);
}

/*
 *--------------------------------------------------------------
 * I/O
 *--------------------------------------------------------------
 */
/*
 * Zero-length bios change no data, except zone management (zone reset or
 * finish on a host-aware origin), which would bypass copy-before-write:
 * only empty flushes are passed on.
 */
static int cbw_map_empty(struct bio *bio)
{
	if (op_is_zone_mgmt(bio_op(bio)) ||
	    (op_is_write(bio_op(bio)) && !op_is_flush(bio->bi_opf))) {
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		return DM_MAPIO_SUBMITTED;
	}
	return DM_MAPIO_REMAPPED;
}

static int cbw_map(struct dm_target *ti, struct bio *bio)
{
	struct cbw_bio *cb = cbw_bio_data(bio);
	struct cbw_c *c = ti->private;
	struct cbw_metadata *md;

	memset(cb, 0, sizeof(*cb));
	bio_set_dev(bio, c->origin->bdev);
	if (!bio_sectors(bio))
		return cbw_map_empty(bio);
	bio->bi_iter.bi_sector = dm_target_offset(ti, bio->bi_iter.bi_sector);

	if (!op_is_write(bio_op(bio)))
		return DM_MAPIO_REMAPPED;
	cb->sector = bio->bi_iter.bi_sector;
	cb->nr_sectors = bio_sectors(bio);
	cb->snap = c->snap;
	md = READ_ONCE(c->dev->metadata);
	if (md && READ_ONCE(md->intent_on) &&
	    !cbw_intent_gate(md, bio, cb->sector, cb->nr_sectors))
		return DM_MAPIO_SUBMITTED;
	if (!c->snap)
		return DM_MAPIO_REMAPPED;
	return cbw_copy_map_write(c->snap, bio);
}

/*
 * A write that completed is marked in the recording dirty bitmaps, even if
 * it failed: part of it may have reached the media (a split below dm-cbw,
 * a transport timeout), and an incremental backup must not miss it.  QEMU
 * marks whatever the result, too.
 */
static int cbw_end_io(struct dm_target *ti, struct bio *bio,
		      blk_status_t *error)
{
	struct cbw_bio *cb = cbw_bio_data(bio);
	struct cbw_c *c = ti->private;

	if (cb->nr_sectors)
		cbw_bitmaps_mark_write(c->dev, cb->sector, cb->nr_sectors);
	/* The metadata device stays while a table that names it is live. */
	if (cb->intent_held)
		cbw_intent_end(c->dev->metadata, bio);
	return DM_ENDIO_DONE;
}

/*
 * The snapshot starts (or, for a table without a COW device, the previous
 * one ends) before this table maps its first bio.  Its state changes, so
 * dmsetup wait and dmeventd get an event.
 */
static int cbw_preresume(struct dm_target *ti)
{
	struct cbw_c *c = ti->private;
	int r;

	if (c->snap && !c->started) {
		r = cbw_device_can_publish(c->dev, c->snap);
		if (r)
			return r;
		r = cbw_start_bitmaps(c);
		if (r)
			return r;
	}
	if (c->snap)
		cbw_copy_restart(c->snap);
	c->started = true;
	cbw_metadata_start_writeback(c->dev);
	if (cbw_device_publish(c->dev, c->snap, ti->len, c->chunk_sectors,
			       cbw_logical_block_size(c)))
		dm_table_event(ti->table);
	return 0;
}

/*
 * dm waits for guest bios only: copies that timed out, or whose writes went
 * on when the snapshot broke, may still be reading the origin and writing
 * the COW device.  A suspended target issues no I/O, and the next table
 * may start a snapshot on the same COW device: wait for them here.
 */
static void cbw_postsuspend(struct dm_target *ti)
{
	struct cbw_c *c = ti->private;

	if (c->snap)
		cbw_copy_stop(c->snap);
	/* The bits of every completed write, before the suspend ends. */
	cbw_metadata_stop_writeback(c->dev);
	cbw_metadata_writeback(c->dev);
}

/*
 *--------------------------------------------------------------
 * Status
 *--------------------------------------------------------------
 */
/* " <#bitmaps> [<name> <granularity> <dirty bytes>]..." */
static void cbw_status_bitmaps(struct cbw_device *dev, char *result,
			       unsigned int maxlen, unsigned int *size)
{
	struct cbw_dirty_bitmap *bm;
	unsigned int sz = *size;
	unsigned int n = 0;

	mutex_lock(&dev->bitmaps_lock);
	list_for_each_entry(bm, &dev->bitmaps, node)
		n++;
	DMEMIT(" %u", n);
	list_for_each_entry(bm, &dev->bitmaps, node)
		DMEMIT(" %s %llu %llu", bm->name, bm->granularity,
		       cbw_bitmap_dirty_bytes(bm));
	mutex_unlock(&dev->bitmaps_lock);
	*size = sz;
}

static void cbw_status_info(struct cbw_c *c, char *result, unsigned int maxlen)
{
	struct cbw_snapshot *s = c->snap;
	unsigned long nr_failed, nr_timed_out;
	unsigned int sz = 0;

	DMEMIT("%llu ", (unsigned long long)c->chunk_sectors);
	if (!s) {
		DMEMIT("%s 0 0 0 0 0 -", cbw_state_name(DM_CBW_SNAPSHOT_NONE));
		cbw_status_bitmaps(c->dev, result, maxlen, &sz);
		DMEMIT(" 0 0");
		return;
	}

	spin_lock_irq(&s->lock);
	DMEMIT("%s %lu %lu %lu %lu %lu ", cbw_state_name(s->state),
	       s->nr_chunks, s->nr_copied, s->nr_to_copy, s->nr_copying,
	       s->nr_accessible);
	if (s->error)
		DMEMIT("%d", s->error);
	else
		DMEMIT("-");
	nr_failed = s->nr_failed;
	nr_timed_out = s->nr_timed_out;
	spin_unlock_irq(&s->lock);
	cbw_status_bitmaps(c->dev, result, maxlen, &sz);
	/* Last, after the variable-length bitmap list, for older parsers. */
	DMEMIT(" %lu %lu", nr_failed, nr_timed_out);
}

/* The optional arguments that differ from their defaults, in this order. */
static void cbw_status_table_args(struct cbw_c *c, char *result,
				  unsigned int maxlen, unsigned int *size)
{
	unsigned int sz = *size;
	unsigned int n = 0;

	if (c->snap_bitmap_name[0])
		n += 2;
	if (c->freeze_bitmap_name[0])
		n += 2;
	if (c->policy != CBW_BREAK_GUEST_WRITE)
		n += 2;
	if (c->timeout_ms)
		n += 2;
	if (c->metadata_dev)
		n += 2;
	if (n)
		DMEMIT(" %u", n);
	if (c->snap_bitmap_name[0])
		DMEMIT(" snapshot_bitmap %s", c->snap_bitmap_name);
	if (c->freeze_bitmap_name[0])
		DMEMIT(" freeze_bitmap %s", c->freeze_bitmap_name);
	if (c->policy != CBW_BREAK_GUEST_WRITE)
		DMEMIT(" on_cbw_error %s", cbw_policy_name(c->policy));
	if (c->timeout_ms)
		DMEMIT(" cbw_timeout_ms %u", c->timeout_ms);
	if (c->metadata_dev)
		DMEMIT(" metadata_dev %s", c->metadata_dev->name);
	*size = sz;
}

static void cbw_status(struct dm_target *ti, status_type_t type,
		       unsigned int status_flags, char *result,
		       unsigned int maxlen)
{
	struct cbw_c *c = ti->private;
	const char *cow_name = c->cow ? c->cow->name : DM_CBW_NO_COW;
	unsigned int sz = 0;

	switch (type) {
	case STATUSTYPE_INFO:
		cbw_status_info(c, result, maxlen);
		break;
	case STATUSTYPE_TABLE:
		DMEMIT("%s %s %llu", c->origin->name, cow_name,
		       (unsigned long long)c->chunk_sectors);
		cbw_status_table_args(c, result, maxlen, &sz);
		break;
	case STATUSTYPE_IMA:
		DMEMIT_TARGET_NAME_VERSION(ti->type);
		DMEMIT(",origin_name=%s,cow_name=%s,chunk_sectors=%llu",
		       c->origin->name, cow_name,
		       (unsigned long long)c->chunk_sectors);
		if (c->snap_bitmap_name[0])
			DMEMIT(",snapshot_bitmap=%s", c->snap_bitmap_name);
		if (c->freeze_bitmap_name[0])
			DMEMIT(",freeze_bitmap=%s", c->freeze_bitmap_name);
		DMEMIT(",on_cbw_error=%s,cbw_timeout_ms=%u",
		       cbw_policy_name(c->policy), c->timeout_ms);
		if (c->metadata_dev)
			DMEMIT(",metadata_dev=%s", c->metadata_dev->name);
		DMEMIT(";");
		break;
	}
}

/*
 * Only the origin: guest I/O goes to it alone.  The COW device receives
 * copy bios that dm-cbw builds itself, which the block layer splits to
 * the COW's limits; stacking its limits and features (discard, write
 * zeroes, polling, zoned model, logical block size) onto the cbw device
 * would change what the guest sees whenever a snapshot starts or ends.
 * Its geometry is checked in the constructor instead.
 */
static int cbw_iterate_devices(struct dm_target *ti,
			       iterate_devices_callout_fn fn, void *data)
{
	struct cbw_c *c = ti->private;

	return fn(ti, c->origin, 0, ti->len, data);
}

/*
 * A host-aware zoned origin would make the cbw device zoned, and zone
 * management would change data without a copy: the device is not zoned.
 */
static void cbw_io_hints(struct dm_target *ti, struct queue_limits *limits)
{
	cbw_limits_clear_zoned(limits);
}

static struct target_type cbw_target = {
	.name = DM_CBW_TARGET_NAME,
	.version = {1, 4, 0},
	.features = DM_TARGET_SINGLETON,
	.module = THIS_MODULE,
	.ctr = cbw_ctr,
	.dtr = cbw_dtr,
	.map = cbw_map,
	.end_io = cbw_end_io,
	.preresume = cbw_preresume,
	.postsuspend = cbw_postsuspend,
	.status = cbw_status,
	.iterate_devices = cbw_iterate_devices,
	.io_hints = cbw_io_hints,
};

/*
 *--------------------------------------------------------------
 * Module
 *--------------------------------------------------------------
 */
static int __init dm_cbw_init(void)
{
	int r;

	r = cbw_copy_init();
	if (r)
		return r;

	r = cbw_metadata_init();
	if (r)
		goto bad_metadata;

	r = cbw_ctl_init();
	if (r) {
		DMERR("control device registration failed: %d", r);
		goto bad_ctl;
	}

	r = dm_register_target(&cbw_target);
	if (r < 0) {
		DMERR("cbw target registration failed: %d", r);
		goto bad_cbw;
	}

	r = cbw_access_register();
	if (r < 0) {
		DMERR("cbw-access target registration failed: %d", r);
		goto bad_access;
	}
	return 0;

bad_access:
	dm_unregister_target(&cbw_target);
bad_cbw:
	cbw_ctl_exit();
bad_ctl:
	cbw_metadata_exit();
bad_metadata:
	cbw_copy_exit();
	return r;
}

static void __exit dm_cbw_exit(void)
{
	cbw_access_unregister();
	dm_unregister_target(&cbw_target);
	cbw_ctl_exit();
	cbw_metadata_exit();
	cbw_copy_exit();
	cbw_devices_exit();
}

module_init(dm_cbw_init);
module_exit(dm_cbw_exit);

MODULE_DESCRIPTION(DM_NAME " copy-before-write target with snapshot access");
MODULE_AUTHOR("The dm-cbw developers");
MODULE_VERSION("1.4.0");
MODULE_LICENSE("GPL");
MODULE_ALIAS("dm-cbw-access");
