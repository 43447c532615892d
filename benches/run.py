#!/usr/bin/env python3
"""Runs libdgram's benchmark cases and reports them (Python standard library only).

Every contender runs in its own process and the traffic comes from another
process (benches/sender.c), all over 127.0.0.1. The C programs print
"PORT <n>" once bound and one "RESULT key=value ..." line at the end; this
script starts them, passes ports along, computes the derived numbers, takes
the median over the repetitions, prints a table and writes two CSV files.

    python3 benches/run.py --build-dir build/bench --out-dir benches [--quick] [--cases "send 1200B,recv 1200B off"]

scripts/bench.sh is the usual way in: it installs, builds and then runs this.
"""
import argparse
import csv
import datetime
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

# Counts per mode. Full mode must stay under 5 minutes on a 2-core machine.
# offload_*: the 1200 B offload cases (send with dgram_send_batch, receive
# with and without GRO); their senders are paced at offload_rate datagrams/s.
MODES = {
    "full": dict(reps=3, rx_count={64: 1_000_000, 1200: 300_000}, scale_count=500_000,
                 tx_count=300_000, rtt_count=100_000, rtt_warmup=1_000, warmup=10_000,
                 callgrind=True, cg_count=5_000, cg_rate=2_000,
                 offload_tx_count=300_000, offload_rx_count=500_000, offload_rate=500_000),
    "quick": dict(reps=1, rx_count={64: 50_000, 1200: 20_000}, scale_count=20_000,
                  tx_count=20_000, rtt_count=500, rtt_warmup=50, warmup=500,
                  callgrind=False, cg_count=0, cg_rate=0,
                  offload_tx_count=20_000, offload_rx_count=20_000, offload_rate=500_000),
}
# Datagrams per dgram_send_batch / sendmmsg call in the "send 1200B batch" case.
SEND_BATCH = 64
SCALE_SOCKETS = (1, 100, 1000)

# Output columns: (CSV name, table heading, format). The CSV has these after
# date, kernel and cores.
COLUMNS = [
    ("case", "case", "{}"),
    ("contender", "contender", "{}"),
    ("offload", "offload", "{}"),
    ("dgrams_per_s", "dgram/s", "{:,.0f}"),
    ("mb_per_s", "MB/s", "{:.1f}"),
    ("delivered_pct", "deliv%", "{:.1f}"),
    ("cpu_us_per_dgram", "CPU us/dg", "{:.3f}"),
    ("instr_per_dgram", "instr/dg", "{:,.0f}"),
    ("instr_lib_per_dgram", "in lib", "{:,.0f}"),
    ("rtt_median_us", "RTT med us", "{:.1f}"),
    ("rtt_p99_us", "RTT p99 us", "{:.1f}"),
    ("peak_rss_mib", "RSS MiB", "{:.1f}"),
    ("allocs_per_dgram", "allocs/dg", "{:.2f}"),
    ("send_errors", "send err", "{:,.0f}"),
    ("vs_base", "x base", "{:.2f}"),
    ("cpu_vs_base", "CPU x base", "{:.2f}"),
    ("vs_uv", "x uv", "{:.2f}"),
    ("cpu_vs_uv", "CPU x uv", "{:.2f}"),
    ("vs_off", "x off", "{:.2f}"),
    ("cpu_vs_off", "CPU x off", "{:.2f}"),
]
# Text columns (left-aligned; "offload" is what the contender reported in effect).
TEXT = ("case", "contender", "offload")
# Ratio kinds: (kind, column, CPU column). "base" and "uv" are per case unless
# a row names its own reference; "off" only where a row names one.
RATIOS = (("base", "vs_base", "cpu_vs_base"), ("uv", "vs_uv", "cpu_vs_uv"), ("off", "vs_off", "cpu_vs_off"))
METRICS = [c[0] for c in COLUMNS if c[0] not in TEXT and not c[0].startswith(("vs_", "cpu_vs_"))]


class BenchError(Exception):
    """A case that crashed, hung or received nothing."""


# ---- processes ---------------------------------------------------------------


