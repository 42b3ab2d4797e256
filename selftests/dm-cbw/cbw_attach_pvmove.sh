#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# pvmove of an attached LV with a mounted ext4 and a writer running, as
# dm-cbw.rst describes it for lvm2 2.03.16: pvmove PV1 PV2 and pvmove -n LV
# succeed and give the LV LVM's own table (through the pvmove mirror while
# it moves, then linear on the new PV): the cbw table and its bitmaps are
# gone.  Proves that: no data is lost (a set of files written before the
# move and every file of the writer keep their checksums, read back from
# the disk; the writer saw no error; fsck is clean); attach --check says
# broken with the bitmaps lost (exit status 1), also during the move if the
# test sees it, and that the hidden device has another table, so detach
# comes before attach; the hidden device, which still maps the extents LVM
# moved away from, is orphaned; attach refuses to put the LV back over it;
# detach says the bitmaps are lost and removes it; attach then works again
# over the LV's new table and its new bitmap records writes.
#
# LVM runs without udev (udev_sync=0, udev_rules=0) with its own
# configuration in LVM_SYSTEM_DIR, which accepts only the test's two PVs,
# and pvmove runs in the foreground (use_lvmpolld=0).

. "$(dirname -- "$0")/lib.sh"

pv1=
pv2=
cbw_setup 500
cbw_require_cmds lvm mkfs.ext4 e2fsck sha256sum find sort python3
cbw_require_kmod ext4 dm-mirror
cbw_have_target mirror || cbw_skip_all "the dm-mirror target pvmove needs is not available"
cbw_require_cbwctl
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create pv1 200
cbw_loop_create pv2 200
vg=${CBW_NAME_PREFIX}mvg
lvdm=$vg-lv
hidden=cbw-hidden-$lvdm
W=$CBW_WORK
ctl=$W/ctl
mnt=$W/mnt
mkdir -p -- "$ctl"

cbw_lvm_config "$pv1" "$pv2"

# shellcheck disable=SC2317 # run through cbw_defer
drop_dev() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
# shellcheck disable=SC2317 # run through cbw_defer
vg_off()
{
	lvm pvmove --abort >/dev/null 2>&1
	lvm vgchange -an "$vg" >/dev/null 2>&1
	drop_dev "$hidden"
	lvm vgremove -f "$vg" >/dev/null 2>&1 || true
}
cbw_defer vg_off

run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	if ((rc)); then
		cbw_info "cbwctl $* exited with $rc"
		cbw_info <"$W/stderr"
	fi
}

# state: what attach --check --json says of the LV.
state() { cbw_attach_state "$vg/lv"; }

table_of() { dmsetup table "$1" 2>/dev/null; }

# lv_pvs: the PVs LVM's metadata puts the LV on.
lv_pvs() { lvm lvs --noheadings -o devices "$vg/lv" | tr -d ' '; }

# expect_attached DESC: the LV is cbw over the hidden device, which has the
# LV's own (LVM) table $lv_table.
expect_attached()
{
	local desc=$1 want

	want="0 $lv_sectors cbw $(cbw_dm_devno "$hidden") - 128"
	if [[ $(table_of "$lvdm") == "$want" && $(table_of "$hidden") == "$lv_table" &&
		$(state) == attached ]]; then
		cbw_pass "$desc"
	else
		cbw_info "$lvdm: $(table_of "$lvdm"); $hidden: $(table_of "$hidden"); state $(state)"
		cbw_fail "$desc"
	fi
}

