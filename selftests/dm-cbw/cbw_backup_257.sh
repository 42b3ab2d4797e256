#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl backup and the bitmap sync modes: QEMU's iotest 257 on a block
# device.
#
# A 64 MiB origin (a loop device under a dm-linear device, whose table is
# reloaded with a dm-error segment for the "intermediate" failure) carries
# a cbw device with 64 KiB chunks; bitmap0 has 64 KiB granules and the
# backups copy one 64 KiB cluster at a time in ascending order
# (--max-chunk 64K: QEMU's max-workers 1 with cluster-sized copies).
# For sync bitmap with bitmap mode never, on-success and always, and sync
# full with on-success and always, each with the failures "simulated" (the
# job is cancelled after it copied everything, with guest writes during
# the job), "intermediate" (the second read of the origin fails) and none:
#
#   Write #0, reference copy #0, bitmap add bitmap0, Write #1, reference #1,
#   Test Backup #1 (cbwctl backup begin/run, then finish or cancel; Write #2
#   while the job exists: bitmap0 frozen, its successor recording),
#   Write #3, reference #2, Test Backup #2 (sync bitmap, same mode),
#
# with bitmap0's dirty clusters checked at every point against 257.out,
# and the images compared with cbwctl restore: reference #0 + Test Backup
# #1 equals reference #1 (except after an intermediate failure, where it
# must differ); reference #0 + the test backups of the chain equals
# reference #2; the guest equals reference #2.  Sync "top" is left out: it
# needs a backing chain (cbwctl refuses it, see cbw_backup_api.sh).
#
# With CBW_257_PERSISTENT=1 (cbw_persist_257.sh) the cbw device has a
# metadata device and bitmap0 is persistent: the counts must be the same.

. "$(dirname -- "$0")/lib.sh"

BMQUERY=$CBW_SELFTEST_DIR/cbw-bmquery.py
G=65536			# granularity, chunk size and copy size (bytes)
C=$((G / 512))		# the same in sectors
origin=
cow=
cbw_setup 640
cbw_require_cmds python3 dd cmp tr head blkdiscard
cbw_require_cbwctl
cbw_have_target linear error || cbw_skip_all "dm-linear or dm-error is missing"
"$CBWCTL" backup --help >/dev/null 2>&1 ||
	cbw_bail "this cbwctl has no backup command"
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create origin 64
cbw_loop_create cow 64
len=$(cbw_size "$origin")
nr_clusters=$((len / C))
lin_name=$(cbw_name lin)
name=$(cbw_name cbw)
cbw_dm_create "$lin_name" "0 $len linear $origin 0"
lin=$(cbw_dm_path "$lin_name")
# Persistent bitmaps: status bit DM_CBW_BITMAP_PERSISTENT (4) too.
persistent_status=0
add_opts=()
if [[ ${CBW_257_PERSISTENT:-0} == 1 ]]; then
	meta=
	cbw_loop_create meta 1
	"$CBWCTL" metadata format "$meta" --origin "$lin" >/dev/null ||
		cbw_bail "metadata format failed"
	cbw_dm_create "$name" "0 $len cbw $lin - $C 2 metadata_dev $meta"
	persistent_status=4
	add_opts=(--persistent)
else
	cbw_create "$name" "$lin" "$C"
fi
guest=$(cbw_dm_path "$name")
acc_name=$name-access
drop_access() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
cbw_defer drop_access "$acc_name"
IFS=: read -r maj min <<<"$(cbw_dm_devno "$name")"
job_file=$CBW_RUN_DIR/backup-$maj-$min.job
W=$CBW_WORK

# ---------------------------------------------------------------------------
# The writes of 257, as qemu-io commands: "write -P PATTERN OFFSET LENGTH".
# ---------------------------------------------------------------------------
# shellcheck disable=SC2034 # used through write_group's nameref
WRITE0=("0x49 0x0000000 0x10000" "0x6c 0x0100000 0x10000"
	"0x6f 0x2000000 0x10000" "0x76 0x3ff0000 0x10000")
# shellcheck disable=SC2034
WRITE1=("0x65 0x0000000 0x10000" "0x77 0x00f8000 0x10000"
	"0x72 0x2008000 0x10000" "0x69 0x3fe0000 0x10000")