class Bench:
    def __init__(self, build_dir, mode):
        self.build = os.path.abspath(build_dir)
        self.mode = mode
        self.cfg = MODES[mode]
        self.preload = os.path.join(self.build, "liballoc_count.so")
        self.node = shutil.which("node")
        self.valgrind = shutil.which("valgrind")
        self.tmp = tempfile.mkdtemp(prefix="dgram-bench-")

    def prog(self, name, *args):
        return [os.path.join(self.build, name)] + [str(a) for a in args]

    def start(self, argv, count_allocs=True):
        """Starts a contender; returns (process, port). Its stderr goes to a file."""
        argv = [str(a) for a in argv]
        env = dict(os.environ)
        if count_allocs:
            env["LD_PRELOAD"] = self.preload
        err = tempfile.TemporaryFile(mode="w+", dir=self.tmp)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        proc.errfile = err
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.kill(proc)
            raise BenchError(f"{' '.join(argv)} did not start (exit status {proc.returncode}): "
                             f"{line.strip()} {self.stderr(proc)}")
        return proc, int(line.split()[1])

    @staticmethod
    def stderr(proc):
        proc.errfile.seek(0)
        return proc.errfile.read().strip()[-2000:]

    @staticmethod
    def kill(proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def finish(self, proc, timeout=60, required=True):
        """Waits for a started program and returns its RESULT ({} if none and not required)."""
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise BenchError(f"{proc.args[0]} hung")
        if proc.returncode != 0:
            raise BenchError(f"{' '.join(proc.args)} exited with {proc.returncode}: {self.stderr(proc)}")
        return parse_result(out, proc.args, required)

    def run(self, argv, timeout=120, count_allocs=True):
        """Runs a program to its end and returns its RESULT."""
        argv = [str(a) for a in argv]
        env = dict(os.environ)
        if count_allocs:
            env["LD_PRELOAD"] = self.preload
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{' '.join(argv)} hung")
        if p.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited with {p.returncode}: {p.stderr.strip()[-2000:]}")
        return parse_result(p.stdout, argv)

    def stop_server(self, proc):
        """Stops an echo server or sink with SIGTERM and returns its RESULT (may be empty)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return self.finish(proc, timeout=10, required=False)

    # ---- the cases -------------------------------------------------------------

    def receive(self, argv, count, size, count_allocs=True, sender_args=(), timeout=60, show_offload=False):
        """One receive run: receiver `argv`, a blasting (or paced) sender, derived metrics."""
        proc, port = self.start(argv + ["--count", count, "--warmup", self.warmup(count)], count_allocs)
        try:
            sent = self.run(self.prog("sender", "blast", "--port", port, "--count", count, "--size", size,
                                      *sender_args), count_allocs=False)
        except BenchError:
            self.kill(proc)
            raise
        proc.send_signal(signal.SIGUSR2)  # the sender is done
        r = self.finish(proc, timeout)
        received, window, wall = r["received"], r["window"], r["wall_s"]
        if received == 0:
            raise BenchError(f"{' '.join(argv)} received nothing")
        offload = None
        if show_offload:
            offload = offload_text(r.get("offload"), received / r["buffers"] if r.get("buffers") else None)
            if "--gso" in sender_args and not sent.get("gso"):
                offload += ", sender without GSO"
        return dict(
            offload=offload,
            dgrams_per_s=received / wall if wall > 0 else None,
            mb_per_s=r["bytes"] / wall / 1e6 if wall > 0 else None,
            delivered_pct=100.0 * received / sent["sent"],
            cpu_us_per_dgram=r["cpu_s"] / window * 1e6 if window else None,
            peak_rss_mib=r["rss_kib"] / 1024,
            allocs_per_dgram=r["allocs"] / window if window and r["allocs"] >= 0 else None,
            received=received, sent=sent["sent"], wall_s=wall, _window=window,
        )

    def warmup(self, count):
        return min(self.cfg["warmup"], max(1, count // 10))

    def callgrind(self, argv, lib_prefix):
        """Instructions per datagram of a C receiver under callgrind, paced sender."""
        count = self.cfg["cg_count"]
        out = os.path.join(self.tmp, f"callgrind.{time.monotonic_ns()}")
        vg = [self.valgrind, "--tool=callgrind", "-q", f"--callgrind-out-file={out}"]
        r = self.receive(vg + argv, count, 64, count_allocs=False, timeout=120,
                         sender_args=("--rate", self.cfg["cg_rate"], "--batch", 16))
        # CALLGRIND_DUMP_STATS at the end of the window writes "<out>.1".
        objects, total = callgrind_objects(out + ".1")
        lib = sum(v for k, v in objects.items() if lib_prefix and os.path.basename(k).startswith(lib_prefix))
        window = r["_window"]
        return dict(instr_per_dgram=total / window, instr_lib_per_dgram=lib / window if lib_prefix else None,
                    _cg_delivered=r["delivered_pct"])

    def send(self, argv, count, size=64, show_offload=False):
        """One send run: sender `argv` of `size`-byte datagrams to a sink process."""
        sink, port = self.start(self.prog("sender", "sink"), count_allocs=False)
        try:
            r = self.run(argv + ["--port", port, "--count", count, "--size", size, "--warmup", self.warmup(count)])
        finally:
            got = self.stop_server(sink)
        if r["sent"] == 0:
            raise BenchError(f"{' '.join(argv)} sent nothing")
        return dict(
            offload=offload_text(r.get("offload")) if show_offload else None,
            sent=r["sent"], received=got.get("received"), wall_s=r["wall_s"],
            dgrams_per_s=r["sent"] / r["wall_s"],
            mb_per_s=r["sent"] * size / r["wall_s"] / 1e6,
            delivered_pct=100.0 * got.get("received", 0) / r["sent"],
            cpu_us_per_dgram=r["cpu_s"] / r["sent"] * 1e6,
            peak_rss_mib=r["rss_kib"] / 1024,
            allocs_per_dgram=r["allocs"] / r["window"] if r["window"] and r["allocs"] >= 0 else None,
            send_errors=r["errors"],
        )

    def rtt(self, client, server):
        echo, port = self.start(server)
        try:
            r = self.run(client + ["--port", port, "--count", self.cfg["rtt_count"],
                                   "--warmup", self.cfg["rtt_warmup"]])
        finally:
            self.stop_server(echo)
        if r["round_trips"] == 0:
            raise BenchError(f"{' '.join(client)} measured no round trip")
        return dict(rtt_median_us=r["rtt_median_us"], rtt_p99_us=r["rtt_p99_us"],
                    peak_rss_mib=r["rss_kib"] / 1024)


def offload_text(flags, per_buffer=None):
    """The offloads a contender reported in effect ("GSO", "GRO", "off"), with
    the datagrams per coalesced buffer when a raw GRO receiver counted them."""
    if flags is None or flags < 0:
        return "default"
    text = "+".join(name for bit, name in ((1, "GSO"), (2, "GRO")) if flags & bit) or "off"
    if flags & 2 and per_buffer is not None:
        text += f", {per_buffer:.1f}/buf"
    return text


def parse_result(out, argv, required=True):
    """The numbers of the "RESULT key=value ..." line of a program's output."""
    for line in out.splitlines():
        if line.startswith("RESULT"):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            return {k: (float(v) if "." in v else int(v)) for k, v in fields.items()}
    if required:
        raise BenchError(f"{' '.join(map(str, argv))} printed no RESULT")
    return {}


def callgrind_objects(path):
    """Self instruction counts per object file in a callgrind dump, and their total.

    A cost line ("<position> <Ir>") belongs to the current function's object
    ("ob="); the cost line after "calls=" is the callee's inclusive cost and
    is skipped, so every instruction is counted once, in the object that ran
    it. Object names are compressed ("(3) /lib/libc.so.6" once, then "(3)"),
    and "ob=" and "cob=" share one table.
    """
    names, objects = {}, {}
    ob, skip_next = "?", False
    with open(path) as f:
        for line in f:
            if line.startswith(("ob=", "cob=")):
                ref = line.split("=", 1)[1].strip()
                name = ref
                if ref.startswith("("):
                    num, _, name = ref.partition(")")
                    name = name.strip() or names.get(num, "?")
                    names[num] = name
                if line.startswith("ob="):
                    ob = name
            elif line.startswith("calls="):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    objects[ob] = objects.get(ob, 0) + int(parts[1])
    return objects, sum(objects.values())


# ---- the plan ----------------------------------------------------------------


class Run:
    """One contender of one case: `fn` measures it once.

    `base`: which baseline kind ("base", "uv") this row is for its case.
    `refs`: {kind: contender} for rows compared with a row of their own
    choosing instead (the offload cases: "base" is the raw contender with
    the same offload, "off" the same contender with offload off).
    """

    def __init__(self, case, contender, fn, base=None, refs=None):
        self.case, self.contender, self.fn, self.base, self.refs = case, contender, fn, base, refs or {}


def receivers(b):
    """The receive contenders: (name, argv, baseline kind, library object for callgrind or None for Node)."""
    return [
        ("libdgram host", b.prog("bench_dgram", "recv", "--dispatch", "host"), None, "libdgram.so"),
        ("libdgram host, run()", b.prog("bench_dgram", "recv", "--dispatch", "run"), None, "libdgram.so"),
        ("libdgram io-thread", b.prog("bench_dgram", "recv", "--dispatch", "io"), None, "libdgram.so"),
        ("libuv", b.prog("bench_uv", "recv"), "uv", "libuv.so"),
        ("libuv recvmmsg", b.prog("bench_uv", "recv", "--mmsg", 1), None, "libuv.so"),
        ("node dgram", ["node", os.path.join(BENCH_DIR, "node_recv.js")], None, None),
        ("raw recvmmsg", b.prog("bench_raw", "recv"), "base", ""),
    ]


def plan(b):
    """Yields a Run for every contender of every case, in order, for one repetition.

    The baseline kind says which ratio column a row is the baseline of:
    "base" (raw C, or 1 socket for scaling) or "uv".
    """
    cfg = b.cfg
    for size in (64, 1200):
        for name, argv, base, lib in receivers(b):
            is_c = lib is not None
            if not is_c and not b.node:
                continue
            count = cfg["rx_count"][size]
            yield Run(f"recv {size}B", name,
                      lambda argv=argv, count=count, size=size, is_c=is_c: b.receive(argv, count, size, is_c), base)

    senders = [
        ("libdgram host", b.prog("bench_dgram", "send", "--dispatch", "host"), None),
        ("libdgram io-thread", b.prog("bench_dgram", "send", "--dispatch", "io"), None),
        ("libuv try_send", b.prog("bench_uv", "send"), "uv"),
        ("raw sendto", b.prog("bench_raw", "send"), "base"),
    ]
    for name, argv, base in senders:
        yield Run("send 64B", name, lambda argv=argv: b.send(argv, cfg["tx_count"]), base)

    pingers = [
        ("libdgram host", "bench_dgram", ["--dispatch", "host"], None),
        ("libdgram io-thread", "bench_dgram", ["--dispatch", "io"], None),
        ("libuv", "bench_uv", [], "uv"),
        ("raw blocking", "bench_raw", [], "base"),
    ]
    for name, prog, extra, base in pingers:
        yield Run("rtt 64B", name,
                  lambda prog=prog, extra=extra: b.rtt(b.prog(prog, "ping", *extra), b.prog(prog, "echo", *extra)),
                  base)

    for n in SCALE_SOCKETS:
        argv = b.prog("bench_dgram", "recv", "--dispatch", "host", "--sockets", n)
        yield Run("scale 64B", f"libdgram host, {n} socket{'s' if n > 1 else ''}",
                  lambda argv=argv: b.receive(argv, cfg["scale_count"], 64), "base" if n == 1 else None)

    yield from offload_plan(b)


def offload_plan(b):
    """The 1200 B offload cases.

    send 1200B batch: dgram_send_batch of SEND_BATCH datagrams per call with
    GSO (the default, checked) and with offload off, against raw sendmmsg of
    the same batches with and without UDP_SEGMENT runs.

    recv 1200B offload: receivers with GRO on and off, fed by a GSO sender
    (UDP_SEGMENT writes of 54 datagrams, which loopback hands to a GRO socket
    as one buffer and splits for any other) and by the plain sendmmsg sender,
    both paced at the same rate so that every receiver gets the same traffic.
    The gain is GRO on against off with the same (GSO) sender.
    """
    cfg, size = b.cfg, 1200
    tx_count, rx_count, rate = cfg["offload_tx_count"], cfg["offload_rx_count"], cfg["offload_rate"]

    case = "send 1200B batch"
    raw = {"GSO": "raw sendmmsg + UDP_SEGMENT", "off": "raw sendmmsg"}
    for dispatch, label in (("host", "libdgram host"), ("io", "libdgram io-thread")):
        for mode, flag in (("GSO", "gso"), ("off", "off")):
            name = f"{label}, {'GSO' if mode == 'GSO' else 'offload off'}"
            argv = b.prog("bench_dgram", "send", "--dispatch", dispatch, "--batch", SEND_BATCH, "--offload", flag)
            refs = {"base": raw[mode]}
            if mode == "GSO":
                refs["off"] = f"{label}, offload off"
            yield Run(case, name, lambda argv=argv: b.send(argv, tx_count, size, show_offload=True), refs=refs)
    for mode, extra in (("GSO", ["--gso", 1]), ("off", [])):
        argv = b.prog("bench_raw", "send", "--batch", SEND_BATCH, *extra)
        yield Run(case, raw[mode], lambda argv=argv: b.send(argv, tx_count, size, show_offload=True),
                  "base" if mode == "off" else None,
                  refs={"base": raw[mode], "off": raw["off"]} if mode == "GSO" else None)

    senders = (("GSO sender", ("--gso", 1, "--rate", rate)), ("sendmmsg sender", ("--rate", rate)))
    for sender, sender_args in senders:
        case = f"recv 1200B offload, {sender}"
        raw = {"on": "raw recvmmsg + UDP_GRO", "off": "raw recvmmsg"}
        for dispatch, label in (("host", "libdgram host"), ("io", "libdgram io-thread")):
            for gro in ("on", "off"):
                flag = "gro" if gro == "on" else "off"
                argv = b.prog("bench_dgram", "recv", "--dispatch", dispatch, "--offload", flag)
                refs = {"base": raw[gro]}
                if gro == "on":
                    refs["off"] = f"{label}, GRO off"
                yield Run(case, f"{label}, GRO {gro}",
                          lambda argv=argv, sender_args=sender_args: b.receive(
                              argv, rx_count, size, sender_args=sender_args, show_offload=True), refs=refs)
        for gro in ("on", "off"):
            argv = b.prog("bench_raw", "recv", *(["--gro", 1] if gro == "on" else []))
            yield Run(case, raw[gro],
                      lambda argv=argv, sender_args=sender_args: b.receive(
                          argv, rx_count, size, sender_args=sender_args, show_offload=True),
                      "base" if gro == "off" else None,
                      refs={"base": raw[gro], "off": raw["off"]} if gro == "on" else None)


def callgrind_plan(b):
    """Yields (case, contender, function) for the callgrind runs of the C receivers."""
    for name, argv, _, lib in receivers(b):
        if lib is not None:
            yield ("recv 64B", name, lambda argv=argv, lib=lib: b.callgrind(argv, lib))


# ---- reporting ---------------------------------------------------------------


def median_row(samples):
    row = {}
    for m in METRICS:
        values = [s[m] for s in samples if s.get(m) is not None]
        row[m] = statistics.median(values) if values else None
    # Text: what every repetition reported (normally one value).
    texts = list(dict.fromkeys(s["offload"] for s in samples if s.get("offload")))
    row["offload"] = " / ".join(texts) if texts else None
    return row


def add_ratios(rows, bases, refs):
    """Ratio columns against the baselines of the same case and run.

    Throughput cases compare datagrams/s (higher is better) and CPU per
    datagram (lower is better); the RTT case compares the median round trip.
    A row's own references (`refs`) take precedence over the case's baselines.
    """
    for (case, contender), row in rows.items():
        own = refs.get((case, contender), {})
        for kind, col, cpu_col in RATIOS:
            base = rows.get((case, own.get(kind, bases.get((case, kind)))))
            if not base:
                continue
            metric = "rtt_median_us" if case.startswith("rtt") else "dgrams_per_s"
            row[col] = ratio(row.get(metric), base.get(metric))
            row[cpu_col] = ratio(row.get("cpu_us_per_dgram"), base.get("cpu_us_per_dgram"))


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, spec):
    if value is None or value == "":
        return "-"
    return spec.format(value) if not isinstance(value, str) else value


