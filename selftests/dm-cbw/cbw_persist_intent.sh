#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The write-intent log of the persistent bitmaps: a crash loses no write.
#
# Proves that:
#  1. a write to a region is preceded by its intent bit on the metadata
#     device: right after the writes, before any writeback, the intent area
#     read from the device marks exactly the regions written;
#  2. a copy of the metadata device taken while in use (what a power cut
#     leaves: intent bits, no bitmap writeback yet) loads every persistent
#     bitmap consistent, with its generation, recording, and with every
#     write inside its bits; the disabled bitmap gets the marked regions
#     too; nothing outside the marked regions is dirty;
#  3. ordering: with the metadata device failing, a write to a region not
#     marked yet fails with EIO and leaves the origin unchanged, the log
#     says why; a write to a marked region still succeeds; once the
#     metadata device works again the same write succeeds and is marked;
#  4. checkpoints clear the intent bits of idle regions only: after a
#     suspend the regions written since the previous checkpoint stay
#     marked, after a second one (no write in between) none is;
#  5. a clean removal leaves no intent bit and a clean superblock, and the
#     bitmaps come back exact with their generations.

. "$(dirname -- "$0")/lib.sh"

origin=
origin2=
meta=
meta2=
cbw_setup 200
cbw_require_cbwctl
cbw_require_cmds jq python3 dmesg cmp
cbw_loop_create origin 64
cbw_loop_create origin2 64
cbw_loop_create meta 2
cbw_loop_create meta2 2
len=$(cbw_size "$origin")
name=$(cbw_name cbw)
name2=$(cbw_name cbw2)
mdev_name=$(cbw_name md)
mlen=$(cbw_size "$meta")
errf=$CBW_WORK/stderr
MiB=1024

# The metadata device of the cbw device: a dm device that can fail.
cbw_dm_create "$mdev_name" "0 $mlen linear $meta 0"
mdev=$(cbw_dm_path "$mdev_name")

table()
{
	printf '0 %s cbw %s - 128 2 metadata_dev %s\n' "$len" "$1" "$2"
}

# write OFFSET_KIB...: 4 KiB direct writes at these offsets; the status
# of the last one.
write()
{
	local off rc=0

	for off; do
		rc=0
		dd if=/dev/urandom of="$guest" bs=4K count=1 seek=$((off / 4)) \
			oflag=direct conv=notrunc status=none 2>"$errf" || rc=$?
	done
	return "$rc"
}

