#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Smoke run of the benchmark (make bench): keeps tools/bench working.
#
# Runs tools/bench/cbw-bench with a fraction of a second per workload on
# small ramdisks, then tools/bench/report, and checks that the JSON has a
# result for every workload on dm-linear, dm-snapshot and dm-cbw (dm-linear
# and dm-cbw only for tracking without a snapshot), the raw
# brd floors and the memory measurement, that the report wrote its table,
# its targets and (with gnuplot) a PNG chart, and that the bench left no
# device behind; then runs tools/bench/trace-copy briefly and checks the
# work items it counts.  No timing is checked: these are not benchmark
# numbers.

. "$(dirname -- "$0")/lib.sh"

tree=${CBW_TREE:-$CBW_SELFTEST_DIR/../..}
bench_dir=$tree/tools/bench
cbw_require_root
# The bench and the cbwctl it runs are those of the dm-cbw tree: an
# installed suite has neither.
[[ -f $bench_dir/cbw-bench ]] ||
	cbw_skip_all "no tools/bench: the bench runs from the dm-cbw tree"
cbw_require_cmds fio dmsetup python3 modinfo
cbw_require_cbw
for m in brd null_blk dm-snapshot dm-zero; do
	modinfo -n "$m" >/dev/null 2>&1 || [[ -d /sys/module/${m//-/_} ]] ||
		cbw_skip_all "kernel module $m is not available"
done
# The bench loads brd with its own sizes: not over ramdisks in use.
if [[ -d /sys/module/brd ]] && ! rmmod brd 2>/dev/null; then
	cbw_skip_all "brd is loaded and in use"
fi
[[ -x $tree/tools/cbwctl/cbwctl ]] ||
	cbw_bail "tools/cbwctl/cbwctl is not built: run make"

out=$(mktemp -d "${TMPDIR:-/tmp}/cbw-bench-smoke.XXXXXX")
cbw_defer rm -rf -- "$out"

t0=$SECONDS
rc=0
"$bench_dir/cbw-bench" --seconds 0.1 --rounds 1 --size-mib 32 --j-mib 32 \
	--mem-tib 1 --out "$out" >"$out/bench.log" 2>&1 || rc=$?
cbw_info "cbw-bench took $((SECONDS - t0))s"
if ((rc)); then
	cbw_info <"$out/bench.log"
fi
cbw_expect_eq "cbw-bench exits with status 0" 0 "$rc"
cbw_check "cbw-bench wrote bench.json" test -s "$out/bench.json"

# shellcheck disable=SC2317 # run through cbw_check
json_complete()
{
	python3 - "$1" "$bench_dir/cbw-bench" <<'EOF'
import importlib.machinery, json, sys
doc = json.load(open(sys.argv[1]))
bench = importlib.machinery.SourceFileLoader('cbw_bench',
                                             sys.argv[2]).load_module()
bad = []
ids = [w['id'] for w in doc['workloads']]
want = [w[0] for w in bench.WORKLOADS]
if ids != want:
    bad.append('workloads %s, expected %s' % (ids, want))
# Every family of rows, at both queue depths where it has them.
for w in ('a.randwrite4k.qd32', 'b.first-touch.4k.qd32.j4',
          'c.second-pass.64k.qd32', 'd.fresh-seqwrite1m.4k.qd32',
          'e.seqread1m.scattered.4k', 'e.randread4k.copied.64k.qd32',
          'f.randwrite4k.qd32.j4', 'h.randwrite4k.qd32.j4',
          'h.reader1m.qd1.j1', 'h.randwrite4k.copied.qd1.j4',
          'h.reader1m.copied.qd32.j1', 'i.randwrite4k.qd1.j4',
          'i.reader1m.qd32.j1',
          'j.write1g', 'j.discard1g', 'p.randwrite4k', 'p.newregion4k',
          'p.seqwrite1g'):
    if w not in ids:
        bad.append('no workload %s' % w)
for w in doc['workloads']:
    # (a) has no dm-snapshot counterpart: tracking only, no snapshot; nor
    # has (j)'s discard if dm-snapshot's origin does not pass discards on.
    targets = ('linear', 'cbw') if w['id'][:2] in ('a.', 'p.') or \
        w['id'] == 'j.discard1g' else ('linear', 'snapshot', 'cbw')
    for t in targets:
        m = w['results'].get(t)
        if not m:
            bad.append('%s: no %s result' % (w['id'], t))
            continue
        for k in ('iops', 'bw', 'p50_us', 'p99_us'):
            if not isinstance(m.get(k), (int, float)):
                bad.append('%s %s: no %s' % (w['id'], t, k))
        # (ios may be 0: a run this short can fall in a stall of the VM)
        if not isinstance(m.get('ios'), int):
            bad.append('%s %s: no I/O count' % (w['id'], t))
        if [x['round'] for x in m.get('rounds', [])] != [1]:
            bad.append('%s %s: not one measurement of round 1' %
                       (w['id'], t))
for dev in ('raw', 'null'):
    for k in ('read4k.qd1', 'write4k.qd1', 'read64k.qd32', 'write64k.qd32',
              'read4k.qd32.j4', 'write64k.qd32.j4', 'read1m.qd1',
              'write1m.qd32', 'read64k.qd1.j4', 'write64k.qd1.j4'):
        if not isinstance(doc['floor'].get('%s.%s' % (dev, k), {})
                          .get('ios'), int):
            bad.append('floor %s.%s missing' % (dev, k))
for k in ('raw.read1g', 'raw.write1g'):
    if k not in doc['floor']:
        bad.append('floor %s missing' % k)
# (h): dm-cbw's copies and the guest's writes, for the floor of (h).
copies = doc.get('extra', {}).get('h_copies', {})
for v in ('qd1.j1', 'qd1.j4', 'qd32.j1', 'qd32.j4'):
    m = copies.get('h.randwrite4k.' + v, [{}])[0]
    if not (isinstance(m.get('copied'), int) and
            isinstance(m.get('writes'), int) and
            0 <= m['copied'] <= m['writes']):
        bad.append('h %s: no count of the writes that copied (%s)' % (v, m))
g = doc.get('memory', {})
for k in ('bitmap_per_tib', 'snapshot_per_tib'):
    if not isinstance(g.get(k), int):
        bad.append('memory: no %s' % k)
if not doc.get('extra', {}).get('p_checkpoint_ms'):
    bad.append('no checkpoint time of (p)')
if not doc.get('machine', {}).get('kernel'):
    bad.append('no machine description')
print('\n'.join(bad))
sys.exit(1 if bad else 0)
EOF
}
cbw_check "bench.json has every workload on every target, floors and memory" \
	json_complete "$out/bench.json"

# As tools/bench/run merges its two boots (init_on_alloc=1, then 0).
python3 - "$out/bench.json" "$out/both.json" <<'EOF'
import copy, json, sys
doc = json.load(open(sys.argv[1]))
second = copy.deepcopy(doc)
second['machine']['init_on_alloc'] = '0'
json.dump({'version': 2, 'runs': [doc, second]}, open(sys.argv[2], 'w'))
EOF

rc=0
python3 "$bench_dir/report" "$out/both.json" --outdir "$out" --quiet \
	>"$out/report.log" 2>&1 || rc=$?
cbw_expect_eq "report exits with status 0" 0 "$rc"
((rc == 0)) || cbw_info <"$out/report.log"
cbw_check "report wrote the table" grep -q 'f: 4K randwrite libaio qd32, 4 jobs' "$out/bench.txt"
cbw_check "report wrote the init_on_alloc=0 tables" grep -q '^init_on_alloc=0:' "$out/bench.txt"
cbw_check "report shows the ratios of (h) with their spread" \
	grep -Eq '^h: guest 4K randwrite.* [0-9.]+ \[[0-9.]+-[0-9.]+\]' "$out/bench.txt"
cbw_check "report shows the share of (h)'s writes that copied" \
	grep -Eq '^h: share of the guest.*qd32\.j4 [0-9.]+ \[' "$out/bench.txt"
cbw_check "report wrote the RST table" test -s "$out/bench.rst"
# shellcheck disable=SC2317 # run through cbw_check
targets_listed()
{
	python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["targets"]
names = sorted(set(x["target"] for x in t))
sys.exit(0 if names == list("abcdefghijp") else "targets: %s" % names)' "$1"
}
cbw_check "summary.json judges the targets (a) to (j) and (p)" targets_listed "$out/summary.json"
# shellcheck disable=SC2317 # run through cbw_check
is_png()
{
	[[ $(head -c 8 -- "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]
}
if command -v gnuplot >/dev/null 2>&1; then
	cbw_check "report drew a PNG chart" is_png "$out/bench.png"
else
	cbw_skip "report drew a PNG chart" "gnuplot is not installed"
fi

cbw_expect_eq "no benchmark device left" "" \
	"$(dmsetup ls 2>/dev/null | awk '$1 ~ /^cbwb-/ { print $1 }')"
cbw_check_fails "brd unloaded again" test -d /sys/module/brd

# tools/bench/trace-copy, the trace that dm-cbw-bench.rst quotes: at 4K
# chunks every first write runs two copy steps on kcbwd (after the origin
# read, after the COW write), at each queue depth.
rc=0
"$bench_dir/trace-copy" --size-mib 16 --seconds 1 >"$out/trace.log" 2>&1 ||
	rc=$?
cbw_expect_eq "trace-copy exits with status 0" 0 "$rc"
((rc == 0)) || cbw_info <"$out/trace.log"
# (about two: a run this short under emulation may lose an event or end
# with a copy in flight)
steps=$(awk '/^qd/ { n++ } $1 == "cbw_lane_io_done" && $2 >= 1.9 &&
	$2 <= 2.1 { ok++ } END { print n + 0, ok + 0 }' "$out/trace.log")
cbw_expect_eq "trace-copy: two copy steps per first write, in each workload" \
	"3 3" "$steps"
[[ $steps == "3 3" ]] || cbw_info <"$out/trace.log"
cbw_check_fails "trace-copy left brd unloaded" test -d /sys/module/brd

cbw_done
