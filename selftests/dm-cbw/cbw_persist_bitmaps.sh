#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Persistent dirty bitmaps on a metadata device.
#
# Proves that:
#  1. "bitmap add --persistent" makes a bitmap that is persistent, with a
#     non-zero generation, beside in-memory bitmaps; without a metadata
#     device it is refused, and a metadata device without room refuses it;
#  2. round trip: after writes, removing the device and creating it again
#     with the same metadata device brings back every persistent bitmap
#     (not the in-memory one) with identical bits ("bitmap dump"), name,
#     granularity, enabled state and generation; the metadata device is
#     clean in between; the same after a module reload;
#  3. "bitmap clear" gives a new generation, which survives a round trip;
#  4. a bitmap frozen by a snapshot start, with writes after the freeze,
#     comes back after a removal with the frozen bits and those writes;
#  5. a flipped byte in a bitmap's block: "metadata check" names it, the
#     bitmap loads inconsistent (new generation, not recording, no bits)
#     while the others load exact; dump, enable, merge and a snapshot
#     restricted to it fail with "Bitmap 'NAME' is inconsistent and cannot
#     be used"; clear makes it usable again;
#  6. an unclean shutdown (a copy of the metadata device taken while in
#     use) loads every persistent bitmap consistent, with its generation
#     and at least its bits (the write-intent log adds the regions written
#     lately; cbw_persist_intent tests it);
#  7. a device keeps its metadata device: a table without it, or with
#     another one, is refused, and a metadata device that one cbw device
#     uses is refused to another.

. "$(dirname -- "$0")/lib.sh"

origin=
origin2=
cow=
meta=
meta2=
tiny=
cbw_setup 200
cbw_require_cbwctl
cbw_require_cmds jq python3 dmesg
cbw_loop_create origin 64
cbw_loop_create origin2 64
cbw_loop_create cow 64
cbw_loop_create meta 2
cbw_loop_create meta2 2
len=$(cbw_size "$origin")
name=$(cbw_name cbw)
errf=$CBW_WORK/stderr

# run ARGS...: runs cbwctl; sets out (stdout), err (stderr), rc.
run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

table()
{
	printf '0 %s cbw %s %s 128 %s\n' "$len" "${3:-$origin}" "$1" "$2"
}

create()
{
	cbw_dm_create "$name" "$(table - "2 metadata_dev ${1:-$meta}")"
	guest=$(cbw_dm_path "$name")
}

# write OFFSET_KIB...: 4 KiB direct writes at these offsets.
write()
{
	local off

	for off; do
		dd if=/dev/urandom of="$guest" bs=4K count=1 seek=$((off / 4)) \
			oflag=direct conv=notrunc status=none
	done
}

# state NAME: "recording|persistent|inconsistent|generation|count"
state()
{
	"$CBWCTL" --json bitmap query "$name" "$1" |
		jq -r '[.recording, .persistent, .inconsistent, .generation,
			.count] | join("|")'
}

gen()
{
	"$CBWCTL" --json bitmap query "$name" "$1" | jq -r .generation
}

dump()
{
	"$CBWCTL" --json bitmap dump "$name" "$1" | jq -c '[.granularity, .extents]'
}

# md_flip DEV OFFSET: inverts one byte of DEV.
md_flip()
{
	python3 - "$@" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
b = os.pread(fd, 1, off)
os.pwrite(fd, bytes([b[0] ^ 0xFF]), off)
os.fsync(fd)
os.close(fd)
EOF
	blockdev --flushbufs "$1"
}

# refused DESC MSG TABLE: the table is refused with "cbw: MSG" logged.
refused()
{
	local desc=$1 msg=$2 dm=$CBW_NAME_PREFIX-refused rc=0

	cbw_kmsg_mark
	dmsetup create "$dm" --table "$3" 2>/dev/null || rc=$?
	if ((rc == 0)); then
		_cbw_dm_live[$dm]=1
		cbw_dm_remove "$dm"
		cbw_fail "$desc: the table was accepted"
	elif cbw_kmsg_since | grep -qF "cbw: $msg"; then
		cbw_pass "$desc: refused with '$msg'"
	else
		cbw_fail "$desc: no '$msg' in the kernel log"
		cbw_kmsg_since | tail -n 5 | cbw_info
	fi
}

