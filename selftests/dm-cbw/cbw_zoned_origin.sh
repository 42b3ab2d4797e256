#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A host-aware zoned origin (scsi_debug zbc=host-aware), on kernels that
# still have host-aware disks (up to 6.9; later ones treat them as not
# zoned, and the test is skipped).
#
# Zone management changes data without writing it, so it would bypass
# copy-before-write.  Proves that a cbw device over a host-aware origin is
# not zoned, so that a zone reset through it is refused; that the zone's
# data then stays on the origin and the snapshot reads the point-in-time
# content; and that flushes and writes still work.

. "$(dirname -- "$0")/lib.sh"

cow=
cbw_setup 64
cbw_require_cmds blkzone
cbw_require_kmod sd_mod
[[ ! -d /sys/module/scsi_debug ]] || cbw_skip_all "scsi_debug is already loaded"
modprobe scsi_debug zbc=host-aware dev_size_mb=32 zone_size_mb=4 2>/dev/null ||
	cbw_skip_all "scsi_debug with zbc=host-aware is not available"
cbw_defer modprobe -r scsi_debug

# The scsi_debug disk, with a device node (there is no udev).
disk=
for i in $(seq 50); do
	for d in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*/block/*; do
		[[ -e $d ]] && disk=${d##*/}
	done
	[[ -z $disk ]] || break
	sleep 0.2
done
[[ -n $disk ]] || cbw_bail "no scsi_debug disk appeared"
[[ -b /dev/$disk ]] || mknod "/dev/$disk" b $(tr ':' ' ' <"/sys/block/$disk/dev")
# Since Linux 6.10 the block layer treats host-aware disks as regular
# ones: there is then no zoned origin a cbw table accepts.
zoned=$(cat "/sys/block/$disk/queue/zoned")
[[ $zoned != none ]] ||
	cbw_skip_all "this kernel treats host-aware disks as not zoned"
cbw_expect_eq "the origin is host-aware zoned" host-aware "$zoned"
origin=/dev/$disk
cbw_loop_create cow 32
Z=8192			# zone size in sectors
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
dm=$(dmsetup info -c --noheadings -o blkdevname "$name")
cbw_expect_eq "the cbw device is not zoned" none "$(cat "/sys/block/$dm/queue/zoned")"

"$CBW_STRESS" stamp "$guest" 1 "$Z" "$Z" >/dev/null
cbw_snapshot_start "$name" "$cow"
cbw_expect_eq "with a snapshot it is not zoned either" none \
	"$(cat "/sys/block/$dm/queue/zoned")"
cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
cbw_check_fails "a zone reset through the cbw device is refused" \
	blkzone reset -o "$Z" -c 1 "$guest"
cbw_check "the zone keeps its data" "$CBW_STRESS" verify "$guest" 1 "$Z" "$Z"
cbw_check "the snapshot reads the point-in-time content" \
	"$CBW_STRESS" verify "$acc" 1 "$Z" "$Z"
# To the conventional zone 0: scsi_debug warns about writes into a full
# sequential-write-preferred zone.
cbw_check "a write with fsync (a flush) works" \
	dd if=/dev/zero of="$guest" bs=4096 count=1 oflag=direct conv=notrunc,fsync status=none
cbw_check "the snapshot still reads the point-in-time content" \
	"$CBW_STRESS" verify "$acc" 1 "$Z" "$Z"
cbw_dm_remove "$acc_name"
cbw_dm_remove "$name"

cbw_done
