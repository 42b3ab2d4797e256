#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# I/O accounting of the cbw device after copy-heavy I/O.
#
# Writes that wait for a copy are sent on by dm-cbw itself.  Proves that
# after a fio run of random 4 KiB writes under a snapshot with 4 KiB chunks
# (nearly every write copies a chunk first), from several jobs at a queue
# depth of 16, the device has nothing in flight: /sys/block/dm-N/inflight
# reads "0 0", and its busy time (io_ticks) stops growing.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
cbw_setup 96
cbw_require_cmds fio
cbw_loop_create origin 32
cbw_loop_create cow 32
name=$(cbw_name cbw)
cbw_create "$name" "$origin" 8
cbw_snapshot_start "$name" "$cow"
guest=$(cbw_dm_path "$name")
dm=$(dmsetup info -c --noheadings -o blkdevname "$name")

fio --name=copies --filename="$guest" --rw=randwrite --bs=4k --direct=1 \
	--ioengine=libaio --iodepth=16 --numjobs=4 --size=32M --io_size=8M \
	--randrepeat=0 --group_reporting >/dev/null ||
	cbw_bail "fio failed"
cbw_expect_cmp "the run copied chunks" "$(cbw_stat "$name" copied)" -gt 1000

inflight=
for i in $(seq 50); do
	inflight=$(awk '{ print $1, $2 }' "/sys/block/$dm/inflight")
	[[ $inflight != "0 0" ]] || break
	sleep 0.1
done
cbw_expect_eq "nothing is in flight afterwards" "0 0" "$inflight"
ticks1=$(awk '{ print $10 }' "/sys/block/$dm/stat")
sleep 1
ticks2=$(awk '{ print $10 }' "/sys/block/$dm/stat")
cbw_expect_eq "the device is not busy any more (io_ticks stays)" "$ticks1" "$ticks2"

cbw_done
