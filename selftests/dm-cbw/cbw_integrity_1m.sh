#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Point-in-time integrity of dm-cbw with 1 MiB chunks: cbw-integrity.sh 1m.

exec "$(dirname -- "$0")/cbw-integrity.sh" 1m
