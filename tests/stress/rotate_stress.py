#!/usr/bin/env python3
"""Readers against writers on ONE secret, through a secretsfs mount.

Writers rotate the secret with whole, self-checking values; readers open,
read to EOF and close in a loop.  Every read must be one whole committed
value: "LEN:SHA256HEX:PAYLOAD", where LEN is the length of the whole value
in bytes and SHA256HEX the sha256 of PAYLOAD.  A read that fails with an
error is a failure too.  Exits 1 (with a message per bad read, the first
few shown) on any failure, 0 otherwise; prints the counts.

  rotate_stress.py DIR ID [--reads N] [--readers R] [--writers W]
                   [--mode mv|inplace] [--min-len A] [--max-len B]

--mode mv:      each writer writes its own scratch file DIR/.ID.wN and
                renames it onto DIR/ID (rotation by mv).
--mode inplace: each writer opens DIR/ID with O_WRONLY|O_TRUNC, writes the
                value in one or more write() calls, and closes it.

The last line printed is machine-readable:
  reads=N bad=N rotations=N writer_errors=N
"""
import argparse
import hashlib
import multiprocessing as mp
import os
import random
import sys
import time


def make_value(rng, min_len, max_len):
    """A value of a random total length in [min_len, max_len]."""
    total = rng.randint(min_len, max_len)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # header is "LEN:" + 64 hex + ":"; LEN has len(str(total)) digits
    plen = total - (len(str(total)) + 1 + 64 + 1)
    assert plen >= 0, "min_len too small for the header"
    payload = bytes(rng.choice(alphabet) for _ in range(plen))
    v = b"%d:%s:%s" % (total, hashlib.sha256(payload).hexdigest().encode(), payload)
    assert len(v) == total
    return v


def check_value(v):
    """None if v is one whole value, else why not."""
    try:
        n, digest, payload = v.split(b":", 2)
    except ValueError:
        return "no LEN:SHA:PAYLOAD header"
    try:
        n = int(n)
    except ValueError:
        return "bad LEN field"
    if n != len(v):
        return "length %d, value says %d" % (len(v), n)
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        return "checksum mismatch"
    return None


def describe(v):
    if len(v) <= 120:
        return repr(v)
    return "%r...%r (%d bytes)" % (v[:60], v[-40:], len(v))


def writer(idx, args, stop, counts, errors):
    rng = random.Random(os.getpid() * 7919 + idx)
    target = os.path.join(args.dir, args.id)
    scratch = os.path.join(args.dir, ".%s.w%d" % (args.id, idx))
    n = 0
    while not stop.is_set():
        v = make_value(rng, args.min_len, args.max_len)
        try:
            if args.mode == "mv":
                fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                try:
                    os.write(fd, v)
                finally:
                    os.close(fd)
                os.rename(scratch, target)
            else:
                fd = os.open(target, os.O_WRONLY | os.O_TRUNC)
                try:
                    # several writes: a reader must still never see a part
                    cut = rng.randint(0, len(v))
                    for part in (v[:cut], v[cut:]):
                        if part:
                            off = 0
                            while off < len(part):
                                off += os.write(fd, part[off:])
                finally:
                    os.close(fd)
            n += 1
        except OSError as e:
            with errors.get_lock():
                errors.value += 1
            print("writer %d: %s" % (idx, e), file=sys.stderr, flush=True)
            if errors.value > 20:
                break
    with counts.get_lock():
        counts.value += n


def reader(idx, args, quota, result_q):
    path = os.path.join(args.dir, args.id)
    bad = 0
    done = 0
    msgs = []
    for _ in range(quota):
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                chunks = []
                while True:
                    b = os.read(fd, 65536)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(fd)
            v = b"".join(chunks)
            why = check_value(v)
        except OSError as e:
            why = "read failed: %s" % e
            v = b""
        done += 1
        if why:
            bad += 1
            if len(msgs) < 5:
                msgs.append("reader %d, read %d: %s: %s" % (idx, done, why, describe(v)))
    result_q.put((done, bad, msgs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("id")
    ap.add_argument("--reads", type=int, default=20000, help="reads in total (default 20000)")
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--mode", choices=("mv", "inplace"), default="mv")
    ap.add_argument("--min-len", type=int, default=70)
    ap.add_argument("--max-len", type=int, default=2000)
    ap.add_argument("--init", action="store_true",
                    help="first write one valid value to DIR/ID (creating it)")
    args = ap.parse_args()

    if args.init:
        v = make_value(random.Random(1), args.min_len, args.max_len)
        with open(os.path.join(args.dir, args.id), "wb") as f:
            f.write(v)

    stop = mp.Event()
    rotations = mp.Value("l", 0)
    werrors = mp.Value("l", 0)
    result_q = mp.Queue()
    writers = [mp.Process(target=writer, args=(i + 1, args, stop, rotations, werrors))
               for i in range(args.writers)]
    per = [args.reads // args.readers + (1 if i < args.reads % args.readers else 0)
           for i in range(args.readers)]
    readers = [mp.Process(target=reader, args=(i + 1, args, per[i], result_q))
               for i in range(args.readers)]
    t0 = time.monotonic()
    for p in writers + readers:
        p.start()
    results = [result_q.get() for _ in readers]
    for p in readers:
        p.join()
    stop.set()
    for p in writers:
        p.join()
    elapsed = time.monotonic() - t0

    reads = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    for r in results:
        for m in r[2]:
            print("BAD READ: " + m, file=sys.stderr)
    # the value left at the end must be whole too
    with open(os.path.join(args.dir, args.id), "rb") as f:
        final = f.read()
    why = check_value(final)
    if why:
        print("BAD FINAL VALUE: %s: %s" % (why, describe(final)), file=sys.stderr)
        bad += 1
    print("mode=%s readers=%d writers=%d elapsed=%.1fs" %
          (args.mode, args.readers, args.writers, elapsed))
    print("reads=%d bad=%d rotations=%d writer_errors=%d" %
          (reads, bad, rotations.value, werrors.value))
    if bad or werrors.value or reads < args.reads or any(p.exitcode for p in writers + readers):
        print("FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
