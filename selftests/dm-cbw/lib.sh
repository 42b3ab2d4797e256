# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# Shared helpers for the dm-cbw selftests. A test sources this file right
# after its header comment:
#
#	. "$(dirname -- "$0")/lib.sh"
#
# and then calls cbw_setup with what it needs. Everything a test creates
# through these helpers (tmpfs work directory, loop devices, device-mapper
# devices, mounts, background processes) is removed by an EXIT trap, in the
# reverse order of creation, whether the test passes, fails or dies.
#
# Output: one "ok N description" / "not ok N description" line per check,
# diagnostics prefixed with "# ", a plan line at the end. Exit status: 0 all
# checks passed, 1 a check failed or the test died, 4 the test was skipped
# (a prerequisite is missing).
#
# The check functions (cbw_check, cbw_expect_eq, ...) record the result and
# return 0 so that a test goes on after a failed check (the script runs
# under set -e); cbw_last_failed tells whether the previous check failed.

set -eEuo pipefail
shopt -s inherit_errexit

readonly KSFT_PASS=0
readonly KSFT_FAIL=1
readonly KSFT_SKIP=4

CBW_SELFTEST_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
readonly CBW_SELFTEST_DIR
CBW_STRESS=${CBW_STRESS:-$CBW_SELFTEST_DIR/cbw-stress}
CBW_TEST=${CBW_TEST:-$(basename -- "$0" .sh)}
# Every device-mapper device and work directory of the suite starts with
# this, so that run_all.sh can sweep up after a test that was killed.
readonly CBW_PREFIX=cbwt
CBW_WORKROOT=${CBW_WORKROOT:-/tmp/dm-cbw-selftests}
# Unique per test process: names of this test's dm devices.
readonly CBW_NAME_PREFIX="$CBW_PREFIX$$"

# CBW_TRACE=1: trace every command with a timestamp (for profiling).
if [[ ${CBW_TRACE:-0} == 1 ]]; then
	PS4='+ ${EPOCHREALTIME} '
	set -x
fi

# No udev in the test VM: let libdevmapper create the /dev/mapper nodes
# itself instead of waiting for udev.
if [[ -z ${DM_DISABLE_UDEV:-} && ! -S /run/udev/control ]]; then
	export DM_DISABLE_UDEV=1
fi

# The test's own stdout and stderr: a test dying inside a command whose
# output is redirected must still report it (and clean up) on them.
exec {_cbw_stdout}>&1 {_cbw_stderr}>&2

_cbw_nr=0
_cbw_pass=0
_cbw_fail=0
_cbw_skip=0
_cbw_died=0
_cbw_last=0
_cbw_nr_loops=0
_cbw_cleanup_cmds=()
declare -A _cbw_dm_live=()	# dm devices this test created and not removed
CBW_WORK=

# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

