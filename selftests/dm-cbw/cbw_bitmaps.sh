#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Dirty bitmaps of a cbw device, managed with cbwctl.
#
# Proves, with the writes of QEMU's iotest 257 (64 MiB device, 64 KiB
# granules: full, partial-left, partial-right, straddling and adjacent
# writes), that each group marks exactly the granules 257 expects (6, 7 and
# 8 of them; 10, 12, 14 and 15 for the unions, counted in bytes as QEMU
# does: 393216 for 6) at exactly the expected offsets, that writes made
# before a bitmap exists, writes while it is disabled and reads mark
# nothing, and that the status line lists the bitmaps.
#
# Then: clear, enable and disable; merge (also of bitmaps of different
# granularities: a source bit marks every target granule it overlaps);
# remove; a bitmap named as snapshot_bitmap by a loaded but not resumed
# table is busy (remove, clear, enable, disable and merging into it are
# refused with QEMU's message) until the inactive table is dropped; bitmaps
# survive table reloads and snapshot start and stop, and disappear with the
# device.

. "$(dirname -- "$0")/lib.sh"

G=65536
origin=
cow=
cbw_setup 160
cbw_require_cbwctl
cbw_loop_create origin 64
cbw_loop_create cow 64
name=$(cbw_name cbw)
len=$(cbw_size "$origin")
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")

# A cbwctl call that must work for the test to go on.
ctl()
{
	"$CBWCTL" "$@" >/dev/null || cbw_bail "cbwctl $* failed"
}

# expect_error DESCRIPTION STATUS MESSAGE ARGS...: cbwctl ARGS fails with
# exit STATUS and "cbwctl: MESSAGE" as the first line on standard error.
expect_error()
{
	local desc=$1 want_rc=$2 want=$3 err rc=0

	shift 3
	err=$("$CBWCTL" "$@" 2>&1 >/dev/null) || rc=$?
	cbw_expect_eq "$desc" "$want_rc cbwctl: $want" "$rc ${err%%$'\n'*}"
}

# write OFFSET LENGTH: one O_DIRECT write of LENGTH bytes at byte OFFSET.
write()
{
	dd if=/dev/zero of="$guest" bs="$2" count=1 seek="$1" \
		oflag=direct,seek_bytes conv=notrunc status=none
}

