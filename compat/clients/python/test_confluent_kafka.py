"""confluent-kafka (Python on librdkafka) against a running Strom broker."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

import scenario
from scenario import Consumed

TIMEOUT = 15.0


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": "strom-compat-confluent"})


def create_topic(admin: AdminClient, name: str, partitions: int = scenario.PARTITIONS, **kwargs):
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, **kwargs)],
        operation_timeout=TIMEOUT,
    )
    futures[name].result(timeout=TIMEOUT)


def partition_count(admin: AdminClient, name: str) -> int | None:
    md = admin.list_topics(timeout=TIMEOUT)
    topic = md.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return len(topic.partitions)


def source_of(entry: ConfigEntry) -> ConfigSource:
    # Depending on the code path, librdkafka's source arrives as int or enum.
    return entry.source if isinstance(entry.source, ConfigSource) else ConfigSource(entry.source)


def wait_until(predicate, what: str, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def produce(bootstrap: str, topic: str, records, codec: str) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "compression.type": codec,
            "linger.ms": 5,
            # enable.idempotence left at librdkafka's default (false);
            # test_idempotent_producer turns it on.
        }
    )
    reports: list[tuple[int, object, object]] = []

    for i, r in enumerate(records):
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=r.partition,
            headers=list(r.headers) if r.headers else None,
            timestamp=r.timestamp_ms,
            on_delivery=lambda err, msg, i=i: reports.append((i, err, msg)),
        )
    remaining = producer.flush(TIMEOUT)
    assert remaining == 0, f"{remaining} records still undelivered after {TIMEOUT}s"
    assert len(reports) == len(records)
    errors = [(i, err) for i, err, _ in reports if err is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    # The produce response's base offset must be what the log assigned.
    want = scenario.expected_offsets(records)
    got = {i: (msg.partition(), msg.offset()) for i, _, msg in reports}
    for i, r in enumerate(records):
        assert got[i] == (r.partition, want[i]), f"record {i}: delivered at {got[i]}"


def consumer(bootstrap: str, isolation_level: str = "read_committed") -> Consumer:
    # confluent-kafka insists on a group.id, but with assign() and no commits
    # the group coordinator is never needed (groups: test_confluent_kafka_groups.py).
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": scenario.unique_topic("strom-compat-unused-group"),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            # librdkafka's default is read_committed.
            "isolation.level": isolation_level,
        }
    )


def consume_all(
    bootstrap: str, topic: str, partitions: int, expect: int, isolation_level: str = "read_committed"
) -> list[Consumed]:
    c = consumer(bootstrap, isolation_level)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        out: list[Consumed] = []
        at_eof: set[int] = set()
        deadline = time.monotonic() + TIMEOUT
        while len(out) < expect or len(at_eof) < partitions:
            assert time.monotonic() < deadline, (
                f"timed out: read {len(out)}/{expect} records, eof on {sorted(at_eof)}"
            )
            msg = c.poll(0.5)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                    continue
                raise AssertionError(f"consume error: {err}")
            at_eof.discard(msg.partition())
            ts_type, ts = msg.timestamp()
            out.append(
                Consumed(
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=tuple(msg.headers() or ()),
                    timestamp_ms=ts,
                )
            )
        return out
    finally:
        c.close()


def test_admin_topic_lifecycle(bootstrap):
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic("confluent-admin")

    # validate_only creates nothing.
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1)],
        validate_only=True,
        operation_timeout=TIMEOUT,
    )
    futures[topic].result(timeout=TIMEOUT)
    assert partition_count(admin, topic) is None, "validate_only created the topic"

    create_topic(admin, topic)
    assert partition_count(admin, topic) == 3

    md = admin.list_topics(topic=topic, timeout=TIMEOUT)
    broker_ids = set(md.brokers)
    assert broker_ids, "metadata lists no brokers"
    for p, pm in md.topics[topic].partitions.items():
        assert pm.error is None, f"partition {p}: {pm.error}"
        assert pm.leader in broker_ids, f"partition {p}: leader {pm.leader} not in {broker_ids}"
        assert pm.replicas == [pm.leader] and pm.isrs == [pm.leader]

    # Metadata carries a topic ID (Metadata v10+).
    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=TIMEOUT)
    assert len(desc.partitions) == 3
    assert str(desc.topic_id) not in ("", "AAAAAAAAAAAAAAAAAAAAAA"), "topic ID is zero"

    # Creating it again is an error.
    with pytest.raises(KafkaException) as exc:
        create_topic(admin, topic)
    assert exc.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    # Defaults come back with Kafka's names and values.
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert configs["cleanup.policy"].value == "delete"
    assert configs["retention.ms"].value == "604800000"
    assert source_of(configs["cleanup.policy"]) is ConfigSource.DEFAULT_CONFIG

    # IncrementalAlterConfigs, then read it back as a topic override.
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=TIMEOUT)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert configs["retention.ms"].value == "3600000"
    assert source_of(configs["retention.ms"]) is ConfigSource.DYNAMIC_TOPIC_CONFIG

    # CreatePartitions 3 -> 4.
    admin.create_partitions([NewPartitions(topic, 4)], operation_timeout=TIMEOUT)[topic].result(
        timeout=TIMEOUT
    )
    wait_until(lambda: partition_count(admin, topic) == 4, "4 partitions in metadata")

    # Shrinking is refused (INVALID_PARTITIONS).
    with pytest.raises(KafkaException) as exc:
        admin.create_partitions([NewPartitions(topic, 2)])[topic].result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    admin.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    wait_until(lambda: partition_count(admin, topic) is None, "the topic to disappear")

    # Deleting what is gone is UNKNOWN_TOPIC_OR_PART.
    with pytest.raises(KafkaException) as exc:
        admin.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    assert exc.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_topic_with_configs(bootstrap):
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic("confluent-configs")
    create_topic(
        admin,
        topic,
        partitions=2,
        config={"cleanup.policy": "compact", "retention.ms": "86400000"},
    )
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT)
    assert configs["cleanup.policy"].value == "compact"
    assert source_of(configs["cleanup.policy"]) is ConfigSource.DYNAMIC_TOPIC_CONFIG
    assert configs["retention.ms"].value == "86400000"
    admin.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)


def test_describe_cluster(bootstrap):
    admin = admin_client(bootstrap)
    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    assert cluster.cluster_id, "no cluster id"
    assert len(cluster.nodes) == 1
    assert cluster.controller is not None and cluster.controller.id == cluster.nodes[0].id


@pytest.mark.parametrize("codec", scenario.ALL_CODECS)
def test_produce_consume_roundtrip(bootstrap, codec):
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic(f"confluent-{codec}")
    create_topic(admin, topic)
    records = scenario.make_records()

    produce(bootstrap, topic, records, codec)
    consumed = consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
    scenario.check_partitions(records, consumed)

    per_partition = scenario.by_partition(records)
    c = consumer(bootstrap)
    try:
        # ListOffsets earliest/latest as the consumer sees them.
        for p in range(scenario.PARTITIONS):
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
            assert (low, high) == (0, len(per_partition[p])), f"partition {p}"

        # ListOffsets by timestamp.
        for batch in scenario.time_queries(records):
            answers = c.offsets_for_times(
                [TopicPartition(topic, p, ts) for p, ts in batch], timeout=TIMEOUT
            )
            for (p, ts), tp in zip(batch, answers):
                assert tp.error is None, f"offsets_for_times p{p} ts {ts}: {tp.error}"
                want = scenario.offset_for_time(records, p, ts)
                # librdkafka reports "no such offset" as OFFSET_END (-1).
                got = None if tp.offset == -1 else tp.offset
                assert got == want, f"offsets_for_times p{p} ts {ts}: got {tp.offset}, want {want}"
    finally:
        c.close()

    # The same through the admin API, including max timestamp (ListOffsets v7).
    specs = {}
    for p in range(scenario.PARTITIONS):
        specs[TopicPartition(topic, p, 0)] = OffsetSpec.earliest()
    results = admin.list_offsets(specs, request_timeout=TIMEOUT)
    for tp, fut in results.items():
        assert fut.result(timeout=TIMEOUT).offset == 0
    specs = {TopicPartition(topic, p): OffsetSpec.latest() for p in range(scenario.PARTITIONS)}
    for tp, fut in admin.list_offsets(specs, request_timeout=TIMEOUT).items():
        assert fut.result(timeout=TIMEOUT).offset == len(per_partition[tp.partition])
    specs = {
        TopicPartition(topic, p): OffsetSpec.max_timestamp() for p in range(scenario.PARTITIONS)
    }
    for tp, fut in admin.list_offsets(specs, request_timeout=TIMEOUT).items():
        info = fut.result(timeout=TIMEOUT)
        mine = per_partition[tp.partition]
        assert info.offset == len(mine) - 1, f"max_timestamp p{tp.partition}: offset {info.offset}"
        assert info.timestamp == mine[-1].timestamp_ms


def test_idempotent_producer(bootstrap):
    """I: enable.idempotence=true, many small batches with five in flight per
    connection, three partitions: each record is delivered and stored once,
    in produce order, at contiguous offsets, and the producer was given a
    producer ID (InitProducerId)."""
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic("confluent-idem")
    create_topic(admin, topic)
    records = scenario.idempotent_records()
    stats: list[dict] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "max.in.flight.requests.per.connection": 5,
            "batch.num.messages": 10,
            "linger.ms": 1,
            "compression.type": "lz4",
            "statistics.interval.ms": 100,
            "stats_cb": lambda raw: stats.append(json.loads(raw)),
        }
    )
    reports: list[tuple[int, object, int, int]] = []
    for i, r in enumerate(records):
        producer.produce(
            topic,
            value=r.value,
            key=r.key,
            partition=r.partition,
            timestamp=r.timestamp_ms,
            on_delivery=lambda err, msg, i=i: reports.append((i, err, msg.partition(), msg.offset())),
        )
        producer.poll(0)
    assert producer.flush(TIMEOUT) == 0, "records left undelivered"
    errors = [(i, err) for i, err, _, _ in reports if err is not None]
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(reports) == len(records), f"{len(reports)} delivery reports for {len(records)} records"
    want = scenario.expected_offsets(records)
    got = {i: (p, o) for i, _, p, o in reports}
    wrong = [(i, got[i], (r.partition, want[i])) for i, r in enumerate(records) if got[i] != (r.partition, want[i])]
    assert not wrong, f"delivered at (record, got, want): {wrong[:5]}"

    # librdkafka's statistics show the idempotence state and producer ID.
    stats.clear()
    wait_until(lambda: (producer.poll(0.1), stats)[1], "a statistics report")
    eos = stats[-1].get("eos")
    assert eos is not None, f"no eos section in the statistics: {sorted(stats[-1])}"
    assert eos["idemp_state"] == "Assigned", eos
    assert eos["producer_id"] >= 0 and eos["producer_epoch"] >= 0, eos

    consumed = consume_all(bootstrap, topic, scenario.PARTITIONS, len(records))
    scenario.check_exactly_once(records, consumed)
    c = consumer(bootstrap)
    try:
        for p in range(scenario.PARTITIONS):
            watermarks = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
            assert watermarks == (0, scenario.IDEMPOTENT_PER_PARTITION), f"partition {p}: {watermarks}"
    finally:
        c.close()


def test_transactions(bootstrap):
    """X: one transaction committed, one aborted, each writing to two
    partitions and committing a group offset (send_offsets_to_transaction).
    read_committed reads exactly the committed records; read_uncommitted
    reads the aborted ones too, at the offsets after the COMMIT marker; the
    markers take an offset each; the group's offset is the committed one."""
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic("confluent-txn")
    source = scenario.unique_topic("confluent-txn-source")
    group = scenario.unique_topic("confluent-txn-group")
    create_topic(admin, topic, partitions=scenario.TXN_PARTITIONS)
    # The input topic a consume-transform-produce loop would read: only its
    # group offset is committed here, but the broker wants the topic to exist.
    create_topic(admin, source, partitions=1)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": scenario.unique_topic("confluent-txn-id"),
            "linger.ms": 5,
        }
    )
    producer.init_transactions(TIMEOUT)
    # Only its group metadata is used (group id, no generation: a
    # consumer that never joined).
    group_consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    errors = []
    try:
        metadata = group_consumer.consumer_group_metadata()
        for kind, count, offset in (
            ("commit", scenario.TXN_COMMITTED, scenario.TXN_GROUP_OFFSET_COMMITTED),
            ("abort", scenario.TXN_ABORTED, scenario.TXN_GROUP_OFFSET_ABORTED),
        ):
            producer.begin_transaction()
            for p in range(scenario.TXN_PARTITIONS):
                for i in range(count):
                    producer.produce(
                        topic,
                        value=scenario.txn_value(kind, p, i),
                        partition=p,
                        on_delivery=lambda err, msg: errors.append(err) if err else None,
                    )
            producer.send_offsets_to_transaction([TopicPartition(source, 0, offset)], metadata, TIMEOUT)
            # Every record on the broker first: abort_transaction would
            # purge the ones still queued, and they are to be in the log.
            assert producer.flush(TIMEOUT) == 0, f"{kind}: records left undelivered"
            if kind == "commit":
                producer.commit_transaction(TIMEOUT)
            else:
                producer.abort_transaction(TIMEOUT)
    finally:
        group_consumer.close()
    assert not errors, f"delivery errors: {errors[:5]}"

    committed = consume_all(
        bootstrap, topic, scenario.TXN_PARTITIONS, scenario.TXN_PARTITIONS * scenario.TXN_COMMITTED
    )
    scenario.check_txn_read(committed, read_committed=True)
    everything = consume_all(
        bootstrap,
        topic,
        scenario.TXN_PARTITIONS,
        scenario.TXN_PARTITIONS * (scenario.TXN_COMMITTED + scenario.TXN_ABORTED),
        isolation_level="read_uncommitted",
    )
    scenario.check_txn_read(everything, read_committed=False)

    # Both transactions are over: the last stable offset is the high
    # watermark, past the ABORT marker.
    for level in ("read_committed", "read_uncommitted"):
        c = consumer(bootstrap, level)
        try:
            for p in range(scenario.TXN_PARTITIONS):
                watermarks = c.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
                assert watermarks == (0, scenario.TXN_END_OFFSET), f"{level} partition {p}: {watermarks}"
        finally:
            c.close()

    fut = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, [TopicPartition(source, 0)])])[group]
    [tp] = fut.result(timeout=TIMEOUT).topic_partitions
    assert tp.error is None, f"{tp}: {tp.error}"
    assert tp.offset == scenario.TXN_GROUP_OFFSET_COMMITTED, f"group offset {tp.offset}, want the committed one"


