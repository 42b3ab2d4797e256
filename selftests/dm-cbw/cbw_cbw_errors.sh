#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Copy-before-write failures: the on_cbw_error policies and cbw_timeout_ms,
# with real device-mapper fault targets under the COW device and the origin
# (dm-flakey, dm-error, dm-delay, a thin pool with error_if_no_space).
#
# Proves that:
#  1. (QEMU's copy-before-write test) with a COW device that fails writes,
#     break_snapshot lets the guest's 1 MiB write through, breaks the
#     snapshot (status "broken" with -EIO, a dm event) and fails the access
#     read; break_guest_write fails the guest write with EIO, leaves the
#     origin untouched and the access read returns the original data;
#  2. with COW writes slowed by dm-delay and a short cbw_timeout_ms, a write
#     whose copy fits in time succeeds and the slow one fails with ETIMEDOUT
#     (break_guest_write, access read exact), or both succeed and the
#     snapshot breaks with -ETIMEDOUT (break_snapshot);
#  3. origin read errors during a copy are handled by both policies;
#  4. a full thin COW device (error_if_no_space) makes the guest write fail
#     with ENOSPC (break_guest_write) or breaks the snapshot (-ENOSPC);
#  5. nothing is lost: with concurrent writers under each policy and fault,
#     the origin afterwards holds exactly the last successful write of every
#     block, the snapshot stays exact under break_guest_write, and ext4 on
#     the cbw device stays clean (fsck -n) under break_snapshot;
#  6. ending the snapshot, removing the device and unloading the module
#     while copies fail or time out works and leaves the kernel log clean.

. "$(dirname -- "$0")/lib.sh"
. "$(dirname -- "$0")/errlib.sh"

C=128			# 64 KiB chunks
MIB=1048576
K64=65536
K512=524288

cbw_require_root
cbw_require_cmds dmsetup losetup truncate python3 dd cmp mkfs.ext4 \
	fsck.ext4 timeout
cbw_require_kmod loop dm-flakey dm-delay dm-thin-pool
cbw_require_cbw
for t in flakey delay thin-pool thin error linear; do
	cbw_have_target "$t" || cbw_skip_all "device-mapper target $t is missing"
done

ce_setup_work

base=$work/base.bin
new=$work/new.bin
head -c $((16 * MIB)) /dev/urandom >"$base"
head -c $((16 * MIB)) /dev/urandom >"$new"
out=$work/out.bin

