"""SIP call load: SIPp's stock ``uac`` scenario against the test UAS (``cloudpbx.sip_uas``).

The method of ``shared/spec/BENCHMARKING.md``:

- the server under test pinned to core 1 (``taskset -c 1``), SIPp to core 0, each with its
  own port on 127.0.0.1; a fresh server per step;
- SIPp ``-sn uac`` (INVITE, 100/180, 200, ACK, pause, BYE, 200) at rates stepping up, each
  for ``--duration`` seconds;
- a rate passes when, over the whole step: no failed call; no retransmission (on loopback a
  retransmission means the server was late or dropped a packet); response time p99 < 50 ms
  (SIPp ``-trace_rtt``: INVITE sent -> 200 received); the kernel's UDP error counters
  unchanged (``nstat -az UdpRcvbufErrors UdpInErrors``); server CPU < 80 % of its core
  (utime + stime from ``/proc/<pid>/stat``);
- the baseline in the same run: SIPp ``uac`` talking to SIPp ``uas`` (no cloudpbx) at the
  same rates.

Reports a table per server, the highest passing rate, CPU time per call (read ``--linger``
seconds after the load, so that the transactions' Timers J and L -- 64*T1 after each call --
are paid for too), and the exact SIPp command lines. Run from the repository root::

    .venv/bin/python bench/sip_uas_load.py                       # 100 ... 1500 calls/s, 20 s each
    .venv/bin/python bench/sip_uas_load.py --rates 100,400 --duration 5 --linger 0 --no-baseline
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
P99_LIMIT_MS = 50.0
CPU_LIMIT = 0.80
NSTAT_COUNTERS = ("UdpRcvbufErrors", "UdpInErrors")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    """One rate against one server."""

    server: str
    rate: int
    calls: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    achieved_rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # during the SIPp run
    cpu_total_s: float = 0.0  # ... plus the linger: transactions ending (Timers J, L)
    udp_errors: int | None = None  # None: nstat missing
    sipp_rc: int = 0
    command: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def cpu_share(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_us_per_call(self) -> float:
        return 1e6 * self.cpu_total_s / self.calls if self.calls else 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    def judge(self, expected_calls: int) -> None:
        checks = [
            (self.failed == 0 and self.successful == expected_calls,
             f"{self.failed} failed, {self.successful}/{expected_calls} ok"),
            (self.retransmissions == 0, f"{self.retransmissions} retransmissions"),
            (self.p99_ms < P99_LIMIT_MS, f"p99 {self.p99_ms:.0f} ms"),
            (not self.udp_errors, f"{self.udp_errors} kernel UDP errors"),
            (self.cpu_share < CPU_LIMIT, f"CPU {100 * self.cpu_share:.0f} %"),
        ]  # fmt: skip
        self.failures += [reason for ok, reason in checks if not ok]


# --- measuring ---------------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def udp_port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (``/proc/<pid>/stat`` fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def udp_errors() -> int | None:
    """The sum of the kernel's UDP receive error counters, or None without nstat."""
    if shutil.which("nstat") is None:
        return None
    # -a absolute values, -z zeros too, -s without touching nstat's history file.
    out = subprocess.run(
        ["nstat", "-asz", *NSTAT_COUNTERS], capture_output=True, text=True, check=True
    ).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("Udp"))


def read_stats(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text(encoding="latin-1").splitlines() if line]
    return dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False)) if lines else {}


def read_rtts(workdir: Path) -> list[float]:
    """Every response time SIPp recorded (``-trace_rtt``), in ms."""
    values: list[float] = []
    for path in workdir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2 and parts[1]:
                values.append(float(parts[1]))
    return values


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- the servers ------------------------------------------------------------------------------


