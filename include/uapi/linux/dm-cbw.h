/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-cbw: copy-before-write device-mapper target with a snapshot-access
 * device (image fleecing).
 *
 * Userspace interface: target names, snapshot states, and the ioctls of
 * the control device /dev/dm-cbw-control, which manage the dirty bitmaps
 * of cbw devices and report their snapshots.
 *
 * Every ioctl argument starts with the same four fields:
 *   size      sizeof() the structure as the caller knows it: at least the
 *             size of the structure's first version, at most 4096 bytes;
 *             bytes beyond what the kernel knows must be zero, so that
 *             structures can grow at the end
 *   flags     command flags; unknown bits are rejected with EINVAL
 *   dev_major, dev_minor
 *             the device-mapper device number of the cbw device (ENODEV
 *             when it is not one)
 * Commands are matched on the whole request code (type, number, direction
 * and size); any other code gives ENOTTY.  A structure that grows keeps
 * its request code, with the size of its first version: the size field
 * says how large the structure is.  Reserved fields and output
 * fields must be zero on input (EINVAL otherwise).  Names are
 * NUL-terminated within DM_CBW_NAME_LEN bytes, non-empty, and made of
 * printable ASCII characters other than space (0x21 to 0x7e).  Pointers
 * are passed as __u64.  Offsets and lengths are in bytes.  The caller
 * needs CAP_SYS_ADMIN (EPERM otherwise).
 */
#ifndef _UAPI_LINUX_DM_CBW_H
#define _UAPI_LINUX_DM_CBW_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define DM_CBW_TARGET_NAME		"cbw"
#define DM_CBW_ACCESS_TARGET_NAME	"cbw-access"

/* The COW argument of a table without a snapshot (tracking only). */
#define DM_CBW_NO_COW			"-"

/* Smallest and recommended copy granularity, in 512-byte sectors. */
#define DM_CBW_MIN_CHUNK_SECTORS	8
#define DM_CBW_DEFAULT_CHUNK_SECTORS	128

/* The control device, /dev/dm-cbw-control. */
#define DM_CBW_CONTROL_NAME		"dm-cbw-control"

/* Bitmap names, including the terminating NUL. */
#define DM_CBW_NAME_LEN			64

/* Dirty bitmap granularity in bytes: a power of 2 from 512 to 2 GiB. */
#define DM_CBW_MIN_GRANULARITY		512
#define DM_CBW_DEFAULT_GRANULARITY	65536
#define DM_CBW_MAX_GRANULARITY		(1ULL << 31)

/* Dirty bitmaps per cbw device; DM_CBW_IOC_BITMAP_ADD beyond: ENOSPC. */
#define DM_CBW_MAX_BITMAPS		32

/**
 * enum dm_cbw_snapshot_state - state of the snapshot of a cbw device
 * @DM_CBW_SNAPSHOT_NONE: no COW device in the live table; nothing is copied
 * @DM_CBW_SNAPSHOT_ACTIVE: the point-in-time image is readable
 * @DM_CBW_SNAPSHOT_BROKEN: a copy failed; the image can no longer be read
 *
 * "dmsetup status" prints these as "none", "active" and "broken".
 */
enum dm_cbw_snapshot_state {
	DM_CBW_SNAPSHOT_NONE = 0,
	DM_CBW_SNAPSHOT_ACTIVE = 1,
	DM_CBW_SNAPSHOT_BROKEN = 2,
};

/**
 * struct dm_cbw_version - DM_CBW_IOC_VERSION: interface version
 * @size: sizeof(struct dm_cbw_version)
 * @flags: must be 0
 * @dev_major: must be 0
 * @dev_minor: must be 0
 * @major: out: interface major version (incompatible changes)
 * @minor: out: interface minor version (additions)
 * @patch: out: fixes
 * @reserved: must be 0
 * @features: out: DM_CBW_FEATURE_* bits
 */
struct dm_cbw_version {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 major;
	__u32 minor;
	__u32 patch;
	__u32 reserved;
	__u64 features;
};

