#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# One snapshot point across several cbw devices: "cbwctl snapshot start
# DEV1 DEV2 ...", "cbwctl backup DEV1 DEV2 ..." and "cbwctl backup begin
# DEV1 DEV2 ...".
#
# A writer writes an increasing sequence number to device 1, then the same
# number to device 2, with O_DIRECT, as fast as it can: at any point in
# time device 2's number is not above device 1's.
#
# Proves that:
#  1. per-device options are counted: --cow once per device, --bitmap once
#     or once per device; a device given twice, or a COW device shared, is
#     refused before anything changes;
#  2. with the writer running, in each of 12 snapshots of both devices read
#     through their access devices, device 2's number is not above device
#     1's; the same check does see device 2 ahead when the two snapshots
#     are taken one after the other (so the check can fail); "snapshot
#     stop DEV1 DEV2" stops both and removes the access devices;
#  3. when the second device's table cannot be loaded (a COW device too
#     small), the first one has its previous table again: no inactive
#     table, not suspended, no snapshot, no access device, and the writer
#     goes on; when the second device already has a snapshot, nothing is
#     done and its snapshot stays; when the second device cannot be
#     suspended (its ext4 frozen by fsfreeze, on 6.1), the first one is
#     resumed with its previous table;
#  4. stacked devices, one cbw device over the other with ext4 mounted on
#     the upper one and dirty data in the page cache, given lower first:
#     the upper one is suspended first (reported as such), the start ends
#     well within 120 s, and the upper snapshot's file system is clean;
#  5. "cbwctl backup DEV1 DEV2" (full, then incremental with one --bitmap
#     for both) under the writer: in every restored pair device 2's number
#     is not above device 1's; "backup begin DEV1 DEV2" makes two jobs that
#     run and finish one at a time; a begin that fails on the second device
#     leaves the first without a job and its bitmap not frozen.

. "$(dirname -- "$0")/lib.sh"

o1='' o2='' o3='' c1='' c2='' c3='' c4='' small='' writer=''
cbw_setup 300
cbw_require_cbwctl
cbw_require_cmds jq python3 mkfs.ext4 fsck.ext4 fsfreeze
cbw_require_kmod ext4

cbw_loop_create o1 16
cbw_loop_create o2 16
cbw_loop_create c1 16
cbw_loop_create c2 16
cbw_loop_create small 1
d1=$(cbw_name d1)
d2=$(cbw_name d2)
a1=$(cbw_name a1)
a2=$(cbw_name a2)
cbw_create "$d1" "$o1" 128
cbw_create "$d2" "$o2" 128
for n in "$a1" "$a2" "$d1-access" "$d2-access"; do
	cbw_dm_adopt "$n"
done
errf=$CBW_WORK/stderr

# run ARGS...: runs cbwctl, its output dropped; sets err (stderr) and rc.
run()
{
	rc=0
	"$CBWCTL" "$@" >/dev/null 2>"$errf" || rc=$?
	err=$(cat -- "$errf")
}

# seq_of DEV|FILE: the sequence number in the first block.
seq_of()
{
	local direct=()

	[[ ! -b $1 ]] || direct=(iflag=direct)
	dd if="$1" bs=4096 count=1 "${direct[@]}" status=none | head -c 20 |
		tr -d '\0' | sed 's/^0*//; s/^$/0/'
}

# state NAME: what must not change when a start fails.
state()
{
	dmsetup table "$1"
	dmsetup info "$1" | grep -E '^(State|Tables present):'
	"$CBWCTL" --json snapshot info "$1" | jq -c '[.state, .access_devices]'
}

cat >"$CBW_WORK/writer.py" <<'EOF'
import mmap, os, sys
fds = [os.open(p, os.O_WRONLY | os.O_DIRECT) for p in sys.argv[1:3]]
buf = mmap.mmap(-1, 4096)
n = 0
while not os.path.exists(sys.argv[3]):
    n += 1
    buf.seek(0)
    buf.write(b"%020d" % n)
    for fd in fds:
        os.pwrite(fd, buf, 0)
EOF
stopf=$CBW_WORK/writer.stop
cbw_bg writer python3 "$CBW_WORK/writer.py" "$(cbw_dm_path "$d1")" \
	"$(cbw_dm_path "$d2")" "$stopf"