# ---------------------------------------------------------------------------
# Table arguments
# ---------------------------------------------------------------------------
ce_origin 1
ce_loop cowl 1
ce_dm t "0 2048 cbw $origin $cowl $C 4 cbw_timeout_ms 250 on_cbw_error break_snapshot"
cbw_expect_eq "table shows both arguments, in canonical order" \
	"0 2048 cbw $(cat /sys/block/"${origin#/dev/}"/dev) $(cat /sys/block/"${cowl#/dev/}"/dev) $C 4 on_cbw_error break_snapshot cbw_timeout_ms 250" \
	"$(dmsetup table "$CBW_NAME_PREFIX-t")"
ce_dm_del "$CBW_NAME_PREFIX-t"
ce_dm t "0 2048 cbw $origin $cowl $C 4 on_cbw_error break_guest_write cbw_timeout_ms 0"
cbw_expect_eq "defaults are not shown" \
	"0 2048 cbw $(cat /sys/block/"${origin#/dev/}"/dev) $(cat /sys/block/"${cowl#/dev/}"/dev) $C" \
	"$(dmsetup table "$CBW_NAME_PREFIX-t")"
ce_dm_del "$CBW_NAME_PREFIX-t"
for bad in "2 on_cbw_error ignore" "1 on_cbw_error" "2 cbw_timeout_ms -1" \
	"2 cbw_timeout_ms 1x" "4 cbw_timeout_ms 1 cbw_timeout_ms 2"; do
	cbw_check_fails "rejected: $bad" \
		dmsetup create "$CBW_NAME_PREFIX-t" --table "0 2048 cbw $origin $cowl $C $bad"
	ce_dm_del "$CBW_NAME_PREFIX-t"
done
for bad in "2 on_cbw_error break_snapshot" "2 cbw_timeout_ms 10"; do
	cbw_check_fails "rejected without a COW device: $bad" \
		dmsetup create "$CBW_NAME_PREFIX-t" --table "0 2048 cbw $origin - $C $bad"
	ce_dm_del "$CBW_NAME_PREFIX-t"
done
dmesg | grep -q "Invalid on_cbw_error policy" &&
	cbw_pass "error message for a bad policy" ||
	cbw_fail "error message for a bad policy"
dmesg | grep -q "Invalid cbw_timeout_ms" &&
	cbw_pass "error message for a bad timeout" ||
	cbw_fail "error message for a bad timeout"
ce_scope_end

# ---------------------------------------------------------------------------
# 1. QEMU's copy-before-write oracle: the COW device fails writes.
# ---------------------------------------------------------------------------
for policy in break_snapshot break_guest_write; do
	p="1 $policy"
	ce_origin 1
	ce_loop cowl 1
	ce_dm cow "0 2048 flakey $cowl 0 0 3600 1 error_writes"
	ce_stack "$policy" "$(ce_dev cow)" 2048
	ev=$(ce_events cbw)
	timeout 60 dmsetup wait "$CBW_NAME_PREFIX-cbw" "$ev" >/dev/null 2>&1 &
	waiter=$!
	res=$(ce_w "$guest" 0 $MIB "$new")
	rres=$(ce_r "$access" 0 $MIB "$out")
	ce_dump "$origin" 0 $MIB "$work/origin.bin"
	if [[ $policy == break_snapshot ]]; then
		cbw_expect_eq "$p: guest 1 MiB write succeeds" ok "$res"
		cbw_expect_eq "$p: access 1 MiB read fails (ENODATA)" ENODATA "$rres"
		cbw_expect_eq "$p: status broken" broken "$(ce_state cbw)"
		cbw_expect_eq "$p: status error -EIO" -5 "$(ce_error cbw)"
		cbw_check "$p: origin holds the new data" \
			ce_same "$work/origin.bin" 0 "$new" 0 $MIB
		rc=0
		wait "$waiter" || rc=$?
		cbw_expect_eq "$p: dmsetup wait returns on the event" 0 "$rc"
		cbw_expect_eq "$p: access status broken" broken \
			"$(dmsetup status "$CBW_NAME_PREFIX-acc" | awk '{print $4}')"
	else
		cbw_expect_eq "$p: guest 1 MiB write fails with EIO" EIO "$res"
		cbw_expect_eq "$p: access 1 MiB read succeeds" ok "$rres"
		cbw_check "$p: access read returns the original data" \
			ce_same "$out" 0 "$base" 0 $MIB
		cbw_check "$p: origin untouched" \
			ce_same "$work/origin.bin" 0 "$base" 0 $MIB
		cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
		cbw_expect_eq "$p: chunks to copy again" 16 "$(ce_status cbw 5)"
		if kill -0 "$waiter" 2>/dev/null; then
			cbw_pass "$p: no dm event"
		else
			cbw_fail "$p: no dm event"
		fi
		kill "$waiter" 2>/dev/null || true
		wait "$waiter" 2>/dev/null || true
		# The COW device recovers: a later write retries the copy.
		dmsetup suspend "$CBW_NAME_PREFIX-cow"
		dmsetup load "$CBW_NAME_PREFIX-cow" --table "0 2048 linear $cowl 0"
		dmsetup resume "$CBW_NAME_PREFIX-cow"
		cbw_expect_eq "$p: the write succeeds once the COW works" ok \
			"$(ce_w "$guest" 0 $MIB "$new")"
		cbw_expect_eq "$p: access read after the retried copy" ok \
			"$(ce_r "$access" 0 $MIB "$out")"
		cbw_check "$p: the snapshot still has the original data" \
			ce_same "$out" 0 "$base" 0 $MIB
	fi
	ce_scope_end
	ce_kmsg_clean "$p"
done

# ---------------------------------------------------------------------------
# 2. Timeout oracle: the second half of the COW device is slow to write.
# ---------------------------------------------------------------------------
delay_ms=6000
timeout_ms=1500
for policy in break_guest_write break_snapshot; do
	p="2 $policy"
	ce_origin 1
	ce_loop cowl 1
	ce_dm cow "0 1024 linear $cowl 0
1024 1024 delay $cowl 1024 0 $cowl 1024 $delay_ms"
	ce_stack "$policy" "$(ce_dev cow)" 2048 $timeout_ms
	res1=$(ce_w "$guest" 0 $K512 "$new")
	t0=$(date +%s%N)
	res2=$(ce_w "$guest" $K512 $K512 "$new")
	elapsed=$((($(date +%s%N) - t0) / 1000000))
	rres=$(ce_r "$access" 0 $MIB "$out")
	cbw_expect_eq "$p: the write whose copy fits in time succeeds" ok "$res1"
	if [[ $policy == break_guest_write ]]; then
		cbw_expect_eq "$p: the slow one fails with ETIMEDOUT" ETIMEDOUT "$res2"
		cbw_expect_cmp "$p: it failed before the copy ended (${elapsed} ms)" \
			"$elapsed" -lt $delay_ms
		cbw_expect_eq "$p: access read succeeds" ok "$rres"
		cbw_check "$p: access read returns the original data" \
			ce_same "$out" 0 "$base" 0 $MIB
		ce_dump "$origin" $K512 $K512 "$work/origin.bin"
		cbw_check "$p: origin untouched by the timed-out write" \
			ce_same "$work/origin.bin" 0 "$base" $K512 $K512
		cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
	else
		cbw_expect_eq "$p: the slow one succeeds too" ok "$res2"
		cbw_expect_eq "$p: access read fails" ENODATA "$rres"
		cbw_expect_eq "$p: status broken" broken "$(ce_state cbw)"
		cbw_expect_eq "$p: status error -ETIMEDOUT" -110 "$(ce_error cbw)"
	fi
	ce_scope_end
	ce_kmsg_clean "$p"
done

# ---------------------------------------------------------------------------
# 3. Origin read errors during a copy: the last 4 KiB of the chunk at 512 KiB
#    is a dm-error range, so the copy of the chunk fails to read while a
#    guest write to its first 4 KiB reaches working sectors.
# ---------------------------------------------------------------------------
for policy in break_guest_write break_snapshot; do
	p="3 $policy"
	ce_origin 1
	ce_loop cowl 1
	ce_dm org "0 1144 linear $origin 0
1144 8 error
1152 896 linear $origin 1152"
	ce_stack "$policy" "$cowl" 2048 0 "$(ce_dev org)"
	res=$(ce_w "$guest" $K512 4096 "$new")
	ce_dump "$origin" $K512 4096 "$work/origin.bin"
	if [[ $policy == break_guest_write ]]; then
		cbw_expect_eq "$p: guest write fails with EIO" EIO "$res"
		cbw_check "$p: origin untouched" \
			ce_same "$work/origin.bin" 0 "$base" $K512 4096
		cbw_expect_eq "$p: a write to a readable chunk succeeds" ok \
			"$(ce_w "$guest" 0 $K64 "$new")"
		cbw_expect_eq "$p: access read of the readable half" ok \
			"$(ce_r "$access" 0 $K512 "$out")"
		cbw_check "$p: it returns the original data" \
			ce_same "$out" 0 "$base" 0 $K512
		cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
	else
		cbw_expect_eq "$p: guest write succeeds" ok "$res"
		cbw_check "$p: origin holds the new data" \
			ce_same "$work/origin.bin" 0 "$new" 0 4096
		cbw_expect_eq "$p: access read fails" ENODATA \
			"$(ce_r "$access" 0 $K64 "$out")"
		cbw_expect_eq "$p: status broken with -EIO" "broken -5" \
			"$(ce_state cbw) $(ce_error cbw)"
	fi
	ce_scope_end
	ce_kmsg_clean "$p"
done

# ---------------------------------------------------------------------------
# 4. COW out of space: a thin volume in a pool with room for half the copy.
# ---------------------------------------------------------------------------
# ce_thin_cow MIB_DATA SECTORS: sets $thin, a thin volume of SECTORS.
ce_thin_cow()
{
	local meta data

	ce_loop meta 8
	ce_loop data "$1"
	ce_dm pool "0 $(($1 * 2048)) thin-pool $meta $data 128 0 1 error_if_no_space"
	dmsetup message "$CBW_NAME_PREFIX-pool" 0 "create_thin 0"
	ce_dm thin "0 $2 thin $(ce_dev pool) 0"
	thin=$(ce_dev thin)
}

for policy in break_guest_write break_snapshot; do
	p="4 $policy"
	ce_origin 2
	ce_thin_cow 1 4096
	ce_stack "$policy" "$thin" 4096
	res=$(ce_w "$guest" 0 $((2 * MIB)) "$new")
	rres=$(ce_r "$access" 0 $((2 * MIB)) "$out")
	if [[ $policy == break_guest_write ]]; then
		cbw_expect_eq "$p: guest write fails with ENOSPC" ENOSPC "$res"
		cbw_expect_eq "$p: access read succeeds" ok "$rres"
		cbw_check "$p: access read returns the original data" \
			ce_same "$out" 0 "$base" 0 $((2 * MIB))
		cbw_expect_eq "$p: status active" active "$(ce_state cbw)"
	else
		cbw_expect_eq "$p: guest write succeeds" ok "$res"
		cbw_expect_eq "$p: access read fails" ENODATA "$rres"
		cbw_expect_eq "$p: status broken with -ENOSPC" "broken -28" \
			"$(ce_state cbw) $(ce_error cbw)"
	fi
	ce_scope_end
	ce_kmsg_clean "$p"
done

# ---------------------------------------------------------------------------
# 5. Nothing lost, with concurrent writers.
# ---------------------------------------------------------------------------
nblocks=512		# 2 MiB of 4 KiB blocks, 32 chunks
# ce_fault FAULT: builds the stack for FAULT under $policy.
ce_fault()
{
	case $1 in
	cow-error)
		# Copies of every fourth chunk fail to write.
		ce_loop cowl 2
		ce_dm cow "$(ce_error_table "$cowl")"
		ce_stack "$policy" "$(ce_dev cow)" 4096
		;;
	cow-timeout)
		ce_loop cowl 2
		ce_dm cow "0 4096 delay $cowl 0 0 $cowl 0 400"
		ce_stack "$policy" "$(ce_dev cow)" 4096 100
		;;
	origin-error)
		# The last 4 KiB block of every fourth chunk cannot be read
		# (nor written).
		ce_loop cowl 2
		ce_dm org "$(ce_error_table "$origin")"
		ce_stack "$policy" "$cowl" 4096 0 "$(ce_dev org)"
		;;
	cow-full)
		ce_thin_cow 1 4096
		ce_stack "$policy" "$thin" 4096
		;;
	esac
}