def print_table(rows):
    table = [[h for _, h, _ in COLUMNS]]
    for (case, contender), row in rows.items():
        full = dict(row, case=case, contender=contender)
        table.append([fmt(full.get(name), spec) for name, _, spec in COLUMNS])
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    prev_case = None
    for n, r in enumerate(table):
        if n > 1 and r[0] != prev_case:
            print()
        prev_case = r[0]
        print("  ".join(c.ljust(w) if i < len(TEXT) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny counts, 1 repetition, no callgrind")
    ap.add_argument("--build-dir", default="build/bench")
    ap.add_argument("--out-dir", default=None, help="where the CSV files go (default: benches/, or the "
                    "build dir with --quick or --cases)")
    ap.add_argument("--cases", default=None, help="only the cases whose name contains one of these "
                    "comma-separated strings (e.g. \"send 1200B,offload\")")
    args = ap.parse_args()
    b = Bench(args.build_dir, "quick" if args.quick else "full")
    # A partial run never overwrites the committed full results by default.
    out_dir = args.out_dir or (b.build if args.quick or args.cases else BENCH_DIR)
    wanted = [w.strip() for w in args.cases.split(",") if w.strip()] if args.cases else None

    def selected(case):
        return wanted is None or any(w in case for w in wanted)
    cfg = b.cfg

    meta = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), kernel=platform.release(),
                cores=os.cpu_count())
    print(f"libdgram benchmarks ({b.mode} mode): {meta['date']}, kernel {meta['kernel']}, {meta['cores']} cores, "
          f"{cfg['reps']} repetition(s), medians shown", flush=True)
    if wanted:
        print(f"only the cases matching: {', '.join(wanted)}", flush=True)
    if not b.node:
        print("note: node not found, the 'node dgram' receiver is skipped", flush=True)

    samples, bases, refs, failures, raw = {}, {}, {}, [], []
    started = time.monotonic()
    for rep in range(1, cfg["reps"] + 1):
        for run in plan(b):
            case, contender = run.case, run.contender
            if not selected(case):
                continue
            if run.base:
                bases[(case, run.base)] = contender
            refs[(case, contender)] = run.refs
            try:
                result = run.fn()
            except (BenchError, OSError, KeyError, ZeroDivisionError) as e:
                failures.append(f"{case} / {contender} (repetition {rep}): {e}")
                print(f"  FAILED {case} / {contender}: {e}", file=sys.stderr, flush=True)
                continue
            samples.setdefault((case, contender), []).append(result)
            raw.append(dict(result, case=case, contender=contender, repetition=rep))
            brief = ", ".join(f"{k}={fmt(result.get(k), s)}" for k, _, s in COLUMNS[2:]
                              if result.get(k) is not None)
            print(f"  [{time.monotonic() - started:5.1f}s] rep {rep} {case} / {contender}: {brief}",
                  file=sys.stderr, flush=True)

    rows = {key: median_row(s) for key, s in samples.items()}

    if cfg["callgrind"]:
        if not b.valgrind:
            print("note: valgrind not found, instructions per datagram not measured", flush=True)
        else:
            for case, contender, fn in callgrind_plan(b):
                if not selected(case):
                    continue
                try:
                    result = fn()
                except (BenchError, OSError, KeyError, ZeroDivisionError) as e:
                    failures.append(f"callgrind {case} / {contender}: {e}")
                    print(f"  FAILED callgrind {contender}: {e}", file=sys.stderr, flush=True)
                    continue
                print(f"  [{time.monotonic() - started:5.1f}s] callgrind {contender}: "
                      f"{result['instr_per_dgram']:,.0f} instr/datagram, "
                      f"delivered {result['_cg_delivered']:.1f}%", file=sys.stderr, flush=True)
                if result["_cg_delivered"] < 100:
                    print(f"  note: callgrind run of {contender} lost datagrams: lower --rate",
                          file=sys.stderr, flush=True)
                rows.setdefault((case, contender), {}).update(
                    instr_per_dgram=result["instr_per_dgram"], instr_lib_per_dgram=result["instr_lib_per_dgram"])
                raw.append(dict(result, case=case + " callgrind", contender=contender, repetition=1))

    add_ratios(rows, bases, refs)
    print()
    print_table(rows)
    print()
    print("x base: datagrams/s (RTT: median) relative to raw recvmmsg / raw sendto / raw blocking / 1 socket, "
          "in the offload cases to the raw contender with the same offload; "
          "x uv: relative to libuv / uv_udp_try_send / libuv; "
          "x off: relative to the same contender with offload off (offload cases). "
          "CPU x: CPU per datagram, same baselines.")
    print(f"total time {time.monotonic() - started:.0f}s")

    os.makedirs(out_dir, exist_ok=True)
    names = [c[0] for c in COLUMNS]
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["date", "kernel", "cores"] + names)
        for (case, contender), row in rows.items():
            full = dict(row, case=case, contender=contender)
            w.writerow([meta["date"], meta["kernel"], meta["cores"]] + [csv_value(full.get(n)) for n in names])
    with open(os.path.join(out_dir, "results-raw.csv"), "w", newline="") as f:
        w = csv.writer(f)
        raw_names = ["case", "contender", "repetition", "offload"] + METRICS + ["received", "sent", "wall_s"]
        w.writerow(["date", "kernel", "cores"] + raw_names)
        for r in raw:
            w.writerow([meta["date"], meta["kernel"], meta["cores"]] + [csv_value(r.get(n)) for n in raw_names])
    print(f"wrote {os.path.join(out_dir, 'results.csv')} and results-raw.csv")

    shutil.rmtree(b.tmp, ignore_errors=True)
    if failures:
        print(f"\n{len(failures)} FAILED:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
