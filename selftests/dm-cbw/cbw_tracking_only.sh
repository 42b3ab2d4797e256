#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A cbw device without a snapshot ("-" as COW device) behaves like
# dm-linear.
#
# Proves that fio random writes with verification (aligned 4 KiB blocks and
# unaligned 512 B..192 KiB blocks) pass through the tracking-only device,
# that its content is identical to what a dm-linear over the same origin and
# the origin itself read, that data written through either is read back
# through the other, that discard and write-zeroes reach the origin, that
# nothing is copied and the status stays "none 0 0 0 0 0 -", and that an
# access device over it has no snapshot to read (ENODATA).

. "$(dirname -- "$0")/lib.sh"

C=128
origin=
cbw_setup 64
cbw_require_cmds fio cmp blkdiscard
cbw_loop_create origin 16
name=$(cbw_name cbw)
lin_name=$(cbw_name lin)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
cbw_dm_create "$lin_name" "0 $len linear $origin 0"
lin=$(cbw_dm_path "$lin_name")

devno=$(printf '%d:%d' "$(stat -c '0x%t' "$origin")" "$(stat -c '0x%T' "$origin")")
cbw_expect_eq "table line" "0 $len cbw $devno - $C" "$(dmsetup table "$name")"
cbw_expect_eq "status without a snapshot" "$C none 0 0 0 0 0 -" \
	"$(cbw_status_core "$name")"
cbw_expect_eq "same size as the origin" "$len" "$(cbw_size "$guest")"
cbw_expect_eq "same logical block size as the origin" \
	"$(blockdev --getss "$origin")" "$(blockdev --getss "$guest")"

# shellcheck disable=SC2317 # run through cbw_check
same_content()
{
	echo 3 >/proc/sys/vm/drop_caches
	cmp -- "$guest" "$lin" && cmp -- "$guest" "$origin"
}

fio_common=(--filename="$guest" --direct=1 --ioengine=psync --numjobs=1
	--verify_fatal=1 --do_verify=1 --group_reporting --output-format=terse)
cbw_check "fio random 4 KiB writes with crc32c verification" \
	fio --name=aligned "${fio_common[@]}" --rw=randwrite --bs=4k \
	--size=4m --verify=crc32c

cbw_check "fio random writes of 512 B..192 KiB at 512 B-aligned offsets, verified" \
	fio --name=unaligned "${fio_common[@]}" --rw=randwrite \
	--bsrange=512-192k --offset=4k --size=6m --verify=crc32c
cbw_check "cbw, dm-linear and the origin still read the same data" same_content

"$CBW_STRESS" stamp "$lin" 5 1000 3000 >/dev/null
cbw_check "data written through dm-linear reads back through cbw" \
	"$CBW_STRESS" verify "$guest" 5 1000 3000
"$CBW_STRESS" stamp "$guest" 6 7 5000 >/dev/null
cbw_check "data written through cbw lands on the origin at the same offset" \
	"$CBW_STRESS" verify "$origin" 6 7 5000

"$CBW_STRESS" stamp "$guest" 7 >/dev/null
cbw_check "discard through cbw" blkdiscard -f -o $((300 * 512)) -l $((5000 * 512)) "$guest"
cbw_check "write-zeroes through cbw" blkdiscard -f -z -o $((9000 * 512)) -l $((777 * 512)) "$guest"
# shellcheck disable=SC2317 # run through cbw_check
zeros()
{
	cmp -n $(($3 * 512)) -i $(($2 * 512)):0 -- "$1" /dev/zero
}
echo 3 >/proc/sys/vm/drop_caches
cbw_check "the discarded range reads as zeros" zeros "$guest" 300 5000
cbw_check "the zeroed range reads as zeros" zeros "$guest" 9000 777
cbw_check "data before the discarded range is intact" "$CBW_STRESS" verify "$guest" 7 0 300
cbw_check "data between the ranges is intact" "$CBW_STRESS" verify "$guest" 7 5300 3700
cbw_check "data after the zeroed range is intact" "$CBW_STRESS" verify "$guest" 7 9777 $((len - 9777))
cbw_check "cbw, dm-linear and the origin agree after discard and write-zeroes" same_content

cbw_expect_eq "still no snapshot, nothing copied" "$C none 0 0 0 0 0 -" \
	"$(cbw_status_core "$name")"

cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
cbw_expect_eq "access device over a tracking-only device: no snapshot" "none 0 0" \
	"$(cbw_status_core "$acc_name")"
got=$("$CBW_STRESS" probe "$acc" 0 8 2>&1) || true
cbw_expect_eq "access reads without a snapshot fail with ENODATA" ENODATA "$got"
cbw_dm_remove "$acc_name"

cbw_done
