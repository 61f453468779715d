"""Concurrent call recordings on one core: N ``MediaStream`` s recording to WAV (issue 4 item 6).

- The recorder process (``taskset -c 1``, uvloop, ``--gc tuned``) opens N
  :class:`cloudpbx.media.stream.MediaStream` on 127.0.0.1, each with a
  :class:`~cloudpbx.media.recorder_sink.RecorderSink` writing a
  :class:`~cloudpbx.media.recorder.CallRecorder` (mono, 16-bit PCM) to its own file in a
  temporary directory (page cache; Python's default 8 KiB write buffer): receive, latch, jitter
  buffer, G.711 decode, the in-band DTMF detector off (telephone-event negotiated, as with
  most phones), recorder placement and file writes — all on the event loop.
- The generator process (``taskset -c 0``, a plain synchronous loop) sends each stream 50
  PCMU packets/s (a 1 kHz tone) from its own socket, the streams spread over 200 ticks per
  20 ms like independent phones, until told to stop; it reports how many packets each got.
- After ``--warmup`` the recorder's CPU (``/proc``) and event-loop lag (``LoopLagMonitor``) are
  measured over ``--duration``; then the generator stops, and every call ends at the same
  instant: ``recorder.close(end)``. Each file is then read back: its length must be exactly
  ``round((end − start) × 8000)`` samples ("every file as long as its call"), and the frames
  of audio placed must equal the packets sent less the jitter buffer's lost/late counts
  (nothing dropped by the recorder).

A step passes with every file exact, no frame missing, loop lag p99 < 20 ms and CPU ≤ 80 %.
Target: ≥ 200 concurrent recordings on one core.

    .venv/bin/python bench/recording.py --streams 100,200,300,400 --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from playback import (
    HOST,
    Child,
    Noise,
    proc_cpu_s,
    raise_fd_limit,
    send_line,
    wait_quiet,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

CPU_LIMIT = 0.80
LAG_LIMIT_MS = 20.0


# --- generator process -----------------------------------------------------------------------


def generator_main(args: argparse.Namespace) -> None:
    from cloudpbx.media.codecs import ulaw_encode
    from cloudpbx.media.tones import synthesize

    raise_fd_limit()
    targets = json.loads(sys.stdin.readline())
    payload = ulaw_encode(synthesize([(1000, -10.0)], 160))
    socks = []
    for _ in targets:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
    n = len(targets)
    seq = [0] * n
    sent = [0] * n
    slots = 200
    start = time.monotonic()
    tick = 0
    send_line("started")
    stop = select.poll()
    stop.register(sys.stdin.fileno(), select.POLLIN)
    while True:
        due = start + tick * 0.020 / slots
        delay = due - time.monotonic()
        if delay > 0 and stop.poll(delay * 1000):
            break
        slot = tick % slots
        ts = (tick // slots) * 160
        for i in range(slot, n, slots):
            header = bytes((0x80, 0, seq[i] >> 8 & 0xFF, seq[i] & 0xFF, *ts.to_bytes(4, "big"))) + (
                1000 + i
            ).to_bytes(4, "big")
            try:
                socks[i].sendto(header + payload, (HOST, targets[i]))
                sent[i] += 1
            except BlockingIOError:
                pass
            seq[i] = (seq[i] + 1) & 0xFFFF
        tick += 1
    sys.stdin.readline()
    send_line(sent)


# --- recorder process ------------------------------------------------------------------------


async def recorder_main(args: argparse.Namespace) -> None:
    from cloudpbx.media.ports import RtpPortAllocator
    from cloudpbx.media.recorder import CallRecorder
    from cloudpbx.media.recorder_sink import RecorderSink
    from cloudpbx.media.relay import LegMedia, LoopLagMonitor
    from cloudpbx.media.stream import MediaStream
    from cloudpbx.media.wavfile import read_info
    from cloudpbx.transport.endpoint import configure_gc

    configure_gc("tuned")
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="cloudpbx-rec-"))
    allocator = RtpPortAllocator(args.port_base, args.port_base + 2 * args.streams + 200)
    media = LegMedia(payload_types={0: "PCMU", 101: "telephone-event"})
    streams, recorders, files = [], [], []
    for i in range(args.streams):
        stream = await MediaStream.open(HOST, allocator, idle_silence=False)
        stream.configure(None, media)  # no signalled address: latch the generator's source
        f = (tmp / f"{i}.wav").open("wb")
        recorder = CallRecorder(f, start=time.monotonic(), layout="a")
        stream.add_sink(RecorderSink(recorder, "a", clock=lambda s=stream: s.frame_time))
        streams.append(stream)
        recorders.append(recorder)
        files.append(f)
    send_line([s.local_address[1] for s in streams])
    lag = LoopLagMonitor(0.010)
    lag.start()
    loop = asyncio.get_running_loop()
    cmd = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    await asyncio.sleep(cmd["warmup"])
    lag.reset()
    cpu0, t0 = proc_cpu_s(), time.monotonic()
    await asyncio.sleep(cmd["duration"])
    cpu1, t1 = proc_cpu_s(), time.monotonic()
    snap = lag.snapshot()
    send_line({"cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "lag_p99_ms": snap.p99_ms,
               "lag_max_ms": snap.max_ms})  # fmt: skip
    sent = json.loads(await loop.run_in_executor(None, sys.stdin.readline))
    await asyncio.sleep(0.3)  # the last packets through the jitter buffers
    end = time.monotonic()
    exact = missing = 0
    for i, (stream, recorder, f) in enumerate(zip(streams, recorders, files, strict=True)):
        jb = stream.stats().jitter_buffer
        expected_frames = sent[i] - jb.lost - jb.late - jb.duplicates
        missing += max(0, expected_frames - recorder.stats.frames)
        length = recorder.close(end)
        f.close()
        stream.close()
        with (tmp / f"{i}.wav").open("rb") as check:
            frames = read_info(check).frames
        exact += frames == length == round((end - recorder.start) * 8000)
        (tmp / f"{i}.wav").unlink()
    tmp.rmdir()
    send_line({"exact_files": exact, "missing_frames": missing, "packets": sum(sent)})


def run_recorder(args: argparse.Namespace) -> None:
    import uvloop

    uvloop.run(recorder_main(args))


# --- orchestrator ----------------------------------------------------------------------------


def step(args: argparse.Namespace, n: int) -> dict[str, Any]:
    wait_quiet()
    me = [sys.executable, str(Path(__file__).resolve())]
    rec = Child(["taskset", "-c", args.recorder_cpu, *me, "recorder", "--streams", str(n),
                 "--port-base", str(args.port_base)])  # fmt: skip
    gen = Child(["taskset", "-c", args.generator_cpu, *me, "generator"])
    try:
        gen.send(rec.recv())
        assert gen.recv() == "started"
        rec.send({"warmup": args.warmup, "duration": args.duration})
        others = Noise([rec, gen]).measure(args.warmup, args.duration)
        result: dict[str, Any] = {"streams": n, **rec.recv(), "others_pct": others}
        gen.send("stop")
        rec.send(gen.recv())
        result.update(rec.recv())
    finally:
        gen.close()
        rec.close()
    result["passed"] = (
        result["exact_files"] == n
        and result["missing_frames"] == 0
        and result["lag_p99_ms"] < LAG_LIMIT_MS
        and result["cpu_pct"] <= 100 * CPU_LIMIT
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="role")
    r = sub.add_parser("recorder")
    r.add_argument("--streams", type=int, required=True)
    r.add_argument("--port-base", type=int, default=24000)
    sub.add_parser("generator")
    parser.add_argument("--streams", default="100,200,300")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--recorder-cpu", default="1")
    parser.add_argument("--generator-cpu", default="0")
    parser.add_argument("--port-base", type=int, default=24000)
    args = parser.parse_args()
    if args.role == "generator":
        generator_main(args)
        return
    if args.role == "recorder":
        run_recorder(args)
        return
    print("| recordings | packets/s in | recorder CPU % | CPU µs/packet | files exact "
          "| frames missing | loop lag p99/max ms | others CPU % | passes |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for n in map(int, args.streams.split(",")):
        res = step(args, n)
        pps = 50 * n
        print(
            f"| {n} | {pps:,} | {res['cpu_pct']:.1f} | {10_000 * res['cpu_pct'] / pps:.1f} | "
            f"{res['exact_files']}/{n} | {res['missing_frames']} | "
            f"{res['lag_p99_ms']:.2f}/{res['lag_max_ms']:.1f} | {res['others_pct']:.0f} | "
            f"{'yes' if res['passed'] else 'no'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