# Prints its arguments (or its standard input) as "# " diagnostics.
cbw_info()
{
	local line

	if (($#)); then
		printf '# %s\n' "$*"
	else
		while IFS= read -r line || [[ -n $line ]]; do
			printf '# %s\n' "$line"
		done
	fi
}

cbw_pass()
{
	_cbw_last=0
	_cbw_nr=$((_cbw_nr + 1))
	_cbw_pass=$((_cbw_pass + 1))
	printf 'ok %d %s\n' "$_cbw_nr" "$*"
}

cbw_fail()
{
	_cbw_last=1
	_cbw_nr=$((_cbw_nr + 1))
	_cbw_fail=$((_cbw_fail + 1))
	printf 'not ok %d %s\n' "$_cbw_nr" "$*"
}

# cbw_skip DESCRIPTION REASON: a check that cannot be done here.
cbw_skip()
{
	_cbw_last=0
	_cbw_nr=$((_cbw_nr + 1))
	_cbw_skip=$((_cbw_skip + 1))
	printf 'ok %d %s # SKIP %s\n' "$_cbw_nr" "$1" "$2"
}

# True if the last check failed.
cbw_last_failed()
{
	((_cbw_last))
}

# True if any check failed so far.
cbw_any_failed()
{
	((_cbw_fail))
}

# cbw_check DESCRIPTION CMD [ARGS...]: passes if CMD succeeds; CMD's output
# is shown as diagnostics when it fails.
cbw_check()
{
	local desc=$1 out rc=0

	shift
	out=$("$@" 2>&1) || rc=$?
	if ((rc == 0)); then
		cbw_pass "$desc"
		return 0
	fi
	[[ -z $out ]] || cbw_info <<<"$out"
	cbw_info "command failed with status $rc: $*"
	cbw_fail "$desc"
	return 0
}

# cbw_check_fails DESCRIPTION CMD [ARGS...]: passes if CMD fails.
cbw_check_fails()
{
	local desc=$1 out rc=0

	shift
	out=$("$@" 2>&1) || rc=$?
	if ((rc != 0)); then
		cbw_pass "$desc"
		return 0
	fi
	[[ -z $out ]] || cbw_info <<<"$out"
	cbw_info "command unexpectedly succeeded: $*"
	cbw_fail "$desc"
	return 0
}

# cbw_expect_eq DESCRIPTION EXPECTED ACTUAL
cbw_expect_eq()
{
	if [[ $2 == "$3" ]]; then
		cbw_pass "$1"
		return 0
	fi
	cbw_info "expected '$2', got '$3'"
	cbw_fail "$1"
	return 0
}

# cbw_expect_cmp DESCRIPTION A OP B: integer comparison, OP one of
# -eq -ne -lt -le -gt -ge.
cbw_expect_cmp()
{
	if [[ $2 =~ ^-?[0-9]+$ && $4 =~ ^-?[0-9]+$ ]] && test "$2" "$3" "$4"; then
		cbw_pass "$1"
		return 0
	fi
	cbw_info "expected $2 $3 $4"
	cbw_fail "$1"
	return 0
}

# A fatal error: reported as a failed check, then the test ends.
cbw_bail()
{
	cbw_info "$*"
	cbw_fail "$CBW_TEST: aborted"
	exit "$KSFT_FAIL"
}

# The whole test cannot run here.
cbw_skip_all()
{
	printf '1..0 # SKIP %s\n' "$*"
	exit "$KSFT_SKIP"
}

# Prints the plan and the counts and exits with the test's status.
cbw_done()
{
	printf '1..%d\n' "$_cbw_nr"
	cbw_info "$CBW_TEST: pass:$_cbw_pass fail:$_cbw_fail skip:$_cbw_skip"
	if ((_cbw_fail)); then
		exit "$KSFT_FAIL"
	fi
	if ((_cbw_pass == 0)); then
		exit "$KSFT_SKIP"
	fi
	exit "$KSFT_PASS"
}

_cbw_on_err()
{
	local rc=$1 line=$2 cmd=$3

	# Only the first error of the main shell counts; set -e exits next.
	((BASH_SUBSHELL == 0 && !_cbw_died)) || return 0
	_cbw_died=1
	cbw_info "line $line: '$cmd' failed with status $rc" 1>&"$_cbw_stdout"
}

_cbw_on_exit()
{
	local rc=$?

	exec 1>&"$_cbw_stdout" 2>&"$_cbw_stderr"
	trap - ERR
	set +eE
	if ((_cbw_died)) || ((rc != KSFT_PASS && rc != KSFT_FAIL && rc != KSFT_SKIP)); then
		cbw_fail "$CBW_TEST: died unexpectedly (status $rc)"
		rc=$KSFT_FAIL
	fi
	if ! cbw_cleanup && ((rc == KSFT_PASS)); then
		# e.g. a device that cannot be removed: something holds it
		cbw_fail "$CBW_TEST: cleanup"
		rc=$KSFT_FAIL
	fi
	exit "$rc"
}

trap '_cbw_on_err $? $LINENO "$BASH_COMMAND"' ERR
trap _cbw_on_exit EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# ---------------------------------------------------------------------------
# Cleanup
# ---------------------------------------------------------------------------

# cbw_defer CMD [ARGS...]: run CMD at cleanup time (last deferred, first run).
cbw_defer()
{
	_cbw_cleanup_cmds+=("$(printf '%q ' "$@")")
}

# Runs the deferred commands; returns 1 if one of them failed.
cbw_cleanup()
{
	local i name state ok=0

	set +e
	# I/O blocked on a suspended device would keep processes (and mounts)
	# from going away: resume everything first.
	if ((${#_cbw_dm_live[@]})); then
		while IFS=: read -r name state; do
			[[ -n ${_cbw_dm_live[$name]:-} && $state == Suspended ]] || continue
			dmsetup resume "$name" >/dev/null 2>&1
		done <<<"$(dmsetup info -c --noheadings -o name,suspended --separator : 2>/dev/null)"
	fi
	for ((i = ${#_cbw_cleanup_cmds[@]} - 1; i >= 0; i--)); do
		if ! eval "${_cbw_cleanup_cmds[i]}"; then
			cbw_info "cleanup: '${_cbw_cleanup_cmds[i]}' failed"
			ok=1
		fi
	done
	_cbw_cleanup_cmds=()
	return "$ok"
}

# ---------------------------------------------------------------------------
# Prerequisites: all of them exit with KSFT_SKIP when unmet
# ---------------------------------------------------------------------------

cbw_require_root()
{
	[[ $EUID -eq 0 ]] || cbw_skip_all "must be run as root"
}

cbw_require_cmds()
{
	local c

	for c; do
		command -v "$c" >/dev/null 2>&1 || cbw_skip_all "$c is not installed"
	done
}

# cbw_require_kmod NAME...: kernel modules (or built-in features) needed.
cbw_require_kmod()
{
	local m

	for m; do
		[[ -d /sys/module/${m//-/_} ]] ||
			modprobe -q "$m" 2>/dev/null ||
			cbw_skip_all "kernel module $m is not available"
	done
}

cbw_require_dm()
{
	local v

	[[ -d /sys/module/dm_mod ]] || modprobe -q dm-mod 2>/dev/null || true
	v=$(dmsetup version 2>/dev/null) || true
	[[ $v == *"Driver version"* ]] ||
		cbw_skip_all "device-mapper is not available in this kernel"
}

# cbw_have_target TARGET...: all these targets are registered.
cbw_have_target()
{
	local list t

	list=$'\n'$(dmsetup targets 2>/dev/null)
	for t; do
		[[ $list == *$'\n'"$t "* ]] || return 1
	done
}

# dm-cbw: use the loaded module, or load $CBW_MODULE, or modprobe dm-cbw.
cbw_require_cbw()
{
	cbw_require_dm
	if ! cbw_have_target cbw; then
		if [[ -n ${CBW_MODULE:-} && -f $CBW_MODULE ]]; then
			insmod "$CBW_MODULE" 2>/dev/null ||
				cbw_skip_all "cannot load $CBW_MODULE"
		else
			modprobe -q dm-cbw 2>/dev/null ||
				cbw_skip_all "dm-cbw module not available (set CBW_MODULE)"
		fi
	fi
	if ! cbw_have_target cbw cbw-access; then
		cbw_skip_all "the cbw and cbw-access targets are not registered"
	fi
}

cbw_require_stress()
{
	[[ -x $CBW_STRESS ]] ||
		cbw_bail "$CBW_STRESS is not built: run make -C $CBW_SELFTEST_DIR"
}

# cbw_require_cbwctl: sets CBWCTL to the cbwctl under test. That is
# $CBWCTL if set; else, when the suite runs from the dm-cbw tree ($CBW_TREE,
# or the tree this directory sits in), the tree's build, which must exist;
# else the cbwctl in PATH, as for an installed suite (kselftest_install.sh).
# Without one the test is skipped.
cbw_require_cbwctl()
{
	local tree=${CBW_TREE:-$CBW_SELFTEST_DIR/../..}

	if [[ -z ${CBWCTL:-} ]]; then
		if [[ -f $tree/tools/cbwctl/Makefile ]]; then
			CBWCTL=$tree/tools/cbwctl/cbwctl
		else
			CBWCTL=$(command -v cbwctl) ||
				cbw_skip_all "cbwctl is not installed (not in PATH)"
		fi
	fi
	[[ -x $CBWCTL ]] || cbw_bail "$CBWCTL is not built: run make -C $(dirname -- "$CBWCTL")"
}

# cbw_cbwctl_man_page: prints the path of the man page of $CBWCTL: the one
# next to it (the tree's), else the installed one (maybe compressed: read
# it with zcat -f); nothing if there is none.
cbw_cbwctl_man_page()
{
	local page

	page=$(dirname -- "$CBWCTL")/cbwctl.8
	[[ -f $page ]] || page=$(man -w cbwctl 2>/dev/null) || page=
	[[ -z $page ]] || printf '%s\n' "$page"
}

# cbw_setup [TMPFS_MIB]: common prerequisites and a private tmpfs in $CBW_WORK
# for the sparse files behind the loop devices.
cbw_setup()
{
	local size=${1:-512}

	cbw_require_root
	cbw_require_cmds dmsetup losetup blockdev truncate awk mount umount
	cbw_require_kmod loop
	cbw_require_cbw
	cbw_require_stress
	CBW_WORK=$CBW_WORKROOT/$CBW_TEST.$$
	mkdir -p -- "$CBW_WORK"
	cbw_defer rmdir -- "$CBW_WORK"
	mount -t tmpfs -o "size=${size}m,mode=0700" "$CBW_PREFIX-tmpfs" "$CBW_WORK"
	cbw_defer cbw_umount "$CBW_WORK"
	cbw_info "$CBW_TEST: kernel $(</proc/sys/kernel/osrelease), work directory $CBW_WORK"
}

# ---------------------------------------------------------------------------
# Loop devices over sparse tmpfs files
# ---------------------------------------------------------------------------

# cbw_loop_create VAR SIZE_MIB [LOSETUP_OPTIONS...]: sets VAR to /dev/loopN.
cbw_loop_create()
{
	local var=$1 size=$2 file dev

	shift 2
	_cbw_nr_loops=$((_cbw_nr_loops + 1))
	file=$CBW_WORK/loop$_cbw_nr_loops.img
	truncate -s "${size}M" -- "$file"
	dev=$(losetup --find --show "$@" -- "$file")
	cbw_defer cbw_loop_remove "$dev"
	[[ -b $dev ]] || cbw_bail "losetup gave $dev, which is not a block device"
	printf -v "$var" '%s' "$dev"
}

cbw_loop_remove()
{
	local i

	for i in 1 2 3 4 5; do
		losetup -d "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	cbw_info "cannot detach $1"
	return 1
}

# Size of a block device in 512-byte sectors.
cbw_size()
{
	blockdev --getsz "$1"
}

# ---------------------------------------------------------------------------
# Device-mapper
# ---------------------------------------------------------------------------

# cbw_name SHORT: the dm name this test uses for SHORT.
cbw_name()
{
	printf '%s-%s\n' "$CBW_NAME_PREFIX" "$1"
}

cbw_dm_exists()
{
	dmsetup info "$1" >/dev/null 2>&1
}

cbw_dm_suspended()
{
	[[ $(dmsetup info -c --noheadings -o suspended "$1" 2>/dev/null) == Suspended ]]
}

# Path of the block device node of dm device NAME.
cbw_dm_path()
{
	local blk

	if [[ ! -b /dev/mapper/$1 ]]; then
		dmsetup mknodes "$1" >/dev/null 2>&1 || true
	fi
	if [[ -b /dev/mapper/$1 ]]; then
		printf '/dev/mapper/%s\n' "$1"
		return
	fi
	blk=$(dmsetup info -c --noheadings -o blkdevname "$1")
	printf '/dev/%s\n' "$blk"
}

# major:minor of dm device NAME.
cbw_dm_devno()
{
	dmsetup info -c --noheadings -o major,minor --separator : "$1"
}

# cbw_dm_create NAME TABLE [DMSETUP_CREATE_OPTIONS...]: create (fails the
# test on error), register the removal, check the device node.
cbw_dm_create()
{
	local name=$1 table=$2

	shift 2
	dmsetup create "$name" "$@" --table "$table" ||
		cbw_bail "dmsetup create $name --table '$table' failed"
	_cbw_dm_live[$name]=1
	cbw_defer cbw_dm_remove "$name"
	[[ -b $(cbw_dm_path "$name") ]] || cbw_bail "no device node for $name"
}

# cbw_dm_try_create NAME TABLE [OPTIONS...]: like cbw_dm_create but returns
# dmsetup's status instead of failing the test. Its messages go to stderr.
cbw_dm_try_create()
{
	local name=$1 table=$2

	shift 2
	dmsetup create "$name" "$@" --table "$table" || return
	_cbw_dm_live[$name]=1
	cbw_defer cbw_dm_remove "$name"
	cbw_dm_path "$name" >/dev/null
}

# cbw_dm_remove NAME: remove a device this test created (if not removed
# yet), retrying while it is busy.
cbw_dm_remove()
{
	local name=$1 state

	[[ -n ${_cbw_dm_live[$name]:-} ]] || return 0
	if dmsetup remove --retry "$name" >/dev/null 2>&1; then
		unset "_cbw_dm_live[$name]"
		return 0
	fi
	if ! state=$(dmsetup info -c --noheadings -o suspended "$name" 2>/dev/null); then
		unset "_cbw_dm_live[$name]"
		return 0
	fi
	if [[ $state == Suspended ]]; then
		dmsetup resume "$name" >/dev/null 2>&1 || true
	fi
	cbw_info "dmsetup remove $name failed; forcing"
	if dmsetup remove --force --retry "$name" >/dev/null 2>&1; then
		unset "_cbw_dm_live[$name]"
		return 0
	fi
	cbw_info "cannot remove $name"
	return 1
}

# cbw_read_delay_create NAME DEV MS: a dm-delay device NAME over DEV that
# holds every read for MS milliseconds and lets writes through at once.
cbw_read_delay_create()
{
	local len

	cbw_require_kmod dm-delay
	len=$(cbw_size "$2")
	cbw_dm_create "$1" "0 $len delay $2 0 $3 $2 0 0"
}

# cbw_lvm_config PV...: LVM for this test only, without udev: its own
# configuration in $CBW_WORK/lvm (LVM_SYSTEM_DIR) that sees no device but
# the PVs, keeps no metadata backups, never extends a thin pool by itself,
# and runs pvmove in the foreground without lvmpolld.
cbw_lvm_config()
{
	local pv accept=

	for pv; do
		accept+="\"a|^$pv\$|\", "
	done
	export LVM_SYSTEM_DIR=$CBW_WORK/lvm
	# lvm complains of the descriptors it inherits from the test harness.
	export LVM_SUPPRESS_FD_WARNINGS=1
	mkdir -p -- "$LVM_SYSTEM_DIR"
	cat >"$LVM_SYSTEM_DIR/lvm.conf" <<EOF
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	global_filter = [ $accept"r|.*|" ]
}
activation {
	udev_sync = 0
	udev_rules = 0
	monitoring = 0
	thin_pool_autoextend_threshold = 100
}
global {
	event_activation = 0
	use_lvmpolld = 0
}
backup { backup = 0 archive = 0 }
EOF
}

# cbw_first_json KEY...: those keys of the first JSON object on standard
# input (a failed cbwctl command prints its error lines after it).
cbw_first_json()
{
	python3 -c 'import json, sys
j = json.JSONDecoder().raw_decode(sys.stdin.read())[0]
print(*(j[k] for k in sys.argv[1:]))' "$@"
}

# cbw_attach_state DEV: what cbwctl attach --check says of DEV (attached,
# detached, broken, ...), or nothing.
cbw_attach_state()
{
	{ "$CBWCTL" --json attach --check "$1" 2>/dev/null || true; } |
		cbw_first_json state
}

# cbw_dm_adopt NAME: another tool (cbwctl) created NAME; remove it at
# cleanup (or earlier with cbw_dm_remove), like a device of cbw_dm_create.
cbw_dm_adopt()
{
	_cbw_dm_live[$1]=1
	cbw_defer cbw_dm_remove "$1"
}

# cbw_dm_forget NAME: the test removed NAME itself (e.g. with a plain
# dmsetup remove).
cbw_dm_forget()
{
	unset "_cbw_dm_live[$1]"
}

# cbw_cbw_table ORIGIN COW CHUNK_SECTORS [LEN]: a one-line cbw table.
cbw_cbw_table()
{
	local len=${4:-}

	[[ -n $len ]] || len=$(cbw_size "$1")
	printf '0 %s cbw %s %s %s\n' "$len" "$1" "$2" "$3"
}

# cbw_create NAME ORIGIN CHUNK_SECTORS: tracking-only cbw device over ORIGIN.
cbw_create()
{
	cbw_dm_create "$1" "$(cbw_cbw_table "$2" - "$3")"
}

# cbw_access_create NAME CBW_NAME [rw]: snapshot-access device for CBW_NAME,
# read-only unless the third argument is "rw".
cbw_access_create()
{
	local len opts=(--readonly)

	[[ ${3:-} != rw ]] || opts=()
	len=$(cbw_size "$(cbw_dm_path "$2")")
	cbw_dm_create "$1" "0 $len cbw-access $(cbw_dm_path "$2")" "${opts[@]}"
}

# cbw_reload NAME TABLE: suspend, load, resume. Resumes (with the old table)
# if the load fails.
cbw_reload()
{
	dmsetup suspend "$1"
	if ! dmsetup load "$1" --table "$2"; then
		dmsetup resume "$1"
		return 1
	fi
	dmsetup resume "$1"
}

# cbw_snapshot_start NAME COW [CHUNK_SECTORS]: take a snapshot: reload the
# device's table naming COW. The chunk size is kept unless given.
cbw_snapshot_start()
{
	local start len target origin chunk

	read -r start len target origin _ chunk _ <<<"$(dmsetup table "$1")"
	[[ $target == cbw ]] || cbw_bail "$1 is not a cbw device ($target)"
	cbw_reload "$1" "$start $len cbw $origin $2 ${3:-$chunk}"
}

# cbw_snapshot_end NAME: end the snapshot: reload naming no COW device.
cbw_snapshot_end()
{
	local start len target origin chunk

	read -r start len target origin _ chunk _ <<<"$(dmsetup table "$1")"
	[[ $target == cbw ]] || cbw_bail "$1 is not a cbw device ($target)"
	cbw_reload "$1" "$start $len cbw $origin - $chunk"
}

# cbw_stat NAME FIELD: one field of the status line of a cbw or cbw-access
# device.
#   cbw:        chunk state total copied to_copy in_flight accessible error
#   cbw-access: state accessible total
cbw_stat()
{
	local line pos
	local -a f

	line=$(dmsetup status "$1")
	read -r -a f <<<"$line"
	case "${f[2]:-}:$2" in
	cbw:chunk) pos=4 ;;
	cbw:state) pos=5 ;;
	cbw:total) pos=6 ;;
	cbw:copied) pos=7 ;;
	cbw:to_copy) pos=8 ;;
	cbw:in_flight) pos=9 ;;
	cbw:accessible) pos=10 ;;
	cbw:error) pos=11 ;;
	cbw-access:state) pos=4 ;;
	cbw-access:accessible) pos=5 ;;
	cbw-access:total) pos=6 ;;
	*) cbw_bail "cbw_stat: no field '$2' in '$line'" ;;
	esac
	printf '%s\n' "${f[pos - 1]:-}"
}

