#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The Debian packages of "make deb" install, work and purge cleanly.
#
# Installs dm-cbw-dkms and cbwctl with dpkg -i from $CBW_DEB_DIR (default
# $CBW_TREE/build/deb, where make deb puts them; make check builds them on
# the host first).  Proves that DKMS builds dm-cbw.ko from the package for
# the running kernel, signs it (DKMS's own MOK signing step) and installs
# it in /lib/modules/KVER/updates/dkms; that the package holds this tree's
# module source and dkms.conf; that "modprobe dm-cbw" loads it; that
# "dmsetup create" with a cbw table and with a cbw-access table loads it
# on demand (module autoload: request_module "dm-cbw" and the alias
# "dm-cbw-access"); that the package's cbwctl runs against it, and its man
# page, bash completion and UAPI header are in place.  Then purges both
# packages and checks that nothing of them is left: none of their files,
# no module, no /usr/src/dm-cbw-*, no /var/lib/dkms/dm-cbw.
#
# It installs packages, so it runs only in the test VM (CBW_IN_VM=1),
# whose RAM overlay forgets them; elsewhere it is skipped.  The tree's
# module, loaded by tools/vm/run, is unloaded first and loaded again at
# the end.  DKMS builds the module once, for the running kernel, whose
# headers must be installed (the VM sees the host's).  Under emulation
# the DKMS build and depmod take minutes, a quarter of an hour on a busy
# host: hence the longer timeout.
#
# cbw-timeout: 2700

. "$(dirname -- "$0")/lib.sh"

C=128
deb_dir=${CBW_DEB_DIR:-${CBW_TREE:-$CBW_SELFTEST_DIR/../..}/build/deb}
kver=$(uname -r)
origin=

[[ ${CBW_IN_VM:-} == 1 ]] ||
	cbw_skip_all "installs packages: runs only in the test VM (CBW_IN_VM=1)"
cbw_setup 64
cbw_require_cmds dpkg dpkg-deb dpkg-query dkms modprobe rmmod modinfo gcc
[[ -e /lib/modules/$kver/build ]] ||
	cbw_skip_all "no headers for the running kernel $kver: DKMS cannot build"

