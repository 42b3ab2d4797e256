#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Point-in-time integrity of dm-cbw, for one chunk size.
#
# Every 512-byte sector of the origin is stamped with its own offset and
# generation 0, then a snapshot is taken. Writers issue concurrent random
# guest writes of sizes not aligned to chunks (plus discards and
# write-zeroes), with region boundaries inside chunks so that writers share
# chunks, while readers read random ranges of the access device. Proves:
#  - the access device reads the pre-image at all times, and is
#    byte-identical to it afterwards;
#  - the guest device (and the origin under it) hold exactly the post-write
#    image;
#  - the COW device holds the original content of every touched chunk at the
#    chunk's own offset, and chunks_copied equals the number of touched
#    chunks (no copy missed, none made for untouched chunks);
#  - the status counters are consistent, and the snapshot ends cleanly.
#
# With "delay", the origin is a dm-delay device that delays reads (not
# writes) by a few milliseconds: a snapshot read of the origin then stays in
# flight long after a guest write to the same chunk could have completed,
# which a missing wait shows as new data in the snapshot.
#
# Usage: cbw-integrity.sh [CHUNK [delay]]
#   CHUNK: 4k (default), 64k, 1m or a number of sectors.
# Environment: CBW_INTEGRITY_MIB (device size), CBW_STRESS_SECONDS,
# CBW_STRESS_WRITERS, CBW_STRESS_READERS, CBW_STRESS_SEED,
# CBW_READ_DELAY_MS (with "delay", default 5).
#
# It is not a test of its own: the tests cbw_integrity_4k_delay.sh,
# cbw_integrity_64k.sh and cbw_integrity_1m.sh run it with their arguments.

. "$(dirname -- "$0")/lib.sh"

case ${1:-4k} in
4k | 4K) chunk=8 ;;
64k | 64K) chunk=128 ;;
1m | 1M) chunk=2048 ;;
*[!0-9]*) echo "usage: $0 [4k|64k|1m|SECTORS] [delay]" >&2; exit 2 ;;
*) chunk=$1 ;;
esac
CBW_TEST="cbw_integrity_$((chunk / 2))k"
delay_ms=0
case ${2:-} in
"") ;;
delay) delay_ms=${CBW_READ_DELAY_MS:-5}; CBW_TEST+=_delay ;;
*) echo "usage: $0 [4k|64k|1m|SECTORS] [delay]" >&2; exit 2 ;;
esac

size_mib=${CBW_INTEGRITY_MIB:-32}
seconds=${CBW_STRESS_SECONDS:-10}
writers=${CBW_STRESS_WRITERS:-4}
readers=${CBW_STRESS_READERS:-2}
seed_opt=()
[[ -z ${CBW_STRESS_SEED:-} ]] || seed_opt=(--seed "$CBW_STRESS_SEED")

origin=
cow=
cbw_setup $((3 * size_mib + 64))
cbw_loop_create origin "$size_mib"
cbw_loop_create cow "$size_mib"
name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")
total=$((len / chunk))
cbw_info "origin $origin, COW $cow, $len sectors, chunk $chunk sectors ($total chunks)"

# The device under cbw: the origin itself, or dm-delay over it.
under=$origin
if ((delay_ms)); then
	cbw_read_delay_create "$(cbw_name delay)" "$origin" "$delay_ms"
	under=$(cbw_dm_path "$(cbw_name delay)")
	cbw_info "origin reads delayed by ${delay_ms} ms through $under"
fi

cbw_create "$name" "$under" "$chunk"
guest=$(cbw_dm_path "$name")

cbw_check "stamp the pre-image (generation 0) through the tracking-only device" \
	"$CBW_STRESS" stamp "$guest" 0
cbw_last_failed && cbw_bail "cannot write the pre-image"

cbw_snapshot_start "$name" "$cow"
cbw_expect_eq "snapshot state is active" active "$(cbw_stat "$name" state)"
cbw_expect_eq "chunk size in status" "$chunk" "$(cbw_stat "$name" chunk)"
cbw_expect_eq "chunks_total" "$total" "$(cbw_stat "$name" total)"
cbw_expect_eq "chunks_copied is 0 at the snapshot point" 0 "$(cbw_stat "$name" copied)"
cbw_expect_eq "all chunks accessible at the snapshot point" "$total" \
	"$(cbw_stat "$name" accessible)"

cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")
cbw_expect_eq "access device status: active, all chunks accessible" \
	"active $total $total" "$(cbw_status_core "$acc_name")"
cbw_check "access device reads the pre-image before any write" \
	"$CBW_STRESS" verify "$acc" 0

cbw_info "running $writers writers and $readers readers for ${seconds}s"
shadow=$CBW_WORK/shadow
touched=$CBW_WORK/touched
rc=0
"$CBW_STRESS" run --guest "$guest" --access "$acc" --seconds "$seconds" \
	--writers "$writers" --readers "$readers" --chunk-sectors "$chunk" \
	--shadow "$shadow" --touched "$touched" "${seed_opt[@]}" \
	>"$CBW_WORK/run.log" 2>&1 || rc=$?
cbw_info <"$CBW_WORK/run.log"
cbw_expect_eq "concurrent guest writes with access reads: no error, readers saw only the pre-image" \
	0 "$rc"
[[ -s $shadow && -s $touched ]] || cbw_bail "cbw-stress wrote no shadow/touched files"

cbw_check "access device is byte-identical to the pre-image after the writes" \
	"$CBW_STRESS" verify "$acc" 0
cbw_check "guest device holds exactly the post-write image" \
	"$CBW_STRESS" check-post --guest "$guest" --shadow "$shadow"
cbw_check "origin device holds exactly the post-write image" \
	"$CBW_STRESS" check-post --guest "$origin" --shadow "$shadow"

out=$("$CBW_STRESS" check-cow --cow "$cow" --touched "$touched" \
	--chunk-sectors "$chunk" 2>&1) && rc=0 || rc=$?
cbw_info <<<"$out"
cbw_expect_eq "COW device holds the pre-image of every touched chunk at its own offset" \
	0 "$rc"
ntouched=$(awk '$1 == "touched_chunks" { print $2 }' <<<"$out")
ntouched=${ntouched:--1}
copied=$(cbw_stat "$name" copied)
cbw_info "status: $(dmsetup status "$name")"
cbw_expect_cmp "some chunks were touched" "$ntouched" -gt 0
cbw_expect_cmp "untouched chunks remain" "$ntouched" -lt "$total"
cbw_expect_eq "chunks_copied equals the number of touched chunks" "$ntouched" "$copied"
cbw_expect_eq "no copy in flight after the writes" 0 "$(cbw_stat "$name" in_flight)"
cbw_expect_eq "chunks_to_copy = total - copied" "$((total - copied))" \
	"$(cbw_stat "$name" to_copy)"
cbw_expect_eq "still active, no error" "active -" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" error)"

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_expect_eq "status after the snapshot ended" "$chunk none 0 0 0 0 0 -" \
	"$(cbw_status_core "$name")"
cbw_check "guest data unchanged by the end of the snapshot" \
	"$CBW_STRESS" check-post --guest "$guest" --shadow "$shadow"
cbw_check "the guest device can be removed" cbw_dm_remove "$name"

cbw_done
