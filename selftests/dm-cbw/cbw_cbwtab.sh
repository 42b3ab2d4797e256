#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot-time activation: a cbwtab file, the units cbwtab-generator writes
# for it, and "cbwctl tab start" and "tab stop".
#
# Proves that:
#  1. the generator writes one unit cbw@NAME.service per good line (names
#     escaped as systemd does), bound to and after the origin's device unit,
#     before local-fs-pre.target and cbw.target, running "cbwctl tab start"
#     and "tab stop"; links it from cbw.target (requires, wants with nofail,
#     none with noauto) and from dev-mapper-NAME.device; reports a bad line
#     as FILE:LINE, goes on with the others and exits non-zero; creates no
#     device; and that systemd-analyze verify (where installed) accepts
#     the units;
#  2. "tab start" creates each device (not noauto ones) with a cbw table
#     over the whole origin (a path, or UUID= found with blkid), the chunk
#     size of the line and the DM UUID CBW-NAME, with the line's bitmaps;
#     reports the bad line and exits non-zero; a second start changes
#     nothing, also when blkid finds the cbw device by the UUID; writes through /dev/mapper/NAME are recorded in the bitmaps;
#     a line whose device exists with another table is an error;
#  3. "tab stop" refuses a device that is open or has a running snapshot,
#     removes the others, and a second stop finds them inactive;
#  4. make install puts the generator, cbw.target and cbwtab(5) under
#     DESTDIR and prefix, and make uninstall removes them; cbwtab(5)
#     renders without warnings.

. "$(dirname -- "$0")/lib.sh"

uuid=c0ffee00-1234-4bcd-8def-0123456789ab
origin1='' origin2='' origin3='' cow=''
cbw_setup 200
cbw_require_cbwctl
CBWCTL_DIR=$(dirname -- "$CBWCTL")
cbw_require_cmds jq mkfs.ext4 blkid
cbw_loop_create origin1 16
cbw_loop_create origin2 16
cbw_loop_create origin3 8
cbw_loop_create cow 16
mkfs.ext4 -q -F -U "$uuid" "$origin2"

a=$(cbw_name a)
b=$(cbw_name b)
noauto=$(cbw_name noauto)
bad=$(cbw_name bad)
# The devices are made by cbwctl: remove what is left of them at the end.
for n in "$a" "$b" "$noauto" "$bad"; do
	cbw_dm_adopt "$n"
done

tab=$CBW_WORK/cbwtab
cat >"$tab" <<EOF
# cbwtab of the test: NAME ORIGIN [OPTIONS]

$a	$origin1	chunk=128K,bitmap=daily,bitmap=hourly:1M
	# an indented comment
$b   UUID=$uuid   nofail
$bad $origin3 chunk=3K
$noauto $origin3 noauto
EOF
bad_msg="cbwctl: $tab:6: chunk=3K: the chunk size must be a power of 2 from 4K to 1G"
errf=$CBW_WORK/stderr

# run ARGS...: runs cbwctl; sets out (stdout), err (stderr), rc.
run()
{
	rc=0
	out=$("$CBWCTL" "$@" 2>"$errf") || rc=$?
	err=$(cat -- "$errf")
}

