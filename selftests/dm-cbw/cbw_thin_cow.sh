#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# A COW device in an LVM thin pool that fills up, set up as dm-cbw.rst's "A
# COW device in a thin pool" recommends, through cbwctl.
#
# The pools queue writes forever when full (dm_thin_pool's no_space_timeout
# is set to 0 for the test), so a copy that the pool holds back never ends
# by itself.  Proves that:
#  1. with lvchange --errorwhenfull y (the pool's table gets
#     error_if_no_space) and break_snapshot, a guest write of three times
#     the pool's size goes through: the snapshot breaks with -ENOSPC, its
#     reads fail, the origin holds the new data, and the snapshot stops;
#  2. with a queueing pool and --cbw-timeout under break_guest_write, the
#     guest write that needs a held-back copy fails, the status counts
#     timed-out copies, the snapshot stays active and exact, and once the
#     pool is extended (lvextend) the same write succeeds, the snapshot
#     still exact, and the snapshot stops.
# The timeouts around the writes are generous bounds: a write that waited
# for a held-back copy would wait forever.

. "$(dirname -- "$0")/lib.sh"

MIB=1048576
pv=
origin=
cbw_setup 300
cbw_require_cmds lvm thin_check timeout cmp
cbw_require_kmod dm-thin-pool
cbw_require_cbwctl
cbw_loop_create pv 96
cbw_loop_create origin 64
name=$(cbw_name vm0)
acc_name=$(cbw_name vm0-snap)
vg=${CBW_NAME_PREFIX}tvg
cbw_dm_create "$name" "$(cbw_cbw_table "$origin" - 128)" -u "CBW-$name"
guest=$(cbw_dm_path "$name")
acc=/dev/mapper/$acc_name

base=$CBW_WORK/base.bin
new=$CBW_WORK/new.bin
head -c $((64 * MIB)) /dev/urandom >"$base"
head -c $((24 * MIB)) /dev/urandom >"$new"
dd if="$base" of="$guest" bs=1M oflag=direct status=none

cbw_lvm_config "$pv"

nst=/sys/module/dm_thin_pool/parameters/no_space_timeout
old_nst=$(<"$nst")
echo 0 >"$nst"
cbw_defer eval "echo $old_nst >$nst"

vg_off()
{
	lvm vgchange -an "$vg" >/dev/null 2>&1 || true
	lvm vgremove -f "$vg" >/dev/null 2>&1 || true
}
lvm vgcreate -q -s 1M "$vg" "$pv" >/dev/null 2>&1 || cbw_bail "cannot create VG $vg"
cbw_defer vg_off

# The access device, if cbwctl created it and the snapshot was not stopped.
access_off()
{
	! cbw_dm_exists "$acc_name" || dmsetup remove --retry "$acc_name"
}
cbw_defer access_off

# thin_cow POOL: an 8 MiB pool POOL with a 64 MiB thin volume POOL-cow.
thin_cow()
{
	lvm lvcreate -q --type thin-pool -L 8M -c 64K --poolmetadatasize 2M \
		--poolmetadataspare n -Zn -n "$1" "$vg" >/dev/null 2>&1 ||
		cbw_bail "cannot create thin pool $1"
	lvm lvcreate -q --type thin -V 64M -n "$1-cow" --thinpool "$1" \
		"$vg" >/dev/null 2>&1 || cbw_bail "cannot create thin volume $1-cow"
}

# Exact bytes of a device region: DEV FILE MIB.
same_mib()
{
	cmp -n $(($3 * MIB)) -- "$1" "$2"
}

# --- 1. --errorwhenfull y, break_snapshot -----------------------------------

thin_cow full
cbw_check "lvchange --errorwhenfull y" lvm lvchange -q --errorwhenfull y "$vg/full"
cbw_check "the pool's table has error_if_no_space" \
	grep -q error_if_no_space <<<"$(dmsetup table "$vg-full-tpool")"
cbw_check "snapshot start on the thin volume, break_snapshot" \
	"$CBWCTL" snapshot start "$name" --cow "/dev/$vg/full-cow" \
	--on-cbw-error break_snapshot --access "$acc_name"
cbw_check "a 24 MiB write through an 8 MiB pool succeeds" \
	timeout 300 dd if="$new" of="$guest" bs=1M oflag=direct status=none
cbw_expect_eq "the snapshot broke with -ENOSPC" "broken -28" \
	"$(cbw_stat "$name" state) $(cbw_stat "$name" error)"
cbw_check "the origin holds the new data" same_mib "$origin" "$new" 24
cbw_check "... and the old data after it" \
	cmp -i $((24 * MIB)) -- "$origin" "$base"
cbw_check_fails "snapshot reads fail" \
	dd if="$acc" of=/dev/null bs=64K count=1 iflag=direct status=none
cbw_check "snapshot stop" timeout 300 "$CBWCTL" snapshot stop "$name"
cbw_info "pool: $(lvm lvs --noheadings -o lv_name,data_percent "$vg/full")"

# --- 2. queueing pool, --cbw-timeout, break_guest_write ---------------------

dd if="$base" of="$guest" bs=1M count=24 oflag=direct status=none
thin_cow queue
cbw_check "snapshot start on the thin volume, --cbw-timeout 1000" \
	"$CBWCTL" snapshot start "$name" --cow "/dev/$vg/queue-cow" \
	--cbw-timeout 1000 --access "$acc_name"
cbw_check_fails "a 24 MiB write through a full queueing pool fails" \
	timeout 300 dd if="$new" of="$guest" bs=1M oflag=direct status=none
read -r -a st <<<"$(dmsetup status "$name")"
cbw_info "status: ${st[*]}"
cbw_expect_eq "the snapshot stays active" active "$(cbw_stat "$name" state)"
cbw_expect_cmp "timed-out copies are counted" "${st[-1]}" -gt 0
cbw_check "the snapshot is exact" same_mib "$acc" "$base" 64
cbw_check "lvextend of the full pool" \
	timeout 300 lvm lvextend -q -L +32M "$vg/queue"
cbw_check "then the write succeeds" \
	timeout 300 dd if="$new" of="$guest" bs=1M oflag=direct status=none
cbw_check "the origin holds the new data" same_mib "$origin" "$new" 24
cbw_check "the snapshot is still exact" same_mib "$acc" "$base" 64
cbw_expect_eq "the snapshot is still active" active \
	"$(cbw_stat "$name" state)"
cbw_check "snapshot stop" timeout 300 "$CBWCTL" snapshot stop "$name"

cbw_done
