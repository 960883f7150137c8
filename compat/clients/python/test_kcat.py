"""Debian's kcat (librdkafka 2.0.x, an old client) against a running Strom broker.

kcat has no admin commands: its topics are auto-created by the broker
(auto.create.topics.enable=true, num.partitions=1) on first produce.
"""

from __future__ import annotations

import json
import subprocess

import pytest

import scenario

TIMEOUT_S = 30


def run_kcat(kcat: str, bootstrap: str, *args: str, stdin: str | None = None, check=True):
    cmd = [kcat, "-b", bootstrap, "-X", "socket.timeout.ms=10000", *args]
    proc = subprocess.run(
        cmd, input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def produce(kcat, bootstrap, topic, lines, *extra):
    run_kcat(
        kcat, bootstrap, "-P", "-t", topic, "-p", "0", "-K", ":",
        "-X", "acks=all", *extra, stdin="".join(f"{line}\n" for line in lines),
    )


def consume(kcat, bootstrap, topic, fmt, *extra) -> list[str]:
    proc = run_kcat(kcat, bootstrap, "-C", "-t", topic, "-e", "-f", fmt, *extra)
    return proc.stdout.splitlines()


def metadata(kcat, bootstrap, topic=None) -> dict:
    args = ["-L", "-J"] + (["-t", topic] if topic else [])
    return json.loads(run_kcat(kcat, bootstrap, *args).stdout)


RECORDS = [(f"key-{i:02d}", f"value-{i:02d}-" + "x" * (i % 9)) for i in range(50)] + [
    ("key-empty", "")
]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_consume_keys(kcat, bootstrap, codec):
    topic = scenario.unique_topic(f"kcat-{codec}")
    compression = [] if codec == "none" else ["-z", codec]
    produce(kcat, bootstrap, topic, [f"{k}:{v}" for k, v in RECORDS], *compression)

    got = consume(kcat, bootstrap, topic, "%k:%s:%S:%p:%o\n", "-o", "beginning")
    want = [f"{k}:{v}:{len(v)}:0:{o}" for o, (k, v) in enumerate(RECORDS)]
    assert got == want

    # Start at an absolute offset, and relative to the end (ListOffsets latest).
    got = consume(kcat, bootstrap, topic, "%k:%o\n", "-p", "0", "-o", "20", "-c", "3")
    assert got == [f"key-{o}:{o}" for o in (20, 21, 22)]
    got = consume(kcat, bootstrap, topic, "%k:%o\n", "-p", "0", "-o", "-2")
    assert got == ["key-49:49", "key-empty:50"]


def test_null_value_and_headers(kcat, bootstrap):
    topic = scenario.unique_topic("kcat-null-headers")
    # -Z: an empty value is sent as NULL.
    produce(kcat, bootstrap, topic, ["k-null:", "k-0:v0"], "-Z")
    produce(kcat, bootstrap, topic, ["k-1:v1", "k-2:v2"], "-H", "trace=abc", "-H", "n=1")
    got = consume(kcat, bootstrap, topic, "%k|%S|%s|%h|%o\n", "-o", "beginning", "-Z")
    assert got == [
        "k-null|-1|NULL||0",
        "k-0|2|v0||1",
        "k-1|2|v1|trace=abc,n=1|2",
        "k-2|2|v2|trace=abc,n=1|3",
    ]


def test_metadata_json(kcat, bootstrap):
    topic = scenario.unique_topic("kcat-metadata")
    produce(kcat, bootstrap, topic, ["k:v"])
    md = metadata(kcat, bootstrap, topic)
    assert len(md["brokers"]) == 1, md
    broker_id = md["brokers"][0]["id"]
    host, port = bootstrap.rsplit(":", 1)
    assert md["brokers"][0]["name"] == f"{host}:{port}", md
    topics = {t["topic"]: t for t in md["topics"]}
    assert topic in topics, md
    t = topics[topic]
    assert "error" not in t, t
    assert len(t["partitions"]) == 1, t
    p = t["partitions"][0]
    assert p["partition"] == 0 and p["leader"] == broker_id, p
    assert [r["id"] for r in p["replicas"]] == [broker_id]
    assert [r["id"] for r in p["isrs"]] == [broker_id]

    # Whole-cluster metadata lists it too.
    assert topic in {t["topic"] for t in metadata(kcat, bootstrap)["topics"]}


def test_offsets_for_times(kcat, bootstrap):
    topic = scenario.unique_topic("kcat-times")
    for batch in range(3):
        produce(kcat, bootstrap, topic, [f"k{batch}-{i}:v" for i in range(5)])
    rows = consume(kcat, bootstrap, topic, "%o %T\n", "-o", "beginning")
    stamps = [int(row.split()[1]) for row in rows]
    assert [int(row.split()[0]) for row in rows] == list(range(15))
    assert stamps == sorted(stamps), f"CreateTime went backwards: {stamps}"

    for query in (stamps[0] - 1000, stamps[7], stamps[-1]):
        proc = run_kcat(kcat, bootstrap, "-Q", "-t", f"{topic}:0:{query}")
        want = next(o for o, ts in enumerate(stamps) if ts >= query)
        # kcat prints e.g. "topic [0]  offset 7"
        assert f"offset {want}" in proc.stdout.split("[0]", 1)[-1].strip(), (query, proc.stdout)


def test_produce_to_invalid_topic_name(kcat, bootstrap):
    proc = run_kcat(
        kcat, bootstrap, "-P", "-t", "bad topic!", "-X", "message.timeout.ms=5000",
        stdin="k:v\n", check=False,
    )
    assert proc.returncode != 0, f"kcat accepted 'bad topic!':\n{proc.stdout}\n{proc.stderr}"
    assert "Invalid topic" in proc.stderr or "TOPIC_EXCEPTION" in proc.stderr, proc.stderr
