#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs the dm-cbw selftests and prints KTAP. Each test runs under a timeout,
# with the kernel log cleared before it and checked after it: a kernel
# warning, oops, lockdep, KASAN or list-corruption report, a hung task, or a
# memory leak found by kmemleak (on kernels that have it, a scan runs after
# each test) fails the test even if the test itself passed.
#
# Usage: run_all.sh [-l] [TEST...]
#   -l       list the tests and exit
#   TEST     run only these tests (names as listed by -l)
# Environment: CBW_TEST_TIMEOUT (seconds per test, default 900; a test
# may ask for more with a "# cbw-timeout: SECONDS" line in its header).
#
# Exit status: 1 if a test failed, 4 if every test was skipped, else 0.

set -uo pipefail

dir=$(cd -- "$(dirname -- "$0")" && pwd)
timeout_s=${CBW_TEST_TIMEOUT:-900}

# Every cbw_*.sh in this directory is a test, run without arguments (as
# run_kselftest.sh runs them), under its own name: these first, the others
# after them. name|command (relative to this directory)
all_tests=(
	"cbw_tracking_only|cbw_tracking_only.sh"
	"cbw_table_errors|cbw_table_errors.sh"
	"cbw_integrity_4k_delay|cbw_integrity_4k_delay.sh"
	"cbw_integrity_64k|cbw_integrity_64k.sh"
	"cbw_integrity_1m|cbw_integrity_1m.sh"
	"cbw_access_discard|cbw_access_discard.sh"
	"cbw_filesystem|cbw_filesystem.sh"
	"cbw_lifecycle|cbw_lifecycle.sh"
)

for script in "$dir"/cbw_*.sh; do
	[[ -e $script ]] || continue
	script=${script##*/}
	known=0
	for t in "${all_tests[@]}"; do
		cmd=${t#*|}
		[[ ${cmd%% *} != "$script" ]] || known=1
	done
	((known)) || all_tests+=("${script%.sh}|$script")
done

# test_timeout SCRIPT: the seconds SCRIPT may run: CBW_TEST_TIMEOUT, or
# more if a "# cbw-timeout: SECONDS" line in its header asks for more (a
# DKMS build under emulation, for one).
test_timeout()
{
	local want

	want=$(sed -n '/^[^#]/q; s/^# cbw-timeout: \([0-9][0-9]*\)$/\1/p' "$dir/$1")
	if [[ -n $want ]] && ((want > timeout_s)); then
		echo "$want"
	else
		echo "$timeout_s"
	fi
}

# Kernel log lines that fail a test.
bad_kmsg='BUG:|WARNING:|Oops|general protection fault|KASAN|UBSAN|'
bad_kmsg+='possible circular locking|possible recursive locking|'
bad_kmsg+='INFO: trying to register non-static key|inconsistent lock state|'
bad_kmsg+='lockdep|list_add corruption|list_del corruption|kernel BUG|'
bad_kmsg+='Call Trace|blocked for more than|soft lockup|hard LOCKUP|detected stall|'
bad_kmsg+='rcu_sched self-detected stall|refcount_t:|use-after-free|'
bad_kmsg+='double-free|slab corruption|Poison overwritten|Redzone|'
bad_kmsg+='unreferenced object|suspected memory leak'

usage()
{
	sed -n '9,14s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

list=0
while getopts lh opt; do
	case $opt in
	l) list=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))

