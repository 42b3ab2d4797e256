// SPDX-License-Identifier: GPL-2.0-only
/*
 * dm-cbw control device: /dev/dm-cbw-control.
 *
 * Dirty bitmaps and snapshot state are not part of a table, so they are
 * managed by ioctls on a misc device rather than by table reloads or dm
 * messages.  Each ioctl names the cbw device by its device number.  The
 * argument structures carry their own size so that they can grow; see
 * include/uapi/linux/dm-cbw.h for the rules.
 */
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "dm-cbw.h"

#define CBW_API_MAJOR	1
#define CBW_API_MINOR	3
#define CBW_API_PATCH	0

/* The fields every argument structure starts with. */
struct cbw_ctl_header {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
};

static bool cbw_ctl_zero(const void *p, size_t len)
{
	return !memchr_inv(p, 0, len);
}

/*
 * Copy an argument of @ksize bytes from userspace.  The caller's size must
 * be at least this version's; a larger structure is accepted when the
 * bytes this version does not know are zero.
 */
static int cbw_ctl_copy_in(void *karg, size_t ksize, void __user *uarg,
			   u32 *usize)
{
	int r;

	if (get_user(*usize, (u32 __user *)uarg))
		return -EFAULT;
	if (*usize < ksize || *usize > PAGE_SIZE)
		return -EINVAL;
	r = copy_struct_from_user(karg, ksize, uarg, *usize);
	return r == -E2BIG ? -EINVAL : r;
}

static int cbw_ctl_copy_out(void __user *uarg, const void *karg,
			    size_t ksize)
{
	return copy_to_user(uarg, karg, ksize) ? -EFAULT : 0;
}

static int cbw_ctl_check_name(const char *name)
{
	return cbw_bitmap_name_valid(name) ? 0 : -EINVAL;
}

/* Take a reference to the cbw device named by @hdr. */
static struct cbw_device *cbw_ctl_device(const struct cbw_ctl_header *hdr)
{
	struct mapped_device *md;
	struct cbw_device *dev = NULL;
	dev_t devt = MKDEV(hdr->dev_major, hdr->dev_minor);

	if (MAJOR(devt) != hdr->dev_major || MINOR(devt) != hdr->dev_minor)
		return NULL;
	md = dm_get_md(devt);
	if (md) {
		dev = cbw_device_find(md);
		dm_put(md);
	}
	return dev;
}

static int cbw_ctl_version(void __user *uarg)
{
	struct dm_cbw_version v;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&v, sizeof(v), uarg, &usize);
	if (r)
		return r;
	if (v.flags || v.dev_major || v.dev_minor || v.reserved ||
	    v.major || v.minor || v.patch || v.features)
		return -EINVAL;

	v.major = CBW_API_MAJOR;
	v.minor = CBW_API_MINOR;
	v.patch = CBW_API_PATCH;
	v.features = DM_CBW_FEATURE_BITMAPS | DM_CBW_FEATURE_SNAPSHOT_BITMAP |
		     DM_CBW_FEATURE_FREEZE | DM_CBW_FEATURE_PERSISTENT;
	return cbw_ctl_copy_out(uarg, &v, sizeof(v));
}

/* A persistent bitmap's removal is on the metadata device on return. */
static void cbw_ctl_bitmap_remove(struct cbw_device *dev,
				  struct cbw_dirty_bitmap *bm)
{
	bool persistent = bm->persistent;

	cbw_bitmap_remove(dev, bm);
	if (persistent) {
		cbw_metadata_update_gate(dev);
		cbw_metadata_sync_locked(dev);
	}
}

/* So is its new generation after a clear. */
static void cbw_ctl_bitmap_clear(struct cbw_device *dev,
				 struct cbw_dirty_bitmap *bm)
{
	cbw_bitmap_reset(bm);
	if (bm->persistent)
		cbw_metadata_sync_locked(dev);
}

/* Add, remove, clear, enable, disable or thaw one bitmap. */
static int cbw_ctl_bitmap_do(struct cbw_device *dev, unsigned int nr,
			     struct dm_cbw_bitmap_cmd *cmd)
{
	struct cbw_dirty_bitmap *bm;
	int r = 0;

	if (nr == DM_CBW_BITMAP_ADD_CMD)
		return cbw_bitmap_add(dev, cmd->name, cmd->granularity,
				      cmd->flags);

