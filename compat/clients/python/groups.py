"""What the consumer-group tests of every Python client share.

The records are plain: record i of a partition has key `k-P-I` and value
`PHASE-P-I`, so any record read back names where it must have come from. A
phase is one round of producing; the offsets a phase gets are known from the
counts of the phases before it.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest

PARTITIONS = 4
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Got:
    """One record as a group member received it."""

    member: str
    partition: int
    offset: int
    value: bytes


@dataclass
class Phase:
    """Records produced in one round: `per_partition` to each partition,
    starting at offset `start` (the same in every partition)."""

    name: str
    start: int
    per_partition: int
    expected: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def __post_init__(self):
        for p in range(PARTITIONS):
            for i in range(self.per_partition):
                self.expected[(p, self.start + i)] = self.value(p, i)

    def key(self, p: int, i: int) -> bytes:
        return f"k-{p}-{i}".encode()

    def value(self, p: int, i: int) -> bytes:
        return f"{self.name}-{p}-{i}".encode()

    @property
    def end(self) -> int:
        """The log end offset of every partition after this phase."""
        return self.start + self.per_partition


def phases(*counts: int) -> list[Phase]:
    out, start = [], 0
    for n, count in enumerate(counts):
        out.append(Phase(f"phase{n}", start, count))
        start += count
    return out


def wait_until(predicate, what: str, timeout_s: float = TIMEOUT_S, step=None):
    """Poll `predicate` (after `step()`, when given) until it is truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        if step is not None:
            step()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        if step is None:
            time.sleep(0.1)


def check_split(assignments: dict[str, set[int]]) -> None:
    """Every member owns some partitions, no partition is owned twice, and
    together they own all of them."""
    for member, parts in assignments.items():
        assert parts, f"{member} was assigned nothing: {assignments}"
    counts = Counter(p for parts in assignments.values() for p in parts)
    twice = sorted(p for p, n in counts.items() if n > 1)
    assert not twice, f"partitions {twice} assigned to more than one member: {assignments}"
    assert sorted(counts) == list(range(PARTITIONS)), f"not every partition assigned: {assignments}"


def check_exactly_once(got: list[Got], phase: Phase, only_members: set[str] | None = None) -> dict:
    """`got` holds each record of `phase` exactly once and nothing else.

    Returns {member: partitions it received records from}; no partition may
    have reached two members."""
    seen: dict[tuple[int, int], Got] = {}
    dups = []
    for g in got:
        where = (g.partition, g.offset)
        if where in seen:
            dups.append((seen[where], g))
        seen[where] = g
    assert not dups, f"{len(dups)} records delivered twice, e.g. {dups[:3]}"
    unexpected = sorted(set(seen) - set(phase.expected))
    assert not unexpected, (
        f"records outside {phase.name} delivered (partition, offset): {unexpected[:10]}"
    )
    missing = sorted(set(phase.expected) - set(seen))
    assert not missing, f"{len(missing)} records of {phase.name} never delivered: {missing[:10]}"
    for where, g in seen.items():
        assert g.value == phase.expected[where], f"{where}: value {g.value!r}, want {phase.expected[where]!r}"

    by_member: dict[str, set[int]] = defaultdict(set)
    for g in got:
        by_member[g.member].add(g.partition)
    if only_members is not None:
        assert set(by_member) <= only_members, f"records went to {sorted(by_member)}"
    owners = defaultdict(set)
    for member, parts in by_member.items():
        for p in parts:
            owners[p].add(member)
    shared = {p: sorted(m) for p, m in owners.items() if len(m) > 1}
    assert not shared, f"partitions consumed by more than one member: {shared}"
    return dict(by_member)