def test_delete_records(bootstrap):
    admin = admin_client(bootstrap)
    topic = scenario.unique_topic("confluent-delete-records")
    create_topic(admin, topic, partitions=1)
    records = [r for r in scenario.make_records() if r.partition == 0]
    produce(bootstrap, topic, records, "none")

    tp = TopicPartition(topic, 0, 10)
    result = admin.delete_records([tp], operation_timeout=TIMEOUT)[tp].result(timeout=TIMEOUT)
    assert result.low_watermark == 10, f"low watermark after DeleteRecords: {result.low_watermark}"

    c = consumer(bootstrap)
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        assert (low, high) == (10, len(records))
    finally:
        c.close()
    consumed = consume_all(bootstrap, topic, 1, len(records) - 10)
    assert [m.offset for m in consumed] == list(range(10, len(records)))
    assert [m.key for m in consumed] == [r.key for r in records[10:]]


def test_produce_to_invalid_topic_name(bootstrap):
    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 10000}
    )
    errors = []
    producer.produce("bad topic!", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    assert producer.flush(TIMEOUT) == 0
    assert len(errors) == 1 and errors[0] is not None, "produce to 'bad topic!' succeeded"
    assert errors[0].code() == KafkaError.TOPIC_EXCEPTION, f"got {errors[0]}"


def test_create_invalid_topic_name(bootstrap):
    admin = admin_client(bootstrap)
    for name in ["bad topic!", "x" * 250, "..", "a/b"]:
        with pytest.raises(KafkaException) as exc:
            create_topic(admin, name, partitions=1)
        assert exc.value.args[0].code() == KafkaError.TOPIC_EXCEPTION, f"{name!r}: {exc.value}"
