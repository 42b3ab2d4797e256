#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl bitmap thaw, and the JSON error object of a failed --json command.
#
# Proves that:
#  1. a bitmap left frozen by a freeze_bitmap table, after its snapshot
#     ended, is thawed by "cbwctl bitmap thaw": with --merge it keeps its
#     frozen bits and gains the writes since the freeze, without it holds
#     only those writes; it records again, is no longer busy (it can be
#     removed), and a bitmap that is not frozen is refused;
#  2. with --json, a failed command prints {"error": MESSAGE, "errno": N}
#     on standard output (the message as on standard error, errno 0 for
#     usage errors), and nothing without --json;
#  3. the man page's "version" JSON example is what cbwctl prints;
#  4. a "backup begin --bitmap" whose access device cannot be created (its
#     DM UUID is taken) ends its snapshot and leaves the bitmap as it was:
#     not frozen, not busy, its bits kept.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
cbw_setup 100
cbw_require_cbwctl
cbw_require_cmds jq
cbw_loop_create origin 16
cbw_loop_create cow 16
name=$(cbw_name cbw)
len=$(cbw_size "$origin")
cbw_create "$name" "$origin" 128
guest=$(cbw_dm_path "$name")
errf=$CBW_WORK/stderr

# run ARGS...: runs cbwctl; sets out (stdout), err (stderr), rc.
run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

# wr OFFSET_KIB: writes 64 KiB at OFFSET_KIB to the cbw device.
wr()
{
	dd if=/dev/urandom of="$guest" bs=64K count=1 seek=$(($1 / 64)) \
		oflag=direct status=none
}

# query JQ_EXPR: a field of "cbwctl --json bitmap query DEV b0".
query()
{
	"$CBWCTL" --json bitmap query "$name" b0 | jq -r "$1"
}

# freeze: a snapshot with freeze_bitmap b0, 64K written during it, ended.
freeze()
{
	cbw_reload "$name" "0 $len cbw $origin $cow 128 2 freeze_bitmap b0" &&
		wr 1024 && cbw_snapshot_end "$name"
}

# ---------------------------------------------------------------------------
# 1. bitmap thaw
# ---------------------------------------------------------------------------
cbw_check "bitmap add b0" "$CBWCTL" bitmap add "$name" b0
wr 0
cbw_check "freeze b0 with a snapshot, then end it" freeze
cbw_expect_eq "b0 is still frozen after the snapshot ended" \
	"true true 65536 65536" \
	"$(query '"\(.frozen) \(.busy) \(.count) \(."successor-count")"')"

run bitmap thaw "$name" b0 --merge --json
cbw_expect_eq "thaw --merge succeeds" 0 "$rc"
cbw_expect_eq "thaw --merge prints the bitmap: frozen bits plus the writes since" \
	"b0 false false true 131072" \
	"$(jq -r '"\(.name) \(.frozen) \(.busy) \(.recording) \(.count)"' <<<"$out")"
wr 2048
cbw_expect_eq "b0 records again" 196608 "$(query .count)"

cbw_check "freeze b0 again" freeze
run bitmap thaw "$name" b0
cbw_expect_eq "thaw succeeds, silently" "0||" "$rc|$out|$err"
cbw_expect_eq "thaw without --merge: only the writes since the freeze" \
	"false 65536" "$(query '"\(.frozen) \(.count)"')"

run bitmap thaw "$name" b0
cbw_expect_eq "thaw of a bitmap that is not frozen fails" \
	"1|cbwctl: Bitmap 'b0' is not frozen" "$rc|$err"
run bitmap thaw "$name" nosuch
cbw_expect_eq "thaw of a missing bitmap fails" \
	"1|cbwctl: Dirty bitmap 'nosuch' not found" "$rc|$err"
run bitmap thaw "$name" b0 --bogus
cbw_expect_eq "thaw with an unknown option is a usage error" 2 "$rc"
run bitmap thaw --help
cbw_expect_eq "thaw --help shows the usage" \
	"0|Usage: cbwctl bitmap thaw DEV NAME [--merge]" "$rc|${out%%$'\n'*}"
cbw_check "the thawed bitmap can be removed" \
	"$CBWCTL" bitmap remove "$name" b0