# ---------------------------------------------------------------------------
# 1. Options and checks across the devices
# ---------------------------------------------------------------------------
before1=$(state "$d1")
before2=$(state "$d2")
run snapshot start "$d1" "$d2" --cow "$c1"
cbw_expect_eq "one --cow for two devices: usage error" 2 "$rc"
cbw_check "... that says so" grep -q -- "--cow is given 1 time for 2 devices" "$errf"
run snapshot start "$d1" "$d2" --cow "$c1" --cow "$c2" --access "$a1"
cbw_expect_eq "one --access for two devices: usage error" 2 "$rc"
run snapshot start "$d1" "$d2" --cow-thin vg/pool
cbw_expect_eq "--cow-thin for two devices: usage error" 2 "$rc"
cbw_check "... that says so" grep -q -- "--cow-thin makes the COW device of one device only" "$errf"
run backup "$d1" "$d2" --sync full --cow-file "$CBW_WORK/cow.img" \
	--target "$CBW_WORK/t1" --target "$CBW_WORK/t2"
cbw_expect_eq "--cow-file for a backup of two devices: usage error" 2 "$rc"
cbw_check "... and it made no file" test ! -e "$CBW_WORK/cow.img"
run snapshot start "$d1" "$d1" --cow "$c1" --cow "$c2"
cbw_expect_eq "a device given twice is refused" 1 "$rc"
cbw_check "... that says so" grep -q "is given twice" "$errf"
run snapshot start "$d1" "$d2" --cow "$c1" --cow "$c1"
cbw_expect_eq "a shared COW device is refused" 1 "$rc"
cbw_check "... that says so" grep -q "cannot share the COW device" "$errf"
run snapshot start "$d1" "$d2" --cow "$c1" --cow "$d1"
cbw_expect_eq "a COW device that is the other device is refused" 1 "$rc"
cbw_expect_eq "nothing changed on device 1" "$before1" "$(state "$d1")"
cbw_expect_eq "nothing changed on device 2" "$before2" "$(state "$d2")"

# ---------------------------------------------------------------------------
# 2. One point in time, with the writer running
# ---------------------------------------------------------------------------
bad=0 ok=0 last=0
for i in $(seq 12); do
	run snapshot start "$d1" "$d2" --cow "$c1" --cow "$c2" \
		--access "$a1" --access "$a2"
	if ((rc)); then
		cbw_info "$err"
		bad=$((bad + 1000))
		break
	fi
	s1=$(seq_of "$(cbw_dm_path "$a1")")
	s2=$(seq_of "$(cbw_dm_path "$a2")")
	cbw_info "snapshot $i: device 1 at $s1, device 2 at $s2"
	if ((s2 > s1)); then
		bad=$((bad + 1))
	fi
	((s1 > last)) && ok=$((ok + 1))
	last=$s1
	"$CBWCTL" snapshot stop "$d1" "$d2" >/dev/null
done
cbw_expect_eq "12 snapshots of both devices: device 2 never ahead of device 1" 0 "$bad"
cbw_expect_cmp "the writer went on between the snapshots" "$ok" -ge 10
cbw_expect_eq "snapshot stop DEV1 DEV2: no snapshot, no access device left" \
	'["none",[]] ["none",[]]' \
	"$("$CBWCTL" --json snapshot info "$d1" | jq -c '[.state, .access_devices]') $("$CBWCTL" --json snapshot info "$d2" | jq -c '[.state, .access_devices]')"

# The same check on two snapshots taken one after the other.
seen=0
for i in $(seq 5); do
	"$CBWCTL" snapshot start "$d1" --cow "$c1" --access "$a1" >/dev/null
	sleep 1
	"$CBWCTL" snapshot start "$d2" --cow "$c2" --access "$a2" >/dev/null
	s1=$(seq_of "$(cbw_dm_path "$a1")")
	s2=$(seq_of "$(cbw_dm_path "$a2")")
	"$CBWCTL" snapshot stop "$d1" "$d2" >/dev/null
	cbw_info "separate snapshots: device 1 at $s1, device 2 at $s2"
	if ((s2 > s1)); then
		seen=1
		break
	fi
done
cbw_expect_eq "separate snapshots: the check sees device 2 ahead" 1 "$seen"

# ---------------------------------------------------------------------------
# 3. Failures roll every device back
# ---------------------------------------------------------------------------
before1=$(state "$d1")
before2=$(state "$d2")
run snapshot start "$d1" "$d2" --cow "$c1" --cow "$small" \
	--access "$a1" --access "$a2"
