#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Failures visible to device-mapper tooling: the failed and timed-out copy
# counts at the end of the cbw status line, and the dm events that
# "dmsetup wait" (and so dmeventd) sees.
#
# Proves that:
#  1. the status line ends with "<#failed copies> <#timed-out copies>",
#     "0 0" without a snapshot and with a healthy one, after the bitmaps;
#  2. starting a snapshot (resume of a table with a COW device) and ending
#     it (resume of a table without one) each raise an event, and a plain
#     suspend and resume of the same table raises none;
#  3. under break_guest_write the first failed copy raises an event (the
#     snapshot stays active) and is counted, a second failure is counted
#     without another event;
#  4. under break_guest_write a copy that takes longer than cbw_timeout_ms
#     is counted as timed out and raises an event.

. "$(dirname -- "$0")/lib.sh"
. "$(dirname -- "$0")/errlib.sh"

C=128			# 64 KiB chunks
K64=65536
K512=524288
MIB=1048576

cbw_require_root
cbw_require_cmds dmsetup losetup truncate python3 dd cmp timeout
cbw_require_kmod loop dm-flakey dm-delay
cbw_require_cbw
for t in flakey delay linear; do
	cbw_have_target "$t" || cbw_skip_all "device-mapper target $t is missing"
done

ce_setup_work

base=$work/base.bin
new=$work/new.bin
head -c $((2 * MIB)) /dev/urandom >"$base"
head -c $((2 * MIB)) /dev/urandom >"$new"
waiter=''

# The two last fields of the status line of "cbw".
copy_counts()
{
	dmsetup status "$CBW_NAME_PREFIX-cbw" | awk '{ print $(NF - 1), $NF }'
}

# Starts "dmsetup wait" on the next event of "cbw" in the background.  The
# event count is read before this returns: read in the background, it
# could already include the event the test is about to cause.
wait_start()
{
	local nr

	nr=$(ce_events cbw)
	timeout 30 dmsetup wait "$CBW_NAME_PREFIX-cbw" "$nr" >/dev/null 2>&1 &
	waiter=$!
}

# wait_done MSG: the event came (dmsetup wait returned 0).
wait_done()
{
	local rc=0

	wait "$waiter" || rc=$?
	waiter=''
	cbw_expect_eq "$1" 0 "$rc"
}

# wait_none MSG: no event came; stops the waiter.  The event work runs
# right after the failure, well within the second given to it here.
wait_none()
{
	sleep 1
	if kill -0 "$waiter" 2>/dev/null; then
		cbw_pass "$1"
	else
		cbw_fail "$1"
	fi
	kill "$waiter" 2>/dev/null || true
	wait "$waiter" 2>/dev/null || true
	waiter=''
}

reload()
{
	local name=$CBW_NAME_PREFIX-cbw

	dmsetup load "$name" --table "$1" &&
		dmsetup suspend "$name" && dmsetup resume "$name"
}

# ---------------------------------------------------------------------------
# 1, 2. Status fields, events on snapshot start and end.
# ---------------------------------------------------------------------------
p=1
ce_origin 1
ce_loop cowl 1
ce_dm cbw "0 2048 cbw $origin - $C"
cbw_expect_eq "$p: no snapshot: status ends with 0 0, no bitmaps" \
	"128 none 0 0 0 0 0 - 0 0 0" \
	"$(dmsetup status "$CBW_NAME_PREFIX-cbw" | cut -d' ' -f4-)"
p=2
wait_start
cbw_check "$p: start a snapshot" \
	reload "0 2048 cbw $origin $cowl $C"
wait_done "$p: starting the snapshot raises an event"
cbw_expect_eq "$p: active snapshot: no failed or timed-out copies" "0 0" \
	"$(copy_counts)"
cbw_expect_eq "1: the bitmap count is still field 12" 0 \
	"$(dmsetup status "$CBW_NAME_PREFIX-cbw" | awk '{ print $12 }')"
wait_start
cbw_check "$p: plain suspend" dmsetup suspend "$CBW_NAME_PREFIX-cbw"
cbw_check "$p: plain resume" dmsetup resume "$CBW_NAME_PREFIX-cbw"
wait_none "$p: a plain suspend and resume raise no event"
wait_start
cbw_check "$p: end the snapshot" \
	reload "0 2048 cbw $origin - $C"
wait_done "$p: ending the snapshot raises an event"
ce_scope_end
ce_kmsg_clean "$p"

# ---------------------------------------------------------------------------
# 3. break_guest_write, a COW device that fails writes.
# ---------------------------------------------------------------------------
p=3
ce_origin 1
ce_loop cowl 1
ce_dm cow "0 2048 flakey $cowl 0 0 3600 1 error_writes"
ce_stack break_guest_write "$(ce_dev cow)" 2048
wait_start
cbw_expect_eq "$p: the guest write fails with EIO" EIO \
	"$(ce_w "$guest" 0 $K64 "$new")"
wait_done "$p: the first failed copy raises an event"
cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
cbw_expect_eq "$p: one failed copy, none timed out" "1 0" "$(copy_counts)"
wait_start
cbw_expect_eq "$p: a second write fails with EIO" EIO \
	"$(ce_w "$guest" $K512 $K64 "$new")"
cbw_expect_eq "$p: two failed copies" "2 0" "$(copy_counts)"
wait_none "$p: the second failed copy raises no event"
ce_scope_end
ce_kmsg_clean "$p"

# ---------------------------------------------------------------------------
# 4. break_guest_write, a COW device too slow for cbw_timeout_ms.
# ---------------------------------------------------------------------------
p=4
ce_origin 1
ce_loop cowl 1
ce_dm cow "0 2048 delay $cowl 0 0 $cowl 0 4000"
ce_stack break_guest_write "$(ce_dev cow)" 2048 500
wait_start
cbw_expect_eq "$p: the guest write fails with ETIMEDOUT" ETIMEDOUT \
	"$(ce_w "$guest" 0 $K64 "$new")"
wait_done "$p: the timed-out copy raises an event"
cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
cbw_expect_eq "$p: no failed copy, one timed out" "0 1" "$(copy_counts)"
ce_scope_end
ce_kmsg_clean "$p"

cbw_done