	mutex_lock(&dev->bitmaps_lock);
	bm = cbw_bitmap_find(dev, cmd->name);
	if (!bm)
		r = -ENOENT;
	else if (nr == DM_CBW_BITMAP_THAW_CMD && !cbw_bitmap_successor(dev, bm))
		r = -EINVAL;
	else if (nr == DM_CBW_BITMAP_THAW_CMD)
		cbw_bitmap_thaw(dev, bm, cmd->flags & DM_CBW_BITMAP_THAW_MERGE);
	else if (bm->busy)
		r = -EBUSY;
	else if (nr == DM_CBW_BITMAP_REMOVE_CMD)
		cbw_ctl_bitmap_remove(dev, bm);
	else if (nr == DM_CBW_BITMAP_CLEAR_CMD)
		cbw_ctl_bitmap_clear(dev, bm);
	else if (bm->inconsistent)
		r = -EUCLEAN;	/* only remove and clear */
	else
		WRITE_ONCE(bm->recording, nr == DM_CBW_BITMAP_ENABLE_CMD);
	mutex_unlock(&dev->bitmaps_lock);
	return r;
}

static int cbw_ctl_bitmap_cmd(unsigned int nr, void __user *uarg)
{
	struct dm_cbw_bitmap_cmd cmd;
	u32 known_flags = 0;
	struct cbw_device *dev;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&cmd, sizeof(cmd), uarg, &usize);
	if (r)
		return r;
	if (nr == DM_CBW_BITMAP_ADD_CMD)
		known_flags = DM_CBW_BITMAP_ADD_DISABLED |
			      DM_CBW_BITMAP_PERSISTENT;
	else if (nr == DM_CBW_BITMAP_THAW_CMD)
		known_flags = DM_CBW_BITMAP_THAW_MERGE;
	if (nr != DM_CBW_BITMAP_ADD_CMD && cmd.granularity)
		return -EINVAL;
	if (cmd.flags & ~known_flags ||
	    !cbw_ctl_zero(cmd.reserved, sizeof(cmd.reserved)))
		return -EINVAL;
	r = cbw_ctl_check_name(cmd.name);
	if (r)
		return r;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&cmd);
	if (!dev)
		return -ENODEV;
	r = cbw_ctl_bitmap_do(dev, nr, &cmd);
	cbw_device_put(dev);
	return r;
}

static int cbw_ctl_merge_names(struct dm_cbw_bitmap_merge *m, char **names)
{
	size_t bytes = (size_t)m->nr_sources * DM_CBW_NAME_LEN;
	unsigned int i;
	char *buf;

	buf = memdup_user(u64_to_user_ptr(m->sources), bytes);
	if (IS_ERR(buf))
		return PTR_ERR(buf);
	for (i = 0; i < m->nr_sources; i++) {
		if (cbw_ctl_check_name(buf + i * DM_CBW_NAME_LEN)) {
			kfree(buf);
			return -EINVAL;
		}
	}
	*names = buf;
	return 0;
}

static int cbw_ctl_merge_locked(struct cbw_device *dev,
				struct dm_cbw_bitmap_merge *m,
				const char *names)
{
	struct cbw_dirty_bitmap *dst, *src;
	unsigned int i;

	dst = cbw_bitmap_find(dev, m->target);
	if (!dst)
		return -ENOENT;
	for (i = 0; i < m->nr_sources; i++) {
		src = cbw_bitmap_find(dev, names + i * DM_CBW_NAME_LEN);
		if (!src)
			return -ENOENT;
		if (src->inconsistent)
			return -EUCLEAN;
	}
	if (dst->busy)
		return -EBUSY;
	if (dst->inconsistent)
		return -EUCLEAN;

	for (i = 0; i < m->nr_sources; i++) {
		src = cbw_bitmap_find(dev, names + i * DM_CBW_NAME_LEN);
		if (src != dst)
			cbw_bitmap_merge(dst, src);
	}
	return 0;
}

