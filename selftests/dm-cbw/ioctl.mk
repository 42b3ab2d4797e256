# SPDX-License-Identifier: GPL-2.0
#
# cbw-ioctl, the control device test program of cbw_ioctl.sh. Included
# from Makefile.
#
# cbw-ioctl32 is the same program for 32-bit callers (the compat_ioctl
# path); it is built only when the compiler links static -m32 programs
# (Debian: gcc-multilib). It is static so that the test machine needs no
# 32-bit libraries.

OUTPUT ?= $(CURDIR)
CBW_IOCTL_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
CBW_UAPI_INCLUDES ?= -I$(abspath $(CBW_IOCTL_DIR)/../../include/uapi)
CBW_IOCTL_DEPS := $(CBW_IOCTL_DIR)/cbw-ioctl.c \
		  $(abspath $(CBW_IOCTL_DIR)/../../include/uapi/linux/dm-cbw.h)

CBW_HASH := \#
CBW_HAVE_M32 := $(shell printf '$(CBW_HASH)include <linux/ioctl.h>\n$(CBW_HASH)include <pthread.h>\nint main(void) { return 0; }\n' | \
	$(CC) -m32 -static -pthread -x c -o /dev/null - >/dev/null 2>&1 && echo y)

CBW_IOCTL_PROGS := cbw-ioctl
ifeq ($(CBW_HAVE_M32),y)
CBW_IOCTL_PROGS += cbw-ioctl32
endif

TEST_PROGS += cbw_ioctl.sh
TEST_GEN_PROGS_EXTENDED += $(CBW_IOCTL_PROGS)

.PHONY: cbw-ioctl-clean

all: $(patsubst %,$(OUTPUT)/%,$(CBW_IOCTL_PROGS))

$(OUTPUT)/cbw-ioctl: $(CBW_IOCTL_DEPS)
	$(CC) $(CPPFLAGS) $(CBW_UAPI_INCLUDES) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(OUTPUT)/cbw-ioctl32: $(CBW_IOCTL_DEPS)
	$(CC) -m32 -static $(CPPFLAGS) $(CBW_UAPI_INCLUDES) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

clean: cbw-ioctl-clean

cbw-ioctl-clean:
	$(RM) $(OUTPUT)/cbw-ioctl $(OUTPUT)/cbw-ioctl32
