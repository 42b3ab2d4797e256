#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Large ranges and the limits of dirty bitmaps.
#
# Proves that a device takes at most 32 dirty bitmaps: the 33rd
# "cbwctl bitmap add" fails with the documented message (ENOSPC) and leaves
# the 32 as they were, and a bitmap can be added again once one is removed;
# and that a 1 GiB discard through the cbw device marks exactly the bytes it
# covers in a bitmap of the smallest granularity (512 bytes) and in a 64 KiB
# one, counting granules marked before only once.

. "$(dirname -- "$0")/lib.sh"

CBWCTL=${CBWCTL:-$CBW_TREE/tools/cbwctl/cbwctl}
MAX_BITMAPS=32
C=8
origin=
cow=

cbw_setup 64
cbw_require_cmds blkdiscard jq
[[ -x $CBWCTL ]] || cbw_bail "$CBWCTL is not built: run make -C tools/cbwctl"
cbw_kmsg_mark

# ---------------------------------------------------------------------------
# The number of bitmaps is capped
# ---------------------------------------------------------------------------
cbw_loop_create origin 1100
name=$(cbw_name cbw)
cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")

# bitmap_names DEV: the names of the bitmaps of DEV, in order, on one line.
bitmap_names()
{
	"$CBWCTL" --json bitmap list "$1" | jq -r '[.bitmaps[].name] | join(" ")'
}

added=0
for ((i = 0; i < MAX_BITMAPS; i++)); do
	"$CBWCTL" bitmap add "$name" "cap$i" --granularity 1G --disabled ||
		break
	added=$((added + 1))
done
cbw_expect_eq "$MAX_BITMAPS bitmaps can be added" "$MAX_BITMAPS" "$added"
before=$(bitmap_names "$name")
rc=0
out=$("$CBWCTL" bitmap add "$name" one-too-many --granularity 1G 2>&1) || rc=$?
cbw_info "cbwctl said: $out (exit status $rc)"
cbw_expect_eq "bitmap $((MAX_BITMAPS + 1)) is refused (exit status 1)" 1 "$rc"
cbw_expect_eq "cbwctl says that the device has the maximum and what to do" \
	"cbwctl: Device '$name' already has the maximum of $MAX_BITMAPS dirty bitmaps: remove one first (cbwctl bitmap remove $name NAME)" \
	"$out"
cbw_expect_eq "the refused add changed nothing" "$before" "$(bitmap_names "$name")"
rc=0
out=$("$CBWCTL" bitmap add "$name" cap0 --granularity 1G 2>&1) || rc=$?
cbw_expect_eq "at the maximum, an existing name is still reported as such" \
	"cbwctl: Bitmap already exists: cap0" "$out"
# shellcheck disable=SC2317 # run through cbw_check
remove_then_add()
{
	"$CBWCTL" bitmap remove "$name" "$1" &&
		"$CBWCTL" bitmap add "$name" "$2" --granularity 1G
}
cbw_check "with one removed, a bitmap can be added again" \
	remove_then_add cap7 again
for ((i = 0; i < MAX_BITMAPS; i++)); do
	"$CBWCTL" bitmap remove "$name" "cap$i" 2>/dev/null || true
done
"$CBWCTL" bitmap remove "$name" again
"$CBWCTL" bitmap remove "$name" one-too-many 2>/dev/null || true
cbw_expect_eq "all removed" "" "$(bitmap_names "$name")"

# ---------------------------------------------------------------------------
# A huge discard or write-zeroes marks exactly what it covers
# ---------------------------------------------------------------------------
GIB_SECTORS=$((1 << 21))

# count_of DEV NAME: dirty bytes of bitmap NAME.
count_of()
{
	"$CBWCTL" --json bitmap query "$1" "$2" | jq -r '.count'
}

# extents_of DEV NAME: the dirty extents, "offset+length" in bytes.
extents_of()
{
	"$CBWCTL" --json bitmap dump "$1" "$2" |
		jq -r '[.extents[] | "\(.offset)+\(.length)"] | join(" ")'
}

# sectors DEV START COUNT: a write of COUNT sectors at START.
sectors()
{
	dd if=/dev/urandom of="$1" bs=512 seek="$2" count="$3" \
		oflag=direct conv=notrunc status=none
}

big_discard()
{
	local what=discard start=5 end=$((5 + GIB_SECTORS))

	"$CBWCTL" bitmap add "$name" fine --granularity 512
	"$CBWCTL" bitmap add "$name" coarse --granularity 64K
	# Before: one granule outside, whole words and a few granules inside,
	# and a write that crosses the end of the big range.
	sectors "$guest" 1 1
	sectors "$guest" 64 64
	sectors "$guest" 1000 8
	sectors "$guest" $((end - 3)) 5
	cbw_check "$what: 1 GiB from sector $start through the cbw device" \
		blkdiscard -f -o $((start * 512)) -l $((GIB_SECTORS * 512)) \
		"$guest"
	# Marked: sector 1 and sectors 5..end+1.
	cbw_expect_eq "$what: 512 B granularity: every byte once" \
		$(((1 + end + 2 - start) * 512)) "$(count_of "$name" fine)"
	cbw_expect_eq "$what: 512 B granularity: two extents" \
		"512+512 $((start * 512))+$(((end + 2 - start) * 512))" \
		"$(extents_of "$name" fine)"
	cbw_expect_eq "$what: 64 KiB granularity: granules 0 to the end" \
		$(((((end + 1) >> 7) + 1) * 65536)) "$(count_of "$name" coarse)"
	"$CBWCTL" bitmap remove "$name" fine
	"$CBWCTL" bitmap remove "$name" coarse
}

big_discard
cbw_dm_remove "$name"

cbw_done