# verify_data DESC: the verified set and the writer's files, read from the
# disk (the page cache dropped), have the checksums taken before.
verify_data()
{
	local desc=$1

	sync
	echo 3 >/proc/sys/vm/drop_caches
	if (cd -- "$mnt/v" && sha256sum --quiet -c -- "$W/vsums" >"$W/vcheck" 2>&1); then
		cbw_pass "$desc: the verified set has its checksums ($(wc -l <"$W/vsums") files)"
	else
		head -n 5 -- "$W/vcheck" | cbw_info
		cbw_fail "$desc: the verified set has its checksums"
	fi
	cbw_checksums "$mnt" >"$W/sums.now"
	if cmp -s -- "$W/sums.before" "$W/sums.now"; then
		cbw_pass "$desc: every file has the checksum taken before ($(wc -l <"$W/sums.now") files)"
	else
		diff -- "$W/sums.before" "$W/sums.now" | head -n 10 | cbw_info
		cbw_fail "$desc: every file has the checksum taken before"
	fi
}

# move DESC PVMOVE_ARGS...: runs pvmove with the writer busy, looks at
# attach --check while the LV maps through LVM's pvmove mirror, then checks
# the data with the writer paused.
move()
{
	local desc=$1 pid mid_state="" mid_table=""

	shift
	"$CBWCTL" bitmap query "$lvdm" "$bitmap" >/dev/null 2>&1 ||
		cbw_bail "$desc: the LV has no bitmap $bitmap before the move"
	lvm pvmove -i 1 "$@" >"$W/pvmove.out" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if [[ -z $mid_state ]] && cbw_dm_exists "$vg-pvmove0" &&
			[[ $(table_of "$lvdm") == *" linear $(cbw_dm_devno "$vg-pvmove0") "* ]]; then
			mid_table=$(table_of "$lvdm")
			mid_state=$(state)
		fi
		sleep 0.1
	done
	rc=0
	wait "$pid" || rc=$?
	cbw_expect_eq "$desc: pvmove $* succeeds" 0 "$rc"
	((rc == 0)) || cbw_info <"$W/pvmove.out"
	if [[ -n $mid_state ]]; then
		cbw_info "during the move: $lvdm: $mid_table"
		cbw_expect_eq "$desc: during the move, attach --check says broken" broken "$mid_state"
	else
		cbw_info "$desc: the move ended before the test saw the LV on the mirror"
	fi
	cbw_pause_writer "$ctl"
	cbw_checksums "$mnt" >"$W/sums.before"
	verify_data "$desc"
	cbw_resume_writer "$ctl"
}

# broken_after DESC NEW_PV: the LV is on NEW_PV with an LVM table, --check
# says broken, the hidden device is orphaned, attach is refused, detach
# removes it.
broken_after()
{
	local desc=$1 new_pv=$2 json table

	table=$(table_of "$lvdm")
	if [[ $table == *cbw* || $table == *"$(cbw_dm_devno "$hidden")"* ]]; then
		cbw_info "$lvdm: $table"
		cbw_fail "$desc: the LV has LVM's table again"
	else
		cbw_pass "$desc: the LV has LVM's table again"
	fi
	cbw_expect_eq "$desc: LVM puts the LV on $new_pv" "$new_pv(0)" "$(lv_pvs)"
	cbw_expect_eq "$desc: the hidden device still maps the old extents" "$lv_table" \
		"$(table_of "$hidden")"
	cbw_check_fails "$desc: the bitmap $bitmap is gone" \
		"$CBWCTL" bitmap query "$lvdm" "$bitmap"

	rc=0
	json=$("$CBWCTL" --json attach --check "$vg/lv" 2>/dev/null) || rc=$?
	cbw_expect_eq "$desc: attach --check fails" 1 "$rc"
	cbw_expect_eq "$desc: attach --check says broken, bitmaps lost" "broken True" \
		"$(cbw_first_json state bitmaps_lost <<<"$json")"
	rc=0
	"$CBWCTL" attach --check "$vg/lv" >/dev/null 2>"$W/stderr" || rc=$?
	if ((rc == 1)) && grep -q "has another table" "$W/stderr" &&
		grep -q "cbwctl detach $lvdm, then attach again" "$W/stderr"; then
		cbw_pass "$desc: attach --check says to detach before attaching again"
	else
		cbw_info <"$W/stderr"
		cbw_fail "$desc: attach --check says to detach before attaching again"
	fi
	rc=0
	"$CBWCTL" attach --check "$hidden" >"$W/stdout" 2>&1 || rc=$?
	if ((rc == 1)) && grep -q "orphaned" "$W/stdout"; then
		cbw_pass "$desc: attach --check of the hidden device says orphaned"
	else
		cbw_info <"$W/stdout"
		cbw_fail "$desc: attach --check of the hidden device says orphaned"
	fi

	run attach "$vg/lv" --bitmap x
	if ((rc == 1)) && grep -q "has another table" "$W/stderr" &&
		[[ $(table_of "$lvdm") == "$table" ]]; then
		cbw_pass "$desc: attach refuses to put the LV over the old extents"
	else
		cbw_info "status $rc, $lvdm: $(table_of "$lvdm")"
		cbw_fail "$desc: attach refuses to put the LV over the old extents"
	fi

	run detach "$vg/lv"
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
	cbw_expect_eq "$desc: detach leaves the LV's table as it is" "$table" \
		"$(table_of "$lvdm")"
	cbw_expect_eq "$desc: attach --check then says detached" detached "$(state)"
}

