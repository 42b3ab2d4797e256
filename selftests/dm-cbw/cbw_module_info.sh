#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The versions and the IMA measurement of dm-cbw are as documented.
#
# Proves that "dmsetup targets" lists cbw 1.4.0 and cbw-access 1.1.0, that
# the module carries its version (1.4.0) and author, and that the IMA
# measurement of a cbw table (device-mapper critical data) is the
# documented line: target version 1.4.0, the bitmap arguments when they
# are given, and always the policy and the timeout.  The IMA part needs a
# kernel with IMA and, since it loads an IMA policy, runs only in the test
# VM (CBW_IN_VM=1); elsewhere it is skipped.

. "$(dirname -- "$0")/lib.sh"

C=128
origin=
cow=

cbw_setup 64
cbw_require_cmds python3
cbw_require_cbwctl
cbw_kmsg_mark

targets=$(dmsetup targets)
cbw_expect_eq "dmsetup targets: cbw v1.4.0" "v1.4.0" \
	"$(awk '$1 == "cbw" { print $2 }' <<<"$targets")"
cbw_expect_eq "dmsetup targets: cbw-access v1.1.0" "v1.1.0" \
	"$(awk '$1 == "cbw-access" { print $2 }' <<<"$targets")"

if [[ -n ${CBW_MODULE:-} && -f $CBW_MODULE ]] && command -v modinfo >/dev/null; then
	cbw_expect_eq "module version" "1.4.0" "$(modinfo -F version "$CBW_MODULE")"
	cbw_expect_eq "module author" "The dm-cbw developers" \
		"$(modinfo -F author "$CBW_MODULE")"
else
	cbw_skip "module version and author" "CBW_MODULE not set or modinfo missing"
fi
[[ ! -r /sys/module/dm_cbw/version ]] ||
	cbw_expect_eq "loaded module version" "1.4.0" "$(</sys/module/dm_cbw/version)"

# ---------------------------------------------------------------------------
# IMA
# ---------------------------------------------------------------------------
ima=/sys/kernel/security/integrity/ima
measurements=$ima/ascii_runtime_measurements

# ima_ready: device-mapper tables are measured from now on (in the VM, a
# policy that measures them is loaded).
ima_ready()
{
	[[ ${CBW_IN_VM:-} == 1 ]] || return 1
	mountpoint -q /sys/kernel/security ||
		mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
	[[ -r $measurements ]] || return 1
	echo "measure func=CRITICAL_DATA label=device-mapper" \
		>"$ima/policy" 2>/dev/null || true
	return 0
}

# ima_cbw_line DEV: the cbw target of the last dm_table_load of DEV.
ima_cbw_line()
{
	awk '$5 == "dm_table_load" { print $NF }' "$measurements" |
		python3 -c '
import sys
name = sys.argv[1]
last = ""
for hexed in sys.stdin:
    parts = bytes.fromhex(hexed.strip()).decode(errors="replace").split(";")
    if any(p.startswith("name=%s," % name) for p in parts):
        last = ([p for p in parts if "target_name=cbw," in p] + [""])[0]
print(last)' "$1"
}

if ! ima_ready; then
	cbw_skip "IMA measurement of cbw tables" \
		"not in the test VM, or the kernel has no IMA measurement list"
else
	cbw_loop_create origin 16
	cbw_loop_create cow 16
	name=$(cbw_name cbw)
	len=$(cbw_size "$origin")
	odev=$(printf '%d:%d' "0x$(stat -c '%t' "$origin")" "0x$(stat -c '%T' "$origin")")
	cdev=$(printf '%d:%d' "0x$(stat -c '%t' "$cow")" "0x$(stat -c '%T' "$cow")")
	cbw_create "$name" "$origin" "$C"
	prefix="target_index=0,target_begin=0,target_len=$len,target_name=cbw,target_version=1.4.0"
	got=$(ima_cbw_line "$name")
	if [[ -z $got ]]; then
		cbw_skip "IMA measurement of cbw tables" \
			"no dm_table_load measured (IMA policy not loaded)"
	else
		cbw_expect_eq "IMA: a table without a snapshot" \
			"$prefix,origin_name=$odev,cow_name=-,chunk_sectors=$C,on_cbw_error=break_guest_write,cbw_timeout_ms=0" \
			"$got"
		"$CBWCTL" bitmap add "$name" b1
		"$CBWCTL" bitmap add "$name" b2
		cbw_check "a table with both bitmap arguments loads" \
			dmsetup load "$name" --table "0 $len cbw $origin $cow $C 8 snapshot_bitmap b1 freeze_bitmap b2 on_cbw_error break_snapshot cbw_timeout_ms 5"
		cbw_expect_eq "IMA: the bitmap arguments, the policy and the timeout" \
			"$prefix,origin_name=$odev,cow_name=$cdev,chunk_sectors=$C,snapshot_bitmap=b1,freeze_bitmap=b2,on_cbw_error=break_snapshot,cbw_timeout_ms=5" \
			"$(ima_cbw_line "$name")"
		cbw_check "a table with snapshot_bitmap only loads" \
			dmsetup load "$name" --table "0 $len cbw $origin $cow $C 2 snapshot_bitmap b1"
		cbw_expect_eq "IMA: only the bitmap argument given" \
			"$prefix,origin_name=$odev,cow_name=$cdev,chunk_sectors=$C,snapshot_bitmap=b1,on_cbw_error=break_guest_write,cbw_timeout_ms=0" \
			"$(ima_cbw_line "$name")"
		dmsetup clear "$name"
	fi
fi

cbw_done