#define DM_CBW_FEATURE_BITMAPS		(1ULL << 0)
#define DM_CBW_FEATURE_SNAPSHOT_BITMAP	(1ULL << 1)
/* freeze_bitmap table argument, BITMAP_THAW and BITMAP_MARK (1.1). */
#define DM_CBW_FEATURE_FREEZE		(1ULL << 2)
/* Persistent bitmaps on a metadata device, generations (1.3). */
#define DM_CBW_FEATURE_PERSISTENT	(1ULL << 3)

/**
 * struct dm_cbw_bitmap_cmd - add, remove, clear, enable or disable a bitmap
 * @size: sizeof(struct dm_cbw_bitmap_cmd)
 * @flags: DM_CBW_IOC_BITMAP_ADD: DM_CBW_BITMAP_ADD_DISABLED and
 *	DM_CBW_BITMAP_PERSISTENT (EOPNOTSUPP when the device has no metadata
 *	device, EFBIG when its metadata device has no room for the bitmap);
 *	others: 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @granularity: DM_CBW_IOC_BITMAP_ADD: bytes per bit, 0 for the default
 *	(DM_CBW_DEFAULT_GRANULARITY); others: must be 0
 * @reserved: must be 0
 * @name: the bitmap
 */
struct dm_cbw_bitmap_cmd {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 granularity;
	__u64 reserved[2];
	char name[DM_CBW_NAME_LEN];
};

/* Create the bitmap disabled: it records nothing until enabled. */
#define DM_CBW_BITMAP_ADD_DISABLED	(1U << 0)

/*
 * DM_CBW_IOC_BITMAP_THAW ends the freeze of a bitmap (see the cbw table
 * argument freeze_bitmap): without flags the successor replaces the
 * frozen bits (the bitmap holds the writes since the freeze); with
 * DM_CBW_BITMAP_THAW_MERGE the bitmap keeps its frozen bits and gains the
 * successor's.  The bitmap records again if it recorded when frozen.
 * EINVAL when the bitmap is not frozen.
 */
#define DM_CBW_BITMAP_THAW_MERGE	(1U << 0)

/**
 * struct dm_cbw_bitmap_merge - DM_CBW_IOC_BITMAP_MERGE: target |= sources
 * @size: sizeof(struct dm_cbw_bitmap_merge)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @sources: pointer to @nr_sources names of DM_CBW_NAME_LEN bytes each
 * @nr_sources: number of source bitmaps, 1 to DM_CBW_MAX_MERGE_SOURCES
 * @reserved0: must be 0
 * @reserved: must be 0
 * @target: the bitmap that receives the bits
 *
 * Granularities may differ: a source bit marks every target bit whose
 * range it overlaps.
 */
struct dm_cbw_bitmap_merge {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 sources;
	__u32 nr_sources;
	__u32 reserved0;
	__u64 reserved[2];
	char target[DM_CBW_NAME_LEN];
};

#define DM_CBW_MAX_MERGE_SOURCES	64

/**
 * struct dm_cbw_bitmap_info - DM_CBW_IOC_BITMAP_QUERY, and list entries
 * @size: sizeof(struct dm_cbw_bitmap_info)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @granularity: out: bytes per bit
 * @count: out: dirty bytes (dirty bits times granularity, the last bit
 *	counting only the part inside the device)
 * @status: out: DM_CBW_BITMAP_* bits
 * @reserved0: must be 0
 * @successor_count: out: for a frozen bitmap, the dirty bytes its
 *	successor recorded since the freeze; 0 otherwise
 * @generation: out: a persistent bitmap's generation, a random number
 *	from 1 to 2^53 - 1 drawn anew whenever its bits are lost or reset
 *	(added, cleared, loaded inconsistent); 0 for a bitmap in memory
 *	only.  It was a reserved field, always 0, before interface 1.3
 * @name: in (query) or out (list): the bitmap
 *
 * A frozen bitmap is busy; it is recording when its successor is.
 */
struct dm_cbw_bitmap_info {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 granularity;
	__u64 count;
	__u32 status;
	__u32 reserved0;
	__u64 successor_count;
	__u64 generation;
	char name[DM_CBW_NAME_LEN];
};

