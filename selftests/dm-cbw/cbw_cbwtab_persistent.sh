#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Persistent bitmaps in a cbwtab file: metadata=DEVICE and
# bitmap=NAME[:GRANULARITY]:persistent.
#
# Proves that:
#  1. a persistent bitmap without metadata=, an unknown bitmap flag and a
#     second metadata= are bad lines, reported as FILE:LINE;
#  2. the generator binds the unit to the metadata device's unit too;
#  3. "tab start" creates the device with metadata_dev in its table, the
#     persistent bitmap (with its granularity) beside an in-memory one;
#  4. after writes, "tab stop" and "tab start" again, the persistent
#     bitmap is back with its bits and generation (it is not added again:
#     it came with the table), the in-memory one is new and empty; a second
#     start finds the device active.

. "$(dirname -- "$0")/lib.sh"

origin='' meta=''
cbw_setup 64
cbw_require_cbwctl
cbw_require_cmds jq
cbw_loop_create origin 16
cbw_loop_create meta 1
name=$(cbw_name tab)
cbw_dm_adopt "$name"
errf=$CBW_WORK/stderr

run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

esc()
{
	local s=${1//-/\\x2d}

	printf '%s\n' "${s//\//-}"
}

"$CBWCTL" metadata format "$meta" --origin "$origin" >/dev/null ||
	cbw_bail "metadata format failed"
tab=$CBW_WORK/cbwtab
cat >"$tab" <<EOF
$name $origin metadata=$meta,bitmap=p:4K:persistent,bitmap=m
${name}x $origin bitmap=q:persistent
${name}y $origin metadata=$meta,bitmap=q:64K:weird
${name}z $origin metadata=$meta,metadata=$meta
EOF

# 1. bad lines
run tab start --tab "$tab"
cbw_expect_eq "1 the bad lines are reported" \
	"cbwctl: $tab:2: bitmap 'q' is persistent: it needs metadata=DEVICE
cbwctl: $tab:3: bitmap 'q': 'weird' is not 'persistent'
cbwctl: $tab:4: option metadata is given twice" "$err"
cbw_expect_eq "1 the good line is created, exit 1 for the bad ones" \
	"1|$name: created" "$rc|$out"

# 2. the generator
units=$CBW_WORK/units
mkdir -p "$units"
CBWTAB=$tab "$CBWCTL" tab generate "$units" 2>/dev/null || true
unit="$units/cbw@$(esc "$name").service"
md_unit="$(esc "${meta#/}").device"
cbw_expect_eq "2 the unit binds to the metadata device" \
	"BindsTo=$md_unit|After=$md_unit" \
	"$(grep -x "BindsTo=$md_unit\|After=$md_unit" "$unit" | paste -sd '|')"

# 3. the device
devno=$(printf '%d:%d' "0x$(stat -L -c %t "$meta")" "0x$(stat -L -c %T "$meta")")
cbw_expect_eq "3 the table names the metadata device" "yes" \
	"$(dmsetup table "$name" | grep -q " 2 metadata_dev $devno\$" && echo yes)"
bitmaps()
{
	"$CBWCTL" --json bitmap list "$name" |
		jq -r '.bitmaps[] | "\(.name) \(.granularity) \(.persistent)"' |
		sort | paste -sd '|'
}
cbw_expect_eq "3 a persistent bitmap beside an in-memory one" \
	"m 65536 false|p 4096 true" "$(bitmaps)"

# 4. stop and start again
guest=$(cbw_dm_path "$name")
dd if=/dev/urandom of="$guest" bs=4K count=3 seek=10 oflag=direct \
	status=none
query()
{
	"$CBWCTL" --json bitmap query "$name" "$1" |
		jq -r '[.generation, .count] | join(" ")'
}
before=$(query p)
run tab stop --tab "$tab" "$name"
cbw_expect_eq "4 tab stop removes it" "0" "$rc"
run tab start --tab "$tab" "$name"
cbw_expect_eq "4 tab start creates it again" "0|$name: created" "$rc|$out"
cbw_expect_eq "4 p is back with its bits and generation" "$before" \
	"$(query p)"
cbw_expect_eq "4 m is new and empty" "0" "$(query m | cut -d' ' -f2)"
run tab start --tab "$tab" "$name"
cbw_expect_eq "4 a second start finds it active" "0|$name: active" \
	"$rc|$out"

cbw_done