# cbw_status_core NAME: the documented fields of the status line, as one
# string: "chunk state total copied to_copy in_flight accessible error" for
# cbw, "state accessible total" for cbw-access. Fields that follow them are
# left out.
cbw_status_core()
{
	local line
	local -a f

	line=$(dmsetup status "$1")
	read -r -a f <<<"$line"
	case ${f[2]:-} in
	cbw) printf '%s\n' "${f[*]:3:8}" ;;
	cbw-access) printf '%s\n' "${f[*]:3:3}" ;;
	*) cbw_bail "$1: unexpected status line '$line'" ;;
	esac
}

# ---------------------------------------------------------------------------
# Mounts, background processes, kernel log
# ---------------------------------------------------------------------------

cbw_umount()
{
	local i

	for i in 1 2 3 4 5 6 7 8 9 10; do
		umount -- "$1" 2>/dev/null && return 0
		mountpoint -q -- "$1" || return 0
		sleep 0.5
	done
	cbw_info "cannot unmount $1; detaching it"
	umount -l -- "$1"
}

# cbw_mount DEV DIR [MOUNT_OPTIONS...]
cbw_mount()
{
	mkdir -p -- "$2"
	mount "${@:3}" -- "$1" "$2"
	cbw_defer cbw_umount "$2"
}