# writes OFFSET:LENGTH...
writes()
{
	local w

	for w; do
		write $((${w%:*})) $((${w#*:}))
	done
}

# Fills count[NAME], gran[NAME], rec[NAME] and busy[NAME] from
# "cbwctl --bytes bitmap list"; order lists the names.
declare -A count gran rec busy
order=()
load()
{
	local out n g c r b

	out=$("$CBWCTL" --bytes bitmap list "$name") ||
		cbw_bail "cbwctl bitmap list $name failed"
	count=() gran=() rec=() busy=() order=()
	while read -r n g c r b _; do
		[[ $n != NAME ]] || continue
		count[$n]=$c gran[$n]=$g rec[$n]=$r busy[$n]=$b
		order+=("$n")
	done <<<"$out"
}

# counts_are DESCRIPTION NAME=BYTES...: after load.
counts_are()
{
	local desc=$1 want=() got=() kv

	shift
	for kv; do
		want+=("$kv")
		got+=("${kv%%=*}=${count[${kv%%=*}]:-missing}")
	done
	cbw_expect_eq "$desc" "${want[*]}" "${got[*]}"
}

# extents NAME: "OFFSET+LENGTH..." of "cbwctl bitmap dump", in bytes.
extents()
{
	local out off length rest list=()

	out=$("$CBWCTL" --bytes bitmap dump "$name" "$1") ||
		cbw_bail "cbwctl bitmap dump $name $1 failed"
	while read -r off length rest; do
		[[ $off =~ ^[0-9]+$ && -z $rest ]] || continue
		list+=("$off+$length")
	done <<<"$out"
	echo "${list[*]}"
}

# granules SIZE N...: the extents of granules N (ascending) of SIZE bytes.
granules()
{
	local size=$1 start=-1 prev=-2 n out=()

	shift
	for n in "$@" -1; do
		if ((n != prev + 1)); then
			((start < 0)) ||
				out+=("$((start * size))+$(((prev - start + 1) * size))")
			start=$n
		fi
		prev=$n
	done
	echo "${out[*]}"
}

# The bitmaps of the status line: "name:granularity:bytes...".
status_bitmaps()
{
	local -a f
	local i n out=()

	read -r -a f <<<"$(dmsetup status "$name")"
	n=${f[11]}
	for ((i = 0; i < n; i++)); do
		out+=("${f[12 + 3 * i]}:${f[13 + 3 * i]}:${f[14 + 3 * i]}")
	done
	echo "$n ${out[*]}"
}

# What the status line should say after load.
expected_status()
{
	local n out=()

	for n in "${order[@]}"; do
		out+=("$n:${gran[$n]}:${count[$n]}")
	done
	echo "${#order[@]} ${out[*]}"
}

# ---------------------------------------------------------------------------
# (a) The write pattern of iotest 257
# ---------------------------------------------------------------------------
W0=(0x0000000:0x10000 0x0100000:0x10000 0x2000000:0x10000 0x3ff0000:0x10000)
W1=(0x0000000:0x10000 0x00f8000:0x10000 0x2008000:0x10000 0x3fe0000:0x10000)
W2=(0x0010000:0x10000 0x00e8000:0x10000 0x2018000:0x10000 0x3fe0000:0x20000)
W3=(0x0010000:0x30000 0x00d8000:0x10000 0x2028000:0x10000 0x3fc0000:0x10000)

# Write #0 happens before any bitmap exists.  A bitmap is added when it
# starts recording: gN records group N only, uNM groups N and M, bitmap0
# all of them.
writes "${W0[@]}"
for b in bitmap0 g1 u12 u13; do
	ctl bitmap add "$name" "$b" --granularity 64K
done
ctl bitmap add "$name" never --granularity 64K --disabled
load
counts_are "new bitmaps are empty; Write #0 came before them" \
	bitmap0=0 g1=0 u12=0 never=0
cbw_expect_eq "added bitmaps record unless added disabled" "yes yes no" \
	"${rec[bitmap0]} ${rec[g1]} ${rec[never]}"

writes "${W1[@]}"
load
counts_are "Write #1: 6 granules (393216 bytes)" \
	bitmap0=393216 g1=393216 u12=393216 u13=393216 never=0
cbw_expect_eq "Write #1 marks granules 0, 15-16, 512-513, 1022" \
	"$(granules $G 0 15 16 512 513 1022)" "$(extents g1)"

ctl bitmap disable "$name" g1
ctl bitmap disable "$name" u13
ctl bitmap add "$name" g2 --granularity 64K
ctl bitmap add "$name" u23 --granularity 64K
writes "${W2[@]}"
load
counts_are "Write #2: 7 granules (458752 bytes); unions of 10 (655360)" \
	g2=458752 u23=458752 bitmap0=655360 u12=655360 g1=393216 u13=393216
cbw_expect_eq "Write #2 marks granules 1, 14-15, 513-514, 1022-1023" \
	"$(granules $G 1 14 15 513 514 1022 1023)" "$(extents g2)"

ctl bitmap disable "$name" g2
ctl bitmap disable "$name" u12
ctl bitmap enable "$name" u13
ctl bitmap add "$name" g3 --granularity 64K
writes "${W3[@]}"
ctl bitmap disable "$name" g3
load
counts_are "Write #3: 8 granules (524288 bytes)" g3=524288
counts_are "unions: #1+#2 10, #2+#3 12, #1+#3 14, all 15 granules" \
	u12=655360 u23=786432 u13=917504 bitmap0=983040
counts_are "a bitmap that stayed disabled marked nothing" never=0
cbw_expect_eq "Write #3 marks granules 1-3, 13-14, 514-515, 1020" \
	"$(granules $G 1 2 3 13 14 514 515 1020)" "$(extents g3)"
cbw_expect_eq "all writes mark the 15 granules of 257" \
	"$(granules $G 0 1 2 3 13 14 15 16 512 513 514 515 1020 1022 1023)" \
	"$(extents bitmap0)"
cbw_expect_eq "the status line lists the bitmaps with the same counts" \
	"$(expected_status)" "$(status_bitmaps)"

dd if="$guest" of=/dev/null bs=1M iflag=direct status=none
load
counts_are "reading the whole device marks nothing" \
	bitmap0=983040 g1=393216 g2=458752 g3=524288 never=0

# The unions again, by merging the per-group bitmaps.
ctl bitmap add "$name" m12 --disabled
ctl bitmap merge "$name" m12 g1 g2
ctl bitmap add "$name" m123 --disabled
ctl bitmap merge "$name" m123 g1 g2 g3
load
counts_are "merge g1 g2 = 10 granules, merge g1 g2 g3 = 15" \
	m12=655360 m123=983040
cbw_expect_eq "the merge of all groups has the extents bitmap0 recorded" \
	"$(extents bitmap0)" "$(extents m123)"

# ---------------------------------------------------------------------------
# (b) clear, enable, disable, merge across granularities, remove
# ---------------------------------------------------------------------------
ctl bitmap clear "$name" bitmap0
load
counts_are "clear empties the bitmap" bitmap0=0
cbw_expect_eq "a cleared bitmap has no extents and still records" ":yes" \
	"$(extents bitmap0):${rec[bitmap0]}"
write $((5 * G + 4096)) 4096
ctl bitmap enable "$name" never
write $((7 * G)) 512
ctl bitmap disable "$name" never
write $((9 * G)) 512
load
counts_are "after clear, enable and disable: each marks only what it saw" \
	bitmap0=196608 never=65536 g1=393216
cbw_expect_eq "a re-enabled bitmap marked the write it saw, no other" \
	"$(granules $G 7)" "$(extents never)"

# Sources of other granularities: s4 (4 KiB) sees an 8 KiB write at 60 KiB
# (4 KiB granules 15 and 16, across the 64 KiB boundary); s1m (1 MiB) sees
# a 4 KiB write at 2.5 MiB (1 MiB granule 2).
ctl bitmap add "$name" s4 --granularity 4K
write $((60 * 1024)) 8192
ctl bitmap disable "$name" s4
ctl bitmap add "$name" s1m --granularity 1M
write $((2560 * 1024)) 4096
ctl bitmap disable "$name" s1m
for b in t64:64K t64b:64K t1m:1M t4:4K; do
	ctl bitmap add "$name" "${b%:*}" --granularity "${b#*:}" --disabled
done
ctl bitmap merge "$name" t64 s4
ctl bitmap merge "$name" t64b s1m
ctl bitmap merge "$name" t1m s4
ctl bitmap merge "$name" t4 g1
load
counts_are "the sources" s4=8192 s1m=1048576
counts_are "4K into 64K: 2 granules; 1M into 64K: 16; 4K into 1M: 1; 64K into 4K: same bytes" \
	t64=131072 t64b=1048576 t1m=1048576 t4=393216
cbw_expect_eq "4K bits into 64K granules: every granule they overlap" \
	"0+131072" "$(extents t64)"
cbw_expect_eq "a 1M bit into 64K granules: all 16 of them" \
	"2097152+1048576" "$(extents t64b)"
ctl bitmap merge "$name" t64 s1m t64
load
counts_are "merging more sources (and the target itself) adds up" \
	t64=1179648

ctl bitmap remove "$name" g1
expect_error "a removed bitmap is gone" 1 "Dirty bitmap 'g1' not found" \
	bitmap query "$name" g1
load
cbw_expect_eq "bitmap list no longer shows it" "" "${count[g1]:-}"

# ---------------------------------------------------------------------------
# Busy: named by a loaded table that is not resumed yet
# ---------------------------------------------------------------------------
busy_msg="Bitmap 'g2' is currently in use by another operation and cannot be used"
cbw_check_fails "loading a table naming a missing snapshot_bitmap fails" \
	dmsetup load "$name" --table "0 $len cbw $origin $cow 128 2 snapshot_bitmap nosuch"
cbw_check "load a table with snapshot_bitmap g2 (not resumed)" \
	dmsetup load "$name" --table "0 $len cbw $origin $cow 128 2 snapshot_bitmap g2"
load
cbw_expect_eq "g2 is busy, the others are not" "yes no" "${busy[g2]} ${busy[g3]}"
expect_error "remove of a busy bitmap is refused" 1 "$busy_msg" bitmap remove "$name" g2
expect_error "clear of a busy bitmap is refused" 1 "$busy_msg" bitmap clear "$name" g2
expect_error "enable of a busy bitmap is refused" 1 "$busy_msg" bitmap enable "$name" g2
expect_error "disable of a busy bitmap is refused" 1 "$busy_msg" bitmap disable "$name" g2
expect_error "merging into a busy bitmap is refused" 1 "$busy_msg" \
	bitmap merge "$name" g2 g3
cbw_check "a busy bitmap can still be merged from" \
	"$CBWCTL" bitmap merge "$name" t1m g2
load
counts_are "the refused operations changed nothing" g2=458752
cbw_check "dmsetup clear drops the inactive table" dmsetup clear "$name"
load
cbw_expect_eq "g2 is no longer busy" no "${busy[g2]}"
cbw_check "clear works again" "$CBWCTL" bitmap clear "$name" g2
cbw_check "merge into it works again" "$CBWCTL" bitmap merge "$name" g2 g3
load
counts_are "g2 now holds g3's bits" g2=524288

# ---------------------------------------------------------------------------
# Bitmaps belong to the device
# ---------------------------------------------------------------------------
load
before=$(expected_status)
cbw_reload "$name" "$(dmsetup table "$name")"
load
cbw_expect_eq "bitmaps survive a table reload" "$before" "$(expected_status)"
cbw_check "cbwctl snapshot start" "$CBWCTL" snapshot start "$name" --cow "$cow"
load
cbw_expect_eq "bitmaps survive snapshot start" "$before" "$(expected_status)"
write $((100 * G)) 4096
cbw_check "cbwctl snapshot stop" "$CBWCTL" snapshot stop "$name"
load
counts_are "bitmaps record during a snapshot" \
	bitmap0=458752 never=65536 g2=524288
names=${order[*]}
cbw_check "snapshot start with --bitmap g2" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --bitmap g2
load
cbw_expect_eq "the snapshot bitmap is not busy once the snapshot started" \
	no "${busy[g2]}"
cbw_check "snapshot stop" "$CBWCTL" snapshot stop "$name"
load
cbw_expect_eq "bitmaps survive snapshot stop" "$names" "${order[*]}"

cbw_dm_remove "$name"
cbw_create "$name" "$origin" 128
load
cbw_expect_eq "a new device of the same name has no bitmaps" 0 "${#order[@]}"
cbw_expect_eq "and its status line lists none" "0 " "$(status_bitmaps)"

cbw_done
