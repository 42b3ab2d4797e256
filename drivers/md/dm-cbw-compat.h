/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-cbw builds against Linux 6.1 and newer.  Every difference between
 * kernel versions that dm-cbw depends on is absorbed here, by testing for
 * the feature rather than the version number, so that stable kernels with
 * backports are handled too: each HAVE_* comes from compiling a probe in
 * drivers/md/compat against the kernel's headers (see Kbuild).  To absorb
 * a new difference, add a probe that compiles only where the interface has
 * one form, and a cbw_* wrapper here that the call sites use.
 */
#ifndef DM_CBW_COMPAT_H
#define DM_CBW_COMPAT_H

#include <linux/blkdev.h>

#include "dm-cbw-compat-probed.h"

/*
 * Makes the device that LIMITS describe not zoned.  The zoned model was an
 * enum in the limits up to 6.8, a bool in 6.9 and 6.10, and is a feature
 * flag since 6.11.
 */
static inline void cbw_limits_clear_zoned(struct queue_limits *limits)
{
#if defined(HAVE_BLK_FEAT_ZONED)
	limits->features &= ~BLK_FEAT_ZONED;
#elif defined(HAVE_BLK_ZONED_MODEL)
	limits->zoned = BLK_ZONED_NONE;
#else
	limits->zoned = false;
#endif
}

#endif /* DM_CBW_COMPAT_H */
