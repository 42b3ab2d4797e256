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

/* Nothing used by dm-cbw differs between the supported kernels today. */

#endif /* DM_CBW_COMPAT_H */
