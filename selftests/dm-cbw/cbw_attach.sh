#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl attach and detach on a mounted, busy ext4 on an LVM logical volume.
#
# The LV's table moves to a hidden device (DM UUID CBW-hidden-LVM-...) and
# the LV gets a cbw table over it, under one suspend, while a writer runs.
# Proves that: attach refuses a device that is not a dm device and one
# that is a cbw device already; an attached LV backs up in full and
# incrementally (bitmap b0, added by attach) and both images restored to
# fresh devices hold the files and checksums of their snapshot points;
# detach is refused during a snapshot and during a backup job; attach and
# detach repeat under load; a cbwctl that dies after each step of attach or
# detach (CBWCTL_TEST_DIE_AFTER) leaves a state that a rerun of attach
# completes or a rerun of detach undoes, never a leaked hidden device;
# lvchange --refresh and lvextend replace the cbw table, and attach --check
# then says broken with the bitmaps lost, and detach says they are lost
# and removes the hidden device; vgchange -an is refused while the LV is mounted, and after an
# unmount deactivates the LV and leaves the hidden device, which --check
# calls orphaned and detach removes; the writer never saw an error and
# fsck is clean after the unmount.
#
# LVM runs without udev (udev_sync=0, udev_rules=0) with its own
# configuration in LVM_SYSTEM_DIR, which accepts only the test's PV.

. "$(dirname -- "$0")/lib.sh"

pv=
cow=
fresh1=
fresh2=
other=
cbw_setup 700
cbw_require_cmds lvm mkfs.ext4 e2fsck sha256sum find sort dd stat python3
cbw_require_kmod ext4
cbw_require_cbwctl
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create pv 200
cbw_loop_create cow 64
cbw_loop_create fresh1 64
cbw_loop_create fresh2 64
cbw_loop_create other 16
vg=${CBW_NAME_PREFIX}avg
lvdm=$vg-lv
hidden=cbw-hidden-$lvdm
W=$CBW_WORK
ctl=$W/ctl
mnt=$W/mnt
snapmnt=$W/snap
acc_name=$(cbw_name att-access)
acc=/dev/mapper/$acc_name
mkdir -p -- "$ctl" "$W/out"

cbw_lvm_config "$pv"

# shellcheck disable=SC2317 # run through cbw_defer
drop_dev() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
# shellcheck disable=SC2317 # run through cbw_defer
vg_off()
{
	lvm vgchange -an "$vg" >/dev/null 2>&1
	drop_dev "$hidden"
	lvm vgremove -f "$vg" >/dev/null 2>&1 || true
}
cbw_defer vg_off
cbw_defer drop_dev "$acc_name"

run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	if ((rc)); then
		cbw_info "cbwctl $* exited with $rc"
		cbw_info <"$W/stderr"
	fi
}

# expect_refused DESC PATTERN CBWCTL_ARGS...: cbwctl fails and says PATTERN.
expect_refused()
{
	local desc=$1 pattern=$2

	shift 2
	run "$@"
	if ((rc == 1)) && grep -q -- "$pattern" "$W/stderr"; then
		cbw_pass "$desc"
	else
		cbw_info "status $rc, stderr: $(cat -- "$W/stderr")"
		cbw_fail "$desc"
	fi
}

# state: what attach --check --json says of the LV.
state() { cbw_attach_state "$vg/lv"; }

table_of() { dmsetup table "$1" 2>/dev/null; }

# expect_attached DESC: the LV is cbw over the hidden device, which has
# the LV's own table, is marked, and the LV is not suspended.
expect_attached()
{
	local desc=$1 want

	want="0 $lv_sectors cbw $(cbw_dm_devno "$hidden") - 128"
	if [[ $(table_of "$lvdm") == "$want" && $(table_of "$hidden") == "$lv_table" &&
		$(dmsetup info -c --noheadings -o uuid "$hidden") == "CBW-hidden-$lv_uuid" &&
		$(state) == attached ]] && ! cbw_dm_suspended "$lvdm"; then
		cbw_pass "$desc"
	else
		cbw_info "$lvdm: $(table_of "$lvdm"); $hidden: $(table_of "$hidden"); state $(state)"
		cbw_fail "$desc"
	fi
}

# expect_detached DESC: the LV has its own table back, no hidden device.
expect_detached()
{
	local desc=$1

	if [[ $(table_of "$lvdm") == "$lv_table" && $(state) == detached ]] &&
		! cbw_dm_exists "$hidden" && ! cbw_dm_suspended "$lvdm"; then
		cbw_pass "$desc"
	else
		cbw_info "$lvdm: $(table_of "$lvdm"); hidden: $(table_of "$hidden"); state $(state)"
		cbw_fail "$desc"
	fi
}

