"""aiokafka (asyncio, pure Python protocol implementation) against a running Strom broker.

The same scenario as the other Python clients (scenario.py): admin topic
lifecycle, the produce/consume round trip once per codec with offsets and
offsets-for-times, an invalid topic name; plus aiokafka's idempotent and
transactional producers and a two-member consumer group.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka import errors as Errors
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import scenario
from scenario import Consumed

TIMEOUT_MS = 15_000


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=90))


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="strom-compat-aiokafka", request_timeout_ms=TIMEOUT_MS
    )
    await admin.start()
    return admin


def topic_errors(response) -> dict[str, int]:
    """CreateTopics/DeleteTopics response: topic -> error code."""
    rows = response.topic_errors if hasattr(response, "topic_errors") else response.topic_error_codes
    return {t[0]: t[1] for t in rows}


async def create_topic(admin, name: str, partitions: int = scenario.PARTITIONS, configs=None):
    response = await admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})],
        timeout_ms=TIMEOUT_MS,
    )
    return topic_errors(response)[name]


async def partition_count(admin, name: str) -> int | None:
    for topic in await admin.describe_topics([name]):
        if topic["topic"] == name and topic["error_code"] == 0:
            return len(topic["partitions"])
    return None


async def topic_configs(admin, name: str) -> dict[str, tuple[str, int]]:
    """name -> (value, config_source) for every config of a topic."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        [resource] = response.to_object()["resources"]
        # Apache Kafka may not know a topic created a moment ago yet.
        if resource["error_code"] == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert resource["error_code"] == 0, resource
    return {c["config_names"]: (c["config_value"], c["config_source"]) for c in resource["config_entries"]}


async def wait_until(predicate, what: str, timeout_s: float = TIMEOUT_MS / 1000):
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.1)


def test_admin_topic_lifecycle(bootstrap):
    async def body():
        admin = await admin_client(bootstrap)
        try:
            topic = scenario.unique_topic("aiokafka-admin")
            response = await admin.create_topics(
                [NewTopic(topic, num_partitions=3, replication_factor=1)],
                timeout_ms=TIMEOUT_MS,
                validate_only=True,
            )
            assert topic_errors(response)[topic] == 0
            # (A Metadata request for the topic would auto-create it: list all.)
            assert topic not in await admin.list_topics(), "validate_only created the topic"

            assert await create_topic(admin, topic) == 0
            assert topic in await admin.list_topics()
            assert await partition_count(admin, topic) == 3
            assert await create_topic(admin, topic) == Errors.TopicAlreadyExistsError.errno

            configs = await topic_configs(admin, topic)
            assert configs["cleanup.policy"][0] == "delete"
            assert configs["retention.ms"][0] == "604800000"

            # aiokafka's alter_configs is the non-incremental AlterConfigs.
            [response] = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "3600000"})]
            )
            assert all(r[0] == 0 for r in response.resources), response
            async def altered():
                # Apache Kafka applies it through its metadata log: wait.
                return (await topic_configs(admin, topic))["retention.ms"] == ("3600000", 1)  # DYNAMIC_TOPIC_CONFIG

            await wait_until(altered, "retention.ms=3600000 from the topic's own config")

            await admin.create_partitions({topic: NewPartitions(total_count=4)}, timeout_ms=TIMEOUT_MS)

            async def four():
                return await partition_count(admin, topic) == 4

            await wait_until(four, "4 partitions in metadata")

            response = await admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
            assert topic_errors(response)[topic] == 0

            async def gone():
                return topic not in await admin.list_topics()

            await wait_until(gone, "the topic to disappear")
        finally:
            await admin.close()

    run(body())


def test_describe_cluster(bootstrap):
    async def body():
        admin = await admin_client(bootstrap)
        try:
            cluster = await admin.describe_cluster()
            assert cluster["cluster_id"], cluster
            assert len(cluster["brokers"]) == 1, cluster
            assert cluster["controller_id"] == cluster["brokers"][0]["node_id"], cluster
        finally:
            await admin.close()

    run(body())


