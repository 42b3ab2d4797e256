// SPDX-License-Identifier: GPL-2.0-only
/* Up to Linux 6.8: the limits hold the zoned model, an enum blk_zoned_model. */
#include <linux/blkdev.h>

void cbw_probe(struct queue_limits *limits);

void cbw_probe(struct queue_limits *limits)
{
	limits->zoned = BLK_ZONED_NONE;
}
