#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The metadata device: cbwctl metadata format and check, the metadata_dev
# table argument, and the refusal of every metadata device that is not
# exactly right.
#
# Proves that:
#  1. "cbwctl metadata format" writes a format that "metadata check"
#     accepts (text and --json: origin size, region size, clean, no
#     bitmaps), refuses a device that is too small for the origin, refuses
#     one that holds dm-cbw metadata unless --force (which makes a new
#     UUID), and refuses one that a table uses;
#  2. a cbw table with metadata_dev loads, passes I/O, shows the argument
#     in its table line, with or without a COW device, and cbwctl snapshot
#     start and stop keep it;
#  3. a table is refused, with its own message in the kernel log, when the
#     metadata device is not formatted, has a flipped byte in its
#     superblock, directory or intent area, holds a valid block at the
#     wrong place, has another version, belongs to another origin, is
#     smaller than its format, is the origin, or is missing; "metadata
#     check" reports the same damage with exit status 1; and a refused
#     metadata device is never written (its bytes are unchanged).

. "$(dirname -- "$0")/lib.sh"

origin=
other=
cow=
meta=
bad=
small=
cbw_setup 128
cbw_require_cbwctl
cbw_require_cmds jq python3 dmesg cmp
cbw_loop_create origin 32
cbw_loop_create other 16
cbw_loop_create cow 32
cbw_loop_create meta 1
cbw_loop_create bad 1
len=$(cbw_size "$origin")
name=$(cbw_name cbw)
errf=$CBW_WORK/stderr

# tiny_loop VAR BYTES [FILL]: a loop device of BYTES, its start copied
# from FILL.
tiny_loop()
{
	local file=$CBW_WORK/tiny$RANDOM.img dev

	truncate -s "$2" -- "$file"
	if [[ -n ${3:-} ]]; then
		dd if="$3" of="$file" bs=4K count=$(($2 / 4096)) conv=notrunc \
			status=none
	fi
	dev=$(losetup --find --show -- "$file")
	cbw_defer cbw_loop_remove "$dev"
	printf -v "$1" '%s' "$dev"
}

# run ARGS...: runs cbwctl; sets out (stdout), err (stderr), rc.
run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

# md_edit DEV OP [ARGS]: changes DEV in place (python, see below).
md_edit()
{
	python3 - "$@" <<'EOF'
import os, struct, sys

def crc32c(crc, data):
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc

dev, op = sys.argv[1], sys.argv[2]
fd = os.open(dev, os.O_RDWR)
if op == "flip":                        # flip OFFSET: invert one byte
    off = int(sys.argv[3])
    b = os.pread(fd, 1, off)
    os.pwrite(fd, bytes([b[0] ^ 0xFF]), off)
elif op == "copy-block":                # copy-block FROM TO: misplace a block
    blk = os.pread(fd, 4096, int(sys.argv[3]) * 4096)
    os.pwrite(fd, blk, int(sys.argv[4]) * 4096)
elif op == "version":                   # version N: resealed superblock
    blk = bytearray(os.pread(fd, 4096, 0))
    blk[24:28] = struct.pack("<I", int(sys.argv[3]))
    blk[0:4] = b"\0\0\0\0"
    csum = crc32c(~0 & 0xFFFFFFFF, bytes(blk))
    blk[0:4] = struct.pack("<I", csum)
    os.pwrite(fd, bytes(blk), 0)
os.fsync(fd)
os.close(fd)
EOF
	blockdev --flushbufs "$1"
}

# refused DESC MSG TABLE: the table is refused with "cbw: MSG" logged.
refused()
{
	local desc=$1 msg=$2 table=$3 rc=0

	cbw_kmsg_mark
	dmsetup create "$name" --table "$table" 2>/dev/null || rc=$?
	if ((rc == 0)); then
		_cbw_dm_live[$name]=1
		cbw_dm_remove "$name"
		cbw_fail "$desc: the table was accepted"
		return
	fi
	if cbw_kmsg_since | grep -qF "cbw: $msg"; then
		cbw_pass "$desc: refused with '$msg'"
	else
		cbw_fail "$desc: no '$msg' in the kernel log"
		cbw_kmsg_since | tail -n 5 | cbw_info
	fi
}