async def produce(bootstrap: str, topic: str, records, codec: str, **extra) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        request_timeout_ms=TIMEOUT_MS,
        **extra,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=r.value,
                key=r.key,
                headers=list(r.headers),
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        await producer.flush()
        want = scenario.expected_offsets(records)
        for i, (r, fut) in enumerate(zip(records, futures)):
            md = await fut
            assert (md.partition, md.offset) == (r.partition, want[i]), f"record {i}: {md}"
    finally:
        await producer.stop()


def consumer(bootstrap: str, **extra) -> AIOKafkaConsumer:
    conf = dict(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        request_timeout_ms=TIMEOUT_MS,
    )
    conf.update(extra)
    return AIOKafkaConsumer(**conf)


async def consume_all(bootstrap: str, topic: str, partitions: int, expect: int, **extra) -> list[Consumed]:
    c = consumer(bootstrap, **extra)
    await c.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        out: list[Consumed] = []
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(out) < expect:
            assert time.monotonic() < deadline, f"timed out: read {len(out)}/{expect} records"
            for tp, msgs in (await c.getmany(timeout_ms=500)).items():
                for m in msgs:
                    out.append(
                        Consumed(
                            partition=m.partition,
                            offset=m.offset,
                            key=m.key,
                            value=m.value,
                            headers=tuple(m.headers or ()),
                            timestamp_ms=m.timestamp,
                        )
                    )
        extra_records = await c.getmany(timeout_ms=300)
        assert not any(extra_records.values()), f"unexpected extra records: {extra_records}"
        return out
    finally:
        await c.stop()


@pytest.mark.parametrize("codec", scenario.ALL_CODECS)
def test_produce_consume_roundtrip(bootstrap, codec):
    async def body():
        admin = await admin_client(bootstrap)
        try:
            topic = scenario.unique_topic(f"aiokafka-{codec}")
            assert await create_topic(admin, topic) == 0
        finally:
            await admin.close()
        records = scenario.make_records()

        await produce(bootstrap, topic, records, codec)
        consumed = await consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
        scenario.check_partitions(records, consumed)

        per_partition = scenario.by_partition(records)
        tps = [TopicPartition(topic, p) for p in range(scenario.PARTITIONS)]
        c = consumer(bootstrap)
        await c.start()
        try:
            assert await c.beginning_offsets(tps) == {tp: 0 for tp in tps}
            assert await c.end_offsets(tps) == {tp: len(per_partition[tp.partition]) for tp in tps}
            for batch in scenario.time_queries(records):
                answers = await c.offsets_for_times({TopicPartition(topic, p): ts for p, ts in batch})
                for p, ts in batch:
                    found = answers[TopicPartition(topic, p)]
                    want = scenario.offset_for_time(records, p, ts)
                    got = None if found is None else found.offset
                    assert got == want, f"offsets_for_times p{p} ts {ts}: got {found}, want {want}"
                    if found is not None:
                        assert found.timestamp == per_partition[p][want].timestamp_ms
        finally:
            await c.stop()

    run(body())


def test_create_invalid_topic_name(bootstrap):
    async def body():
        admin = await admin_client(bootstrap)
        try:
            for name in ["bad topic!", "x" * 250, "..", "a/b"]:
                assert await create_topic(admin, name, partitions=1) == Errors.InvalidTopicError.errno, name
        finally:
            await admin.close()

    run(body())


