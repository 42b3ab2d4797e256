#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""DM_CBW_IOC_BITMAP_QUERY straight from the control device.

  cbw-bmquery.py DEV NAME

prints "count successor_count status" (bytes, bytes, the DM_CBW_BITMAP_*
status bits as a decimal number) of bitmap NAME of cbw device DEV, or the
errno name and exit status 1.  The backup tests use it for what the kernel
itself reports about a frozen bitmap, independently of cbwctl's output.
"""
import errno
import fcntl
import os
import struct
import sys

CONTROL = '/dev/dm-cbw-control'
# struct dm_cbw_bitmap_info: size flags dev_major dev_minor granularity count
# status reserved0 successor_count reserved name[64]
INFO = struct.Struct('<IIIIQQIIQQ64s')
IOC_BITMAP_QUERY = (3 << 30) | (INFO.size << 16) | (0xCB << 8) | 0x47


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rdev = os.stat(sys.argv[1]).st_rdev
    buf = bytearray(INFO.pack(INFO.size, 0, os.major(rdev), os.minor(rdev),
                              0, 0, 0, 0, 0, 0, sys.argv[2].encode()))
    fd = os.open(CONTROL, os.O_RDWR)
    try:
        fcntl.ioctl(fd, IOC_BITMAP_QUERY, buf)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
        sys.exit(1)
    finally:
        os.close(fd)
    f = INFO.unpack(bytes(buf))
    print(f[5], f[8], f[6])


main()
