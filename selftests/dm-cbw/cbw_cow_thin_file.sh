#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# COW devices that cbwctl makes for one snapshot: --cow-thin VG/POOL (a thin
# LV in a 16 MiB pool) and --cow-file PATH (a sparse file on a 20 MiB ext4
# through a loop device), for a 64 MiB device.  For each:
#  1. a full backup succeeds while a writer changes 4 MiB (which fits): the
#     image is the snapshot point, "snapshot info" shows what was made, and
#     backup run --discard-source returns the copied chunks' space;
#  2. a full backup whose writer changes 40 MiB (which does not fit) breaks
#     cleanly: the writes succeed (break_snapshot, the default of a backup
#     with a made COW), the snapshot is broken with -ENOSPC, run fails
#     saying so, finish exits with 1, and the origin holds every write;
#  3. backup cancel, snapshot stop, and a start that fails (its access
#     device name is taken) remove what was made;
# after each: no thin LV, COW file, loop device or record is left.  A
# record left by a cbwctl that died is cleaned up by the next start.  And
# --cow-file refuses an existing PATH (and leaves it) and a PATH on the
# device itself; --cow, --cow-file and --cow-thin exclude each other.

. "$(dirname -- "$0")/lib.sh"

MIB=1048576
cbw_setup 320
cbw_require_cmds lvm thin_check timeout cmp mkfs.ext4 stat python3
cbw_require_kmod dm-thin-pool
cbw_require_kmod ext4
cbw_require_cbwctl
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"

pv=
origin=
smallfs=
cbw_loop_create pv 64
cbw_loop_create origin 64
cbw_loop_create smallfs 20
name=$(cbw_name vm0)
vg=${CBW_NAME_PREFIX}cvg
cbw_dm_create "$name" "$(cbw_cbw_table "$origin" - 128)" -u "CBW-$name"
guest=$(cbw_dm_path "$name")
devno=$(cbw_dm_devno "$name")
record=$CBW_RUN_DIR/cow-${devno/:/-}
thin_lv=$vg/cbw-cow-$name

base=$CBW_WORK/base.bin
head -c $((64 * MIB)) /dev/urandom >"$base"
dd if="$base" of="$guest" bs=1M oflag=direct status=none

small=$CBW_WORK/small
mkfs.ext4 -q -F "$smallfs"
cbw_mount "$smallfs" "$small"
cow_file=$small/cow.img

export LVM_SYSTEM_DIR=$CBW_WORK/lvm
export LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p -- "$LVM_SYSTEM_DIR"
cat >"$LVM_SYSTEM_DIR/lvm.conf" <<EOF
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	global_filter = [ "a|^$pv\$|", "r|.*|" ]
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
	thin_pool_autoextend_threshold = 100
}
global { event_activation = 0 }
backup { backup = 0 archive = 0 }
EOF

vg_off()
{
	lvm vgchange -an "$vg" >/dev/null 2>&1 || true
	lvm vgremove -f "$vg" >/dev/null 2>&1 || true
}
lvm vgcreate -q -s 1M "$vg" "$pv" >/dev/null 2>&1 || cbw_bail "cannot create VG $vg"
cbw_defer vg_off
lvm lvcreate -q --type thin-pool -L 16M -c 64K --poolmetadatasize 2M \
	--poolmetadataspare n -Zn -n pool "$vg" >/dev/null 2>&1 ||
	cbw_bail "cannot create the thin pool"
lvm lvchange -q --errorwhenfull y "$vg/pool" >/dev/null 2>&1 ||
	cbw_bail "cannot set --errorwhenfull y"

# The access device, if a failed check left it.
access_off()
{
	! cbw_dm_exists "$name-access" || dmsetup remove --retry "$name-access"
}
cbw_defer access_off

# Whatever a failed check left behind.
leftovers_off()
{
	! cbw_dm_exists "$name" || "$CBWCTL" snapshot stop "$name" >/dev/null 2>&1 || true
	lvm lvremove -q -f "$thin_lv" >/dev/null 2>&1 || true
	rm -f -- "$cow_file" "$record"
}
cbw_defer leftovers_off

# nothing_left KIND WHEN: no LV, file, loop device or record is left.
nothing_left()
{
	local left=

	[[ ! -e $record ]] || left+=" record"
	if [[ $1 == thin ]]; then
		! lvm lvs "$thin_lv" >/dev/null 2>&1 || left+=" LV"
	else
		[[ ! -e $cow_file ]] || left+=" file"
		[[ -z $(losetup -j "$cow_file") ]] || left+=" loop:$(losetup -j "$cow_file")"
		[[ -z $(losetup -a | grep -F "$cow_file") ]] || left+=" loop"
	fi
	cbw_expect_eq "$1: $2: nothing left" "" "$left"
}

