#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A chunk larger than 1 MiB is copied in 1 MiB pieces by several lanes of
# its copy job at once.  The origin sits under dm-delay, which holds every
# read for a few seconds, so the copy's reads of the origin can be counted
# while they are in flight.  With 16 MiB chunks, proves:
#  - the first write to a chunk has more than one piece read from the
#    origin at a time: it completes in less time than its 16 pieces'
#    delays added up, which pieces read one after the other cannot do;
#  - the copy is exact: the snapshot reads the whole chunk as it was, the
#    guest reads its write;
#  - a COW write that fails in the middle of a chunk (an error target over
#    one 1 MiB piece) under break_guest_write fails the guest write with
#    EIO, leaves the origin as it was, and the chunk to be copied again:
#    the snapshot still reads the point in time, and a write after the COW
#    is whole again copies the chunk.
#
# Environment: CBW_READ_DELAY_MS (default 2000).

. "$(dirname -- "$0")/lib.sh"

chunk=32768				# 16 MiB
delay_ms=${CBW_READ_DELAY_MS:-2000}
dev_sectors=$((4 * chunk))		# 64 MiB: four chunks
bad=$((2 * chunk + 5 * 2048))		# chunk 2, its sixth 1 MiB piece

origin=
cow=
cbw_setup 160
cbw_require_kmod dm-delay
cbw_loop_create origin 64
cbw_loop_create cow 64
cbw_read_delay_create "$(cbw_name delay)" "$origin" "$delay_ms"
delay_dev=$(cbw_dm_path "$(cbw_name delay)")

# The COW goes through dm-linear, so that one piece can become an error.
cow_name=$(cbw_name cowmap)
cbw_dm_create "$cow_name" "0 $dev_sectors linear $cow 0"
cow_dev=$(cbw_dm_path "$cow_name")

name=$(cbw_name cbw)
acc_name=$(cbw_name acc)
cbw_create "$name" "$delay_dev" "$chunk"
guest=$(cbw_dm_path "$name")
cbw_check "stamp the pre-image (generation 0)" \
	"$CBW_STRESS" stamp "$guest" 0 0 "$dev_sectors"
cbw_last_failed && cbw_bail "cannot write the pre-image"
cbw_reload "$name" \
	"0 $dev_sectors cbw $delay_dev $cow_dev $chunk 2 on_cbw_error break_guest_write"
cbw_access_create "$acc_name" "$name"
acc=$(cbw_dm_path "$acc_name")

# ---------------------------------------------------------------------------
# Lanes: chunk 1
# ---------------------------------------------------------------------------
# The copy of chunk 1 reads 16 pieces, each held for the delay: read one
# after the other, they take 16 delays at least; only pieces read at the
# same time can make the write complete sooner.
start=$(date +%s%N)
cbw_expect_eq "the first guest write to chunk 1" OK \
	"$("$CBW_STRESS" probe --write --gen 1 "$guest" $((chunk + 8)) 8)"
ms=$((($(date +%s%N) - start) / 1000000))
cbw_info "the copy of 16 pieces took $ms ms with $delay_ms ms per origin read"
cbw_expect_cmp "the pieces of one 16 MiB chunk are read from the origin at the same time" \
	"$ms" -lt $((16 * delay_ms))
# The rest needs no delay.
cbw_reload "$(cbw_name delay)" "0 $dev_sectors delay $origin 0 0 $origin 0 0"
cbw_expect_eq "chunks copied" 1 "$(cbw_stat "$name" copied)"
cbw_check "the snapshot reads chunk 1 as it was" \
	"$CBW_STRESS" verify "$acc" 0 "$chunk" "$chunk"
cbw_check "the guest reads its write in chunk 1" \
	"$CBW_STRESS" verify "$guest" 1 $((chunk + 8)) 8

# ---------------------------------------------------------------------------
# A failed piece: chunk 2
# ---------------------------------------------------------------------------
cbw_reload "$cow_name" "0 $bad linear $cow 0
$bad 2048 error
$((bad + 2048)) $((dev_sectors - bad - 2048)) linear $cow $((bad + 2048))"
to_copy=$(cbw_stat "$name" to_copy)
cbw_expect_eq "a guest write whose copy fails in one piece" EIO \
	"$("$CBW_STRESS" probe --write --gen 2 "$guest" $((2 * chunk)) 8)"
cbw_expect_eq "the chunk is to be copied again" "$to_copy" \
	"$(cbw_stat "$name" to_copy)"
cbw_expect_eq "the snapshot is still active" active "$(cbw_stat "$name" state)"
cbw_check "the origin still holds chunk 2 as it was" \
	"$CBW_STRESS" verify "$delay_dev" 0 $((2 * chunk)) "$chunk"
cbw_check "the snapshot reads chunk 2 as it was" \
	"$CBW_STRESS" verify "$acc" 0 $((2 * chunk)) "$chunk"

cbw_reload "$cow_name" "0 $dev_sectors linear $cow 0"
cbw_expect_eq "the guest write, once the COW is whole again" OK \
	"$("$CBW_STRESS" probe --write --gen 2 "$guest" $((2 * chunk)) 8)"
cbw_expect_eq "chunks copied" 2 "$(cbw_stat "$name" copied)"
cbw_check "the snapshot reads chunk 2 as it was, from the COW" \
	"$CBW_STRESS" verify "$acc" 0 $((2 * chunk)) "$chunk"
cbw_check "the snapshot reads every chunk as it was" \
	"$CBW_STRESS" verify "$acc" 0 0 "$dev_sectors"

cbw_dm_remove "$acc_name"
cbw_snapshot_end "$name"
cbw_done