class Server:
    """A server process pinned to a core."""

    name = "server"

    def __init__(self, core: int) -> None:
        self.core = core
        self.port = free_udp_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.command = ""
        self.workdir = Path()

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self, workdir: Path) -> None:
        argv = ["taskset", "-c", str(self.core), *self.argv()]
        self.command = shlex.join(argv)
        # Files, not pipes: a server blocked on a full pipe stops answering.
        self.workdir = workdir
        with (workdir / "server.out").open("w") as out, (workdir / "server.err").open("w") as err:
            self.proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while not udp_port_in_use(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.command}")
            time.sleep(0.05)
        time.sleep(0.2)  # past the imports: measure the steady state

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> str:
        """Stop the server; returns its standard error (empty when all went well)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return (self.workdir / "server.err").read_text(errors="replace")


class CloudpbxUas(Server):
    name = "cloudpbx.sip_uas"

    def __init__(self, core: int, extra: list[str]) -> None:
        super().__init__(core)
        self.extra = extra
        if extra:
            self.name = f"{self.name} {' '.join(extra)}"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "cloudpbx.sip_uas", "--host", HOST, "--port", str(self.port),
            "--max-transactions", "400000", *self.extra,
        ]  # fmt: skip


class SippUas(Server):
    name = "SIPp uas (baseline)"

    def argv(self) -> list[str]:
        return ["sipp", "-sn", "uas", "-i", HOST, "-p", str(self.port), "-nostdin"]


# --- one step ---------------------------------------------------------------------------------


def uac_argv(port: int, rate: int, calls: int, call_ms: int, timeout: int, core: int) -> list[str]:
    return [
        "taskset", "-c", str(core),
        "sipp", "-sn", "uac", f"{HOST}:{port}", "-i", HOST, "-p", str(free_udp_port()),
        "-r", str(rate), "-m", str(calls), "-d", str(call_ms), "-timeout", f"{timeout}s",
        "-nostdin", "-trace_stat", "-stf", "stat.csv", "-trace_rtt", "-rtt_freq", "200",
    ]  # fmt: skip


def run_step(server: Server, rate: int, args: argparse.Namespace) -> Step:
    calls = rate * args.duration
    step = Step(server=server.name, rate=rate)
    with tempfile.TemporaryDirectory(prefix="sipp-") as tmp:
        workdir = Path(tmp)
        server.start(workdir)
        argv = uac_argv(
            server.port, rate, calls, args.call_ms, 3 * args.duration + 30, args.sipp_core
        )
        step.command = shlex.join(argv)
        errors_before, cpu_before = udp_errors(), cpu_seconds(server.pid)
        started = time.monotonic()
        done = subprocess.run(
            argv,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=4 * args.duration + 60,
            check=False,
        )
        step.wall_s = time.monotonic() - started
        step.cpu_s = cpu_seconds(server.pid) - cpu_before
        errors_after = udp_errors()
        time.sleep(args.linger)  # the last calls' transactions end 64*T1 after them
        step.cpu_total_s = cpu_seconds(server.pid) - cpu_before
        errors = server.stop()
        if errors.strip():
            print(f"{server.name} wrote to stderr:\n{errors[-2000:]}", flush=True)
        if "Traceback" in errors or "ERROR" in errors:
            step.failures.append("server errors")
        step.sipp_rc = done.returncode
        _collect(step, workdir, args.call_ms, errors_before, errors_after)
    step.judge(calls)
    return step


def _collect(
    step: Step, workdir: Path, call_ms: int, before: int | None, after: int | None
) -> None:
    stats = read_stats(workdir / "stat.csv") if (workdir / "stat.csv").exists() else {}
    count = lambda name: int(stats.get(f"{name}(C)", "0") or 0)  # noqa: E731
    step.successful = count("SuccessfulCall")
    step.failed = count("FailedCall")
    step.calls = step.successful + step.failed
    step.retransmissions = count("Retransmissions")
    # SIPp's CallRate(C) divides by the whole run, the last calls' length included.
    placing = step.wall_s - call_ms / 1000
    step.achieved_rate = step.calls / placing if placing > 0 else 0.0
    rtts = read_rtts(workdir)
    step.p50_ms = statistics.median(rtts) if rtts else 0.0
    step.p99_ms = percentile(rtts, 0.99)
    step.udp_errors = None if before is None or after is None else after - before


# --- reporting --------------------------------------------------------------------------------


def table(steps: list[Step]) -> str:
    head = (
        "| server | rate/s | achieved/s | calls | failed | retrans | p50 ms | p99 ms "
        "| UDP errors | server CPU % | CPU µs/call | pass |"  # µs/call: linger included
    )
    rows = [head, "|" + "---|" * 12]
    for s in steps:
        errors = "n/a" if s.udp_errors is None else str(s.udp_errors)
        verdict = "yes" if s.passed else "no: " + ", ".join(s.failures)
        rows.append(
            f"| {s.server} | {s.rate} | {s.achieved_rate:.0f} | {s.calls} | {s.failed} "
            f"| {s.retransmissions} | {s.p50_ms:.0f} | {s.p99_ms:.0f} | {errors} "
            f"| {100 * s.cpu_share:.1f} | {s.cpu_us_per_call:.0f} | {verdict} |"
        )
    return "\n".join(rows)


def summary(steps: list[Step]) -> str:
    """Per server: the highest rate that passed in most of its runs (the machine is shared
    and noisy, BENCHMARKING.md), with the median CPU per call of its runs."""
    lines = []
    for server in dict.fromkeys(s.server for s in steps):
        by_rate: dict[int, list[Step]] = {}
        for step in steps:
            if step.server == server:
                by_rate.setdefault(step.rate, []).append(step)
        passing = [r for r, runs in by_rate.items() if 2 * sum(s.passed for s in runs) > len(runs)]
        if not passing:
            lines.append(f"- {server}: no rate passed")
            continue
        best = max(passing)
        runs = by_rate[best]
        cpu = statistics.median(s.cpu_us_per_call for s in runs)
        p99 = statistics.median(s.p99_ms for s in runs)
        lines.append(
            f"- {server}: highest passing rate {best} calls/s "
            f"({sum(s.passed for s in runs)}/{len(runs)} runs), median CPU {cpu:.0f} µs per "
            f"call, median p99 {p99:.0f} ms there"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="100,200,400,700,1000,1500")
    parser.add_argument("--duration", type=int, default=20, help="seconds per rate")
    parser.add_argument("--call-ms", type=int, default=1000, help="pause between ACK and BYE")
    parser.add_argument(
        "--linger",
        type=float,
        default=33.0,
        help="seconds after the load before the CPU per "
        "call is read: 64*T1 = 32 s, when the last INVITE and BYE transactions end",
    )
    parser.add_argument("--uas-core", type=int, default=1)
    parser.add_argument("--sipp-core", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="runs per rate (majority passes)")
    parser.add_argument("--no-baseline", action="store_true", help="skip SIPp uac -> SIPp uas")
    parser.add_argument("--no-uvloop", action="store_true", help="the UAS on plain asyncio")
    parser.add_argument("--gc", default="tuned", help="the UAS's --gc: tuned, default, off")
    parser.add_argument("--stop-after-fail", action="store_true", help="stop a ramp at a fail")
    args = parser.parse_args()
    for tool in ("sipp", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing (apt-get install sip-tester util-linux)")
    if shutil.which("nstat") is None:
        print("nstat is missing (Debian iproute2): kernel UDP errors not checked", flush=True)
    rates = [int(r) for r in args.rates.split(",")]
    extra = ["--gc", args.gc, *(["--no-uvloop"] if args.no_uvloop else [])]
    servers: list[Server] = [CloudpbxUas(args.uas_core, extra)]
    if not args.no_baseline:
        servers.append(SippUas(args.uas_core))
    steps = []
    for server in servers:
        for rate in rates:
            runs = [run_step(server, rate, args) for _ in range(args.repeat)]
            steps += runs
            for step in runs:
                verdict = "pass" if step.passed else "FAIL " + ", ".join(step.failures)
                print(f"{server.name} {rate}/s: {verdict}", flush=True)
            if args.stop_after_fail and not any(step.passed for step in runs):
                break
    print()
    print(table(steps))
    print()
    print(summary(steps))
    print("\nCommands (one step of each server; ports differ per step):")
    for server in servers:
        print(f"  server: {server.command}")
        print(f"  load:   {next(s.command for s in steps if s.server == server.name)}")


if __name__ == "__main__":
    main()
