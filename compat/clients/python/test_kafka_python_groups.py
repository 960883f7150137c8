"""kafka-python consumer groups (classic protocol) against a running Strom broker.

Two KafkaConsumers subscribe with one group_id and split a 4-partition topic;
they commit; one leaves and the other takes over from the committed offsets;
then both are gone and a new member resumes exactly where the group left
off. KafkaAdminClient lists and describes the group, reads its committed
offsets and deletes it.

A KafkaConsumer is not thread-safe, so each one lives in a thread of its own
(`Member`), which polls it and runs whatever else the test asks of it.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka import errors as Errors
from kafka.consumer.subscription_state import ConsumerRebalanceListener

import groups
import scenario
from groups import PARTITIONS, Got

TIMEOUT_MS = 15_000


class Listener(ConsumerRebalanceListener):
    def __init__(self, member: "Member"):
        self.member = member

    def on_partitions_revoked(self, revoked):
        with self.member.lock:
            self.member.owned -= {tp.partition for tp in revoked}

    def on_partitions_assigned(self, assigned):
        with self.member.lock:
            self.member.owned |= {tp.partition for tp in assigned}
            self.member.assignments += 1


class Member(threading.Thread):
    """A group member: a KafkaConsumer polled by its own thread."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str):
        super().__init__(name=f"member-{name}", daemon=True)
        self.member = name
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.lock = threading.Lock()
        self.got: list[Got] = []
        self.owned: set[int] = set()
        self.assignments = 0
        self.error: BaseException | None = None
        self.commands: queue.Queue = queue.Queue()
        self.start()

    def run(self):
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id=f"kafka-python-{self.member}",
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                # The broker's minimum; heartbeats often, so that rebalances
                # are noticed quickly.
                session_timeout_ms=6000,
                heartbeat_interval_ms=300,
                request_timeout_ms=TIMEOUT_MS,
            )
            consumer.subscribe([self.topic], listener=Listener(self))
        except BaseException as e:  # noqa: BLE001 - reported to the test
            self.error = e
            return
        try:
            while True:
                try:
                    fn, fut = self.commands.get_nowait()
                except queue.Empty:
                    fn = None
                if fn is not None:
                    try:
                        result = fn(consumer)
                    except BaseException as e:  # noqa: BLE001
                        fut.set_exception(e)
                    else:
                        fut.set_result(result)
                    if fn is Member._close:
                        return
                batch = consumer.poll(timeout_ms=100)
                with self.lock:
                    for msgs in batch.values():
                        for m in msgs:
                            self.got.append(Got(self.member, m.partition, m.offset, m.value))
        except BaseException as e:  # noqa: BLE001
            self.error = e
            consumer.close(autocommit=False)

    def call(self, fn, timeout_s: float = groups.TIMEOUT_S):
        """Run fn(consumer) in the member's thread and return its result."""
        self.check()
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.commands.put((fn, fut))
        return fut.result(timeout=timeout_s)

    @staticmethod
    def _close(consumer):
        consumer.close(autocommit=False)

    def close(self):
        if self.is_alive():
            self.call(Member._close)
            self.join(timeout=groups.TIMEOUT_S)

    def check(self):
        if self.error is not None:
            raise AssertionError(f"{self.member} failed: {self.error!r}") from self.error

    def snapshot(self) -> tuple[list[Got], set[int]]:
        self.check()
        with self.lock:
            return list(self.got), set(self.owned)


def produce(bootstrap: str, topic: str, phase: groups.Phase) -> None:
    # Idempotent: kafka-python 3.0's default (enable_idempotence=True).
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = []
        for p in range(PARTITIONS):
            for i in range(phase.per_partition):
                futures.append(
                    ((p, phase.start + i), producer.send(topic, key=phase.key(p, i), value=phase.value(p, i), partition=p))
                )
        producer.flush(timeout=TIMEOUT_MS / 1000)
        for want, fut in futures:
            md = fut.get(timeout=TIMEOUT_MS / 1000)
            assert (md.partition, md.offset) == want, f"produced at {(md.partition, md.offset)}, want {want}"
    finally:
        producer.close(timeout=5)


def received(members: list[Member], since: dict[str, int]) -> list[Got]:
    out = []
    for m in members:
        got, _ = m.snapshot()
        out.extend(got[since.get(m.member, 0):])
    return out


def wait_received(members, since, count, what):
    groups.wait_until(lambda: len(received(members, since)) >= count, what)
    # Anything more than expected would be a duplicate: give it a moment to show.
    time.sleep(0.5)
    return received(members, since)


def committed(admin: KafkaAdminClient, group: str, topic: str, metadata=False) -> dict:
    """{partition: offset} (or (offset, metadata)) as OffsetFetch answers it."""
    offsets = admin.list_group_offsets({group: None})[group]
    return {
        tp.partition: (om.offset, om.metadata) if metadata else om.offset
        for tp, om in offsets.items()
        if tp.topic == topic
    }


def group_ids(admin: KafkaAdminClient, **filters) -> set[str]:
    return {g["group_id"] for g in admin.list_groups(**filters)}


