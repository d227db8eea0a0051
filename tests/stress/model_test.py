#!/usr/bin/env python3
"""Model-based concurrency test: threads race on a few shared secrets.

Threads issue random operations on a few secrets through a secretsfs mount;
every value observed is checked against a reference model of what the
completed operations allow.

  model_test.py MNT [--seed S] [--ops N] [--threads T] [--ids K]
                    [--scopes ai_gateway,mcp_server,ai_agent] [--timeout SEC]
                    [--history FILE] [--max-report N] [--sabotage KIND]

MNT is a mounted secretsfs (not -o fast).  The test owns the IDs MODEL_K0..
in the scopes it uses: it deletes whatever they hold first.

Values are sequences of 16-byte tokens "<OOOOOOO-IIIII>\\n" (O = the number
of the operation that wrote it, in hex; I = the token's index in what that
operation wrote), so every value names the operation that produced its last
token.  T threads each run a list of operations drawn from the seed, on K
IDs (default 5) in 3 scopes, so they contend:

  create   open O_WRONLY|O_CREAT|O_TRUNC, write 1-8 tokens (sometimes ~4096,
           around the 65,536-byte limit), [fsync], close
  whole    the same without O_CREAT (replace an existing value), sometimes
           in two write()s
  append   open O_WRONLY|O_APPEND, write one token, close
  truncate truncate(path, 16): the first token stays
  rotate   write scope/.ID.tN.new, rename it onto scope/ID
  mv, ln, rm   a/ID -> b/ID, a/ID -> b/ID, a/ID
  delall   unlink ID in every scope (then a create follows)
  label    setxattr / removexattr user.tag.kN
  read     open, read to EOF, close
  hread    open, read to EOF, sleep, pread from 0 to EOF, close
  hwrite   open O_RDWR, pread the whole value, sleep, pwrite a token at its
           end, [fsync], close

No operation is ever retried: each records its interval [start, end]
(time.monotonic) and outcome (ok, or the errno and the step that got it).

Checks (each violation is printed with the seed, the operations and their
intervals; exit status 1):
  1 every value read (plain read, held fd, O_RDWR base, final state) is
    well formed: whole tokens; the first operation's tokens whole or only
    its first one (truncate); then one token per append / held write, each
    once, never one that finished before an earlier one started; the part
    before a held write's token is exactly what that fd read at open; no
    token of another secret
  2 no token of an operation that failed (errno at write, fsync, close or
    rename) ever appears in a read or in the final state
  3 not stale: the producer (the op of the last token, or for a one-token
    value a truncate) started before the read's open ended and was not
    superseded (a successful value-producing op, or a definite delete, that
    started after it ended and ended before the read started); nor was the
    maker of the first token (appends and truncates keep it) replaced by a
    successful whole write / create / rotation, or a definite delete, in
    that way; an empty value (or one starting with the 16 zero bytes a
    truncate makes of an empty name) only while a name made by a create may
    have been pending (the create, and any chain of overlapping ops holding
    an fd of that ID); a read of an ID deleted that way says ENOENT
  4 a held read fd keeps its open-time value (pread 0 == first read); a
    non-O_TRUNC write fd (append, held write) whose ID was definitely
    deleted after its open and before its commit must not succeed
  5 final state (all threads joined): each ID's value, or its absence, is
    allowed by the ops that could have been last; all its names read the
    same; st_size equals the length read
A "definite delete" is a delall whose unlinks all returned 0 or ENOENT
with no create/rotate/mv/ln of that ID overlapping it.

Accepted as legitimate: EIO (or ESTALE) at close/fsync of a non-O_TRUNC
write after a concurrent change (compare-and-swap), EEXIST from a create or
rotation when the ID is in another scope, ENOENT from rename/link/unlink/
open when another thread removed the name, EEXIST from ln, any errno making
an op fail; ENOENT from any read.

--history FILE writes every op (interval, outcome, what it read) by start
time, to see what happened around a violation.  --sabotage KIND is the
self-test: it falsifies the recorded history after the run so that one
check must fire (partial: 1, failed: 2, stale: 3, fd: 4, final: 5).

The last line on stdout is machine-readable:
  model: seed=S ops=N threads=T elapsed=Xs checked=Xs violations=N c1=N c2=N c3=N c4=N c5=N
"""
import argparse
import bisect
import errno
import os
import random
import re
import sys
import threading
import time

TOK = 16
MAXV = 65536
TOKRE = re.compile(rb"<([0-9a-f]{7})-([0-9a-f]{5})>\n")
ZERO = b"\0" * TOK          # what truncate(16) makes of an empty (pending) name
ZTOK = (-1, 0)