"$CBWCTL" metadata format "$meta" --origin "$origin" >/dev/null ||
	cbw_bail "metadata format failed"

# 1. persistent bitmaps beside an in-memory one
create
run bitmap add "$name" p0 --persistent
cbw_expect_eq "1 add --persistent p0" 0 "$rc"
"$CBWCTL" bitmap add "$name" p1 --persistent --granularity 4K
"$CBWCTL" bitmap add "$name" p2 --persistent --disabled
"$CBWCTL" bitmap add "$name" m0
st=$(state p0)
cbw_expect_eq "1 p0: recording, persistent, consistent, empty" \
	"true|true|false|0" "$(cut -d'|' -f1-3,5 <<<"$st")"
cbw_expect_cmp "1 p0 has a non-zero generation" "$(gen p0)" -ne 0
cbw_expect_eq "1 m0: not persistent, generation 0" "false|0" \
	"$(state m0 | cut -d'|' -f2,4)"
run bitmap list "$name"
cbw_expect_eq "1 bitmap list shows inconsistent and generation" \
	"NAME  GRANULARITY  COUNT  RECORDING  BUSY  PERSISTENT  FROZEN  SUCCESSOR  INCONSISTENT  GENERATION" \
	"$(head -n1 <<<"$out")"

write 0 4 1000 4096 30000 65532
dumps=$(for b in p0 p1 p2; do dump $b; done)
gens=$(for b in p0 p1 p2; do gen $b; done)
cbw_expect_cmp "1 p0 recorded the writes" "$(state p0 | cut -d'|' -f5)" -gt 0
cbw_expect_eq "1 p2 (disabled) recorded nothing" 0 "$(state p2 | cut -d'|' -f5)"

# 2. round trip
cbw_dm_remove "$name"
run --json metadata check "$meta"
cbw_expect_eq "2 after the removal the metadata is clean, with p0 p1 p2" \
	"0|true|clean|p0 p1 p2|$(tr '\n' ' ' <<<"$gens" | sed 's/ $//')" \
	"$rc|$(jq -r '[.ok, .state, ([.bitmaps[].name] | join(" ")),
		([.bitmaps[].generation] | map(tostring) | join(" "))] |
		join("|")' <<<"$out")"
create
cbw_expect_eq "2 the persistent bitmaps are back, not m0" "p0 p1 p2" \
	"$("$CBWCTL" --json bitmap list "$name" | jq -r '[.bitmaps[].name] | join(" ")')"
cbw_expect_eq "2 identical bits" "$dumps" "$(for b in p0 p1 p2; do dump $b; done)"
cbw_expect_eq "2 same generations" "$gens" "$(for b in p0 p1 p2; do gen $b; done)"
cbw_expect_eq "2 p0 records, p2 does not" "true|false" \
	"$(state p0 | cut -d'|' -f1)|$(state p2 | cut -d'|' -f1)"
write 8192 8196
dumps=$(for b in p0 p1 p2; do dump $b; done)

if [[ -n ${CBW_MODULE:-} && -f $CBW_MODULE ]] &&
	[[ -z $(dmsetup ls --target cbw 2>/dev/null | grep -v "^$name" | grep -v 'No devices') ]]; then
	cbw_dm_remove "$name"
	cbw_check "2 rmmod dm-cbw" rmmod dm-cbw
	cbw_check "2 insmod dm-cbw" insmod "$CBW_MODULE"
	create
	cbw_expect_eq "2 after a module reload: identical bits" "$dumps" \
		"$(for b in p0 p1 p2; do dump $b; done)"
	cbw_expect_eq "2 after a module reload: same generations" "$gens" \
		"$(for b in p0 p1 p2; do gen $b; done)"
