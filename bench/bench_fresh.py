#!/usr/bin/python3
"""bench_fresh.py -- the producer, the notification listener and the report of bench_fresh.sh.

Event-to-aggregate freshness of zqld's `schedule on event`: how long after a producer sends
an event the aggregate that includes it is committed and announced (agg_complete on the PUB
socket). Debian's python3-zmq and python3-bson only.

  bench_fresh.py ports N
      N free TCP ports of 127.0.0.1, one per line.
  bench_fresh.py produce ENDPOINT --rate R --seconds S --out SENDS
      PUSH R events/s for S seconds to zqld's BSON PULL endpoint, in slices of 1 ms (R/1000
      events each). Event i (from 1) is {type: "fresh", context: {k: i % 16}, extra: {n: i}}:
      with one producer on an empty log, PULL keeps the order and event i gets _seq i (the
      script checks samples). SENDS gets, per slice, its first event number and its send
      time (the clock read before the slice is sent, time.time_ns(): the same clock as the
      listener's): the conservative choice, every event of a slice is counted from the
      slice's start. Prints "sent N events in T s (R/s)".
  bench_fresh.py listen ENDPOINT OUT [--ready FILE] [--name AGG] [--until-hi N] [--seconds S]
      SUB to zqld's PUB: every agg_complete of AGG as "recv_ns lo hi events" in OUT; FILE is
      created once connected; ends when a notification reaches hi >= N (once N is known:
      --until-hi, or a file OUT.until written later holding N), after S seconds, or at
      SIGTERM.
  bench_fresh.py report SENDS NOTES
      freshness of every event: the arrival of the first notification whose (lo, hi] holds
      it, minus its send time; and per notification, that of its newest and of its oldest
      event. Prints p50 / p99 / max of each, and the number of runs.
"""

import argparse
import os
import signal
import socket
import struct
import sys
import time

import bson
import zmq


def cmd_ports(a):
    ss = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ss.append(s)
    for s in ss:
        print(s.getsockname()[1])
    for s in ss:
        s.close()
    return 0


def cmd_produce(a):
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.SNDHWM, 0)  # never drop or block on our side: queueing shows as latency
    s.connect(a.endpoint)
    time.sleep(0.3)  # the connection
    tmpl = bytearray(bson.encode({"type": "fresh", "context": {"k": 0},
                                  "extra": {"n": bson.int64.Int64(0)}}))
    # offsets of the int32 k and the int64 n inside the template
    k_off = tmpl.index(b"\x10k\x00") + 3
    n_off = tmpl.index(b"\x12n\x00") + 3
    per = max(1, a.rate // 1000)
    total = a.rate * a.seconds
    out = []
    i = 1
    t0 = time.monotonic_ns()
    slice_no = 0
    pack_i32 = struct.Struct("<i").pack_into
    pack_i64 = struct.Struct("<q").pack_into
    send = s.send
    while i <= total:
        due = t0 + slice_no * 1000000 * per * 1000 // a.rate
        now = time.monotonic_ns()
        if now < due:
            d = (due - now) / 1e9
            if d > 0.0002:
                time.sleep(d - 0.0001)
            continue
        n = min(per, total - i + 1)
        out.append((i, time.time_ns()))
        for j in range(i, i + n):
            pack_i32(tmpl, k_off, j & 15)
            pack_i64(tmpl, n_off, j)
            send(bytes(tmpl))
        i += n
        slice_no += 1
    t1 = time.monotonic_ns()
    s.close(linger=30000)
    ctx.term()
    with open(a.out, "wb") as f:
        for first, t in out:
            f.write(struct.pack("<qq", first, t))
    secs = (t1 - t0) / 1e9
    print("sent %d events in %.3f s (%.0f/s)" % (total, secs, total / secs))
    return 0


def cmd_listen(a):
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.RCVHWM, 0)
    mon = s.get_monitor_socket(zmq.EVENT_CONNECTED)
    s.connect(a.endpoint)
    stop = []
    signal.signal(signal.SIGTERM, lambda *x: stop.append(1))
    out = open(a.out, "w")
    end = time.time() + a.seconds
    until = a.until_hi
    ready = False
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    poller.register(mon, zmq.POLLIN)
    hi_max = 0
    while not stop and time.time() < end:
        ev = dict(poller.poll(50))
        if mon in ev:
            mon.recv_multipart()
            if not ready:
                time.sleep(0.2)
                if a.ready:
                    open(a.ready, "w").close()
                ready = True
        if s in ev:
            while True:
                try:
                    m = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                t = time.time_ns()
                d = bson.decode(m)
                if d.get("$command") != "agg_complete" or d.get("name") != a.name:
                    continue
                out.write("%d %d %d %d\n" % (t, d["lo"], d["hi"], d["events"]))
                out.flush()
                hi_max = max(hi_max, d["hi"])
        if until is None and os.path.exists(a.out + ".until"):
            with open(a.out + ".until") as f:
                until = int(f.read().strip() or 0)
        if until is not None and hi_max >= until:
            break
    out.close()
    s.disable_monitor()
    mon.close(linger=0)
    s.close(linger=0)
    ctx.term()
    return 0