# cbw_bg VAR CMD [ARGS...]: run CMD in the background, set VAR to its pid;
# it is killed at cleanup if still running.
cbw_bg()
{
	local var=$1 pid

	shift
	"$@" &
	pid=$!
	cbw_defer cbw_kill "$pid"
	printf -v "$var" '%s' "$pid"
}

# cbw_kill PID: terminate a background process started by cbw_bg and reap it.
cbw_kill()
{
	local i

	kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
	kill -TERM "$1" 2>/dev/null || true
	for i in $(seq 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.2
	done
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	return 0
}

_cbw_kmsg_seq=0
_cbw_kmsg_mark=

# Writes a marker into the kernel log; cbw_kmsg_since prints what follows.
cbw_kmsg_mark()
{
	_cbw_kmsg_seq=$((_cbw_kmsg_seq + 1))
	_cbw_kmsg_mark="cbw-selftest: $CBW_TEST $$ mark $_cbw_kmsg_seq"
	echo "$_cbw_kmsg_mark" >/dev/kmsg
}

cbw_kmsg_since()
{
	dmesg | awk -v m="$_cbw_kmsg_mark" '
		index($0, m) { found = 1; buf = ""; next }
		found { buf = buf $0 "\n" }
		END { printf "%s", buf }'
}

# ---------------------------------------------------------------------------
# Sweeping up after killed tests (used by run_all.sh)
# ---------------------------------------------------------------------------

# _cbw_sweep_mounts [all]: unmount what is mounted under $CBW_WORKROOT,
# except the tmpfs work directories unless "all" is given.
_cbw_sweep_mounts()
{
	local mnt mounts

	mounts=$(awk -v r="$CBW_WORKROOT/" -v t="$CBW_PREFIX-tmpfs" -v a="${1:-}" \
		'index($2, r) == 1 && (a == "all" || $1 != t) { print $2 }' /proc/mounts | sort -r)
	while read -r mnt; do
		[[ -n $mnt ]] || continue
		echo "unmounting leftover $mnt"
		umount -l -- "$mnt"
	done <<<"$mounts"
}

# Removes every dm device, mount and loop device left by the suite. (No
# process substitution here: the test VM has no /dev/fd.)
cbw_sweep()
{
	local name names dev file loops pass left

	set +e
	_cbw_sweep_mounts
	for pass in 1 2 3; do
		left=0
		names=$(dmsetup ls 2>/dev/null | awk '{ print $1 }')
		while read -r name; do
			[[ $name == "$CBW_PREFIX"* ]] || continue
			left=1
			if cbw_dm_suspended "$name"; then
				dmsetup resume "$name" >/dev/null 2>&1
			fi
			# access devices first: they hold their cbw device
			if [[ $pass == 1 && $(dmsetup table "$name" 2>/dev/null) != *cbw-access* ]]; then
				continue
			fi
			echo "removing leftover device $name"
			dmsetup remove --force "$name" >/dev/null 2>&1
		done <<<"$names"
		((left)) || break
	done
	loops=$(losetup -n -l -O NAME,BACK-FILE 2>/dev/null)
	while read -r dev file; do
		[[ $file == "$CBW_WORKROOT/"* ]] || continue
		echo "detaching leftover $dev"
		losetup -d "$dev"
	done <<<"$loops"
	_cbw_sweep_mounts all
	rmdir -- "$CBW_WORKROOT"/* 2>/dev/null
	return 0
}

# ---------------------------------------------------------------------------
# A busy file system: a background writer that can be paused
# ---------------------------------------------------------------------------

# cbw_fs_writer MNT CTL MAX_KIB: random file operations under MNT (create,
# overwrite, append, rename, delete; files up to MAX_KIB) until CTL/stop
# exists.  While CTL/pause exists it stops between two operations and says
# so with CTL/paused.  Run it with cbw_bg.
# shellcheck disable=SC2317 # run through cbw_bg
cbw_fs_writer()
{
	local mnt=$1 ctl=$2 max_kib=$3 n=0 f size

	set +e
	mkdir -p -- "$mnt/a" "$mnt/b/c"
	while [[ ! -e $ctl/stop ]]; do
		if [[ -e $ctl/pause ]]; then
			touch -- "$ctl/paused"
			while [[ -e $ctl/pause && ! -e $ctl/stop ]]; do
				sleep 0.05
			done
			rm -f -- "$ctl/paused"
			continue
		fi
		n=$((n + 1))
		case $((RANDOM % 3)) in
		0) f=$mnt/a/f$((RANDOM % 30)) ;;
		1) f=$mnt/b/f$((RANDOM % 30)) ;;
		*) f=$mnt/b/c/f$((RANDOM % 30)) ;;
		esac
		size=$((RANDOM % (max_kib / 4) + 1))
		case $((RANDOM % 6)) in
		0) rm -f -- "$f" ;;
		1 | 2) dd if=/dev/urandom of="$f" bs=4k count="$size" status=none ;;
		3) dd if=/dev/urandom of="$f" bs=1k count="$size" seek=$((RANDOM % 128)) \
			conv=notrunc status=none ;;
		4) head -c $((RANDOM * 3 + 1)) /dev/urandom >>"$f" ;;
		*) [[ ! -e $f ]] || mv -f -- "$f" "$f.r" ;;
		esac
		((n % 20)) || sync
	done
}

# cbw_pause_writer CTL: waits until the writer is paused (bails after 60 s).
cbw_pause_writer()
{
	local i

	touch -- "$1/pause"
	for i in $(seq 600); do
		[[ -e $1/paused ]] && return 0
		sleep 0.1
	done
	cbw_bail "the writer did not pause"
}

cbw_resume_writer()
{
	rm -f -- "$1/pause"
}

# cbw_checksums DIR: "sum  ./path" of every regular file under DIR.
cbw_checksums()
{
	(cd -- "$1" && find . -path ./lost+found -prune -o -type f -print0 |
		sort -z | xargs -0 -r sha256sum)
}