else
	cbw_skip "2 module reload" "CBW_MODULE not set or other cbw devices exist"
fi

# 3. clear resets the generation
old=$(gen p1)
"$CBWCTL" bitmap clear "$name" p1
new=$(gen p1)
cbw_expect_eq "3 clear: empty, a new non-zero generation" "0|yes|yes" \
	"$(state p1 | cut -d'|' -f5)|$([[ $new != "$old" ]] && echo yes)|$([[ $new != 0 ]] && echo yes)"
cbw_dm_remove "$name"
create
cbw_expect_eq "3 the new generation survives a round trip" "$new|0" \
	"$(gen p1)|$(state p1 | cut -d'|' -f5)"

# 4. a frozen bitmap: frozen bits and the writes after the freeze
before=$(dump p0)
dmsetup load "$name" --table "$(table "$cow" "4 freeze_bitmap p0 metadata_dev $meta")"
dmsetup suspend "$name"
dmsetup resume "$name"
write 40000
cbw_dm_remove "$name"
create
after=$("$CBWCTL" --json bitmap dump "$name" p0 | jq -c '.extents')
cbw_expect_eq "4 removed while frozen: the frozen bits are kept" "" \
	"$(jq -c --argjson a "$after" '.[1] - $a | .[]' <<<"$before")"
cbw_expect_eq "4 removed while frozen: the write after the freeze is in" \
	"yes" "$(jq -r 'map(select(.offset <= 40960000 and .offset + .length > 40960000)) |
		if length > 0 then "yes" else "no" end' <<<"$after")"
cbw_expect_eq "4 it is no longer frozen" "false|true" \
	"$("$CBWCTL" --json bitmap query "$name" p0 | jq -r '[.frozen, .recording] | join("|")')"

# 5. a damaged bitmap block
p0_dump=$(dump p0)
p1_gen=$(gen p1)
cbw_dm_remove "$name"
first=$("$CBWCTL" --json metadata check "$meta" |
	jq -r '.bitmaps[] | select(.name == "p1") | .first_block')
md_flip "$meta" $((first * 4096 + 100))
run metadata check "$meta"
cbw_expect_eq "5 check names the damaged block" \
	"1|cbwctl: $meta: Bitmap 'p1' is corrupt: block $first fails its checksum" \
	"$rc|$err"
create
st=$(state p1)
cbw_expect_eq "5 p1 loads inconsistent, not recording, empty" \
	"false|true|true|0" "$(cut -d'|' -f1-3,5 <<<"$st")"
cbw_check_fails "5 p1 got a new generation" test "$(cut -d'|' -f4 <<<"$st")" = "$p1_gen"
cbw_expect_eq "5 p0 loads exact" "$p0_dump|false" \
	"$(dump p0)|$(state p0 | cut -d'|' -f3)"
msg="Bitmap 'p1' is inconsistent and cannot be used"
run bitmap dump "$name" p1
cbw_expect_eq "5 dump of p1 fails" "1|cbwctl: $msg" "$rc|$err"
run bitmap enable "$name" p1
cbw_expect_eq "5 enable of p1 fails" "1|cbwctl: $msg" "$rc|$err"
run bitmap merge "$name" p0 p1
cbw_expect_eq "5 merge from p1 fails" "1|cbwctl: $msg" "$rc|$err"
run snapshot start "$name" --cow "$cow" --bitmap p1
cbw_expect_eq "5 a snapshot restricted to p1 fails" "1|cbwctl: $msg" "$rc|$err"
cbw_kmsg_mark
cbw_check_fails "5 a table with snapshot_bitmap p1 is refused" \
	dmsetup load "$name" --table "$(table "$cow" "4 snapshot_bitmap p1 metadata_dev $meta")"
cbw_expect_eq "5 the message says why" "yes" \
	"$(cbw_kmsg_since | grep -qF 'cbw: Dirty bitmap is inconsistent' && echo yes)"
