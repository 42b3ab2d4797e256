#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl, the dm-cbw command-line tool: every subcommand.
#
# Proves the success output of each subcommand, as an aligned table and as
# JSON (checked with jq; the bitmap objects have exactly the keys of QEMU's
# BlockDirtyInfo), and its failures: the exact QEMU wordings (existing
# bitmap, bad granularity, empty name, missing bitmap, busy bitmap), bad
# names, unknown and non-cbw devices, usage errors with exit status 2,
# refused snapshot starts and stops.  Also that --json may come before or
# after the subcommand, that --help works for every subcommand, that
# snapshot start freezes a mounted filesystem (its unsynced data is in the
# snapshot), creates the access device node read-only (or read-write) and
# that snapshot stop removes it, that bitmap dump lists a 64 TiB device in
# pieces of one extent, and that the man page renders.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
cbw_setup 200
cbw_require_cbwctl
MAN_PAGE=$(cbw_cbwctl_man_page)
cbw_loop_create origin 64
cbw_loop_create cow 64
name=$(cbw_name cbw)
lin_name=$(cbw_name lin)
acc_name=$(cbw_name acc)
len=$(cbw_size "$origin")
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
cbw_dm_create "$lin_name" "0 $len linear $origin 0"
# cbwctl creates the access device; removed before the cbw device.
cbw_defer cbw_dm_remove "$acc_name"
acc=/dev/mapper/$acc_name
errf=$CBW_WORK/stderr
have_jq=0
! command -v jq >/dev/null 2>&1 || have_jq=1

devno()
{
	printf '%d:%d\n' "$(stat -L -c '0x%t' "$1")" "$(stat -L -c '0x%T' "$1")"
}
origin_devno=$(devno "$origin")
cow_devno=$(devno "$cow")

# run ARGS...: runs cbwctl; sets out (stdout), errl (stderr lines), rc.
run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	mapfile -t errl <"$errf"
}

