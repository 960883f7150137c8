#!/usr/bin/env python3
"""The benchmark suite: the machine's physical limits, then Strom and Apache
Kafka on the same machine with the same client, alternating runs.

    scripts/bench/suite.py [--runs 3] [--quick | --smoke] [--no-kafka]
                           [--only NAME,...] [--out docs/benchmarks.md]

It measures
  * the physical limits, with fio and iperf3 (Debian's packages): sequential
    buffered write + fsync, O_DIRECT write, fdatasync every 1 MiB and every
    16 KiB, warm and cold sequential read, loopback TCP;
  * each broker, started fresh on an empty data dir: start-up time and idle
    RSS; Strom's start-up with 1 000 partitions holding 10 GB, after a clean
    stop and after SIGKILL;
  * the workload matrix with `strom bench` (librdkafka) as the client for
    both brokers: record sizes 100 B, 1 KiB, 16 KiB x 1 and 16 partitions x
    acks=1 (default flush) and acks=all with flush.messages=1 (Strom:
    flush=always; Kafka: an fsync per produce request); per run the
    throughput, the broker's CPU-seconds per GB and the bytes it wrote per
    byte produced (/proc/PID/io); for flush-always runs, Strom's bytes per
    fsync, and fio's fdatasync bandwidth at that size as their limit;
  * end-to-end latency at fixed rates (5 and 50 MB/s, 1 KiB records);
  * reading a backlog (5 GB in the full run) from the beginning;
  * peak RSS of each broker over the whole run.
Every figure is the median of --runs runs, with the spread (min-max), and
is reported as a ratio to the physical limit and to Apache Kafka.

It writes RESULTS (JSON, every run) and docs/benchmarks.md with the tables
and PNG plots in docs/benchmarks/. Apache Kafka comes from the Maven jars
that compat/java resolves (`mvn -q dependency:build-classpath` writes
compat/java/target/classpath.txt; scripts/test.sh does it), started in KRaft
mode with the JVM options of Kafka's own kafka-server-start.sh.

Loopback only; every process it starts it stops, by PID.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MB = 1_000_000
MiB = 1 << 20


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Process statistics from /proc
# --------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int:
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def proc_write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


# --------------------------------------------------------------------------
# Brokers
# --------------------------------------------------------------------------
class Broker:
    name = ""
    pid = 0
    bootstrap = ""
    data_dir: Path

    def stop(self):
        raise NotImplementedError

    def sample(self) -> dict:
        return {
            "cpu_s": proc_cpu_seconds(self.pid),
            "write_bytes": proc_write_bytes(self.pid),
        }


class Strom(Broker):
    def __init__(self, binary: Path, work: Path):
        self.name = "strom"
        work.mkdir(parents=True, exist_ok=True)
        self.data_dir = work / "strom-data"
        self.log = open(work / "strom.log", "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STROM_")}
        started = time.monotonic()
        self.process = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(self.data_dir),
             "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        self.pid = self.process.pid
        line = self.process.stdout.readline()
        if not line.startswith("listening on "):
            raise RuntimeError(f"strom serve printed {line!r}; see {work / 'strom.log'}")
        self.startup_s = time.monotonic() - started
        self.bootstrap = line.split()[-1]
        admin = self.process.stdout.readline()
        self.admin = admin.split("http://")[-1].strip() if "http://" in admin else None

    def fsyncs(self):
        """Segment fdatasyncs so far (strom_log_fsyncs_total, every partition)."""
        if not self.admin:
            return None
        import urllib.request
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("strom_log_fsyncs_total{"))

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Kafka(Broker):
    """Apache Kafka 4.x, one node, KRaft, from compat/java's Maven classpath,
    with the JVM options of Kafka's own bin/kafka-server-start.sh."""

    JVM = ["-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
           "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
           "-Djava.awt.headless=true"]

    def __init__(self, classpath: str, work: Path):
        self.name = "kafka"
        home = work
        home.mkdir(parents=True)
        self.data_dir = home / "data"
        port, controller = free_port(), free_port()
        while controller == port:
            controller = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        props = home / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller}",
            f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://127.0.0.1:{controller}",
            f"advertised.listeners=PLAINTEXT://{self.bootstrap}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data_dir}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # Deleted topics' files go after 1 s, not 60: the suite deletes
            # each run's topic to keep the disk from filling.
            "log.segment.delete.delay.ms=1000",
            "",
        ]))
        log4j = home / "log4j2.xml"
        log4j.write_text(
            '<?xml version="1.0" encoding="UTF-8"?><Configuration status="WARN">'
            f'<Appenders><File name="f" fileName="{home / "server.log"}">'
            '<PatternLayout pattern="[%d] %p %m (%c)%n"/></File></Appenders>'
            '<Loggers><Root level="INFO"><AppenderRef ref="f"/></Root></Loggers></Configuration>')
        java = shutil.which("java") or "java"
        subprocess.run(
            [java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t",
             uuid.uuid4().hex[:22], "-c", str(props), "--ignore-formatted"],
            check=True, capture_output=True, timeout=180)
        self.out = open(home / "stdout.log", "w")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [java, *self.JVM, f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath,
             "kafka.Kafka", str(props)],
            stdout=self.out, stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Kafka exited; see {home / 'server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("Kafka did not open its listener in 180 s")
                time.sleep(0.02)
        self.startup_s = time.monotonic() - started

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.out.close()


# --------------------------------------------------------------------------
# The client: strom bench / strom topic (librdkafka), the same for both
# --------------------------------------------------------------------------
class Client:
    def __init__(self, binary: Path):
        self.binary = str(binary)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STROM_")}
        self.env["RUST_LOG"] = "warn"

    def run(self, args, timeout=3600) -> str:
        result = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                env=self.env, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"strom {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def create_topic(self, bootstrap, topic, partitions, configs=()):
        args = ["topic", "create", topic, "--bootstrap", bootstrap,
                "--partitions", str(partitions)]
        for c in configs:
            args += ["--config", c]
        self.run(args, timeout=120)

    def delete_topic(self, bootstrap, topic):
        self.run(["topic", "delete", topic, "--bootstrap", bootstrap], timeout=120)

    def bench(self, bootstrap, mode, args, timeout=3600) -> dict:
        out = self.run(["bench", mode, "--bootstrap", bootstrap, *args, "--json"], timeout)
        return json.loads(out)


# --------------------------------------------------------------------------
# Physical limits
# --------------------------------------------------------------------------
def fio(work: Path, name: str, args) -> dict:
    path = work / "fio.data"
    cmd = ["fio", f"--name={name}", f"--filename={path}", "--output-format=json",
           "--ioengine=psync", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write"] if job["write"]["io_bytes"] else job["read"]
    return {"MBps": side["bw_bytes"] / MB, "iops": side["iops"]}


def drop_caches() -> bool:
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def physical_limits(work: Path, size: str, seconds: int) -> dict:
    limits = {}
    log("physical limits: fio, iperf3")
    limits["buffered_write_fsync"] = fio(work, "bufwrite", [
        "--rw=write", "--bs=1M", f"--size={size}", "--end_fsync=1"])
    limits["direct_write"] = fio(work, "directwrite", [
        "--rw=write", "--bs=1M", f"--size={size}", "--direct=1"])
    limits["fdatasync_1MiB"] = fio(work, "sync1m", [
        "--rw=write", "--bs=1M", f"--size={size}", "--fdatasync=1", f"--runtime={seconds}",
        "--time_based=0"])
    limits["fdatasync_16KiB"] = fio(work, "sync16k", [
        "--rw=write", "--bs=16k", "--size=256M", "--fdatasync=1", f"--runtime={seconds}"])
    fio(work, "prepare", ["--rw=write", "--bs=1M", f"--size={size}"])
    limits["warm_read"] = fio(work, "warmread", ["--rw=read", "--bs=1M", f"--size={size}"])
    limits["warm_read"] = fio(work, "warmread", ["--rw=read", "--bs=1M", f"--size={size}"])
    if drop_caches():
        limits["cold_read"] = fio(work, "coldread", ["--rw=read", "--bs=1M", f"--size={size}"])
    else:
        limits["cold_read"] = fio(work, "coldread", [
            "--rw=read", "--bs=1M", f"--size={size}", "--direct=1"])
    (work / "fio.data").unlink(missing_ok=True)

    port = free_port()
    # Not one-off (-1): the readiness probe below would be its one client.
    server = subprocess.Popen(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t",
                              str(seconds), "-J"], check=True, capture_output=True,
                             text=True).stdout
        report = json.loads(out)
        if "error" in report:
            raise RuntimeError(f"iperf3: {report['error']}")
        bps = report["end"]["sum_received"]["bits_per_second"]
        limits["loopback_tcp"] = {"MBps": bps / 8 / MB}
    finally:
        server.kill()
        server.wait()
    for k, v in limits.items():
        log(f"  {k:22} {v['MBps']:10.1f} MB/s")
    return limits


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------
def measured(broker: Broker, fn) -> dict:
    before = broker.sample()
    t0 = time.monotonic()
    result = fn()
    wall = time.monotonic() - t0
    after = broker.sample()
    result["broker_cpu_s"] = after["cpu_s"] - before["cpu_s"]
    result["broker_write_bytes"] = after["write_bytes"] - before["write_bytes"]
    result["wall_s"] = wall
    return result


def produce_run(client, broker, size, partitions, acks, total_bytes, flush_always):
    topic = f"p-{size}-{partitions}-{acks}-{uuid.uuid4().hex[:6]}"
    configs = ["flush.messages=1"] if flush_always else []
    client.create_topic(broker.bootstrap, topic, partitions, configs)
    count = max(1000, total_bytes // size)

    def go():
        r = client.bench(broker.bootstrap, "produce", [
            "--topic", topic, "--record-size", str(size), "--count", str(count),
            "--acks", acks, "--producers", "1"])
        p = r["produced"]
        return {"records": p["records"], "bytes": p["bytes"], "MBps": p["mb_per_sec"],
                "records_per_s": p["records_per_sec"], "latency_ms": p["latency_ms"],
                "failed": p["failed"]}
    fsyncs = getattr(broker, "fsyncs", lambda: None)()
    try:
        result = measured(broker, go)
        after = getattr(broker, "fsyncs", lambda: None)()
    finally:
        client.delete_topic(broker.bootstrap, topic)
    if fsyncs is not None and after is not None and after > fsyncs:
        result["bytes_per_fsync"] = result["bytes"] / (after - fsyncs)
    gb = result["bytes"] / 1e9
    result["cpu_s_per_GB"] = result["broker_cpu_s"] / gb if gb else None
    result["written_per_produced"] = result["broker_write_bytes"] / result["bytes"]
    return result


def e2e_run(client, broker, size, mbps, seconds, linger_ms=None):
    topic = f"e2e-{mbps}-{uuid.uuid4().hex[:6]}"
    client.create_topic(broker.bootstrap, topic, 1)
    rate = int(mbps * MB / size)
    extra = [] if linger_ms is None else ["-X", f"linger.ms={linger_ms}"]

    def go():
        r = client.bench(broker.bootstrap, "e2e", [
            "--topic", topic, "--record-size", str(size), "--rate", str(rate),
            "--duration", f"{seconds}s", "--acks", "1", *extra])
        return {"produced_MBps": r["produced"]["mb_per_sec"],
                "failed": r["produced"]["failed"],
                "latency_ms": r["end_to_end_latency_ms"]}
    try:
        return measured(broker, go)
    finally:
        client.delete_topic(broker.bootstrap, topic)


def produce_backlog(client, broker, total_bytes, size=1024, partitions=16) -> tuple:
    """Writes the backlog once per broker; every run reads all of it."""
    topic = f"backlog-{uuid.uuid4().hex[:6]}"
    client.create_topic(broker.bootstrap, topic, partitions)
    count = total_bytes // size
    client.bench(broker.bootstrap, "produce", [
        "--topic", topic, "--record-size", str(size), "--count", str(count), "--acks", "1"])
    return topic, count


def backlog_run(client, broker, topic, count):
    def go():
        r = client.bench(broker.bootstrap, "consume", [
            "--topic", topic, "--count", str(count), "--consumers", "1"])
        c = r["consumed"]
        return {"records": c["records"], "bytes": c["bytes"], "MBps": c["mb_per_sec"]}
    result = measured(broker, go)
    result["cpu_s_per_GB"] = result["broker_cpu_s"] / (result["bytes"] / 1e9)
    return result


def startup_many(client, binary: Path, work: Path, partitions: int, total_bytes: int,
                 runs: int) -> dict:
    """Start-up with many partitions holding data: after a clean stop, and
    after SIGKILL (recovery of every partition's unflushed tail)."""
    home = work / "strom-many"
    broker = Strom(binary, home)
    topics = max(1, partitions // 100)
    per_topic = partitions // topics
    size = 16384
    try:
        for t in range(topics):
            client.create_topic(broker.bootstrap, f"many-{t}", per_topic)
        for t in range(topics):
            client.bench(broker.bootstrap, "produce", [
                "--topic", f"many-{t}", "--record-size", str(size),
                "--count", str(max(1, total_bytes // topics // size)), "--acks", "1"])
    finally:
        broker.stop()
    stored = dir_bytes(home / "strom-data")
    clean, killed = [], []
    for _ in range(runs):
        b = Strom(binary, home)
        clean.append(b.startup_s)
        time.sleep(0.5)
        b.stop()
    for _ in range(runs):
        b = Strom(binary, home)
        time.sleep(0.5)
        b.process.kill()
        b.process.wait()
        b.log.close()
        b = Strom(binary, home)
        killed.append(b.startup_s)
        b.stop()
    shutil.rmtree(home, ignore_errors=True)
    log(f"startup with {partitions} partitions, {stored / 1e9:.1f} GB: clean "
        f"{statistics.median(clean):.3f} s, after SIGKILL {statistics.median(killed):.3f} s")
    return {"partitions": topics * per_topic, "bytes": stored,
            "clean_s": median_spread(clean), "after_kill_s": median_spread(killed)}


def median_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------
def fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def spread(s, digits=0):
    if not s:
        return "–"
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def ratio(a, b, digits=2):
    if not a or not b or not b.get("median"):
        return "–"
    return f"{a['median'] / b['median']:.{digits}f}"


def write_report(results: dict, out: Path, plots_dir: Path):
    limits = results.get("limits", {})
    summary = results["summary"]
    brokers = results["brokers"]
    lines = ["# Benchmarks", "",
             "Produced by `scripts/bench/suite.py` (see its docstring for what it runs); "
             "do not edit by hand. Medians of "
             f"{results['runs']} alternating runs per broker, spread (min–max) in brackets.",
             "", f"Machine: {results['machine']}", f"Date: {results['date']}",
             f"Command: `{results['command']}`", ""]
    if limits:
        lines += ["## Physical limits (fio, iperf3)", "", "| what | MB/s |", "|---|---|"]
        for k, v in limits.items():
            lines.append(f"| {k.replace('_', ' ')} | {fmt(v['MBps'], 1)} |")
        lines.append("")
    lines += ["## Start-up and memory", "", "| | " + " | ".join(brokers) + " |",
              "|---|" + "---|" * len(brokers)]
    for key, label, scale, d in [("startup_s", "start to listening (s)", 1, 3),
                                 ("idle_rss", "idle RSS (MB)", 1 / MB, 1),
                                 ("peak_rss", "peak RSS over the run (MB)", 1 / MB, 0)]:
        row = []
        for b in brokers:
            v = summary.get(b, {}).get(key)
            row.append(fmt(v * scale, d) if v is not None else "–")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines.append("")
    many = results.get("startup_many")
    if many:
        lines += [f"Strom with {many['partitions']} partitions holding "
                  f"{many['bytes'] / 1e9:.1f} GB (16 KiB records), start to listening: "
                  f"{spread(many['clean_s'], 3)} s after a clean stop, "
                  f"{spread(many['after_kill_s'], 3)} s after SIGKILL.", ""]
    for m in results.get("merged", []):
        lines += [f"Merged in: `{m['command']}` ({m['date']}).", ""]

    lines += ["## Produce throughput (MB/s)", "",
              "One producer (`strom bench produce`, librdkafka defaults: linger 5 ms, "
              "batch 1 MB); acks=all rows use `flush.messages=1` on the topic (an fsync "
              "before each acknowledgement on both brokers).", ""]
    header = "| record | partitions | acks | " + " | ".join(f"{b} MB/s" for b in brokers)
    if "kafka" in brokers:
        header += " | strom/kafka"
    header += " | strom / limit | strom CPU-s/GB | strom bytes written/produced |"
    if "kafka" in brokers:
        header += " kafka CPU-s/GB |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for w in results["workloads"]:
        if w["kind"] != "produce":
            continue
        key = w["key"]
        cells = [f"{w['size']} B", str(w["partitions"]), w["label"]]
        s = summary.get("strom", {}).get(key, {})
        k = summary.get("kafka", {}).get(key, {})
        for b in brokers:
            cells.append(spread(summary.get(b, {}).get(key, {}).get("MBps")))
        if "kafka" in brokers:
            cells.append(ratio(s.get("MBps"), k.get("MBps")))
        limit = limits.get(w["limit"], {}).get("MBps")
        cells.append(f"{s['MBps']['median'] / limit:.2f} of {limit_label(w['limit'], limits)}"
                     if s.get("MBps") and limit else "–")
        cells.append(spread(s.get("cpu_s_per_GB"), 2))
        cells.append(spread(s.get("written_per_produced"), 2))
        if "kafka" in brokers:
            cells.append(spread(k.get("cpu_s_per_GB"), 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")

    lines += ["## End-to-end latency (ms)", "",
              "`strom bench e2e`: 1 KiB records at a fixed rate, acks=1, one partition; "
              "latency from each record's scheduled send time to its consumption "
              "(no coordinated omission).", ""]
    lines += ["| rate | producer linger | broker | p50 | p99 | p99.9 | max |",
              "|---|---|---|---|---|---|---|"]
    for w in results["workloads"]:
        if w["kind"] != "e2e":
            continue
        for b in brokers:
            s = summary.get(b, {}).get(w["key"], {})
            linger = f"{w['linger']} ms" if "linger" in w else "5 ms (default)"
            cells = [f"{w['mbps']} MB/s", linger, b] + [spread(s.get(p), 2) for p in
                                                 ("p50", "p99", "p99_9", "max")]
            lines.append("| " + " | ".join(cells) + " |")
    lines.append("")

    for w in results["workloads"]:
        if w["kind"] != "backlog":
            continue
        lines += [f"## Reading a backlog ({w['bytes'] / 1e9:.1f} GB, 1 KiB records, "
                  "16 partitions, one consumer)", "",
                  "| broker | MB/s | CPU-s/GB | / warm read |", "|---|---|---|---|"]
        warm = limits.get("warm_read", {}).get("MBps")
        for b in brokers:
            s = summary.get(b, {}).get(w["key"], {})
            r = f"{s['MBps']['median'] / warm:.2f}" if s.get("MBps") and warm else "–"
            lines.append(f"| {b} | {spread(s.get('MBps'))} | {spread(s.get('cpu_s_per_GB'), 2)} | {r} |")
        lines.append("")

    lines += targets(results)

    if results.get("plots"):
        lines += ["## Plots", ""]
        for p in results["plots"]:
            lines.append(f"![{p}](benchmarks/{p})")
        lines.append("")
    out.write_text("\n".join(lines))
    log(f"wrote {out}")


def limit_label(name: str, limits: dict) -> str:
    bs = limits.get(name, {}).get("bs")
    if name.startswith("fdatasync_at_") and bs:
        return f"fdatasync every {bs // 1024} KiB"
    return name.replace("_", " ")


def targets(results: dict) -> list:
    """Issue 6's targets, each with where this run stands."""
    limits = results.get("limits", {})
    strom = results["summary"].get("strom", {})
    kafka = results["summary"].get("kafka", {})

    def med(d, key, field="MBps"):
        v = d.get(key, {}).get(field)
        return v["median"] if v else None

    def lim(name):
        return limits.get(name, {}).get("MBps")

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    rows = []

    def row(target, figure, ok):
        rows.append(f"| {target} | {figure} | {verdict(ok)} |")

    s1, k1, bw = med(strom, "produce-1024-1-1"), med(kafka, "produce-1024-1-1"), \
        lim("buffered_write_fsync")
    if s1 and bw:
        row("acks=1, 1 KiB, 1 partition: ≥ 0.60 of buffered write + fsync",
            f"{s1:.0f} MB/s = {s1 / bw:.2f} of {bw:.0f}", s1 / bw >= 0.6)
    if s1 and k1:
        row("the same: ≥ 1.5× Apache Kafka", f"{s1 / k1:.2f}× ({k1:.0f} MB/s)", s1 / k1 >= 1.5)
    fsync_w = next((w for w in results["workloads"] if w["key"] == "produce-1024-1-all"), {})
    fsync_limit = fsync_w.get("limit", "fdatasync_1MiB")
    sa, fs = med(strom, "produce-1024-1-all"), lim(fsync_limit)
    if sa and fs:
        row("acks=all, flush always (1 KiB, 1 partition): ≥ 0.80 of "
            f"{limit_label(fsync_limit, limits)} (Strom's median bytes per fsync)",
            f"{sa:.0f} MB/s = {sa / fs:.2f} of {fs:.0f}", sa / fs >= 0.8)
    backlog = next((w["key"] for w in results["workloads"] if w["kind"] == "backlog"), None)
    sb, warm = med(strom, backlog) if backlog else None, lim("warm_read")
    if sb and warm:
        row("reading a backlog: ≥ 0.70 of warm sequential read",
            f"{sb:.0f} MB/s = {sb / warm:.2f} of {warm:.0f}", sb / warm >= 0.7)
    for key, how in (("e2e-1024-50", "default linger 5 ms"), ("e2e-1024-50-1", "linger 1 ms")):
        p99 = med(strom, key, "p99")
        if p99 is None:
            continue
        row(f"end-to-end p99 at 50 MB/s (acks=1) ≤ 5 ms ({how})", f"{p99:.2f} ms", p99 <= 5)
        kp99 = med(kafka, key, "p99")
        if kp99 is not None:
            row(f"the same: below Apache Kafka's p99 ({how})", f"{p99:.2f} vs {kp99:.2f} ms",
                p99 < kp99)
    rss = strom.get("idle_rss")
    if rss:
        row("idle RSS ≤ 20 MB", f"{rss / MB:.1f} MB", rss / MB <= 20)
    up = strom.get("startup_s")
    if up is not None:
        row("start to accepting connections, empty data dir ≤ 100 ms", f"{up * 1000:.0f} ms",
            up <= 0.1)
    many = results.get("startup_many")
    if many:
        t = many["clean_s"]["median"]
        row(f"start to accepting connections, {many['partitions']} partitions holding "
            f"{many['bytes'] / 1e9:.0f} GB ≤ 1 s (target: 10 GB)",
            f"{t * 1000:.0f} ms (after SIGKILL: {many['after_kill_s']['median'] * 1000:.0f} ms)",
            t <= 1 and many["bytes"] >= 9e9 if many["bytes"] >= 9e9 else None)
    if not rows:
        return []
    notes = []

    def cores(d, key):
        mbps, cpu = med(d, key), med(d, key, "cpu_s_per_GB")
        return mbps * cpu / 1000 if mbps and cpu else None

    c, kc = cores(strom, "produce-1024-1-1"), cores(kafka, "produce-1024-1-1")
    if c is not None:
        notes.append(f"- acks=1, 1 KiB, 1 partition: the broker used {c:.2f} of the "
                     f"{os.cpu_count()} cores" + (f" (Kafka {kc:.2f})" if kc else "") +
                     "; the producer (librdkafka) shares them.")
    if backlog:
        c, kc = cores(strom, backlog), cores(kafka, backlog)
        if c is not None:
            notes.append(f"- Reading the backlog the broker used {c:.2f} cores" +
                         (f" (Kafka {kc:.2f})" if kc else "") + ": one librdkafka consumer "
                         "is the bottleneck, not the broker or the disk.")
    if fsync_limit != "fdatasync_1MiB":
        notes.append("- The flush-always rows are held to fio's fdatasync bandwidth at the "
                     "median bytes Strom wrote per fsync in that workload (read from its "
                     "`strom_log_fsyncs_total`). Strom handles one connection's requests one "
                     "at a time: reading a request, writing it and its fsync do not overlap.")
    bw, dw = lim("buffered_write_fsync"), lim("direct_write")
    if bw and dw and dw > bw:
        notes.append(f"- O_DIRECT writes ({dw:.0f} MB/s) beat buffered ones ({bw:.0f} MB/s) "
                     "here: copying into the page cache is the bottleneck of buffered "
                     "writes on this machine, and both brokers write through the page "
                     "cache, so the buffered figure is the limit they are held to.")
    if (fsync_limit == "fdatasync_1MiB" and fs and lim("fdatasync_16KiB")
            and fs > 4 * lim("fdatasync_16KiB")):
        notes.append("- fdatasync costs little per call at 1 MiB on this disk, so the "
                     "fdatasync-every-1-MiB figure is close to raw write bandwidth; a "
                     "producer's requests (up to 1 MB, often less) sync smaller batches.")
    lines = ["## Targets", "",
             "Issue 6's targets, from this run (ratios within the same run).", "",
             "| target | this run | |", "|---|---|---|", *rows, ""]
    if notes:
        lines += [*notes, ""]
    return lines


def plot(results: dict, plots_dir: Path) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plots")
        return []
    plots_dir.mkdir(parents=True, exist_ok=True)
    brokers = results["brokers"]
    summary = results["summary"]
    made = []
    produce = [w for w in results["workloads"] if w["kind"] == "produce"]
    if produce:
        fig, ax = plt.subplots(figsize=(10, 4.5))
        width = 0.8 / len(brokers)
        for i, b in enumerate(brokers):
            xs, ys, lo, hi = [], [], [], []
            for j, w in enumerate(produce):
                s = summary.get(b, {}).get(w["key"], {}).get("MBps")
                if s:
                    xs.append(j + i * width)
                    ys.append(s["median"])
                    lo.append(s["median"] - s["min"])
                    hi.append(s["max"] - s["median"])
            ax.bar(xs, ys, width, yerr=[lo, hi], label=b, capsize=2)
        ax.set_xticks([j + width * (len(brokers) - 1) / 2 for j in range(len(produce))])
        ax.set_xticklabels([f"{w['size']}B\n{w['partitions']}p\n{w['label']}" for w in produce],
                           fontsize=7)
        ax.set_ylabel("MB/s")
        ax.set_title("Produce throughput (median, min–max)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plots_dir / "produce-throughput.png", dpi=110)
        plt.close(fig)
        made.append("produce-throughput.png")
    e2e = [w for w in results["workloads"] if w["kind"] == "e2e"]
    if e2e:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        pct = ["p50", "p99", "p99_9", "max"]
        for w in e2e:
            for b in brokers:
                s = summary.get(b, {}).get(w["key"], {})
                ys = [s[p]["median"] if s.get(p) else None for p in pct]
                linger = f", linger {w['linger']} ms" if "linger" in w else ""
                ax.plot(pct, ys, marker="o", label=f"{b} {w['mbps']} MB/s{linger}")
        ax.set_yscale("log")
        ax.set_ylabel("ms")
        ax.set_title("End-to-end latency percentiles (1 KiB records, acks=1)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(plots_dir / "e2e-latency.png", dpi=110)
        plt.close(fig)
        made.append("e2e-latency.png")
    return made


# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smaller data sets (minutes)")
    ap.add_argument("--smoke", action="store_true",
                    help="a tiny run of every step against Strom only, no report (CI)")
    ap.add_argument("--no-kafka", action="store_true")
    ap.add_argument("--no-limits", action="store_true")
    ap.add_argument("--only", default="",
                    help="comma-separated: limits,startup,startup_many,produce "
                         "(produce_fsync: only its flush-always half),e2e,backlog")
    ap.add_argument("--merge", action="store_true",
                    help="add this run's steps to the existing --results instead of replacing it")
    ap.add_argument("--strom", default=None, help="the strom binary (default: release build)")
    ap.add_argument("--classpath", default=str(ROOT / "compat/java/target/classpath.txt"))
    ap.add_argument("--out", default=str(ROOT / "docs/benchmarks.md"))
    ap.add_argument("--results", default=None, help="JSON of every run (default: beside --out)")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite --out and its plots from --results without running anything")
    args = ap.parse_args()
    out = Path(args.out)
    results_path = Path(args.results) if args.results else out.with_suffix(".json")
    if args.report_only:
        results = json.loads(results_path.read_text())
        plots_dir = out.parent / "benchmarks"
        results["plots"] = plot(results, plots_dir)
        write_report(results, out, plots_dir)
        return

    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    strom_bin = Path(args.strom) if args.strom else target / "release/strom"
    if not strom_bin.exists():
        sys.exit(f"{strom_bin} not found: cargo build --release -p strom")
    only = set(filter(None, args.only.split(",")))
    want = (lambda step: not only or step in only)
    if args.smoke:
        args.no_kafka, args.no_limits, args.runs = True, True, 1
    scale = 1 if not (args.quick or args.smoke) else 0
    produce_bytes = 1_000_000_000 if scale else (50 * MB if args.smoke else 300 * MB)
    backlog_bytes = 5_000_000_000 if scale else (20 * MB if args.smoke else 1_000_000_000)
    e2e_seconds = 30 if scale else (3 if args.smoke else 10)

    classpath = None
    if not args.no_kafka:
        cp_file = Path(args.classpath)
        if not cp_file.exists():
            sys.exit(f"{cp_file} not found: (cd compat/java && mvn -q dependency:build-classpath "
                     "-Dmdep.outputFile=target/classpath.txt), or --no-kafka")
        classpath = cp_file.read_text().strip()
    brokers = ["strom"] + ([] if args.no_kafka else ["kafka"])

    work = Path(tempfile.mkdtemp(prefix="strom-bench-", dir=os.environ.get("TMPDIR")))
    client = Client(strom_bin)
    results = {
        "machine": f"{platform.node()}: {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                   f"{platform.platform()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["scripts/bench/suite.py", *sys.argv[1:]]),
        "runs": args.runs, "brokers": brokers, "runs_raw": [], "summary": {},
        "workloads": [],
    }
    try:
        if want("limits") and not args.no_limits:
            results["limits"] = physical_limits(work, "2G" if scale else "512M",
                                                10 if scale else 5)

        def start(name):
            if name == "strom":
                return Strom(strom_bin, work / f"strom-{uuid.uuid4().hex[:6]}")
            return Kafka(classpath, work / f"kafka-{uuid.uuid4().hex[:6]}")

        for b in brokers:
            results["summary"][b] = {}
        if want("startup"):
            for b in brokers:
                times, rss = [], []
                for _ in range(args.runs):
                    broker = start(b)
                    time.sleep(1.0)
                    times.append(broker.startup_s)
                    rss.append(proc_status(broker.pid, "VmRSS"))
                    broker.stop()
                results["summary"][b]["startup_s"] = statistics.median(times)
                results["summary"][b]["idle_rss"] = statistics.median(rss)
                log(f"{b}: start-up {statistics.median(times):.3f} s, idle RSS "
                    f"{statistics.median(rss) / MB:.1f} MB")

        if want("startup_many"):
            results["startup_many"] = startup_many(
                client, strom_bin, work, 1000,
                10_000_000_000 if scale else (10 * MB if args.smoke else 1_000_000_000),
                args.runs)

        workloads = []
        if want("produce") or want("produce_fsync"):
            sizes = [100, 1024, 16384] if not args.smoke else [1024]
            parts = [1, 16] if not args.smoke else [1]
            for size in sizes:
                for p in parts:
                    if want("produce"):
                        workloads.append({"kind": "produce", "size": size, "partitions": p,
                                          "acks": "1", "flush": False, "label": "1",
                                          "limit": "buffered_write_fsync"})
                    workloads.append({"kind": "produce", "size": size, "partitions": p,
                                      "acks": "all", "flush": True, "label": "all+fsync",
                                      "limit": "fdatasync_1MiB"})
        if want("e2e"):
            for mbps in ([5, 50] if not args.smoke else [1]):
                workloads.append({"kind": "e2e", "mbps": mbps, "size": 1024})
                if not args.smoke:
                    # Tuned for latency: librdkafka's default linger (5 ms)
                    # alone puts p50 near 4 ms.
                    workloads.append({"kind": "e2e", "mbps": mbps, "size": 1024,
                                      "linger": 1})
        if want("backlog"):
            workloads.append({"kind": "backlog", "bytes": backlog_bytes})
        for w in workloads:
            w["key"] = "-".join(str(w[k]) for k in ("kind", "size", "partitions", "acks",
                                                      "mbps", "linger", "bytes") if k in w)
        results["workloads"] = workloads

        # One broker instance each for the matrix; alternate runs between them.
        running = {b: start(b) for b in brokers}
        try:
            for w in workloads:
                per = {b: [] for b in brokers}
                backlogs = {}
                for run in range(args.runs):
                    for b in brokers:
                        broker = running[b]
                        log(f"{w['key']} run {run + 1}/{args.runs} on {b}")
                        if w["kind"] == "produce":
                            r = produce_run(client, broker, w["size"], w["partitions"],
                                            w["acks"], produce_bytes, w["flush"])
                        elif w["kind"] == "e2e":
                            r = e2e_run(client, broker, w["size"], w["mbps"], e2e_seconds,
                                        w.get("linger"))
                        else:
                            if b not in backlogs:
                                backlogs[b] = produce_backlog(client, broker, w["bytes"])
                            r = backlog_run(client, broker, *backlogs[b])
                        r.update({"broker": b, "workload": w["key"], "run": run})
                        results["runs_raw"].append(r)
                        per[b].append(r)
                for b in brokers:
                    rs = per[b]
                    s = {}
                    if w["kind"] == "produce":
                        s["bytes_per_fsync"] = median_spread(
                            [r.get("bytes_per_fsync") for r in rs])
                    if w["kind"] in ("produce", "backlog"):
                        s["MBps"] = median_spread([r["MBps"] for r in rs])
                        s["cpu_s_per_GB"] = median_spread([r.get("cpu_s_per_GB") for r in rs])
                        s["written_per_produced"] = median_spread(
                            [r.get("written_per_produced") for r in rs])
                    if w["kind"] == "e2e":
                        for p in ("p50", "p99", "p99_9", "max"):
                            s[p] = median_spread([r["latency_ms"].get(p) for r in rs])
                    results["summary"][b][w["key"]] = s
                    log(f"  {b}: {json.dumps(s)}")
            for b in brokers:
                results["summary"][b]["peak_rss"] = proc_status(running[b].pid, "VmHWM")
        finally:
            for broker in running.values():
                broker.stop()
        if not args.no_limits:
            # fdatasync bandwidth at the bytes per fsync Strom did in each
            # flush-always workload: the limit that workload is held to.
            for w in workloads:
                per = results["summary"]["strom"].get(w["key"], {}).get("bytes_per_fsync")
                if w.get("flush") and per:
                    bs = max(4096, int(per["median"]) // 4096 * 4096)
                    name = f"fdatasync_at_{w['key']}"
                    results.setdefault("limits", {})[name] = dict(fio(work, name, [
                        "--rw=write", f"--bs={bs}", "--size=256M", "--fdatasync=1",
                        "--runtime=10"]), bs=bs)
                    w["limit"] = name
                    log(f"  {name} (bs {bs}): {results['limits'][name]['MBps']:.1f} MB/s")
            (work / "fio.data").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.smoke:
        for r in results["runs_raw"]:
            assert r.get("failed", 0) == 0, r
        print(json.dumps(results["summary"], indent=1))
        return
    if args.merge and results_path.exists():
        # Keep the earlier run's steps; this run's replace theirs.
        old = json.loads(results_path.read_text())
        if "startup_many" in results:
            old["startup_many"] = results["startup_many"]
        old.setdefault("limits", {}).update(results.get("limits", {}))
        for b, summary in results["summary"].items():
            merged = old["summary"].setdefault(b, {})
            peak = max(merged.get("peak_rss", 0), summary.get("peak_rss", 0))
            merged.update(summary)
            if peak:
                merged["peak_rss"] = peak
        keys = {w["key"] for w in results["workloads"]}
        old["workloads"] = [w for w in old["workloads"] if w["key"] not in keys] + \
            results["workloads"]
        old["runs_raw"] = [r for r in old["runs_raw"] if r["workload"] not in keys] + \
            results["runs_raw"]
        old.setdefault("merged", []).append(
            {"command": results["command"], "date": results["date"]})
        results = old
    plots_dir = out.parent / "benchmarks"
    results["plots"] = plot(results, plots_dir)
    results_path.write_text(json.dumps(results, indent=1))
    write_report(results, out, plots_dir)


if __name__ == "__main__":
    main()
