#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The control device /dev/dm-cbw-control is robust.
#
# Proves, with cbw-ioctl against a tracking-only cbw device, that every
# ioctl checks its argument (size, flags, reserved fields, names, device
# numbers, user pointers) as include/uapi/linux/dm-cbw.h documents and that
# refused calls change nothing; that the bitmap commands answer the
# documented errors and read a range in bounded pieces; that a dm-linear, a
# dm device without a table, a cbw-access device and a loop device are not
# cbw devices (ENODEV); that bitmap commands racing with each other, with
# writer threads and with a background fio return only the documented
# errors (32-bit callers: cbw_ioctl32.sh); that a table with
# freeze_bitmap holds the bitmap busy from load and freezes it at resume,
# that the frozen bitmap keeps its bits while a successor records writes
# and marks, refuses changes (EBUSY), and that BITMAP_THAW, with or without
# MERGE and racing with writers, loses no write; that bitmaps end
# with their device (a new cbw device has none of them); that dm-cbw still
# unloads and loads afterwards; and that the kernel logs no warning.
#
# Environment: CBW_IOCTL_SECONDS (length of the concurrency part, default
# 15).

. "$(dirname -- "$0")/lib.sh"

CBW_IOCTL=${CBW_IOCTL:-$CBW_SELFTEST_DIR/cbw-ioctl}
seconds=${CBW_IOCTL_SECONDS:-15}
C=128
origin=

cbw_setup 160
[[ -c /dev/dm-cbw-control ]] ||
	cbw_skip_all "/dev/dm-cbw-control does not exist (dm-cbw without the control device)"
[[ -x $CBW_IOCTL ]] ||
	cbw_bail "$CBW_IOCTL is not built: run make -C $CBW_SELFTEST_DIR"
cbw_kmsg_mark

cbw_loop_create origin 64
name=$(cbw_name cbw)
lin_name=$(cbw_name lin)
empty_name=$(cbw_name empty)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
cbw_dm_create "$lin_name" "0 $len linear $origin 0"
cbw_defer dmsetup remove --retry "$empty_name"
dmsetup create "$empty_name" --notable
cbw_access_create "$acc_name" "$name"

cbw_devno=$(cbw_dm_devno "$name")
loop_devno=$(printf '%d:%d' "0x$(stat -c '%t' "$origin")" "0x$(stat -c '%T' "$origin")")
others=("$(cbw_dm_devno "$lin_name")" "$(cbw_dm_devno "$empty_name")"
	"$(cbw_dm_devno "$acc_name")" "$loop_devno")
cbw_info "cbw device $cbw_devno; not cbw devices: dm-linear ${others[0]}," \
	"no table ${others[1]}, cbw-access ${others[2]}, loop ${others[3]}"

# run_prog DESCRIPTION CMD [ARGS...]: one check from a cbw-ioctl run, whose
# own TAP output is shown as diagnostics. Exit status 4 is a skip.
run_prog()
{
	local desc=$1 rc=0 log

	shift
	log=$(mktemp -- "${TMPDIR:-/tmp}/cbw_ioctl.XXXXXX")
	"$@" 2>&1 | tee -- "$log" | sed -u 's/^/# /' || rc=$?
	case $rc in
	0) cbw_pass "$desc" ;;
	4) cbw_skip "$desc" "$(grep -m1 -o 'SKIP.*' -- "$log" | sed 's/^SKIP *//')" ;;
	*)
		cbw_info "$1 exited with status $rc"
		cbw_fail "$desc"
		;;
	esac
	rm -f -- "$log"
}

run_prog "64-bit caller: arguments checked, refusals change nothing" \
	"$CBW_IOCTL" -m basic "$cbw_devno" "${others[@]}"

# The concurrency part, with fio writing to the cbw device besides the
# program's own writer threads.
fio_pid=
if command -v fio >/dev/null 2>&1; then
	cbw_bg fio_pid fio --name=bg --filename="$guest" --rw=randwrite \
		--bsrange=512-128k --direct=1 --ioengine=psync --numjobs=1 \
		--time_based --runtime="$seconds" --output="$CBW_WORK/fio.log"
else
	cbw_info "fio is not installed: only cbw-ioctl's writer threads write"
fi
run_prog "concurrent commands and writes: only documented errors, then all bitmaps removed" \
	"$CBW_IOCTL" -m stress -d "$seconds" "$cbw_devno"
if [[ -n $fio_pid ]]; then
	rc=0
	wait "$fio_pid" || rc=$?
	if ((rc != 0)); then
		cbw_info <"$CBW_WORK/fio.log"
	fi
	cbw_expect_eq "background fio writes to the cbw device succeeded" 0 "$rc"