def test_consumer_group(bootstrap):
    topic = scenario.unique_topic("kafka-python-group")
    group = scenario.unique_topic("kafka-python-group")
    first, second, third = groups.phases(20, 10, 5)

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    members: list[Member] = []
    try:
        admin.create_topics(
            {topic: {"num_partitions": PARTITIONS, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS
        )

        # Two members join; the group splits the partitions between them.
        a = Member("a", bootstrap, group, topic)
        b = Member("b", bootstrap, group, topic)
        members = [a, b]

        def split():
            owned = {m.member: m.snapshot()[1] for m in members}
            if all(owned.values()) and sum(len(o) for o in owned.values()) == PARTITIONS:
                return owned
            return None

        owned = groups.wait_until(split, "both members to be assigned partitions")
        groups.check_split(owned)

        # Every record reaches exactly one member, and each partition one member.
        produce(bootstrap, topic, first)
        got = wait_received(members, {}, len(first.expected), "the first records")
        by_member = groups.check_exactly_once(got, first)
        assert set(by_member) == {"a", "b"}, f"only {sorted(by_member)} received records"
        for m in members:
            assert by_member[m.member] == m.snapshot()[1], (
                f"{m.member} received from {by_member[m.member]} but owns {m.snapshot()[1]}"
            )
        for m in members:
            m.call(lambda c: c.commit())
        assert committed(admin, group, topic) == {p: first.end for p in range(PARTITIONS)}

        # The admin view of a Stable group with its two members.
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert group in listed, f"{group} not in ListGroups: {sorted(listed)}"
        assert listed[group]["protocol_type"] == "consumer", listed[group]
        assert listed[group]["group_state"] == "Stable", listed[group]
        assert listed[group]["group_type"] == "classic", listed[group]
        assert group in group_ids(admin, states_filter=["Stable"])
        assert group not in group_ids(admin, states_filter=["Empty"])
        assert group in group_ids(admin, types_filter=["classic"])
        assert group not in group_ids(admin, types_filter=["consumer"])
        desc = admin.describe_groups([group])[group]
        assert desc["error"] is None, desc
        assert desc["group_state"] == "Stable", desc
        assert desc["protocol_type"] == "consumer", desc
        assert desc["protocol_data"] in ("range", "roundrobin"), desc
        described = {}
        for member in desc["members"]:
            # kafka-python decodes the consumer protocol's subscription and assignment.
            assert member["member_metadata"]["topics"] == [topic], member
            described[member["client_id"]] = {
                p
                for t in member["member_assignment"]["assigned_partitions"]
                if t["topic"] == topic
                for p in t["partitions"]
            }
        assert described == {
            "kafka-python-a": owned["a"],
            "kafka-python-b": owned["b"],
        }, f"DescribeGroups assignments {described}, members own {owned}"
        # A group with members cannot be deleted, nor the offsets of a topic
        # it subscribes to.
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}
        tp0 = TopicPartition(topic, 0)
        assert admin.delete_group_offsets(group, [tp0]) == {tp0: Errors.GroupSubscribedToTopicError}
        assert committed(admin, group, topic) == {p: first.end for p in range(PARTITIONS)}

        # b leaves; a takes over b's partitions from b's committed offsets.
        since = {"a": len(a.snapshot()[0])}
        b.close()
        members = [a]
        groups.wait_until(
            lambda: a.snapshot()[1] == set(range(PARTITIONS)), "a to own every partition"
        )
        produce(bootstrap, topic, second)
        got = wait_received([a], since, len(second.expected), "the second records")
        groups.check_exactly_once(got, second)
        # Explicit offsets this time, with metadata, which comes back as committed.
        a.call(
            lambda c: c.commit(
                {
                    TopicPartition(topic, p): OffsetAndMetadata(second.end, f"meta-{p}", -1)
                    for p in range(PARTITIONS)
                }
            )
        )
        assert committed(admin, group, topic, metadata=True) == {
            p: (second.end, f"meta-{p}") for p in range(PARTITIONS)
        }
        a.close()
        members = []

        # Nobody is left; a new member resumes exactly at the committed offsets.
        desc = admin.describe_groups([group])[group]
        assert desc["group_state"] == "Empty" and desc["members"] == [], desc
        produce(bootstrap, topic, third)
        c = Member("c", bootstrap, group, topic)
        members = [c]
        got = wait_received([c], {}, len(third.expected), "the third records")
        groups.check_exactly_once(got, third)
        assert c.snapshot()[1] == set(range(PARTITIONS))
        c.close()
        members = []

        # The committed offsets outlive the members; those of an empty group
        # can be deleted one by one, or with the group.
        assert committed(admin, group, topic) == {p: second.end for p in range(PARTITIONS)}
        assert admin.delete_group_offsets(group, [tp0]) == {tp0: Errors.NoError}
        assert committed(admin, group, topic) == {p: second.end for p in range(1, PARTITIONS)}
        assert admin.delete_groups([group]) == {group: "OK"}
        assert group not in {g["group_id"] for g in admin.list_groups()}
        assert committed(admin, group, topic) == {}
    finally:
        for m in members:
            try:
                m.close()
            except Exception:  # noqa: BLE001 - already failing
                pass
        try:
            admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
        except Exception:  # noqa: BLE001
            pass
        admin.close()
