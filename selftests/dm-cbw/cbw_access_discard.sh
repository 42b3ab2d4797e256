#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Discard through the snapshot-access device.
#
# Proves that a discard on the access device drops exactly the whole chunks
# inside its range (aligned inward): chunks_accessible drops by that many on
# both devices, O_DIRECT reads of those chunks fail with ENODATA (EIO when
# buffered) and keep failing after guest writes, the partial chunks at the
# edges and every other chunk still read the pre-image, and guest writes to
# dropped chunks make no copy (chunks_copied stays put) while writes to
# chunks still in the snapshot do. Also proves that the access device is
# read-only: an O_DIRECT write fails with EOPNOTSUPP on a read-write table,
# and a --readonly device cannot be opened for writing.

. "$(dirname -- "$0")/lib.sh"

C=128			# chunk size in sectors (64 KiB)
origin=
cow=
cbw_setup 96
cbw_require_cmds blkdiscard
cbw_loop_create origin 16
cbw_loop_create cow 16
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
ro_name=$(cbw_name accro)
len=$(cbw_size "$origin")
total=$((len / C))

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
"$CBW_STRESS" stamp "$guest" 0 >/dev/null
cbw_snapshot_start "$name" "$cow"
cbw_access_create "$acc_name" "$name" rw
acc=$(cbw_dm_path "$acc_name")

# probe_is DESCRIPTION EXPECTED [PROBE_ARGS...]: cbw-stress probe prints OK
# or the errno name of a single read (or write).
probe_is()
{
	local desc=$1 want=$2 got

	shift 2
	got=$("$CBW_STRESS" probe "$@" 2>&1) || true
	cbw_expect_eq "$desc" "$want" "$got"
}

# accessible_is DESCRIPTION N: on both the cbw and the access device.
accessible_is()
{
	cbw_expect_eq "$1" "$2 $2" \
		"$(cbw_stat "$name" accessible) $(cbw_stat "$acc_name" accessible)"
}

# discard_sectors DEV START COUNT (sectors)
# shellcheck disable=SC2317 # run through cbw_check
discard_sectors()
{
	blkdiscard -f -o $(($2 * 512)) -l $(($3 * 512)) "$1"
}

copied()
{
	cbw_stat "$name" copied
}

accessible_is "all chunks accessible before any discard" "$total"

# Discard from 3 sectors into chunk 2 to 5 sectors into chunk 6: only the
# whole chunks 3, 4 and 5 leave the snapshot.
cbw_check "discard sectors $((2 * C + 3))-$((6 * C + 4)) through the access device" \
	discard_sectors "$acc" $((2 * C + 3)) $((4 * C + 2))
accessible_is "3 whole chunks inside the range dropped" $((total - 3))
for c in 3 4 5; do
	probe_is "O_DIRECT read of dropped chunk $c fails with ENODATA" ENODATA \
		"$acc" $((c * C)) "$C"
done
probe_is "O_DIRECT read of one sector of a dropped chunk fails with ENODATA" ENODATA \
	"$acc" $((4 * C + 77)) 1
probe_is "buffered read of a dropped chunk fails with EIO" EIO --buffered \
	"$acc" $((3 * C)) 8
probe_is "a read spanning an edge chunk and a dropped chunk fails" ENODATA \
	"$acc" $((3 * C - 8)) 16
cbw_check "partial edge chunk 2 still reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((2 * C)) "$C"
cbw_check "partial edge chunk 6 still reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((6 * C)) "$C"
cbw_check "chunks before the range read the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 0 $((3 * C))
cbw_check "chunks after the range read the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((6 * C)) $((len - 6 * C))

# Guest writes to the dropped chunks: no copy.
cbw_expect_eq "nothing copied yet" 0 "$(copied)"
"$CBW_STRESS" stamp "$guest" 1 $((3 * C)) $((3 * C)) >/dev/null
cbw_expect_eq "guest writes to dropped chunks make no copy" 0 "$(copied)"
cbw_check "the guest reads its new data in the dropped chunks" \
	"$CBW_STRESS" verify "$guest" 1 $((3 * C)) $((3 * C))
probe_is "dropped chunk still fails with ENODATA after the guest write" ENODATA \
	"$acc" $((4 * C)) "$C"
