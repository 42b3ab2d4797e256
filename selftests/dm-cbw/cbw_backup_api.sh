#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl backup: argument validation, QEMU's "API failure tests" (the end of
# iotest 257's expected output) message by message.
#
# Every combination of sync (incremental, bitmap, full, top, none), bitmap
# (none, a missing one "bitmap404", an existing one "bitmap0") and bitmap
# mode (none, on-success, always, never) is given to "cbwctl backup begin"
# and to the one-command "cbwctl backup".  The 48 combinations that QEMU
# refuses must be refused with QEMU's exact words (transcribed below from
# 257.out), exit status 2; the combinations QEMU accepts with sync "top"
# are refused because a block device has no backing chain; the others are
# accepted (begin, then cancel).  A refused call must change nothing: no
# job file, no access device, the cbw table and bitmap0 (count, recording,
# not busy, not frozen) as before.  Also: a bitmap busy with another
# operation is refused (exit 1), and a second begin on a device that has a
# job is refused (exit 1) and leaves the first job alone.

. "$(dirname -- "$0")/lib.sh"

BMQUERY=$CBW_SELFTEST_DIR/cbw-bmquery.py
origin=
cow=
cbw_setup 200
cbw_require_cmds python3 dd
cbw_require_cbwctl
"$CBWCTL" backup --help >/dev/null 2>&1 ||
	cbw_bail "this cbwctl has no backup command"
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create origin 16
cbw_loop_create cow 16
name=$(cbw_name cbw)
len=$(cbw_size "$origin")
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
# cbwctl names the access device <dm name>-access; removed before the cbw
# device if a call leaves it behind.
acc_name=$name-access
drop_access() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
cbw_defer drop_access "$acc_name"
IFS=: read -r maj min <<<"$(cbw_dm_devno "$name")"
job_file=$CBW_RUN_DIR/backup-$maj-$min.job
errf=$CBW_WORK/stderr
target=$CBW_WORK/target.img

# run ARGS...: runs cbwctl; sets rc and errl (stderr lines).
run()
{
	rc=0
	"$CBWCTL" "$@" >/dev/null 2>"$errf" || rc=$?
	mapfile -t errl <"$errf"
}

# has_msg MESSAGE: some stderr line is "cbwctl: ...MESSAGE".
has_msg()
{
	local line

	for line in "${errl[@]}"; do
		[[ $line == "cbwctl: "* && $line == *"$1" ]] && return 0
	done
	return 1
}

# What a refused call must leave as it was: no job file, no access device
# (checked after every call), the table and bitmap0 (checked after each
# group of calls; a bitmap can only be frozen, then thawed or marked,
# through a table that names it).  Process start-up is slow in the test VM.
state()
{
	printf 'job=%s access=%s\n' \
		"$([[ -e $job_file ]] && echo yes || echo no)" \
		"$([[ -e /dev/mapper/$acc_name ]] && echo yes || echo no)"
}

table()
{
	dmsetup table "$name"
}

# bitmap0 as cbwctl lists it.
bitmap0()
{
	"$CBWCTL" --bytes bitmap query "$name" bitmap0 2>&1 | tail -n 1
}

# bitmap0 as the kernel reports it: "count successor_count status".
kquery()
{
	python3 "$BMQUERY" "$guest" bitmap0
}

write()
{
	dd if=/dev/urandom of="$guest" bs="$2" count=1 seek="$1" \
		oflag=direct,seek_bytes conv=notrunc status=none
}