def test_idempotent_producer_and_delete_records(bootstrap):
    async def body():
        admin = await admin_client(bootstrap)
        topic = scenario.unique_topic("aiokafka-idem")
        try:
            assert await create_topic(admin, topic) == 0
            records = scenario.make_records()
            await produce(bootstrap, topic, records, "lz4", enable_idempotence=True)
            consumed = await consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
            scenario.check_partitions(records, consumed)
            # DeleteRecords moves the log start offset; reads start there.
            tp = TopicPartition(topic, 0)
            low = await admin.delete_records({tp: RecordsToDelete(before_offset=10)}, timeout_ms=TIMEOUT_MS)
            assert low == {tp: 10}
            c = consumer(bootstrap)
            await c.start()
            try:
                assert (await c.beginning_offsets([tp]))[tp] == 10
            finally:
                await c.stop()
        finally:
            await admin.close()

    run(body())


def test_transactions(bootstrap):
    """Commit and abort: read_committed sees exactly the committed records,
    and every transaction leaves one control record (marker) behind."""

    async def body():
        admin = await admin_client(bootstrap)
        topic = scenario.unique_topic("aiokafka-txn")
        try:
            assert await create_topic(admin, topic, partitions=1) == 0
        finally:
            await admin.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=scenario.unique_topic("aiokafka-txn-id")
        )
        await producer.start()
        try:
            async with producer.transaction():
                for i in range(5):
                    await producer.send_and_wait(topic, f"commit-{i}".encode(), partition=0)
            await producer.begin_transaction()
            for i in range(3):
                await producer.send_and_wait(topic, f"abort-{i}".encode(), partition=0)
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"commit-last", partition=0)
        finally:
            await producer.stop()
        committed = await consume_all(bootstrap, topic, 1, 6, isolation_level="read_committed")
        assert [c.value for c in committed] == [f"commit-{i}".encode() for i in range(5)] + [b"commit-last"]
        # 5 records, marker (5), 3 aborted (6..8), marker (9), 1 record (10), marker (11).
        assert [c.offset for c in committed] == [0, 1, 2, 3, 4, 10]
        everything = await consume_all(bootstrap, topic, 1, 9, isolation_level="read_uncommitted")
        assert [c.offset for c in everything] == [0, 1, 2, 3, 4, 6, 7, 8, 10]
        c = consumer(bootstrap, isolation_level="read_committed")
        await c.start()
        try:
            tp = TopicPartition(topic, 0)
            assert (await c.end_offsets([tp]))[tp] == 12
        finally:
            await c.stop()

    run(body())


def test_consumer_group(bootstrap):
    """Two members split a 4-partition topic and receive every record once;
    committed offsets are what a new member resumes from."""

    async def body():
        admin = await admin_client(bootstrap)
        topic = scenario.unique_topic("aiokafka-group")
        group = scenario.unique_topic("aiokafka-group-id")
        try:
            assert await create_topic(admin, topic, partitions=4) == 0
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for p in range(4):
                for i in range(25):
                    await producer.send(topic, f"first-{p}-{i}".encode(), partition=p)
            await producer.flush()
        finally:
            await producer.stop()

        def member():
            return AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                heartbeat_interval_ms=300,
            )

        members = [member(), member()]
        for m in members:
            await m.start()
        seen: dict[bytes, int] = {}
        try:
            deadline = time.monotonic() + 60
            while True:
                for m in members:
                    for msgs in (await m.getmany(timeout_ms=100)).values():
                        for r in msgs:
                            seen[r.value] = seen.get(r.value, 0) + 1
                a, b = (m.assignment() for m in members)
                assert not (a & b), f"a partition owned twice: {a & b}"
                if len(a) + len(b) == 4 and a and b and len(seen) == 100:
                    break
                assert time.monotonic() < deadline, f"split {a} / {b}, {len(seen)} records"
            for m in members:
                await m.commit()
        finally:
            for m in members:
                await m.stop()
        assert all(n == 1 for n in seen.values()), "every record exactly once"

        admin = await admin_client(bootstrap)
        try:
            offsets = await admin.list_consumer_group_offsets(group)
            assert {tp.partition: om.offset for tp, om in offsets.items()} == {p: 25 for p in range(4)}
        finally:
            await admin.close()

    run(body())