static int cbw_ctl_bitmap_merge(void __user *uarg)
{
	struct dm_cbw_bitmap_merge m;
	struct cbw_device *dev;
	char *names;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&m, sizeof(m), uarg, &usize);
	if (r)
		return r;
	if (m.flags || m.reserved0 || !cbw_ctl_zero(m.reserved, sizeof(m.reserved)) ||
	    !m.nr_sources || m.nr_sources > DM_CBW_MAX_MERGE_SOURCES)
		return -EINVAL;
	r = cbw_ctl_check_name(m.target);
	if (r)
		return r;
	r = cbw_ctl_merge_names(&m, &names);
	if (r)
		return r;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&m);
	if (!dev) {
		kfree(names);
		return -ENODEV;
	}
	mutex_lock(&dev->bitmaps_lock);
	r = cbw_ctl_merge_locked(dev, &m, names);
	mutex_unlock(&dev->bitmaps_lock);
	cbw_device_put(dev);
	kfree(names);
	return r;
}

static void cbw_ctl_fill_info(struct cbw_device *dev,
			      struct cbw_dirty_bitmap *bm,
			      struct dm_cbw_bitmap_info *info)
{
	struct cbw_dirty_bitmap *succ = cbw_bitmap_successor(dev, bm);

	info->granularity = bm->granularity;
	info->count = cbw_bitmap_dirty_bytes(bm);
	info->status = 0;
	info->successor_count = 0;
	info->generation = bm->generation;
	if (READ_ONCE(bm->recording))
		info->status |= DM_CBW_BITMAP_RECORDING;
	if (bm->busy)
		info->status |= DM_CBW_BITMAP_BUSY;
	if (bm->persistent)
		info->status |= DM_CBW_BITMAP_PERSISTENT;
	if (bm->inconsistent)
		info->status |= DM_CBW_BITMAP_INCONSISTENT;
	if (succ) {
		info->status |= DM_CBW_BITMAP_FROZEN;
		if (succ->recording)
			info->status |= DM_CBW_BITMAP_RECORDING;
		info->successor_count = cbw_bitmap_dirty_bytes(succ);
	}
}

static bool cbw_ctl_info_valid(const struct dm_cbw_bitmap_info *info)
{
	return !info->flags && !info->granularity && !info->count &&
	       !info->status && !info->reserved0 && !info->successor_count &&
	       !info->generation;
}

static int cbw_ctl_bitmap_query(void __user *uarg)
{
	struct dm_cbw_bitmap_info info;
	struct cbw_dirty_bitmap *bm;
	struct cbw_device *dev;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&info, sizeof(info), uarg, &usize);
	if (r)
		return r;
	if (!cbw_ctl_info_valid(&info))
		return -EINVAL;
	r = cbw_ctl_check_name(info.name);
	if (r)
		return r;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&info);
	if (!dev)
		return -ENODEV;
	mutex_lock(&dev->bitmaps_lock);
	bm = cbw_bitmap_find(dev, info.name);
	if (bm)
		cbw_ctl_fill_info(dev, bm, &info);
	mutex_unlock(&dev->bitmaps_lock);
	cbw_device_put(dev);

	if (!bm)
		return -ENOENT;
	return cbw_ctl_copy_out(uarg, &info, sizeof(info));
}

/*
 * Fill up to @max entries; returns the number of bitmaps.  The entries go
 * to a kernel buffer: bitmaps_lock, which preresume takes, is not held
 * across a page fault on the caller's buffer.
 */
static u32 cbw_ctl_list_locked(struct cbw_device *dev,
			       const struct dm_cbw_bitmap_list *list,
			       struct dm_cbw_bitmap_info *entries, u32 max)
{
	struct dm_cbw_bitmap_info *info;
	struct cbw_dirty_bitmap *bm;
	u32 n = 0;

	list_for_each_entry(bm, &dev->bitmaps, node) {
		if (n < max) {
			info = &entries[n];
			info->size = sizeof(*info);
			info->dev_major = list->dev_major;
			info->dev_minor = list->dev_minor;
			strscpy(info->name, bm->name, sizeof(info->name));
			cbw_ctl_fill_info(dev, bm, info);
		}
		n++;
	}
	return n;
}

