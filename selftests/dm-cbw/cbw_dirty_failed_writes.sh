#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Failed writes mark the dirty bitmaps.
#
# The origin is a dm-linear device whose second half is dm-flakey failing
# every write (error_writes).  Proves that a write that fails on the
# origin still marks its granules: a 128 KiB write whose first 64 KiB
# reach the good half before the second 64 KiB fail (dm splits it at the
# boundary), a write that fails completely, and, while a snapshot is
# active, a write whose copy succeeded but whose own write failed; that
# writes that succeed are marked as before, reads not at all; and that a
# write that dm-cbw fails itself because its copy failed marks nothing.

. "$(dirname -- "$0")/lib.sh"

G=65536			# bitmap granularity, bytes
disk=
cow=
cbw_setup 80
cbw_require_kmod dm-flakey
cbw_have_target linear flakey || cbw_skip_all "dm-linear or dm-flakey is missing"
cbw_require_cbwctl
cbw_loop_create disk 16
cbw_loop_create cow 16
len=$(cbw_size "$disk")
half=$((len / 2))
bad=$((half * 512))	# first byte of the failing half

origin=$(cbw_name origin)
cbw_dm_create "$origin" "0 $half linear $disk 0
$half $half flakey $disk $half 0 3600 1 error_writes"
origin=$(cbw_dm_path "$origin")
name=$(cbw_name cbw)
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
"$CBWCTL" bitmap add "$name" b --granularity 64K >/dev/null ||
	cbw_bail "cbwctl bitmap add failed"

# write OFFSET LENGTH: one O_DIRECT write; its status.
write()
{
	dd if=/dev/urandom of="$guest" bs="$2" count=1 seek="$1" \
		oflag=direct,seek_bytes conv=notrunc status=none 2>/dev/null
}

# extents: "OFFSET+LENGTH..." of bitmap b, in bytes.
extents()
{
	local out off length rest list=()

	out=$("$CBWCTL" --bytes bitmap dump "$name" b) ||
		cbw_bail "cbwctl bitmap dump $name b failed"
	while read -r off length rest; do
		[[ $off =~ ^[0-9]+$ && -z $rest ]] || continue
		list+=("$off+$length")
	done <<<"$out"
	echo "${list[*]}"
}

clear_bitmap()
{
	"$CBWCTL" bitmap clear "$name" b >/dev/null || cbw_bail "cbwctl bitmap clear failed"
}

cbw_check "a write to the good half succeeds" write 0 4096
cbw_expect_eq "and marks its granule" "0+$G" "$(extents)"
clear_bitmap

cbw_check_fails "a 128 KiB write across the boundary fails" write $((bad - G)) $((2 * G))
# The loop file was zero there: random data differs.
cbw_check_fails "its first 64 KiB reached the origin" \
	cmp -s -n "$G" -i "$((bad - G)):0" "$disk" /dev/zero
cbw_expect_eq "the failed write marks both granules" "$((bad - G))+$((2 * G))" "$(extents)"
clear_bitmap

cbw_check_fails "a write to the failing half fails" write $((bad + 4 * G)) 4096
cbw_expect_eq "and marks its granule" "$((bad + 4 * G))+$G" "$(extents)"
clear_bitmap

dd if="$guest" of=/dev/null bs=1M iflag=direct status=none
cbw_expect_eq "reads mark nothing" "" "$(extents)"

# Under a snapshot: the copy reads the origin (reads work) and writes the
# COW device; then the guest write itself fails.
cbw_snapshot_start "$name" "$cow"
cbw_check_fails "under a snapshot, a write to the failing half fails" \
	write $((bad + 8 * G)) 4096
cbw_expect_eq "its chunk was copied first" 1 "$(cbw_stat "$name" copied)"
cbw_expect_eq "and it marks its granule" "$((bad + 8 * G))+$G" "$(extents)"
clear_bitmap

# A write that dm-cbw fails itself because its copy failed (a COW device
# that fails writes, break_guest_write) never reached the origin.
cbw_snapshot_end "$name"
fcow=$(cbw_name fcow)
cbw_dm_create "$fcow" "0 $len flakey $cow 0 0 3600 1 error_writes"
cbw_snapshot_start "$name" "$(cbw_dm_path "$fcow")"
cbw_check_fails "a write whose copy fails fails" write $((2 * G)) 4096
cbw_expect_eq "its chunk was not copied" 0 "$(cbw_stat "$name" copied)"
cbw_expect_eq "and it marks nothing" "" "$(extents)"
cbw_snapshot_end "$name"
cbw_dm_remove "$fcow"

cbw_done
