#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The snapshot_bitmap option: a snapshot restricted to the chunks dirty in
# a bitmap at the snapshot point.
#
# A 4 KiB bitmap records writes that are not aligned to the 64 KiB chunks
# (inside one chunk, across a chunk boundary, a single sector, the last
# granule of the device, a run of several chunks); then a snapshot starts
# with that bitmap (cbwctl snapshot start --bitmap).  Proves that exactly
# the rounded-out chunks are to copy and accessible (status, snapshot
# info, and cbwctl snapshot access-map listing exactly those extents); that
# access reads inside them return the point-in-time data, also after guest
# writes copied them; that access reads elsewhere fail with ENODATA
# ("No data available" for dd iflag=direct); that guest writes elsewhere
# make no copy and writes inside do; and that clearing or removing the
# bitmap afterwards does not change the snapshot.  Also a bitmap coarser
# than the chunks (one 1 MiB granule: 16 chunks) and an empty bitmap (an
# empty snapshot).

. "$(dirname -- "$0")/lib.sh"

C=128			# chunk size in sectors (64 KiB)
CB=$((C * 512))		# in bytes
origin=
cow=
cbw_setup 80
cbw_require_cbwctl
cbw_loop_create origin 16
cbw_loop_create cow 16
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")
total=$((len / C))

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
# cbwctl creates the access device; removed before the cbw device.
cbw_defer cbw_dm_remove "$acc_name"
acc=/dev/mapper/$acc_name

ctl()
{
	"$CBWCTL" "$@" >/dev/null || cbw_bail "cbwctl $* failed"
}

stamp()
{
	"$CBW_STRESS" stamp "$guest" "$@" >/dev/null
}

# "to_copy copied accessible" from the status line of the cbw device.
counts()
{
	local -a f

	read -r -a f <<<"$(dmsetup status "$name")"
	echo "${f[7]} ${f[6]} ${f[9]}"
}

# The extents of "cbwctl snapshot access-map", as OFFSET+LENGTH in bytes.
access_map()
{
	local out off length rest list=()

	out=$("$CBWCTL" --bytes snapshot access-map "$name") ||
		cbw_bail "cbwctl snapshot access-map failed"
	while read -r off length rest; do
		[[ $off =~ ^[0-9]+$ && -z $rest ]] || continue
		list+=("$off+$length")
	done <<<"$out"
	echo "${list[*]}"
}

# probe_is DESCRIPTION EXPECTED SECTOR COUNT: one O_DIRECT access read.
probe_is()
{
	local got

	got=$("$CBW_STRESS" probe "$acc" "$3" "$4" 2>&1) || true
	cbw_expect_eq "$1" "$2" "$got"
}

# verify_pieces DESCRIPTION GEN:START:COUNT...: the access device holds
# generation GEN in each range.
verify_pieces()
{
	local desc=$1 p out failed=0 gen start count

	shift
	for p; do
		IFS=: read -r gen start count <<<"$p"
		if ! out=$("$CBW_STRESS" verify "$acc" "$gen" "$start" "$count" 2>&1); then
			cbw_info <<<"$out"
			failed=1
		fi
	done
	if ((failed)); then
		cbw_fail "$desc"
	else
		cbw_pass "$desc"
	fi
}

# ---------------------------------------------------------------------------
# A 4 KiB bitmap, 64 KiB chunks
# ---------------------------------------------------------------------------
stamp 0
ctl bitmap add "$name" inc --granularity 4K
stamp 1 120 8		# 4 KiB at 60 KiB: chunk 0
stamp 1 248 16		# 8 KiB at 124 KiB: across chunks 1 and 2
stamp 1 2249 1		# one sector in chunk 17
stamp 1 20488 400	# 200 KiB from 10 MiB + 4 KiB: chunks 160-163
stamp 1 $((len - 8)) 8	# the last 4 KiB: chunk 255
in_snap="0 1 2 17 160 161 162 163 $((total - 1))"
nr_in=9
want_map="0+$((3 * CB)) $((17 * CB))+$CB $((160 * CB))+$((4 * CB)) $(((total - 1) * CB))+$CB"

cbw_check "cbwctl snapshot start --bitmap inc --access" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --chunk 64K --bitmap inc \
	--access "$acc_name"
read -r _ _ _ _ _ _ opt_args <<<"$(dmsetup table "$name")"
cbw_expect_eq "the table names the snapshot bitmap" "2 snapshot_bitmap inc" "$opt_args"
cbw_expect_eq "chunks to copy, copied, accessible: the $nr_in rounded-out chunks" \
	"$nr_in 0 $nr_in" "$(counts)"
cbw_expect_eq "the access device counts them too" "active $nr_in $total" \
	"$(cbw_stat "$acc_name" state) $(cbw_stat "$acc_name" accessible) $(cbw_stat "$acc_name" total)"
cbw_expect_eq "snapshot access-map lists exactly chunks $in_snap" \
	"$want_map" "$(access_map)"

