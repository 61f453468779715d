"""RTP relay capacity on one core: N concurrent G.711 calls through ``cloudpbx.media.relay``.

The method of ``shared/spec/BENCHMARKING.md`` (Media):

- the relay (a :class:`RelayManager` with N sessions on 127.0.0.1) is its own process pinned to
  core 1 (``taskset -c 1``); the load generator is another process pinned to core 0;
- each call has two legs, each sending 50 packets/s of 172-byte G.711 RTP (160-byte payload,
  PCMU on both legs) through the relay to the other leg: 200 packets/s per call through the
  relay (100 in, 100 out), i.e. 500 calls = 50,000 packets/s in and 50,000 out;
- steps of N (100, 200, …), each a fresh relay process: ``--warmup`` seconds of traffic, then
  a ``--duration`` measuring window, then a short tail so the window's last packets are not
  racing the end;
- measured at the receiving side, per stream: loss (packets sent in the window that never
  arrived), the relay's added jitter (RFC 3550 ``D`` = arrival spacing minus send spacing, so
  the generator's own timing does not count; p99 of ``|D|``), the raw arrival spacing against
  20 ms (p99, generator timing included), the longest gap (raw, and relay-added = 20 ms +
  max ``D``);
- the relay's CPU (utime + stime from ``/proc/<pid>/stat`` over the window) and CPU time per
  relayed packet; its event-loop lag (:class:`LoopLagMonitor`, a 10 ms periodic callback in
  the relay process, reported over its control pipe); the generator's CPU, to show it kept
  up; the CPU other processes used meanwhile (the machine is shared: a step where they took
  more than ``--max-noise`` % of a core is repeated after waiting for quiet, up to
  ``--retries`` times); the kernel's UDP error counters (``nstat``, reported, not judged: they
  count the whole machine);
- the relay process's garbage collector set as the server sets it (``--gc tuned``,
  ``cloudpbx.transport.endpoint.configure_gc``);
- the default asyncio loop and uvloop in the same run, and as baseline a bare forwarder (a
  plain ``DatagramProtocol`` that sends each datagram on unchanged, no RTP logic) on each loop;
  ``--runs R`` repeats everything and reports field-wise medians.

A step **passes** when loss < 0.1 %, added jitter p99 < 1 ms, no relay-added gap > 40 ms and
relay CPU <= 80 % of its core. A loop's ramp stops after ``--stop-after`` failing steps.

The generator is a plain synchronous loop (no asyncio, so it stays cheaper than the relay it
loads): the calls are spread over ``--slots`` timer ticks per 20 ms (200: one tick every
0.1 ms sends the packets of 1/200 of the calls, as independent phones would; ``--slots 1``
sends everything in one burst every 20 ms), each packet carrying its send time, and about
every 2 ms it reads one datagram from each ready socket (``epoll`` + ``recvmsg``). Arrival
times are the kernel's (``SO_TIMESTAMPNS``, taken when the relay's ``sendto`` delivers the
packet on loopback), so when the generator reads does not matter. One generator process
keeps up with about 1,000 calls on one core here (about 50 % of core 0 at 500 calls);
``--generators K`` splits the calls over K processes (on ``--gen-cpus``) for machines with
more cores.

Run from the repository root::

    .venv/bin/python bench/rtp_relay.py                              # 100..1000 calls, 10 s
    .venv/bin/python bench/rtp_relay.py --calls 300,500 --duration 5 --loops uvloop
    .venv/bin/python bench/rtp_relay.py --runs 3 --json /tmp/relay.jsonl  # medians of 3 runs

The relay and generator processes are this same script (``relay`` / ``gen`` subcommands,
line-based JSON over stdin/stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

HOST = "127.0.0.1"
PTIME = 0.020
PAYLOAD = 160
CLK_TCK = os.sysconf("SC_CLK_TCK")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux asm-generic value
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
NSTAT_COUNTERS = ("UdpRcvbufErrors", "UdpInErrors", "UdpSndbufErrors")

LOSS_LIMIT = 0.001
JITTER_LIMIT_MS = 1.0
GAP_LIMIT_MS = 40.0
CPU_LIMIT = 0.80

BIN_NS = 10_000  # histogram bins of 10 µs
BINS = 20_000  # up to 200 ms


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def send_line(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


# =============================================================================================
# relay process
# =============================================================================================


class BareForwarder(asyncio.DatagramProtocol):
    """Baseline: what a plain datagram endpoint costs (receive + send, nothing else)."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.peer: BareForwarder | None = None
        self.dest: tuple[str, int] | None = None  # where the *peer's* traffic goes out
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.count += 1
        self.peer.transport.sendto(data, self.peer.dest)  # type: ignore[union-attr]