# ce_error_table DEV: a table for DEV (4096 sectors) with an error range of
# 8 sectors at the end of every fourth chunk of 128 sectors.
ce_error_table()
{
	local s

	for ((s = 0; s < 4096; s += 512)); do
		printf '%d 376 linear %s %d\n' $s "$1" $s
		printf '%d 8 error\n' $((s + 376))
		printf '%d 128 linear %s %d\n' $((s + 384)) "$1" $((s + 384))
	done
}

# Writes that failed to blocks other than the error blocks of the table.
ce_unexpected_failures()
{
	awk '$3 != "ok" && ($1 * 8) % 512 != 376' "$1" | wc -l
}

for policy in break_guest_write break_snapshot; do
	for fault in cow-error cow-timeout origin-error cow-full; do
		p="5 $policy $fault"
		ce_origin 2
		ce_fault $fault
		python3 "$ERRIO" writers "$guest" $nblocks 4 2 "$work/log" >/dev/null
		nok=$(grep -c ' ok$' "$work/log" || true)
		nbad=$(grep -vc ' ok$' "$work/log" || true)
		cbw_info "$p: $nok writes succeeded, $nbad failed," \
			"state $(ce_state cbw), error $(ce_error cbw)"
		if [[ $policy == break_snapshot && $fault == origin-error ]]; then
			cbw_expect_eq "$p: only writes to the error blocks fail" \
				"0 16" "$(ce_unexpected_failures "$work/log") $nbad"
		elif [[ $policy == break_snapshot ]]; then
			cbw_expect_eq "$p: every write succeeds" 0 "$nbad"
		fi
		cbw_check "$p: the origin holds every successful write" \
			python3 "$ERRIO" verify "$origin" $nblocks "$work/log" "$base"
		if [[ $policy == break_guest_write && $fault != origin-error ]]; then
			cbw_expect_eq "$p: access read succeeds" ok \
				"$(ce_r "$access" 0 $((2 * MIB)) "$out")"
			cbw_check "$p: the snapshot is exact" \
				ce_same "$out" 0 "$base" 0 $((2 * MIB))
		fi
		ce_scope_end
		ce_kmsg_clean "$p"
	done
