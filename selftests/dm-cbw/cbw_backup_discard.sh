#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl backup run --discard-source (QEMU's discard-source): each copied
# range is discarded on the access device.
#
# The COW device is a loop device over a sparse file, so the space it uses
# is the file's allocated blocks.  A full backup starts; guest writes to
# 8 MiB make the cbw device copy 128 chunks, which fills the COW file.
# Proves that:
#  - without --discard-source (the control case) the COW space stays used
#    after the run, and later guest writes to chunks the run copied are
#    still copied before they are overwritten;
#  - with --discard-source the run frees the COW space (the file's blocks
#    drop back to almost nothing), the image is still the point-in-time
#    one, later guest writes anywhere copy nothing (chunks copied stays
#    put, the COW file stays empty), and access reads of the copied chunks
#    fail (the chunks are no longer part of the snapshot);
#  - both jobs finish cleanly.

. "$(dirname -- "$0")/lib.sh"

MIB=1048576
origin=
cow=
cbw_setup 400
cbw_require_cmds dd cmp stat blkdiscard
cbw_require_cbwctl
"$CBWCTL" backup --help >/dev/null 2>&1 ||
	cbw_bail "this cbwctl has no backup command"
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create origin 64
cbw_loop_create cow 64
cow_file=$(losetup -n -O BACK-FILE "$cow")
cow_file=${cow_file%% }
[[ -f $cow_file ]] || cbw_bail "no backing file for $cow ($cow_file)"
name=$(cbw_name cbw)
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
acc_name=$name-access
acc=/dev/mapper/$acc_name
drop_access() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
cbw_defer drop_access "$acc_name"
W=$CBW_WORK

# Random data everywhere, so that every chunk differs from its next write.
dd if=/dev/urandom of="$guest" bs=1M count=64 oflag=direct status=none

# Bytes allocated to the COW file.
cow_used()
{
	echo $(($(stat -c %b -- "$cow_file") * 512))
}

# write OFFSET_MIB LENGTH_MIB: new data through the cbw device.
write()
{
	dd if=/dev/urandom of="$guest" bs=1M count="$2" seek="$1" \
		oflag=direct conv=notrunc status=none
}

# access_read OFFSET_MIB: one O_DIRECT 64 KiB read of the access device;
# prints ok or failed.
access_read()
{
	if dd if="$acc" of=/dev/null bs=64K count=1 skip=$(($1 * 16)) \
		iflag=direct status=none 2>/dev/null; then
		echo ok
	else
		echo failed
	fi
}

run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	if ((rc)); then
		cbw_info "cbwctl $* exited with $rc"
		cbw_info <"$W/stderr"
	fi
}

for discard in no yes; do
	t="--discard-source $discard"
	opt=()
	[[ $discard == no ]] || opt=(--discard-source)
	rm -f -- "$W/ref.img" "$W/target.img"
	# An empty COW file: the previous job's copies stay allocated.
	blkdiscard -f "$cow" 2>/dev/null
	cbw_expect_cmp "$t: the COW file is empty before the job" "$(cow_used)" -lt "$MIB"
	dd if="$guest" of="$W/ref.img" bs=1M iflag=direct status=none
	run backup begin "$guest" --sync full --cow "$cow" --chunk 64K
	cbw_expect_eq "$t: backup begin" 0 "$rc"
	((rc == 0)) || continue
	before=$(cow_used)
	write 8 8
	copied=$(cbw_stat "$name" copied)
	cbw_expect_eq "$t: 8 MiB of guest writes copied 128 chunks" 128 "$copied"
	used=$(cow_used)
	cbw_expect_cmp "$t: the COW file grew by at least 8 MiB" \
		$((used - before)) -ge $((8 * MIB))

	run backup run "$guest" --target "$W/target.img" --format raw \
		--max-chunk 1M "${opt[@]}"
	cbw_expect_eq "$t: backup run" 0 "$rc"
	cbw_check "$t: the image is the point-in-time one" \
		cmp -- "$W/target.img" "$W/ref.img"
	used=$(cow_used)
	copied=$(cbw_stat "$name" copied)
	if [[ $discard == yes ]]; then
		cbw_expect_cmp "$t: the run freed the COW space (less than 1 MiB left)" \
			"$used" -lt "$MIB"
		cbw_expect_eq "$t: no chunk is left in the snapshot" 0 \
			"$(cbw_stat "$name" accessible)"
	else
		cbw_expect_cmp "$t: the COW space is still used" \
			"$used" -ge $((8 * MIB))
	fi

	# Later guest writes: to chunks copied before (8-16 MiB) and to
	# chunks never copied (32-40 MiB).
	write 8 1
	write 32 8
	new_copied=$(cbw_stat "$name" copied)
	if [[ $discard == yes ]]; then
		cbw_expect_eq "$t: later writes copy nothing" "$copied" "$new_copied"
		cbw_expect_cmp "$t: the COW file stays almost empty" \
			"$(cow_used)" -lt "$MIB"
		cbw_expect_eq "$t: access reads of copied chunks fail" \
			"failed failed failed" \
			"$(access_read 0) $(access_read 8) $(access_read 32)"
	else
		# 32-40 MiB: 128 new copies; 8-9 MiB was copied already.
		cbw_expect_eq "$t: later writes to chunks not copied yet are copied" \
			$((copied + 128)) "$new_copied"
		cbw_expect_eq "$t: access reads of the snapshot still work" \
			"ok ok ok" "$(access_read 0) $(access_read 8) $(access_read 32)"
		dd if="$acc" of="$W/acc.img" bs=1M iflag=direct status=none
		cbw_check "$t: the access device still reads the point-in-time image" \
			cmp -- "$W/acc.img" "$W/ref.img"
		rm -f -- "$W/acc.img"
	fi
	run backup finish "$guest"
	cbw_expect_eq "$t: backup finish" 0 "$rc"
	cbw_expect_eq "$t: the job is gone" "no no" \
		"$(cbw_dm_exists "$acc_name" && echo yes || echo no) $(
		ls "$CBW_RUN_DIR"/backup-*.job >/dev/null 2>&1 && echo yes || echo no)"
done

cbw_done