# QEMU's answers, from the "API failure tests" of 257.out: "sync bitmap
# mode" ("-" for not given) -> the error description.
declare -A qemu_error=(
	["incremental - on-success"]="must provide a valid bitmap name for 'incremental' sync mode"
	["incremental - always"]="must provide a valid bitmap name for 'incremental' sync mode"
	["incremental - never"]="must provide a valid bitmap name for 'incremental' sync mode"
	["incremental - -"]="must provide a valid bitmap name for 'incremental' sync mode"
	["incremental bitmap404 on-success"]="Bitmap 'bitmap404' could not be found"
	["incremental bitmap404 always"]="Bitmap sync mode must be 'on-success' when using sync mode 'incremental'"
	["incremental bitmap404 never"]="Bitmap sync mode must be 'on-success' when using sync mode 'incremental'"
	["incremental bitmap404 -"]="Bitmap 'bitmap404' could not be found"
	["incremental bitmap0 always"]="Bitmap sync mode must be 'on-success' when using sync mode 'incremental'"
	["incremental bitmap0 never"]="Bitmap sync mode must be 'on-success' when using sync mode 'incremental'"
	["bitmap - on-success"]="must provide a valid bitmap name for 'bitmap' sync mode"
	["bitmap - always"]="must provide a valid bitmap name for 'bitmap' sync mode"
	["bitmap - never"]="must provide a valid bitmap name for 'bitmap' sync mode"
	["bitmap - -"]="must provide a valid bitmap name for 'bitmap' sync mode"
	["bitmap bitmap404 on-success"]="Bitmap 'bitmap404' could not be found"
	["bitmap bitmap404 always"]="Bitmap 'bitmap404' could not be found"
	["bitmap bitmap404 never"]="Bitmap 'bitmap404' could not be found"
	["bitmap bitmap404 -"]="Bitmap 'bitmap404' could not be found"
	["bitmap bitmap0 -"]="Bitmap sync mode must be given when providing a bitmap"
	["full - on-success"]="Cannot specify bitmap sync mode without a bitmap"
	["full - always"]="Cannot specify bitmap sync mode without a bitmap"
	["full - never"]="Cannot specify bitmap sync mode without a bitmap"
	["full bitmap404 on-success"]="Bitmap 'bitmap404' could not be found"
	["full bitmap404 always"]="Bitmap 'bitmap404' could not be found"
	["full bitmap404 never"]="Bitmap 'bitmap404' could not be found"
	["full bitmap404 -"]="Bitmap 'bitmap404' could not be found"
	["full bitmap0 never"]="Bitmap sync mode 'never' has no meaningful effect when combined with sync mode 'full'"
	["full bitmap0 -"]="Bitmap sync mode must be given when providing a bitmap"
	["top - on-success"]="Cannot specify bitmap sync mode without a bitmap"
	["top - always"]="Cannot specify bitmap sync mode without a bitmap"
	["top - never"]="Cannot specify bitmap sync mode without a bitmap"
	["top bitmap404 on-success"]="Bitmap 'bitmap404' could not be found"
	["top bitmap404 always"]="Bitmap 'bitmap404' could not be found"
	["top bitmap404 never"]="Bitmap 'bitmap404' could not be found"
	["top bitmap404 -"]="Bitmap 'bitmap404' could not be found"
	["top bitmap0 never"]="Bitmap sync mode 'never' has no meaningful effect when combined with sync mode 'top'"
	["top bitmap0 -"]="Bitmap sync mode must be given when providing a bitmap"
	["none - on-success"]="Cannot specify bitmap sync mode without a bitmap"
	["none - always"]="Cannot specify bitmap sync mode without a bitmap"
	["none - never"]="Cannot specify bitmap sync mode without a bitmap"
	["none bitmap404 on-success"]="Bitmap 'bitmap404' could not be found"
	["none bitmap404 always"]="Bitmap 'bitmap404' could not be found"
	["none bitmap404 never"]="Bitmap 'bitmap404' could not be found"
	["none bitmap404 -"]="Bitmap 'bitmap404' could not be found"
	["none bitmap0 on-success"]="sync mode 'none' does not produce meaningful bitmap outputs"
	["none bitmap0 always"]="sync mode 'none' does not produce meaningful bitmap outputs"
	["none bitmap0 never"]="sync mode 'none' does not produce meaningful bitmap outputs"
	["none bitmap0 -"]="Bitmap sync mode must be given when providing a bitmap"
)
TOP_MSG="sync mode 'top' needs a backing chain, which a block device does not have: use 'full'"

cbw_check "bitmap add bitmap0 --granularity 64K" \
	"$CBWCTL" bitmap add "$name" bitmap0 --granularity 64K
# bitmap0: 3 granules (one write inside a granule, one across two).
reset_bitmap0()
{
	"$CBWCTL" bitmap clear "$name" bitmap0 >/dev/null
	write 0 65536
	write $((1024 * 1024 - 32768)) 65536
}
reset_bitmap0
before=$(state)
bm_before=$(bitmap0)
table_before=$(table)
kbefore=$(kquery)
cbw_expect_eq "bitmap0: 3 dirty granules, recording, not busy, not frozen" \
	"196608 0 1" "$kbefore"

nr_refused=0
for sync in incremental bitmap full top none; do
	for bitmap in - bitmap404 bitmap0; do
		for mode in - on-success always never; do
			args=(--sync "$sync")
			[[ $bitmap == - ]] || args+=(--bitmap "$bitmap")
			[[ $mode == - ]] || args+=(--bitmap-mode "$mode")
			key="$sync $bitmap $mode"
			desc="sync $sync, bitmap $bitmap, mode $mode"
			want=${qemu_error[$key]:-}
			if [[ -z $want && $sync == top ]]; then
				want=$TOP_MSG
			fi
			if [[ -z $want ]]; then
				# Valid for QEMU and for us: begin, then cancel.
				run backup begin "$guest" "${args[@]}" --cow "$cow" --chunk 64K
				cbw_expect_eq "$desc: backup begin accepted" 0 "$rc"
				((rc == 0)) || cbw_info "${errl[@]}"
				cbw_expect_eq "$desc: job file written" yes \
					"$([[ -e $job_file ]] && echo yes || echo no)"
				run backup cancel "$guest"
				cbw_expect_eq "$desc: backup cancel" 0 "$rc"
				((rc == 0)) || cbw_info "${errl[@]}"
				cbw_expect_eq "$desc: cancel ended the job" \
					"$before $table_before" "$(state) $(table)"
				want=$bm_before
				if [[ $sync == full && $mode == always ]]; then
					# QEMU's always after a failure: what was not
					# copied (all of it) is marked dirty again.
					want=${bm_before/196608/$((len * 512))}
				fi
				cbw_expect_eq "$desc: bitmap0 after the cancel" \
					"$want" "$(bitmap0)"
				[[ $want == "$bm_before" ]] || reset_bitmap0
				continue
			fi
			nr_refused=$((nr_refused + 1))
			for form in "backup begin" backup; do
				read -r -a cmd <<<"$form"
				if [[ $form == backup ]]; then
					run "${cmd[@]}" "$guest" "${args[@]}" --cow "$cow" \
						--target "$target"
				else
					run "${cmd[@]}" "$guest" "${args[@]}" --cow "$cow"
				fi
				if ((rc == 2)) && has_msg "$want"; then
					cbw_pass "$form: $desc: $want"
				else
					cbw_info "exit $rc, stderr:" "${errl[@]}"
					cbw_fail "$form: $desc: $want"
				fi
			done
			cbw_expect_eq "$desc: both refusals changed nothing" "$before" "$(state)"
		done
	done
	cbw_expect_eq "after the sync $sync calls: table and bitmap0 unchanged" \
		"$table_before $bm_before" "$(table) $(bitmap0)"