# reattach DESC BITMAP: attach (again) works over the LV's current table,
# and its new bitmap BITMAP records the writer's writes.
reattach()
{
	local desc=$1 dirty

	lv_table=$(table_of "$lvdm")
	bitmap=$2
	run attach "$vg/lv" --bitmap "$bitmap"
	cbw_expect_eq "$desc: attach" 0 "$rc"
	expect_attached "$desc: the LV is cbw over a hidden device with its new table"
	sleep 2
	sync
	dirty=$("$CBWCTL" --json bitmap query "$lvdm" "$bitmap" 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])') ||
		dirty=0
	cbw_expect_cmp "$desc: the new bitmap records writes (dirty bytes)" "$dirty" -gt 0
}

lvm pvcreate -q "$pv1" "$pv2" >/dev/null
lvm vgcreate -q "$vg" "$pv1" "$pv2" >/dev/null
lvm lvcreate -q -y -n lv -L 128M "$vg" "$pv1" >/dev/null
dmsetup mknodes
lv=/dev/$vg/lv
lv_sectors=$(cbw_size "$lv")
cbw_info "LV $lv: $(table_of "$lvdm")"

mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$lv"
cbw_mount "$lv" "$mnt"
mkdir -p -- "$mnt/v"
for i in $(seq 24); do
	head -c $((100000 + i * 20000)) /dev/urandom >"$mnt/v/f$i"
done
sync
(cd -- "$mnt/v" && sha256sum -- f*) >"$W/vsums"

writer_pid=
cbw_bg writer_pid cbw_fs_writer "$mnt" "$ctl" 256 2>"$W/writer.err"
cbw_defer touch -- "$ctl/stop"
sleep 2

reattach "attach" b0

move "pvmove PV1 PV2" "$pv1" "$pv2"
broken_after "pvmove PV1 PV2" "$pv2"
reattach "after pvmove PV1 PV2" b1

move "pvmove -n LV" -n lv "$pv2" "$pv1"
broken_after "pvmove -n LV" "$pv1"
reattach "after pvmove -n LV" b2

touch -- "$ctl/stop"
cbw_kill "$writer_pid"
if [[ -s $W/writer.err ]]; then
	head -n 5 -- "$W/writer.err" | cbw_info
	cbw_fail "the writer saw no error"
else
	cbw_pass "the writer saw no error"
fi
cbw_checksums "$mnt" >"$W/sums.before"
run detach "$vg/lv"
cbw_expect_eq "detach at the end" 0 "$rc"
cbw_umount "$mnt"
cbw_check "fsck -n after both moves is clean" e2fsck -f -n "$lv"
cbw_mount "$lv" "$mnt"
verify_data "after a remount"
cbw_umount "$mnt"

cbw_done