cbw_expect_eq "device 2's table cannot be loaded: the start fails" 1 "$rc"
cbw_check "... the message names device 2" grep -q "Cannot load the new table of '$d2'" "$errf"
cbw_check "... and says every device has its previous table" grep -q "have their previous tables again" "$errf"
cbw_expect_eq "device 1 has its previous table, live only, running, no snapshot" \
	"$before1" "$(state "$d1")"
cbw_expect_eq "device 2 is as it was" "$before2" "$(state "$d2")"
cbw_check "no access device is left" test ! -e "/dev/mapper/$a1" -a ! -e "/dev/mapper/$a2"
cbw_check "the writer is still running" kill -0 "$writer"

"$CBWCTL" snapshot start "$d2" --cow "$c2" >/dev/null
before2=$(state "$d2")
run snapshot start "$d1" "$d2" --cow "$c1" --cow "$small"
cbw_expect_eq "device 2 already has a snapshot: refused" 1 "$rc"
cbw_check "... the message names device 2" grep -q "Device '$d2' already has a snapshot" "$errf"
cbw_expect_eq "device 1 is as it was" "$before1" "$(state "$d1")"
cbw_expect_eq "device 2 keeps its snapshot" "$before2" "$(state "$d2")"
"$CBWCTL" snapshot stop "$d2" >/dev/null

# ---------------------------------------------------------------------------
# 4. Stacked devices: the upper one is suspended first
# ---------------------------------------------------------------------------
cbw_loop_create o3 32
cbw_loop_create c3 32
cbw_loop_create c4 32
low=$(cbw_name low)
up=$(cbw_name up)
a4=$(cbw_name a4)
cbw_dm_adopt "$a4"
cbw_create "$low" "$o3" 128
cbw_create "$up" "$(cbw_dm_path "$low")" 128
mkfs.ext4 -q -F "$(cbw_dm_path "$up")"
mnt=$CBW_WORK/mnt
cbw_mount "$(cbw_dm_path "$up")" "$mnt"
head -c 4M /dev/urandom >"$mnt/dirty"
a3=$(cbw_name a3)
cbw_dm_adopt "$a3"
"$CBWCTL" --json snapshot start "$low" "$up" --cow "$c3" --cow "$c4" \
	--access "$a3" --access "$a4" >"$CBW_WORK/stacked.json" 2>"$errf" &
starter=$!
for i in $(seq 120); do
	kill -0 "$starter" 2>/dev/null || break
	sleep 1
done
rc=0
if kill -0 "$starter" 2>/dev/null; then
	cbw_fail "stacked devices, lower given first: the start ends within 120 s"
	dmsetup resume "$low" || true
	wait "$starter" || true
else
	wait "$starter" || rc=$?
	cbw_expect_eq "stacked devices, lower given first: the start succeeds" 0 "$rc"
fi
cbw_expect_eq "the upper device is suspended first" "$up $low" \
	"$(jq -r '.suspend_order | join(" ")' "$CBW_WORK/stacked.json")"
cbw_check "the upper snapshot's ext4 is clean (frozen by the suspend)" \
	fsck.ext4 -n -f "$(cbw_dm_path "$a4")"
cbw_expect_eq "snapshot stop of both" "$low $up" \
	"$("$CBWCTL" --json snapshot stop "$low" "$up" | jq -r '[.[].device] | join(" ")')"
cbw_check "no access device is left" test ! -e "/dev/mapper/$a3" -a ! -e "/dev/mapper/$a4"

# A suspend that fails: dm cannot freeze a file system that fsfreeze froze
# (6.1; later kernels nest the two freezes, and the suspend succeeds).
before1=$(state "$d1")
beforeu=$(state "$up")
thaw()
{
	fsfreeze -u "$mnt" 2>/dev/null || true
}
cbw_defer thaw
fsfreeze -f "$mnt"
run snapshot start "$d1" "$up" --cow "$c1" --cow "$c4" --access "$a1" --access "$a4"
thaw
if ((rc == 0)); then
	"$CBWCTL" snapshot stop "$d1" "$up" >/dev/null
	cbw_skip "the second device's suspend fails: device 1 is resumed with its previous table" \
		"this kernel suspends a device whose file system fsfreeze froze"
