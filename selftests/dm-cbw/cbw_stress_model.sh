#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Model-checked stress: long random interleavings of guest I/O, snapshot
# reads, snapshot discards, reloads, suspends, COW and origin faults and
# copy timeouts, every read checked against a model of what it must return.
#
# The origin is stamped (every sector carries its number and a generation)
# and a dirty bitmap is added. "cbw-stress model" then runs guest writers
# (writes, discards, write-zeroes and read-backs of their own sectors, each
# write with a new generation) and readers of the cbw-access devices, while
# one thread, at random times and in random order:
#  - starts a new snapshot on one of two COW devices that share the same
#    storage (so a copy of an old snapshot written late lands in the new
#    one's data), with either on_cbw_error policy and a cbw_timeout_ms of 0
#    or 50 to 300 ms, with the writers paused or running, the table loaded
#    before or during the suspend; and creates a new cbw-access device for
#    it, keeping up to two older ones;
#  - ends the snapshot (a table without a COW device);
#  - suspends and resumes the cbw device;
#  - discards ranges of the snapshot through its cbw-access device;
#  - swaps the table of a COW device: dm-linear, dm-flakey failing writes,
#    dm-delay of 100 to 500 ms on writes, or a 10 s stall;
#  - swaps the table of the origin: dm-linear, or one with dm-flakey zones
#    that fail writes, whose edges fall inside guest writes;
#  - replays a late copy (at least once per run): under break_snapshot,
#    with the COW's writes stalled, it writes a chunk twice (the copy times
#    out), starts a new snapshot on the other COW device while a third
#    write of the chunk waits in the suspended device, and reads the chunk
#    through the new snapshot, before and after the stalled write lands;
#  - tears a write (at least once per run): the origin fails writes from
#    the middle of a chunk on, and a write across that point fails after
#    its first part reached the origin.
# The writers own stripes of the device (whose edges share chunks); the
# late copies and torn writes use stripes nobody else writes.
# The model knows every sector's possible content (a failed write may or may
# not have reached it) and takes each snapshot's image at its snapshot point
# (with the writes in flight across the suspend as possible content). It
# proves that:
#  - every snapshot read returns exactly the image of its snapshot (the
#    first read of a sector fixes which of its possible contents that is),
#    or fails because the snapshot ended, broke or the chunk was discarded;
#    reads that start after that always fail;
#  - guest reads return what the model says, the whole guest device does at
#    the end, and the live snapshot reads its whole image then;
#  - guest writes fail only with EIO or ETIMEDOUT, and with cbw_timeout_ms
#    set, a write that no suspend of the cbw or origin device held back
#    ends within a generous bound (2 timeouts, one more per MiB, plus
#    CBW_STRESS_SLACK_MS), unless the machine itself stood still (a thread
#    that sleeps 10 ms woke up more than a second late) meanwhile;
#  - the dirty bitmap has every sector dirty that a write changed: written
#    successfully, or holding data of a failed write at the end.
# A failure prints the seed and the last operations; the run can be
# replayed with CBW_STRESS_SEED (the interleaving itself differs).
#
# Environment:
#   CBW_STRESS_SECONDS   run time (default 60); longer runs on demand
#   CBW_STRESS_SEED      seed (default: random, printed)
#   CBW_STRESS_MIB       device size in MiB (default 64, or what two stripes
#                        of 4 chunks for each writer and the orchestrator
#                        need: 128 with 2 MiB chunks)
#   CBW_STRESS_CHUNK     chunk sectors (default: 8, 128 or 4096, by seed)
#   CBW_STRESS_WRITERS   guest writer threads (default 4)
#   CBW_STRESS_READERS   snapshot reader threads (default 2)
#   CBW_STRESS_SLACK_MS  slack of the write time bound (default 4000; 0: no bound)
#   CBW_STRESS_LOG       copy the whole operation log to this file

. "$(dirname -- "$0")/lib.sh"

seconds=${CBW_STRESS_SECONDS:-60}
seed=${CBW_STRESS_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
chunks=(8 128 4096)
chunk=${CBW_STRESS_CHUNK:-${chunks[seed % 3]}}
writers=${CBW_STRESS_WRITERS:-4}
# two stripes of 4 chunks for each writer and for the orchestrator
size_mib=${CBW_STRESS_MIB:-64}
if [[ -z ${CBW_STRESS_MIB:-} ]]; then
	while ((size_mib * 2048 < 2 * (writers + 1) * 4 * chunk)); do
		size_mib=$((size_mib * 2))
	done
fi

cbw_setup $((2 * size_mib + 32))
cbw_require_kmod dm-delay dm-flakey
cbw_require_cbwctl

origin_loop=
cow_loop=
cbw_loop_create origin_loop "$size_mib"
cbw_loop_create cow_loop "$size_mib"
len=$(cbw_size "$origin_loop")
origin=$(cbw_name origin)
cow_a=$(cbw_name cow-a)
cow_b=$(cbw_name cow-b)
name=$(cbw_name cbw)
acc=$(cbw_name acc)
cbw_dm_create "$origin" "0 $len linear $origin_loop 0"
cbw_dm_create "$cow_a" "0 $len linear $cow_loop 0"
cbw_dm_create "$cow_b" "0 $len linear $cow_loop 0"
cbw_create "$name" "$(cbw_dm_path "$origin")" "$chunk"
guest=$(cbw_dm_path "$name")
# The cbw-access devices the run creates, removed first if it dies.
for i in 0 1 2; do
	cbw_dm_adopt "$acc$i"
done
cbw_info "seed $seed, $len sectors, chunk $chunk sectors, ${seconds}s"

cbw_check "stamp the pre-image (generation 0)" "$CBW_STRESS" stamp "$guest" 0
cbw_last_failed && cbw_bail "cannot write the pre-image"
cbw_check "add a dirty bitmap" "$CBWCTL" bitmap add "$name" stress \
	--granularity 4K

log=$CBW_WORK/ops.log
rc=0
"$CBW_STRESS" model --cbw "$name" --origin "$origin" --origin-dev "$origin_loop" \
	--cow "$cow_a" --cow "$cow_b" --cow-dev "$cow_loop" \
	--access-prefix "$acc" --chunk-sectors "$chunk" --seconds "$seconds" \
	--writers "$writers" --readers "${CBW_STRESS_READERS:-2}" \
	--seed "$seed" --bitmap stress --work "$CBW_WORK" --log "$log" \
	--slack-ms "${CBW_STRESS_SLACK_MS:-4000}" >"$CBW_WORK/model.out" 2>&1 || rc=$?
cbw_info <"$CBW_WORK/model.out"
[[ -z ${CBW_STRESS_LOG:-} ]] || cp -- "$log" "$CBW_STRESS_LOG" || true
cbw_expect_eq "every snapshot and guest read matched the model (seed $seed)" 0 "$rc"
bitmap_line=$(grep '^model: bitmap ' "$CBW_WORK/model.out" || true)
if [[ -z $bitmap_line ]]; then
	cbw_fail "the dirty bitmap has every changed sector dirty: not checked, the run failed first"
else
	cbw_expect_eq "the dirty bitmap has every changed sector dirty" 0 \
		"$(awk '{ print $9 }' <<<"$bitmap_line")"
fi

cbw_expect_eq "no snapshot after the run" "none" "$(cbw_stat "$name" state)"
left=$(dmsetup ls | awk -v p="$acc" 'index($1, p) == 1' | wc -l)
cbw_expect_eq "the run removed its cbw-access devices" 0 "$left"

cbw_done