selected=()
if (($#)); then
	for want; do
		found=0
		for t in "${all_tests[@]}"; do
			if [[ ${t%%|*} == "$want" ]]; then
				selected+=("$t")
				found=1
			fi
		done
		((found)) || { echo "run_all.sh: unknown test '$want'" >&2; usage; }
	done
else
	selected=("${all_tests[@]}")
fi

if ((list)); then
	for t in "${selected[@]}"; do
		echo "${t%%|*}"
	done
	exit 0
fi

# Build the helper if it is missing (needs a compiler).
if [[ ! -x $dir/cbw-stress ]] && command -v make >/dev/null 2>&1; then
	make -s -C "$dir" all >/dev/null 2>&1 || true
fi

can_dmesg=0
if [[ $EUID -eq 0 ]] && dmesg >/dev/null 2>&1; then
	can_dmesg=1
fi

# kmemleak, on a debug kernel: the leaks found by a scan after each test are
# added to that test's kernel log.
kmemleak=/sys/kernel/debug/kmemleak
if [[ $EUID -eq 0 && ! -e $kmemleak && -d /sys/kernel/debug ]]; then
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null || true
fi
[[ -w $kmemleak ]] || kmemleak=''

# Forgets the leaks found so far (those of the boot, or of the last test).
kmemleak_clear()
{
	[[ -z $kmemleak ]] || echo clear >"$kmemleak" 2>/dev/null || true
}

# Prints the leaks that a scan finds now.  kmemleak reports only objects
# older than 5 s, so the scan waits that long after the test.
kmemleak_scan()
{
	[[ -n $kmemleak ]] || return 0
	sleep 6
	echo scan >"$kmemleak" 2>/dev/null || return 0
	cat -- "$kmemleak" 2>/dev/null
}

# shellcheck source=lib.sh disable=SC2034 # CBW_TEST is read by lib.sh
sweep() { (CBW_TEST=run_all; . "$dir/lib.sh"; trap - EXIT ERR; cbw_sweep); }

logdir=$(mktemp -d "${TMPDIR:-/tmp}/cbw-selftest-logs.XXXXXX")
trap 'rm -rf -- "$logdir"' EXIT

pass=0
fail=0
skip=0
n=0
start_all=$SECONDS

echo "TAP version 13"
echo "1..${#selected[@]}"
for t in "${selected[@]}"; do
	name=${t%%|*}
	read -r -a cmd <<<"${t#*|}"
	n=$((n + 1))
	log=$logdir/$n.log
	((can_dmesg)) && dmesg -C
	kmemleak_clear
	t0=$SECONDS
	# The output goes to a file, not a pipe: a process of a killed test
	# stuck on a suspended device must not keep the runner waiting.
	t_timeout=$(test_timeout "${cmd[0]}")
	(cd "$dir" && exec timeout --kill-after=30 "$t_timeout" \
		"./${cmd[0]}" "${cmd[@]:1}") </dev/null >"$log" 2>&1 &
	# shellcheck disable=SC2031 # $! of the line above
	pid=$!
	rc=0
	# (stderr: no "Killed" notice from this shell on a timeout)
	{
		tail -n +1 -s 0.5 -f --pid="$pid" -- "$log" | sed -u 's/^/# /'
		wait "$pid" || rc=$?
	} 2>/dev/null
	elapsed=$((SECONDS - t0))
	echo "# $name: exit status $rc after ${elapsed}s"

	kmsg_bad=
	leaks=$(kmemleak_scan)
	if ((can_dmesg)); then
		kmsg_bad=$( (dmesg; echo "$leaks") | grep -E -- "$bad_kmsg")
	fi
	if [[ -n $kmsg_bad ]]; then
		echo "# $name: kernel log reports a problem:"
		(dmesg; echo "$leaks") | sed 's/^/# kernel: /' | tail -n 200
	fi
	if ((rc == 124 || rc == 137)); then
		echo "# $name: timed out after ${t_timeout}s"
	fi

	# Anything a killed test left behind would break the next ones.
	sweep 2>&1 | sed 's/^/# sweep: /'

	if [[ -n $kmsg_bad ]] || ((rc != 0 && rc != 4)); then
		echo "not ok $n $name"
		fail=$((fail + 1))
	elif ((rc == 4)); then
		reason=$(grep -m1 -o 'SKIP.*' "$log" | sed 's/^SKIP *//')
		echo "ok $n $name # SKIP ${reason:-prerequisite missing}"
		skip=$((skip + 1))
	else
		echo "ok $n $name"
		pass=$((pass + 1))
	fi
done

echo "# Suite time: $((SECONDS - start_all))s"
echo "# Totals: pass:$pass fail:$fail skip:$skip"
echo "$pass passed, $fail failed, $skip skipped"
((fail == 0)) || exit 1
# Nothing could run here (no device-mapper, not root): kselftest's skip.
((pass == 0 && skip > 0)) && exit 4
exit 0
