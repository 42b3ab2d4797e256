#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Point-in-time integrity of dm-cbw with 4 KiB chunks, over an origin that
# delays reads: cbw-integrity.sh 4k delay.

exec "$(dirname -- "$0")/cbw-integrity.sh" 4k delay
