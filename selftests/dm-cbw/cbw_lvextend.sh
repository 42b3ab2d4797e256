#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# cbwctl lvextend on an attached LV with a mounted, busy ext4: the LV grows
# (into extents that are not next to its old ones), the cbw layer stays,
# every bitmap keeps its bits and its recording state and has the new space
# dirty, the hidden device gets the table LVM itself loads (lvchange
# --refresh after a detach changes nothing), resize2fs grows the file
# system online, and fsck is clean after the unmount.  Refused: during a
# snapshot (LVM's metadata unchanged), with -r, on an LV that is not
# attached.
#
# LVM runs without udev (udev_sync=0, udev_rules=0) with its own
# configuration in LVM_SYSTEM_DIR, which accepts only the test's PV.

. "$(dirname -- "$0")/lib.sh"

MIB=1048576
pv=
cbw_setup 400
cbw_require_cmds lvm mkfs.ext4 e2fsck resize2fs python3 df
cbw_require_kmod ext4
cbw_require_cbwctl
export CBW_RUN_DIR=$CBW_WORK/run
mkdir -p -- "$CBW_RUN_DIR"
cbw_loop_create pv 160
vg=${CBW_NAME_PREFIX}xvg
lvdm=$vg-lv
lvdev=/dev/mapper/$lvdm
hidden=cbw-hidden-$lvdm
W=$CBW_WORK
ctl=$W/ctl
mnt=$W/mnt
mkdir -p -- "$ctl"

export LVM_SYSTEM_DIR=$W/lvm
export LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p -- "$LVM_SYSTEM_DIR"
cat >"$LVM_SYSTEM_DIR/lvm.conf" <<EOF
devices {
	obtain_device_list_from_udev = 0
	external_device_info_source = "none"
	use_devicesfile = 0
	global_filter = [ "a|^$pv\$|", "r|.*|" ]
}
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { event_activation = 0 }
backup { backup = 0 archive = 0 }
EOF

# shellcheck disable=SC2317 # run through cbw_defer
drop_dev() { ! cbw_dm_exists "$1" || dmsetup remove --retry "$1"; }
# shellcheck disable=SC2317 # run through cbw_defer
vg_off()
{
	"$CBWCTL" snapshot stop "$lvdm" >/dev/null 2>&1 || true
	lvm vgchange -an "$vg" >/dev/null 2>&1
	drop_dev "$hidden"
	lvm vgremove -f "$vg" >/dev/null 2>&1 || true
}
cbw_defer vg_off

run()
{
	rc=0
	"$CBWCTL" "$@" >"$W/stdout" 2>"$W/stderr" || rc=$?
	if ((rc)); then
		cbw_info "cbwctl $* exited with $rc"
		cbw_info <"$W/stderr"
	fi
}

lv_mib() { lvm lvs --noheadings --units m --nosuffix -o lv_size "$vg/lv" | tr -d ' '; }

# dump NAME: the extents of bitmap NAME, as JSON.
dump() { "$CBWCTL" --json bitmap dump "$lvdm" "$1"; }

# covers BEFORE AFTER: every extent of dump BEFORE lies in dump AFTER.
covers()
{
	python3 - "$1" "$2" <<'EOF'
import json, sys
def ext(p):
    return [(e["offset"], e["offset"] + e["length"])
            for e in json.load(open(p))["extents"]]
after = ext(sys.argv[2])
for s, e in ext(sys.argv[1]):
    if not any(a <= s and e <= b for a, b in after):
        print("extent %d-%d is not dirty any more" % (s, e))
        sys.exit(1)
EOF
}

lvm vgcreate -q -s 1M "$vg" "$pv" >/dev/null 2>&1 || cbw_bail "cannot create VG $vg"
lvm lvcreate -q -L 48M -n lv "$vg" >/dev/null 2>&1 || cbw_bail "cannot create LV"
# The extension cannot be next to the old extents.
lvm lvcreate -q -L 8M -n gap "$vg" >/dev/null 2>&1 || cbw_bail "cannot create LV gap"
mkfs.ext4 -q -F -b 4096 "$lvdev"
cbw_mount "$lvdev" "$mnt"

run attach "$vg/lv" --bitmap b0 --bitmap b1:4K
cbw_expect_eq "attach with bitmaps b0 and b1" 0 "$rc"
run bitmap disable "$lvdm" b1
cbw_bg writer_pid cbw_fs_writer "$mnt" "$ctl" 256 2>"$W/writer.err"
cbw_defer touch -- "$ctl/stop"
sleep 3

