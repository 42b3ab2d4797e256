// SPDX-License-Identifier: GPL-2.0-only
/*
 * cbwctl: the ioctls of /dev/dm-cbw-control.
 *
 * Each wrapper fills the common header (size, flags, device number),
 * leaves the reserved fields zero and returns 0 or a negative errno; the
 * callers turn errnos into messages.  The control device is opened once,
 * on first use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cbwctl.h"

static int cbw_ctl_fd = -1;

/*
 * Without udev (or devtmpfs) the node may be missing although the module
 * is loaded: create it from the number sysfs gives, as libdevmapper does
 * for /dev/mapper/control.
 */
static void cbw_ctl_mknod(void)
{
	unsigned int major, minor;
	FILE *f;
	int n;

	f = fopen("/sys/class/misc/" DM_CBW_CONTROL_NAME "/dev", "r");
	if (!f)
		return;
	n = fscanf(f, "%u:%u", &major, &minor);
	fclose(f);
	if (n == 2)
		mknod(CBW_CONTROL_PATH, S_IFCHR | 0600, makedev(major, minor));
}

/* Opens the control device; prints why not and returns -1 on failure. */
int cbw_ctl_open(void)
{
	int err;

	if (cbw_ctl_fd >= 0)
		return cbw_ctl_fd;
	cbw_ctl_fd = open(CBW_CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (cbw_ctl_fd < 0 && errno == ENOENT) {
		cbw_ctl_mknod();
		cbw_ctl_fd = open(CBW_CONTROL_PATH, O_RDWR | O_CLOEXEC);
	}
	if (cbw_ctl_fd >= 0)
		return cbw_ctl_fd;

	err = errno;
	cbw_errno_error(-err);
	if (err == EACCES || err == EPERM)
		cbw_error("Cannot open %s: %s (cbwctl must run as root)",
			  CBW_CONTROL_PATH, strerror(err));
	else
		cbw_error("Cannot open %s: %s (is the dm-cbw module loaded? try: modprobe dm-cbw)",
			  CBW_CONTROL_PATH, strerror(err));
	return -1;
}

static int cbw_ctl_ioctl(unsigned long req, void *arg)
{
	int fd = cbw_ctl_open();

	if (fd < 0)
		return -EBADF;
	if (ioctl(fd, req, arg) < 0)
		return -errno;
	return 0;
}

/* Copies a bitmap name into a fixed-size field (checked by the caller). */
static void cbw_ctl_name(char dst[DM_CBW_NAME_LEN], const char *name)
{
	memset(dst, 0, DM_CBW_NAME_LEN);
	strncpy(dst, name, DM_CBW_NAME_LEN - 1);
}

/* The fields every argument structure starts with. */
struct cbw_ctl_header {
	uint32_t size;
	uint32_t flags;
	uint32_t dev_major;
	uint32_t dev_minor;
};

/* Zeroes the argument @arg of @size bytes and fills its header. */
static void cbw_ctl_init(void *arg, size_t size, const struct cbw_dev *dev)
{
	struct cbw_ctl_header *hdr = arg;

	memset(arg, 0, size);
	hdr->size = size;
	if (dev) {
		hdr->dev_major = dev->major;
		hdr->dev_minor = dev->minor;
	}
}

int cbw_ctl_version(struct dm_cbw_version *v)
{
	cbw_ctl_init(v, sizeof(*v), NULL);
	return cbw_ctl_ioctl(DM_CBW_IOC_VERSION, v);
}

/* Add, remove, clear, enable or disable bitmap @name. */
int cbw_ctl_bitmap(unsigned long req, const struct cbw_dev *dev,
		   const char *name, uint64_t granularity, uint32_t flags)
{
	struct dm_cbw_bitmap_cmd cmd;

	cbw_ctl_init(&cmd, sizeof(cmd), dev);
	cmd.flags = flags;
	cmd.granularity = granularity;
	cbw_ctl_name(cmd.name, name);
	return cbw_ctl_ioctl(req, &cmd);
}

int cbw_ctl_merge(const struct cbw_dev *dev, const char *target,
		  char *const *sources, unsigned int nr_sources)
{
	struct dm_cbw_bitmap_merge m;
	char (*names)[DM_CBW_NAME_LEN];
	unsigned int i;
	int r;

	names = calloc(nr_sources, DM_CBW_NAME_LEN);
	if (!names)
		return -ENOMEM;
	for (i = 0; i < nr_sources; i++)
		cbw_ctl_name(names[i], sources[i]);

	cbw_ctl_init(&m, sizeof(m), dev);
	m.sources = (uintptr_t)names;
	m.nr_sources = nr_sources;
	cbw_ctl_name(m.target, target);
	r = cbw_ctl_ioctl(DM_CBW_IOC_BITMAP_MERGE, &m);
	free(names);
	return r;
}

int cbw_ctl_query(const struct cbw_dev *dev, const char *name,
		  struct dm_cbw_bitmap_info *info)
{
	cbw_ctl_init(info, sizeof(*info), dev);
	cbw_ctl_name(info->name, name);
	return cbw_ctl_ioctl(DM_CBW_IOC_BITMAP_QUERY, info);
}

/*
 * All bitmaps of @dev in *@infos (to be freed).  Bitmaps may be added
 * between calls: ask again with room for the number the kernel reported.
 */
int cbw_ctl_list(const struct cbw_dev *dev, struct dm_cbw_bitmap_info **infos,
		 unsigned int *nr)
{
	struct dm_cbw_bitmap_list list;
	struct dm_cbw_bitmap_info *buf = NULL, *tmp;
	unsigned int cap = 16;
	int r;

	for (;;) {
		tmp = realloc(buf, (size_t)cap * sizeof(*buf));
		if (!tmp) {
			free(buf);
			return -ENOMEM;
		}
		buf = tmp;
		cbw_ctl_init(&list, sizeof(list), dev);
		list.entries = (uintptr_t)buf;
		list.nr_entries = cap;
		list.entry_size = sizeof(*buf);
		r = cbw_ctl_ioctl(DM_CBW_IOC_BITMAP_LIST, &list);
		if (r) {
			free(buf);
			return r;
		}
		if (list.nr_entries <= cap)
			break;
		cap = list.nr_entries + 16;
	}
	*infos = buf;
	*nr = list.nr_entries;
	return 0;
}

/*
 * One DM_CBW_IOC_BITMAP_READ or DM_CBW_IOC_SNAPSHOT_ACCESS call: @rd
 * carries offset and length in, nr_extents and next_offset out.
 */
int cbw_ctl_read(unsigned long req, const struct cbw_dev *dev,
		 const char *name, struct dm_cbw_bitmap_read *rd,
		 struct dm_cbw_extent *ext, unsigned int max)
{
	uint64_t offset = rd->offset, length = rd->length;

	cbw_ctl_init(rd, sizeof(*rd), dev);
	rd->offset = offset;
	rd->length = length;
	rd->extents = (uintptr_t)ext;
	rd->nr_extents = max;
	if (name)
		cbw_ctl_name(rd->name, name);
	return cbw_ctl_ioctl(req, rd);
}

int cbw_ctl_snapshot_info(const struct cbw_dev *dev,
			  struct dm_cbw_snapshot_info *info)
{
	cbw_ctl_init(info, sizeof(*info), dev);
	return cbw_ctl_ioctl(DM_CBW_IOC_SNAPSHOT_INFO, info);
}

/* Ends the freeze of bitmap @name (flags: DM_CBW_BITMAP_THAW_MERGE). */
int cbw_ctl_thaw(const struct cbw_dev *dev, const char *name, uint32_t flags)
{
	return cbw_ctl_bitmap(DM_CBW_IOC_BITMAP_THAW, dev, name, 0, flags);
}

/* Marks [@offset, @offset + @length) dirty in bitmap @name. */
int cbw_ctl_mark(const struct cbw_dev *dev, const char *name, uint64_t offset,
		 uint64_t length)
{
	struct dm_cbw_bitmap_mark m;

	cbw_ctl_init(&m, sizeof(m), dev);
	m.offset = offset;
	m.length = length;
	cbw_ctl_name(m.name, name);
	return cbw_ctl_ioctl(DM_CBW_IOC_BITMAP_MARK, &m);
}
