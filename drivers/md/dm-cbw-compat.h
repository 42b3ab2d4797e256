/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cbw builds against Linux 6.1 and newer.  Every difference between
 * kernel versions that dm-cbw depends on is absorbed here, by testing for
 * the feature rather than the version number, so that stable kernels with
 * backports are handled too.
 */
#ifndef DM_CBW_COMPAT_H
#define DM_CBW_COMPAT_H

#include <linux/blkdev.h>

/*
 * Linux 6.5 replaced fmode_t open modes by blk_mode_t; the bit values did
 * not change.  BLK_OPEN_READ is a macro, so its presence tells which one
 * dm_get_device() takes.
 */
#ifdef BLK_OPEN_READ
#define CBW_OPEN_READ	BLK_OPEN_READ
#else
#define CBW_OPEN_READ	FMODE_READ
#endif

#endif /* DM_CBW_COMPAT_H */
