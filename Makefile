# SPDX-License-Identifier: GPL-2.0-only
#
# dm-cbw: out-of-tree build, tests and demo.
#
#   make              build dm-cbw.ko, cbwctl and the selftest helpers
#   make check        install what is missing, build, run every selftest in a VM
#                     on the machine's kernel (6.1), then a smoke subset on 7.3,
#                     then the suite as a kselftest target (check-kselftest),
#                     then 20 power cuts of the VM (tools/vm/crash-test),
#                     then make demo in a fresh clone of HEAD (check-fresh)
#   make check KERNEL=NAME
#                     the selftests on one kernel of the matrix: 6.1, 6.12, 7.3
#                     or debug (lockdep, KASAN, kmemleak); CHECK_TESTS="t1 t2"
#                     selects tests (see tools/kernels/check)
#   make check-matrix every selftest on 6.1, 6.12 and 7.3, and a table
#   make check-host   run the selftests on this host (needs a module-capable kernel)
#   make check-kselftest
#                     install the selftests as a kselftest target of
#                     linux-source-6.1 and run some with run_kselftest.sh in
#                     the VM (tools/kernels/kselftest)
#   make demo         fleecing demo in the VM
#   make bench        dm-cbw against dm-linear and dm-snapshot in the VM
#                     (BENCH_SECONDS=1 for a quick run; see tools/bench/run)
#   make lint         checkpatch --strict, sparse and a W=1 build
#   make install      install the module for KVER (depmod), cbwctl, its man
#                     pages, the cbwtab generator and cbw.target (prefix,
#                     default /usr/local; DESTDIR)
#   make uninstall    remove what make install installed
#   make check-fresh  make demo in a fresh clone of HEAD (tools/fresh-clone-check)
#   make deb          Debian packages dm-cbw-dkms and cbwctl in build/deb
#                     (DEB_DIR; tools/build-deb)

# The kernel to build for: the newest one with a build directory.
KVER ?= $(shell ls -d /lib/modules/*/build 2>/dev/null | sort -V | tail -n 1 | cut -d/ -f4)
KDIR ?= /lib/modules/$(KVER)/build
VM_RUN := $(CURDIR)/tools/vm/run
SELFTESTS := $(CURDIR)/selftests/dm-cbw
CBWCTL := $(CURDIR)/tools/cbwctl

# check: one kernel of the matrix, or the default runs; CHECK_TESTS: tests.
KERNEL ?=
CHECK_TESTS ?=
export CHECK_TESTS
KERNEL_CHECK := $(CURDIR)/tools/kernels/check

.PHONY: all modules cbwctl selftests check check-matrix check-host demo bench lint install clean deps \
	uninstall check-fresh check-kselftest

all: modules cbwctl selftests

deps:
	@$(CURDIR)/tools/install-deps

modules:
	@test -n "$(KVER)" -a -d "$(KDIR)" || \
		{ echo "No kernel build directory: install linux-headers-amd64 (tools/install-deps)" >&2; exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

cbwctl:
	$(MAKE) -C $(CBWCTL) all

selftests:
	$(MAKE) -C $(SELFTESTS) all

# Without KERNEL, also the README's quick start in a fresh clone.
check: deps
	@status=0; \
	$(KERNEL_CHECK) $(if $(KERNEL),$(KERNEL),6.1 7.3:smoke 6.1:kselftest 6.1:crash) || status=1; \
	$(if $(KERNEL),,$(CURDIR)/tools/fresh-clone-check || status=1;) \
	exit $$status

check-matrix: deps
	@$(KERNEL_CHECK) 6.1 6.12 7.3

check-host: all
	@$(SELFTESTS)/run_all.sh

check-kselftest: deps
	@$(KERNEL_CHECK) 6.1:kselftest

demo: deps
	@$(MAKE) --no-print-directory modules cbwctl
	@$(VM_RUN) -- $(CURDIR)/tools/demo/fleecing-demo

bench: deps
	@$(MAKE) --no-print-directory modules cbwctl
	@$(CURDIR)/tools/bench/run

lint:
	@$(CURDIR)/tools/lint

install: modules cbwctl
	$(MAKE) -C $(KDIR) M=$(CURDIR) INSTALL_MOD_DIR=updates modules_install
	depmod -a $(KVER)
	$(MAKE) -C $(CBWCTL) install

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean
	$(MAKE) -C $(CBWCTL) clean
	$(MAKE) -C $(SELFTESTS) clean
	rm -rf $(CURDIR)/.build

uninstall:
	@test -n "$(KVER)" || { echo "No kernel version: set KVER" >&2; exit 1; }
	rm -f /lib/modules/$(KVER)/updates/dm-cbw.ko*
	depmod -a $(KVER)
	$(MAKE) -C $(CBWCTL) uninstall

check-fresh:
	@$(CURDIR)/tools/fresh-clone-check

# Debian packages: the module's source for DKMS, and cbwctl.
DEB_DIR ?= $(CURDIR)/build/deb
.PHONY: deb clean-deb

deb: deps
	@$(CURDIR)/tools/build-deb $(DEB_DIR)

clean-deb:
	rm -rf $(CURDIR)/build/deb

clean: clean-deb