BASE = ("create", "whole", "rotate")             # write a whole value
TAIL = ("append", "hwrite")                      # add one token to a value
PRODUCERS = BASE + TAIL + ("truncate",)          # change the value
NAMEADD = ("create", "rotate", "mv", "ln")       # may give the ID a name
DELETERS = ("rm", "delall")
FDOPS = ("create", "whole", "append", "read", "hread", "hwrite")   # hold an fd
WEIGHTS = [("create", 8), ("whole", 8), ("append", 10), ("truncate", 5),
           ("rotate", 8), ("mv", 5), ("ln", 6), ("rm", 4), ("delall", 3),
           ("label", 5), ("read", 16), ("hread", 6), ("hwrite", 8)]

T0 = time.monotonic()


def now():
    return time.monotonic() - T0


def token(n, i):
    return b"<%07x-%05x>\n" % (n, i)


def ename(e):
    return errno.errorcode.get(e, str(e)) if e is not None else "?"


class Op:
    __slots__ = ("n", "thread", "kind", "id", "scope", "scope2", "ntok", "split",
                 "fsync", "sleep", "label", "start", "end", "open_end",
                 "commit_start", "snap_end", "ok", "step", "err", "warn",
                 "data", "data2", "unlinks", "unlinks_order", "done")

    def __init__(self, n, thread, kind, sid, scope):
        self.n, self.thread, self.kind, self.id, self.scope = n, thread, kind, sid, scope
        self.scope2 = None
        self.ntok = 0
        self.split = False
        self.fsync = False
        self.sleep = 0.0
        self.label = None
        self.start = self.end = self.open_end = self.commit_start = self.snap_end = None
        self.ok = False          # completed without error (producers: committed)
        self.step = None         # the step that failed
        self.err = None          # its errno
        self.warn = None
        self.data = self.data2 = None
        self.unlinks = []
        self.unlinks_order = ()
        self.done = False

    @property
    def failed(self):
        """Its tokens must never be seen."""
        return self.done and not self.ok

    def outcome(self):
        if not self.done:
            return "not run"
        if self.ok:
            return "ok" + (" (%s)" % self.warn if self.warn else "")
        return "%s at %s" % (ename(self.err), self.step)

    def path(self):
        p = "%s/%s" % (self.scope, self.id)
        if self.scope2:
            p += " -> %s/%s" % (self.scope2, self.id)
        return p

    def desc(self):
        if self.start is None:
            iv = "[not run]"
        elif self.open_end is not None and self.kind in ("read", "hread", "hwrite", "create", "whole", "append"):
            iv = "[%.6f, open %.6f, %.6f]" % (self.start, self.open_end, self.end)
        else:
            iv = "[%.6f, %.6f]" % (self.start, self.end)
        who = "setup" if self.thread < 0 else "t%d" % self.thread
        extra = ""
        if self.kind in BASE:
            extra = " %d tok" % self.ntok
        return "op %d (%s %s %s%s %s %s)" % (self.n, who, self.kind, self.path(), extra,
                                            iv, self.outcome())


# ------------------------------------------------------------------ running

def read_all(fd, pread=False):
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 17, off) if pread else os.read(fd, 1 << 17)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        off += len(b)


def close_quietly(fd):
    try:
        os.close(fd)
    except OSError:
        pass


def write_all(fd, data):
    off = 0
    while off < len(data):
        off += os.write(fd, data[off:])