# snapshot_sums OUT: checksums of the snapshot point, on the access device.
snapshot_sums()
{
	mkdir -p -- "$snapmnt"
	if ! mount -o ro,noload -t ext4 -- "$acc" "$snapmnt"; then
		cbw_fail "mount the access device read-only"
		: >"$1"
		return
	fi
	cbw_checksums "$snapmnt" >"$1"
	cbw_umount "$snapmnt"
}

# restored_sums DESC DEV SUMS: DEV holds a clean ext4 with those files.
restored_sums()
{
	local desc=$1 dev=$2 sums=$3

	cbw_check "$desc: fsck -n is clean" e2fsck -f -n "$dev"
	mkdir -p -- "$W/r"
	if ! mount -o ro -t ext4 -- "$dev" "$W/r"; then
		cbw_fail "$desc: mount"
		return
	fi
	cbw_checksums "$W/r" >"$W/rsums"
	cbw_umount "$W/r"
	if cmp -s -- "$W/rsums" "$sums"; then
		cbw_pass "$desc: the files and checksums of the snapshot point ($(wc -l <"$sums") files)"
	else
		diff -- "$sums" "$W/rsums" | head -n 20 | cbw_info
		cbw_fail "$desc: the files and checksums of the snapshot point"
	fi
}

lvm pvcreate -q "$pv" >/dev/null
lvm vgcreate -q "$vg" "$pv" >/dev/null
lvm lvcreate -q -y -n lv -L 64M "$vg" >/dev/null
dmsetup mknodes
lv=/dev/$vg/lv
lv_table=$(table_of "$lvdm")
lv_sectors=$(cbw_size "$lv")
lv_uuid=$(dmsetup info -c --noheadings -o uuid "$lvdm")
cbw_info "LV $lv: $lv_table, DM UUID $lv_uuid"

# --- Refusals -----------------------------------------------------------

expect_refused "attach refuses a block device that is not a dm device" \
	"is not a device-mapper device" attach "$other"
cbwdev=$(cbw_name att-cbw)
cbw_create "$cbwdev" "$other" 128
expect_refused "attach refuses a cbw device" "is a cbw device" attach "$cbwdev"
cbw_dm_remove "$cbwdev"

# A table of two lines, on a device without a DM UUID.
lin=$(cbw_name att-lin)
cbw_defer drop_dev "cbw-hidden-$lin"
cbw_dm_create "$lin" "$(printf '0 16384 linear %s 0\n16384 16384 linear %s 16384' \
	"$other" "$other")"
lin_table=$(table_of "$lin")
run attach "$lin"
cbw_expect_eq "attach a dm-linear device of two lines" 0 "$rc"
cbw_expect_eq "... the hidden device has both lines" "$lin_table" \
	"$(table_of "cbw-hidden-$lin")"
cbw_expect_eq "... its DM UUID is made of the device's name" "CBW-hidden-$lin" \
	"$(dmsetup info -c --noheadings -o uuid "cbw-hidden-$lin")"
cbw_expect_eq "... the device has one cbw line over the whole length" \
	"0 32768 cbw $(cbw_dm_devno "cbw-hidden-$lin") - 128" "$(table_of "$lin")"
run detach "$lin"
cbw_expect_eq "... detach" 0 "$rc"
cbw_expect_eq "... gives the device both lines back" "$lin_table" "$(table_of "$lin")"
cbw_dm_remove "$lin"

run detach "$vg/lv"
cbw_expect_eq "detach of a device that is not attached succeeds" 0 "$rc"
cbw_expect_eq "... and leaves it as it was" "$lv_table" "$(table_of "$lvdm")"

# --- A busy ext4 on the LV ---------------------------------------------

mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$lv"
cbw_mount "$lv" "$mnt"
writer_pid=
cbw_bg writer_pid cbw_fs_writer "$mnt" "$ctl" 256 2>"$W/writer.err"
cbw_defer touch -- "$ctl/stop"
shopt -s nullglob
for _ in $(seq 600); do
	files=("$mnt"/a/* "$mnt"/b/*)
	((${#files[@]} < 16)) || break
	sleep 0.1
done
shopt -u nullglob

run attach "$vg/lv" --bitmap b0
cbw_expect_eq "attach VG/LV with the filesystem busy" 0 "$rc"
expect_attached "the LV is cbw over the hidden device, which has its table"
run attach "$lv"
if ((rc == 0)) && grep -q "already attached" "$W/stdout"; then
	cbw_pass "attach again says already attached"
else
	cbw_fail "attach again says already attached"
fi
expect_refused "attach refuses the hidden device" "hidden device" attach "$hidden"
run attach --check "$hidden"
if ((rc == 0)) && grep -q "hidden$" "$W/stdout"; then
	cbw_pass "attach --check of the hidden device in use says hidden"
else
	cbw_fail "attach --check of the hidden device in use says hidden"
fi

# --- Full and incremental backups ----------------------------------------

run backup begin "$lv" --sync full --bitmap b0 --bitmap-mode on-success \
	--cow "$cow" --chunk 64K --access "$acc_name"
cbw_expect_eq "full: backup begin on the attached LV" 0 "$rc"
((rc == 0)) || cbw_bail "no job"
expect_refused "detach is refused during a backup job" "backup job is running" \
	detach "$lv"
snapshot_sums "$W/sums1"
cbw_expect_cmp "full: files at the snapshot point" "$(wc -l <"$W/sums1")" -gt 10
run backup run "$lv" --target "$W/out/full.img" --format raw
cbw_expect_eq "full: backup run" 0 "$rc"
run backup finish "$lv"
cbw_expect_eq "full: backup finish" 0 "$rc"

sleep 3
cbw_pause_writer "$ctl"
sync
cbw_checksums "$mnt" >"$W/sums2"
run backup begin "$lv" --sync incremental --bitmap b0 --cow "$cow" --chunk 64K \
	--access "$acc_name"
cbw_resume_writer "$ctl"
cbw_expect_eq "incremental: backup begin" 0 "$rc"
((rc == 0)) || cbw_bail "no job"
run backup run "$lv" --target "$W/out/inc.img"
cbw_expect_eq "incremental: backup run" 0 "$rc"
run backup finish "$lv"
cbw_expect_eq "incremental: backup finish" 0 "$rc"
if cmp -s -- "$W/sums1" "$W/sums2"; then
	cbw_fail "the writer changed files between the two snapshot points"
else
	cbw_pass "the writer changed files between the two snapshot points"
fi

run snapshot start "$lv" --cow "$cow"
cbw_expect_eq "snapshot start on the attached LV" 0 "$rc"
expect_refused "detach is refused during a snapshot" "snapshot is active" detach "$lv"
run snapshot stop "$lv"
cbw_expect_eq "snapshot stop" 0 "$rc"

run restore --to "$fresh1" "$W/out/full.img"
cbw_expect_eq "restore the full image to a fresh device" 0 "$rc"
restored_sums "full" "$fresh1" "$W/sums1"
run restore --to "$fresh2" "$W/out/full.img" "$W/out/inc.img"
cbw_expect_eq "restore full + incremental to another fresh device" 0 "$rc"
restored_sums "full + incremental" "$fresh2" "$W/sums2"

run detach "$lv"
cbw_expect_eq "detach with the filesystem busy" 0 "$rc"
expect_detached "the LV has its own table back, the hidden device is gone"

# --- Repeated, and killed at every step ----------------------------------

ok=1
for i in 1 2 3; do
	"$CBWCTL" attach "$lv" --bitmap "r$i" >/dev/null && [[ $(state) == attached ]] &&
		"$CBWCTL" detach "$lv" >/dev/null && [[ $(state) == detached ]] || ok=0
done
cbw_expect_eq "attach and detach three times under load" 1 "$ok"
expect_detached "after the repeats: detached"

# killed STEP CMD: cbwctl CMD dies right after STEP; says what it left.
killed()
{
	local step=$1

	shift
	CBWCTL_TEST_DIE_AFTER=$step "$CBWCTL" "$@" "$lv" >/dev/null 2>&1 && rc=0 || rc=$?
	left=$(state)
}

for step in create load suspend resume; do
	killed "$step" attach --bitmap k
	cbw_expect_eq "attach died after $step" 1 "$rc"
	if [[ $step == resume ]]; then
		cbw_expect_eq "... it is attached, bitmaps not yet added" attached "$left"
	else
		cbw_expect_eq "... attach --check says broken" broken "$left"
	fi
	run attach "$lv" --bitmap k
	cbw_expect_eq "... attach again" 0 "$rc"
	expect_attached "... attach again completes it"
	cbw_check "... with its bitmap" "$CBWCTL" bitmap query "$lv" k
	run detach "$lv"
	expect_detached "... and it detaches"

	killed "$step" attach
	run detach "$lv"
	cbw_expect_eq "attach died after $step: detach" 0 "$rc"
	expect_detached "... detach undoes it"
done

for step in load suspend resume remove; do
	"$CBWCTL" attach "$lv" >/dev/null
	killed "$step" detach
	cbw_expect_eq "detach died after $step" 1 "$rc"
	run detach "$lv"
	cbw_expect_eq "... detach again" 0 "$rc"
	expect_detached "... detach again completes it"
	if [[ $step != remove ]]; then
		"$CBWCTL" attach "$lv" >/dev/null
		killed "$step" detach
		run attach "$lv"
		cbw_expect_eq "detach died after $step: attach" 0 "$rc"
		expect_attached "... attach again attaches it"
		"$CBWCTL" detach "$lv" >/dev/null
	fi
done

# --- What LVM does to an attached LV -------------------------------------

# broken_then_detach DESC: --check says broken and bitmaps lost, exit 1,
# and detach removes the hidden device.
broken_then_detach()
{
	local desc=$1 json

	rc=0
	json=$("$CBWCTL" --json attach --check "$lv" 2>/dev/null) || rc=$?
	cbw_expect_eq "$desc: attach --check fails" 1 "$rc"
	cbw_expect_eq "$desc: attach --check says broken, bitmaps lost" "broken True" \
		"$(cbw_first_json state bitmaps_lost <<<"$json")"
	run detach "$lv"
	cbw_expect_eq "$desc: detach" 0 "$rc"
	if grep -q "dirty bitmaps it had are lost" "$W/stderr"; then
		cbw_pass "$desc: detach says the bitmaps are lost"
	else
		cbw_fail "$desc: detach says the bitmaps are lost"
	fi
	if cbw_dm_exists "$hidden"; then
		cbw_fail "$desc: detach removes the hidden device"
	else
		cbw_pass "$desc: detach removes the hidden device"
	fi
}

"$CBWCTL" attach "$lv" --bitmap b1 >/dev/null
cbw_check "lvchange --refresh of the attached LV" lvm lvchange --refresh "$vg/lv"
cbw_expect_eq "lvchange --refresh: the LV has its LVM table again" "$lv_table" \
	"$(table_of "$lvdm")"
broken_then_detach "lvchange --refresh"

"$CBWCTL" attach "$lv" --bitmap b1 >/dev/null
cbw_check "lvextend of the attached LV" lvm lvextend -q -L +8M "$vg/lv"
if [[ $(table_of "$lvdm") == *cbw* ]]; then
	cbw_fail "lvextend: the LV has an LVM table again"
else
	cbw_pass "lvextend: the LV has an LVM table again"
fi
broken_then_detach "lvextend"
lv_table=$(table_of "$lvdm")
lv_sectors=$(cbw_size "$lv")
run attach "$lv"
expect_attached "attach after lvextend"

cbw_check_fails "vgchange -an is refused while the attached LV is mounted" \
	lvm vgchange -an "$vg"
expect_attached "... and leaves it attached"

touch -- "$ctl/stop"
cbw_kill "$writer_pid"
if [[ -s $W/writer.err ]]; then
	head -n 5 -- "$W/writer.err" | cbw_info
	cbw_fail "the writer saw no error"
else
	cbw_pass "the writer saw no error"
fi
cbw_umount "$mnt"
cbw_check "fsck -n of the attached LV is clean" e2fsck -f -n "$lv"

cbw_check "vgchange -an after the unmount" lvm vgchange -an "$vg"
rc=0
"$CBWCTL" attach --check "$hidden" >"$W/stdout" 2>&1 || rc=$?
if ((rc == 1)) && grep -q orphaned "$W/stdout"; then
	cbw_pass "the hidden device left by vgchange -an is orphaned"
else
	cbw_fail "the hidden device left by vgchange -an is orphaned"
fi
run detach "$hidden"
cbw_expect_eq "detach removes the orphaned hidden device" 0 "$rc"
if cbw_dm_exists "$hidden"; then
	cbw_fail "... it is gone"
else
	cbw_pass "... it is gone"
fi
cbw_check "vgchange -ay" lvm vgchange -ay "$vg"
dmsetup mknodes
cbw_check "fsck -n of the LV after reactivation is clean" e2fsck -f -n "$lv"

cbw_done
