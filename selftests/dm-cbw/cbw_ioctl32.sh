#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The control device answers 32-bit callers (compat_ioctl) as 64-bit ones.
#
# Runs cbw-ioctl32, the 32-bit build of cbw-ioctl, through the checks of
# cbw_ioctl.sh that take no concurrency: every ioctl checks its argument
# and refusals change nothing, against a tracking-only cbw device and
# devices that are not cbw devices (ENODEV); and the freeze_bitmap steps
# (prepare, busy while loaded, frozen at resume and thawed with MERGE,
# frozen again and thawed without flags).  Skipped where cbw-ioctl32 is
# not built (the compiler cannot link static -m32 programs: Debian's
# gcc-multilib) or the kernel cannot run 32-bit programs.

. "$(dirname -- "$0")/lib.sh"

CBW_IOCTL32=${CBW_IOCTL32:-$CBW_SELFTEST_DIR/cbw-ioctl32}
C=128
origin=
fz_origin=
fz_cow=

cbw_setup 96
[[ -c /dev/dm-cbw-control ]] ||
	cbw_skip_all "/dev/dm-cbw-control does not exist (dm-cbw without the control device)"
[[ -x $CBW_IOCTL32 ]] ||
	cbw_skip_all "cbw-ioctl32 is not built (the compiler cannot link static -m32 programs)"
cbw_kmsg_mark

cbw_loop_create origin 64
name=$(cbw_name cbw)
lin_name=$(cbw_name lin)
empty_name=$(cbw_name empty)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")
cbw_create "$name" "$origin" "$C"
cbw_dm_create "$lin_name" "0 $len linear $origin 0"
cbw_defer dmsetup remove --retry "$empty_name"
dmsetup create "$empty_name" --notable
cbw_access_create "$acc_name" "$name"

cbw_devno=$(cbw_dm_devno "$name")
loop_devno=$(printf '%d:%d' "0x$(stat -c '%t' "$origin")" "0x$(stat -c '%T' "$origin")")
others=("$(cbw_dm_devno "$lin_name")" "$(cbw_dm_devno "$empty_name")"
	"$(cbw_dm_devno "$acc_name")" "$loop_devno")

rc=0
"$CBW_IOCTL32" -m version "$cbw_devno" >/dev/null 2>&1 || rc=$?
((rc != 126)) || cbw_skip_all "this kernel cannot run 32-bit programs"

# run_prog DESCRIPTION CMD [ARGS...]: one check from a cbw-ioctl32 run,
# whose own TAP output is shown as diagnostics.
run_prog()
{
	local desc=$1 rc=0

	shift
	"$@" 2>&1 | sed -u 's/^/# /' || rc=$?
	if ((rc != 0)); then
		cbw_info "$1 exited with status $rc"
		cbw_fail "$desc"
		return 0
	fi
	cbw_pass "$desc"
}

run_prog "arguments checked, refusals change nothing" \
	"$CBW_IOCTL32" -m basic "$cbw_devno" "${others[@]}"

# freeze_bitmap, on a cbw device of its own with a COW device: each reload
# with this table starts a snapshot and freezes the bitmap.
cbw_loop_create fz_origin 16
cbw_loop_create fz_cow 32
fz_name=$(cbw_name fz)
fz_bm=fz
cbw_create "$fz_name" "$fz_origin" "$C"
fz_devno=$(cbw_dm_devno "$fz_name")
fz_table="0 $(cbw_size "$fz_origin") cbw $fz_origin $fz_cow $C 2 freeze_bitmap $fz_bm"

run_prog "freeze: the bitmap to freeze is prepared" \
	"$CBW_IOCTL32" -m prep "$fz_devno" "$fz_bm"
cbw_check "freeze: a table naming the bitmap as freeze_bitmap loads" \
	dmsetup load "$fz_name" --table "$fz_table"
run_prog "freeze: loaded, not resumed: the bitmap is busy, not frozen" \
	"$CBW_IOCTL32" -m busy "$fz_devno" "$fz_bm"
cbw_check "freeze: the device suspends" dmsetup suspend "$fz_name"
cbw_check "freeze: the device resumes with the freeze_bitmap table" \
	dmsetup resume "$fz_name"
run_prog "freeze: frozen bitmap checked, THAW with MERGE" \
	"$CBW_IOCTL32" -m frozen "$fz_devno" "$fz_bm"
cbw_check "freeze: the bitmap is frozen again by a reload" \
	cbw_reload "$fz_name" "$fz_table"
run_prog "freeze: frozen again, checked, THAW without flags" \
	"$CBW_IOCTL32" -m refrozen "$fz_devno" "$fz_bm"

kmsg=$(cbw_kmsg_since | grep -E 'BUG:|WARNING:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|lockdep' || true)
[[ -z $kmsg ]] || cbw_info <<<"$kmsg"
cbw_expect_eq "no kernel warnings" "" "$kmsg"

cbw_done