async def relay_main(args: argparse.Namespace) -> None:
    from cloudpbx.media.ports import RtpPortAllocator
    from cloudpbx.media.relay import LegMedia, LoopLagMonitor, RelayManager

    raise_fd_limit()
    loop = asyncio.get_running_loop()
    lag = LoopLagMonitor(0.010)
    lag.start()
    pts = {0: "PCMU", 101: "telephone-event"}
    legs: list[list[int]] = []
    sessions: list[Any] = []
    bare: list[tuple[BareForwarder, BareForwarder]] = []
    if args.mode == "relay":
        ports = RtpPortAllocator(args.port_base, args.port_base + 4 * args.calls + 400)
        manager = RelayManager(ports, host=HOST, max_sessions=args.calls, inactivity_timeout=3600.0)
        for _ in range(args.calls):
            s = await manager.open_session()
            sessions.append(s)
            legs.append([s.a.port, s.b.port])
    else:
        for _ in range(args.calls):
            pair = []
            for _leg in range(2):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((HOST, 0))
                sock.setblocking(False)
                proto = BareForwarder()
                await loop.create_datagram_endpoint(lambda p=proto: p, sock=sock)
                pair.append((proto, sock.getsockname()[1]))
            (pa, port_a), (pb, port_b) = pair
            pa.peer, pb.peer = pb, pa
            bare.append((pa, pb))
            legs.append([port_a, port_b])
    from cloudpbx.transport.endpoint import configure_gc

    configure_gc(args.gc)  # what the server does at start-up ("tuned": freeze, rare full GCs)
    send_line({"legs": legs, "loop": type(loop).__module__})

    def forwarded() -> int:
        if sessions:
            return sum(s.a.accepted - s.a.unsent + s.b.accepted - s.b.unsent for s in sessions)
        return sum(pa.count + pb.count for pa, pb in bare)

    done = loop.create_future()
    buf = b""

    def handle(cmd: dict[str, Any]) -> None:
        if cmd["cmd"] == "media":
            for i, (ra, rb) in enumerate(cmd["remotes"]):
                if sessions:
                    sessions[i].set_media("a", LegMedia(remote=tuple(ra), payload_types=pts))
                    sessions[i].set_media("b", LegMedia(remote=tuple(rb), payload_types=pts))
                else:
                    pa, pb = bare[i]
                    pa.dest, pb.dest = tuple(ra), tuple(rb)
            send_line({"ok": True})
        elif cmd["cmd"] == "mark":
            lag.reset()
            send_line({"forwarded": forwarded(), "cpu": time.process_time()})
        elif cmd["cmd"] == "report":
            snap = lag.snapshot()
            out: dict[str, Any] = {
                "forwarded": forwarded(),
                "cpu": time.process_time(),
                "lag": asdict(snap),
            }
            if sessions:
                stats = [d for s in sessions for d in s.stats()]
                out["relay_seen_lost"] = sum(d.lost for d in stats)
                out["relay_seen_expected"] = sum(d.expected for d in stats)
                out["relay_jitter_ms_max"] = max(d.jitter_ms for d in stats)
                out["refused"] = sum(d.refused_source + d.refused_payload_type for d in stats)
            send_line(out)
        elif cmd["cmd"] == "quit" and not done.done():
            done.set_result(None)

    def on_stdin() -> None:
        nonlocal buf
        chunk = os.read(sys.stdin.fileno(), 1 << 20)
        if not chunk:
            if not done.done():
                done.set_result(None)
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            handle(json.loads(line))

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await done
    loop.remove_reader(sys.stdin.fileno())
    lag.stop()
    for s in sessions:
        s.close()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


