#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Lifecycle of cbw and cbw-access devices.
#
# Proves that:
#  - reloading a table (same table, other chunk size, with or without an
#    explicit suspend) keeps the device usable and its data intact;
#  - ending the snapshot while an access device exists makes its reads fail
#    with ENODATA from then on (also after a new snapshot starts: an access
#    device never switches to another point in time), without disturbing
#    the guest data; a new access device reads the new point in time;
#  - an access device does not hold its cbw device: removing the cbw device
#    ends the snapshot, and the access device's reads fail with ENODATA;
#  - a cbw device with I/O running (fio, with a snapshot active) cannot be
#    removed (busy), the I/O is not disturbed (fio verifies its data), and
#    removal succeeds once the I/O stopped;
#  - suspend/resume cycles (with and without --noflush) under concurrent
#    guest writes and access reads keep the point-in-time image exact, the
#    post-write image exact and chunks_copied equal to the touched chunks;
#  - the module unloads once everything is removed, and loads again.

. "$(dirname -- "$0")/lib.sh"

C=128
origin=
cow=
cbw_setup 160
cbw_require_cmds fio
cbw_loop_create origin 32
cbw_loop_create cow 32
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
acc2_name=$(cbw_name acc2)
len=$(cbw_size "$origin")
total=$((len / C))
q=$((len / 4))

# shellcheck disable=SC2317 # run through cbw_check
verify() { "$CBW_STRESS" verify "$@"; }
stamp() { "$CBW_STRESS" stamp "$@" >/dev/null; }
probe() { "$CBW_STRESS" probe "$@" 2>&1 || true; }

# --- reload ---------------------------------------------------------------
cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
stamp "$guest" 1
table=$(dmsetup table "$name")
cbw_check "suspend, load the same table, resume" cbw_reload "$name" "$table"
cbw_check "data intact after reloading the same table" verify "$guest" 1
cbw_check "load and resume without an explicit suspend" \
	bash -c "dmsetup load '$name' --table '$(cbw_cbw_table "$origin" - 64)' && dmsetup resume '$name'"
cbw_expect_eq "the new chunk size is in the status" 64 "$(cbw_stat "$name" chunk)"
cbw_check "data intact after reloading with another chunk size" verify "$guest" 1
cbw_reload "$name" "$(cbw_cbw_table "$origin" - "$C")"
stamp "$guest" 2 0 "$q"
cbw_check "the device takes writes after reloads" verify "$guest" 2 0 "$q"

# --- access device holding the cbw device; snapshot end under it ----------
cbw_snapshot_start "$name" "$cow"
cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
stamp "$guest" 3 0 $((2 * q))
cbw_check "access reads the point in time" verify "$acc" 2 0 "$q"
cbw_check "access reads the point in time (unwritten part)" verify "$acc" 1 "$q" $((len - q))
cbw_expect_eq "the snapshot is still active" active "$(cbw_stat "$name" state)"

copied=$(cbw_stat "$name" copied)
cbw_expect_cmp "chunks were copied" "$copied" -gt 0
cbw_snapshot_end "$name"
cbw_expect_eq "status after snapshot end" "$C none 0 0 0 0 0 -" \
	"$(cbw_status_core "$name")"
cbw_expect_eq "access read of a copied chunk fails with ENODATA after snapshot end" \
	ENODATA "$(probe "$acc" 0 "$C")"
cbw_expect_eq "access read of an uncopied chunk fails with ENODATA after snapshot end" \
	ENODATA "$(probe "$acc" $((len - C)) "$C")"
cbw_expect_eq "access status after snapshot end" none "$(cbw_stat "$acc_name" state)"
cbw_check "guest data intact after snapshot end (new data)" verify "$guest" 3 0 $((2 * q))
cbw_check "guest data intact after snapshot end (old data)" verify "$guest" 1 $((2 * q)) $((2 * q))

cbw_snapshot_start "$name" "$cow"
cbw_expect_eq "a new snapshot starts with nothing copied" "active $total 0" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" total) $(cbw_stat "$name" copied)"
stamp "$guest" 4 0 "$q"
cbw_expect_eq "the old access device still fails with ENODATA in the new snapshot" \
	ENODATA "$(probe "$acc" 0 "$C")"
cbw_access_create "$acc2_name" "$name"
acc2=$(cbw_dm_path "$acc2_name")
cbw_check "a new access device reads the new point in time" verify "$acc2" 3 0 $((2 * q))
cbw_check "a new access device reads the new point in time (old data)" \
	verify "$acc2" 1 $((2 * q)) $((2 * q))
cbw_check "remove the old access device" cbw_dm_remove "$acc_name"

# The access device does not hold the cbw device open (a file system may be
# mounted on it): removing the cbw device ends the snapshot instead.
cbw_check "the cbw device can be removed while an access device exists" \
	dmsetup remove "$name"
cbw_dm_forget "$name"
cbw_expect_eq "after the cbw device is removed, access reads fail with ENODATA" \
	ENODATA "$(probe "$acc2" 0 "$C")"
