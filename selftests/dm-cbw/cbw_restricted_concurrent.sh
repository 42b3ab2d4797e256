#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A snapshot restricted to a bitmap, under concurrent guest writes and
# snapshot reads: the write path of chunks outside the snapshot and of
# copied chunks takes no lock, and only waits for snapshot reads of the
# origin that share its bucket of chunks.
#
# The origin (32 MiB, 4 KiB chunks: 8192 chunks, counted in buckets of two)
# sits under dm-delay, which delays reads by a few milliseconds, so snapshot
# reads of the origin stay in flight while guest writes to neighbouring
# chunks go on.  Every sector is stamped (generation 0), a 4 KiB bitmap is
# added and every tenth chunk is stamped again with the same data, so that
# the bitmap holds exactly those chunks; then a snapshot starts restricted
# to it.  Writers write, discard and write-zeroes everywhere while readers
# read the access device.  Proves:
#  - a read inside a chunk of the snapshot returns the pre-image, every
#    read of another chunk fails with ENODATA, also while writes run;
#  - the guest and origin devices hold exactly the post-write image;
#  - only chunks of the snapshot were copied, and all of those that were
#    written;
#  - the access device still reads the pre-image after the writes.
#
# Environment: CBW_STRESS_SECONDS, CBW_STRESS_WRITERS, CBW_STRESS_READERS,
# CBW_STRESS_SEED, CBW_READ_DELAY_MS (default 5).

. "$(dirname -- "$0")/lib.sh"

chunk=8
every=10
size_mib=32
seconds=${CBW_STRESS_SECONDS:-10}
writers=${CBW_STRESS_WRITERS:-4}
readers=${CBW_STRESS_READERS:-3}
delay_ms=${CBW_READ_DELAY_MS:-5}
seed_opt=()
[[ -z ${CBW_STRESS_SEED:-} ]] || seed_opt=(--seed "$CBW_STRESS_SEED")

origin=
cow=
cbw_setup $((3 * size_mib + 64))
cbw_require_cbwctl
cbw_require_kmod dm-delay
cbw_loop_create origin "$size_mib"
cbw_loop_create cow "$size_mib"
len=$(cbw_size "$origin")
total=$((len / chunk))
in_snap=$(((total + every - 1) / every))

cbw_read_delay_create "$(cbw_name delay)" "$origin" "$delay_ms"
under=$(cbw_dm_path "$(cbw_name delay)")
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
cbw_create "$name" "$under" "$chunk"
guest=$(cbw_dm_path "$name")

cbw_check "stamp the pre-image (generation 0)" "$CBW_STRESS" stamp "$guest" 0
cbw_last_failed && cbw_bail "cannot write the pre-image"
cbw_check "add a 4 KiB bitmap" "$CBWCTL" bitmap add "$name" inc --granularity 4K
cbw_check "stamp every ${every}th chunk again with the same data" \
	"$CBW_STRESS" stamp "$guest" 0 0 "$chunk" $((every * chunk))
cbw_check "snapshot start restricted to the bitmap" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --chunk 4K --bitmap inc \
	--access "$acc_name"
cbw_last_failed && cbw_bail "cannot start the snapshot"
cbw_dm_adopt "$acc_name"
cbw_expect_eq "chunks to copy and accessible: every ${every}th chunk" \
	"$in_snap $in_snap" \
	"$(cbw_stat "$name" to_copy) $(cbw_stat "$name" accessible)"
acc=$(cbw_dm_path "$acc_name")

cbw_info "running $writers writers and $readers readers for ${seconds}s"
shadow=$CBW_WORK/shadow
touched=$CBW_WORK/touched
rc=0
"$CBW_STRESS" run --guest "$guest" --access "$acc" --seconds "$seconds" \
	--writers "$writers" --readers "$readers" --chunk-sectors "$chunk" \
	--shadow "$shadow" --touched "$touched" --readable-every "$every" \
	"${seed_opt[@]}" >"$CBW_WORK/run.log" 2>&1 || rc=$?
cbw_info <"$CBW_WORK/run.log"
cbw_expect_eq "writes with access reads: chunks of the snapshot read the pre-image, others ENODATA" \
	0 "$rc"
[[ -s $shadow && -s $touched ]] || cbw_bail "cbw-stress wrote no shadow/touched files"
refused=$(sed -n 's/.*refused access reads \([0-9]*\).*/\1/p' "$CBW_WORK/run.log")
cbw_expect_cmp "some access reads were refused with ENODATA" "${refused:-0}" -gt 0

cbw_check "guest device holds exactly the post-write image" \
	"$CBW_STRESS" check-post --guest "$guest" --shadow "$shadow"
cbw_check "origin device holds exactly the post-write image" \
	"$CBW_STRESS" check-post --guest "$origin" --shadow "$shadow"

# Touched chunks of the snapshot: those that must have been copied.
touched_in=$(awk -v every="$every" '
	NF == 1 && $1 ~ /^[0-9]+$/ && $1 % every == 0 { n++ }
	END { print n + 0 }' "$touched")
cbw_expect_cmp "writers touched chunks of the snapshot" "$touched_in" -gt 0
cbw_expect_eq "copied: exactly the touched chunks of the snapshot" \
	"$touched_in" "$(cbw_stat "$name" copied)"
cbw_expect_eq "still active, no copy in flight, no error" "active 0 -" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" in_flight) $(cbw_stat "$name" error)"

cbw_check "every chunk of the snapshot reads the pre-image after the writes" \
	"$CBW_STRESS" verify "$acc" 0 0 "$chunk" $((every * chunk))

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_done