# --- refusals -----------------------------------------------------------------

run lvextend "$vg/lv" -r -L +16M
cbw_expect_eq "-r is a usage error" 2 "$rc"
run lvextend "$vg/gap" -L +4M
cbw_expect_eq "an LV that is not attached: refused" 1 "$rc"
cbw_check "... saying so" grep -q "not an attached LVM logical volume" "$W/stderr"
run snapshot start "$lvdm" --cow-file "$W/cow.img"
cbw_expect_eq "snapshot start" 0 "$rc"
run lvextend "$vg/lv" -L +16M
cbw_expect_eq "during a snapshot: refused" 1 "$rc"
cbw_check "... saying so" grep -q "A snapshot is active" "$W/stderr"
cbw_expect_eq "... and LVM's metadata is unchanged" 48.00 "$(lv_mib)"
run snapshot stop "$lvdm"
cbw_expect_eq "snapshot stop" 0 "$rc"

# --- extend under the writer --------------------------------------------------

old=$(blockdev --getsize64 "$lvdev")
dump b0 >"$W/b0.before"
dump b1 >"$W/b1.before"
cbw_info "before: b0 $(python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' <"$W/b0.before") bytes dirty"
run lvextend "$vg/lv" -L +32M
cbw_expect_eq "cbwctl lvextend -L +32M" 0 "$rc"
cbw_info "$(cat -- "$W/stdout")"
new=$(blockdev --getsize64 "$lvdev")
cbw_expect_eq "the LV is 80 MiB in LVM" 80.00 "$(lv_mib)"
cbw_expect_eq "... and in the kernel" $((80 * MIB)) "$new"
cbw_expect_eq "it is still attached" attached \
	"$("$CBWCTL" --json attach --check "$vg/lv" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
cbw_info "$hidden: $(dmsetup table "$hidden" | tr '\n' ';')"
cbw_expect_eq "the hidden device has two segments" 2 "$(dmsetup table "$hidden" | wc -l)"
dump b0 >"$W/b0.after"
dump b1 >"$W/b1.after"
cbw_check "b0 kept its bits" covers "$W/b0.before" "$W/b0.after"
cbw_check "b1 kept its bits" covers "$W/b1.before" "$W/b1.after"
for b in b0 b1; do
	cbw_expect_eq "$b covers the new size and has the new space dirty" $((new - old)) \
		"$("$CBWCTL" --json bitmap dump "$lvdm" "$b" --offset "$old" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"
done
cbw_expect_eq "b0 still records, b1 still does not" "True False" \
	"$(for b in b0 b1; do "$CBWCTL" --json bitmap query "$lvdm" "$b"; done |
		python3 -c 'import json,sys
d = json.JSONDecoder(); s = sys.stdin.read().strip(); out = []
while s:
    j, n = d.raw_decode(s); out.append(str(j["recording"])); s = s[n:].strip()
print(*out)')"
cbw_check "the bitmaps of the old size are gone" \
	test "$("$CBWCTL" bitmap list "$lvdm" | tail -n +2 | wc -l)" -eq 2
cbw_check "resize2fs grows the mounted file system" resize2fs "$lvdev"
cbw_info "df: $(df -k --output=size "$mnt" | tail -n 1) KiB"
cbw_expect_cmp "the file system has the new size" \
	"$(df -k --output=size "$mnt" | tail -n 1 | tr -d ' ')" -gt $((60 * 1024))
sleep 2
dump b0 >"$W/b0.late"
cbw_check "writes after the extend are recorded" covers "$W/b0.after" "$W/b0.late"
touch -- "$ctl/stop"
wait "$writer_pid" || true
cbw_check "the writer saw no error" test ! -s "$W/writer.err"

# --- LVM's own table ----------------------------------------------------------

h_table=$(dmsetup table "$hidden")
run detach "$vg/lv"
cbw_expect_eq "detach" 0 "$rc"
cbw_expect_eq "the LV has the hidden device's table" "$h_table" "$(dmsetup table "$lvdm")"
cbw_check "lvchange --refresh" lvm lvchange -q --refresh "$vg/lv"
cbw_expect_eq "... changes nothing: it was LVM's table" "$h_table" "$(dmsetup table "$lvdm")"
cbw_umount "$mnt"
cbw_check "fsck is clean" e2fsck -f -n "$lvdev"

cbw_done