run backup "$name" --sync incremental --bitmap p1 --bitmap-mode on-success \
	--cow "$cow" --target "$CBW_WORK/inc.img"
cbw_expect_eq "5 backup with p1 fails" "1|cbwctl: backup: $msg" "$rc|$err"
run bitmap clear "$name" p1
cbw_expect_eq "5 clear makes p1 usable: consistent, recording (it was)" \
	"0|true|true|false|0" "$rc|$(state p1 | cut -d'|' -f1-3,5)"
write 12
cbw_expect_cmp "5 p1 records again" "$(state p1 | cut -d'|' -f5)" -gt 0

# 6. unclean shutdown: a copy of the metadata device while in use
dmsetup suspend "$name"
dd if="$meta" of="$meta2" bs=64K conv=fsync status=none
dmsetup resume "$name"
run --json metadata check "$meta2"
cbw_expect_eq "6 the copy is in use, otherwise sound" "0|true|in-use" \
	"$rc|$(jq -r '[.ok, .state] | join("|")' <<<"$out")"
gens=$(for b in p0 p1 p2; do gen $b; done)
counts=$(for b in p0 p1 p2; do state $b | cut -d'|' -f5; done)
cbw_dm_remove "$name"
create "$meta2"
cbw_expect_eq "6 every persistent bitmap loads consistent" \
	"false false false" \
	"$("$CBWCTL" --json bitmap list "$name" | jq -r '[.bitmaps[].inconsistent] | join(" ")')"
cbw_expect_eq "6 with the same generations" "$gens" \
	"$(for b in p0 p1 p2; do gen $b; done)"
lost=
for b in p0 p1 p2; do
	read -r before
	after=$(state $b | cut -d'|' -f5)
	((after >= before)) || lost+="$b "
done <<<"$counts"
cbw_expect_eq "6 and no bit lost" "" "$lost"

# 7. a device keeps its metadata device; one device per metadata device
dmsetup suspend "$name"
cbw_check_fails "7 a table without the metadata device is refused" \
	dmsetup load "$name" --table "$(table - "")"
cbw_check_fails "7 a table with another metadata device is refused" \
	dmsetup load "$name" --table "$(table - "2 metadata_dev $meta")"
dmsetup resume "$name"
cbw_kmsg_mark
dmsetup load "$name" --table "$(table - "")" 2>/dev/null || true
cbw_expect_eq "7 the message says why" "yes" \
	"$(cbw_kmsg_since | grep -qF 'cbw: The device has a metadata device: the table must name it' && echo yes)"
refused "7 the metadata device of another cbw device" \
	"Metadata device is in use by another cbw device" \
	"$(table - "2 metadata_dev $meta2" "$origin2")"
cbw_dm_remove "$name"

# 1 (end). refusals of add --persistent
cbw_dm_create "$name" "$(table - "")"
run bitmap add "$name" px --persistent
cbw_expect_eq "1 add --persistent without a metadata device" \
	"1|cbwctl: Device '$name' has no metadata device: a persistent bitmap needs one (table argument metadata_dev)" \
	"$rc|$err"
cbw_dm_remove "$name"
tiny=$CBW_WORK/tiny.img
truncate -s 16K "$tiny"
tiny=$(losetup --find --show -- "$tiny")
cbw_defer cbw_loop_remove "$tiny"
"$CBWCTL" metadata format "$tiny" --origin "$origin" >/dev/null
create "$tiny"
run bitmap add "$name" q0 --persistent
cbw_expect_eq "1 the first bitmap fits in the smallest metadata device" 0 "$rc"
run bitmap add "$name" q1 --persistent
cbw_expect_eq "1 a second one does not" \
	"1|cbwctl: The metadata device of '$name' has no room for bitmap 'q1' (a larger --granularity takes less)" \
	"$rc|$err"
cbw_dm_remove "$name"

cbw_done
