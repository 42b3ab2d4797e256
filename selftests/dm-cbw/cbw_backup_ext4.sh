#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl backup of a mounted, busy ext4: a full backup, then an incremental
# one, then a restore of the chain to fresh devices.
#
# ext4 lives on a cbw device while a background writer creates, rewrites,
# appends to, renames and deletes files.  As in QEMU's incremental backup
# flow, bitmap b0 is added before the full backup, which freezes it (sync
# full, bitmap mode on-success): on success b0 is left with exactly the
# writes made since the full backup's snapshot point, and the incremental
# backup (sync incremental, b0) copies those.  The checksums of every file
# at the full backup's snapshot point are taken on its access device,
# mounted read-only (ro,noload) during the job; those of the incremental
# one on the live filesystem with the writer paused around the snapshot
# (its access device reads only the chunks to copy).  Proves that both jobs succeed
# with the filesystem busy, that the incremental backup copies fewer bytes
# than the full one, and that the full image restored to a fresh device,
# and the full plus incremental chain restored to another, are clean for
# fsck -n and hold exactly the files and checksums of their snapshot point.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
fresh1=
fresh2=
cbw_setup 600
cbw_require_cmds mkfs.ext4 e2fsck sha256sum find sort dd stat
cbw_require_kmod ext4
cbw_require_cbwctl
"$CBWCTL" backup --help >/dev/null 2>&1 ||
	cbw_bail "this cbwctl has no backup command"
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create origin 96
cbw_loop_create cow 96
cbw_loop_create fresh1 96
cbw_loop_create fresh2 96
name=$(cbw_name cbw)
acc_name=$name-access
acc=/dev/mapper/$acc_name
drop_access() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
cbw_defer drop_access "$acc_name"
W=$CBW_WORK
ctl=$W/ctl
mnt=$W/mnt
snapmnt=$W/snap
mkdir -p -- "$ctl" "$W/out"

cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$guest"
cbw_mount "$guest" "$mnt"

run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	if ((rc)); then
		cbw_info "cbwctl $* exited with $rc"
		cbw_info <"$W/stderr"
	fi
}

# snapshot_sums OUT: checksums of the point-in-time filesystem, read
# through the access device of the running job.
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

writer_pid=
cbw_bg writer_pid cbw_fs_writer "$mnt" "$ctl" 256
cbw_defer touch -- "$ctl/stop"
shopt -s nullglob
for _ in $(seq 600); do
	files=("$mnt"/a/* "$mnt"/b/*)
	((${#files[@]} < 16)) || break
	sleep 0.1
done
shopt -u nullglob

cbw_check "bitmap add b0" "$CBWCTL" bitmap add "$guest" b0

# Full backup; its snapshot freezes b0.
t0=$SECONDS
run backup begin "$guest" --sync full --bitmap b0 --bitmap-mode on-success \
	--cow "$cow" --chunk 64K
cbw_expect_eq "full: backup begin with the filesystem busy" 0 "$rc"
((rc == 0)) || cbw_bail "no job"
snapshot_sums "$W/sums1"
cbw_expect_cmp "full: files at the snapshot point" "$(wc -l <"$W/sums1")" -gt 10
run backup run "$guest" --target "$W/out/full.img" --format raw
cbw_expect_eq "full: backup run" 0 "$rc"
run backup finish "$guest"
cbw_expect_eq "full: backup finish" 0 "$rc"
cbw_info "full backup: $((SECONDS - t0))s"
cbw_info <"$W/stdout"
row=$("$CBWCTL" --bytes bitmap query "$guest" b0 | tail -n 1)
read -r _ _ count _ busy _ <<<"$row"
cbw_expect_eq "full: b0 is free again" no "$busy"
cbw_expect_cmp "full: b0 holds the writes since its snapshot" "$count" -gt 0

# More writes, then the incremental backup.  Its access device only reads
# the chunks dirty in b0 (the snapshot is restricted to them, like QEMU's
# snapshot-access with a bitmap): the checksums of its snapshot point are
# taken on the live filesystem, with the writer paused from just before
# the snapshot to just after it.
sleep 3
t0=$SECONDS
cbw_pause_writer "$ctl"
sync
cbw_checksums "$mnt" >"$W/sums2"
run backup begin "$guest" --sync incremental --bitmap b0 --cow "$cow" --chunk 64K
cbw_resume_writer "$ctl"
cbw_expect_eq "incremental: backup begin with the filesystem busy" 0 "$rc"
((rc == 0)) || cbw_bail "no job"
mkdir -p -- "$snapmnt"
if mount -o ro,noload -t ext4 -- "$acc" "$snapmnt" 2>/dev/null &&
	cbw_checksums "$snapmnt" >/dev/null 2>&1; then
	cbw_fail "incremental: the access device reads only the dirty chunks"
else
	cbw_pass "incremental: the access device reads only the dirty chunks"
fi
! mountpoint -q -- "$snapmnt" || cbw_umount "$snapmnt"
run backup run "$guest" --target "$W/out/inc.img"
cbw_expect_eq "incremental: backup run" 0 "$rc"
run backup finish "$guest"
cbw_expect_eq "incremental: backup finish" 0 "$rc"
cbw_info "incremental backup: $((SECONDS - t0))s"
cbw_info <"$W/stdout"
if cmp -s -- "$W/sums1" "$W/sums2"; then
	cbw_fail "the writer changed files between the two snapshot points"
else
	cbw_pass "the writer changed files between the two snapshot points"
fi
full_size=$(stat -c %s -- "$W/out/full.img")
inc_size=$(stat -c %s -- "$W/out/inc.img")
cbw_info "full image $full_size bytes, incremental file $inc_size bytes"
cbw_expect_cmp "the incremental file is smaller than the full image" \
	"$inc_size" -lt "$full_size"

touch -- "$ctl/stop"
cbw_kill "$writer_pid"

run restore --to "$fresh1" "$W/out/full.img"
cbw_expect_eq "restore the full image to a fresh device" 0 "$rc"
restored_sums "full" "$fresh1" "$W/sums1"
run restore --to "$fresh2" "$W/out/full.img" "$W/out/inc.img"
cbw_expect_eq "restore full + incremental to another fresh device" 0 "$rc"
restored_sums "full + incremental" "$fresh2" "$W/sums2"

cbw_umount "$mnt"
cbw_check "fsck -n of the live filesystem is clean" e2fsck -f -n "$guest"

cbw_done
