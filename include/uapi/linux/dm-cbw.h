/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-cbw: copy-before-write device-mapper target with a snapshot-access
 * device (image fleecing).
 *
 * This header holds what userspace shares with the kernel module: target
 * names and the snapshot states reported by "dmsetup status".  The control
 * interface for bitmaps grows here.
 */
#ifndef _UAPI_LINUX_DM_CBW_H
#define _UAPI_LINUX_DM_CBW_H

#include <linux/types.h>

#define DM_CBW_TARGET_NAME		"cbw"
#define DM_CBW_ACCESS_TARGET_NAME	"cbw-access"

/* The COW argument of a table without a snapshot (tracking only). */
#define DM_CBW_NO_COW			"-"

/* Smallest and recommended copy granularity, in 512-byte sectors. */
#define DM_CBW_MIN_CHUNK_SECTORS	8
#define DM_CBW_DEFAULT_CHUNK_SECTORS	128

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

#endif /* _UAPI_LINUX_DM_CBW_H */