#define DM_CBW_BITMAP_RECORDING		(1U << 0)	/* enabled */
#define DM_CBW_BITMAP_BUSY		(1U << 1)	/* in use */
/* Kept on the metadata device (an ADD flag too). */
#define DM_CBW_BITMAP_PERSISTENT	(1U << 2)
#define DM_CBW_BITMAP_FROZEN		(1U << 3)	/* a successor records */
/*
 * Its bits were lost (a checksum error, an unclean shutdown): it records
 * nothing, and everything but QUERY, LIST, REMOVE and CLEAR fails with
 * EUCLEAN until it is cleared.
 */
#define DM_CBW_BITMAP_INCONSISTENT	(1U << 4)

/**
 * struct dm_cbw_bitmap_list - DM_CBW_IOC_BITMAP_LIST: all bitmaps
 * @size: sizeof(struct dm_cbw_bitmap_list)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @entries: pointer to an array of @nr_entries struct dm_cbw_bitmap_info
 * @nr_entries: in: capacity of @entries; out: number of bitmaps, which
 *	may exceed the capacity (only that many were written: call again)
 * @entry_size: sizeof(struct dm_cbw_bitmap_info)
 * @reserved: must be 0
 */
struct dm_cbw_bitmap_list {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 entries;
	__u32 nr_entries;
	__u32 entry_size;
	__u64 reserved[2];
};

/**
 * struct dm_cbw_extent - a byte range
 * @offset: first byte
 * @length: number of bytes
 */
struct dm_cbw_extent {
	__u64 offset;
	__u64 length;
};

/**
 * struct dm_cbw_bitmap_read - dirty (or accessible) extents of a range
 * @size: sizeof(struct dm_cbw_bitmap_read)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @offset: start of the range to read
 * @length: length of the range
 * @extents: pointer to an array of @nr_extents struct dm_cbw_extent
 * @nr_extents: in: capacity of @extents (at most DM_CBW_MAX_EXTENTS);
 *	out: number filled
 * @reserved0: must be 0
 * @next_offset: out: where the next call continues; @offset + @length
 *	(clamped to the device) once the range is done
 * @reserved: must be 0
 * @name: DM_CBW_IOC_BITMAP_READ: the bitmap; DM_CBW_IOC_SNAPSHOT_ACCESS:
 *	must be empty
 *
 * @offset and @length must be multiples of 512 (EINVAL otherwise).
 * Extents are aligned to the bitmap granularity (the snapshot chunk size)
 * and clamped to the range and the device.  Extents are returned in
 * ascending order; a range is read in bounded pieces by calling again
 * from @next_offset.
 */
struct dm_cbw_bitmap_read {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 offset;
	__u64 length;
	__u64 extents;
	__u32 nr_extents;
	__u32 reserved0;
	__u64 next_offset;
	__u64 reserved[2];
	char name[DM_CBW_NAME_LEN];
};

#define DM_CBW_MAX_EXTENTS		4096

/**
 * struct dm_cbw_bitmap_mark - DM_CBW_IOC_BITMAP_MARK: mark a range dirty
 * @size: sizeof(struct dm_cbw_bitmap_mark)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @offset: start of the range, a multiple of 512
 * @length: length of the range, a multiple of 512, not 0; the range must
 *	lie inside the device
 * @reserved: must be 0
 * @name: the bitmap
 *
 * Marks every granule the range touches, as a completed write would, even
 * in a disabled bitmap.  A frozen bitmap's successor is marked instead,
 * so that the marks survive the thaw; a bitmap that is busy for another
 * reason is refused with EBUSY.  A backup uses this to mark again what it
 * could not copy.
 */
struct dm_cbw_bitmap_mark {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u64 offset;
	__u64 length;
	__u64 reserved[2];
	char name[DM_CBW_NAME_LEN];
};

