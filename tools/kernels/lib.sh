# shellcheck shell=bash
#
# Shared by the tools/kernels scripts: where the kernels of the test matrix
# are kept, and how their Debian packages are fetched.
#
# Every kernel other than the machine's own is unpacked (never installed) into
# a cache outside the work tree, $CBW_KERNEL_CACHE or /var/cache/dm-cbw, that
# survives between runs: a fresh clone on the same machine reuses it.
#   apt/SUITE/            a private apt state for one suite of the archive
#   kernels/KVER/         an unpacked kernel: boot/, lib/modules/KVER/ (with
#                         build -> the headers), usr/src/
#   chroot/trixie/        the Debian 13 build root for trixie's kernels
#   debug/HASH/           the debug kernel, built from source
#   modules/TREE/KVER/    dm-cbw.ko built from the tree TREE (a hash of its
#                         path) for KVER

# shellcheck disable=SC2034 # used by the scripts that source this
KERNELS_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
TREE=$(cd -- "$KERNELS_DIR/../.." && pwd)
CACHE=${CBW_KERNEL_CACHE:-/var/cache/dm-cbw}

# The kernel series that `make check KERNEL=NAME` knows, and where each comes
# from: the machine's own, a suite of the archive on this Debian 12 host, a
# suite that needs the Debian 13 build root, or built from source.
declare -A SERIES_SUITE=(
	[6.1]=host
	[6.12]=bookworm-backports
	[7.3]=trixie-backports
	[debug]=source
)
readonly MATRIX=(6.1 6.12 7.3)

die() {
	echo "${SELF:-tools/kernels}: $*" >&2
	exit 1
}

note() {
	echo "${SELF:-tools/kernels}: $*" >&2
}

# The archive this machine already uses, from its apt configuration (never
# written into the tree).
archive_uri() {
	local uri
	# shellcheck disable=SC2016 # apt's format, not the shell's
	uri=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null |
		grep -v -- '-security' | head -n1) || true
	if [[ -z $uri ]]; then
		uri=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' \
			/etc/apt/sources.list.d/*.sources 2>/dev/null) || true
	fi
	if [[ -z $uri ]]; then
		uri=$(awk '/^deb / && $2 !~ /security/ { print $2; exit }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list \
			2>/dev/null) || true
	fi
	[[ -n $uri ]] || die "no Debian archive in this machine's apt sources"
	echo "${uri%/}/"
}

# apt-get and apt-cache options for the private state of SUITE: it sees that
# suite only, and nothing is installed through it.
apt_opts() {
	local root=$CACHE/apt/$1
	echo "-o Dir::Etc::SourceList=$root/sources.list" \
		"-o Dir::Etc::SourceParts=/dev/null" \
		"-o Dir::State::Lists=$root/lists" \
		"-o Dir::Cache=$root/cache" \
		"-o Dir::State::status=/dev/null" \
		"-o APT::Sandbox::User=root"
}

# Updates the private package lists of SUITE from the machine's archive.
apt_update_suite() {
	local suite=$1 root=$CACHE/apt/$1 log
	mkdir -p -- "$root/lists/partial" "$root/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
		"$(archive_uri) $suite main" >"$root/sources.list"
	log=$(mktemp)
	# shellcheck disable=SC2046 # apt_opts are several words
	if ! apt-get $(apt_opts "$suite") update >"$log" 2>&1 ||
		grep -q '^[WE]:' "$log"; then
		cat -- "$log" >&2
		rm -f -- "$log"
		die "cannot fetch the package lists of $suite"
	fi
	rm -f -- "$log"
}

# Prints the newest "KVER" of SERIES (e.g. 6.12 -> 6.12.95+deb12-amd64) among
# the package names that NAMES prints, one a line, as linux-image-KVER.
newest_kver() {
	local series=$1
	sed -n "s/^linux-image-\(${series//./\\.}\.[0-9][^ -]*-amd64\)\$/\1/p" |
		sort -V | tail -n1
}

# Unpacks the Debian packages DEB... into the kernel root DIR, makes the
# headers usable from there and writes modules.dep.
unpack_kernel() {
	local dir=$1 kver=$2 deb headers
	shift 2
	rm -rf -- "$dir.tmp"
	mkdir -p -- "$dir.tmp"
	for deb; do
		dpkg-deb -x "$deb" "$dir.tmp" || die "cannot unpack $deb"
	done
	# Debian 13 packages put the modules under usr/lib (merged /usr).
	if [[ -d $dir.tmp/usr/lib/modules/$kver && ! -d $dir.tmp/lib/modules/$kver ]]; then
		mkdir -p -- "$dir.tmp/lib"
		mv -- "$dir.tmp/usr/lib/modules" "$dir.tmp/lib/modules"
	fi
	# and the image and config in the modules directory, linked from
	# /boot by the package's scripts.
	local file
	for file in vmlinuz config System.map; do
		[[ -f $dir.tmp/lib/modules/$kver/$file && ! -e $dir.tmp/boot/$file-$kver ]] ||
			continue
		mkdir -p -- "$dir.tmp/boot"
		ln -s -- "../lib/modules/$kver/$file" "$dir.tmp/boot/$file-$kver"
	done
	[[ -d $dir.tmp/lib/modules/$kver/kernel && -f $dir.tmp/boot/vmlinuz-$kver ]] ||
		die "the packages of $kver have no kernel image or modules"
	headers=$dir.tmp/usr/src/linux-headers-$kver
	if [[ -d $headers ]]; then
		# The headers' Makefile includes the common part by its
		# absolute path under /usr/src.
		sed -i "s|^include /usr/src/|include $dir/usr/src/|" -- \
			"$headers/Makefile"
		ln -sfn "../../../usr/src/linux-headers-$kver" \
			"$dir.tmp/lib/modules/$kver/build"
	fi
	depmod -b "$dir.tmp" "$kver" || die "depmod failed for $kver"
	rm -rf -- "$dir"
	mv -- "$dir.tmp" "$dir"
	# Only a complete kernel is ever used.
	touch -- "$dir/.complete"
}