class Runner:
    def __init__(self, mnt):
        self.mnt = mnt

    def p(self, scope, name):
        return os.path.join(self.mnt, scope, name)

    def run(self, op):
        op.start = now()
        try:
            getattr(self, "op_" + op.kind)(op)
            op.ok = True
        except OSError as e:
            op.err = e.errno
        except Exception as e:   # a bug in this script: keep going, report it
            op.err = None
            op.step = "python %r" % e
        op.end = now()
        op.done = True

    def _write_op(self, op, flags):
        path = self.p(op.scope, op.id)
        op.step = "open"
        fd = os.open(path, flags, 0o600)
        op.open_end = now()
        try:
            op.step = "write"
            data = b"".join(token(op.n, i) for i in range(op.ntok))
            if op.split and len(data) > TOK:
                cut = TOK * random.Random(op.n).randrange(1, op.ntok)
                write_all(fd, data[:cut])
                write_all(fd, data[cut:])
            else:
                write_all(fd, data)
        except BaseException:
            close_quietly(fd)
            raise
        self._commit(op, fd)

    def _commit(self, op, fd):
        """fsync (if asked) and close fd, exactly once (other threads reuse
        fd numbers).  A close error after a successful fsync is only a
        warning: the value was committed by the fsync."""
        op.commit_start = now()
        if op.fsync:
            op.step = "fsync"
            try:
                os.fsync(fd)
            except BaseException:
                close_quietly(fd)
                raise
            try:
                os.close(fd)
            except OSError as e:
                op.warn = "close after fsync: %s" % ename(e.errno)
            return
        op.step = "close"
        os.close(fd)     # closed even when it raises

    def op_create(self, op):
        self._write_op(op, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

    def op_whole(self, op):
        self._write_op(op, os.O_WRONLY | os.O_TRUNC)

    def op_append(self, op):
        op.ntok = 1
        self._write_op(op, os.O_WRONLY | os.O_APPEND)

    def op_truncate(self, op):
        op.step = "truncate"
        os.truncate(self.p(op.scope, op.id), TOK)

    def op_rotate(self, op):
        scratch = self.p(op.scope, ".%s.t%d.new" % (op.id, op.thread))
        try:
            op.step = "scratch-open"
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                op.step = "scratch-write"
                write_all(fd, b"".join(token(op.n, i) for i in range(op.ntok)))
            except BaseException:
                close_quietly(fd)
                raise
            op.step = "scratch-close"
            os.close(fd)       # a scratch file's close is no commit
            op.step = "rename"
            op.commit_start = now()
            os.rename(scratch, self.p(op.scope, op.id))
        except OSError:
            try:
                os.unlink(scratch)
            except OSError:
                pass
            raise

    def op_mv(self, op):
        op.step = "rename"
        os.rename(self.p(op.scope, op.id), self.p(op.scope2, op.id))

    def op_ln(self, op):
        op.step = "link"
        os.link(self.p(op.scope, op.id), self.p(op.scope2, op.id))

    def op_rm(self, op):
        op.step = "unlink"
        os.unlink(self.p(op.scope, op.id))

    def op_delall(self, op):
        bad = None
        for s in op.unlinks_order:
            try:
                os.unlink(self.p(s, op.id))
                op.unlinks.append((s, 0))
            except OSError as e:
                op.unlinks.append((s, e.errno))
                if e.errno != errno.ENOENT and bad is None:
                    bad = e
        if bad is not None:
            op.step = "unlink"
            raise bad

    def op_label(self, op):
        path = self.p(op.scope, op.id)
        k, v = op.label
        if v is None:
            op.step = "removexattr"
            os.removexattr(path, "user.tag." + k)
        else:
            op.step = "setxattr"
            os.setxattr(path, "user.tag." + k, v.encode())

    def op_read(self, op):
        op.step = "open"
        fd = os.open(self.p(op.scope, op.id), os.O_RDONLY)
        op.open_end = now()
        try:
            op.step = "read"
            op.data = read_all(fd)
        finally:
            os.close(fd)

    def op_hread(self, op):
        op.step = "open"
        fd = os.open(self.p(op.scope, op.id), os.O_RDONLY)
        op.open_end = now()
        try:
            op.step = "read"
            op.data = read_all(fd)
            time.sleep(op.sleep)
            op.step = "pread"
            op.data2 = read_all(fd, pread=True)
        finally:
            os.close(fd)

    def op_hwrite(self, op):
        op.ntok = 1
        op.step = "open"
        fd = os.open(self.p(op.scope, op.id), os.O_RDWR)
        op.open_end = now()
        try:
            op.step = "pread"
            op.data = read_all(fd, pread=True)
            op.snap_end = now()
            time.sleep(op.sleep)
            op.step = "write"
            n = os.pwrite(fd, token(op.n, 0), len(op.data))
            if n != TOK:
                raise OSError(errno.EIO, "short pwrite %d" % n)
        except BaseException:
            close_quietly(fd)
            raise
        self._commit(op, fd)


# ------------------------------------------------------------------ generating

def gen_ops(seed, nops, nthreads, ids, scopes):
    """Setup ops (thread -1) and one op list per thread, all from the seed."""
    ops = []

    def new(thread, kind, sid, scope):
        op = Op(len(ops), thread, kind, sid, scope)
        ops.append(op)
        return op

    def base_len(rng):
        r = rng.random()
        if r < 0.03:
            return rng.choice((4094, 4095, 4096, 4096, 4097, 4100))   # 4096 tokens = 65,536 bytes
        return rng.randint(1, 8)

    rng = random.Random(seed)
    setup = []
    for sid in ids:
        d = new(-1, "delall", sid, scopes[0])
        d.unlinks_order = list(scopes)
        c = new(-1, "create", sid, rng.choice(scopes))
        c.ntok = rng.randint(1, 4)
        setup += [d, c]
    kinds = [k for k, w in WEIGHTS for _ in range(w)]
    lists = []
    for t in range(nthreads):
        trng = random.Random(seed * 1000 + t)
        lst = []
        while len(lst) < nops // nthreads:
            kind = trng.choice(kinds)
            sid = trng.choice(ids)
            scope = trng.choice(scopes)
            op = new(t, kind, sid, scope)
            if kind in ("create", "whole", "rotate"):
                op.ntok = base_len(trng)
                op.split = kind == "whole" and trng.random() < 0.3
                op.fsync = kind != "rotate" and trng.random() < 0.1
            elif kind == "hwrite":
                op.fsync = trng.random() < 0.1
                op.sleep = trng.uniform(0.001, 0.015)
            elif kind == "hread":
                op.sleep = trng.uniform(0.001, 0.015)
            elif kind in ("mv", "ln"):
                op.scope2 = trng.choice([s for s in scopes if s != scope])
            elif kind == "label":
                op.label = ("k%d" % trng.randrange(2),
                            None if trng.random() < 0.3 else "v%d" % op.n)
            lst.append(op)
            if kind == "delall":
                order = list(scopes)
                trng.shuffle(order)
                op.unlinks_order = order
                c = new(t, "create", sid, trng.choice(scopes))
                c.ntok = trng.randint(1, 8)
                lst.append(c)
        lists.append(lst)
    return ops, setup, lists


# ------------------------------------------------------------------ checking

class Model:
    def __init__(self, ops, seed):
        self.ops = ops
        self.seed = seed
        self.viol = {c: [] for c in (1, 2, 3, 4, 5)}
        self.by_id = {}
        for op in ops:
            if op.done:
                self.by_id.setdefault(op.id, []).append(op)
        self.sup = {}       # id -> (starts, best): see superseder()
        self.bsup = {}
        self.ddel = {}      # id -> definite deletes, by start
        self.ddel_starts = {}
        self.pending = {}   # id -> ([(start, end)] when a name may be pending, [ends])
        self.truncs = {}    # id -> (successful truncates by start, starts, longest)
        for sid, lst in self.by_id.items():
            # name-adding ops by start, with the latest end so far: some x
            # overlaps [a, b] iff max(x.end for x.start < b) > a
            na = sorted((x.start, x.end) for x in lst if x.kind in NAMEADD)
            na_starts = [a for a, _ in na]
            na_maxend, m = [], float("-inf")
            for _, b in na:
                m = max(m, b)
                na_maxend.append(m)
            dd = []
            for d in lst:
                if d.kind != "delall" or not d.ok:
                    continue
                i = bisect.bisect_left(na_starts, d.end)
                if i and na_maxend[i - 1] > d.start:
                    continue
                dd.append(d)
            dd.sort(key=lambda o: o.start)
            self.ddel[sid] = dd
            self.ddel_starts[sid] = [d.start for d in dd]
            win = self.pending_windows(lst)
            self.pending[sid] = (win, [b for _, b in win])
            tr = sorted((o for o in lst if o.kind == "truncate" and o.ok), key=lambda o: o.start)
            self.truncs[sid] = (tr, [o.start for o in tr],
                                max((o.end - o.start for o in tr), default=0.0))
            # any successful change supersedes a value; only a whole
            # replacement (or a delete) supersedes its first token
            self.sup[sid] = self.index([o for o in lst if o.kind in PRODUCERS and o.ok] + dd)
            self.bsup[sid] = self.index([o for o in lst if o.kind in BASE and o.ok] + dd)

    @staticmethod
    def index(sups):
        """(starts, best): sups by start; best[i] is the one with the
        smallest end among sups[i:]."""
        sups = sorted(sups, key=lambda o: o.start)
        best = [None] * (len(sups) + 1)
        for i in range(len(sups) - 1, -1, -1):
            b = best[i + 1]
            best[i] = sups[i] if b is None or sups[i].end < b.end else b
        return [o.start for o in sups], best

    def add(self, check, text):
        self.viol[check].append(text)

    def superseder(self, sid, c, before, base=False):
        """An op that definitely superseded producer c before time `before`
        (None = ever): it started after c ended and ended before `before`.
        base: only whole replacements and deletes count (c made the first
        token, which appends and truncates keep)."""
        starts, best = (self.bsup if base else self.sup).get(sid, ([], [None]))
        i = bisect.bisect_right(starts, c.end)
        b = best[i]
        if b is None:
            return None
        if before is None or b.end < before:
            return b
        return None

    def parse(self, v):
        if len(v) % TOK:
            return None, "length %d is not a whole number of %d-byte tokens" % (len(v), TOK)
        toks = []
        for i in range(0, len(v), TOK):
            ch = v[i:i + TOK]
            if ch == ZERO:
                toks.append(ZTOK)
                continue
            m = TOKRE.fullmatch(ch)
            if not m:
                return None, "bytes %d..%d are not a token: %r" % (i, i + TOK, ch)
            toks.append((int(m.group(1), 16), int(m.group(2), 16)))
        return toks, None

    def check_value(self, obs, v, sid, lo, hi, what, final=False):
        """One observed value v of sid, current at some instant of [lo, hi]
        (final: after everything)."""
        ops = self.ops
        head = "%s by %s: %s" % (what, obs.desc() if obs else "final state", show(v))
        toks, why = self.parse(v)
        if toks is None:
            self.add(1, "%s: %s" % (head, why))
            return
        if not toks:
            if final:
                self.add(5, "%s: an empty value is left at the end" % head)
                return
            if not self.maybe_pending(sid, lo, hi):
                self.add(3, "%s: empty, but no create of %s was in progress (nor an fd "
                         "still open on a name it made)" % (head, sid))
            return
        # 2: tokens of failed ops
        bad = sorted({n for n, _ in toks if 0 <= n < len(ops) and ops[n].failed})
        if bad:
            self.add(2, "%s: holds tokens of failed op(s): %s" % (
                head, "; ".join(ops[n].desc() for n in bad)))
            return
        # 1: structure
        for pos, (n, i) in enumerate(toks):
            if (n, i) == ZTOK:
                if pos != 0:
                    self.add(1, "%s: 16 zero bytes at token %d" % (head, pos))
                    return
                continue
            if n >= len(ops) or not ops[n].done or ops[n].kind not in BASE + TAIL \
                    or i >= ops[n].ntok:
                self.add(1, "%s: token %d <%07x-%05x> was never written by any op" % (head, pos, n, i))
                return
            if ops[n].id != sid:
                self.add(1, "%s: token %d is from %s, another secret" % (head, pos, ops[n].desc()))
                return
        n0, i0 = toks[0]
        if (n0, i0) == ZTOK:
            if not self.zero_truncates(sid):
                self.add(1, "%s: starts with 16 zero bytes, but no truncate met a pending create" % head)
                return
            k = 1
        else:
            if i0 != 0:
                self.add(1, "%s: first token is #%d of op %d, not its first" % (head, i0, n0))
                return
            k = 1
            while k < len(toks) and toks[k][0] == n0:
                if toks[k][1] != k:
                    self.add(1, "%s: token %d is #%d of op %d" % (head, k, toks[k][1], n0))
                    return
                k += 1
            b = ops[n0]
            if k != 1 and k != b.ntok:
                self.add(1, "%s: %d of the %d tokens of %s (neither whole nor truncated)" % (
                    head, k, b.ntok, b.desc()))
                return
        seen = set()
        for pos in range(k, len(toks)):
            n, i = toks[pos]
            o = ops[n]
            if o.kind not in TAIL or n in seen or n == n0:
                self.add(1, "%s: token %d from %s is not an appended token" % (head, pos, o.desc()))
                return
            seen.add(n)
        seq = [ops[n] for n, _ in toks[k - 1:] if n >= 0]
        for a in range(len(seq)):
            for b2 in range(a + 1, len(seq)):
                if seq[b2].end < seq[a].start and seq[b2].n != seq[a].n:
                    self.add(1, "%s: %s comes after %s, which started after it ended" % (
                        head, seq[b2].desc(), seq[a].desc()))
                    return
        for pos, (n, i) in enumerate(toks):
            o = ops[n] if n >= 0 else None
            if o is not None and o.kind == "hwrite" and o.data is not None:
                if v[:pos * TOK] != o.data:
                    self.add(1, "%s: the part before %s's token is not what that fd read at open (%s)" % (
                        head, o.desc(), show(o.data)))
                    return
        # 3 / 5: the first token's maker must not have been replaced
        firsts = [ops[n0]] if n0 >= 0 else self.zero_truncates(sid)
        reasons = []
        for f in firsts:
            if not final and not f.start < hi:
                reasons.append("%s started after the read's open ended" % f.desc())
                continue
            s = self.superseder(sid, f, None if final else lo, base=True)
            if s is None:
                break
            reasons.append("%s was replaced by %s" % (f.desc(), s.desc()))
        else:
            if len(reasons) > 3:
                reasons[3:] = ["%d more, all replaced" % (len(reasons) - 3)]
            self.add(5 if final else 3, "%s: stale first token: %s%s" % (
                head, "; ".join(reasons), self.enoent(sid, lo, hi, final)))
            return
        # 3 / 5: a producer that could be current
        last_n, _ = toks[-1]
        cands = []
        if last_n >= 0:
            lo_op = ops[last_n]
            if len(toks) > 1 or lo_op.kind in TAIL or lo_op.ntok == 1:
                cands.append(lo_op)
        if len(toks) == 1:
            # (truncates that started after the read's open ended are left
            # out: they could not be what it read).  A truncate keeps a
            # first token of zeros too.
            after = ops[last_n].start if last_n >= 0 else min(t.start for t in firsts)
            cands += self.truncates_after(sid, after, hi)
        if not cands:
            self.add(3 if not final else 5,
                     "%s: only the first of the %d tokens of %s, but no successful truncate of %s "
                     "ended after it started%s" % (
                         head, ops[last_n].ntok, ops[last_n].desc(), sid,
                         "" if final else " and started before the read's open ended"))
            return
        reasons = []
        for c in cands:
            if not final and not c.start < hi:
                reasons.append("%s started after the read's open ended" % c.desc())
                continue
            s = self.superseder(sid, c, None if final else lo)
            if s is None:
                return   # c may be current
            reasons.append("%s was superseded by %s" % (c.desc(), s.desc()))
        if len(reasons) > 3:
            reasons[3:] = ["%d more candidates, all superseded" % (len(reasons) - 3)]
        self.add(5 if final else 3, "%s: stale: %s%s" % (
            head, "; ".join(reasons), self.enoent(sid, lo, hi, final)))

    def enoent(self, sid, lo, hi, final):
        if final:
            return ""
        d = self.deleted_at(sid, lo, hi)
        if d is None:
            return ""
        return "; %s was deleted by %s and no op that could re-create it ran before the read: expected ENOENT" % (
            sid, d.desc())

    def maybe_pending(self, sid, lo, hi):
        """Whether a name of sid may have been pending at some instant of (lo, hi)."""
        win, ends = self.pending.get(sid, ((), ()))
        i = bisect.bisect_right(ends, lo)
        return i < len(win) and win[i][0] < hi

    def zero_truncates(self, sid):
        """Successful truncates that may have met a pending (empty) name."""
        return [t for t in self.truncs.get(sid, ((),))[0] if self.maybe_pending(sid, t.start, t.end)]

    def truncates_after(self, sid, after, hi):
        """Successful truncates of sid that ended after `after` and (unless hi
        is None) started before hi."""
        tr, starts, longest = self.truncs.get(sid, ((), (), 0.0))
        i = bisect.bisect_left(starts, after - longest)
        j = len(tr) if hi is None else bisect.bisect_left(starts, hi)
        return [t for t in tr[i:j] if t.end > after]

    @staticmethod
    def pending_windows(lst):
        """When a name of this ID may be pending (created, no value yet): from
        the start of a create, for as long as a chain of overlapping ops
        that hold an fd (which keep a pending name alive) lasts."""
        iv = sorted((o.start, o.end, o.kind == "create") for o in lst
                    if o.kind in FDOPS and o.open_end is not None)
        wins, cur = [], None     # cur: [seed start or None, end]
        for a, b, seed in iv:
            if cur is not None and a < cur[1]:
                cur[1] = max(cur[1], b)
                if seed and cur[0] is None:
                    cur[0] = a
                continue
            if cur is not None and cur[0] is not None:
                wins.append((cur[0], cur[1]))
            cur = [a if seed else None, b]
        if cur is not None and cur[0] is not None:
            wins.append((cur[0], cur[1]))
        return wins

    def deleted_at(self, sid, lo, hi):
        """A definite delete of sid that ended before lo, with no op that
        could give sid a name or a value after it and before hi."""
        lst = self.by_id.get(sid, ())
        for d in self.ddel.get(sid, ()):
            if d.end >= lo:
                continue
            if not any(x.kind in NAMEADD + PRODUCERS and x.end > d.start and x.start < hi
                       for x in lst):
                return d
        return None

    def run_checks(self, final_state):
        for op in self.ops:
            if not op.done or op.thread < 0:
                continue
            if op.kind in ("read", "hread") and op.data is not None:
                self.check_value(op, op.data, op.id, op.start, op.open_end, "read")
                if op.kind == "hread" and op.data2 is not None and op.data2 != op.data:
                    self.add(4, "held read fd of %s: pread(0) after %.1f ms gave %s, the open-time read gave %s" % (
                        op.desc(), op.sleep * 1000, show(op.data2), show(op.data)))
            if op.kind == "hwrite" and op.data is not None:
                self.check_value(op, op.data, op.id, op.start, op.snap_end, "O_RDWR open-time value")
            if op.kind in TAIL and op.ok and op.commit_start is not None:
                dd, starts = self.ddel.get(op.id, ()), self.ddel_starts.get(op.id, ())
                for i in range(bisect.bisect_right(starts, op.open_end), len(dd)):
                    d = dd[i]
                    if d.start >= op.commit_start:
                        break
                    if d.end < op.commit_start:
                        self.add(4, "%s succeeded, but its ID was deleted by %s after the fd was opened and before its commit" % (
                            op.desc(), d.desc()))
                        break
        for sid, st in sorted(final_state.items()):
            self.check_final(sid, st)

    def check_final(self, sid, st):
        present = {s: x for s, x in st.items() if x[0] is not None}
        for s, x in st.items():
            if x[2] is not None:
                self.add(5, "final state of %s/%s: %s" % (s, sid, x[2]))
        if not present:
            for p in self.by_id.get(sid, ()):
                if p.kind in PRODUCERS and p.ok:
                    if not any(x.kind in DELETERS and x.end > p.start for x in self.by_id[sid]):
                        self.add(5, "final state: %s is absent, but %s committed after every op that could delete it" % (
                            sid, p.desc()))
                        break
            return
        vals = {}
        for s, (v, size, _) in sorted(present.items()):
            vals.setdefault(v, []).append(s)
            if size != len(v):
                self.add(5, "final state of %s/%s: st_size %d, read %d bytes" % (s, sid, size, len(v)))
        if len(vals) > 1:
            self.add(5, "final state of %s: its names read different values: %s" % (
                sid, "; ".join("%s: %s" % (",".join(ss), show(v)) for v, ss in vals.items())))
        for v, ss in vals.items():
            self.check_value(None, v, sid, None, None, "final value of %s/%s" % (ss[0], sid), final=True)


def show(v):
    if v is None:
        return "-"
    if len(v) <= 4 * TOK:
        return repr(v)
    return "%r...%r (%d bytes)" % (v[:2 * TOK], v[-2 * TOK:], len(v))


def final_state(mnt, ids, scopes):
    st = {}
    for sid in ids:
        st[sid] = {}
        for s in scopes:
            p = os.path.join(mnt, s, sid)
            try:
                size = os.stat(p).st_size
            except FileNotFoundError:
                st[sid][s] = (None, None, None)
                continue
            except OSError as e:
                st[sid][s] = (None, None, "stat: %s" % ename(e.errno))
                continue
            try:
                with open(p, "rb") as f:
                    v = f.read()
                st[sid][s] = (v, size, None)
            except OSError as e:
                st[sid][s] = (None, None, "stat gave size %d, read failed: %s" % (size, ename(e.errno)))
    return st


SABOTAGE = {"partial": 1, "failed": 2, "stale": 3, "fd": 4, "final": 5}


def sabotage(kind, ops, setup, fst, scopes):
    """Self-test: falsify the recorded history so that one check must fire
    (the check SABOTAGE[kind]).  Returns what was done, or None."""
    reads = [o for o in ops if o.thread >= 0 and o.kind == "read" and o.ok and len(o.data) >= TOK]
    first = {o.id: o for o in setup if o.kind == "create"}   # each ID's first value

    def first_value(sid):
        c = first[sid]
        return b"".join(token(c.n, i) for i in range(c.ntok))

    def superseded_before(sid, t):
        c = first[sid]
        return any(o.id == sid and o.kind in PRODUCERS and o.ok and o.thread >= 0
                   and o.start > c.end and o.end < t for o in ops)

    if kind == "partial" and reads:
        r = reads[-1]
        r.data = r.data[:-3]
        return "cut 3 bytes off what %s read" % r.desc()
    if kind == "failed":
        for r in reversed(reads):
            n = int(r.data[-TOK + 1:-TOK + 8], 16)
            if ops[n].ok and ops[n].thread >= 0:
                ops[n].ok, ops[n].err, ops[n].step = False, errno.EIO, "close"
                return "recorded %s as failed" % ops[n].desc()
    if kind == "stale":
        for r in reversed(reads):
            if superseded_before(r.id, r.start):
                r.data = first_value(r.id)
                return "made %s read its ID's first value" % r.desc()
    if kind == "fd":
        for o in reversed(ops):
            if o.kind == "hread" and o.ok and o.data:
                o.data2 = o.data[:-TOK] if len(o.data) > TOK else b""
                return "cut a token off the pread of %s" % o.desc()
    if kind == "final":
        for sid in sorted(fst):
            if superseded_before(sid, float("inf")):
                v = first_value(sid)
                for sc in scopes:
                    fst[sid][sc] = (v, len(v), None)
                return "made the final value of %s its first value" % sid
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mnt")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ops", type=int, default=40000,
                    help="operations in total (default 40000: 20-30 s on 2 cores)")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--ids", type=int, default=5)
    ap.add_argument("--scopes", default="ai_gateway,mcp_server,ai_agent")
    ap.add_argument("--timeout", type=float, default=600,
                    help="give up (exit 3) if the threads have not finished after this many seconds")
    ap.add_argument("--max-report", type=int, default=None,
                    help="print at most this many violations per check (default: all)")
    ap.add_argument("--history", metavar="FILE",
                    help="write every op (interval, outcome, what it read) to FILE, by start time")
    ap.add_argument("--sabotage", choices=sorted(SABOTAGE),
                    help="self-test: falsify the recorded history after the run so that "
                         "check 1 (partial), 2 (failed), 3 (stale), 4 (fd) or 5 (final) must fire")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    scopes = args.scopes.split(",")
    ids = ["MODEL_K%d" % i for i in range(args.ids)]
    print("model: seed=%d ops=%d threads=%d ids=%d scopes=%s mnt=%s" % (
        seed, args.ops, args.threads, args.ids, ",".join(scopes), args.mnt), flush=True)
    for s in scopes:
        if not os.path.isdir(os.path.join(args.mnt, s)):
            print("model: %s/%s is not a directory: is secretsfs mounted there?" % (args.mnt, s),
                  file=sys.stderr)
            return 2

    ops, setup, lists = gen_ops(seed, args.ops, args.threads, ids, scopes)
    r = Runner(args.mnt)
    for s in scopes:          # scratch files an earlier run may have left
        for name in os.listdir(os.path.join(args.mnt, s)):
            if name.startswith(".MODEL_K"):
                try:
                    os.unlink(os.path.join(args.mnt, s, name))
                except OSError:
                    pass
    for op in setup:
        r.run(op)
        if not op.ok:
            print("model: setup failed: %s" % op.desc(), file=sys.stderr)
            return 2

    barrier = threading.Barrier(args.threads)

    def worker(lst):
        barrier.wait()
        for op in lst:
            r.run(op)

    def watchdog():
        time.sleep(args.timeout)
        done = sum(o.done for o in ops)
        print("model: seed=%d: TIMEOUT after %.0f s, %d of %d ops done (a hung request?)" % (
            seed, args.timeout, done, len(ops)), file=sys.stderr, flush=True)
        os._exit(3)

    threading.Thread(target=watchdog, daemon=True).start()
    t_start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(lst,)) for lst in lists]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t_start
    # releases are asynchronous (a commit at release would land now), and
    # attributes are cached for up to a second
    time.sleep(1.2)
    fst = final_state(args.mnt, ids, scopes)

    if args.history:
        with open(args.history, "w") as f:
            for op in sorted(ops, key=lambda o: (o.start is None, o.start or 0)):
                f.write(op.desc())
                if op.kind == "delall":
                    f.write(" unlinks=%s" % ",".join("%s:%s" % (s, ename(e) if e else "ok")
                                                     for s, e in op.unlinks))
                if op.data is not None:
                    f.write(" read=%s" % show(op.data))
                if op.data2 is not None and op.data2 != op.data:
                    f.write(" pread=%s" % show(op.data2))
                f.write("\n")
            for sid in ids:
                f.write("final %s: %s\n" % (sid, " ".join(
                    "%s=%s" % (s, show(x[0]) if x[0] is not None else "absent")
                    for s, x in fst[sid].items())))
    if args.sabotage:
        what = sabotage(args.sabotage, ops, setup, fst, scopes)
        print("model: sabotage %s (check %d must fire): %s" % (
            args.sabotage, SABOTAGE[args.sabotage], what or "nothing to falsify"), flush=True)
        if what is None:
            return 2
    t_check = time.monotonic()
    m = Model(ops, seed)
    m.run_checks(fst)
    t_check = time.monotonic() - t_check

    # outcome counts
    counts = {}
    for op in ops:
        if op.thread < 0:
            continue
        key = "ok" if op.ok else "%s@%s" % (ename(op.err), op.step)
        counts.setdefault(op.kind, {}).setdefault(key, 0)
        counts[op.kind][key] += 1
    for kind, c in sorted(counts.items()):
        print("  %-8s %s" % (kind, " ".join("%s=%d" % kv for kv in sorted(c.items(), key=lambda kv: -kv[1]))))
    warns = [op for op in ops if op.warn]
    for op in warns[:5]:
        print("  warning: %s" % op.desc())
    pyerr = [op for op in ops if op.step and op.step.startswith("python")]
    for op in pyerr[:5]:
        print("model: seed=%d: script error in %s" % (seed, op.desc()), file=sys.stderr)
    for sid in ids:
        print("  final %s: %s" % (sid, " ".join(
            "%s=%s" % (s, "absent" if x[0] is None else "%dB" % len(x[0])) for s, x in fst[sid].items())))

    total = sum(len(v) for v in m.viol.values())
    names = {1: "well-formed", 2: "failed op applied", 3: "stale", 4: "fd incarnation", 5: "final state"}
    for c in sorted(m.viol):
        vs = m.viol[c]
        for text in vs[:args.max_report]:
            print("VIOLATION check %d (%s) seed=%d: %s" % (c, names[c], seed, text))
        if args.max_report is not None and len(vs) > args.max_report:
            print("VIOLATION check %d (%s) seed=%d: ... and %d more" % (
                c, names[c], seed, len(vs) - args.max_report))
    print("model: seed=%d ops=%d threads=%d elapsed=%.1fs checked=%.1fs violations=%d %s" % (
        seed, len(ops) - len(setup), args.threads, elapsed, t_check, total,
        " ".join("c%d=%d" % (c, len(m.viol[c])) for c in sorted(m.viol))), flush=True)
    if total or pyerr:
        print("model: FAILED (repeat with --seed %d)" % seed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
