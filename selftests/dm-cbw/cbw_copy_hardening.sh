#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Copies that outlive their writes, writes that wait for copies, and copies
# of large bios, with slow or failing COW devices (dm-delay, dm-flakey).
#
# Proves that:
#  1. a suspended cbw target issues no copy I/O: a copy that timed out
#     (break_snapshot, 64 KiB chunks) or whose write failed on the timeout
#     (break_guest_write, a 2 MiB chunk copied in two pieces) is waited for
#     by the suspend, so it cannot write the old snapshot's data into the
#     next snapshot on the same COW storage, nor copy data written after the
#     next snapshot point into it.  The slow COW is a dm-delay device and
#     the next snapshot reaches the same storage through a dm-linear one,
#     so a late write of the old copy lands after the new copy;
#  2. with cbw_timeout_ms under break_guest_write, every write fails with
#     ETIMEDOUT within a few timeouts while the COW device does not answer:
#     a second write to the chunk of a timed-out copy, and more concurrent
#     writes to distinct chunks than there are copy jobs; none of them
#     reaches the origin, and the device can be reloaded once the COW
#     device answers;
#  3. a copy that fails after a snapshot discard dropped its chunks does not
#     make them "to copy" again: the count stays right and the next write
#     needs no copy;
#  4. one large discard copies its chunks with several jobs at once, and the
#     snapshot reads back exactly.

. "$(dirname -- "$0")/lib.sh"
. "$(dirname -- "$0")/errlib.sh"

C=128			# 64 KiB chunks
MIB=1048576
K64=65536

cbw_require_root
cbw_require_cmds dmsetup losetup truncate python3 dd cmp blkdiscard timeout
cbw_require_kmod loop dm-flakey dm-delay
cbw_require_cbw
for t in flakey delay linear; do
	cbw_have_target "$t" || cbw_skip_all "device-mapper target $t is missing"
done

ce_setup_work

base=$work/base.bin
head -c $((16 * MIB)) /dev/urandom >"$base"
for f in a b c; do
	head -c $K64 /dev/urandom >"$work/$f.bin"
done

# reload_cow SHORT SIZE: a new snapshot on COW device SHORT, the reload in
# the background ($reload); returns once the new table is live.
reload_cow()
{
	local name=$CBW_NAME_PREFIX-cbw i devno

	devno=$(cbw_dm_devno "$CBW_NAME_PREFIX-$1")
	dmsetup load "$name" --table "0 $2 cbw $origin $(ce_dev "$1") $C"
	(dmsetup suspend "$name" && dmsetup resume "$name") &
	reload=$!
	for ((i = 0; i < 600; i++)); do
		dmsetup table "$name" | grep -q " $devno " && return 0
		sleep 0.05
	done
	cbw_bail "the new table did not become live"
}

# read_new_snapshot SIZE LENGTH: waits for the reload, gives a late write
# of the old snapshot's copy time to land, then reads LENGTH bytes of the
# new snapshot into $work/out.bin through a new access device.
read_new_snapshot()
{
	local rc=0

	wait "$reload" || rc=$?
	cbw_expect_eq "$p: the reload succeeded" 0 "$rc"
	sleep $((slow_ms / 1000 + 1))
	ce_dm acc2 "0 $1 cbw-access $guest"
	cbw_expect_eq "$p: read of the new snapshot" ok \
		"$(ce_r "$(ce_dev acc2)" 0 "$2" "$work/out.bin")"
}

# COW writes of the first snapshot take this long: longer than the steps
# that follow take to reach the next snapshot, even on a loaded machine.
slow_ms=10000

# ---------------------------------------------------------------------------
# 1a. break_snapshot: a copy that timed out finishes before the next
#     snapshot starts.
# ---------------------------------------------------------------------------
p="1 break_snapshot"
ce_origin 1
ce_loop cowl 1
ce_dm cow1 "0 2048 delay $cowl 0 0 $cowl 0 $slow_ms"
ce_dm cow2 "0 2048 linear $cowl 0"
ce_stack break_snapshot "$(ce_dev cow1)" 2048 200
cbw_expect_eq "$p: the write whose copy times out succeeds" ok \
	"$(ce_w "$guest" 0 $K64 "$work/a.bin")"
cbw_expect_eq "$p: the snapshot broke" broken "$(ce_state cbw)"
cbw_expect_eq "$p: a second write succeeds" ok \
	"$(ce_w "$guest" 0 $K64 "$work/b.bin")"
reload_cow cow2 2048
cbw_expect_eq "$p: a write under the new snapshot" ok \
	"$(ce_w "$guest" 0 $K64 "$work/c.bin")"
read_new_snapshot 2048 $K64
cbw_check "$p: the new snapshot holds the data of its own snapshot point" \
	cmp -s "$work/out.bin" "$work/b.bin"
ce_scope_end
ce_kmsg_clean "$p"

# ---------------------------------------------------------------------------
# 1b. break_guest_write: the copy of a 2 MiB chunk whose write timed out
#     goes on in pieces; it must not read the origin after the next
#     snapshot point.
# ---------------------------------------------------------------------------
p="1 break_guest_write"
C=4096
ce_origin 4
ce_loop cowl 4
ce_dm cow1 "0 8192 delay $cowl 0 0 $cowl 0 $slow_ms"
ce_dm cow2 "0 8192 linear $cowl 0"
ce_stack break_guest_write "$(ce_dev cow1)" 8192 200
cbw_expect_eq "$p: the write whose copy times out fails" ETIMEDOUT \
	"$(ce_w "$guest" 0 $K64 "$work/a.bin")"
reload_cow cow2 8192
cbw_expect_eq "$p: a write to the second piece under the new snapshot" ok \
	"$(ce_w "$guest" $MIB $K64 "$work/c.bin")"