def run_echo_server(args: argparse.Namespace) -> None:
    """One socket that sends every datagram back (BENCHMARKING.md's "UDP echo")."""
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    loop.run_until_complete(loop.create_datagram_endpoint(Echo, sock=sock))
    loop.add_reader(sys.stdin.fileno(), loop.stop)  # any input (or EOF): stop
    send_line({"port": sock.getsockname()[1]})
    loop.run_forever()
    loop.close()


def echo_baseline(args: argparse.Namespace, loop: str, packets: int) -> dict[str, float]:
    """CPU µs per echoed 172-byte datagram on one socket: one at a time, and 20 in flight."""
    me = [sys.executable, str(Path(__file__).resolve())]
    server = Child(["taskset", "-c", args.relay_cpu, *me, "echo-server", "--loop", loop])
    out: dict[str, float] = {}
    try:
        addr = (HOST, server.recv()["port"])
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(2.0)
        data = bytes(172)
        for window in (1, 20):
            for _ in range(1000 // window):  # warm up
                for _ in range(window):
                    c.sendto(data, addr)
                for _ in range(window):
                    c.recv(2048)
            cpu0 = proc_cpu_s(server.proc.pid)
            for _ in range(packets // window):
                for _ in range(window):
                    c.sendto(data, addr)
                for _ in range(window):
                    c.recv(2048)
            out[f"in_flight_{window}"] = 1e6 * (proc_cpu_s(server.proc.pid) - cpu0) / packets
        c.close()
    finally:
        server.stop()
    return out


def run_relay(args: argparse.Namespace) -> None:
    if args.loop == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(relay_main(args))
    finally:
        loop.close()


# =============================================================================================
# generator process
# =============================================================================================


class Hist:
    """Counts in 10 µs bins (values in ns, clamped to the last bin), with the maximum."""

    __slots__ = ("bins", "count", "max")

    def __init__(self) -> None:
        self.bins = [0] * (BINS + 1)
        self.count = 0
        self.max = 0

    def add(self, ns: int) -> None:
        self.bins[min(ns // BIN_NS, BINS)] += 1
        self.count += 1
        if ns > self.max:
            self.max = ns

    def merge(self, other: Hist) -> None:
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        self.count += other.count
        self.max = max(self.max, other.max)

    def percentile_ms(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if seen >= rank:
                return (i + 1) * BIN_NS / 1e6
        return self.max / 1e6

    def dump(self) -> dict[str, Any]:
        nz = {i: n for i, n in enumerate(self.bins) if n}
        return {"bins": nz, "count": self.count, "max": self.max}

    @classmethod
    def load(cls, d: dict[str, Any]) -> Hist:
        h = cls()
        for i, n in d["bins"].items():
            h.bins[int(i)] = n
        h.count, h.max = d["count"], d["max"]
        return h


def run_gen(args: argparse.Namespace) -> None:
    raise_fd_limit()
    cmd = json.loads(sys.stdin.readline())
    relay_legs: list[list[int]] = cmd["legs"]
    n = len(relay_legs)
    socks: list[socket.socket] = []  # 2i: leg a's phone, 2i+1: leg b's phone
    for _ in range(2 * n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    send_line(
        {
            "remotes": [
                [socks[2 * i].getsockname(), socks[2 * i + 1].getsockname()] for i in range(n)
            ]
        }
    )
    cmd = json.loads(sys.stdin.readline())
    warmup, duration, tail = cmd["warmup"], cmd["duration"], cmd["tail"]
    args_slots = cmd["slots"]

    # Stream k is sent by socket k to the relay leg k belongs to and received by socket k^1.
    dests = [(HOST, relay_legs[k // 2][k % 2]) for k in range(2 * n)]
    hdr = struct.Struct("!BBHII")
    body = struct.Struct("!qII")  # send time ns, stream, our sequence
    bufs = []
    for k in range(2 * n):
        b = bytearray(12 + PAYLOAD)
        hdr.pack_into(b, 0, 0x80, 0, 0, 0, 0x10000 + k)
        bufs.append(b)
    sent_window = [0] * (2 * n)
    got_window = [0] * (2 * n)
    prev_arr = [0] * (2 * n)
    prev_send = [0] * (2 * n)
    prev_seq = [-1] * (2 * n)
    d_hist, spacing_hist = Hist(), Hist()
    max_gap = 0
    max_d = 0
    late_hist = Hist()  # tick lateness
    work_max = 0.0
    fd_to_sock = {s.fileno(): s for s in socks}
    ep = select.epoll()
    for s in socks:
        ep.register(s.fileno(), select.EPOLLIN)
    unpack_body = body.unpack_from
    unpack_ts = struct.Struct("qq").unpack
    time_ns = time.time_ns

    t_start = time.monotonic() + 0.05
    t_win0 = t_start + warmup
    t_win1 = t_win0 + duration
    t_stop = t_win1 + tail
    win0_ns = win1_ns = 0  # realtime bounds of the window, set when crossed
    in_window = False
    tick = 0
    cpu0 = cpu1 = 0.0
    announced_start = announced_end = False

    def drain() -> int:
        """Read one datagram from every ready socket (epoll is level-triggered: a socket
        with more comes back next time; no EAGAIN round trip per socket)."""
        nonlocal max_gap, max_d
        ready = ep.poll(0)
        for fd, _ev in ready:
            try:
                data, anc, _flags, _addr = fd_to_sock[fd].recvmsg(256, 64)
            except BlockingIOError:
                continue
            # data[1] >= 192: the relay's own RTCP (RFC 3550 §6), sent to a phone's port + 1,
            # which may be another phone's socket here: not a stream packet
            if anc and len(data) >= 28 and data[1] < 192:
                sec, nsec = unpack_ts(anc[0][2][:16])
                arr = sec * 1_000_000_000 + nsec
                t_send, k, gseq = unpack_body(data, 12)
                if win0_ns and win0_ns <= t_send and (not win1_ns or t_send < win1_ns):
                    got_window[k] += 1
                    if prev_seq[k] == gseq - 1:
                        spacing = arr - prev_arr[k]
                        d = spacing - (t_send - prev_send[k])
                        d_hist.add(abs(d))
                        spacing_hist.add(abs(spacing - 20_000_000))
                        if spacing > max_gap:
                            max_gap = spacing
                        if d > max_d:
                            max_d = d
                prev_arr[k], prev_send[k], prev_seq[k] = arr, t_send, gseq
        return len(ready)

    slots = max(1, min(args_slots, n))
    by_slot = [[k for k in range(2 * n) if (k // 2) % slots == j] for j in range(slots)]
    sub = PTIME / slots
    drain_every = max(1, slots // 10)  # read about every 2 ms (kernel timestamps: no hurry)
    while True:
        due = t_start + tick * sub
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
            now = time.monotonic()
        if now >= t_stop:
            break
        late_hist.add(int((now - due) * 1e9))
        if not in_window and now >= t_win0 and not announced_start:
            in_window = True
            win0_ns = time_ns()
            cpu0 = time.process_time()
            announced_start = True
            send_line({"event": "window_start"})
        elif in_window and now >= t_win1:
            in_window = False
            win1_ns = time_ns()
            cpu1 = time.process_time()
            announced_end = True
            send_line({"event": "window_end"})
        seq = tick // slots  # each stream sends once per 20 ms, in its own slot
        ts = (seq * PAYLOAD) & 0xFFFF_FFFF
        rtp_seq = seq & 0xFFFF
        for k in by_slot[tick % slots]:
            b = bufs[k]
            hdr.pack_into(b, 0, 0x80, 0, rtp_seq, ts, 0x10000 + k)
            t = time_ns()
            body.pack_into(b, 12, t, k, seq)
            try:
                socks[k].sendto(b, dests[k])
            except BlockingIOError:
                continue
            if in_window:
                sent_window[k] += 1
        tick += 1
        if tick % drain_every == 0:
            drain()
        work_max = max(work_max, time.monotonic() - now)
    if not announced_end:
        win1_ns = time_ns()
        send_line({"event": "window_end"})
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline or drain():
        drain()
        time.sleep(0.005)
    # Stream k's packets are received by socket k^1 but counted under k (in the payload).
    sent = sum(sent_window)
    got = sum(got_window)
    send_line(
        {
            "sent": sent,
            "received": got,
            "d_hist": d_hist.dump(),
            "spacing_hist": spacing_hist.dump(),
            "max_gap_ns": max_gap,
            "max_d_ns": max_d,
            "tick_late_p99_ms": late_hist.percentile_ms(0.99),
            "tick_late_max_ms": late_hist.max / 1e6,
            "tick_work_max_ms": work_max * 1000,
            "gen_cpu_s": cpu1 - cpu0,
            "window_s": (win1_ns - win0_ns) / 1e9,
        }
    )


# =============================================================================================
# orchestrator
# =============================================================================================


@dataclass
class Step:
    loop: str
    mode: str
    calls: int
    pps_in: float = 0.0  # packets/s into the relay (= out, when nothing is lost)
    cpu_pct: float = 0.0
    us_per_packet: float = 0.0
    loss_pct: float = 0.0
    jitter_p99_ms: float = 0.0  # relay-added |D|, p99
    spacing_p99_ms: float = 0.0  # raw |arrival spacing - 20 ms|, p99
    gap_added_ms: float = 0.0  # 20 ms + max D
    gap_raw_ms: float = 0.0
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    gen_cpu_pct: float = 0.0
    gen_tick_late_max_ms: float = 0.0
    preempt_per_s: float = 0.0  # the relay descheduled for another task
    others_pct: float = 0.0  # CPU used by every other process meanwhile, % of one core (noise)
    udp_errors: int = 0
    passed: bool = False

    def judge(self) -> None:
        self.passed = (
            self.loss_pct < 100 * LOSS_LIMIT
            and self.jitter_p99_ms < JITTER_LIMIT_MS
            and self.gap_added_ms <= GAP_LIMIT_MS
            and self.cpu_pct <= 100 * CPU_LIMIT
        )  # udp_errors is reported, not judged: nstat counts the whole (shared) machine


def proc_cpu_s(pid: int) -> float:
    fields_ = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def preemptions(pid: int) -> int:
    """Times the process was descheduled against its will (another task wanted its core)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def others_cpu_s(ours: set[int]) -> dict[int, float]:
    """utime + stime of every other process (kernel threads included), by pid."""
    out: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in ours:
            continue
        try:
            out[int(entry.name)] = proc_cpu_s(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, /proc/stat."""
    parts = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    values = list(map(int, parts[1:9]))
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wait_quiet(limit_s: float = 300.0, busy_limit: float = 0.10) -> None:
    """Wait (up to ``limit_s``) until the machine is nearly idle: it is shared."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        busy0, total0 = cpu_ticks()
        time.sleep(3.0)
        busy1, total1 = cpu_ticks()
        if busy1 - busy0 <= busy_limit * max(1, total1 - total0):
            return


def nstat() -> dict[str, int]:
    try:
        out = subprocess.run(
            ["nstat", "-az", *NSTAT_COUNTERS], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    values = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in NSTAT_COUNTERS:
            values[parts[0]] = int(parts[1])
    return values


class Child:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def recv(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{shlex.join(self.argv)} exited ({self.proc.wait()})")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send({"cmd": "quit"})
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def split(items: list[Any], k: int) -> list[list[Any]]:
    return [items[i::k] for i in range(k)]


def run_step(args: argparse.Namespace, loop: str, mode: str, calls: int) -> Step:
    me = [sys.executable, str(Path(__file__).resolve())]
    relay_argv = [
        "taskset",
        "-c",
        args.relay_cpu,
        *me,
        "relay",
        "--calls",
        str(calls),
        "--loop",
        loop,
        "--mode",
        mode,
        "--port-base",
        str(args.port_base),
        "--gc",
        args.gc,
    ]
    relay = Child(relay_argv)
    gens: list[Child] = []
    try:
        legs = relay.recv()["legs"]
        parts = split(list(range(calls)), max(1, min(args.generators, calls)))
        remotes: list[Any] = [None] * calls
        for part in parts:
            g = Child(["taskset", "-c", args.gen_cpus, *me, "gen"])
            g.send({"legs": [legs[i] for i in part]})
            for i, r in zip(part, g.recv()["remotes"], strict=True):
                remotes[i] = r
            gens.append(g)
        relay.send({"cmd": "media", "remotes": remotes})
        relay.recv()
        for g in gens:
            g.send(
                {"warmup": args.warmup, "duration": args.duration, "tail": 0.5, "slots": args.slots}
            )
        for g in gens:
            assert g.recv() == {"event": "window_start"}
        net0 = nstat()
        pre0 = preemptions(relay.proc.pid)
        ours = {os.getpid(), relay.proc.pid, *(g.proc.pid for g in gens)}
        others0 = others_cpu_s(ours)
        cpu0, wall0 = proc_cpu_s(relay.proc.pid), time.monotonic()
        relay.send({"cmd": "mark"})
        mark = relay.recv()
        for g in gens:
            assert g.recv() == {"event": "window_end"}
        cpu1, wall1 = proc_cpu_s(relay.proc.pid), time.monotonic()
        pre1 = preemptions(relay.proc.pid)
        others1 = others_cpu_s(ours)
        relay.send({"cmd": "report"})
        report = relay.recv()
        results = [g.recv() for g in gens]
        net1 = nstat()
    finally:
        for g in gens:
            g.stop()
        relay.stop()

    wall = wall1 - wall0
    forwarded = report["forwarded"] - mark["forwarded"]
    d_hist, spacing_hist = Hist(), Hist()
    for r in results:
        d_hist.merge(Hist.load(r["d_hist"]))
        spacing_hist.merge(Hist.load(r["spacing_hist"]))
    sent = sum(r["sent"] for r in results)
    got = sum(r["received"] for r in results)
    step = Step(loop=loop, mode=mode, calls=calls)
    step.pps_in = forwarded / wall
    step.cpu_pct = 100 * (cpu1 - cpu0) / wall
    step.us_per_packet = 1e6 * (cpu1 - cpu0) / forwarded if forwarded else 0.0
    step.loss_pct = 100 * (sent - got) / sent if sent else 100.0
    step.jitter_p99_ms = d_hist.percentile_ms(0.99)
    step.spacing_p99_ms = spacing_hist.percentile_ms(0.99)
    step.gap_added_ms = 20 + max(r["max_d_ns"] for r in results) / 1e6
    step.gap_raw_ms = max(r["max_gap_ns"] for r in results) / 1e6
    step.lag_p99_ms = report["lag"]["p99_ms"]
    step.lag_max_ms = report["lag"]["max_ms"]
    step.gen_cpu_pct = (
        100 * sum(r["gen_cpu_s"] for r in results) / max(r["window_s"] for r in results)
    )
    step.gen_tick_late_max_ms = max(r["tick_late_max_ms"] for r in results)
    step.preempt_per_s = (pre1 - pre0) / wall
    step.others_pct = 100 * sum(v - others0.get(k, 0.0) for k, v in others1.items()) / wall
    step.udp_errors = sum(net1.get(c, 0) - net0.get(c, 0) for c in NSTAT_COUNTERS)
    step.judge()
    return step


def median_step(steps: list[Step]) -> Step:
    """Field-wise median of repeated runs of one configuration (then judged again)."""
    first = steps[0]
    out = Step(loop=first.loop, mode=first.mode, calls=first.calls)
    for f in fields(Step):
        if f.name in ("loop", "mode", "calls", "passed"):
            continue
        setattr(out, f.name, statistics.median(getattr(s, f.name) for s in steps))
    out.judge()
    return out


def table(steps: list[Step], runs_passed: dict[tuple[str, str, int], int], runs: int) -> str:
    head = (
        "| loop | forwarder | calls | packets/s in | relay CPU % | CPU µs/packet | loss % | "
        "added jitter p99 ms | added max gap ms | raw spacing p99 ms | raw max gap ms | "
        "loop lag p99 / max ms | gen CPU % | other processes CPU % | relay preempted /s | pass |"
    )
    lines = [head, "|" + "---|" * 16]
    for s in steps:
        ok = runs_passed[(s.loop, s.mode, s.calls)]
        verdict = ("yes" if s.passed else "**no**") + (f" ({ok}/{runs})" if runs > 1 else "")
        lines.append(
            f"| {s.loop} | {s.mode} | {s.calls} | {s.pps_in:,.0f} | {s.cpu_pct:.1f} | "
            f"{s.us_per_packet:.2f} | {s.loss_pct:.3f} | {s.jitter_p99_ms:.2f} | "
            f"{s.gap_added_ms:.1f} | {s.spacing_p99_ms:.2f} | {s.gap_raw_ms:.1f} | "
            f"{s.lag_p99_ms:.2f} / {s.lag_max_ms:.1f} | {s.gen_cpu_pct:.0f} | "
            f"{s.others_pct:.0f} | {s.preempt_per_s:.0f} | {verdict} |"
        )
    return "\n".join(lines)


def orchestrate(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {int(c) for c in args.gen_cpus.split(",")})
    calls_steps = [int(c) for c in args.calls.split(",")]
    loops = args.loops.split(",")
    configs: list[tuple[str, str, list[int]]] = []
    for loop in loops:
        configs.append((loop, "relay", calls_steps))
    if args.baseline_calls:
        for loop in loops:
            configs.append((loop, "bare", [args.baseline_calls]))
    runs: dict[tuple[str, str, int], list[Step]] = {}
    wait_quiet()
    out = open(args.json, "a") if args.json else None  # noqa: SIM115
    for run in range(args.runs):
        for loop, mode, steps in configs:
            failed = 0
            for calls in steps:
                step = run_step(args, loop, mode, calls)
                for _retry in range(args.retries):
                    if step.others_pct <= args.max_noise:
                        break
                    print(
                        f"  ({loop} {mode} {calls}: other processes used "
                        f"{step.others_pct:.0f} % of a core meanwhile; "
                        "waiting for quiet and repeating)",
                        flush=True,
                    )
                    wait_quiet()
                    step = run_step(args, loop, mode, calls)
                runs.setdefault((loop, mode, calls), []).append(step)
                print(
                    f"run {run + 1} {loop:8} {mode:5} {calls:5} calls: "
                    f"cpu {step.cpu_pct:5.1f} %  {step.us_per_packet:5.2f} µs/pkt  "
                    f"loss {step.loss_pct:.3f} %  jitter p99 {step.jitter_p99_ms:.2f} ms  "
                    f"gap {step.gap_added_ms:.1f}/{step.gap_raw_ms:.1f} ms  "
                    f"lag p99 {step.lag_p99_ms:.2f} max {step.lag_max_ms:.1f} ms  "
                    f"gen {step.gen_cpu_pct:.0f} %  others {step.others_pct:.0f} %  "
                    f"preempted {step.preempt_per_s:.0f}/s  "
                    f"udp err {step.udp_errors}  "
                    f"{'PASS' if step.passed else 'FAIL'}",
                    flush=True,
                )
                if out:
                    out.write(json.dumps({"run": run + 1, **asdict(step)}) + "\n")
                    out.flush()
                failed = 0 if step.passed else failed + 1
                if args.stop_after and failed >= args.stop_after:
                    break
    echo: dict[str, list[dict[str, float]]] = {}
    if args.echo_packets:
        for _run in range(args.runs):
            for loop in loops:
                echo.setdefault(loop, []).append(echo_baseline(args, loop, args.echo_packets))
    if out:
        for loop, results in echo.items():
            out.write(json.dumps({"echo": loop, "runs": results}) + "\n")
        out.close()
    summary = sorted(
        (median_step(v) for v in runs.values()),
        key=lambda s: (s.mode != "relay", loops.index(s.loop), s.calls),
    )
    passed = {k: sum(s.passed for s in v) for k, v in runs.items()}
    print()
    print(table(summary, passed, args.runs))
    print()
    for loop in loops:
        ramp = sorted(
            (s for s in summary if s.loop == loop and s.mode == "relay"), key=lambda s: s.calls
        )
        best = None
        for s in ramp:  # the capacity: the last step before the first failing one
            if not s.passed:
                break
            best = s
        every = 0
        for s in ramp:
            if passed[(s.loop, s.mode, s.calls)] < args.runs:
                break
            every = s.calls
        if best is None:
            print(f"{loop}: the first step failed")
        else:
            print(
                f"{loop}: highest passing (median, all steps below passing too) = "
                f"{best.calls} calls ({best.pps_in:,.0f} packets/s in and out, "
                f"{best.cpu_pct:.0f} % CPU, {best.us_per_packet:.2f} µs CPU per relayed "
                f"packet); passing in every run: up to {every} calls"
            )
    if echo:
        print("\nOne-socket UDP echo (172 bytes), server CPU per echoed packet, µs (median):")
        print("| loop | one at a time | 20 in flight |\n|---|---|---|")
        for loop, results in echo.items():
            one = statistics.median(r["in_flight_1"] for r in results)
            twenty = statistics.median(r["in_flight_20"] for r in results)
            print(f"| {loop} | {one:.1f} | {twenty:.1f} |")
    me = f"{sys.executable} {Path(__file__).resolve()}"
    print("\nprocesses:")
    print(
        f"  relay:     taskset -c {args.relay_cpu} {me} relay --calls N --loop L --mode M "
        f"--port-base {args.port_base} --gc {args.gc}"
    )
    print(f"  generator: taskset -c {args.gen_cpus} {me} gen   (x{args.generators})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    r = sub.add_parser("relay", help="(internal) the relay process")
    r.add_argument("--calls", type=int, required=True)
    r.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    r.add_argument("--mode", choices=("relay", "bare"), default="relay")
    r.add_argument("--port-base", type=int, default=20000)
    r.add_argument("--gc", choices=("tuned", "default", "off"), default="tuned")
    sub.add_parser("gen", help="(internal) a load generator process")
    e = sub.add_parser("echo-server", help="(internal) a one-socket UDP echo")
    e.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--calls", default="100,200,300,400,500,600,700,800,900,1000")
    parser.add_argument("--loops", default="uvloop,asyncio")
    parser.add_argument("--duration", type=float, default=10.0, help="measuring window, s")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--baseline-calls",
        type=int,
        default=300,
        help="calls for the bare-forwarder baseline (0: none)",
    )
    parser.add_argument(
        "--stop-after",
        type=int,
        default=2,
        help="stop a loop's ramp after this many failing steps in a row (0: never)",
    )
    parser.add_argument(
        "--echo-packets",
        type=int,
        default=50_000,
        help="packets for the one-socket UDP echo baseline (0: skip it)",
    )
    parser.add_argument("--generators", type=int, default=1)
    parser.add_argument(
        "--slots",
        type=int,
        default=200,
        help="timer ticks per 20 ms; the calls are spread over them (1: all in one burst)",
    )
    parser.add_argument("--relay-cpu", default="1")
    parser.add_argument("--gen-cpus", default="0")
    parser.add_argument("--port-base", type=int, default=20000)
    parser.add_argument(
        "--gc",
        choices=("tuned", "default", "off"),
        default="tuned",
        help="the relay process's GC policy (cloudpbx.transport.endpoint.configure_gc)",
    )
    parser.add_argument(
        "--max-noise",
        type=float,
        default=10.0,
        help="repeat a step when other processes used more than this %% of a core meanwhile",
    )
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--json", help="append every step as a JSON line to this file")
    args = parser.parse_args()
    if args.role == "relay":
        run_relay(args)
    elif args.role == "gen":
        run_gen(args)
    elif args.role == "echo-server":
        run_echo_server(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
