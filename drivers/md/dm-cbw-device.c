// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw per mapped device state.
 *
 * A mapped device outlives its tables: a snapshot starts and ends by
 * loading a new table.  What must survive that (the published snapshot,
 * the bitmaps) lives in a struct cbw_device found by the mapped device.
 */
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/rcupdate.h>

#include "dm-cbw.h"

static LIST_HEAD(cbw_devices);
static DEFINE_MUTEX(cbw_devices_lock);

static struct cbw_device *__cbw_device_lookup(struct mapped_device *md)
{
	struct cbw_device *dev;

	list_for_each_entry(dev, &cbw_devices, node)
		if (dev->md == md)
			return dev;
	return NULL;
}

/* Take a reference to the state of @md, or NULL if it is not a cbw device. */
struct cbw_device *cbw_device_find(struct mapped_device *md)
{
	struct cbw_device *dev;

	mutex_lock(&cbw_devices_lock);
	dev = __cbw_device_lookup(md);
	if (dev)
		refcount_inc(&dev->ref);
	mutex_unlock(&cbw_devices_lock);
	return dev;
}

/* Take a reference to the state of @md, creating it on first use. */
struct cbw_device *cbw_device_get(struct mapped_device *md)
{
	struct cbw_device *dev;

	mutex_lock(&cbw_devices_lock);
	dev = __cbw_device_lookup(md);
	if (dev) {
		refcount_inc(&dev->ref);
		goto out;
	}

	dev = kzalloc(sizeof(*dev), GFP_KERNEL);
	if (!dev)
		goto out;
	dev->md = md;
	refcount_set(&dev->ref, 1);
	spin_lock_init(&dev->lock);
	INIT_LIST_HEAD(&dev->targets);
	init_waitqueue_head(&dev->drain_wq);
	mutex_init(&dev->bitmaps_lock);
	INIT_LIST_HEAD(&dev->bitmaps);
	atomic64_set(&dev->bitmap_bytes, 0);
	list_add(&dev->node, &cbw_devices);
out:
	mutex_unlock(&cbw_devices_lock);
	return dev;
}

/*
 * A cbw target instance leaves the device.  When the last one leaves, the
 * mapped device is no longer a cbw device (it is being removed, or was
 * loaded with another target): it is not found any more, even if an
 * access device still holds a reference, so that a mapped device that
 * reuses its memory is not mistaken for it.
 */
void cbw_device_detach(struct cbw_device *dev, struct list_head *target)
{
	bool last;

	mutex_lock(&cbw_devices_lock);
	spin_lock_irq(&dev->lock);
	list_del(target);
	last = list_empty(&dev->targets);
	spin_unlock_irq(&dev->lock);
	if (last)
		list_del_init(&dev->node);
	mutex_unlock(&cbw_devices_lock);
	/* Removed, or not a cbw device any more: its bitmaps go to disk. */
	if (last)
		cbw_metadata_detach(dev);
	cbw_device_put(dev);
}

void cbw_device_put(struct cbw_device *dev)
{
	mutex_lock(&cbw_devices_lock);
	if (!refcount_dec_and_test(&dev->ref)) {
		mutex_unlock(&cbw_devices_lock);
		return;
	}
	list_del_init(&dev->node);
	mutex_unlock(&cbw_devices_lock);

	WARN_ON(rcu_access_pointer(dev->snap));
	cbw_bitmaps_destroy(dev);
	kfree(dev);
}

/*
 * Wait until no access bio is inside @s; it must be unpublished already.
 * After the grace period every reader that found @s has counted itself.
 */
static void cbw_device_drain(struct cbw_device *dev, struct cbw_snapshot *s)
{
	synchronize_rcu();
	wait_event(dev->drain_wq, !atomic_read(&s->nr_readers));
}

static struct cbw_snapshot *cbw_device_snap(struct cbw_device *dev)
{
	return rcu_dereference_protected(dev->snap,
					 lockdep_is_held(&dev->lock));
}

/*
 * Make @snap (or no snapshot) the one access devices read.  Called from the
 * preresume of a cbw table, before that table maps any bio: a snapshot that
 * is replaced ends here, and its readers drain before a write that the
 * ended snapshot would have had to copy can reach the origin.  Returns
 * whether the published snapshot changed (one started, ended or replaced).
 */
bool cbw_device_publish(struct cbw_device *dev, struct cbw_snapshot *snap,
			sector_t len, sector_t chunk_sectors,
			unsigned int logical_block_size)
{
	struct cbw_snapshot *old;

	spin_lock_irq(&dev->lock);
	old = cbw_device_snap(dev);
	if (snap && snap != old)
		snap->seq = ++dev->snap_seq;
	rcu_assign_pointer(dev->snap, snap);
	dev->len = len;
	dev->chunk_sectors = chunk_sectors;
	dev->logical_block_size = logical_block_size;
	spin_unlock_irq(&dev->lock);

	if (old && old != snap)
		cbw_device_drain(dev, old);
	return old != snap;
}

/*
 * A new snapshot may replace the published one only once the old one's
 * copies have stopped (its table's postsuspend waited for them): a late
 * copy would write the old content into the new snapshot's COW device.
 */
int cbw_device_can_publish(struct cbw_device *dev, struct cbw_snapshot *snap)
{
	struct cbw_snapshot *old;
	int r = 0;

	spin_lock_irq(&dev->lock);
	old = cbw_device_snap(dev);
	if (old && old != snap && !cbw_copy_idle(old))
		r = -EBUSY;
	spin_unlock_irq(&dev->lock);
	if (r)
		DMERR("previous snapshot still has copies in flight");
	return r;
}

/* End @snap if it is still the published one, and wait for its readers. */
void cbw_device_unpublish(struct cbw_device *dev, struct cbw_snapshot *snap)
{
	bool was_published = false;

	spin_lock_irq(&dev->lock);
	if (cbw_device_snap(dev) == snap) {
		RCU_INIT_POINTER(dev->snap, NULL);
		was_published = true;
	}
	spin_unlock_irq(&dev->lock);

	if (was_published)
		cbw_device_drain(dev, snap);
}

/*
 * Enter the published snapshot for one access bio.  *@seq names the
 * snapshot the caller is bound to (0: bind to the current one).  Returns
 * NULL when there is no such snapshot any more.  Takes no lock: the
 * snapshot is freed only after a grace period and its readers' drain.
 */
struct cbw_snapshot *cbw_device_enter_snapshot(struct cbw_device *dev,
					       u64 *seq)
{
	struct cbw_snapshot *s;

	rcu_read_lock();
	s = rcu_dereference(dev->snap);
	if (s && *seq && s->seq != *seq)
		s = NULL;
	if (s) {
		if (!*seq)
			*seq = s->seq;
		atomic_inc(&s->nr_readers);
	}
	rcu_read_unlock();
	return s;
}

void cbw_snapshot_leave(struct cbw_snapshot *s)
{
	struct cbw_device *dev = s->dev;

	/*
	 * @s may be freed once the count drops: only @dev is used after.
	 * Every read leaves at queue depth 1, so skip the waitqueue lock when
	 * nobody drains; wq_has_sleeper() has the barrier wait_event() pairs
	 * with.
	 */
	if (atomic_dec_and_test(&s->nr_readers) &&
	    wq_has_sleeper(&dev->drain_wq))
		wake_up(&dev->drain_wq);
}

/* Every device state must be gone when the module unloads. */
void cbw_devices_exit(void)
{
	WARN_ON(!list_empty(&cbw_devices));
}