fi

# freeze_bitmap, on a cbw device of its own with a COW device: each reload
# with the table below starts a snapshot and freezes the bitmap.
cbw_loop_create fz_origin 16
cbw_loop_create fz_cow 32
fz_name=$(cbw_name fz)
fz_bm=fz
cbw_create "$fz_name" "$fz_origin" "$C"
fz_devno=$(cbw_dm_devno "$fz_name")
fz_table="0 $(cbw_size "$fz_origin") cbw $fz_origin $fz_cow $C 2 freeze_bitmap $fz_bm"
cbw_info "freeze: cbw device $fz_devno, table '$fz_table'"

run_prog "freeze: the bitmap to freeze is prepared" \
	"$CBW_IOCTL" -m prep "$fz_devno" "$fz_bm"
cbw_check "freeze: a table naming the bitmap as freeze_bitmap loads" \
	dmsetup load "$fz_name" --table "$fz_table"
run_prog "freeze: loaded, not resumed: the bitmap is busy, not frozen; MARK => EBUSY, THAW => EINVAL" \
	"$CBW_IOCTL" -m busy "$fz_devno" "$fz_bm"
cbw_check "freeze: the device suspends" dmsetup suspend "$fz_name"
cbw_check "freeze: the device resumes with the freeze_bitmap table" \
	dmsetup resume "$fz_name"
read -r -a fz_live <<<"$(dmsetup table "$fz_name")"
cbw_expect_eq "freeze: the new table, with a COW device, is live" \
	"$C 2 freeze_bitmap $fz_bm" "${fz_live[*]:5}"
cbw_check_fails "freeze: a table naming a frozen bitmap does not load" \
	dmsetup load "$fz_name" --table "$fz_table"
run_prog "freeze: frozen bitmap checked, THAW with MERGE" \
	"$CBW_IOCTL" -m frozen "$fz_devno" "$fz_bm"

cbw_check "freeze: the bitmap is frozen again by a reload" \
	cbw_reload "$fz_name" "$fz_table"
run_prog "freeze: frozen again, checked, THAW without flags" \
	"$CBW_IOCTL" -m refrozen "$fz_devno" "$fz_bm"

for mode in race race-merge race race-merge; do
	cbw_check "freeze: frozen again for $mode" \
		cbw_reload "$fz_name" "$fz_table"
	run_prog "freeze: $mode: THAW racing with writers loses no write" \
		"$CBW_IOCTL" -m "$mode" "$fz_devno" "$fz_bm"
done

# A device removed while its bitmap is frozen frees both.
cbw_check "freeze: frozen once more" cbw_reload "$fz_name" "$fz_table"
cbw_check "freeze: the cbw device with a frozen bitmap can be removed" \
	dmsetup remove "$fz_name"
cbw_dm_forget "$fz_name"

# Bitmaps end with their device: a new cbw device (which likely gets the
# same device number) starts without them.
run_prog "a bitmap is left on the cbw device" "$CBW_IOCTL" -m leave "$cbw_devno"
cbw_check "the cbw-access device can be removed" dmsetup remove "$acc_name"
cbw_check "the cbw device can be removed" dmsetup remove "$name"
name2=$(cbw_name cbw2)
cbw_create "$name2" "$origin" "$C"
cbw_info "new cbw device $(cbw_dm_devno "$name2")"
run_prog "a new cbw device has none of the bitmaps of the removed one" \
	"$CBW_IOCTL" -m fresh "$(cbw_dm_devno "$name2")"

# Nothing may keep the devices or the module: tear down, unload, load.
cbw_check "the new cbw device can be removed" dmsetup remove "$name2"
cbw_cleanup
desc="dm-cbw unloads (no references left) and loads again"
if [[ -z ${CBW_MODULE:-} || ! -f $CBW_MODULE ]]; then
	cbw_skip "$desc" "CBW_MODULE is not set"
elif dmsetup table 2>/dev/null | grep -Eq ' cbw(-access)? '; then
	cbw_skip "$desc" "other cbw devices exist"
else
	cbw_check "dm-cbw unloads (no references left)" rmmod dm-cbw
	if ! cbw_last_failed; then
		cbw_check "dm-cbw loads again" insmod "$CBW_MODULE"
		run_prog "the control device works after reloading dm-cbw" \
			"$CBW_IOCTL" -m version "$cbw_devno"
	fi
fi

kmsg=$(cbw_kmsg_since | grep -E 'BUG:|WARNING:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|lockdep' || true)
[[ -z $kmsg ]] || cbw_info <<<"$kmsg"
cbw_expect_eq "no kernel warnings" "" "$kmsg"

cbw_done