# esc STRING: systemd's escaping of a unit name part, for these names.
esc()
{
	local s=${1//-/\\x2d}

	printf '%s\n' "${s//\//-}"
}

# ---------------------------------------------------------------------------
# 1. The generator
# ---------------------------------------------------------------------------
# The generator as make install writes it, for this cbwctl.
gen=$CBW_WORK/cbwtab-generator
if [[ -f $CBWCTL_DIR/cbwtab-generator.in ]]; then
	sed "s|@sbindir@|$CBWCTL_DIR|g" "$CBWCTL_DIR/cbwtab-generator.in" >"$gen"
else
	cbw_info "no cbwtab-generator.in next to $CBWCTL: its one command instead"
	printf '#!/bin/sh\nexec %q tab generate "$@"\n' "$CBWCTL" >"$gen"
fi
chmod 755 "$gen"
units=$CBW_WORK/units
mkdir -p "$units" "$units.early" "$units.late"
rc=0
CBWTAB=$tab "$gen" "$units" "$units.early" "$units.late" 2>"$errf" || rc=$?
cbw_expect_eq "generator: the bad line is reported as FILE:LINE, exit 1" \
	"1|$bad_msg" "$rc|$(cat -- "$errf")"

ua="cbw@$(esc "$a").service"
ub="cbw@$(esc "$b").service"
un="cbw@$(esc "$noauto").service"
cbw_expect_eq "generator: one unit per good line, none for the bad one" \
	"$(printf '%s\n' "$ua" "$ub" "$un" | sort)" \
	"$(cd "$units" && printf '%s\n' *.service | sort)"
cbw_expect_eq "generator: nothing in the early and late directories" "" \
	"$(find "$units.early" "$units.late" -mindepth 1)"

# unit_is FILE DESC EXPECTED-LINES...: the unit's settings (no comments).
unit_is()
{
	local file=$1 desc=$2

	shift 2
	cbw_expect_eq "generator: $desc" "$(printf '%s\n' "$@")" \
		"$(grep -v '^#' "$units/$file" | grep -v '^$')"
}

dev_a="dev-mapper-$(esc "$a")"
unit_is "$ua" "the unit of a path origin" \
	"[Unit]" \
	"Description=dm-cbw device %I" \
	"Documentation=man:cbwtab(5) man:cbwctl(8)" \
	"SourcePath=$tab" \
	"DefaultDependencies=no" \
	"IgnoreOnIsolate=true" \
	"BindsTo=$(esc "${origin1#/}").device" \
	"After=$(esc "${origin1#/}").device systemd-modules-load.service" \
	"Wants=local-fs-pre.target blockdev@$dev_a.target" \
	"Before=local-fs-pre.target cbw.target blockdev@$dev_a.target" \
	"Conflicts=umount.target" \
	"Before=umount.target" \
	"[Service]" \
	"Type=oneshot" \
	"RemainAfterExit=yes" \
	"ExecStart=$CBWCTL tab start --tab $tab %I" \
	"ExecStop=$CBWCTL tab stop --tab $tab %I"
uuid_unit="dev-disk-by\\x2duuid-$(esc "$uuid").device"
cbw_expect_eq "generator: a UUID= origin binds to its by-uuid device unit" \
	"BindsTo=$uuid_unit|After=$uuid_unit systemd-modules-load.service" \
	"$(grep -E '^(BindsTo|After)=' "$units/$ub" | paste -sd '|')"
if command -v systemd-escape >/dev/null; then
	cbw_expect_eq "generator: the names are systemd-escape's" \
		"$(systemd-escape "$a")|$(systemd-escape --path "/dev/disk/by-uuid/$uuid")" \
		"$(esc "$a")|${uuid_unit%.device}"
fi

# links DIR: the dependency links in DIR, as "DIR/LINK -> TARGET".
links()
{
	local l

	for l in "$units/$1"/*; do
		[[ -L $l ]] && printf '%s -> %s\n' "${l#"$units"/}" "$(readlink "$l")"
	done
}
cbw_expect_eq "generator: cbw.target requires the device of a plain line" \
	"cbw.target.requires/$ua -> ../$ua" "$(links cbw.target.requires)"
cbw_expect_eq "generator: cbw.target only wants the device of a nofail line" \
	"cbw.target.wants/$ub -> ../$ub" "$(links cbw.target.wants)"
for u in "$ua" "$ub" "$un"; do
	n=${u#cbw@}
	n=dev-mapper-${n%.service}.device.requires
	cbw_expect_eq "generator: $n pulls in $u" "$n/$u -> ../$u" "$(links "$n")"
done
cbw_expect_eq "generator: sysinit.target wants cbw.target" \
	"sysinit.target.wants/cbw.target" \
	"$(links sysinit.target.wants | sed 's/ -> .*//')"
cbw_check_fails "generator: no device was created" cbw_dm_exists "$a"
if command -v systemd-analyze >/dev/null; then
	cbw_check "generator: systemd-analyze verify accepts the units" \
		systemd-analyze verify --man=no "$units/$ua" "$units/$ub" \
		"$units/$un"
else
	cbw_skip "generator: systemd-analyze verify" "no systemd-analyze"
fi

rc=0
CBWTAB=$CBW_WORK/none "$gen" "$units.late" "$units.late" "$units.late" 2>"$errf" || rc=$?
cbw_expect_eq "generator: no cbwtab, no unit and no error" "0||" \
	"$rc|$(ls -A "$units.late")|$(cat -- "$errf")"

# ---------------------------------------------------------------------------
# 2. tab start
# ---------------------------------------------------------------------------
run tab start --tab "$tab"
cbw_expect_eq "start: the bad line is reported, exit 1" "1|$bad_msg" "$rc|$err"
cbw_expect_eq "start: the good lines are created, not the noauto one" \
	"$a: created|$b: created" "$(paste -sd '|' <<<"$out")"

# devno BLOCKDEV: its MAJOR:MINOR.
devno()
{
	local hex

	hex=$(stat -L -c '%t %T' "$1")
	printf '%d:%d\n' "0x${hex% *}" "0x${hex#* }"
}

# table NAME: "TABLE|UUID" of a device.
table()
{
	printf '%s|%s\n' "$(dmsetup table "$1")" \
		"$(dmsetup info -c --noheadings -o uuid "$1")"
}
ta="0 $(cbw_size "$origin1") cbw $(devno "$origin1") - 256|CBW-$a"
tb="0 $(cbw_size "$origin2") cbw $(devno "$origin2") - 128|CBW-$b"
cbw_expect_eq "start: $a has its table and DM UUID" "$ta" "$(table "$a")"
cbw_expect_eq "start: $b, found by UUID=, has its table and DM UUID" \
	"$tb" "$(table "$b")"
cbw_check_fails "start: the noauto line is not created" cbw_dm_exists "$noauto"
cbw_check_fails "start: the bad line is not created" cbw_dm_exists "$bad"

# bitmaps NAME: "name:granularity:count ..." of a device's bitmaps.
bitmaps()
{
	"$CBWCTL" --json bitmap list "$1" |
		jq -r '[.bitmaps[] | "\(.name):\(.granularity):\(.count)"] | join(" ")'
}
cbw_expect_eq "start: $a has its two bitmaps" \
	"daily:65536:0 hourly:1048576:0" "$(bitmaps "$a")"
cbw_expect_eq "start: $b has none" "" "$(bitmaps "$b")"

# blkid prefers device-mapper devices: with its cache gone, UUID= finds the
# cbw device, which must stand for its origin.
export BLKID_FILE=$CBW_WORK/blkid.tab
rm -f -- "$BLKID_FILE"
cbw_expect_eq "blkid now finds $b by the UUID" "/dev/mapper/$b" \
	"$(blkid -U "$uuid")"
rm -f -- "$BLKID_FILE"
run --json tab start --tab "$tab"
cbw_expect_eq "second start: exit 1 again for the bad line" 1 "$rc"
cbw_expect_eq "second start: the devices are already active" \
	"$a:3:active $b:5:active $bad:6:failed" \
	"$(head -n -1 <<<"$out" | jq -r '[.devices[] | "\(.name):\(.line):\(.result)"] | join(" ")')"
cbw_expect_eq "second start: the JSON error object ends the output" \
	"${bad_msg#cbwctl: }" "$(tail -n 1 <<<"$out" | jq -r .error)"
cbw_expect_eq "second start: the tables are unchanged" "$ta+$tb" \
	"$(table "$a")+$(table "$b")"
run tab start --tab "$tab" "$b" "$a"
cbw_expect_eq "start NAME...: only those, no error" \
	"0|$b: active|$a: active|" "$rc|$(paste -sd '|' <<<"$out")|$err"

guest=$(cbw_dm_path "$a")
dd if=/dev/urandom of="$guest" bs=64K count=1 seek=20 oflag=direct status=none
cbw_expect_eq "writes through /dev/mapper/$a are in its bitmaps" \
	"daily:65536:65536 hourly:1048576:1048576" "$(bitmaps "$a")"

run tab start --tab "$tab" "$noauto"
cbw_expect_eq "start of a noauto line by name" "0|$noauto: created" "$rc|$out"
run tab start --tab "$tab" "$CBW_NAME_PREFIX-nosuch"
cbw_expect_eq "start of a name without a line" \
	"1|cbwctl: $CBW_NAME_PREFIX-nosuch: no line of $tab names it" "$rc|$err"

tab2=$CBW_WORK/cbwtab2
printf '%s %s chunk=64K\n' "$a" "$origin1" >"$tab2"
run tab start --tab "$tab2"
cbw_expect_eq "start: a device with another table is an error" \
	"1|cbwctl: $tab2:1: $a: exists with another table: '${ta%|*}', not '0 $(cbw_size "$origin1") cbw $(devno "$origin1") - 128' (remove it, or fix the line)" \
	"$rc|$err"
cbw_expect_eq "start: ... and it is left as it was" "$ta" "$(table "$a")"
printf 'access-%s %s\n' "$a" "$origin1" >"$tab2"
run tab start --tab "$tab2"
cbw_expect_eq "start: a name that begins with access- is refused" \
	"1|cbwctl: $tab2:1: name 'access-$a' must not begin with 'access-': CBW-access-... are the DM UUIDs of access devices" \
	"$rc|$err"

# ---------------------------------------------------------------------------
# 3. tab stop
# ---------------------------------------------------------------------------
exec {holder}<"$guest"
run tab stop --tab "$tab" "$a"
cbw_expect_eq "stop: an open device is refused" \
	"1|cbwctl: $a: in use (open 1 times): unmount it, or close what has it open, first" \
	"$rc|$err"
exec {holder}<&-
cbw_check "snapshot start $b" "$CBWCTL" snapshot start "$b" --cow "$cow"
run tab stop "$b"
cbw_expect_eq "stop: a device with a running snapshot is refused" \
	"1|cbwctl: $b: has a running snapshot: stop it first (cbwctl snapshot stop $b)" \
	"$rc|$err"
cbw_check "snapshot stop $b" "$CBWCTL" snapshot stop "$b"

run --json tab stop --tab "$tab"
cbw_expect_eq "stop: every line, the bad one reported" \
	"1|$a:removed $b:removed $bad:failed $noauto:removed|$bad_msg" \
	"$rc|$(head -n -1 <<<"$out" | jq -r '[.devices[] | "\(.name):\(.result)"] | join(" ")')|$err"
for n in "$a" "$b" "$noauto"; do
	cbw_check_fails "stop: $n is gone" cbw_dm_exists "$n"
done
run tab stop --tab "$tab" "$a" "$b"
cbw_expect_eq "second stop: inactive, no error" \
	"0|$a: inactive|$b: inactive|" "$rc|$(paste -sd '|' <<<"$out")|$err"

# ---------------------------------------------------------------------------
# 4. make install, make uninstall
# ---------------------------------------------------------------------------
if [[ -f $CBWCTL_DIR/Makefile ]] && command -v make >/dev/null; then
	root=$CBW_WORK/root
	cbw_check "make install DESTDIR prefix=/usr" \
		make -s -C "$CBWCTL_DIR" install DESTDIR="$root" prefix=/usr
	cbw_expect_eq "make install: the generator runs /usr/sbin/cbwctl" \
		'exec /usr/sbin/cbwctl tab generate "$@"' \
		"$(tail -n 1 "$root/usr/lib/systemd/system-generators/cbwtab-generator")"
	cbw_check "make install: cbw.target and cbwtab(5)" test -f \
		"$root/usr/lib/systemd/system/cbw.target" -a -f \
		"$root/usr/share/man/man5/cbwtab.5"
	cbw_check "make uninstall" \
		make -s -C "$CBWCTL_DIR" uninstall DESTDIR="$root" prefix=/usr
	cbw_expect_eq "make uninstall leaves no file" "" \
		"$(find "$root" -type f)"
else
	cbw_skip "make install" "no Makefile next to $CBWCTL"
fi
if command -v man >/dev/null && [[ -f $CBWCTL_DIR/cbwtab.5 ]]; then
	page=$(MANWIDTH=80 man -l "$CBWCTL_DIR/cbwtab.5" 2>"$errf") || true
	cbw_expect_eq "man -l cbwtab.5 renders without warnings" "CBWTAB(5)|" \
		"${page%% *}|$(cat -- "$errf")"
else
	cbw_skip "man -l cbwtab.5 renders" "no man, or no cbwtab.5"
fi

cbw_done