else
	cbw_check "the second device's suspend fails, the message names it" \
		grep -q "Cannot suspend '$up'" "$errf"
	cbw_expect_eq "... device 1 (suspended first) is resumed with its previous table" \
		"$before1" "$(state "$d1")"
	cbw_expect_eq "... the second device is as it was" "$beforeu" "$(state "$up")"
	cbw_check "... no access device is left" test ! -e "/dev/mapper/$a1" -a ! -e "/dev/mapper/$a4"
	cbw_check "... the writer on device 1 goes on" kill -0 "$writer"
fi
cbw_umount "$mnt"

# ---------------------------------------------------------------------------
# 5. Backups of both devices at one point
# ---------------------------------------------------------------------------
"$CBWCTL" bitmap add "$d1" b0
"$CBWCTL" bitmap add "$d2" b0
run backup "$d1" "$d2" --sync full --bitmap b0 --bitmap-mode on-success \
	--cow "$c1" --cow "$c2" --target "$CBW_WORK/full1" --target "$CBW_WORK/full2"
cbw_expect_eq "full backup of both devices" 0 "$rc"
[[ $rc == 0 ]] || cbw_info "$err"
sleep 1
run backup "$d1" "$d2" --sync incremental --bitmap b0 \
	--cow "$c1" --cow "$c2" --target "$CBW_WORK/inc1" --target "$CBW_WORK/inc2"
cbw_expect_eq "incremental backup of both devices, one --bitmap" 0 "$rc"
[[ $rc == 0 ]] || cbw_info "$err"
bad=0
for k in full inc; do
	if [[ $k == full ]]; then
		"$CBWCTL" restore --to "$CBW_WORK/$k-r1" "$CBW_WORK/full1" >/dev/null
		"$CBWCTL" restore --to "$CBW_WORK/$k-r2" "$CBW_WORK/full2" >/dev/null
	else
		"$CBWCTL" restore --to "$CBW_WORK/$k-r1" "$CBW_WORK/full1" "$CBW_WORK/inc1" >/dev/null
		"$CBWCTL" restore --to "$CBW_WORK/$k-r2" "$CBW_WORK/full2" "$CBW_WORK/inc2" >/dev/null
	fi
	s1=$(seq_of "$CBW_WORK/$k-r1")
	s2=$(seq_of "$CBW_WORK/$k-r2")
	cbw_info "restored $k: device 1 at $s1, device 2 at $s2"
	((s2 <= s1 && s1 > 0)) || bad=1
done
cbw_expect_eq "in every restored pair device 2 is not ahead of device 1" 0 "$bad"

run backup "$d1" "$d2" --sync full --cow "$c1" --cow "$c2" --target "$CBW_WORK/full1"
cbw_expect_eq "one --target for two devices: usage error" 2 "$rc"

run backup begin "$d1" "$d2" --sync full --cow "$c1" --cow "$c2"
cbw_expect_eq "backup begin DEV1 DEV2" 0 "$rc"
cbw_expect_eq "... two jobs" "begun begun" \
	"$("$CBWCTL" --json backup status "$d1" | jq -r .state) $("$CBWCTL" --json backup status "$d2" | jq -r .state)"
for d in "$d1" "$d2"; do
	"$CBWCTL" backup run "$d" --target "$CBW_WORK/step-$d" >/dev/null
	"$CBWCTL" backup finish "$d" >/dev/null
done
s1=$(seq_of "$CBW_WORK/step-$d1")
s2=$(seq_of "$CBW_WORK/step-$d2")
cbw_info "backup begin: device 1 at $s1, device 2 at $s2"
cbw_check "... run and finished one at a time: device 2 not ahead" test "$s2" -le "$s1"

run backup begin "$d1" "$d2" --sync full --bitmap b0 --bitmap-mode on-success \
	--cow "$c1" --cow "$small"
cbw_expect_eq "backup begin that fails on device 2" 1 "$rc"
cbw_expect_eq "... leaves device 1 without a job, its bitmap not frozen, no snapshot" \
	"none false none" \
	"$("$CBWCTL" --json backup status "$d1" | jq -r .state) $("$CBWCTL" --json bitmap query "$d1" b0 | jq -r .frozen) $("$CBWCTL" --json snapshot info "$d1" | jq -r .state)"

touch "$stopf"
wait "$writer" || true
cbw_done