# expect_ok DESCRIPTION ARGS...: exit 0, nothing on stderr.
expect_ok()
{
	local desc=$1

	shift
	run "$@"
	if ((rc == 0)) && ((${#errl[@]} == 0)); then
		cbw_pass "$desc"
		return 0
	fi
	cbw_info "cbwctl $* exited with $rc"
	[[ -z ${errl[*]} ]] || cbw_info "${errl[@]}"
	cbw_fail "$desc"
}

# expect_error DESCRIPTION STATUS MESSAGE ARGS...: exit STATUS and the line
# "cbwctl: MESSAGE" on stderr.
expect_error()
{
	local desc=$1 want_rc=$2 want="cbwctl: $3" line found=

	shift 3
	run "$@"
	for line in "${errl[@]}"; do
		[[ $line != "$want" ]] || found=$line
	done
	cbw_expect_eq "$desc" "$want_rc $want" "$rc ${found:-${errl[0]:-}}"
}

# expect_line DESCRIPTION REGEX: some line of $out matches.
expect_line()
{
	local line

	while IFS= read -r line; do
		if [[ $line =~ $2 ]]; then
			cbw_pass "$1"
			return 0
		fi
	done <<<"$out"
	cbw_info "no line of the output matches '$2':"
	cbw_info <<<"$out"
	cbw_fail "$1"
}

# json_is DESCRIPTION FILTER EXPECTED: jq -r FILTER of $out is EXPECTED.
# The checks are collected and made by json_verify, with one jq for all
# (jq starts slowly in the test VM).
json_descs=()
json_filters=()
json_wants=()
json_is()
{
	printf '%s\n' "$out" >>"$CBW_WORK/json"
	json_descs+=("$1")
	json_filters+=("$2")
	json_wants+=("$3")
}

json_verify()
{
	local prog='' got i rc=0
	local -a lines

	((${#json_descs[@]})) || return 0
	for i in "${!json_filters[@]}"; do
		prog+="${prog:+, }(\$d[$i] | (${json_filters[i]}) | tostring)"
	done
	if ((have_jq)); then
		got=$(jq -rn "[inputs] as \$d | $prog" <"$CBW_WORK/json" 2>&1) || rc=$?
		((rc == 0)) || cbw_info "jq failed: $got"
		mapfile -t lines <<<"$got"
	fi
	for i in "${!json_descs[@]}"; do
		if ((!have_jq)); then
			cbw_skip "${json_descs[i]}" "jq is not installed"
		elif ((rc)); then
			cbw_fail "${json_descs[i]}"
		else
			cbw_expect_eq "${json_descs[i]}" "${json_wants[i]}" "${lines[i]:-}"
		fi
	done
	json_descs=() json_filters=() json_wants=()
	: >"$CBW_WORK/json"
}

# Keys and values of a bitmap object, for json_is.
BITMAP='(keys_unsorted | join(",")) + " " +
	([.name, .count, .granularity, .recording, .busy, .persistent, .frozen,
	  .["successor-count"], .inconsistent, .generation] |
	 map(tostring) | join(","))'
BITMAP_KEYS=name,count,granularity,recording,busy,persistent,frozen,successor-count,inconsistent,generation
EXTENTS='[.extents[] | "\(.offset)+\(.length)"] | join(" ")'

# write OFFSET LENGTH: one O_DIRECT write through the cbw device.
write()
{
	dd if=/dev/zero of="${3:-$guest}" bs="$2" count=1 seek="$1" \
		oflag=direct,seek_bytes conv=notrunc status=none
}

# ---------------------------------------------------------------------------
# Help and usage errors
# ---------------------------------------------------------------------------
run --help
cbw_expect_eq "cbwctl --help exits 0 and prints the usage" \
	"0 Usage: cbwctl [--json] [--bytes] COMMAND [ARGS...]" "$rc ${out%%$'\n'*}"
expect_line "cbwctl --help lists the subcommands" \
	'^  cbwctl snapshot access-map DEV '
for cmd in "bitmap add" "bitmap remove" "bitmap clear" "bitmap enable" \
	"bitmap disable" "bitmap merge" "bitmap list" "bitmap query" \
	"bitmap dump" "snapshot start" "snapshot stop" "snapshot info" \
	"snapshot access-map" version; do
	read -r -a words <<<"$cmd"
	run "${words[@]}" --help
	first=${out%%$'\n'*}
	[[ $first != "Usage: cbwctl $cmd "* ]] || first="Usage: cbwctl $cmd"
	cbw_expect_eq "cbwctl $cmd --help" "0 Usage: cbwctl $cmd" "$rc $first"
done
run bitmap --help
cbw_expect_eq "cbwctl bitmap --help" "0 Usage: cbwctl bitmap SUBCOMMAND ARGS... [OPTIONS]" \
	"$rc ${out%%$'\n'*}"
run help snapshot start
cbw_expect_eq "cbwctl help snapshot start" "0 Usage: cbwctl snapshot start DEV... --cow COWDEV" \
	"$rc ${out:0:48}"
run --version
cbw_expect_eq "cbwctl --version" 0 "$rc"
if [[ $out =~ ^cbwctl\ [0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	cbw_pass "cbwctl --version prints the version"
else
	cbw_fail "cbwctl --version prints the version ($out)"
fi

expect_error "no command" 2 "missing command"
expect_error "unknown command" 2 "unknown command 'frobnicate'" frobnicate
expect_error "missing subcommand" 2 "bitmap: missing subcommand" bitmap
expect_error "unknown subcommand" 2 "bitmap: unknown subcommand 'frob'" bitmap frob
expect_error "missing NAME" 2 "bitmap add: missing argument NAME" \
	bitmap add "$name"
cbw_expect_eq "a usage error shows the usage line" \
	"Usage: cbwctl bitmap add DEV NAME [--granularity SIZE] [--disabled] [--persistent]" \
	"${errl[1]:-}"
expect_error "missing SOURCE" 2 "bitmap merge: missing argument SOURCE..." \
	bitmap merge "$name" a
expect_error "extra argument" 2 "bitmap add: unexpected argument 'b'" \
	bitmap add "$name" a b
expect_error "unknown option" 2 "bitmap add: unknown option '--bogus'" \
	bitmap add "$name" a --bogus
expect_error "option without its value" 2 \
	"bitmap add: option '--granularity' needs a value" \
	bitmap add "$name" a --granularity
expect_error "a size that is not a number" 2 \
	"invalid size '12Q' for --granularity (use bytes or a number with K, M, G: 64K)" \
	bitmap add "$name" a --granularity 12Q
expect_error "--batch out of range" 2 "--batch takes a number from 1 to 4096" \
	bitmap dump "$name" a --batch 5000
expect_error "snapshot start without --cow" 2 \
	"snapshot start: --cow COWDEV is required" snapshot start "$name"
sources=()
for i in $(seq 65); do sources+=("s$i"); done
expect_error "more than 64 merge sources" 2 \
	"at most 64 source bitmaps can be merged at once (got 65)" \
	bitmap merge "$name" t "${sources[@]}"

# ---------------------------------------------------------------------------
# version
# ---------------------------------------------------------------------------
expect_ok "cbwctl version" version
expect_line "version names the control interface and its features" \
	'^dm-cbw control interface [0-9]+\.[0-9]+\.[0-9]+, features: bitmaps snapshot_bitmap freeze persistent$'
expect_ok "cbwctl --json version" --json version
json_is "version as JSON" \
	'(keys_unsorted | join(",")) + " " + (.features | join(","))' \
	"cbwctl,interface,features bitmaps,snapshot_bitmap,freeze,persistent"

json_verify

# ---------------------------------------------------------------------------
# Bitmaps
# ---------------------------------------------------------------------------
expect_ok "bitmap add" bitmap add "$name" b0
cbw_expect_eq "bitmap add prints nothing" "" "$out"
expect_ok "bitmap add --json --granularity 4K --disabled" \
	--json bitmap add "$name" b4 --granularity 4K --disabled
json_is "it prints the new bitmap with the keys of BlockDirtyInfo" "$BITMAP" \
	"$BITMAP_KEYS b4,0,4096,false,false,false,false,0,false,0"
expect_error "an existing name" 1 "Bitmap already exists: b0" \
	bitmap add "$name" b0
for g in 1000 256; do
	expect_error "--granularity $g" 1 \
		"Granularity must be power of 2 and at least 512" \
		bitmap add "$name" bad --granularity "$g"
done
expect_error "--granularity 4G" 1 "Granularity must be at most 2G" \
	bitmap add "$name" bad --granularity 4G
expect_error "empty name" 1 "Bitmap name cannot be empty" bitmap add "$name" ""
expect_error "name with a space" 1 \
	"Bitmap name must not contain white space or control characters: a b" \
	bitmap add "$name" "a b"
long=$(printf 'n%.0s' $(seq 64))
expect_error "64-byte name" 1 "Bitmap name too long (at most 63 bytes): $long" \
	bitmap add "$name" "$long"
nonascii=b$'\xc3\xa9'
expect_error "non-ASCII name" 1 "Bitmap name must be printable ASCII: $nonascii" \
	bitmap add "$name" "$nonascii"
expect_ok "63-byte name" bitmap add "$name" "${long:1}"
expect_ok "remove it" bitmap remove "$name" "${long:1}"
expect_error "unknown device" 1 \
	"Device 'nosuch' not found (list devices with: dmsetup ls)" \
	bitmap list nosuch
expect_error "a device-mapper device that is not a cbw device" 1 \
	"Device '$lin_name' is not a cbw device (load the dm-cbw module and create it with a cbw table)" \
	bitmap list "$lin_name"
expect_error "a block device that is not a device-mapper device" 1 \
	"'$origin' is not a device-mapper device (cbw devices are listed by: dmsetup ls --target cbw)" \
	bitmap list "$origin"
expect_error "remove a missing bitmap" 1 "Dirty bitmap 'zz' not found" \
	bitmap remove "$name" zz

write 0 65536
write $((1024 * 1024 - 32768)) 65536
expect_ok "bitmap list" bitmap list "$name"
cbw_expect_eq "bitmap list: header" \
	"NAME  GRANULARITY  COUNT  RECORDING  BUSY  PERSISTENT  FROZEN  SUCCESSOR  INCONSISTENT  GENERATION" "${out%%$'\n'*}"
expect_line "bitmap list: b0, 3 granules of 64K" '^b0    64K          192K   yes        no    no          no      -          no            -$'
expect_line "bitmap list: b4, disabled, empty" '^b4    4K           0      no         no    no          no      -          no            -$'
expect_ok "bitmap list --bytes" --bytes bitmap list "$name"
expect_line "--bytes prints bytes" '^b0 +65536 +196608 +yes +no +no +no +- +no +-$'
expect_ok "--json before the command" --json bitmap list "$name"
json1=$out
expect_ok "--json after the group" bitmap --json list "$name"
json2=$out
expect_ok "--json after the subcommand" bitmap list "$name" --json
cbw_expect_eq "--json gives the same output wherever it is" \
	"$json1$json1" "$json2$out"
json_is "bitmap list as JSON" \
	'.device + " " + ([.bitmaps[] | .name + ":" + (.count | tostring)] | join(" "))' \
	"$name b0:196608 b4:0"
json_is "bitmap list: objects with the keys of BlockDirtyInfo" \
	'[.bitmaps[] | keys_unsorted | join(",")] | unique | join(" ")' "$BITMAP_KEYS"

expect_ok "bitmap query" bitmap query "$name" b0
expect_line "bitmap query: one row" '^b0    64K          192K   yes        no    no          no      -          no            -$'
expect_ok "bitmap query --json" --json bitmap query "$name" b0
json_is "bitmap query as JSON" "$BITMAP" "$BITMAP_KEYS b0,196608,65536,true,false,false,false,0,false,0"
expect_error "query a missing bitmap" 1 "Dirty bitmap 'zz' not found" \
	bitmap query "$name" zz

expect_ok "bitmap enable --json" --json bitmap enable "$name" b4
json_is "enabled" '.recording' true
expect_ok "bitmap disable --json" --json bitmap disable "$name" b4
json_is "disabled" '.recording' false

expect_ok "bitmap dump" bitmap dump "$name" b0
cbw_expect_eq "bitmap dump: extents and total" \
	"OFFSET                LENGTH|0                     64K|960K                  128K|192K dirty in 2 extents (granularity 64K)" \
	"${out//$'\n'/|}"
expect_ok "bitmap dump --json" --json bitmap dump "$name" b0
json_is "bitmap dump as JSON" \
	'"\(.device) \(.name) \(.granularity) \(.offset) \(.length) \(.count) " + ('"$EXTENTS"')' \
	"$name b0 65536 0 $((len * 512)) 196608 0+65536 983040+131072"
expect_ok "bitmap dump --batch 1 --offset 64K --length 1M" \
	--json bitmap dump "$name" b0 --batch 1 --offset 64K --length 1M
json_is "extents are clipped to the range" "$EXTENTS" "983040+131072"
expect_error "offset not a multiple of 512" 1 \
	"Offset and length must be multiples of 512 bytes" \
	bitmap dump "$name" b0 --offset 1000
expect_error "offset beyond the end" 1 \
	"Offset 128M is beyond the end of the device (64M)" \
	bitmap dump "$name" b0 --offset 128M

expect_ok "bitmap merge --json (64K bits into a 4K bitmap)" \
	--json bitmap merge "$name" b4 b0
json_is "merge result" '"\(.name) \(.count)"' "b4 196608"
expect_error "merge into a missing bitmap" 1 "Dirty bitmap 'zz' not found" \
	bitmap merge "$name" zz b0
expect_error "merge from a missing bitmap" 1 "Dirty bitmap 'zz' not found" \
	bitmap merge "$name" b4 b0 zz

cbw_check "load a table naming b0 as snapshot_bitmap" \
	dmsetup load "$name" --table "0 $len cbw $origin $cow 128 2 snapshot_bitmap b0"
expect_error "a busy bitmap" 1 \
	"Bitmap 'b0' is currently in use by another operation and cannot be used" \
	bitmap clear "$name" b0
expect_ok "bitmap list while busy" bitmap list "$name"
expect_line "bitmap list shows it busy" '^b0 .* yes +yes +no +no +- +no +-$'
cbw_check "dmsetup clear" dmsetup clear "$name"

expect_ok "bitmap clear --json" --json bitmap clear "$name" b0
json_is "cleared" '"\(.count) \(.busy)"' "0 false"
expect_ok "bitmap remove --json" --json bitmap remove "$name" b4
cbw_expect_eq "bitmap remove --json prints {}" "{}" "$out"

json_verify

# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------
expect_ok "snapshot info without a snapshot" snapshot info "$name"
expect_line "state none" '^state: +none$'
expect_ok "snapshot info --json without a snapshot" --json snapshot info "$name"
json_is "state, COW and access devices as JSON" \
	'"\(.state) \(.cow) \(.bitmap) \(.access_devices | length)"' "none null null 0"
expect_error "access-map without a snapshot" 1 \
	"Device '$name' has no snapshot (start one with: cbwctl snapshot start $name --cow COWDEV)" \
	snapshot access-map "$name"
expect_error "stop without a snapshot" 1 "Device '$name' has no snapshot to stop" \
	snapshot stop "$name"
expect_error "--chunk 3K" 1 "Chunk size must be a power of 2 from 4K to 1G: 3K" \
	snapshot start "$name" --cow "$cow" --chunk 3K
expect_error "--chunk 2G" 1 "Chunk size must be a power of 2 from 4K to 1G: 2G" \
	snapshot start "$name" --cow "$cow" --chunk 2G
expect_error "--bitmap of a missing bitmap" 1 "Dirty bitmap 'nosuch' not found" \
	snapshot start "$name" --cow "$cow" --bitmap nosuch
expect_error "a missing COW device" 1 \
	"COW device '/dev/nosuch' not found: No such file or directory" \
	snapshot start "$name" --cow /dev/nosuch
expect_error "the origin as COW device" 1 \
	"The COW device must differ from the origin device ($origin_devno)" \
	snapshot start "$name" --cow "$origin"
expect_error "an access name that exists" 1 \
	"Device '$lin_name' already exists: choose another --access name" \
	snapshot start "$name" --cow "$cow" --access "$lin_name"
cbw_expect_eq "the refused starts left the table alone" \
	"0 $len cbw $origin_devno - 128" "$(dmsetup table "$name")"
expect_error "--on-cbw-error with an unknown policy" 2 \
	"invalid policy 'foo' for --on-cbw-error (use break_guest_write or break_snapshot)" \
	snapshot start "$name" --cow "$cow" --on-cbw-error foo
expect_error "--cbw-timeout that is not a number of milliseconds" 2 \
	"invalid time '-1' for --cbw-timeout (milliseconds, 0 for none)" \
	snapshot start "$name" --cow "$cow" --cbw-timeout -1
expect_ok "snapshot start with an error policy and a copy timeout" \
	--json snapshot start "$name" --cow "$cow" --on-cbw-error break_snapshot \
	--cbw-timeout 5000
cbw_expect_eq "the table carries the policy and the timeout" \
	"0 $len cbw $origin_devno $cow_devno 128 4 on_cbw_error break_snapshot cbw_timeout_ms 5000" \
	"$(dmsetup table "$name")"
json_is "snapshot start reports the policy and the timeout" \
	'"\(.state) \(.on_cbw_error) \(.cbw_timeout_ms)"' "active break_snapshot 5000"
expect_ok "snapshot stop after a start with options" snapshot stop "$name"
cbw_expect_eq "the stop loaded a table without a COW device" \
	"0 $len cbw $origin_devno - 128" "$(dmsetup table "$name")"

have_fs=0
if command -v mkfs.ext4 >/dev/null 2>&1 && modprobe -q ext4 2>/dev/null; then
	have_fs=1
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$guest"
	cbw_mount "$guest" "$CBW_WORK/live"
	echo "before the snapshot" >"$CBW_WORK/live/file"
fi

expect_ok "snapshot start --json --access" \
	--json snapshot start "$name" --cow "$cow" --access "$acc_name"
json_is "snapshot start prints the new state" \
	'"\(.state) \(.error) \(.chunk_size) \(.chunks_total) \(.chunks_accessible) \(.cow) \(.bitmap) \(.access_devices | join(","))"' \
	"active 0 65536 1024 1024 $cow_devno null $acc_name"
cbw_expect_eq "the access device node exists and is read-only" "b 1" \
	"$([[ -b $acc ]] && echo b) $(blockdev --getro "$acc")"
expect_error "start while a snapshot runs" 1 \
	"Device '$name' already has a snapshot (COW device $cow_devno): stop it first with: cbwctl snapshot stop $name" \
	snapshot start "$name" --cow "$cow"

if ((have_fs)); then
	echo "after the snapshot" >"$CBW_WORK/live/file"
	sync
	cbw_mount "$acc" "$CBW_WORK/snap" -o ro,noload -t ext4
	cbw_expect_eq "the suspend froze the filesystem: unsynced data is in the snapshot" \
		"before the snapshot" "$(cat "$CBW_WORK/snap/file")"
	expect_error "stop refuses while the access device is mounted" 1 \
		"Cannot remove access device '$acc_name': Device or resource busy (close what has it open, e.g. an NBD export, or pass --keep-access)" \
		snapshot stop "$name"
	cbw_umount "$CBW_WORK/snap"
else
	cbw_skip "the suspend froze the filesystem" "no mkfs.ext4 or ext4"
	cbw_skip "stop refuses while the access device is mounted" "no ext4"
fi

expect_ok "snapshot info" snapshot info "$name"
expect_line "snapshot info: state" '^state: +active$'
expect_line "snapshot info: chunk size" '^chunk size: +64K$'
expect_line "snapshot info: COW device" "^COW device: +$cow_devno\$"
expect_line "snapshot info: access device" "^access devices: +/dev/mapper/$acc_name\$"
expect_ok "snapshot info --json" --json snapshot info "$name"
json_is "snapshot info as JSON: all keys" 'keys_unsorted | join(",")' \
	"device,state,error,chunk_size,chunks_total,chunks_to_copy,chunks_copied,chunks_accessible,copies_in_flight,copies_failed,copies_timed_out,cow,bitmap,freeze_bitmap,on_cbw_error,cbw_timeout_ms,metadata_dev,access_devices"
json_is "counters add up" \
	'.chunks_to_copy + .chunks_copied + .copies_in_flight == .chunks_total' true
expect_ok "snapshot access-map" snapshot access-map "$name"
cbw_expect_eq "snapshot access-map: the whole device" \
	"OFFSET                LENGTH|0                     64M|64M accessible in 1 extents (chunk size 64K)" \
	"${out//$'\n'/|}"
expect_ok "snapshot access-map --json --offset 1M --length 128K" \
	--json snapshot access-map "$name" --offset 1M --length 128K
json_is "snapshot access-map as JSON" \
	'"\(.chunk_size) \(.offset) \(.length) \(.accessible) " + ('"$EXTENTS"')' \
	"65536 1048576 131072 131072 1048576+131072"

expect_ok "snapshot stop --json" --json snapshot stop "$name"
json_is "snapshot stop as JSON" \
	'"\(.device) \(.stopped) \(.state) " + (.removed_access_devices | join(","))' \
	"$name true active $acc_name"
cbw_check_fails "the access device is gone" dmsetup info "$acc_name"
cbw_expect_eq "the node is gone" "" "$([[ -e $acc ]] && echo exists)"
cbw_expect_eq "the table has no COW device again" \
	"0 $len cbw $origin_devno - 128" "$(dmsetup table "$name")"

expect_ok "snapshot start --access-rw --chunk 1M" \
	snapshot start "$name" --cow "$cow_devno" --chunk 1M --access "$acc_name" --access-rw
expect_line "text output: headline" "^Snapshot of '$name' started\\.$"
expect_line "text output: chunk size" '^chunk size: +1M$'
cbw_expect_eq "a read-write access device" 0 "$(blockdev --getro "$acc")"
expect_ok "snapshot stop" snapshot stop "$name"
stopped="Removed access device '$acc_name'.|Snapshot of '$name' stopped (state was active; chunks copied: "
if [[ ${out//$'\n'/|} =~ ^"$stopped"[0-9]+")."$ ]]; then
	cbw_pass "text output of stop"
else
	cbw_fail "text output of stop ($out)"
fi

cbw_check "snapshot start --access" \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --access "$acc_name"
expect_ok "snapshot stop --keep-access" snapshot stop "$name" --keep-access
err=$(dd if="$acc" of=/dev/null bs=4096 count=1 iflag=direct 2>&1) || true
if [[ $err == *"No data available"* ]]; then
	cbw_pass "the kept access device reads nothing"
else
	cbw_fail "the kept access device reads nothing ($err)"
fi
expect_ok "a second stop removes the kept access device" snapshot stop "$name"
cbw_expect_eq "and says so" "Removed access device '$acc_name'." "$out"
((!have_fs)) || cbw_umount "$CBW_WORK/live"

json_verify

# ---------------------------------------------------------------------------
# A 64 TiB device, listed one extent per ioctl
# ---------------------------------------------------------------------------
if cbw_have_target zero || modprobe -q dm-zero 2>/dev/null; then
	big=$((1 << 37))	# sectors: 64 TiB
	zero_name=$(cbw_name zero)
	big_name=$(cbw_name big)
	cbw_dm_create "$zero_name" "0 $big zero"
	cbw_dm_create "$big_name" "0 $big cbw $(cbw_dm_path "$zero_name") - 128"
	big_dev=$(cbw_dm_path "$big_name")
	run bitmap add "$big_name" tiny --granularity 512
	want="cbwctl: Bitmap 'tiny' would take 16G of kernel memory, more than half of the "
	if ((rc == 1)) && [[ ${errl[0]:-} == "$want"*" available (use a larger --granularity)" ]]; then
		cbw_pass "a bitmap larger than half the free memory is refused"
	else
		cbw_info "exit $rc: ${errl[*]}"
		cbw_fail "a bitmap larger than half the free memory is refused"
	fi
	expect_ok "a bitmap of 1M granules on a 64 TiB device" \
		bitmap add "$big_name" big --granularity 1M
	write 0 4096 "$big_dev"
	write $((1 << 45)) 4096 "$big_dev"
	write $(((1 << 46) - 4096)) 4096 "$big_dev"
	expect_ok "bitmap dump --batch 1 of 64 TiB" \
		--json bitmap dump "$big_name" big --batch 1
	json_is "three extents, at the start, the middle and the end" \
		'"\(.count) \(.length) " + ('"$EXTENTS"')' \
		"3145728 $((1 << 46)) 0+1048576 $((1 << 45))+1048576 $(((1 << 46) - (1 << 20)))+1048576"
	expect_ok "bitmap dump --offset 63T --bytes" \
		--bytes bitmap dump "$big_name" big --offset 63T
	expect_line "the last extent" "^$(((1 << 46) - (1 << 20))) +1048576\$"
	json_verify
	cbw_dm_remove "$big_name"
	cbw_dm_remove "$zero_name"
else
	cbw_skip "bitmap dump of a 64 TiB device" "no dm-zero target"
fi

# ---------------------------------------------------------------------------
# The man page
# ---------------------------------------------------------------------------
if ! command -v man >/dev/null 2>&1; then
	cbw_skip "man -l cbwctl.8 renders" "man is not installed"
elif [[ -z $MAN_PAGE ]]; then
	cbw_skip "man -l cbwctl.8 renders" "the cbwctl man page is not installed"
else
	page=$(MANWIDTH=80 man -l "$MAN_PAGE" 2>"$errf") || true
	mapfile -t errl <"$errf"
	case $page in
	*"CBWCTL(8)"*SYNOPSIS*"bitmap add DEV NAME"*"EXIT STATUS"*)
		cbw_expect_eq "man -l cbwctl.8 renders without warnings" "" "${errl[*]}" ;;
	*)
		cbw_info "man -l $MAN_PAGE gave:" "${page:0:300}" "${errl[@]}"
		cbw_fail "man -l cbwctl.8 renders" ;;
	esac
fi

cbw_done
