#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Snapshot of a mounted, busy ext4 filesystem.
#
# An ext4 filesystem on the cbw device is mounted and a writer keeps
# creating, overwriting, appending to and deleting files. The writer is
# paused, the checksums of every file are recorded (that is exactly the
# content at the snapshot point, since nothing changes until the writer
# resumes), and the snapshot is taken with suspend/reload/resume (suspend
# freezes the filesystem, so the image is clean). Proves that with the
# writer running again, the access device mounted read-only (ro,noload)
# shows exactly the recorded files with the recorded checksums, read after
# read (caches dropped between rounds), that fsck -n finds the snapshot
# clean, and that the live filesystem is clean too once unmounted.

. "$(dirname -- "$0")/lib.sh"

C=128
origin=
cow=
cbw_setup 256
cbw_require_cmds mkfs.ext4 e2fsck sha256sum find sort dd mountpoint
cbw_require_kmod ext4
cbw_loop_create origin 64
cbw_loop_create cow 64
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
ctl=$CBW_WORK/ctl
mnt=$CBW_WORK/mnt
snapmnt=$CBW_WORK/snap
mkdir -p -- "$ctl"

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$guest"
cbw_mount "$guest" "$mnt"

writer_pid=
cbw_bg writer_pid cbw_fs_writer "$mnt" "$ctl" 128
# let the writer make some files (each operation is slow in an emulator)
shopt -s nullglob
for i in $(seq 600); do
	files=("$mnt"/a/* "$mnt"/b/*)
	((${#files[@]} < 16)) || break
	sleep 0.1
done
shopt -u nullglob

cbw_pause_writer "$ctl"
cbw_checksums "$mnt" >"$ctl/sums"
nfiles=$(wc -l <"$ctl/sums")
cbw_info "$nfiles files at the snapshot point"
cbw_snapshot_start "$name" "$cow"
cbw_resume_writer "$ctl"
cbw_expect_cmp "the writer created files before the snapshot" "$nfiles" -gt 10
cbw_expect_eq "snapshot active" active "$(cbw_stat "$name" state)"

cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
cbw_mount "$acc" "$snapmnt" -o ro,noload -t ext4

for round in 1 2; do
	sleep 2
	sync
	echo 3 >/proc/sys/vm/drop_caches
	cbw_checksums "$snapmnt" >"$ctl/snap.$round" ||
		cbw_info "round $round: reading the snapshot failed"
	if cmp -s -- "$ctl/sums" "$ctl/snap.$round"; then
		cbw_pass "round $round: the snapshot holds exactly the files of the snapshot point"
	else
		diff -- "$ctl/sums" "$ctl/snap.$round" | head -n 20 | cbw_info
		cbw_fail "round $round: the snapshot holds exactly the files of the snapshot point"
	fi
	# files come and go under the writer: errors are expected here
	cbw_checksums "$mnt" >"$ctl/live.$round" 2>/dev/null || true
	if cmp -s -- "$ctl/sums" "$ctl/live.$round"; then
		cbw_info "round $round: the live filesystem did not change (writer stuck?)"
	fi
done
cbw_check "the writer is still running" kill -0 "$writer_pid"
cbw_check_fails "the live filesystem has changed since the snapshot" \
	cmp -s -- "$ctl/sums" "$ctl/live.2"
cbw_expect_cmp "chunks were copied while the writer ran" "$(cbw_stat "$name" copied)" -gt 0
cbw_info "status: $(dmsetup status "$name")"

cbw_umount "$snapmnt"
cbw_check "fsck -n of the snapshot is clean" e2fsck -f -n "$acc"

touch -- "$ctl/stop"
cbw_kill "$writer_pid"
echo 3 >/proc/sys/vm/drop_caches
mount -o ro,noload -t ext4 -- "$acc" "$snapmnt"
cbw_checksums "$snapmnt" >"$ctl/snap.final" || cbw_info "reading the snapshot failed"
cbw_umount "$snapmnt"
cbw_check "after the writer stopped, the snapshot still holds the files of the snapshot point" \
	cmp -- "$ctl/sums" "$ctl/snap.final"
cbw_umount "$mnt"
cbw_check "fsck -n of the live filesystem is clean" e2fsck -f -n "$guest"

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_expect_eq "snapshot ended" none "$(cbw_stat "$name" state)"

cbw_done