read_new_snapshot 8192 $((2 * MIB))
cbw_check "$p: the new snapshot holds the chunk as it was at its point" \
	ce_same "$work/out.bin" 0 "$base" 0 $((2 * MIB))
ce_scope_end
ce_kmsg_clean "$p"
C=128

# ---------------------------------------------------------------------------
# 2. cbw_timeout_ms bounds every write while the COW device hangs.
# ---------------------------------------------------------------------------
p="2 timeouts"
tmo=250
ce_origin 8
ce_loop cowl 8
ce_dm cow "0 16384 delay $cowl 0 0 $cowl 0 30000"
ce_stack break_guest_write "$(ce_dev cow)" 16384 $tmo
cbw_expect_eq "$p: the first write fails with ETIMEDOUT" ETIMEDOUT \
	"$(ce_w "$guest" 0 $K64 "$work/a.bin")"
burst=$(python3 "$ERRIO" burst "$guest" 1 0 $K64 "$work/a.bin")
cbw_expect_eq "$p: a second write to the same chunk fails too" \
	"ETIMEDOUT 1" "$(grep -v '^max_ms' <<<"$burst")"
ms=$(awk '/^max_ms/ { print $2 }' <<<"$burst")
cbw_expect_cmp "$p: within 4 timeouts (${ms} ms)" "$ms" -lt $((4 * tmo))
burst=$(python3 "$ERRIO" burst "$guest" 70 $K64 4096 "$work/b.bin")
cbw_info <<<"$burst"
cbw_expect_eq "$p: 70 concurrent writes to distinct chunks all fail" \
	"ETIMEDOUT 70" "$(grep -v '^max_ms' <<<"$burst")"
ms=$(awk '/^max_ms/ { print $2 }' <<<"$burst")
cbw_expect_cmp "$p: the slowest within 4 timeouts (${ms} ms)" \
	"$ms" -lt $((4 * tmo))
ce_dump "$origin" 0 $((70 * K64)) "$work/origin.bin"
cbw_check "$p: no failed write reached the origin" \
	ce_same "$work/origin.bin" 0 "$base" 0 $((70 * K64))
# The COW device answers: suspending dm-delay sends what it holds.
dmsetup suspend "$CBW_NAME_PREFIX-cow"
dmsetup load "$CBW_NAME_PREFIX-cow" --table "0 16384 linear $cowl 0"
dmsetup resume "$CBW_NAME_PREFIX-cow"
dmsetup load "$CBW_NAME_PREFIX-cbw" --table "0 16384 cbw $origin - $C"
rc=0
timeout 60 dmsetup suspend "$CBW_NAME_PREFIX-cbw" || rc=$?
timeout 60 dmsetup resume "$CBW_NAME_PREFIX-cbw" || rc=$?
cbw_expect_eq "$p: the snapshot ends once the COW device answers" 0 "$rc"
ce_scope_end
ce_kmsg_clean "$p"

# ---------------------------------------------------------------------------
# 3. A copy that fails after its chunks were dropped by a snapshot discard.
# ---------------------------------------------------------------------------
p="3 discard during a failing copy"
ce_origin 1
ce_loop cowl 1
ce_dm cowf "0 2048 flakey $cowl 0 0 3600 1 error_writes"
ce_dm cow "0 2048 delay $(ce_dev cowf) 0 0 $(ce_dev cowf) 0 6000"
ce_stack break_guest_write "$(ce_dev cow)" 2048
ce_w "$guest" 0 $K64 "$work/a.bin" >"$work/res" &
writer=$!
for ((i = 0; i < 600; i++)); do
	(($(ce_status cbw 6) == 0)) || break
	sleep 0.05
done
cbw_expect_eq "$p: the copy is in flight" 1 "$(ce_status cbw 6)"
# The COW device fails the discard too: only what it drops counts here.
blkdiscard "$access" 2>/dev/null || true
wait "$writer" || true
cbw_expect_eq "$p: the write whose copy failed fails" EIO "$(cat "$work/res")"
cbw_expect_eq "$p: no chunk to copy" 0 "$(ce_status cbw 5)"
cbw_expect_eq "$p: no chunk readable" 0 "$(ce_status cbw 7)"
cbw_expect_eq "$p: the next write needs no copy and succeeds" ok \
	"$(ce_w "$guest" 0 $K64 "$work/a.bin")"
ce_scope_end
ce_kmsg_clean "$p"

# ---------------------------------------------------------------------------
# 4. One 8 MiB discard: its 128 chunks are copied by several jobs at once.
# ---------------------------------------------------------------------------
p="4 large discard"
ce_origin 16
ce_loop cowl 16
ce_dm cow "0 32768 delay $cowl 0 0 $cowl 0 2000"
ce_stack break_guest_write "$(ce_dev cow)" 32768
blkdiscard -o 0 -l $((8 * MIB)) "$guest" &
discard=$!
most=0
while kill -0 "$discard" 2>/dev/null; do
	n=$(ce_status cbw 6)
	((n <= most)) || most=$n
	sleep 0.05
done
rc=0
wait "$discard" || rc=$?
cbw_expect_eq "$p: the discard succeeds" 0 "$rc"
cbw_info "at most $most chunks were being copied at once"
cbw_expect_cmp "$p: more than one 1 MiB job ran at once" "$most" -gt 16
cbw_expect_eq "$p: all 128 chunks copied" 128 "$(ce_status cbw 4)"
cbw_expect_eq "$p: snapshot read" ok \
	"$(ce_r "$access" 0 $((8 * MIB)) "$work/out.bin")"
cbw_check "$p: the snapshot holds the data from before the discard" \
	ce_same "$work/out.bin" 0 "$base" 0 $((8 * MIB))
ce_scope_end
ce_kmsg_clean "$p"

cbw_done
