#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Guest writes to copied chunks against snapshot reads of the origin.
#
# A write to a chunk that is copied takes no lock unless a snapshot read
# may be reading that chunk's bucket of chunks from the origin; it then
# waits only if the read covers the chunk itself.  The origin sits under
# dm-delay, which holds every read for a few seconds (writes go straight
# through), so that a snapshot read stays in flight while writes happen.
# With 4 KiB chunks over 32 MiB (8192 chunks, counted in buckets of two),
# chunks 100 and 101 share a bucket.  Proves:
#  - same chunk: a snapshot read of chunk 100 starts before the chunk's
#    copy ends (a guest write is waiting for the copy); once the chunk is
#    copied, a second guest write to it waits for the read, which returns
#    the point-in-time data;
#  - neighbour: while a snapshot read of chunk 101 reads the origin, a
#    write to the copied chunk 100 in the same bucket completes, and the
#    read still returns the point-in-time data of chunk 101.
#
# Environment: CBW_READ_DELAY_MS (default 6000).

. "$(dirname -- "$0")/lib.sh"

chunk=8
delay_ms=${CBW_READ_DELAY_MS:-6000}
x=100
y=101

origin=
cow=
cbw_setup 64
cbw_require_kmod dm-delay
cbw_loop_create origin 32
cbw_loop_create cow 32
cbw_read_delay_create "$(cbw_name delay)" "$origin" "$delay_ms"
under=$(cbw_dm_path "$(cbw_name delay)")
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
cbw_create "$name" "$under" "$chunk"
guest=$(cbw_dm_path "$name")
cbw_check "stamp the pre-image (generation 0)" "$CBW_STRESS" stamp "$guest" 0
cbw_last_failed && cbw_bail "cannot write the pre-image"
cbw_snapshot_start "$name" "$cow"
cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")

# probe_to FILE ARGS...: cbw-stress probe ARGS, its output in FILE.
probe_to()
{
	local out=$1

	shift
	"$CBW_STRESS" probe "$@" >"$out" 2>&1
}

# wait_stat FIELD N: wait until status field FIELD is at least N (60 s).
wait_stat()
{
	local i

	for ((i = 0; i < 600; i++)); do
		(($(cbw_stat "$name" "$1") >= $2)) && return 0
		sleep 0.1
	done
	return 1
}

running()
{
	kill -0 "$1" 2>/dev/null
}

# ---------------------------------------------------------------------------
# The same chunk
# ---------------------------------------------------------------------------
w1=
r1=
cbw_bg w1 probe_to "$CBW_WORK/w1" --write --gen 1 "$guest" $((x * chunk)) "$chunk"
wait_stat in_flight 1 || cbw_bail "the copy of chunk $x did not start within 60 s"
# Half the delay: the read is held until well after the copy's read.
sleep $((delay_ms / 2000))
cbw_bg r1 probe_to "$CBW_WORK/r1" --check --gen 0 "$acc" $((x * chunk)) "$chunk"
wait_stat copied 1 || cbw_bail "chunk $x was not copied within 60 s"
if running "$r1"; then
	cbw_pass "the snapshot read of chunk $x is in flight after the chunk's copy ended"
else
	cbw_fail "the snapshot read of chunk $x is in flight after the chunk's copy ended (the read delay is too short for this machine)"
fi
cbw_expect_eq "a second guest write to copied chunk $x" OK \
	"$("$CBW_STRESS" probe --write --gen 2 "$guest" $((x * chunk)) "$chunk")"
wait "$r1" || true
cbw_expect_eq "the snapshot read of chunk $x returns its point-in-time data" \
	OK "$(<"$CBW_WORK/r1")"
wait "$w1" || true
cbw_expect_eq "the first guest write to chunk $x" OK "$(<"$CBW_WORK/w1")"
cbw_check "the guest reads the second write in chunk $x" \
	"$CBW_STRESS" verify "$guest" 2 $((x * chunk)) "$chunk"

# ---------------------------------------------------------------------------
# A neighbour in the same bucket
# ---------------------------------------------------------------------------
r2=
cbw_bg r2 probe_to "$CBW_WORK/r2" --check --gen 0 "$acc" $((y * chunk)) "$chunk"
sleep $((delay_ms / 2000))
cbw_expect_eq "a guest write to copied chunk $x while chunk $y is read" OK \
	"$("$CBW_STRESS" probe --write --gen 3 "$guest" $((x * chunk)) "$chunk")"
if running "$r2"; then
	cbw_pass "the write to chunk $x completed while the snapshot read of chunk $y was in flight"
else
	cbw_fail "the write to chunk $x completed while the snapshot read of chunk $y was in flight"
fi
wait "$r2" || true
cbw_expect_eq "the snapshot read of chunk $y returns its point-in-time data" \
	OK "$(<"$CBW_WORK/r2")"
cbw_check "the snapshot still reads the point-in-time data of chunk $x" \
	"$CBW_STRESS" verify "$acc" 0 $((x * chunk)) "$chunk"

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_done