/**
 * struct dm_cbw_snapshot_info - DM_CBW_IOC_SNAPSHOT_INFO
 * @size: sizeof(struct dm_cbw_snapshot_info)
 * @flags: must be 0
 * @dev_major: cbw device
 * @dev_minor: cbw device
 * @state: out: enum dm_cbw_snapshot_state
 * @error: out: negative errno that broke the snapshot, or 0
 * @chunk_size: out: bytes per chunk
 * @chunks_total: out: chunks of the device
 * @chunks_to_copy: out: chunks a guest write would copy first
 * @chunks_copied: out: chunks copied to the COW device
 * @chunks_accessible: out: chunks a snapshot reader may read
 * @copies_in_flight: out: chunks being copied
 * @copies_failed: out: copies that failed
 * @copies_timed_out: out: copies that did not finish in time
 * @reserved: must be 0
 */
struct dm_cbw_snapshot_info {
	__u32 size;
	__u32 flags;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 state;
	__s32 error;
	__u64 chunk_size;
	__u64 chunks_total;
	__u64 chunks_to_copy;
	__u64 chunks_copied;
	__u64 chunks_accessible;
	__u64 copies_in_flight;
	__u64 copies_failed;
	__u64 copies_timed_out;
	__u64 reserved[4];
};

#define DM_CBW_IOCTL	0xCB

enum {
	DM_CBW_VERSION_CMD = 0x40,
	DM_CBW_BITMAP_ADD_CMD,
	DM_CBW_BITMAP_REMOVE_CMD,
	DM_CBW_BITMAP_CLEAR_CMD,
	DM_CBW_BITMAP_ENABLE_CMD,
	DM_CBW_BITMAP_DISABLE_CMD,
	DM_CBW_BITMAP_MERGE_CMD,
	DM_CBW_BITMAP_QUERY_CMD,
	DM_CBW_BITMAP_LIST_CMD,
	DM_CBW_BITMAP_READ_CMD,
	DM_CBW_SNAPSHOT_INFO_CMD,
	DM_CBW_SNAPSHOT_ACCESS_CMD,
	DM_CBW_BITMAP_THAW_CMD,
	DM_CBW_BITMAP_MARK_CMD,
};

#define DM_CBW_IOC_VERSION \
	_IOWR(DM_CBW_IOCTL, DM_CBW_VERSION_CMD, struct dm_cbw_version)
#define DM_CBW_IOC_BITMAP_ADD \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_ADD_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_REMOVE \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_REMOVE_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_CLEAR \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_CLEAR_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_ENABLE \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_ENABLE_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_DISABLE \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_DISABLE_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_MERGE \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_MERGE_CMD, struct dm_cbw_bitmap_merge)
#define DM_CBW_IOC_BITMAP_QUERY \
	_IOWR(DM_CBW_IOCTL, DM_CBW_BITMAP_QUERY_CMD, struct dm_cbw_bitmap_info)
#define DM_CBW_IOC_BITMAP_LIST \
	_IOWR(DM_CBW_IOCTL, DM_CBW_BITMAP_LIST_CMD, struct dm_cbw_bitmap_list)
#define DM_CBW_IOC_BITMAP_READ \
	_IOWR(DM_CBW_IOCTL, DM_CBW_BITMAP_READ_CMD, struct dm_cbw_bitmap_read)
#define DM_CBW_IOC_SNAPSHOT_INFO \
	_IOWR(DM_CBW_IOCTL, DM_CBW_SNAPSHOT_INFO_CMD, struct dm_cbw_snapshot_info)
#define DM_CBW_IOC_SNAPSHOT_ACCESS \
	_IOWR(DM_CBW_IOCTL, DM_CBW_SNAPSHOT_ACCESS_CMD, struct dm_cbw_bitmap_read)

#define DM_CBW_IOC_BITMAP_THAW \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_THAW_CMD, struct dm_cbw_bitmap_cmd)
#define DM_CBW_IOC_BITMAP_MARK \
	_IOW(DM_CBW_IOCTL, DM_CBW_BITMAP_MARK_CMD, struct dm_cbw_bitmap_mark)

#endif /* _UAPI_LINUX_DM_CBW_H */
