#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# udev and LVM hygiene: a PV on a cbw device, and snapshots of it.
#
# A PV written through a cbw device is also on its origin, and during a
# snapshot on the access device, with the same PV UUID.  Proves that the
# access device that cbwctl creates has the DM UUID CBW-access-NAME and
# asks udev (in the uevent's cookie) to skip its disk rules and the other
# rules (blkid, /dev/disk links, LVM's scan), while the cbw device's own
# uevents do not; that without an LVM filter the origin is a duplicate
# (vgcreate refused, as dm-cbw.rst says); and that with the filter and with
# the devices file that dm-cbw.rst documents a VG on the cbw device is
# created and activates on the cbw device, before and during a snapshot,
# never on the origin or the access device.
#
# LVM runs without udev here (udev_sync=0, udev_rules=0) with its own
# configuration in LVM_SYSTEM_DIR; the udev flags are read from the kernel
# uevents, which carry them whether or not udev runs.

. "$(dirname -- "$0")/lib.sh"

origin=
cow=
listener=
cbw_setup 200
cbw_require_cmds lvm python3
cbw_require_cbwctl
cbw_loop_create origin 64
cbw_loop_create cow 64
name=$(cbw_name vm0)
acc_name=$(cbw_name vm0-snap)
vg=${CBW_NAME_PREFIX}vg
cbw_dm_create "$name" "$(cbw_cbw_table "$origin" - 128)" -u "CBW-$name"
guest=$(cbw_dm_path "$name")
acc=/dev/mapper/$acc_name

export LVM_SYSTEM_DIR=$CBW_WORK/lvm
# lvm complains of the descriptors it inherits from the test harness.
export LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p -- "$LVM_SYSTEM_DIR/devices"

# lvm_conf [DEVICES_SETTINGS...]: LVM's configuration without udev, plus
# these lines in its devices section.
lvm_conf()
{
	local line

	{
		echo 'devices {'
		echo '	obtain_device_list_from_udev = 0'
		echo '	external_device_info_source = "none"'
		for line; do
			printf '\t%s\n' "$line"
		done
		echo '}'
		echo 'activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }'
		echo 'global { event_activation = 0 }'
		echo 'backup { backup = 0 archive = 0 }'
	} >"$LVM_SYSTEM_DIR/lvm.conf"
}

# The filter of dm-cbw.rst: accept the cbw device, reject everything else.
filter_conf()
{
	lvm_conf 'use_devicesfile = 0' \
		"global_filter = [ \"a|^/dev/mapper/$name\$|\", \"r|.*|\" ]"
}

# The devices file of dm-cbw.rst: it lists the cbw device only.
devicesfile_conf()
{
	lvm_conf 'use_devicesfile = 1'
}

no_filter_conf()
{
	lvm_conf 'use_devicesfile = 0'
}

# The VG is deactivated before the cbw device goes.
vg_off()
{
	filter_conf
	lvm vgchange -an "$vg" >/dev/null 2>&1 || true
}
cbw_defer vg_off

# The access device, if cbwctl created it and the test did not stop it.
access_off()
{
	! cbw_dm_exists "$acc_name" || dmsetup remove --retry "$acc_name"
}
cbw_defer access_off

# The PV devices LVM uses, one path a line.
pv_names()
{
	lvm pvs --noheadings -o pv_name 2>/dev/null | awk '{ print $1 }'
}

# MAJOR:MINOR of what the VG's LV is mapped onto.
lv_deps()
{
	dmsetup deps -o devno "$vg-lv0" | sed -n 's/.*: (\(.*\))$/\1/p' |
		tr -d ' ' | tr ',' ':'
}

# "VG activates on the cbw device": deactivate, activate, check the mapping.
check_activation()
{
	local what=$1

	cbw_check "$what: vgchange -an" lvm vgchange -an "$vg"
	cbw_check "$what: vgchange -ay" lvm vgchange -ay "$vg"
	cbw_expect_eq "$what: the LV is mapped onto the cbw device" \
		"$(cbw_dm_devno "$name")" "$(lv_deps)"
}

# --- The uevents of cbwctl snapshot start -----------------------------------

uevents=$CBW_WORK/uevents
stop=$CBW_WORK/uevents.stop
# Prints "ACTION DEVNAME DM_COOKIE" for each device-mapper uevent until
# $stop exists, then drains what is queued.
listen_uevents()
{
	python3 - "$uevents" "$stop" <<'EOF'
import os, select, socket, sys

out, stop = sys.argv[1:]
NETLINK_KOBJECT_UEVENT = 15
sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                     NETLINK_KOBJECT_UEVENT)
sock.bind((0, 1))  # the kernel's multicast group
with open(out, "w") as f:
    print("ready", file=f, flush=True)
    while True:
        stopping = os.path.exists(stop)
        if not select.select([sock], [], [], 0 if stopping else 0.1)[0]:
            if stopping:
                break
            continue
        fields = sock.recv(1 << 16).split(b"\0")[1:]
        env = dict(kv.decode().split("=", 1) for kv in fields if b"=" in kv)
        if "DM_COOKIE" in env:
            print(env.get("ACTION"), env.get("DEVNAME"), env["DM_COOKIE"],
                  file=f, flush=True)
EOF
}

# udev_flags DEVNAME: the flags of the last "change" uevent of DEVNAME, as
# dmsetup udevflags prints them (one NAME='1' a line).
udev_flags()
{
	local cookie

	cookie=$(awk -v d="$1" '$1 == "change" && $2 == d { c = $3 } END { print c }' \
		"$uevents")
	[[ -n $cookie ]] || return 0
	dmsetup udevflags "$cookie"
}