done

# ext4 on the cbw device under break_snapshot stays consistent.
ext4_faults="cow-error cow-timeout"
if ! modprobe -q ext4 2>/dev/null && ! grep -qw ext4 /proc/filesystems; then
	cbw_skip "5 ext4 break_snapshot" "no ext4 in this kernel"
	ext4_faults=
fi
for fault in $ext4_faults; do
	p="5 ext4 break_snapshot $fault"
	policy=break_snapshot
	ce_loop origin 16
	mkfs.ext4 -q -F -b 4096 "$origin"
	ce_loop cowl 16
	if [[ $fault == cow-error ]]; then
		ce_dm cow "0 32768 flakey $cowl 0 0 3600 1 error_writes"
		ce_stack $policy "$(ce_dev cow)" 32768
	else
		ce_dm cow "0 32768 delay $cowl 0 0 $cowl 0 400"
		ce_stack $policy "$(ce_dev cow)" 32768 100
	fi
	# The access device would hold the cbw device open exclusively.
	ce_dm_del "$CBW_NAME_PREFIX-acc"
	mkdir -p "$work/mnt"
	mount -t ext4 "$guest" "$work/mnt"
	for i in 1 2 3 4; do
		head -c $((2 * MIB)) "$new" >"$work/mnt/f$i" &
	done
	wait
	cp "$work/mnt/f1" "$work/mnt/f5"
	rm "$work/mnt/f2"
	sync
	umount "$work/mnt"
	cbw_expect_eq "$p: snapshot broken" broken "$(ce_state cbw)"
	cbw_check "$p: fsck -n finds ext4 clean" fsck.ext4 -n -f "$guest"
	ce_scope_end
	ce_kmsg_clean "$p"