verify_pieces "access reads of the chunks in the snapshot: point-in-time data" \
	0:0:120 1:120:8 0:128:120 1:248:16 0:264:120 \
	0:$((17 * C)):73 1:2249:1 0:2250:54 \
	0:$((160 * C)):8 1:20488:400 0:20888:104 \
	0:$(((total - 1) * C)):120 1:$((len - 8)):8
probe_is "chunk 3 (after the edge chunk 2) is not readable" ENODATA $((3 * C)) 8
probe_is "chunk 16 (before chunk 17) is not readable" ENODATA $((16 * C)) "$C"
probe_is "chunk 164 (after the run) is not readable" ENODATA $((164 * C)) 1
probe_is "chunk $((total - 2)) is not readable" ENODATA $(((total - 2) * C)) "$C"
probe_is "a read across chunks 2 and 3 is not readable" ENODATA $((3 * C - 8)) 16
err=$(dd if="$acc" of=/dev/null bs=4096 count=1 skip=$((3 * CB / 4096)) \
	iflag=direct 2>&1) || true
case $err in
*"No data available"*) cbw_pass "dd iflag=direct outside the snapshot: No data available" ;;
*) cbw_info "dd said: $err"; cbw_fail "dd iflag=direct outside the snapshot: No data available" ;;
esac

# Guest writes.
stamp 2 $((5 * C)) "$C"
stamp 2 $((100 * C)) 8
cbw_expect_eq "guest writes outside the snapshot make no copy" \
	"$nr_in 0 $nr_in" "$(counts)"
stamp 2 2200 8
cbw_expect_eq "a guest write inside chunk 17 copies it" \
	"$((nr_in - 1)) 1 $nr_in" "$(counts)"
stamp 2 250 10
cbw_expect_eq "a guest write across chunks 1 and 2 copies both" \
	"$((nr_in - 3)) 3 $nr_in" "$(counts)"
verify_pieces "copied chunks still read the point-in-time data" \
	0:128:120 1:248:16 0:264:120 0:$((17 * C)):73 1:2249:1 0:2250:54
cbw_check "the guest reads its own new data" \
	"$CBW_STRESS" verify "$guest" 2 250 10

# Later changes to the bitmap do not change the snapshot.
ctl bitmap clear "$name" inc
stamp 2 $((40 * C)) 8
cbw_expect_eq "after clearing the bitmap: same chunks, a write to chunk 40 copies nothing" \
	"$((nr_in - 3)) 3 $nr_in" "$(counts)"
probe_is "chunk 40, dirty in the bitmap now, is still not readable" ENODATA $((40 * C)) 8
ctl bitmap remove "$name" inc
cbw_expect_eq "after removing the bitmap: access-map unchanged" \
	"$want_map" "$(access_map)"
verify_pieces "after removing the bitmap: chunks 160-163 still readable" \
	0:$((160 * C)):8 1:20488:400
stamp 2 $((161 * C)) 1
cbw_expect_eq "a write to chunk 161 still copies it" \
	"$((nr_in - 4)) 4 $nr_in" "$(counts)"

cbw_check "cbwctl snapshot stop" "$CBWCTL" snapshot stop "$name"
cbw_check_fails "the access device is gone" dmsetup info "$acc_name"
cbw_expect_eq "no snapshot any more" none "$(cbw_stat "$name" state)"

# ---------------------------------------------------------------------------
# A bitmap coarser than the chunks, and an empty one
# ---------------------------------------------------------------------------
ctl bitmap add "$name" big --granularity 1M
stamp 3 $((5 * 2048 + 16)) 8	# 4 KiB at 5 MiB + 8 KiB
ctl bitmap add "$name" empty --disabled
cbw_check "snapshot start with a 1 MiB bitmap and 64 KiB chunks" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --chunk 64K --bitmap big \
	--access "$acc_name"
cbw_expect_eq "one dirty 1 MiB granule: 16 chunks to copy and accessible" \
	"16 0 16" "$(counts)"
cbw_expect_eq "access-map: the whole granule" "$((5 << 20))+$((1 << 20))" \
	"$(access_map)"
probe_is "the chunk before the granule is not readable" ENODATA $((80 * C - C)) "$C"
probe_is "the last chunk of the granule is readable" OK $((80 * C + 15 * C)) "$C"
cbw_check "snapshot stop" "$CBWCTL" snapshot stop "$name"

cbw_check "snapshot start with an empty bitmap" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --bitmap empty \
	--access "$acc_name"
cbw_expect_eq "an empty bitmap: nothing to copy, nothing accessible" \
	"0 0 0" "$(counts)"
cbw_expect_eq "access-map is empty" "" "$(access_map)"
stamp 4 0 "$C"
cbw_expect_eq "guest writes copy nothing" "0 0 0" "$(counts)"
probe_is "nothing is readable" ENODATA 0 8
cbw_check "snapshot stop" "$CBWCTL" snapshot stop "$name"

cbw_done
