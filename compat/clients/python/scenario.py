"""The one produce/consume scenario that every Python client runs.

Each client test module produces `make_records()` with its own client, reads
the partitions back from the beginning and hands what it read to
`check_partitions()`. The records cover the awkward cases: null and empty
values, a null key, records with and without headers (including a repeated
header key and an empty header value), binary payloads, explicit partitions
and explicit CreateTime timestamps, so that offsets-for-times has known
answers.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

PARTITIONS = 3
RECORD_COUNT = 100

# Indexes of the records with special content, so tests can name them.
NULL_VALUE = 7
EMPTY_VALUE = 8
NULL_KEY = 11
DUPLICATE_HEADER_KEYS = 12
EMPTY_HEADER_VALUE = 16

# Codecs every Kafka broker accepts in a v2 record batch.
ALL_CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


@dataclass(frozen=True)
class Record:
    """A record as produced (and as it must be read back)."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


@dataclass(frozen=True)
class Consumed:
    """A record as a client read it back, normalised across clients."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_records(base_ts_ms: int | None = None) -> list[Record]:
    """RECORD_COUNT records spread round-robin over PARTITIONS partitions.

    Record i has timestamp base + 10*i, so timestamps rise within every
    partition and lie 30 ms apart there, which leaves gaps to query into.
    """
    if base_ts_ms is None:
        # A fixed point in the past keeps CreateTime well clear of any
        # retention check while staying a realistic epoch-millis value.
        base_ts_ms = int(time.time() * 1000) - 3_600_000
    records = []
    for i in range(RECORD_COUNT):
        key: bytes | None = f"key-{i:03d}".encode()
        # Repetitive text compresses; the binary tail checks byte fidelity.
        value: bytes | None = (f"value-{i:03d} ".encode() * (1 + i % 7)) + bytes(
            (i * 7 + j) % 256 for j in range(i % 13)
        )
        headers: tuple[tuple[str, bytes], ...] = ()
        if i % 4 == 0:
            headers = (("source", b"strom-compat"), ("seq", str(i).encode()))
        if i == NULL_VALUE:
            value = None
        if i == EMPTY_VALUE:
            value = b""
        if i == NULL_KEY:
            key = None
        if i == DUPLICATE_HEADER_KEYS:
            headers = (("dup", b"first"), ("dup", b"second"), ("other", b"\x00\xff"))
        if i == EMPTY_HEADER_VALUE:
            headers = (("empty", b""),)
        records.append(
            Record(
                partition=i % PARTITIONS,
                key=key,
                value=value,
                headers=headers,
                timestamp_ms=base_ts_ms + 10 * i,
            )
        )
    return records


def by_partition(records):
    out = defaultdict(list)
    for r in records:
        out[r.partition].append(r)
    return out


def expected_offsets(records: list[Record]) -> list[int]:
    """The offset each record must get in a fresh topic, in produce order."""
    next_offset: dict[int, int] = defaultdict(int)
    offsets = []
    for r in records:
        offsets.append(next_offset[r.partition])
        next_offset[r.partition] += 1
    return offsets


def check_partitions(expected: list[Record], consumed: list[Consumed]) -> None:
    """Every partition holds exactly its records, at offsets 0..n-1, in order."""
    want = by_partition(expected)
    got = by_partition(consumed)
    assert sorted(got) == sorted(want), f"partitions read {sorted(got)}, want {sorted(want)}"
    for p, want_p in want.items():
        got_p = got[p]
        offsets = [c.offset for c in got_p]
        assert offsets == list(range(len(want_p))), f"partition {p}: offsets {offsets}"
        for w, g in zip(want_p, got_p):
            where = f"partition {p} offset {g.offset}"
            assert g.key == w.key, f"{where}: key {g.key!r}, want {w.key!r}"
            assert g.value == w.value, f"{where}: value {g.value!r}, want {w.value!r}"
            assert g.headers == w.headers, f"{where}: headers {g.headers!r}, want {w.headers!r}"
            assert (
                g.timestamp_ms == w.timestamp_ms
            ), f"{where}: timestamp {g.timestamp_ms}, want {w.timestamp_ms}"


def offset_for_time(expected: list[Record], partition: int, ts_ms: int) -> int | None:
    """What ListOffsets by timestamp must answer: the first offset whose
    timestamp is >= ts_ms, or None when there is none."""
    for offset, r in enumerate(r for r in expected if r.partition == partition):
        if r.timestamp_ms >= ts_ms:
            return offset
    return None


def time_queries(expected: list[Record]) -> list[list[tuple[int, int]]]:
    """Rounds of (partition, timestamp) queries worth asking, one query per
    partition in each round (a partition may appear only once in a
    ListOffsets request): before everything, exactly on a record, between
    two records, on the last record, and after everything."""
    first = min(r.timestamp_ms for r in expected)
    last = max(r.timestamp_ms for r in expected)
    mine = by_partition(expected)
    partitions = sorted(mine)
    return [
        [(p, first - 60_000) for p in partitions],
        [(p, mine[p][5].timestamp_ms) for p in partitions],
        [(p, mine[p][5].timestamp_ms + 1) for p in partitions],  # between 5 and 6
        [(p, mine[p][-1].timestamp_ms) for p in partitions],
        [(p, last + 60_000) for p in partitions],
    ]


# --- I: the idempotent producer ------------------------------------------
# IDEMPOTENT_PER_PARTITION records to each of PARTITIONS partitions,
# interleaved, in small batches so that several are in flight at once.
IDEMPOTENT_PER_PARTITION = 200


def idempotent_records(base_ts_ms: int | None = None) -> list[Record]:
    """Record j of partition p has key k-p-j and value idem-p-j, so any
    duplicate or reordering shows in what is read back."""
    if base_ts_ms is None:
        base_ts_ms = int(time.time() * 1000) - 3_600_000
    out = []
    for i in range(PARTITIONS * IDEMPOTENT_PER_PARTITION):
        p, j = i % PARTITIONS, i // PARTITIONS
        out.append(
            Record(
                partition=p,
                key=f"k-{p}-{j:04d}".encode(),
                value=f"idem-p{p}-{j:04d}".encode(),
                headers=(),
                timestamp_ms=base_ts_ms + i,
            )
        )
    return out


def check_exactly_once(expected: list[Record], consumed: list[Consumed]) -> None:
    """Exactly the records produced: the same count, no value twice, and in
    every partition the produce order at contiguous offsets 0..n-1."""
    values = [c.value for c in consumed]
    dups = sorted({v for v in values if values.count(v) > 1})
    assert not dups, f"read more than once: {dups[:5]}"
    assert len(consumed) == len(expected), f"read {len(consumed)} records, want {len(expected)}"
    check_partitions(expected, consumed)


# --- X: transactions -----------------------------------------------------
# One transaction commits TXN_COMMITTED records to each of TXN_PARTITIONS
# partitions, the next aborts TXN_ABORTED more. Each partition then holds
# the committed records at 0..C-1, the COMMIT marker at C, the aborted
# records at C+1..C+A and the ABORT marker at C+A+1.
TXN_PARTITIONS = 2
TXN_COMMITTED = 3
TXN_ABORTED = 2
TXN_END_OFFSET = TXN_COMMITTED + 1 + TXN_ABORTED + 1
# Where the client can, each transaction also commits a consumer group's
# offset of partition 0 of an input topic: the committed one this, the
# aborted one that (which must never become the group's offset).
TXN_GROUP_OFFSET_COMMITTED = 5
TXN_GROUP_OFFSET_ABORTED = 10


def txn_value(kind: str, partition: int, i: int) -> bytes:
    return f"{kind}-p{partition}-{i}".encode()


def txn_expected(read_committed: bool) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) a consumer must read, per partition in offset order."""
    out = []
    for p in range(TXN_PARTITIONS):
        out += [(p, i, txn_value("commit", p, i)) for i in range(TXN_COMMITTED)]
        if not read_committed:
            out += [(p, TXN_COMMITTED + 1 + i, txn_value("abort", p, i)) for i in range(TXN_ABORTED)]
    return out


def check_txn_read(consumed: list[Consumed], read_committed: bool) -> None:
    want = txn_expected(read_committed)
    got = [(c.partition, c.offset, c.value) for c in consumed]
    # Partitions interleave differently from client to client; within one,
    # the order is the log's.
    got.sort(key=lambda t: t[0])
    level = "read_committed" if read_committed else "read_uncommitted"
    assert got == want, f"{level} read {got}, want {want}"
