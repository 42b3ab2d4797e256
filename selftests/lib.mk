# SPDX-License-Identifier: GPL-2.0
#
# The dm-cbw tree's stand-in for the kernel's tools/testing/selftests/lib.mk,
# so that selftests/dm-cbw/Makefile builds and runs here as it does in a
# kernel tree (copied to tools/testing/selftests/dm-cbw, it includes that
# tree's lib.mk instead).  Same interface: a test directory's Makefile sets
# TEST_PROGS, TEST_PROGS_EXTENDED, TEST_FILES and TEST_GEN_PROGS_EXTENDED
# (programs built into $(OUTPUT) from their .c file), includes this file
# and gets the targets all, run_tests, install (INSTALL_PATH=DIR),
# emit_tests and clean.  Not here: the kernel headers of a kselftest build
# (KHDR_INCLUDES stays empty unless given), and run_tests runs the
# directory's run_all.sh rather than kselftest/runner.sh.

CC := $(CROSS_COMPILE)gcc
OUTPUT ?= $(CURDIR)
KHDR_INCLUDES ?=

TEST_GEN_PROGS := $(patsubst %,$(OUTPUT)/%,$(TEST_GEN_PROGS))
TEST_GEN_PROGS_EXTENDED := $(patsubst %,$(OUTPUT)/%,$(TEST_GEN_PROGS_EXTENDED))
TEST_GEN_FILES := $(patsubst %,$(OUTPUT)/%,$(TEST_GEN_FILES))

all: $(TEST_GEN_PROGS) $(TEST_GEN_PROGS_EXTENDED) $(TEST_GEN_FILES)

run_tests: all
	@./run_all.sh

install: all
	$(if $(INSTALL_PATH),,$(error set INSTALL_PATH to use install))
	mkdir -p $(INSTALL_PATH)
	cp -p $(TEST_PROGS) $(TEST_PROGS_EXTENDED) $(TEST_FILES) \
		$(TEST_GEN_PROGS) $(TEST_GEN_PROGS_EXTENDED) $(TEST_GEN_FILES) \
		$(wildcard config settings) $(INSTALL_PATH)/

emit_tests:
	@for TEST in $(TEST_GEN_PROGS) $(TEST_PROGS); do \
		echo "$(COLLECTION):$$(basename $$TEST)"; \
	done

clean:
	$(RM) -r $(TEST_GEN_PROGS) $(TEST_GEN_PROGS_EXTENDED) $(TEST_GEN_FILES) $(EXTRA_CLEAN)

CFLAGS += $(USERCFLAGS)
LDFLAGS += $(USERLDFLAGS)

$(OUTPUT)/%: %.c $(LOCAL_HDRS)
	$(LINK.c) $(filter-out $(LOCAL_HDRS),$^) $(LDLIBS) -o $@

.PHONY: all run_tests install emit_tests clean