# shellcheck disable=SC2034
WRITE2=("0x74 0x0010000 0x10000" "0x69 0x00e8000 0x10000"
	"0x6e 0x2018000 0x10000" "0x67 0x3fe0000 0x20000")
# shellcheck disable=SC2034
WRITE3=("0xaa 0x0010000 0x30000" "0xbb 0x00d8000 0x10000"
	"0xcc 0x2028000 0x10000" "0xdd 0x3fc0000 0x10000")

# write_group NAME[@]: O_DIRECT writes through the cbw device, each from a
# file filled with its pattern byte.
write_group()
{
	local -n group=$1
	local w pat off length file

	for w in "${group[@]}"; do
		read -r pat off length <<<"$w"
		file=$W/pattern-$pat-$((length))
		if [[ ! -e $file ]]; then
			head -c $((length)) /dev/zero |
				tr '\0' "\\$(printf '%03o' $((pat)))" >"$file"
		fi
		dd if="$file" of="$guest" bs=$((length)) count=1 seek=$((off)) \
			oflag=direct,seek_bytes conv=notrunc status=none
	done
}

# ---------------------------------------------------------------------------
# Expected bitmap0 dirty clusters (count / 64 KiB), 257.out via
# qemu-fleecing.md section 5: after Write #1, during job 1 (bitmap0 /
# successor, "-" when there is no Write #2), after job 1, after Write #3
# (= the length of Test Backup #2), after job 2.
#
# Derived: on-success after a failure or cancel, and never always, give
# bitmap0 back its frozen bits plus the successor's (W1 u W2 = 10 after
# job 1); a success, or always, leaves the successor (W2 = 7); always after
# an intermediate failure adds what was not copied.  With
# W1 = {0,15,16,512,513,1022}, W2 = {1,14,15,513,514,1022,1023},
# W3 = {1,2,3,13,14,514,515,1020}.
# ---------------------------------------------------------------------------
EXPECTED=(
#	sync	mode		failure		W1 job1 after1 W3 after2
	"bitmap	never		simulated	6 6/7 10 15 15"
	"bitmap	never		intermediate	6 -   6  14 14"
	"bitmap	never		none		6 6/7 10 15 15"
	"bitmap	on-success	simulated	6 6/7 10 15 0"
	"bitmap	on-success	intermediate	6 -   6  14 0"
	"bitmap	on-success	none		6 6/7 7  12 0"
	"bitmap	always		simulated	6 6/7 7  12 0"
	# {15,16,512,513,1022}: cluster 0 was copied, the rest of W1 not
	"bitmap	always		intermediate	6 -   5  13 0"
	"bitmap	always		none		6 6/7 7  12 0"
	"full	on-success	simulated	6 6/7 10 15 0"
	"full	on-success	intermediate	6 -   6  14 0"
	"full	on-success	none		6 6/7 7  12 0"
	"full	always		simulated	6 6/7 7  12 0"
	# QEMU: 1009 = {15..1023}, then 1014 = {1..1023}.  A qcow2 image has
	# unallocated clusters (1-14 here), which QEMU's backup copies as
	# zeroes without reading the source, so its second read is cluster
	# 15.  A block device has no unallocated clusters: the second read is
	# cluster 1 and the uncopied rest is {1..1023} = 1023, which Write #3
	# (all inside it) leaves at 1023.
	"full	always		intermediate	6 -   1023 1023 0"
	"full	always		none		6 6/7 7  12 0"
)

# bitmap0 as the kernel reports it: "count successor_count status" (bytes).
kquery()
{
	python3 "$BMQUERY" "$guest" bitmap0 || true
}

# bitmap0's dirty clusters according to cbwctl.
clusters()
{
	local row

	row=$("$CBWCTL" --bytes bitmap query "$guest" bitmap0 2>&1 | tail -n 1) || true
	read -r _ _ c _ <<<"$row"
	[[ $c =~ ^[0-9]+$ ]] || { echo "?($row)"; return; }
	echo $((c / G))
}

# image FILE: the guest's data, read past any cache.
image()
{
	dd if="$guest" of="$1" bs=1M iflag=direct conv=sparse status=none
}