arch=$(dpkg --print-architecture)
shopt -s nullglob
dkms_debs=("$deb_dir"/dm-cbw-dkms_*_all.deb)
cbwctl_debs=("$deb_dir"/cbwctl_*_"$arch".deb)
shopt -u nullglob
((${#dkms_debs[@]} == 1 && ${#cbwctl_debs[@]} == 1)) ||
	cbw_skip_all "no packages in $deb_dir: run make deb on the host first"
dkms_deb=${dkms_debs[0]}
cbwctl_deb=${cbwctl_debs[0]}
version=$(dpkg-deb -f "$dkms_deb" Version)
upstream=${version%-*}
cbw_info "packages $version from $deb_dir, kernel $kver"

for pkg in dm-cbw-dkms cbwctl; do
	[[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]] ||
		cbw_bail "$pkg is installed already: this test needs a system without it"
done

# The installed module's file, if any.
dkms_module()
{
	local f

	for f in /lib/modules/"$kver"/updates/dkms/dm-cbw.ko*; do
		[[ -e $f ]] && echo "$f"
	done
	return 0
}

# The tree's module goes back in at the end, after the packages are gone.
reload_tree_module()
{
	[[ -d /sys/module/dm_cbw || -z ${CBW_MODULE:-} ]] || insmod "$CBW_MODULE"
}
cbw_defer reload_tree_module

# What a real system has and the VM's bare devtmpfs lacks: dkms reads
# <(...) through /dev/fd.
if [[ ! -e /dev/fd ]]; then
	ln -s /proc/self/fd /dev/fd
	cbw_defer rm -f /dev/fd
fi

# Module autoload.  The kernel runs kernel.modprobe in the root of init,
# and the VM's init (tools/vm/init) runs this command in a chroot of the
# host's / instead of switching its root: from init's root, the
# initramfs, no modprobe nor /lib/modules can be seen.  For the length of
# this test, kernel.modprobe names a script in init's root that runs this
# root's modprobe in this root: what the kernel's own call does on a
# system that switched its root.
modprobe_sysctl=/proc/sys/kernel/modprobe
init_root=/proc/1/root
chroot_dir=''
for d in "$init_root"/*/; do
	if [[ $(stat -Lc %d:%i -- "$d") == $(stat -c %d:%i /) ]]; then
		chroot_dir=/$(basename -- "$d")
		break
	fi
done
[[ -n $chroot_dir && -x $init_root/bin/busybox ]] ||
	cbw_bail "cannot find this root in init's root (tools/vm/init changed?)"
helper=/cbw-chroot-modprobe
printf '#!/bin/busybox sh\nexec /bin/busybox chroot %s /sbin/modprobe "$@"\n' \
	"$chroot_dir" >"$init_root$helper"
chmod 755 "$init_root$helper"
cbw_defer rm -f -- "$init_root$helper"
old_modprobe=$(<"$modprobe_sysctl")
restore_modprobe()
{
	echo "$old_modprobe" >"$modprobe_sysctl"
}
echo "$helper" >"$modprobe_sysctl"
cbw_defer restore_modprobe

# Quiet and quick: no questions, and no man-db index update (minutes
# under emulation) on each install and purge (what answering "no" to
# man-db/auto-update does).
export DEBIAN_FRONTEND=noninteractive
rm -f /var/lib/man-db/auto-update

# The packages must load their own module: the tree's goes out.
[[ ! -d /sys/module/dm_cbw ]] || rmmod dm_cbw ||
	cbw_bail "cannot unload the tree's dm-cbw module"

# ---------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------
t0=$SECONDS
rc=0
out=$(dpkg -i "$dkms_deb" "$cbwctl_deb" 2>&1) || rc=$?
cbw_info <<<"$out"
((rc == 0)) || cbw_bail "dpkg -i failed with status $rc"
cbw_info "dpkg -i took $((SECONDS - t0)) s"
cbw_pass "dpkg -i dm-cbw-dkms cbwctl"

cbw_check "dkms status: dm-cbw $upstream installed for $kver" \
	grep -q "^dm-cbw/$upstream, $kver, [^:]*: installed" \
	<<<"$(dkms status -m dm-cbw 2>&1)"
ko=$(dkms_module)
cbw_check "the module is in /lib/modules/$kver/updates/dkms" test -n "$ko"
[[ -n $ko ]] || cbw_bail "DKMS installed no module"
cbw_expect_eq "the module's version is the package's" "$upstream" \
	"$(modinfo -F version "$ko")"
cbw_expect_eq "DKMS signed the module with its MOK key" \
	"DKMS module signing key" "$(modinfo -F signer "$ko")"
cbw_expect_eq "the module has the alias dm-cbw-access" "dm-cbw-access" \
	"$(modinfo -F alias "$ko")"

# The package's module source is this tree's.
src=/usr/src/dm-cbw-$upstream
missing=''
sources=$(cd -- "$CBW_TREE" && printf '%s\n' dkms.conf Kbuild drivers/md/*.[ch] \
	drivers/md/compat/*.c drivers/md/compat/probe.sh include/uapi/linux/*.h)
while read -r f; do
	cmp -s -- "$CBW_TREE/$f" "$src/$f" || missing+=" $f"
done <<<"$sources"
cbw_expect_eq "$src holds the tree's dkms.conf and module source" "" "$missing"

# ---------------------------------------------------------------------------
# Loading: modprobe, and autoload by a cbw and a cbw-access table
# ---------------------------------------------------------------------------
cbw_expect_eq "modprobe finds the DKMS module" "insmod $ko" \
	"$(modprobe --show-depends dm-cbw | tail -n 1 | sed 's/ *$//')"
cbw_check "modprobe dm-cbw" modprobe dm-cbw
cbw_check "dm-cbw is loaded" test -d /sys/module/dm_cbw
cbw_check "rmmod dm-cbw" rmmod dm_cbw

cbw_loop_create origin 16
len=$(cbw_size "$origin")

cbw_kmsg_mark
acc=$(cbw_name access)
if cbw_dm_try_create "$acc" "0 $len cbw-access $origin" 2>/dev/null; then
	cbw_fail "a cbw-access table over a plain device is refused"
	cbw_dm_remove "$acc"
else
	cbw_pass "a cbw-access table over a plain device is refused"
fi
cbw_check "a cbw-access table loaded dm-cbw" test -d /sys/module/dm_cbw
cbw_check "... and the cbw-access target refused the device itself" \
	grep -q 'cbw-access: Device is not a cbw device' <<<"$(cbw_kmsg_since)"
cbw_check "rmmod dm-cbw" rmmod dm_cbw

name=$(cbw_name cbw)
cbw_dm_try_create "$name" "0 $len cbw $origin - $C" ||
	cbw_bail "dmsetup create with a cbw table failed"
cbw_pass "dmsetup create with a cbw table"
cbw_check "a cbw table loaded dm-cbw" test -d /sys/module/dm_cbw

# ---------------------------------------------------------------------------
# cbwctl, its man page, bash completion and header
# ---------------------------------------------------------------------------
cbw_expect_eq "cbwctl is the package's" /usr/sbin/cbwctl "$(command -v cbwctl)"
cbw_check "cbwctl version talks to the module" cbwctl version
cbw_check "cbwctl bitmap add" cbwctl bitmap add "$name" daily
cbw_check "cbwctl bitmap list shows it" \
	grep -q '"name": *"daily"' <<<"$(cbwctl --json bitmap list "$name")"
cbw_check "man page cbwctl(8)" test -f /usr/share/man/man8/cbwctl.8.gz
cbw_expect_eq "bash completion of 'cbwctl bitmap a'" add "$(bash -c '
	. /usr/share/bash-completion/completions/cbwctl
	COMP_WORDS=(cbwctl bitmap a) COMP_CWORD=2
	_cbwctl
	echo "${COMPREPLY[*]}"')"
for h in "$CBW_TREE"/include/uapi/linux/*.h; do
	h=${h##*/}
	cbw_check "/usr/include/linux/$h is the tree's UAPI header" \
		cmp -- "$CBW_TREE/include/uapi/linux/$h" "/usr/include/linux/$h"
	cbw_check "<linux/$h> compiles" bash -c \
		"echo '#include <linux/$h>' | gcc -fsyntax-only -x c -"
done

cbw_dm_remove "$name"
cbw_check "rmmod dm-cbw" rmmod dm_cbw

# ---------------------------------------------------------------------------
# Purge
# ---------------------------------------------------------------------------
files=$(dpkg-query -L dm-cbw-dkms cbwctl)
t0=$SECONDS
rc=0
out=$(dpkg --purge cbwctl dm-cbw-dkms 2>&1) || rc=$?
cbw_info <<<"$out"
((rc == 0)) || cbw_bail "dpkg --purge failed with status $rc"
cbw_info "dpkg --purge took $((SECONDS - t0)) s"
cbw_pass "dpkg --purge cbwctl dm-cbw-dkms"

left=''
while read -r f; do
	# Directories shared with other packages stay.
	[[ -n $f && ! -d $f && ( -e $f || -L $f ) ]] && left+=" $f"
done <<<"$files"
cbw_expect_eq "no file of the packages is left" "" "$left"
cbw_expect_eq "no module is left" "" "$(dkms_module)"
cbw_check "no /usr/src/dm-cbw-* is left" \
	bash -c '! compgen -G "/usr/src/dm-cbw-*"'
cbw_check "no /var/lib/dkms/dm-cbw is left" test ! -e /var/lib/dkms/dm-cbw
cbw_check_fails "modprobe no longer finds dm-cbw" modprobe -n dm-cbw
cbw_expect_eq "dpkg knows neither package, not even its configuration" "" \
	"$(dpkg-query -W -f='${db:Status-Status}\n' dm-cbw-dkms cbwctl 2>/dev/null |
		grep -v '^not-installed$')"

cbw_done