static int cbw_ctl_bitmap_list(void __user *uarg)
{
	struct dm_cbw_bitmap_list list;
	struct dm_cbw_bitmap_info *entries;
	struct cbw_device *dev;
	u32 usize, max, n;
	int r;

	r = cbw_ctl_copy_in(&list, sizeof(list), uarg, &usize);
	if (r)
		return r;
	if (list.flags || !cbw_ctl_zero(list.reserved, sizeof(list.reserved)) ||
	    list.entry_size != sizeof(struct dm_cbw_bitmap_info))
		return -EINVAL;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&list);
	if (!dev)
		return -ENODEV;
	max = min_t(u32, list.nr_entries, DM_CBW_MAX_BITMAPS);
	entries = kcalloc(max, sizeof(*entries), GFP_KERNEL);
	if (max && !entries) {
		cbw_device_put(dev);
		return -ENOMEM;
	}
	mutex_lock(&dev->bitmaps_lock);
	n = cbw_ctl_list_locked(dev, &list, entries, max);
	mutex_unlock(&dev->bitmaps_lock);
	cbw_device_put(dev);

	r = copy_to_user(u64_to_user_ptr(list.entries), entries,
			 min(n, max) * sizeof(*entries)) ? -EFAULT : 0;
	kfree(entries);
	if (r)
		return r;
	list.nr_entries = n;
	return cbw_ctl_copy_out(uarg, &list, sizeof(list));
}

/*
 * Collect the extents of a bitmap (or of the snapshot access map) in
 * [rd->offset, rd->offset + rd->length), at most rd->nr_extents of them.
 */
struct cbw_extent_walk {
	struct dm_cbw_extent *ext;
	u32 nr;
	u32 max;
	sector_t next;		/* where the next call continues */
};

/*
 * A write marking the granule right after an extent while the walk reads
 * it makes the next search start at that granule: extend the previous
 * extent, so that no two returned extents touch.
 */
static bool cbw_walk_add(struct cbw_extent_walk *w, sector_t start,
			 sector_t end)
{
	struct dm_cbw_extent *prev = w->nr ? &w->ext[w->nr - 1] : NULL;

	if (prev && prev->offset + prev->length == (u64)start << SECTOR_SHIFT) {
		prev->length = ((u64)end << SECTOR_SHIFT) - prev->offset;
		return true;
	}
	if (w->nr == w->max) {
		w->next = start;
		return false;
	}
	w->ext[w->nr].offset = (u64)start << SECTOR_SHIFT;
	w->ext[w->nr].length = (u64)(end - start) << SECTOR_SHIFT;
	w->nr++;
	return true;
}

static void cbw_walk_bitmap(struct cbw_dirty_bitmap *bm,
			    struct cbw_extent_walk *w, sector_t sector,
			    sector_t end)
{
	sector_t start, stop;

	w->next = end;
	while (sector < end &&
	       cbw_bitmap_next_extent(bm, sector, &start, &stop) &&
	       start < end) {
		if (!cbw_walk_add(w, start, min(stop, end)))
			return;
		sector = stop;
	}
}

/*
 * Chunks of the access map scanned per hold of s->lock: guest writes and
 * snapshot reads spin on it with interrupts off, so no whole-map scan.
 */
#define CBW_WALK_WINDOW		(64UL * 1024)

/*
 * One window, chunks [@chunk, @limit): false when the walk is full.  An
 * extent that goes on past the window is continued by the next one, which
 * cbw_walk_add() joins to it.
 */
static bool cbw_walk_access_window(struct cbw_snapshot *s,
				   struct cbw_extent_walk *w,
				   unsigned long chunk, unsigned long limit,
				   sector_t sector, sector_t end)
{
	unsigned long stop;
	sector_t start;
	bool more = true;

	spin_lock_irq(&s->lock);
	while ((chunk = find_next_bit(s->access, limit, chunk)) < limit) {
		stop = find_next_zero_bit(s->access, limit, chunk);
		start = max(sector, cbw_chunk_to_sector(s, chunk));
		more = cbw_walk_add(w, start,
				    min(end, cbw_chunk_to_sector(s, stop)));
		if (!more)
			break;
		chunk = stop;
	}
	spin_unlock_irq(&s->lock);
	return more;
}

/*
 * The map is read a window at a time, so a snapshot discard that runs
 * meanwhile may or may not show: each extent was accessible at some point
 * of the call.
 */
static void cbw_walk_access(struct cbw_snapshot *s, struct cbw_extent_walk *w,
			    sector_t sector, sector_t end)
{
	unsigned long chunk, limit, last;

	w->next = end;
	if (sector >= end)
		return;
	last = cbw_sector_to_chunk(s, end - 1);
	for (chunk = cbw_sector_to_chunk(s, sector); chunk <= last;
	     chunk = limit) {
		limit = min(last + 1, chunk + CBW_WALK_WINDOW);
		if (!cbw_walk_access_window(s, w, chunk, limit, sector, end))
			return;
		cond_resched();
	}
}