# reference NAME: the guest's data now, as $W/NAME.  The writes are the
# same in every scenario, so each reference copy is read once, in the
# first scenario that reaches it; the guest itself is compared with the
# last one at the end of every scenario.
reference()
{
	[[ -e $W/$1 ]] || image "$W/$1"
}

# The origin (a linear device) with reads and writes of one cluster failing.
fail_cluster()
{
	local s=$(($1 * C))

	cbw_reload "$lin_name" "0 $s linear $origin 0
$s $C error
$((s + C)) $((len - s - C)) linear $origin $((s + C))"
}

# run ARGS...: cbwctl; sets rc and err (stdout goes to $W/stdout).
run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	err=$(<"$W/stderr")
}

expect_rc()
{
	local desc=$1 want=$2

	if ((rc == want)); then
		cbw_pass "$desc"
	else
		cbw_info "exit $rc, expected $want"
		[[ -z $err ]] || cbw_info <<<"$err"
		cbw_fail "$desc"
	fi
}

# restore_cmp DESC WANT(same|differ) REFERENCE [--allow-partial] FILES...
restore_cmp()
{
	local desc=$1 want=$2 ref=$3 got=same

	shift 3
	rm -f -- "$W/restored"
	run restore --to "$W/restored" "$@"
	if ((rc != 0)); then
		cbw_info "cbwctl restore --to $W/restored $* exited with $rc"
		[[ -z $err ]] || cbw_info <<<"$err"
		cbw_fail "$desc"
		return
	fi
	cmp -s -- "$W/restored" "$ref" || got=differ
	cbw_expect_eq "$desc" "$want" "$got"
	rm -f -- "$W/restored"
}

# no_job DESC: the job left nothing behind.
no_job()
{
	local table

	table=$(dmsetup table "$name")
	read -r _ _ _ _ tcow _ <<<"$table"
	cbw_expect_eq "$1" "no job file, no access device, no COW" \
		"$([[ -e $job_file ]] && echo "job file" || echo "no job file"), $(
		cbw_dm_exists "$acc_name" && echo "access device" || echo "no access device"), $(
		[[ $tcow == - ]] && echo "no COW" || echo "COW $tcow")"
}