done
cbw_expect_eq "48 QEMU refusals plus 3 for sync top" 51 "$nr_refused"
cbw_expect_eq "no target file was created" no \
	"$([[ -e $target ]] && echo yes || echo no)"
cbw_expect_eq "bitmap0 as the kernel reports it did not change" "$kbefore" "$(kquery)"

# sync none cannot be one command: nothing would read the snapshot.
run backup "$guest" --sync none --cow "$cow" --target "$target"
cbw_expect_eq "one-command backup --sync none is refused with status 2" 2 "$rc"
cbw_expect_eq "... and changes nothing" "$before $table_before" "$(state) $(table)"

# A bitmap busy with another operation: an inactive table names it.
cbw_check "load a table naming bitmap0 as snapshot_bitmap" \
	dmsetup load "$name" --table "0 $len cbw $origin $cow 128 2 snapshot_bitmap bitmap0"
busy_before="$(state) $(table)"
run backup begin "$guest" --sync bitmap --bitmap bitmap0 --bitmap-mode on-success --cow "$cow"
if ((rc == 1)) && has_msg "Bitmap 'bitmap0' is currently in use by another operation and cannot be used"; then
	cbw_pass "a busy bitmap is refused with QEMU's words, exit 1"
else
	cbw_info "exit $rc, stderr:" "${errl[@]}"
	cbw_fail "a busy bitmap is refused with QEMU's words, exit 1"
fi
cbw_expect_eq "the busy refusal changed nothing" "$busy_before" "$(state) $(table)"
cbw_check "dmsetup clear" dmsetup clear "$name"
cbw_expect_eq "bitmap0 is free again" "$before $table_before $bm_before" \
	"$(state) $(table) $(bitmap0)"

# A second job on the same device.
run backup begin "$guest" --sync bitmap --bitmap bitmap0 --bitmap-mode on-success --cow "$cow"
cbw_expect_eq "begin a job" 0 "$rc"
((rc == 0)) || cbw_info "${errl[@]}"
k=$(kquery)
cbw_expect_eq "bitmap0 is frozen: busy, recording, 3 granules, empty successor" \
	"196608 0 $((1 | 2 | 8))" "$k"
job_before=$(cat "$job_file" 2>/dev/null || true)
during="$(state) $(table)"
for args in "--sync full" "--sync bitmap --bitmap bitmap0 --bitmap-mode always"; do
	read -r -a a <<<"$args"
	run backup begin "$guest" "${a[@]}" --cow "$cow"
	# With the job's bitmap, QEMU's order (the bitmap check comes before
	# the job is created) gives the busy-bitmap refusal; either says why.
	why=other
	if [[ ${errl[*]} == *"cbwctl: "*"a backup job is already running on "*": finish or cancel it first"* ]]; then
		why=job
	elif [[ $args == *bitmap0* ]] &&
		has_msg "Bitmap 'bitmap0' is currently in use by another operation and cannot be used"; then
		why=bitmap
	fi
	if ((rc == 1)) && [[ $why != other ]]; then
		cbw_pass "a second begin ($args) is refused, exit 1"
	else
		cbw_info "exit $rc, stderr:" "${errl[@]}"
		cbw_fail "a second begin ($args) is refused, exit 1"
	fi
	cbw_expect_eq "... the first job's state is untouched" "$during" "$(state) $(table)"
	cbw_expect_eq "... and its job file" "$job_before" "$(cat "$job_file" 2>/dev/null || true)"
done
run backup cancel "$guest"
cbw_expect_eq "cancel the job" 0 "$rc"
cbw_expect_eq "cancel gave bitmap0 back unchanged (no writes during the job)" \
	"$before $table_before $bm_before" "$(state) $(table) $(bitmap0)"
cbw_expect_eq "bitmap0 is not frozen any more" "$kbefore" "$(kquery)"

cbw_done