static int cbw_ctl_read_range(struct cbw_device *dev, unsigned int nr,
			      struct dm_cbw_bitmap_read *rd,
			      struct cbw_extent_walk *w)
{
	sector_t sector = rd->offset >> SECTOR_SHIFT;
	sector_t end = sector + (rd->length >> SECTOR_SHIFT);
	struct cbw_dirty_bitmap *bm;
	struct cbw_snapshot *s;
	u64 seq = 0;
	int r = 0;

	if (nr == DM_CBW_SNAPSHOT_ACCESS_CMD) {
		s = cbw_device_enter_snapshot(dev, &seq);
		if (!s)
			return -ENODATA;
		cbw_walk_access(s, w, sector, min_t(sector_t, end, s->len));
		cbw_snapshot_leave(s);
		return 0;
	}

	mutex_lock(&dev->bitmaps_lock);
	bm = cbw_bitmap_find(dev, rd->name);
	if (!bm)
		r = -ENOENT;
	else if (bm->inconsistent)
		r = -EUCLEAN;
	else
		cbw_walk_bitmap(bm, w, sector, min_t(sector_t, end, bm->len));
	mutex_unlock(&dev->bitmaps_lock);
	return r;
}

static int cbw_ctl_read_check(unsigned int nr, struct dm_cbw_bitmap_read *rd)
{
	if (rd->flags || rd->reserved0 || rd->next_offset ||
	    !cbw_ctl_zero(rd->reserved, sizeof(rd->reserved)))
		return -EINVAL;
	if (!rd->nr_extents || rd->nr_extents > DM_CBW_MAX_EXTENTS ||
	    rd->offset % SECTOR_SIZE || rd->length % SECTOR_SIZE ||
	    rd->offset + rd->length < rd->offset)
		return -EINVAL;
	if (nr == DM_CBW_SNAPSHOT_ACCESS_CMD)
		return cbw_ctl_zero(rd->name, sizeof(rd->name)) ? 0 : -EINVAL;
	return cbw_ctl_check_name(rd->name);
}

static int cbw_ctl_read(unsigned int nr, void __user *uarg)
{
	struct dm_cbw_bitmap_read rd;
	struct cbw_extent_walk w = { };
	struct cbw_device *dev;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&rd, sizeof(rd), uarg, &usize);
	if (r)
		return r;
	r = cbw_ctl_read_check(nr, &rd);
	if (r)
		return r;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&rd);
	if (!dev)
		return -ENODEV;
	w.max = rd.nr_extents;
	w.ext = kvcalloc(w.max, sizeof(*w.ext), GFP_KERNEL);
	if (!w.ext) {
		cbw_device_put(dev);
		return -ENOMEM;
	}
	r = cbw_ctl_read_range(dev, nr, &rd, &w);
	cbw_device_put(dev);
	if (!r && copy_to_user(u64_to_user_ptr(rd.extents), w.ext,
			       w.nr * sizeof(*w.ext)))
		r = -EFAULT;
	kvfree(w.ext);
	if (r)
		return r;

	rd.nr_extents = w.nr;
	rd.next_offset = (u64)w.next << SECTOR_SHIFT;
	return cbw_ctl_copy_out(uarg, &rd, sizeof(rd));
}

static void cbw_ctl_fill_snapshot(struct cbw_snapshot *s,
				  struct dm_cbw_snapshot_info *info)
{
	spin_lock_irq(&s->lock);
	info->state = s->state;
	info->error = s->error;
	info->chunk_size = (u64)s->chunk_sectors << SECTOR_SHIFT;
	info->chunks_total = s->nr_chunks;
	info->chunks_to_copy = s->nr_to_copy;
	info->chunks_copied = s->nr_copied;
	info->chunks_accessible = s->nr_accessible;
	info->copies_in_flight = s->nr_copying;
	info->copies_failed = s->nr_failed;
	info->copies_timed_out = s->nr_timed_out;
	spin_unlock_irq(&s->lock);
}

static int cbw_ctl_snapshot_info(void __user *uarg)
{
	struct dm_cbw_snapshot_info info;
	struct cbw_snapshot *s;
	struct cbw_device *dev;
	u64 seq = 0;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&info, sizeof(info), uarg, &usize);
	if (r)
		return r;
	if (info.flags || !cbw_ctl_zero(&info.state,
					sizeof(info) - offsetof(typeof(info), state)))
		return -EINVAL;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&info);
	if (!dev)
		return -ENODEV;
	s = cbw_device_enter_snapshot(dev, &seq);
	if (s) {
		cbw_ctl_fill_snapshot(s, &info);
		cbw_snapshot_leave(s);
	} else {
		info.state = DM_CBW_SNAPSHOT_NONE;
	}
	cbw_device_put(dev);
	return cbw_ctl_copy_out(uarg, &info, sizeof(info));
}

