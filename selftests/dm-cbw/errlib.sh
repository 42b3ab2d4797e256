# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Helpers of the copy-before-write failure tests (cbw_cbw_errors.sh,
# cbw_copy_hardening.sh), sourced after lib.sh.  They expect $work (a
# tmpfs work directory), $base (the origin's initial content) and $C (the
# chunk size in sectors).

ERRIO=${CBW_ERRIO:-$CBW_SELFTEST_DIR/cbw-errio.py}
BAD_KMSG='BUG:|WARNING:|Oops|general protection|KASAN|UBSAN|lockdep|'
BAD_KMSG+='possible circular|possible recursive|list_add corruption|'
BAD_KMSG+='list_del corruption|Call Trace|blocked for more than|'
BAD_KMSG+='refcount_t:|use-after-free|double-free|soft lockup'

# $work: a tmpfs work directory of the test; the kernel log starts empty.
ce_setup_work()
{
	work=$CBW_WORKROOT/$CBW_TEST.$$
	mkdir -p -- "$work"
	cbw_defer rmdir -- "$work"
	mount -t tmpfs -o size=256m,mode=0700 "$CBW_PREFIX-tmpfs" "$work"
	cbw_defer umount -l "$work"
	dmesg -C 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Helpers: everything made in a scope is removed by ce_scope_end (and by the
# exit trap if the test dies).
# ---------------------------------------------------------------------------
ce_nr=0
ce_undo=()

ce_loop_del()
{
	local back

	back=$(losetup -n -O BACK-FILE "$1" 2>/dev/null) || return 0
	[[ $back == "$2"* ]] || return 0
	losetup -d "$1" 2>/dev/null || true
}

ce_dm_del()
{
	local i

	dmsetup info "$1" >/dev/null 2>&1 || return 0
	dmsetup resume "$1" >/dev/null 2>&1 || true
	for i in 1 2 3 4 5 6 7 8 9 10; do
		dmsetup remove "$1" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	cbw_info "cannot remove $1"
}

# ce_loop VAR MIB: a loop device over a new sparse file.
ce_loop()
{
	local file dev

	ce_nr=$((ce_nr + 1))
	file=$work/l$ce_nr.img
	truncate -s "${2}M" -- "$file"
	dev=$(losetup --find --show -- "$file")
	cbw_defer ce_loop_del "$dev" "$file"
	ce_undo+=("ce_loop_del $dev $file")
	printf -v "$1" '%s' "$dev"
}

# ce_dm SHORT TABLE: creates dm device $CBW_NAME_PREFIX-SHORT.
ce_dm()
{
	local name=$CBW_NAME_PREFIX-$1

	dmsetup create "$name" --table "$2"
	cbw_defer ce_dm_del "$name"
	ce_undo+=("ce_dm_del $name")
}

ce_dev()
{
	printf '/dev/mapper/%s-%s\n' "$CBW_NAME_PREFIX" "$1"
}

ce_scope_end()
{
	local i

	for ((i = ${#ce_undo[@]} - 1; i >= 0; i--)); do
		eval "${ce_undo[i]}"
	done
	ce_undo=()
}

# Field N of the cbw status line after "<start> <len> cbw".
ce_status()
{
	dmsetup status "$CBW_NAME_PREFIX-$1" | awk -v f="$2" '{ print $(f + 3) }'
}

ce_state() { ce_status "$1" 2; }
ce_error() { ce_status "$1" 8; }

ce_events()
{
	dmsetup info -c --noheadings -o events "$CBW_NAME_PREFIX-$1"
}

# ce_w DEV OFFSET LENGTH SRCFILE: prints ok or the errno name.
ce_w() { python3 "$ERRIO" write "$@"; }
# ce_r DEV OFFSET LENGTH DSTFILE: prints ok or the errno name.
ce_r() { python3 "$ERRIO" read "$@"; }

# ce_same FILE1 OFF1 FILE2 OFF2 LENGTH: byte ranges are equal.
ce_same()
{
	cmp -s -n "$5" -i "$2:$4" -- "$1" "$3"
}

# Bytes OFFSET..OFFSET+LENGTH of a device, read around the cache.
ce_dump()
{
	dd if="$1" of="$4" bs=4096 skip=$(($2 / 4096)) count=$(($3 / 4096)) \
		iflag=direct status=none
}

ce_kmsg_clean()
{
	local bad

	bad=$(dmesg 2>/dev/null | grep -E "$BAD_KMSG" || true)
	if [[ -z $bad ]]; then
		cbw_pass "$1: kernel log clean"
	else
		dmesg | tail -n 60 | cbw_info
		cbw_fail "$1: kernel log clean"
	fi
}

# ce_origin MIB: $origin is a loop device filled with $base.
ce_origin()
{
	ce_loop origin "$1"
	dd if="$base" of="$origin" bs=1M count="$1" oflag=direct status=none
}

# ce_stack POLICY COW_DEV SECTORS [TIMEOUT_MS [ORIGIN_DEV]]: a cbw device
# "cbw" over $origin (or ORIGIN_DEV) and its access device "acc"; sets
# $guest and $access.
ce_stack()
{
	local policy=$1 cowdev=$2 sz=$3 timeout=${4:-0} odev=${5:-$origin}
	local args="2 on_cbw_error $policy"

	((timeout == 0)) || args="4 on_cbw_error $policy cbw_timeout_ms $timeout"
	ce_dm cbw "0 $sz cbw $odev $cowdev $C $args"
	guest=$(ce_dev cbw)
	ce_dm acc "0 $sz cbw-access $guest"
	access=$(ce_dev acc)
}
