"""Micro-benchmark: parse + serialize a typical INVITE with SDP (cloudpbx.sip.message).

Prints messages/s (median of 5 runs, time.perf_counter) for ``bytes(parse_message(data))``:

* distinct INVITEs -- every message has its own Call-ID, From tag and Via branch, callers and
  callees drawn from 50 users each (what a PBX sees; the headline figure);
* the same INVITE again (retransmissions: every header value is in the parse memo);
* lazy parse + serialize (``validate=False``: start line, header lines and body only).

    .venv/bin/python bench/sip_parse.py [iterations]
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from cloudpbx.sip.message import parse_message

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 198.51.100.7\r\n"
    b"s=-\r\n"
    b"c=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-15\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)

TEMPLATE = (
    "INVITE sip:{callee}@pbx.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{n:08x}asdhds;rport\r\n"
    "Max-Forwards: 70\r\n"
    'From: "Alice {caller}" <sip:{caller}@pbx.example.com>;tag={n:010d}\r\n'
    "To: <sip:{callee}@pbx.example.com>\r\n"
    "Call-ID: a84b4c76e66710{n:08x}@198.51.100.7\r\n"
    "CSeq: 314159 INVITE\r\n"
    "Contact: <sip:{caller}@198.51.100.7:5060;transport=udp>\r\n"
    "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, UPDATE\r\n"
    "Supported: replaces, timer\r\n"
    "User-Agent: Yealink SIP-T46S 66.86.0.15\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: {length}\r\n"
    "\r\n"
)


def invite(n: int) -> bytes:
    head = TEMPLATE.format(n=n, caller=f"u{n % 50}", callee=f"e{n * 7 % 50}", length=len(SDP))
    return head.encode() + SDP


def _rate(messages: list[bytes], iterations: int, validate: bool) -> tuple[float, float]:
    """Messages per second by the wall clock (perf_counter) and by CPU time (process_time:
    what the figure would be on an idle core when other processes share the machine)."""
    count = len(messages)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(iterations):
        bytes(parse_message(messages[i % count], validate=validate))
    return iterations / (time.perf_counter() - wall), iterations / (time.process_time() - cpu)


def _report(label: str, size: int, run: Callable[[], tuple[float, float]]) -> None:
    runs = [run() for _ in range(5)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(
        f"{label:40s} {wall:9,.0f} msg/s ({1e6 / wall:5.1f} µs/msg, {size} B)"
        f"   CPU time: {cpu:9,.0f} msg/s ({1e6 / cpu:5.1f} µs)"
    )


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    distinct = [invite(n) for n in range(10_000)]  # cycles past the parse memo (2048 entries)
    same = [distinct[0]]
    assert all(bytes(parse_message(m)) == m for m in distinct[:100])
    size = len(same[0])
    _report(
        "parse_message + bytes, distinct INVITEs", size, lambda: _rate(distinct, iterations, True)
    )
    _report("parse_message + bytes, same INVITE", size, lambda: _rate(same, iterations, True))
    _report("lazy parse + bytes (validate=False)", size, lambda: _rate(distinct, iterations, False))


if __name__ == "__main__":
    main()