# allocated KIND: bytes the made COW takes now.
allocated()
{
	local pct

	if [[ $1 == file ]]; then
		echo $(($(stat -c %b "$cow_file") * 512))
	else
		pct=$(lvm lvs --noheadings -o data_percent "$thin_lv" | tr -d ' ')
		awk -v p="$pct" 'BEGIN { printf "%d\n", p * 64 * 1048576 / 100 }'
	fi
}

# origin_is N FILE [SKIP]: the origin's first N MiB (after SKIP MiB) are FILE's.
origin_is()
{
	blockdev --flushbufs "$origin"
	cmp -n $(($1 * MIB)) -i $((${3:-0} * MIB)) -- "$origin" "$2"
}

cow_opt()
{
	if [[ $1 == thin ]]; then
		echo "--cow-thin $vg/pool"
	else
		echo "--cow-file $cow_file"
	fi
}

# --- 1. the changes fit ------------------------------------------------------

changes_fit()
{
	local k=$1 img=$CBW_WORK/full-$1.img new=$CBW_WORK/new4.bin info used loopdev

	dd if="$base" of="$guest" bs=1M oflag=direct status=none
	head -c $((4 * MIB)) /dev/urandom >"$new"
	# shellcheck disable=SC2046
	cbw_check "$k: backup begin, sync full" \
		"$CBWCTL" backup begin "$name" --sync full $(cow_opt "$k")
	info=$("$CBWCTL" --json snapshot info "$name" | python3 -c \
		'import json, sys; print(json.dumps(json.load(sys.stdin)["cow_made"]))')
	cbw_info "$k: cow_made: $info"
	cbw_check "$k: snapshot info shows the made COW" \
		grep -q "^{\"kind\": \"$k\"" <<<"$info"
	cbw_check "$k: snapshot info text shows it" \
		grep -q "COW made by cbwctl" <<<"$("$CBWCTL" snapshot info "$name")"
	cbw_check "$k: the record exists" test -s "$record"
	if [[ $k == thin ]]; then
		cbw_check "thin: the LV exists" lvm lvs "$thin_lv"
	else
		cbw_expect_eq "file: it has the device's size" $((64 * MIB)) \
			"$(stat -c %s "$cow_file")"
		cbw_check "file: a loop device is bound to it" \
			test -n "$(losetup -j "$cow_file")"
		loopdev=$(losetup -j "$cow_file" | cut -d: -f1)
		cbw_info "file: $loopdev"
		cbw_expect_eq "file: the loop device does direct I/O" 1 \
			"$(cat "/sys/block/${loopdev#/dev/}/loop/dio" 2>&1)"
		cbw_expect_eq "file: ... and clears itself when closed" 1 \
			"$(cat "/sys/block/${loopdev#/dev/}/loop/autoclear" 2>&1)"
	fi
	cbw_check "$k: the writer's 4 MiB go through" \
		timeout 300 dd if="$new" of="$guest" bs=1M oflag=direct status=none
	used=$(allocated "$k")
	cbw_expect_cmp "$k: the COW holds the 4 MiB copied" "$used" -ge $((4 * MIB))
	cbw_check "$k: backup run --discard-source" \
		"$CBWCTL" backup run "$name" --target "$img" --discard-source
	used=$(allocated "$k")
	cbw_info "$k: COW space after the discards: $used"
	cbw_expect_cmp "$k: the discards returned the space" "$used" -lt $((1 * MIB))
	cbw_check "$k: backup finish" "$CBWCTL" backup finish "$name"
	cbw_check "$k: the image is the snapshot point" cmp -- "$img" "$base"
	cbw_check "$k: the origin holds the writer's data" origin_is 4 "$new"
	nothing_left "$k" "finish"
	rm -f -- "$img"
}

# --- 2. the changes do not fit -----------------------------------------------

changes_overflow()
{
	local k=$1 img=$CBW_WORK/full-$1.img new=$CBW_WORK/new40.bin out rc=0

	dd if="$base" of="$guest" bs=1M oflag=direct status=none
	head -c $((40 * MIB)) /dev/urandom >"$new"
	# shellcheck disable=SC2046
	cbw_check "$k: backup begin, sync full" \
		"$CBWCTL" backup begin "$name" --sync full $(cow_opt "$k")
	cbw_check "$k: the writer's 40 MiB go through" \
		timeout 300 dd if="$new" of="$guest" bs=1M oflag=direct status=none
	cbw_expect_eq "$k: the snapshot broke with -ENOSPC" "broken -28" \
		"$(cbw_stat "$name" state) $(cbw_stat "$name" error)"
	out=$("$CBWCTL" backup run "$name" --target "$img" 2>&1) || rc=$?
	cbw_info "$k: run: $out"
	cbw_expect_eq "$k: backup run fails with status 1" 1 "$rc"
	cbw_check "$k: ... saying that the snapshot broke, and why" \
		grep -q "snapshot of '$name' broke: .*No space left on device" <<<"$out"
	rc=0
	out=$("$CBWCTL" backup finish "$name" 2>&1) || rc=$?
	cbw_info "$k: finish: $out"
	cbw_expect_eq "$k: backup finish says failed, status 1" "1 failed" \
		"$rc $(grep -o failed <<<"$out" | head -n 1)"
	cbw_check "$k: the origin holds every write" origin_is 40 "$new"
	cbw_check "$k: ... and the old data after them" \
		origin_is 24 "$base" 40
	nothing_left "$k" "failed backup"
	rm -f -- "$img"
}

# --- 3. cancel, snapshot start/stop, a start that fails ----------------------

other_ends()
{
	local k=$1

	# shellcheck disable=SC2046
	cbw_check "$k: backup begin" \
		"$CBWCTL" backup begin "$name" --sync full $(cow_opt "$k")
	cbw_check "$k: backup cancel" "$CBWCTL" backup cancel "$name"
	nothing_left "$k" "cancel"
	# shellcheck disable=SC2046
	cbw_check "$k: snapshot start" \
		"$CBWCTL" snapshot start "$name" $(cow_opt "$k")
	cbw_expect_eq "$k: the snapshot is active" active "$(cbw_stat "$name" state)"
	cbw_check "$k: snapshot stop" "$CBWCTL" snapshot stop "$name"
	nothing_left "$k" "snapshot stop"
	# shellcheck disable=SC2046
	cbw_check_fails "$k: a start whose access name is taken fails" \
		"$CBWCTL" snapshot start "$name" $(cow_opt "$k") --access "$name"
	cbw_expect_eq "$k: ... and leaves no snapshot" none "$(cbw_stat "$name" state)"
	nothing_left "$k" "failed start"
}

for kind in thin file; do
	changes_fit "$kind"
	changes_overflow "$kind"
	other_ends "$kind"
done

# --- a record that a killed cbwctl left --------------------------------------

stale=$small/stale.img
echo old >"$stale"
printf '%s\n' "device=$name" kind=file "path=$stale" >"$record"
cbw_check "snapshot start after a run that died" \
	"$CBWCTL" snapshot start "$name" --cow-file "$cow_file"
cbw_check "... removed what that run had made" test ! -e "$stale"
cbw_check "snapshot stop" "$CBWCTL" snapshot stop "$name"
nothing_left file "stop after a stale record"

# --- refusals ----------------------------------------------------------------

echo keep >"$cow_file"
cbw_check_fails "--cow-file refuses an existing file" \
	"$CBWCTL" snapshot start "$name" --cow-file "$cow_file"
cbw_expect_eq "... and leaves it as it was" keep "$(cat -- "$cow_file")"
cbw_expect_eq "... and starts no snapshot" none "$(cbw_stat "$name" state)"
rm -f -- "$cow_file"

out=$("$CBWCTL" snapshot start "$name" --cow /dev/null --cow-file "$cow_file" 2>&1) && rc=0 || rc=$?
cbw_expect_eq "--cow and --cow-file together: usage error" 2 "$rc"
out=$("$CBWCTL" snapshot start "$name" --cow-thin "$vg" 2>&1) && rc=0 || rc=$?
cbw_info "$out"
cbw_expect_eq "--cow-thin without a pool: refused" 1 "$rc"
cbw_check "... saying it takes VG/POOL" grep -q "VG/POOL" <<<"$out"

# A file system on the cbw device itself.
fsorig=
cbw_loop_create fsorig 32
fsname=$(cbw_name fs0)
cbw_dm_create "$fsname" "$(cbw_cbw_table "$fsorig" - 128)" -u "CBW-$fsname"
mkfs.ext4 -q -F "$(cbw_dm_path "$fsname")"
cbw_mount "$(cbw_dm_path "$fsname")" "$CBW_WORK/fs0"
out=$("$CBWCTL" snapshot start "$fsname" --cow-file "$CBW_WORK/fs0/cow.img" 2>&1) && rc=0 || rc=$?
cbw_info "$out"
cbw_expect_eq "--cow-file on the device itself: refused" 1 "$rc"
cbw_check "... saying why" grep -q "itself" <<<"$out"
cbw_check "... creating no file" test ! -e "$CBW_WORK/fs0/cow.img"
cbw_expect_eq "... and starting no snapshot" none "$(cbw_stat "$fsname" state)"

cbw_done