/* Mark a range as a write would; a frozen bitmap's successor gets it. */
static int cbw_ctl_mark_locked(struct cbw_device *dev,
			       struct dm_cbw_bitmap_mark *m)
{
	struct cbw_dirty_bitmap *bm, *succ;

	bm = cbw_bitmap_find(dev, m->name);
	if (!bm)
		return -ENOENT;
	if (bm->inconsistent)
		return -EUCLEAN;
	if (m->offset + m->length > ((u64)bm->len << SECTOR_SHIFT))
		return -EINVAL;
	succ = cbw_bitmap_successor(dev, bm);
	if (!succ && bm->busy)
		return -EBUSY;
	cbw_bitmap_mark(succ ?: bm, m->offset >> SECTOR_SHIFT,
			m->length >> SECTOR_SHIFT);
	return 0;
}

static int cbw_ctl_bitmap_mark(void __user *uarg)
{
	struct dm_cbw_bitmap_mark m;
	struct cbw_device *dev;
	u32 usize;
	int r;

	r = cbw_ctl_copy_in(&m, sizeof(m), uarg, &usize);
	if (r)
		return r;
	if (m.flags || !cbw_ctl_zero(m.reserved, sizeof(m.reserved)) ||
	    !m.length || (m.offset | m.length) & (SECTOR_SIZE - 1) ||
	    m.offset + m.length < m.offset)
		return -EINVAL;
	r = cbw_ctl_check_name(m.name);
	if (r)
		return r;

	dev = cbw_ctl_device((struct cbw_ctl_header *)&m);
	if (!dev)
		return -ENODEV;
	mutex_lock(&dev->bitmaps_lock);
	r = cbw_ctl_mark_locked(dev, &m);
	mutex_unlock(&dev->bitmaps_lock);
	cbw_device_put(dev);
	return r;
}

/*
 * The whole request code is matched, direction and size included.  The
 * structures have the same layout for 32-bit callers, so compat_ioctl
 * passes the same codes.
 */
static long cbw_ctl_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	unsigned int nr = _IOC_NR(cmd);

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	switch (cmd) {
	case DM_CBW_IOC_VERSION:
		return cbw_ctl_version(uarg);
	case DM_CBW_IOC_BITMAP_ADD:
	case DM_CBW_IOC_BITMAP_REMOVE:
	case DM_CBW_IOC_BITMAP_CLEAR:
	case DM_CBW_IOC_BITMAP_ENABLE:
	case DM_CBW_IOC_BITMAP_DISABLE:
	case DM_CBW_IOC_BITMAP_THAW:
		return cbw_ctl_bitmap_cmd(nr, uarg);
	case DM_CBW_IOC_BITMAP_MARK:
		return cbw_ctl_bitmap_mark(uarg);
	case DM_CBW_IOC_BITMAP_MERGE:
		return cbw_ctl_bitmap_merge(uarg);
	case DM_CBW_IOC_BITMAP_QUERY:
		return cbw_ctl_bitmap_query(uarg);
	case DM_CBW_IOC_BITMAP_LIST:
		return cbw_ctl_bitmap_list(uarg);
	case DM_CBW_IOC_BITMAP_READ:
	case DM_CBW_IOC_SNAPSHOT_ACCESS:
		return cbw_ctl_read(nr, uarg);
	case DM_CBW_IOC_SNAPSHOT_INFO:
		return cbw_ctl_snapshot_info(uarg);
	}
	return -ENOTTY;
}

static const struct file_operations cbw_ctl_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.unlocked_ioctl = cbw_ctl_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice cbw_ctl_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = DM_CBW_CONTROL_NAME,
	.nodename = DM_CBW_CONTROL_NAME,
	.mode = 0600,
	.fops = &cbw_ctl_fops,
};

int cbw_ctl_init(void)
{
	return misc_register(&cbw_ctl_misc);
}

void cbw_ctl_exit(void)
{
	misc_deregister(&cbw_ctl_misc);
}
