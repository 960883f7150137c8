"""kafka-python (pure Python protocol implementation) against a running Strom broker."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka import errors as Errors
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType

import scenario
from scenario import Consumed

TIMEOUT_MS = 15_000


def admin_client(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="strom-compat-kafka-python",
        request_timeout_ms=TIMEOUT_MS,
    )


def create_topic(admin: KafkaAdminClient, name: str, partitions: int = scenario.PARTITIONS, configs=None):
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
        timeout_ms=TIMEOUT_MS,
    )


def partition_count(admin: KafkaAdminClient, name: str) -> int | None:
    for topic in admin.describe_topics():
        if topic["name"] == name and topic["error_code"] == 0:
            return len(topic["partitions"])
    return None


def wait_until(predicate, what: str, timeout_s: float = TIMEOUT_MS / 1000):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def topic_configs(admin: KafkaAdminClient, name: str) -> dict:
    result = admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name)], config_filter="all"
    )
    return result["topic"][name]


def produce(bootstrap: str, topic: str, records, codec: str) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        compression_type=None if codec == "none" else codec,
        linger_ms=5,
        # Idempotent: kafka-python 3.0's default (enable_idempotence=True).
        request_timeout_ms=TIMEOUT_MS,
    )
    try:
        futures = [
            producer.send(
                topic,
                value=r.value,
                key=r.key,
                headers=list(r.headers),
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
            )
            for r in records
        ]
        producer.flush(timeout=TIMEOUT_MS / 1000)
        want = scenario.expected_offsets(records)
        for i, (r, fut) in enumerate(zip(records, futures)):
            md = fut.get(timeout=TIMEOUT_MS / 1000)
            assert (md.partition, md.offset) == (r.partition, want[i]), f"record {i}: {md}"
    finally:
        producer.close(timeout=5)


def consumer(bootstrap: str, isolation_level: str = "read_uncommitted") -> KafkaConsumer:
    # No group: manual assignment only (groups: test_kafka_python_groups.py).
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="none",
        request_timeout_ms=TIMEOUT_MS,
        isolation_level=isolation_level,
    )


def consume_all(
    bootstrap: str, topic: str, partitions: int, expect: int, isolation_level: str = "read_uncommitted"
) -> list[Consumed]:
    c = consumer(bootstrap, isolation_level)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        out: list[Consumed] = []
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while len(out) < expect:
            assert time.monotonic() < deadline, f"timed out: read {len(out)}/{expect} records"
            for tp, msgs in c.poll(timeout_ms=500).items():
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
        # Nothing more than what was produced.
        extra = c.poll(timeout_ms=300)
        assert not any(extra.values()), f"unexpected extra records: {extra}"
        return out
    finally:
        c.close()


def test_admin_topic_lifecycle(bootstrap):
    admin = admin_client(bootstrap)
    try:
        topic = scenario.unique_topic("kafka-python-admin")

        admin.create_topics(
            {topic: {"num_partitions": 3, "replication_factor": 1}},
            validate_only=True,
            timeout_ms=TIMEOUT_MS,
        )
        assert partition_count(admin, topic) is None, "validate_only created the topic"

        create_topic(admin, topic)
        assert topic in admin.list_topics()
        assert partition_count(admin, topic) == 3

        with pytest.raises(Errors.TopicAlreadyExistsError):
            create_topic(admin, topic)

        configs = topic_configs(admin, topic)
        assert configs["cleanup.policy"]["value"] == "delete"
        assert configs["retention.ms"]["value"] == "604800000"

        admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": (AlterConfigOp.SET, "3600000")})],
            incremental=True,
        )
        configs = topic_configs(admin, topic)
        assert configs["retention.ms"]["value"] == "3600000"
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"

        admin.create_partitions({topic: 4}, timeout_ms=TIMEOUT_MS)
        wait_until(lambda: partition_count(admin, topic) == 4, "4 partitions in metadata")

        admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
        wait_until(lambda: topic not in admin.list_topics(), "the topic to disappear")
    finally:
        admin.close()


def test_describe_cluster(bootstrap):
    admin = admin_client(bootstrap)
    try:
        cluster = admin.describe_cluster()
        assert cluster["cluster_id"], f"no cluster id: {cluster}"
        assert len(cluster["brokers"]) == 1, cluster
        assert cluster["controller_id"] == cluster["brokers"][0]["broker_id"], cluster
    finally:
        admin.close()


@pytest.mark.parametrize("codec", scenario.ALL_CODECS)
def test_produce_consume_roundtrip(bootstrap, codec):
    admin = admin_client(bootstrap)
    try:
        topic = scenario.unique_topic(f"kafka-python-{codec}")
        create_topic(admin, topic)
    finally:
        admin.close()
    records = scenario.make_records()

    produce(bootstrap, topic, records, codec)
    consumed = consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
    scenario.check_partitions(records, consumed)

    per_partition = scenario.by_partition(records)
    tps = [TopicPartition(topic, p) for p in range(scenario.PARTITIONS)]
    c = consumer(bootstrap)
    try:
        assert c.beginning_offsets(tps, timeout_ms=TIMEOUT_MS) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps, timeout_ms=TIMEOUT_MS) == {
            tp: len(per_partition[tp.partition]) for tp in tps
        }
        for batch in scenario.time_queries(records):
            answers = c.offsets_for_times(
                {TopicPartition(topic, p): ts for p, ts in batch}, timeout_ms=TIMEOUT_MS
            )
            for p, ts in batch:
                found = answers[TopicPartition(topic, p)]
                want = scenario.offset_for_time(records, p, ts)
                got = None if found is None else found.offset
                assert got == want, f"offsets_for_times p{p} ts {ts}: got {found}, want {want}"
                if found is not None:
                    assert found.timestamp == per_partition[p][want].timestamp_ms
    finally:
        c.close()


def test_idempotent_producer(bootstrap):
    """I: enable_idempotence=True, small batches with five in flight per
    connection, three partitions: each record is acknowledged and stored
    once, in produce order, at contiguous offsets."""
    admin = admin_client(bootstrap)
    try:
        topic = scenario.unique_topic("kafka-python-idem")
        create_topic(admin, topic)
    finally:
        admin.close()
    records = scenario.idempotent_records()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        max_in_flight_requests_per_connection=5,
        # About ten of these records to a batch.
        batch_size=512,
        linger_ms=1,
        request_timeout_ms=TIMEOUT_MS,
    )
    try:
        futures = [
            producer.send(
                topic, value=r.value, key=r.key, partition=r.partition, timestamp_ms=r.timestamp_ms
            )
            for r in records
        ]
        producer.flush(timeout=TIMEOUT_MS / 1000)
        want = scenario.expected_offsets(records)
        got = [fut.get(timeout=TIMEOUT_MS / 1000) for fut in futures]
        wrong = [
            (i, (md.partition, md.offset), (r.partition, want[i]))
            for i, (r, md) in enumerate(zip(records, got))
            if (md.partition, md.offset) != (r.partition, want[i])
        ]
        assert not wrong, f"acknowledged at (record, got, want): {wrong[:5]}"
    finally:
        producer.close(timeout=5)

    consumed = consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
    scenario.check_exactly_once(records, consumed)
    tps = [TopicPartition(topic, p) for p in range(scenario.PARTITIONS)]
    c = consumer(bootstrap)
    try:
        assert c.end_offsets(tps, timeout_ms=TIMEOUT_MS) == {
            tp: scenario.IDEMPOTENT_PER_PARTITION for tp in tps
        }
    finally:
        c.close()


def test_transactions(bootstrap):
    """X: one transaction committed, one aborted, each writing to two
    partitions and committing a group offset (send_offsets_to_transaction).
    read_committed reads exactly the committed records; read_uncommitted
    reads the aborted ones too, at the offsets after the COMMIT marker; the
    markers take an offset each; the group's offset is the committed one."""
    topic = scenario.unique_topic("kafka-python-txn")
    source = scenario.unique_topic("kafka-python-txn-source")
    group = scenario.unique_topic("kafka-python-txn-group")
    admin = admin_client(bootstrap)
    try:
        create_topic(admin, topic, partitions=scenario.TXN_PARTITIONS)
        # The input topic a consume-transform-produce loop would read: only
        # its group offset is committed here, but it has to exist.
        create_topic(admin, source, partitions=1)
    finally:
        admin.close()

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=scenario.unique_topic("kafka-python-txn-id"),
        request_timeout_ms=TIMEOUT_MS,
    )
    try:
        producer.init_transactions()
        for kind, count, offset in (
            ("commit", scenario.TXN_COMMITTED, scenario.TXN_GROUP_OFFSET_COMMITTED),
            ("abort", scenario.TXN_ABORTED, scenario.TXN_GROUP_OFFSET_ABORTED),
        ):
            producer.begin_transaction()
            futures = [
                producer.send(topic, value=scenario.txn_value(kind, p, i), partition=p)
                for p in range(scenario.TXN_PARTITIONS)
                for i in range(count)
            ]
            producer.send_offsets_to_transaction(
                {TopicPartition(source, 0): OffsetAndMetadata(offset, "", -1)}, group
            )
            # Every record on the broker before the transaction ends.
            producer.flush(timeout=TIMEOUT_MS / 1000)
            for fut in futures:
                fut.get(timeout=TIMEOUT_MS / 1000)
            if kind == "commit":
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close(timeout=5)

    committed = consume_all(
        bootstrap,
        topic,
        scenario.TXN_PARTITIONS,
        scenario.TXN_PARTITIONS * scenario.TXN_COMMITTED,
        isolation_level="read_committed",
    )
    scenario.check_txn_read(committed, read_committed=True)
    everything = consume_all(
        bootstrap,
        topic,
        scenario.TXN_PARTITIONS,
        scenario.TXN_PARTITIONS * (scenario.TXN_COMMITTED + scenario.TXN_ABORTED),
    )
    scenario.check_txn_read(everything, read_committed=False)

    # Both transactions are over: the last stable offset (read_committed's
    # end) is the high watermark, past the ABORT marker.
    tps = [TopicPartition(topic, p) for p in range(scenario.TXN_PARTITIONS)]
    for level in ("read_committed", "read_uncommitted"):
        c = consumer(bootstrap, level)
        try:
            ends = c.end_offsets(tps, timeout_ms=TIMEOUT_MS)
            assert ends == {tp: scenario.TXN_END_OFFSET for tp in tps}, f"{level}: {ends}"
        finally:
            c.close()

    admin = admin_client(bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    got = {(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}
    assert got == {(source, 0): scenario.TXN_GROUP_OFFSET_COMMITTED}, f"group offsets {got}"


def test_create_invalid_topic_name(bootstrap):
    # kafka-python checks names itself before a produce, so the broker's own
    # validation is reached through CreateTopics.
    admin = admin_client(bootstrap)
    try:
        for name in ["bad topic!", "x" * 250, "..", "a/b"]:
            with pytest.raises(Errors.InvalidTopicError):
                create_topic(admin, name, partitions=1)
    finally:
        admin.close()
