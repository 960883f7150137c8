"""confluent-kafka (librdkafka) consumer groups against a running Strom broker,
with both of Kafka's group protocols: the classic one (JoinGroup/SyncGroup,
assignment by the group leader) and KIP-848's consumer protocol
(`group.protocol=consumer`: ConsumerGroupHeartbeat, assignment by the broker).

Two members split a 4-partition topic with no partition owned by both at
any moment; every record reaches exactly one of them; they commit; one
leaves and the other takes over from the committed offsets; then a new
member resumes exactly where the group left off. The AdminClient lists and
describes the group, reads its committed offsets and deletes it.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

import groups
import scenario
from groups import PARTITIONS, Got

TIMEOUT = 15.0


class Member:
    """One group member. All members are polled from the test's thread, in
    turn, so what they own can be compared between polls."""

    def __init__(self, name: str, bootstrap: str, group: str, topic: str, protocol: str, assignor):
        self.member = name
        self.client_id = f"confluent-{protocol}-{name}"
        self.got: list[Got] = []
        self.owned: set[int] = set()
        config = {
            "bootstrap.servers": bootstrap,
            "client.id": self.client_id,
            "group.id": group,
            "group.protocol": protocol,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
        if protocol == "classic":
            # The broker's minimum; heartbeats often, so that rebalances are
            # noticed quickly. (KIP-848 leaves both to the broker.)
            config.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
            if assignor is not None:
                config["partition.assignment.strategy"] = assignor
        self.consumer = Consumer(config)
        self.consumer.subscribe(
            [topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_revoke
        )
        self.closed = False

    def _on_assign(self, consumer, partitions):
        # Eager (classic range/roundrobin): the full assignment; incremental
        # (cooperative-sticky, KIP-848): the partitions added. Either way,
        # they are now owned.
        self.owned |= {tp.partition for tp in partitions}

    def _on_revoke(self, consumer, partitions):
        self.owned -= {tp.partition for tp in partitions}

    def poll(self, timeout: float = 0.05) -> None:
        msg = self.consumer.poll(timeout)
        while msg is not None:
            err = msg.error()
            if err is not None:
                raise AssertionError(f"{self.member}: consume error {err}")
            self.got.append(Got(self.member, msg.partition(), msg.offset(), msg.value()))
            msg = self.consumer.poll(0)

    def commit(self) -> None:
        # Commits the consumed positions of what it owns.
        self.consumer.commit(asynchronous=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.consumer.close()


class Group:
    """The members of the group under test, polled together; checks after
    every round of polls that no partition is owned by two members."""

    def __init__(self):
        self.members: list[Member] = []

    def step(self) -> None:
        for m in self.members:
            m.poll()
        owners: dict[int, list[str]] = {}
        for m in self.members:
            for p in m.owned:
                owners.setdefault(p, []).append(m.member)
        shared = {p: o for p, o in owners.items() if len(o) > 1}
        assert not shared, f"partitions owned by two members at once: {shared}"

    def wait(self, predicate, what: str):
        return groups.wait_until(predicate, what, step=self.step)

    def received(self, since: dict[str, int]) -> list[Got]:
        return [g for m in self.members for g in m.got[since.get(m.member, 0):]]

    def wait_received(self, since: dict[str, int], count: int, what: str) -> list[Got]:
        self.wait(lambda: len(self.received(since)) >= count, what)
        # Anything more than expected would be a duplicate: give it a moment to show.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            self.step()
        return self.received(since)

    def leave(self, member: Member) -> None:
        member.close()
        self.members.remove(member)

    def close(self) -> None:
        for m in self.members:
            m.close()
        self.members = []


def produce(bootstrap: str, topic: str, phase: groups.Phase) -> None:
    # enable.idempotence at librdkafka's default (false).
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    reports = []
    for p in range(PARTITIONS):
        for i in range(phase.per_partition):
            producer.produce(
                topic,
                key=phase.key(p, i),
                value=phase.value(p, i),
                partition=p,
                on_delivery=lambda err, msg: reports.append((err, msg.partition(), msg.offset())),
            )
    assert producer.flush(TIMEOUT) == 0, "records left undelivered"
    errors = [r for r in reports if r[0] is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    assert sorted((p, o) for _, p, o in reports) == sorted(phase.expected)


def committed(admin: AdminClient, group: str, topic: str, metadata: bool = False) -> dict:
    """{partition: offset} (or (offset, metadata)) as OffsetFetch answers it."""
    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    result = fut.result(timeout=TIMEOUT)
    assert result.group_id == group
    out = {}
    for tp in result.topic_partitions:
        assert tp.error is None, f"{tp}: {tp.error}"
        if tp.topic == topic:
            out[tp.partition] = (tp.offset, tp.metadata) if metadata else tp.offset
    return out


def listed(admin: AdminClient, **filters) -> dict:
    result = admin.list_consumer_groups(request_timeout=TIMEOUT, **filters).result(timeout=TIMEOUT)
    assert not result.errors, result.errors
    return {g.group_id: g for g in result.valid}


def describe(admin: AdminClient, group: str):
    return admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(
        timeout=TIMEOUT
    )


@pytest.mark.parametrize(
    "protocol,assignor",
    [
        ("classic", None),  # librdkafka's default: range,roundrobin (eager)
        ("classic", "cooperative-sticky"),  # incremental rebalancing
        ("consumer", None),  # KIP-848: the broker assigns
    ],
    ids=["classic-eager", "classic-cooperative", "consumer"],
)
def test_consumer_group(bootstrap, protocol, assignor):
    name = f"confluent-group-{protocol}-{assignor or 'default'}"
    topic = scenario.unique_topic(name)
    group_id = scenario.unique_topic(name)
    group_type = ConsumerGroupType.CLASSIC if protocol == "classic" else ConsumerGroupType.CONSUMER
    other_type = ConsumerGroupType.CONSUMER if protocol == "classic" else ConsumerGroupType.CLASSIC
    first, second, third = groups.phases(20, 10, 5)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[
        topic
    ].result(timeout=TIMEOUT)
    group = Group()
    try:
        # Two members join; the group splits the partitions between them.
        a = Member("a", bootstrap, group_id, topic, protocol, assignor)
        b = Member("b", bootstrap, group_id, topic, protocol, assignor)
        group.members = [a, b]

        def split():
            owned = {m.member: set(m.owned) for m in group.members}
            if all(owned.values()) and sum(len(o) for o in owned.values()) == PARTITIONS:
                return owned
            return None

        owned = group.wait(split, "both members to be assigned partitions")
        groups.check_split(owned)
        for m in group.members:
            assert {tp.partition for tp in m.consumer.assignment()} == m.owned

        # Every record reaches exactly one member, and each partition one member.
        produce(bootstrap, topic, first)
        got = group.wait_received({}, len(first.expected), "the first records")
        by_member = groups.check_exactly_once(got, first)
        assert by_member == owned, f"received from {by_member}, owned {owned}"
        for m in group.members:
            m.commit()
        assert committed(admin, group_id, topic) == {p: first.end for p in range(PARTITIONS)}

        # The admin view of a Stable group with its two members.
        everything = listed(admin)
        assert group_id in everything, f"{group_id} not listed: {sorted(everything)}"
        listing = everything[group_id]
        assert listing.state == ConsumerGroupState.STABLE, listing.state
        assert listing.type == group_type, listing.type
        assert not listing.is_simple_consumer_group
        assert group_id in listed(admin, states={ConsumerGroupState.STABLE})
        assert group_id not in listed(admin, states={ConsumerGroupState.EMPTY})
        assert group_id in listed(admin, types={group_type})
        assert group_id not in listed(admin, types={other_type})

        desc = describe(admin, group_id)
        assert desc.group_id == group_id
        assert desc.state == ConsumerGroupState.STABLE, desc.state
        assert desc.type == group_type, desc.type
        assert not desc.is_simple_consumer_group
        if assignor is not None:
            assert desc.partition_assignor == assignor, desc.partition_assignor
        elif protocol == "classic":
            assert desc.partition_assignor in ("range", "roundrobin"), desc.partition_assignor
        else:
            # The broker's default server-side assignor (KIP-848).
            assert desc.partition_assignor == "uniform", desc.partition_assignor
        assert desc.coordinator is not None and desc.coordinator.id >= 0
        described = {}
        for member in desc.members:
            assert member.member_id, member
            assert member.host, member
            described[member.client_id] = {
                tp.partition for tp in member.assignment.topic_partitions if tp.topic == topic
            }
            if protocol == "consumer":
                target = {tp.partition for tp in member.target_assignment.topic_partitions}
                assert target == described[member.client_id], (
                    f"{member.client_id}: target {target}, assigned {described[member.client_id]}"
                )
        assert described == {a.client_id: owned["a"], b.client_id: owned["b"]}, (
            f"described assignments {described}, members own {owned}"
        )
        # A group with members cannot be deleted.
        with pytest.raises(KafkaException) as exc:
            admin.delete_consumer_groups([group_id], request_timeout=TIMEOUT)[group_id].result(
                timeout=TIMEOUT
            )
        assert exc.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, exc.value

        # b leaves; a takes over b's partitions from b's committed offsets.
        since = {"a": len(a.got)}
        group.leave(b)
        group.wait(lambda: a.owned == set(range(PARTITIONS)), "a to own every partition")
        produce(bootstrap, topic, second)
        got = group.wait_received(since, len(second.expected), "the second records")
        groups.check_exactly_once(got, second)
        # Explicit offsets this time, with metadata, which comes back as committed.
        a.consumer.commit(
            offsets=[TopicPartition(topic, p, second.end, f"meta-{p}") for p in range(PARTITIONS)],
            asynchronous=False,
        )
        assert committed(admin, group_id, topic, metadata=True) == {
            p: (second.end, f"meta-{p}") for p in range(PARTITIONS)
        }
        group.leave(a)

        # Nobody is left; a new member resumes exactly at the committed offsets.
        group.wait(
            lambda: describe(admin, group_id).state == ConsumerGroupState.EMPTY,
            "the group to be Empty",
        )
        assert describe(admin, group_id).members == []
        produce(bootstrap, topic, third)
        c = Member("c", bootstrap, group_id, topic, protocol, assignor)
        group.members = [c]
        got = group.wait_received({}, len(third.expected), "the third records")
        groups.check_exactly_once(got, third)
        assert c.owned == set(range(PARTITIONS))
        group.leave(c)

        # The committed offsets outlive the members; the group can go now.
        assert committed(admin, group_id, topic) == {p: second.end for p in range(PARTITIONS)}
        group.wait(
            lambda: describe(admin, group_id).state == ConsumerGroupState.EMPTY,
            "the group to be Empty again",
        )
        admin.delete_consumer_groups([group_id], request_timeout=TIMEOUT)[group_id].result(
            timeout=TIMEOUT
        )
        assert group_id not in listed(admin)
        assert committed(admin, group_id, topic) == {}
    finally:
        group.close()
        admin.delete_topics([topic])[topic].result(timeout=TIMEOUT)