scenario()
{
	local sync=$1 mode=$2 failure=$3 e_w1=$4 e_job=$5 e_after1=$6 e_w3=$7 e_after2=$8
	local t="$sync/$mode/$failure" k fail_at=-1 job1_ok=1 kq chain ref2 t0=$SECONDS

	cbw_info "=== sync $sync, bitmap mode $mode, failure $failure ==="
	blkdiscard -f "$origin" 2>/dev/null
	rm -f -- "$W"/test* "$W/guest.img"

	write_group WRITE0
	reference ref0
	cbw_check "$t: bitmap add bitmap0" \
		"$CBWCTL" bitmap add "$guest" bitmap0 --granularity 64K "${add_opts[@]}"
	write_group WRITE1
	cbw_expect_eq "$t: after Write #1" "$e_w1" "$(clusters)"
	reference ref1

	# Test Backup #1
	run backup begin "$guest" --sync "$sync" --bitmap bitmap0 \
		--bitmap-mode "$mode" --cow "$cow" --chunk 64K
	expect_rc "$t: backup begin" 0
	((rc == 0)) || return 0
	if [[ $failure == intermediate ]]; then
		# The second cluster the job reads: bitmap0's second extent
		# (cluster 15), or cluster 1 for sync full.
		fail_at=15
		[[ $sync == full ]] && fail_at=1
		fail_cluster "$fail_at"
	fi
	run backup run "$guest" --target "$W/test1" --format cbw --max-chunk 64K
	if [[ $failure == intermediate ]]; then
		cbw_reload "$lin_name" "0 $len linear $origin 0"
		job1_ok=0
		expect_rc "$t: the run fails at the second read" 1
		if [[ $err =~ "read error at offset "($((fail_at * G))|$((fail_at * 64))K)" of ".*": Input/output error" ]]; then
			cbw_pass "$t: it names the failed offset and EIO"
		else
			cbw_info "stderr: $err"
			cbw_fail "$t: it names the failed offset $((fail_at * G)) and EIO"
		fi
		cbw_expect_eq "$t: job file: failed at the second cluster" \
			"state=failed fail_offset=$((fail_at * G))" \
			"$(grep -E '^state=' "$job_file" 2>/dev/null) $(grep -E '^fail_offset=' "$job_file" 2>/dev/null)"
		run backup finish "$guest"
		cbw_info "backup finish after the failed run: exit $rc"
		[[ -z $err ]] || cbw_info <<<"$err"
	else
		expect_rc "$t: backup run" 0
		write_group WRITE2
		kq=$(kquery)
		read -r -a k <<<"$kq"
		cbw_expect_eq "$t: during the job: bitmap0 / successor clusters" "$e_job" \
			"$((${k[0]:-0} / G))/$((${k[1]:-0} / G))"
		cbw_expect_eq "$t: during the job: bitmap0 frozen, busy, recording" \
			$((1 | 2 | 8 | persistent_status)) "${k[2]:-$kq}"
		if [[ $failure == simulated ]]; then
			run backup cancel "$guest"
			expect_rc "$t: backup cancel" 0
			job1_ok=0
		else
			run backup finish "$guest"
			expect_rc "$t: backup finish" 0
		fi
	fi
	no_job "$t: job 1 cleaned up"
	cbw_expect_eq "$t: after job 1" "$e_after1" "$(clusters)"
	# (a frozen bitmap is busy: not busy is not frozen)
	cbw_expect_eq "$t: after job 1: bitmap0 recording and not busy" \
		"yes no" "$(row=$("$CBWCTL" bitmap query "$guest" bitmap0 2>&1 | tail -n 1) || true
		read -r _ _ _ rec busy _ <<<"$row"; echo "$rec $busy")"

	write_group WRITE3
	cbw_expect_eq "$t: after Write #3" "$e_w3" "$(clusters)"
	ref2=ref2.w2
	[[ $failure != intermediate ]] || ref2=ref2.no-w2
	reference "$ref2"

	# Test Backup #2: the one-command form
	run backup "$guest" --sync bitmap --bitmap bitmap0 --bitmap-mode "$mode" \
		--cow "$cow" --chunk 64K --target "$W/test2" --format cbw --max-chunk 64K
	expect_rc "$t: Test Backup #2" 0
	no_job "$t: job 2 cleaned up"
	cbw_expect_eq "$t: after job 2" "$e_after2" "$(clusters)"

	# Verification
	if [[ $failure == intermediate ]]; then
		run restore --to "$W/refused" "$W/ref0" "$W/test1"
		expect_rc "$t: restore refuses the partial Test Backup #1" 1
		rm -f -- "$W/refused"
		restore_cmp "$t: reference #0 + partial Test Backup #1 differs from reference #1" \
			differ "$W/ref1" "$W/ref0" "$W/test1" --allow-partial
	else
		restore_cmp "$t: reference #0 + Test Backup #1 equals reference #1" \
			same "$W/ref1" "$W/ref0" "$W/test1"
	fi
	if ((job1_ok)) || [[ $mode == always ]]; then
		chain="reference #0 + Test Backup #1 + #2"
		restore_cmp "$t: $chain equals reference #2" same "$W/$ref2" \
			--allow-partial "$W/ref0" "$W/test1" "$W/test2"
	else
		chain="reference #0 + Test Backup #2"
		restore_cmp "$t: $chain equals reference #2" same "$W/$ref2" \
			"$W/ref0" "$W/test2"
	fi
	image "$W/guest.img"
	cbw_check "$t: the guest equals reference #2" cmp -- "$W/guest.img" "$W/$ref2"

	cbw_check "$t: bitmap remove bitmap0" "$CBWCTL" bitmap remove "$guest" bitmap0
	cbw_info "$t: $((SECONDS - t0))s"
}

cbw_expect_eq "the origin has 1024 clusters" 1024 "$nr_clusters"
for row in "${EXPECTED[@]}"; do
	read -r -a f <<<"$row"
	scenario "${f[@]}"
	# A scenario that died half-way must not spoil the next one.
	if [[ -e $job_file ]]; then
		"$CBWCTL" backup cancel "$guest" >/dev/null 2>&1 || true
	fi
	"$CBWCTL" bitmap remove "$guest" bitmap0 >/dev/null 2>&1 || true
done

cbw_done
