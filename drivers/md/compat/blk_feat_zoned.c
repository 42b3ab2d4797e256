// SPDX-License-Identifier: GPL-2.0-only
/* Linux 6.11 and later: a zoned device has BLK_FEAT_ZONED in its limits. */
#include <linux/blkdev.h>

void cbw_probe(struct queue_limits *limits);

void cbw_probe(struct queue_limits *limits)
{
	limits->features &= ~BLK_FEAT_ZONED;
}
