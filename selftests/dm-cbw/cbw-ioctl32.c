// SPDX-License-Identifier: GPL-2.0
/*
 * cbw-ioctl built as a 32-bit program (see the Makefile): the same tests
 * through the compat_ioctl path.
 */
#include "cbw-ioctl.c"
