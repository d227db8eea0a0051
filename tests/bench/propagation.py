#!/usr/bin/env python3
"""Propagation through the etcd store, host A to host B (tests/bench/fleet).

  propagation.py A_DIR B_DIR N

Rotates A_DIR/ai_gateway/PROPAGATION N times the way an operator does
(write .PROPAGATION.new, rename it onto the secret) and measures, for each
rotation, the time from rename() returning on A to
  - the first read of B_DIR/ai_gateway/PROPAGATION returning the new value
    (B is read in a tight loop by a second thread), and
  - B's inotify IN_CLOSE_WRITE/IN_MOVED_TO event for the name.
Prints one line per measure: name, n, p50, p90, p99, max in milliseconds.
"""
import ctypes, os, struct, sys, threading, time

libc = ctypes.CDLL(None, use_errno=True)
IN_CLOSE_WRITE, IN_MOVED_TO = 0x8, 0x80


def main():
    a, b, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name = "PROPAGATION"
    af, bf = f"{a}/ai_gateway/{name}", f"{b}/ai_gateway/{name}"
    with open(af, "w") as f:
        f.write("v-00000000")
    while True:  # B knows it
        try:
            if open(bf).read() == "v-00000000":
                break
        except OSError:
            pass
        time.sleep(0.01)

    ino = libc.inotify_init1(os.O_CLOEXEC)
    libc.inotify_add_watch(ino, os.fsencode(f"{b}/ai_gateway"), IN_CLOSE_WRITE | IN_MOVED_TO)
    events = []  # monotonic times of events for the name

    def reader():
        buf = 4096
        while True:
            data = os.read(ino, buf)
            t = time.monotonic()
            off = 0
            while off < len(data):
                _, mask, _, ln = struct.unpack_from("iIII", data, off)
                nm = data[off + 16: off + 16 + ln].rstrip(b"\0").decode()
                off += 16 + ln
                if nm == name:
                    events.append(t)

    threading.Thread(target=reader, daemon=True).start()
    read_ms, event_ms = [], []
    for i in range(1, n + 1):
        want = "v-%08d" % i
        with open(f"{a}/ai_gateway/.{name}.new", "w") as f:
            f.write(want)
        before = len(events)
        os.rename(f"{a}/ai_gateway/.{name}.new", af)
        t0 = time.monotonic()
        while True:
            with open(bf) as f:
                if f.read() == want:
                    break
        read_ms.append((time.monotonic() - t0) * 1000)
        deadline = time.monotonic() + 5
        while len(events) <= before and time.monotonic() < deadline:
            time.sleep(0.0005)
        if len(events) > before:
            event_ms.append((events[before] - t0) * 1000)
    for label, v in (("read", read_ms), ("inotify", event_ms)):
        v.sort()
        if not v:
            print(f"{label} 0 nan nan nan nan")
            continue
        q = lambda p: v[min(len(v) - 1, int(p * len(v)))]
        print(f"{label} {len(v)} {q(0.5):.2f} {q(0.9):.2f} {q(0.99):.2f} {v[-1]:.2f}")


main()