# ---------------------------------------------------------------------------
# 2. JSON error objects
# ---------------------------------------------------------------------------
# json_error DESC STATUS ERROR ERRNO ARGS...
json_error()
{
	local desc=$1 want_rc=$2 want_msg=$3 want_errno=$4

	shift 4
	run "$@"
	cbw_expect_eq "$desc: exit status" "$want_rc" "$rc"
	cbw_expect_eq "$desc: JSON error object on stdout" \
		"{\"error\":\"$want_msg\",\"errno\":$want_errno}" "$out"
	cbw_expect_eq "$desc: the message on stderr" "cbwctl: $want_msg" \
		"$(head -n 1 "$errf")"
}

json_error "missing bitmap" 1 "Dirty bitmap 'nosuch' not found" 2 \
	--json bitmap query "$name" nosuch
cbw_check "bitmap add b0" "$CBWCTL" bitmap add "$name" b0
json_error "--json after the arguments" 1 "Bitmap 'b0' is not frozen" 22 \
	bitmap thaw "$name" b0 --json
cbw_check "freeze b0" freeze
json_error "busy bitmap" 1 \
	"Bitmap 'b0' is currently in use by another operation and cannot be used" \
	16 --json bitmap remove "$name" b0
cbw_check "thaw b0" "$CBWCTL" bitmap thaw "$name" b0
json_error "missing device" 1 \
	"Device 'cbw-no-such-device' not found (list devices with: dmsetup ls)" 2 \
	--json snapshot info cbw-no-such-device
json_error "usage error" 2 "bitmap add: missing argument NAME" 0 \
	--json bitmap add "$name"
json_error "unknown command" 2 "unknown command 'frobnicate'" 0 \
	--json frobnicate
run bitmap query "$name" nosuch
cbw_expect_eq "without --json, nothing on stdout" "1|" "$rc|$out"

# ---------------------------------------------------------------------------
# 3. The man page's version example
# ---------------------------------------------------------------------------
man_page=$(cbw_cbwctl_man_page)
if [[ -z $man_page ]]; then
	cbw_skip "man page: the version example is the real output" \
		"the cbwctl man page is not installed"
else
	man_version=$(zcat -f -- "$man_page" | sed -n '/^{"cbwctl"/,/}$/p' |
		jq -c . 2>&1) || true
	cbw_expect_eq "man page: the version example is the real output" \
		"$("$CBWCTL" --json version | jq -c .)" "$man_version"
fi

# ---------------------------------------------------------------------------
# 4. A backup begin that fails after its snapshot started
# ---------------------------------------------------------------------------
access=$(cbw_name acc)
taken=$(cbw_name taken)
cbw_check "bitmap add b1 for a failed begin" "$CBWCTL" bitmap add "$name" b1
wr 0
# Another device holds the access device's DM UUID (the name is free, so
# cbwctl's checks pass and the snapshot starts).
cbw_dm_create "$taken" "0 8 error" --uuid "CBW-access-$access"
cbw_dm_adopt "$access"	# should a begin below leave it
run backup begin "$name" --sync incremental --bitmap b1 \
	--bitmap-mode on-success --cow "$cow" --access "$access"
# (libdevmapper says why first, on a line of its own; the errno cbwctl
# gets from it depends on how libdevmapper was set up: EBUSY or EIO)
cbw_expect_eq "backup begin fails when its access device cannot be created" \
	"1|cbwctl: Cannot create access device '$access'" \
	"$rc|$(grep -o "^cbwctl: Cannot create access device '[^']*'" <<<"$err")"
cbw_expect_eq "the failed begin left no snapshot" none \
	"$("$CBWCTL" --json snapshot info "$name" | jq -r .state)"
cbw_expect_eq "the failed begin left b1 not frozen, not busy, its bits kept" \
	"false false 65536" \
	"$("$CBWCTL" --json bitmap query "$name" b1 |
		jq -r '"\(.frozen) \(.busy) \(.count)"')"
cbw_check "remove the device with the UUID" cbw_dm_remove "$taken"
cbw_check "a backup begin works again" "$CBWCTL" backup begin "$name" \
	--sync incremental --bitmap b1 --bitmap-mode on-success --cow "$cow" \
	--access "$access"
cbw_check "and can be cancelled" "$CBWCTL" backup cancel "$name"

cbw_done