# unchanged DESC DEV FILE: DEV still holds what FILE holds.
unchanged()
{
	blockdev --flushbufs "$2"
	cbw_check "$1: the metadata device was not written" \
		cmp -s -n 1048576 "$2" "$3"
}

table()
{
	printf '0 %s cbw %s %s 128 %s\n' "$len" "$origin" "$1" "$2"
}

# 1. format and check
run metadata format "$meta" --origin "$origin"
cbw_expect_eq "1 format exits 0" 0 "$rc"
run --json metadata check "$meta"
cbw_expect_eq "1 check --json: ok, clean, sizes, no bitmaps" \
	"0|true|clean|$((len * 512))|67108864|0|1048576" \
	"$rc|$(jq -r '[.ok, .state, .origin_size, .region_size,
		(.bitmaps | length), .size] | join("|")' <<<"$out")"
uuid=$(jq -r .uuid <<<"$out")
run metadata check "$meta" --origin "$origin"
cbw_expect_eq "1 check --origin of the right origin exits 0" 0 "$rc"
run metadata format "$meta" --origin "$origin"
cbw_expect_eq "1 format refuses dm-cbw metadata without --force" \
	"1|cbwctl: '$meta' already holds dm-cbw metadata (uuid $uuid): --force formats it again, and its bitmaps are lost" \
	"$rc|$err"
run --json metadata format "$meta" --origin "$origin" --force --region-size 1M
cbw_expect_eq "1 format --force --region-size 1M: a new UUID, 1M regions" \
	"0|true|1048576" \
	"$rc|$(jq -r --arg u "$uuid" '[.uuid != $u, .region_size] | join("|")' \
		<<<"$out")"
run metadata format "$meta" --origin "$origin" --force
tiny_loop small 12288
run metadata format "$small" --origin "$cow"
cbw_expect_eq "1 format refuses a device too small for the origin" \
	"1|cbwctl: Metadata device '$small' is too small: an origin of $len sectors needs at least 16K" \
	"$rc|$err"
run metadata format "$bad" --origin "$bad"
cbw_expect_eq "1 format refuses the origin as metadata device" \
	"1|cbwctl: The metadata device must not be the origin" "$rc|$err"