done

# ---------------------------------------------------------------------------
# 6. Teardown while copies fail or time out.
# ---------------------------------------------------------------------------
for policy in break_guest_write break_snapshot; do
	p="6 $policy"
	# Snapshot end with copies timing out (their I/O still in flight).
	ce_origin 2
	ce_loop cowl 2
	ce_dm cow "0 4096 delay $cowl 0 0 $cowl 0 2000"
	ce_stack "$policy" "$(ce_dev cow)" 4096 50
	python3 "$ERRIO" writers "$guest" $nblocks 4 1 "$work/log" >/dev/null &
	wpid=$!
	sleep 1
	cbw_check "$p: snapshot ends while copies time out" \
		dmsetup load "$CBW_NAME_PREFIX-cbw" --table "0 4096 cbw $origin - $C"
	cbw_check "$p: resume (waits for the timed-out copies)" \
		dmsetup resume "$CBW_NAME_PREFIX-cbw"
	wait "$wpid" || true
	cbw_check "$p: the origin holds every successful write" \
		python3 "$ERRIO" verify "$origin" $nblocks "$work/log" "$base"
	cbw_expect_eq "$p: access device reads fail after the end" ENODATA \
		"$(ce_r "$access" 0 $K64 "$out")"
	ce_scope_end
	ce_kmsg_clean "$p: snapshot end"

	# Device removal right after writes whose copies time out or fail.
	ce_origin 2
	ce_loop cowl 2
	ce_dm cow "0 2048 delay $cowl 0 0 $cowl 0 2000
2048 2048 flakey $cowl 2048 0 3600 1 error_writes"
	ce_stack "$policy" "$(ce_dev cow)" 4096 50
	python3 "$ERRIO" writers "$guest" $nblocks 4 1 "$work/log" >/dev/null
	ce_dm_del "$CBW_NAME_PREFIX-acc"
	cbw_check "$p: cbw device removed while timed-out copies run" \
		dmsetup remove "$CBW_NAME_PREFIX-cbw"
	cbw_check "$p: then the slow COW device can go" \
		dmsetup remove "$CBW_NAME_PREFIX-cow"
	cbw_check "$p: the origin holds every successful write" \
		python3 "$ERRIO" verify "$origin" $nblocks "$work/log" "$base"
	ce_scope_end
	ce_kmsg_clean "$p: device removal"
done

# Module unload right after a removal with copies in flight, then reload.
if [[ -n ${CBW_MODULE:-} && -f ${CBW_MODULE:-} ]] &&
	! dmsetup table 2>/dev/null | grep -q ' cbw'; then
	ce_origin 2
	ce_loop cowl 2
	ce_dm cow "0 4096 delay $cowl 0 0 $cowl 0 1500"
	ce_stack break_snapshot "$(ce_dev cow)" 4096 50
	python3 "$ERRIO" writers "$guest" 64 2 1 "$work/log" >/dev/null
	ce_dm_del "$CBW_NAME_PREFIX-acc"
	ce_dm_del "$CBW_NAME_PREFIX-cbw"
	cbw_check "6 module unloads" rmmod dm-cbw
	cbw_check "6 module loads again" insmod "$CBW_MODULE"
	ce_scope_end
	ce_kmsg_clean "6 module unload"
else
	cbw_skip "6 module unload" "CBW_MODULE not set or other cbw devices exist"
fi

cbw_done