cbw_expect_eq "after the cbw device is removed, access reads of uncopied chunks fail" \
	ENODATA "$(probe "$acc2" $((len - C)) "$C")"
cbw_expect_eq "access status after the cbw device is removed" "none 0 0" \
	"$(cbw_status_core "$acc2_name")"
cbw_check "remove the access device of the removed cbw device" cbw_dm_remove "$acc2_name"
cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
cbw_check "the origin kept the guest data" verify "$guest" 4 0 "$q"

# --- removal under I/O --------------------------------------------------
cbw_snapshot_start "$name" "$cow"
fio_pid=
# Enough passes that fio still has the device open when the removal comes,
# however fast copies are (the first pass copies, the others do not).
cbw_bg fio_pid fio --name=busy --filename="$guest" --direct=1 --rw=randwrite \
	--bs=16k --size=8m --loops=16 --verify=crc32c --verify_fatal=1 \
	--do_verify=1 --output="$CBW_WORK/fio.log"
# wait until fio has the device open
for i in $(seq 100); do
	(($(dmsetup info -c --noheadings -o open "$name") > 0)) && break
	kill -0 "$fio_pid" 2>/dev/null || break
	sleep 0.1
done
sleep 0.2
if kill -0 "$fio_pid" 2>/dev/null; then
	out=$(dmsetup remove "$name" 2>&1) && rc=0 || rc=$?
	if ((rc != 0)) && [[ $out == *busy* ]]; then
		cbw_pass "removing the cbw device under I/O fails with busy"
	else
		cbw_info "dmsetup remove: status $rc: $out"
		cbw_fail "removing the cbw device under I/O fails with busy"
	fi
	cbw_check "the device still exists" cbw_dm_exists "$name"
	rc=0
	wait "$fio_pid" || rc=$?
	((rc == 0)) || cbw_info <"$CBW_WORK/fio.log"
	cbw_expect_eq "fio verified its writes despite the removal attempt" 0 "$rc"
else
	wait "$fio_pid" || true
	cbw_info <"$CBW_WORK/fio.log"
	cbw_fail "fio was still running when the removal was attempted"
fi
cbw_expect_eq "snapshot still active, no error" "active -" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" error)"
cbw_check "removal succeeds once the I/O stopped" dmsetup remove "$name"
cbw_dm_forget "$name"
cbw_check_fails "the device is gone" cbw_dm_exists "$name"

# --- suspend/resume under I/O with a snapshot --------------------------------
cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
stamp "$guest" 0
cbw_snapshot_start "$name" "$cow"
cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
stress_pid=
cbw_bg stress_pid "$CBW_STRESS" run --guest "$guest" --access "$acc" \
	--seconds 12 --writers 3 --readers 2 --chunk-sectors "$C" \
	--shadow "$CBW_WORK/shadow" --touched "$CBW_WORK/touched" \
	>"$CBW_WORK/stress.log" 2>&1
cycles=0
sus_fail=0
while kill -0 "$stress_pid" 2>/dev/null; do
	sleep 0.3
	if ((cycles % 2)); then
		dmsetup suspend --noflush "$name" || sus_fail=1
	else
		dmsetup suspend "$name" || sus_fail=1
	fi
	sleep 0.3
	dmsetup resume "$name" || sus_fail=1
	cycles=$((cycles + 1))
done
rc=0
wait "$stress_pid" || rc=$?
cbw_info <"$CBW_WORK/stress.log"
cbw_expect_eq "$cycles suspend/resume cycles succeeded" 0 "$sus_fail"
cbw_expect_cmp "at least 3 suspend/resume cycles under I/O" "$cycles" -ge 3
cbw_expect_eq "guest writes and access reads across suspend/resume: no error" 0 "$rc"
cbw_check "access device holds the pre-image" verify "$acc" 0
cbw_check "guest holds the post-write image" \
	"$CBW_STRESS" check-post --guest "$guest" --shadow "$CBW_WORK/shadow"
out=$("$CBW_STRESS" check-cow --cow "$cow" --touched "$CBW_WORK/touched" 2>&1) && rc=0 || rc=$?
cbw_info <<<"$out"
cbw_expect_eq "COW device holds the pre-image of every touched chunk" 0 "$rc"
cbw_expect_eq "chunks_copied equals the touched chunks" \
	"$(awk '$1 == "touched_chunks" { print $2 }' <<<"$out")" "$(cbw_stat "$name" copied)"

# --- module unload --------------------------------------------------------
cbw_check "remove the access device" cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_check "remove the cbw device" cbw_dm_remove "$name"
if [[ -n ${CBW_MODULE:-} && -f $CBW_MODULE ]]; then
	cbw_check "rmmod dm-cbw after everything is removed" rmmod dm-cbw
	cbw_check "insmod \$CBW_MODULE" insmod "$CBW_MODULE"
	cbw_check "the cbw target is registered again" cbw_have_target cbw
else
	cbw_skip "module unload and reload" "CBW_MODULE is not set"
fi

cbw_done
