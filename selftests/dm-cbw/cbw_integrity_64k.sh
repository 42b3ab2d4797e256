#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Point-in-time integrity of dm-cbw with 64 KiB chunks: cbw-integrity.sh 64k.

exec "$(dirname -- "$0")/cbw-integrity.sh" 64k