def pct(sorted_v, p):
    """Type-7 quantile (linear interpolation) of sorted values."""
    if not sorted_v:
        return float("nan")
    h = (len(sorted_v) - 1) * p
    lo = int(h)
    hi = min(lo + 1, len(sorted_v) - 1)
    return sorted_v[lo] + (sorted_v[hi] - sorted_v[lo]) * (h - lo)


def cmd_report(a):
    slices = []
    with open(a.sends, "rb") as f:
        data = f.read()
    for off in range(0, len(data), 16):
        slices.append(struct.unpack_from("<qq", data, off))
    total = 0
    notes = []
    with open(a.notes) as f:
        for line in f:
            t, lo, hi, ev = map(int, line.split())
            notes.append((t, lo, hi))
    if not slices or not notes:
        print("no sends or no notifications", file=sys.stderr)
        return 1
    # send time of event i: that of its slice
    firsts = [s[0] for s in slices]
    times = [s[1] for s in slices]
    import bisect

    def sent(i):
        return times[bisect.bisect_right(firsts, i) - 1]

    last_event = slices[-1][0] + (slices[-1][0] - slices[-2][0] if len(slices) > 1 else 1) - 1
    # per event, grouped by slice: events of one slice in one run share a latency
    per_event = []  # (latency ms, count)
    newest, oldest = [], []
    covered = 0
    notes.sort()
    for t, lo, hi in notes:
        lo = max(lo, covered)
        if hi <= lo:
            continue
        newest.append((t - sent(hi)) / 1e6)
        oldest.append((t - sent(lo + 1)) / 1e6)
        # walk the slices inside (lo, hi]
        k = bisect.bisect_right(firsts, lo + 1) - 1
        i = lo + 1
        while i <= hi:
            nxt = firsts[k + 1] if k + 1 < len(firsts) else hi + 1
            upto = min(hi, nxt - 1)
            per_event.append(((t - times[k]) / 1e6, upto - i + 1))
            i = upto + 1
            k += 1
        covered = hi
    total = sum(c for _, c in per_event)
    per_event.sort()

    def wpct(p):
        want = p * (total - 1)
        acc = 0
        for v, c in per_event:
            acc += c
            if acc - 1 >= want:
                return v
        return per_event[-1][0]

    newest.sort()
    oldest.sort()
    print("events %d covered by %d runs (last event %d)" % (total, len(newest), last_event))
    print("%-34s %9s %9s %9s" % ("freshness (ms)", "p50", "p99", "max"))
    print("%-34s %9.1f %9.1f %9.1f" % ("every event", wpct(0.5), wpct(0.99), per_event[-1][0]))
    print("%-34s %9.1f %9.1f %9.1f" % ("per run: its newest event", pct(newest, 0.5),
                                       pct(newest, 0.99), newest[-1]))
    print("%-34s %9.1f %9.1f %9.1f" % ("per run: its oldest event", pct(oldest, 0.5),
                                       pct(oldest, 0.99), oldest[-1]))
    return 0 if total == last_event else 2


def main(argv):
    ap = argparse.ArgumentParser(description="bench_fresh.sh's helper")
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("ports")
    p.add_argument("n", type=int)
    p = sp.add_parser("produce")
    p.add_argument("endpoint")
    p.add_argument("--rate", type=int, default=100000)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--out", required=True)
    p = sp.add_parser("listen")
    p.add_argument("endpoint")
    p.add_argument("out")
    p.add_argument("--ready")
    p.add_argument("--name", default="fresh")
    p.add_argument("--until-hi", type=int)
    p.add_argument("--seconds", type=float, default=600)
    p = sp.add_parser("report")
    p.add_argument("sends")
    p.add_argument("notes")
    a = ap.parse_args(argv)
    return {"ports": cmd_ports, "produce": cmd_produce, "listen": cmd_listen,
            "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