accessible_is "accessible count unchanged by guest writes" $((total - 3))

# A guest write to a partial edge chunk is copied as usual.
"$CBW_STRESS" stamp "$guest" 1 $((6 * C + 10)) 10 >/dev/null
cbw_expect_eq "guest write to edge chunk 6 copies it" 1 "$(copied)"
cbw_check "edge chunk 6 still reads the pre-image after the copy" \
	"$CBW_STRESS" verify "$acc" 0 $((6 * C)) "$C"

# A discard inside a single chunk drops nothing.
cbw_check "discard of 16 sectors inside chunk 8" \
	discard_sectors "$acc" $((8 * C + 8)) 16
accessible_is "a discard smaller than a chunk drops nothing" $((total - 3))
cbw_check "chunk 8 still reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((8 * C)) "$C"
cbw_check "discard of 2 chunks minus 2 sectors across chunks 9 and 10" \
	discard_sectors "$acc" $((9 * C + 1)) $((2 * C - 2))
accessible_is "a discard covering no whole chunk drops nothing" $((total - 3))

# Dropping a chunk that was already copied.
"$CBW_STRESS" stamp "$guest" 1 $((12 * C)) 1 >/dev/null
cbw_expect_eq "guest write to chunk 12 copies it" 2 "$(copied)"
cbw_check "copied chunk 12 reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((12 * C)) "$C"
cbw_check "discard exactly chunk 12" discard_sectors "$acc" $((12 * C)) "$C"
accessible_is "copied chunk 12 dropped" $((total - 4))
probe_is "dropped copied chunk 12 fails with ENODATA" ENODATA "$acc" $((12 * C)) "$C"
"$CBW_STRESS" stamp "$guest" 2 $((12 * C)) "$C" >/dev/null
cbw_expect_cmp "no new copy after writing the dropped chunk 12 again" "$(copied)" -le 2
cbw_check "chunk 11 still reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((11 * C)) "$C"
cbw_check "chunk 13 still reads the pre-image" \
	"$CBW_STRESS" verify "$acc" 0 $((13 * C)) "$C"

# The access device is read-only.
probe_is "O_DIRECT write to a read-write access table fails with EOPNOTSUPP" \
	EOPNOTSUPP --write "$acc" $((20 * C)) 8
cbw_check "the failed write changed nothing" \
	"$CBW_STRESS" verify "$acc" 0 $((20 * C)) "$C"
cbw_expect_eq "the failed write copied nothing" 2 "$(copied)"
cbw_access_create "$ro_name" "$name"
ro=$(cbw_dm_path "$ro_name")
got=$("$CBW_STRESS" probe --write "$ro" 0 8 2>&1) || true
case $got in
EACCES | EROFS | EPERM) cbw_pass "a --readonly access device cannot be opened for writing ($got)" ;;
*) cbw_info "got $got"; cbw_fail "a --readonly access device cannot be opened for writing" ;;
esac
cbw_check_fails "blkdiscard on a --readonly access device fails" \
	discard_sectors "$ro" $((30 * C)) "$C"
probe_is "a second access device sees the dropped chunks too" ENODATA \
	"$ro" $((4 * C)) "$C"
cbw_check "a second access device reads the pre-image elsewhere" \
	"$CBW_STRESS" verify "$ro" 0 $((13 * C)) $((len - 13 * C))
cbw_dm_remove "$ro_name"

# Drop everything: no access left, no copy made by later guest writes.
cbw_check "discard the whole access device" blkdiscard -f "$acc"
accessible_is "no chunk accessible after a whole-device discard" 0
probe_is "first chunk fails with ENODATA" ENODATA "$acc" 0 "$C"
probe_is "last chunk fails with ENODATA" ENODATA "$acc" $((len - C)) "$C"
before=$(copied)
"$CBW_STRESS" stamp "$guest" 3 >/dev/null
cbw_expect_eq "guest rewrite of the whole device copies nothing" "$before" "$(copied)"
cbw_check "the guest device holds the rewrite" "$CBW_STRESS" verify "$guest" 3
cbw_expect_eq "snapshot still active, no error" "active -" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" error)"

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_expect_eq "snapshot ended" none "$(cbw_stat "$name" state)"

cbw_done