# 2. a table with metadata_dev
devno=$(stat -c '%t:%T' "$meta")
devno=$((16#${devno%:*})):$((16#${devno#*:}))
cbw_dm_create "$name" "$(table - "2 metadata_dev $meta")"
cbw_expect_eq "2 the table line shows metadata_dev" \
	"- 128 2 metadata_dev $devno" \
	"$(dmsetup table "$name" | cut -d' ' -f5-)"
guest=$(cbw_dm_path "$name")
cbw_check "2 writes pass through" \
	dd if=/dev/urandom of="$guest" bs=64K count=16 oflag=direct status=none
run metadata format "$meta" --origin "$origin" --force
cbw_expect_eq "2 format refuses a metadata device in use" \
	"1|cbwctl: Cannot open metadata device '$meta': Device or resource busy (a table or a mount uses it)" \
	"$rc|$err"
run snapshot start "$name" --cow "$cow"
cbw_expect_eq "2 snapshot start keeps metadata_dev" \
	"0|128 2 metadata_dev $devno" \
	"$rc|$(dmsetup table "$name" | cut -d' ' -f6-)"
cbw_check_fails "2 snapshot start loaded the COW device" \
	test "$(dmsetup table "$name" | cut -d' ' -f5)" = -
run snapshot stop "$name"
cbw_expect_eq "2 snapshot stop keeps metadata_dev" \
	"0|- 128 2 metadata_dev $devno" \
	"$rc|$(dmsetup table "$name" | cut -d' ' -f5-)"
cbw_dm_remove "$name"
cbw_check "2 the metadata device is still clean after the tables" \
	"$CBWCTL" metadata check "$meta"

# 3. refusals; "bad" is the damaged copy of "meta"
good=$CBW_WORK/good.img
dd if="$meta" of="$good" bs=64K status=none
fresh()
{
	dd if="$good" of="$bad" bs=64K conv=fsync status=none
	blockdev --flushbufs "$bad"
}

dd if=/dev/zero of="$bad" bs=64K count=16 conv=fsync status=none
refused "3 unformatted" "Metadata device is not formatted for dm-cbw" \
	"$(table - "2 metadata_dev $bad")"
run metadata check "$bad"
cbw_expect_eq "3 check: unformatted" \
	"1|cbwctl: $bad: Metadata device is not formatted for dm-cbw" "$rc|$err"

check_damage()
{
	local desc=$1 msg=$2 check_msg=$3 copy=$CBW_WORK/damaged.img

	dd if="$bad" of="$copy" bs=64K status=none
	refused "3 $desc" "$msg" "$(table - "2 metadata_dev $bad")"
	unchanged "3 $desc" "$bad" "$copy"
	run metadata check "$bad"
	cbw_expect_eq "3 check: $desc" "1|$check_msg" \
		"$rc|$(grep -oF -m1 "$check_msg" <<<"$err" || true)"
}

fresh
md_edit "$bad" flip 100
check_damage "flipped superblock byte" "Metadata superblock is corrupt" \
	"Metadata superblock is corrupt (checksum mismatch)"
fresh
md_edit "$bad" flip 4496
check_damage "flipped directory byte" "Metadata directory is corrupt" \
	"Metadata directory is corrupt (checksum mismatch)"
fresh
md_edit "$bad" flip 9000
check_damage "flipped intent byte" "Metadata intent area is corrupt" \
	"Metadata intent area is corrupt: block 2 fails its checksum"
fresh
md_edit "$bad" copy-block 1 2
check_damage "a valid block at the wrong place" \
	"Metadata intent area is corrupt" \
	"Metadata intent area is corrupt: block 2 fails its checksum"
fresh
md_edit "$bad" version 2
check_damage "version 2" "Unsupported metadata version" \
	"Unsupported metadata version 2"

run metadata format "$bad" --origin "$other" --force
refused "3 formatted for another origin" \
	"Metadata device belongs to another origin" \
	"$(table - "2 metadata_dev $bad")"
run metadata check "$bad" --origin "$origin"
cbw_expect_eq "3 check --origin: another origin" \
	"1|cbwctl: $bad: Metadata device belongs to another origin: it was formatted for $(cbw_size "$other") sectors, '$origin' has $len" \
	"$rc|$err"

tiny_loop small 16384 "$good"
refused "3 smaller than its format" "Metadata device is too small" \
	"$(table - "2 metadata_dev $small")"
run metadata check "$small"
cbw_expect_eq "3 check: smaller than its format" \
	"1|cbwctl: $small: Metadata device is too small: the format has 256 blocks, the device 4" \
	"$rc|$err"

fresh
refused "3 the origin as metadata device" \
	"Metadata device must differ from the origin and COW devices" \
	"$(table - "2 metadata_dev $origin")"
refused "3 the COW device as metadata device" \
	"Metadata device must differ from the origin and COW devices" \
	"$(table "$cow" "2 metadata_dev $cow")"
refused "3 a missing metadata device" "Error opening metadata device" \
	"$(table - "2 metadata_dev /dev/nonexistent")"
refused "3 metadata_dev without a device" "metadata_dev needs a device" \
	"$(table - "1 metadata_dev")"
refused "3 metadata_dev twice" "Duplicate optional argument" \
	"$(table - "4 metadata_dev $bad metadata_dev $bad")"

cbw_dm_create "$name" "$(table "$cow" "2 metadata_dev $bad")"
cbw_pass "3 a table with a COW and a good metadata device loads"
cbw_dm_remove "$name"

cbw_done
