#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The chunk count limit: a snapshot has at most 2^31 - 1 chunks.
#
# Over dm-zero devices of 16 TiB + 64 MiB (4294983680 chunks of 8 sectors,
# more than 2^32) and of exactly 2^31 and 2^31 - 1 chunks.  Proves that a
# table with a COW device and more than 2^31 - 1 chunks is refused with
# "Too many chunks: increase the chunk size", also with snapshot_bitmap
# (a restricted snapshot), while a table without a COW device of that size
# is accepted; and that at the limit, 2^31 - 1 chunks, the whole device is
# protected: a write to the last chunk copies it, the access device reads
# it, and a snapshot restricted to a bitmap granule at the end of the
# device tracks exactly the chunks of that granule.

. "$(dirname -- "$0")/lib.sh"

MSG_TOO_MANY="Too many chunks: increase the chunk size"
INT_MAX=2147483647
HUGE=$(((1 << 35) + 131072))	# 16 TiB + 64 MiB, in sectors
LIMIT=$((INT_MAX * 8))		# 2^31 - 1 chunks of 8 sectors

cbw_setup 16
cbw_require_cmds dmesg
cbw_require_kmod dm-zero
cbw_have_target zero || cbw_skip_all "dm-zero is missing"
cbw_require_cbwctl

zorigin=$(cbw_name zorigin)
zcow=$(cbw_name zcow)
cbw_dm_create "$zorigin" "0 $HUGE zero"
cbw_dm_create "$zcow" "0 $HUGE zero"
zorigin=$(cbw_dm_path "$zorigin")
zcow=$(cbw_dm_path "$zcow")
name=$(cbw_name cbw)
acc=$(cbw_name acc)

# rejected DESCRIPTION TABLE: creating a device with TABLE fails with
# MSG_TOO_MANY in the kernel log.
rejected()
{
	local desc=$1 table=$2 dev out rc=0

	dev=$(cbw_name bad)
	cbw_kmsg_mark
	out=$(dmsetup create "$dev" --table "$table" 2>&1) || rc=$?
	if ((rc == 0)); then
		dmsetup remove --retry "$dev" >/dev/null 2>&1 || true
		cbw_info "table accepted: $table"
		cbw_fail "$desc"
	elif ! cbw_kmsg_since | grep -qF " cbw: $MSG_TOO_MANY ("; then
		cbw_info "dmsetup: $out"
		cbw_kmsg_since | cbw_info
		cbw_fail "$desc"
	else
		cbw_pass "$desc"
	fi
}

# reload_rejected DESCRIPTION DEV TABLE: loading TABLE into DEV fails with
# MSG_TOO_MANY; DEV keeps its table.
reload_rejected()
{
	local desc=$1 out rc=0

	cbw_kmsg_mark
	out=$(dmsetup load "$2" --table "$3" 2>&1) || rc=$?
	if ((rc == 0)); then
		dmsetup clear "$2" >/dev/null 2>&1 || true
		cbw_info "table accepted: $3"
		cbw_fail "$desc"
	elif ! cbw_kmsg_since | grep -qF " cbw: $MSG_TOO_MANY ("; then
		cbw_info "dmsetup: $out"
		cbw_kmsg_since | cbw_info
		cbw_fail "$desc"
	else
		cbw_pass "$desc"
	fi
}

# read_ok DEV SECTOR: one O_DIRECT 4 KiB read at SECTOR succeeds.
read_ok()
{
	dd if="$1" of=/dev/null bs=4096 count=1 skip=$(($2 * 512)) \
		iflag=direct,skip_bytes status=none
}

rejected "16 TiB + 64 MiB at 8-sector chunks (2^32 + 16384 chunks) is refused" \
	"0 $HUGE cbw $zorigin $zcow 8"
rejected "2^31 chunks are refused" "0 $(((1 << 31) * 8)) cbw $zorigin $zcow 8"
rejected "2^31 + 8192 chunks of 16 sectors are refused" "0 $HUGE cbw $zorigin $zcow 16"

# Without a COW device nothing is counted in chunks.
cbw_dm_create "$name" "0 $HUGE cbw $zorigin - 8"
cbw_pass "16 TiB + 64 MiB at 8-sector chunks without a COW device is accepted"
"$CBWCTL" bitmap add "$name" b --granularity 1M >/dev/null ||
	cbw_bail "cbwctl bitmap add failed"
reload_rejected "a snapshot_bitmap table of 2^32 + 16384 chunks is refused" "$name" \
	"0 $HUGE cbw $zorigin $zcow 8 2 snapshot_bitmap b"
cbw_expect_eq "the device keeps its table" "0 $HUGE cbw" \
	"$(dmsetup table "$name" | awk '{ print $1, $2, $3 }')"
cbw_dm_remove "$name"

# At the limit: every chunk is protected and readable.
cbw_dm_create "$name" "0 $LIMIT cbw $zorigin $zcow 8"
cbw_expect_eq "2^31 - 1 chunks: status counts them all" \
	"8 active $INT_MAX 0 $INT_MAX 0 $INT_MAX -" "$(cbw_status_core "$name")"
cbw_access_create "$acc" "$name"
dd if=/dev/zero of="$(cbw_dm_path "$name")" bs=4096 count=1 \
	seek=$(((LIMIT - 8) * 512)) oflag=direct,seek_bytes conv=notrunc status=none
cbw_expect_eq "a write to the last chunk copies it" 1 "$(cbw_stat "$name" copied)"
cbw_check "the access device reads the last chunk" read_ok "$(cbw_dm_path "$acc")" $((LIMIT - 8))
cbw_dm_remove "$acc"

# A snapshot restricted to the last 64 KiB granule: its 15 chunks (the
# granule is cut by the end of the device) are tracked, none other.
cbw_reload "$name" "0 $LIMIT cbw $zorigin - 8"
"$CBWCTL" bitmap add "$name" last --granularity 64K >/dev/null ||
	cbw_bail "cbwctl bitmap add failed"
dd if=/dev/zero of="$(cbw_dm_path "$name")" bs=4096 count=1 \
	seek=$(((LIMIT - 8) * 512)) oflag=direct,seek_bytes conv=notrunc status=none
cbw_reload "$name" "0 $LIMIT cbw $zorigin $zcow 8 2 snapshot_bitmap last"
cbw_expect_eq "restricted at the limit: 15 chunks to copy and accessible" \
	"8 active $INT_MAX 0 15 0 15 -" "$(cbw_status_core "$name")"
cbw_access_create "$acc" "$name"
cbw_check "the access device reads the last chunk" read_ok "$(cbw_dm_path "$acc")" $((LIMIT - 8))
cbw_check_fails "the access device does not read chunk 0" read_ok "$(cbw_dm_path "$acc")" 0
cbw_dm_remove "$acc"
cbw_dm_remove "$name"

cbw_done
