#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# QEMU's iotest 257 (cbw_backup_257.sh) with bitmap0 persistent, on a
# metadata device: every count must be the same as in memory.

export CBW_257_PERSISTENT=1
export CBW_TEST=${CBW_TEST:-cbw_persist_257}
exec "$(dirname -- "$0")/cbw_backup_257.sh" "$@"
