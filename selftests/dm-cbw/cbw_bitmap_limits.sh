#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Large ranges and the limits of dirty bitmaps.
#
# Proves that a device takes at most 32 dirty bitmaps: the 33rd
# "cbwctl bitmap add" fails with the documented message (ENOSPC) and leaves
# the 32 as they were, and a bitmap can be added again once one is removed;
# that a 1 GiB discard through the cbw device marks exactly the bytes it
# covers in a bitmap of the smallest granularity (512 bytes) and in a 64 KiB
# one, counting granules marked before only once; and that the snapshot access map of an 8 GiB snapshot at 4 KiB chunks
# (2097152 chunks), made sparse by snapshot discards with extents across,
# at and between the boundaries of 65536 chunks, is returned exactly as a
# model says, whole and in small batches, for the whole device and for a
# range.

. "$(dirname -- "$0")/lib.sh"

MAX_BITMAPS=32
C=8
origin=
cow=

cbw_setup 64
cbw_require_cmds blkdiscard jq
cbw_require_cbwctl
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

# ---------------------------------------------------------------------------
# The access map of a large sparse snapshot
# ---------------------------------------------------------------------------
CHUNKS=$((1 << 21))		# 8 GiB at 4 KiB chunks
CB=$((C * 512))
cbw_loop_create origin $((CHUNKS * CB >> 20))
cbw_loop_create cow $((CHUNKS * CB >> 20))
big=$(cbw_name big)
acc_name=$(cbw_name acc)
cbw_create "$big" "$origin" "$C"
cbw_check "snapshot of 8 GiB at 4 KiB chunks" cbw_snapshot_start "$big" "$cow"
cbw_access_create "$acc_name" "$big" rw
acc=$(cbw_dm_path "$acc_name")

# Kept extents, in chunks: first chunk, across a 64K-chunk boundary, ending
# at one, starting at one, a long one across several, the last chunk.
keep=(0:1 65535:2 131071:1 196608:1 300000:200000 $((CHUNKS - 1)):1)
prev=0
for k in "${keep[@]}"; do
	s=${k%:*}
	if ((s > prev)); then
		blkdiscard -f -o $((prev * CB)) -l $(((s - prev) * CB)) "$acc" ||
			cbw_fail "snapshot discard of chunks $prev-$((s - 1))"
	fi
	prev=$((s + ${k#*:}))
done
cbw_expect_eq "snapshot discards left the kept chunks accessible" \
	$((1 + 2 + 1 + 1 + 200000 + 1)) "$(cbw_stat "$big" accessible)"

# model [OFFSET LENGTH]: the kept extents clamped to the byte range.
model()
{
	local off=${1:-0} end k s e out=()

	end=$((off + ${2:-$((CHUNKS * CB))}))
	for k in "${keep[@]}"; do
		s=$((${k%:*} * CB))
		e=$((s + ${k#*:} * CB))
		((s < off)) && s=$off
		((e > end)) && e=$end
		((s < e)) && out+=("$s+$((e - s))")
	done
	echo "${out[*]}"
}

# access_map BATCH [OPTIONS]: the access map, merged across batches.
access_map()
{
	local batch=$1

	shift
	"$CBWCTL" --json snapshot access-map "$big" --batch "$batch" "$@" |
		jq -r 'reduce .extents[] as $e ([];
			if length > 0 and (.[-1][0] + .[-1][1]) == $e.offset
			then .[-1][1] += $e.length else . + [[$e.offset, $e.length]] end)
			| map("\(.[0])+\(.[1])") | join(" ")'
}

cbw_expect_eq "access map of the whole device" "$(model)" "$(access_map 4096)"
cbw_expect_eq "access map in batches of 1 extent" "$(model)" "$(access_map 1)"
cbw_expect_eq "access map in batches of 3 extents" "$(model)" "$(access_map 3)"
off=$((65536 * CB - 1024))
len=$(((300001 - 65536) * CB + 1024 + 512))
cbw_expect_eq "access map of a range that starts and ends inside extents" \
	"$(model "$off" "$len")" \
	"$(access_map 2 --offset "$off" --length "$len")"
off=$((300000 * CB + 512))
len=$((180000 * CB))
cbw_expect_eq "access map of a range inside one long extent" \
	"$(model "$off" "$len")" \
	"$(access_map 4096 --offset "$off" --length "$len")"

cbw_dm_remove "$acc_name"
cbw_dm_remove "$big"

cbw_done
