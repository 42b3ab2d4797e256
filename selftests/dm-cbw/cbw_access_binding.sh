#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Which snapshot a cbw-access device reads, and the devices it holds.
#
# A cbw-access device made while the cbw device has no snapshot binds on
# first use, but only to a snapshot of its own length and chunk size whose
# logical blocks are no larger than its own.  Proves that after the cbw
# device was reloaded shorter with a COW device, every read of the access
# device, past the new end or not, fails with ENODATA and its status says
# "none"; that a later snapshot of the right geometry is then bound and read
# correctly; that a snapshot of another chunk size or with a 4 KiB-block COW
# device is refused the same way.  Also proves that an access device made
# while a snapshot is active holds that snapshot's origin and COW device:
# dmsetup deps lists both, their holders directories list it, it advertises
# no polling that they lack, and the cbw device can still be removed first.

. "$(dirname -- "$0")/lib.sh"

C=8			# chunk size in sectors
origin=
cow=
cow4k=
cbw_setup 80
cbw_loop_create origin 16
cbw_loop_create cow 16
cbw_loop_create cow4k 16 --sector-size 4096
name=$(cbw_name cbw)
len=$(cbw_size "$origin")
half=$((len / 2))

cbw_create "$name" "$origin" "$C"
guest=$(cbw_dm_path "$name")
"$CBW_STRESS" stamp "$guest" 1 >/dev/null

# probe_is DESCRIPTION EXPECTED DEV SECTOR: cbw-stress probe prints OK or
# the errno name of one O_DIRECT read of a chunk.
probe_is()
{
	local desc=$1 want=$2 got

	got=$("$CBW_STRESS" probe "$3" "$4" "$C" 2>&1) || true
	cbw_expect_eq "$desc" "$want" "$got"
}

# probes_fail DESCRIPTION DEV FIRST LAST: reads of 32 chunks spread over
# sectors FIRST..LAST all fail with ENODATA.
probes_fail()
{
	local desc=$1 dev=$2 first=$3 last=$4 i s got bad=()

	for ((i = 0; i < 32; i++)); do
		s=$(((first + (last - first) * i / 31) / C * C))
		got=$("$CBW_STRESS" probe "$dev" "$s" "$C" 2>&1) || true
		[[ $got == ENODATA ]] || bad+=("$s:$got")
	done
	cbw_expect_eq "$desc" "" "${bad[*]}"
}

# 1. An access device without a snapshot; the cbw device is then reloaded
#    shorter, with a COW device.
acc1=$(cbw_name acc1)
cbw_access_create "$acc1" "$name"
cbw_expect_eq "access device made without a snapshot: status none" "none 0 0" \
	"$(cbw_status_core "$acc1")"
cbw_reload "$name" "0 $half cbw $origin $cow $C"
probes_fail "reads past the end of the shorter snapshot fail with ENODATA" \
	"$(cbw_dm_path "$acc1")" "$half" $((len - C))
probes_fail "reads inside the shorter snapshot fail with ENODATA" \
	"$(cbw_dm_path "$acc1")" 0 $((half - C))
cbw_expect_eq "its status stays none" "none 0 0" "$(cbw_status_core "$acc1")"

# 2. A snapshot of its geometry is bound and read.
cbw_reload "$name" "0 $len cbw $origin $cow $C"
"$CBW_STRESS" stamp "$guest" 2 0 64 >/dev/null
cbw_check "then a snapshot of its length is bound and reads the point in time" \
	"$CBW_STRESS" verify "$(cbw_dm_path "$acc1")" 1
cbw_expect_eq "its status is that snapshot's" "active $((len / C)) $((len / C))" \
	"$(cbw_status_core "$acc1")"
cbw_dm_remove "$acc1"

# 3. Another chunk size, or larger logical blocks, are not bound.
cbw_snapshot_end "$name"
acc2=$(cbw_name acc2)
cbw_access_create "$acc2" "$name"
cbw_reload "$name" "0 $len cbw $origin $cow $((C * 2))"
probe_is "a snapshot of another chunk size is not bound" ENODATA "$(cbw_dm_path "$acc2")" 0
cbw_expect_eq "status none" "none 0 0" "$(cbw_status_core "$acc2")"
cbw_dm_remove "$acc2"
cbw_snapshot_end "$name"
acc3=$(cbw_name acc3)
cbw_access_create "$acc3" "$name"
cbw_reload "$name" "0 $len cbw $origin $cow4k $C"
probe_is "a snapshot with 4 KiB COW blocks is not bound by a 512-byte access device" \
	ENODATA "$(cbw_dm_path "$acc3")" 0
cbw_dm_remove "$acc3"

# 4. The devices of the snapshot are held.
cbw_reload "$name" "0 $len cbw $origin $cow $C"
acc4=$(cbw_name acc4)
cbw_access_create "$acc4" "$name"
devno() { printf '%d:%d' "$(stat -c '0x%t' "$1")" "$(stat -c '0x%T' "$1")"; }
deps=$(dmsetup deps -o devno "$acc4" | sed 's/^.*: *//; s/[()]//g; s/, */:/g' |
	tr ' ' '\n' | sort | tr '\n' ' ')
want=$(printf '%s\n' "$(devno "$origin")" "$(devno "$cow")" | sort | tr '\n' ' ')
cbw_expect_eq "dmsetup deps lists the origin and the COW device" "$want" "$deps"
dm=$(dmsetup info -c --noheadings -o blkdevname "$acc4")
held=
for dev in "$origin" "$cow"; do
	[[ -e /sys/class/block/${dev#/dev/}/holders/$dm ]] || held+=" ${dev#/dev/}"
done
cbw_expect_eq "the origin and COW device list it as a holder" "" "$held"
cbw_expect_eq "no polling is advertised (loop devices have none)" 0 \
	"$(cat "/sys/block/$dm/queue/io_poll")"
cbw_check "it reads the snapshot" "$CBW_STRESS" verify "$(cbw_dm_path "$acc4")" 2 0 64
cbw_check "the cbw device can be removed before it" cbw_dm_remove "$name"
probe_is "then its reads fail with ENODATA" ENODATA "$(cbw_dm_path "$acc4")" 0
cbw_dm_remove "$acc4"
held=
for dev in "$origin" "$cow"; do
	held+=$(ls -A "/sys/class/block/${dev#/dev/}/holders")
done
cbw_expect_eq "nothing holds the loop devices afterwards" "" "$held"

cbw_done