# --- Without a filter: the origin is a duplicate ----------------------------

no_filter_conf
cbw_check "pvcreate on the cbw device" lvm pvcreate -q "$guest"
out=$(lvm vgcreate "$vg" "$guest" 2>&1) && rc=0 || rc=$?
cbw_info <<<"$out"
cbw_expect_cmp "without a filter, vgcreate on the cbw device fails" "$rc" -ne 0
cbw_check "... because the origin has the same PV UUID" \
	grep -q "Cannot use device $guest with duplicates" <<<"$out"

# --- With the documented filter ---------------------------------------------

filter_conf
cbw_check "with the filter: vgcreate on the cbw device" \
	lvm vgcreate -q "$vg" "$guest"
cbw_check "with the filter: lvcreate" lvm lvcreate -q -n lv0 -L 16M "$vg"
cbw_expect_eq "with the filter: LVM uses the cbw device only" "$guest" \
	"$(pv_names)"
check_activation "with the filter"

# A snapshot, with the access device that cbwctl creates.
cbw_bg listener listen_uevents
for _ in $(seq 100); do
	[[ ! -s $uevents ]] || break
	sleep 0.1
done
[[ -s $uevents ]] || cbw_bail "the uevent listener did not start"
# Without DM_DISABLE_UDEV, libdevmapper sends the flags cbwctl asks for as
# they are (it would add DISABLE_DM_RULES and DISABLE_SUBSYSTEM_RULES); with
# no udev running it still makes the nodes itself.
cbw_check "cbwctl snapshot start --access" env -u DM_DISABLE_UDEV \
	"$CBWCTL" snapshot start "$name" --cow "$cow" --access "$acc_name"
touch -- "$stop"
wait "$listener" || cbw_bail "the uevent listener failed"
dmsetup mknodes "$acc_name"
[[ -b $acc ]] || cbw_bail "no access device $acc"
cbw_info "uevents: $(tr '\n' ';' <"$uevents")"

cbw_expect_eq "the access device's DM UUID" "CBW-access-$acc_name" \
	"$(dmsetup info -c --noheadings -o uuid "$acc_name")"
cbw_expect_eq "the cbw device keeps its DM UUID" "CBW-$name" \
	"$(dmsetup info -c --noheadings -o uuid "$name")"
acc_flags=$(udev_flags "$(dmsetup info -c --noheadings -o blkdevname "$acc_name")")
cbw_info "access device: ${acc_flags//$'\n'/ }"
cbw_check "the access device's uevent has a cookie" test -n "$acc_flags"
for flag in DISK OTHER SUBSYSTEM; do
	cbw_check "the access device's uevent disables udev's $flag rules" \
		grep -qx "DM_UDEV_DISABLE_${flag}_RULES_FLAG='1'" <<<"$acc_flags"
done
cbw_check_fails "... but not its dm rules (/dev/mapper/NAME)" \
	grep -q "DM_UDEV_DISABLE_DM_RULES_FLAG='1'" <<<"$acc_flags"
guest_flags=$(udev_flags "$(dmsetup info -c --noheadings -o blkdevname "$name")")
cbw_info "cbw device: ${guest_flags//$'\n'/ }"
cbw_check "the cbw device's resume uevent has a cookie" test -n "$guest_flags"
cbw_check_fails "the cbw device's uevent leaves udev's disk and other rules on" \
	grep -Eq "DM_UDEV_DISABLE_(DISK|OTHER)_RULES_FLAG='1'" <<<"$guest_flags"

cbw_expect_eq "during a snapshot: LVM uses the cbw device only" "$guest" \
	"$(pv_names)"
cbw_check_fails "during a snapshot: the filter rejects the access device" \
	lvm pvs "$acc"
check_activation "during a snapshot, with the filter"

# --- With the devices file instead ------------------------------------------

devicesfile_conf
cbw_check "lvmdevices --adddev the cbw device" \
	lvm lvmdevices --adddev "$guest"
cbw_info "system.devices: $(grep -v '^#' "$LVM_SYSTEM_DIR/devices/system.devices" | tr '\n' ' ')"
cbw_expect_eq "with the devices file: LVM uses the cbw device only" "$guest" \
	"$(pv_names)"
check_activation "during a snapshot, with the devices file"

cbw_check "cbwctl snapshot stop" "$CBWCTL" snapshot stop "$name"
check_activation "after the snapshot, with the devices file"

# The longest access device name is 117 characters: CBW-access-NAME is 128.
long=$(printf 'a%.0s' $(seq 118))
out=$("$CBWCTL" snapshot start "$name" --cow "$cow" --access "$long" 2>&1) &&
	rc=0 || rc=$?
cbw_expect_eq "a 118-character access name is refused" \
	"1 cbwctl: Access device name '$long' is too long: at most 117 characters, so that its DM UUID CBW-access-NAME fits in 128" \
	"$rc $out"
cbw_check "... before the snapshot starts" \
	grep -q "^state: *none$" <<<"$("$CBWCTL" snapshot info "$name")"

# --- Without a filter, the duplicates stop the VG ---------------------------

cbw_check "vgchange -an" lvm vgchange -an "$vg"
no_filter_conf
out=$(lvm vgchange -ay "$vg" 2>&1) && rc=0 || rc=$?
cbw_info <<<"$out"
cbw_expect_cmp "without a filter, the VG does not activate" "$rc" -ne 0
cbw_check "... because the origin is a duplicate of the cbw device" \
	grep -q "Not using device $origin" <<<"$out"

filter_conf
cbw_check "vgremove" lvm vgremove -q -f "$vg"
cbw_done
