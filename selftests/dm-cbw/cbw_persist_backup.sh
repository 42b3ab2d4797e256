#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl backup and the generation of a persistent bitmap.
#
# Proves that:
#  1. an extents file records the generation the bitmap had when its
#     backup began (the job file too), and the generation does not change
#     across successful incremental backups;
#  2. an incremental with --base of that chain is accepted, and the chain
#     restores to the device's content;
#  3. once the bitmap is cleared (new generation), an incremental with
#     --base is refused with its message, before anything changes (no job,
#     the bitmap not frozen); with --force it goes on;
#  4. a raw base, a bitmap in memory only and --base with sync full are
#     refused.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
meta=
cbw_setup 300
cbw_require_cbwctl
cbw_require_cmds jq od cmp
cbw_loop_create origin 32
cbw_loop_create cow 32
cbw_loop_create meta 1
len=$(cbw_size "$origin")
name=$(cbw_name cbw)
errf=$CBW_WORK/stderr
W=$CBW_WORK
export CBW_RUN_DIR=$W/run

run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

# header_gen FILE: the generation in an extents file's header.
header_gen()
{
	od -An -t u8 -j 112 -N 8 -- "$1" | tr -d ' '
}

gen()
{
	"$CBWCTL" --json bitmap query "$name" "$1" | jq -r .generation
}

write()
{
	local off

	for off; do
		dd if=/dev/urandom of="$guest" bs=4K count=1 seek=$((off / 4)) \
			oflag=direct conv=notrunc status=none
	done
}

backup()
{
	run backup "$name" --cow "$cow" "$@"
}

"$CBWCTL" metadata format "$meta" --origin "$origin" >/dev/null ||
	cbw_bail "metadata format failed"
cbw_dm_create "$name" "0 $len cbw $origin - 128 2 metadata_dev $meta"
guest=$(cbw_dm_path "$name")
"$CBWCTL" bitmap add "$name" daily --persistent
"$CBWCTL" bitmap add "$name" mem
g=$(gen daily)
write 0 100 5000

# 1. the generation is recorded
backup --sync full --bitmap daily --bitmap-mode on-success --format cbw \
	--target "$W/full.cbw"
cbw_expect_eq "1 full backup in cbw format" 0 "$rc"
cbw_expect_eq "1 its header records the bitmap's generation" "$g" \
	"$(header_gen "$W/full.cbw")"
write 200 7000
backup --sync incremental --bitmap daily --base "$W/full.cbw" \
	--target "$W/inc1.cbw"
cbw_expect_eq "2 incremental with --base of the same generation" "0|" \
	"$rc|$err"
cbw_expect_eq "1 the generation is the same after two backups" "$g|$g" \
	"$(gen daily)|$(header_gen "$W/inc1.cbw")"
run restore --to "$W/restored.img" "$W/full.cbw" "$W/inc1.cbw"
cbw_expect_eq "2 the chain restores" 0 "$rc"
cbw_check "2 to the device's content" cmp -n $((len * 512)) "$W/restored.img" "$guest"

# 3. a cleared bitmap breaks the chain
write 300
"$CBWCTL" bitmap clear "$name" daily
g2=$(gen daily)
backup --sync incremental --bitmap daily --base "$W/inc1.cbw" \
	--target "$W/inc2.cbw"
cbw_expect_eq "3 incremental after a clear is refused" \
	"1|cbwctl: backup: Bitmap 'daily' has generation $g2, but the base backup '$W/inc1.cbw' was made at generation $g: the bitmap lost writes since (make a full backup, or give --force)" \
	"$rc|$err"
cbw_expect_eq "3 nothing changed: no job, not frozen, no target" "false|no|no" \
	"$("$CBWCTL" --json bitmap query "$name" daily | jq -r .frozen)|$([[ -e $CBW_RUN_DIR/backup-$(cbw_dm_devno "$name" | tr : -).job ]] && echo yes || echo no)|$([[ -e $W/inc2.cbw ]] && echo yes || echo no)"
backup --sync incremental --bitmap daily --base "$W/inc1.cbw" --force \
	--target "$W/inc2.cbw"
cbw_expect_eq "3 with --force it goes on, with a warning" \
	"0|cbwctl: backup: bitmap 'daily' has generation $g2, the base backup '$W/inc1.cbw' $g: going on (--force)" \
	"$rc|$(head -n1 <<<"$err")"
cbw_expect_eq "3 the new increment records the new generation" "$g2" \
	"$(header_gen "$W/inc2.cbw")"

# 4. what has no generation
backup --sync full --bitmap daily --bitmap-mode on-success \
	--target "$W/full.raw"
backup --sync incremental --bitmap daily --base "$W/full.raw" \
	--target "$W/inc3.cbw"
cbw_expect_eq "4 a raw base is refused" \
	"1|cbwctl: backup: The base backup '$W/full.raw' is not an extents file (--format cbw): it records no bitmap generation" \
	"$rc|$err"
backup --sync incremental --bitmap mem --base "$W/inc2.cbw" \
	--target "$W/inc3.cbw"
cbw_expect_eq "4 a bitmap in memory only is refused" \
	"1|cbwctl: backup: Bitmap 'mem' is not persistent: it has no generation to check against the base backup (give --force)" \
	"$rc|$err"
backup --sync full --base "$W/inc2.cbw" --target "$W/full2.raw"
cbw_expect_eq "4 --base with sync full is a usage error" 2 "$rc"

cbw_dm_remove "$name"
cbw_done
