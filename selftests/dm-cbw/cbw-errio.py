#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""O_DIRECT I/O helper for the dm-cbw error policy selftests.

  write DEV OFFSET LENGTH SRCFILE      write LENGTH bytes of SRCFILE at OFFSET
  read DEV OFFSET LENGTH DSTFILE       read LENGTH bytes at OFFSET into DSTFILE
  writers DEV NBLOCKS NTHREADS ROUNDS LOG
                                       concurrent stamped 4 KiB writes; LOG
                                       gets "block seq status" per write
  verify DEV NBLOCKS LOG BASEFILE      every block holds the stamp of its last
                                       write that succeeded, or BASEFILE's data
  burst DEV COUNT STRIDE LENGTH SRCFILE
                                       COUNT concurrent writes of LENGTH bytes
                                       at 0, STRIDE, 2*STRIDE, ...; prints
                                       "STATUS COUNT" per status, then
                                       "max_ms N": the slowest write

write and read print "ok" or the errno name (EIO, ENOSPC, ETIMEDOUT, ...)
and exit 0; verify prints the mismatches and exits 1 if there are any.
"""
import errno
import mmap
import os
import sys
import threading
import time

BLK = 4096


def aligned(length):
    return mmap.mmap(-1, max(length, BLK))


def status(exc):
    return errno.errorcode.get(exc.errno, str(exc.errno))


def do_write(dev, off, length, src):
    buf = aligned(length)
    with open(src, 'rb') as f:
        buf.write(f.read(length))
    fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
    try:
        n = os.pwritev(fd, [memoryview(buf)[:length]], off)
        print('ok' if n == length else 'short')
    except OSError as e:
        print(status(e))
    finally:
        os.close(fd)


def do_read(dev, off, length, dst):
    buf = aligned(length)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    try:
        n = os.preadv(fd, [memoryview(buf)[:length]], off)
        with open(dst, 'wb') as f:
            f.write(buf[:n])
        print('ok' if n == length else 'short')
    except OSError as e:
        print(status(e))
    finally:
        os.close(fd)


def stamp(blk, seq):
    return ('cbw-errors blk=%d seq=%d\n' % (blk, seq)).encode().ljust(BLK, b'.')


def do_writers(dev, nblocks, nthreads, rounds, log):
    lines = []
    lock = threading.Lock()

    def writer(w):
        buf = aligned(BLK)
        fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
        mine = [b for b in range(nblocks) if b % nthreads == w]
        for seq in range(rounds):
            for blk in mine:
                buf.seek(0)
                buf.write(stamp(blk, seq))
                try:
                    os.pwritev(fd, [memoryview(buf)[:BLK]], blk * BLK)
                    st = 'ok'
                except OSError as e:
                    st = status(e)
                with lock:
                    lines.append('%d %d %s\n' % (blk, seq, st))
        os.close(fd)

    threads = [threading.Thread(target=writer, args=(w,))
               for w in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(log, 'w') as f:
        f.writelines(lines)
    print('%d writes' % len(lines))


def do_verify(dev, nblocks, log, base):
    last = {}
    with open(log) as f:
        for line in f:
            blk, seq, st = line.split()
            if st == 'ok':
                last[int(blk)] = max(last.get(int(blk), -1), int(seq))
    with open(base, 'rb') as f:
        basedata = f.read()
    buf = aligned(nblocks * BLK)
    fd = os.open(dev, os.O_RDONLY | os.O_DIRECT)
    os.preadv(fd, [memoryview(buf)[:nblocks * BLK]], 0)
    os.close(fd)
    bad = 0
    for blk in range(nblocks):
        got = buf[blk * BLK:(blk + 1) * BLK]
        if blk in last:
            want = stamp(blk, last[blk])
        else:
            want = basedata[blk * BLK:(blk + 1) * BLK]
        if got != want:
            bad += 1
            if bad <= 5:
                print('block %d: expected %r, found %r' %
                      (blk, want[:40], got[:40]))
    print('%d blocks checked, %d written, %d wrong' %
          (nblocks, len(last), bad))
    return 1 if bad else 0


def do_burst(dev, count, stride, length, src):
    with open(src, 'rb') as f:
        data = f.read(length)
    results = [None] * count

    def writer(i):
        buf = aligned(length)
        buf.write(data)
        fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
        t0 = time.monotonic()
        try:
            os.pwritev(fd, [memoryview(buf)[:length]], i * stride)
            st = 'ok'
        except OSError as e:
            st = status(e)
        results[i] = (st, (time.monotonic() - t0) * 1000)
        os.close(fd)

    threads = [threading.Thread(target=writer, args=(i,))
               for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {}
    for st, _ in results:
        counts[st] = counts.get(st, 0) + 1
    for st in sorted(counts):
        print('%s %d' % (st, counts[st]))
    print('max_ms %d' % max(ms for _, ms in results))


def main(argv):
    cmd = argv[1]
    if cmd == 'write':
        do_write(argv[2], int(argv[3]), int(argv[4]), argv[5])
    elif cmd == 'read':
        do_read(argv[2], int(argv[3]), int(argv[4]), argv[5])
    elif cmd == 'writers':
        do_writers(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6])
    elif cmd == 'burst':
        do_burst(argv[2], int(argv[3]), int(argv[4]), int(argv[5]), argv[6])
    elif cmd == 'verify':
        return do_verify(argv[2], int(argv[3]), argv[4], argv[5])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