# intent DEV: the regions marked in the intent area of DEV, read directly.
intent()
{
	python3 - "$1" <<'EOF'
import os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
import mmap
buf = mmap.mmap(-1, 4096)
def block(n):
    os.preadv(fd, [buf], n * 4096)
    return bytes(buf)
sb = block(0)
origin, = struct.unpack_from('<Q', sb, 48)
region, intent_blocks = struct.unpack_from('<QQ', sb, 72)
nr = -(-origin // region)
per = (4096 - 16) * 8
marked = []
for b in range(intent_blocks):
    data = block(2 + b)[16:]
    for i in range(min(per, nr - b * per)):
        if data[i // 8] >> (i % 8) & 1:
            marked.append(b * per + i)
print(' '.join(map(str, marked)))
EOF
}

# state DEV NAME: "recording|inconsistent|generation"
state()
{
	"$CBWCTL" --json bitmap query "$1" "$2" |
		jq -r '[.recording, .inconsistent, .generation] | join("|")'
}

# extents DEV NAME: "start-end" byte ranges, one a line.
extents()
{
	"$CBWCTL" --json bitmap dump "$1" "$2" |
		jq -r '.extents[] | "\(.offset)-\(.offset + .length)"'
}

# covered DEV NAME OFFSET_KIB...: every 4 KiB write at OFFSET is inside the
# bitmap's extents; prints the offsets that are not.
uncovered()
{
	local dev=$1 bm=$2 off s e ok
	shift 2
	local ext
	ext=$(extents "$dev" "$bm") || { echo "no bitmap $bm"; return; }
	for off; do
		ok=
		while IFS=- read -r s e; do
			[[ -n $s ]] || continue
			if ((off * 1024 >= s && off * 1024 + 4096 <= e)); then
				ok=1
				break
			fi
		done <<<"$ext"
		[[ -n $ok ]] || printf '%s ' "$off"
	done
}

# outside DEV NAME REGION...: extents that leave the marked regions (1 MiB).
outside()
{
	local dev=$1 bm=$2 s e r ok ext
	shift 2
	ext=$(extents "$dev" "$bm") || { echo "no bitmap $bm"; return; }
	while IFS=- read -r s e; do
		[[ -n $s ]] || continue
		ok=
		for r; do
			if ((s >= r * 1048576 && e <= (r + 1) * 1048576)); then
				ok=1
				break
			fi
		done
		[[ -n $ok ]] || printf '%s-%s ' "$s" "$e"
	done <<<"$ext"
}

"$CBWCTL" metadata format "$mdev" --origin "$origin" --region-size 1M \
	>/dev/null || cbw_bail "metadata format failed"
cbw_dm_create "$name" "$(table "$origin" "$mdev")"
guest=$(cbw_dm_path "$name")
"$CBWCTL" bitmap add "$name" p --persistent --granularity 64K
"$CBWCTL" bitmap add "$name" q --persistent --disabled
gen_p=$(state "$name" p | cut -d'|' -f3)
gen_q=$(state "$name" q | cut -d'|' -f3)

# 1. the intent bits are on the device before the writes
offs=(3080 10240 41472 41476)
write "${offs[@]}"
cbw_expect_eq "1 the intent area marks the written regions" "3 10 40" \
	"$(intent "$mdev")"

# 2. a power cut: the metadata device as it is now
dd if="$mdev" of="$meta2" bs=64K iflag=direct oflag=direct status=none
cbw_dm_create "$name2" "$(table "$origin2" "$meta2")"
cbw_expect_eq "2 p loads consistent, recording, same generation" \
	"true|false|$gen_p" "$(state "$name2" p)"
cbw_expect_eq "2 every write is in p" "" \
	"$(uncovered "$name2" p "${offs[@]}")"
cbw_expect_eq "2 nothing outside the marked regions in p" "" \
	"$(outside "$name2" p 3 10 40)"
cbw_expect_eq "2 the disabled q stays disabled, same generation" \
	"false|false|$gen_q" "$(state "$name2" q)"
cbw_expect_eq "2 q gets the marked regions" "" \
	"$(uncovered "$name2" q "${offs[@]}")"
cbw_expect_eq "2 nothing outside the marked regions in q" "" \
	"$(outside "$name2" q 3 10 40)"
cbw_dm_remove "$name2"

# 3. ordering: no write reaches the origin before its intent bit
dd if="$origin" of="$CBW_WORK/before" bs=4K count=1 skip=$((20 * MiB / 4)) \
	iflag=direct status=none
dmsetup suspend "$mdev_name"
dmsetup load "$mdev_name" --table "0 $mlen error"
dmsetup resume "$mdev_name"
cbw_kmsg_mark
rc=0
write $((20 * MiB)) || rc=$?
cbw_expect_eq "3 a write to a new region fails" "1|yes" \
	"$rc|$(grep -q 'Input/output error' "$errf" && echo yes)"
dd if="$origin" of="$CBW_WORK/after" bs=4K count=1 skip=$((20 * MiB / 4)) \
	iflag=direct status=none
cbw_check "3 the origin is unchanged" cmp -s "$CBW_WORK/before" \
	"$CBW_WORK/after"
cbw_expect_eq "3 the log says the intent write failed" "yes" \
	"$(cbw_kmsg_since | grep -q 'cbw: .*write-intent' && echo yes)"
rc=0
write 3084 || rc=$?
cbw_expect_eq "3 a write to a marked region succeeds" 0 "$rc"
dmsetup suspend "$mdev_name"
dmsetup load "$mdev_name" --table "0 $mlen linear $meta 0"
dmsetup resume "$mdev_name"
rc=0
write $((20 * MiB)) || rc=$?
cbw_expect_eq "3 with the device back, the write succeeds" 0 "$rc"
cbw_expect_eq "3 and its region is marked" "20" \
	"$(intent "$mdev" | tr ' ' '\n' | grep -x 20)"
offs+=(3084 $((20 * MiB)) 3072 10240 20480 40960)

# 4. checkpoints clear idle regions.  A resume starts the 30 s of the
# periodic checkpoint again: none comes between the two below.
dmsetup suspend "$name"
dmsetup resume "$name"
write 3072 10240 20480 40960
dmsetup suspend "$name"
dmsetup resume "$name"
cbw_expect_eq "4 the first checkpoint keeps the regions written since" \
	"3 10 20 40" "$(intent "$mdev")"
dmsetup suspend "$name"
dmsetup resume "$name"
cbw_expect_eq "4 the second clears the idle ones" "" "$(intent "$mdev")"
cbw_expect_eq "4 the bitmap keeps every write" "" \
	"$(uncovered "$name" p "${offs[@]}")"
write 50000
cbw_expect_eq "4 a new write marks its region again" "48" "$(intent "$mdev")"
offs+=(50000)

# 5. clean removal
dump_p=$("$CBWCTL" --json bitmap dump "$name" p | jq -c .extents)
cbw_dm_remove "$name"
cbw_expect_eq "5 a clean removal leaves no intent bit" "" "$(intent "$mdev")"
cbw_expect_eq "5 and a clean superblock" "clean" \
	"$("$CBWCTL" --json metadata check "$mdev" | jq -r .state)"
cbw_dm_create "$name" "$(table "$origin" "$mdev")"
cbw_expect_eq "5 p comes back exact" "$dump_p|true|false|$gen_p" \
	"$("$CBWCTL" --json bitmap dump "$name" p | jq -c .extents)|$(state "$name" p)"
cbw_dm_remove "$name"

cbw_done
