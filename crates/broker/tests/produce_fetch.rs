//! Produce and fetch through rdkafka (librdkafka) against a real broker.

mod common;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

struct Sent {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    header: Option<Vec<u8>>,
}

fn round_trip(broker: &TestBroker, codec: &str) {
    let bootstrap = broker.bootstrap();
    let topic = unique(&format!("codec-{codec}"));
    create_topic(&bootstrap, &topic, 3, &[]);
    let producer = producer(
        &bootstrap,
        &[("compression.codec", codec), ("linger.ms", "5")],
    );
    let rt = rt();
    let mut futures = Vec::new();
    let mut sent = Vec::new();
    for i in 0..60u32 {
        let partition = (i % 3) as i32;
        let key = format!("key-{i}").into_bytes();
        // Every seventh record has no value (a tombstone), every eleventh an empty one.
        let value = match i {
            i if i % 7 == 0 => None,
            i if i % 11 == 0 => Some(Vec::new()),
            i => Some(format!("value-{i}-{}", "x".repeat((i * 37 % 300) as usize)).into_bytes()),
        };
        let header = (i % 2 == 0).then(|| format!("h{i}").into_bytes());
        let mut record: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&topic).partition(partition).key(&key);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        if let Some(h) = &header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some(h),
            }));
        }
        futures.push(producer.send_result(record).expect("queued"));
        sent.push(Sent {
            partition,
            offset: -1,
            key,
            value,
            header,
        });
    }
    for (future, s) in futures.into_iter().zip(sent.iter_mut()) {
        let delivery = rt
            .block_on(future)
            .unwrap()
            .unwrap_or_else(|(e, _)| panic!("{codec}: {e}"));
        assert_eq!(delivery.partition, s.partition);
        s.offset = delivery.offset;
    }
    let consumer = consumer_from(&bootstrap, &topic, &[0, 1, 2], Offset::Beginning);
    let received = consume(&consumer, sent.len());
    for p in 0..3 {
        let expected: Vec<&Sent> = sent.iter().filter(|s| s.partition == p).collect();
        let got: Vec<_> = received.iter().filter(|m| m.partition() == p).collect();
        assert_eq!(got.len(), expected.len(), "{codec}: partition {p} count");
        for (n, (m, s)) in got.iter().zip(expected).enumerate() {
            assert_eq!(
                m.offset(),
                n as i64,
                "{codec}: offsets are dense and ordered"
            );
            assert_eq!(m.offset(), s.offset);
            assert_eq!(m.key(), Some(&s.key[..]));
            assert_eq!(
                m.payload().map(|p| p.to_vec()),
                s.value,
                "{codec}: value at {p}/{n}"
            );
            let headers = headers_of(m);
            match &s.header {
                Some(h) => assert_eq!(headers, vec![("trace".to_string(), Some(h.clone()))]),
                None => assert!(headers.is_empty()),
            }
        }
    }
}

#[test]
fn round_trip_with_every_codec() {
    let broker = TestBroker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        round_trip(&broker, codec);
    }
}

#[test]
fn produce_and_metadata_auto_create_topics() {
    let broker = TestBroker::start_with(|c| c.num_partitions = 2);
    let bootstrap = broker.bootstrap();
    let producer = producer(&bootstrap, &[]);
    let topic = unique("auto");
    let (_, offset) = send(&producer, &topic, Some(1), Some(b"k"), Some(b"v"));
    assert_eq!(offset, 0);
    let metadata = producer
        .client()
        .fetch_metadata(Some(&topic), TIMEOUT)
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 2);

    let disabled = TestBroker::start_with(|c| c.auto_create_topics_enable = false);
    let producer = common::producer(&disabled.bootstrap(), &[("message.timeout.ms", "2000")]);
    let rt = rt();
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("never-created").payload(&b"x"[..]);
    let result = rt.block_on(producer.send(record, Duration::from_secs(3)));
    assert!(
        result.is_err(),
        "produce to a missing topic must fail when auto-creation is off"
    );
}

#[test]
fn waiting_consumer_is_woken_by_append() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("longpoll");
    create_topic(&bootstrap, &topic, 1, &[]);
    let producer = producer(&bootstrap, &[]);
    let consumer: rdkafka::consumer::BaseConsumer = client_config(&bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10000")
        .set("fetch.min.bytes", "1")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    // Let the consumer settle into a long poll on the empty partition.
    assert!(consumer.poll(Duration::from_millis(500)).is_none());
    let mut delays = Vec::new();
    for i in 0..7 {
        let sent_at = Instant::now();
        send(
            &producer,
            &topic,
            Some(0),
            None,
            Some(format!("{i}").as_bytes()),
        );
        let message = consumer
            .poll(Duration::from_secs(15))
            .expect("woken")
            .expect("no error");
        assert_eq!(message.offset(), i);
        delays.push(sent_at.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    delays.sort();
    let median = delays[delays.len() / 2];
    // Without wake-ups a consumer would wait out fetch.wait.max.ms (10 s).
    assert!(
        median < Duration::from_millis(50),
        "median produce-to-consume delay {median:?} ({delays:?})"
    );
}

#[test]
fn restart_keeps_acknowledged_records_and_offsets_continue() {
    let broker = TestBroker::start();
    let topic = unique("restart");
    create_topic(&broker.bootstrap(), &topic, 2, &[("retention.ms", "-1")]);
    let producer = producer(&broker.bootstrap(), &[]);
    for i in 0..50 {
        send(
            &producer,
            &topic,
            Some(i % 2),
            None,
            Some(format!("before-{i}").as_bytes()),
        );
    }
    drop(producer);
    broker.restart();
    let producer = common::producer(&broker.bootstrap(), &[]);
    let (_, offset) = send(&producer, &topic, Some(0), None, Some(b"after"));
    assert_eq!(offset, 25, "offsets continue after restart");
    let consumer = consumer_from(&broker.bootstrap(), &topic, &[0, 1], Offset::Beginning);
    let messages = consume(&consumer, 51);
    let p0: Vec<_> = messages
        .iter()
        .filter(|m| m.partition() == 0)
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(p0.len(), 26);
    assert_eq!(p0[0], b"before-0");
    assert_eq!(p0[25], b"after");
    // The topic config survived too.
    let admin = admin(&broker.bootstrap());
    let described = rt()
        .block_on(admin.describe_configs(
            [&rdkafka::admin::ResourceSpecifier::Topic(&topic)],
            &rdkafka::admin::AdminOptions::new(),
        ))
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    assert_eq!(
        resource.get("retention.ms").unwrap().value.as_deref(),
        Some("-1")
    );
}

#[test]
fn list_offsets_by_time_earliest_latest() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("times");
    create_topic(&bootstrap, &topic, 1, &[]);
    let producer = producer(&bootstrap, &[]);
    let rt = rt();
    let base = 1_700_000_000_000i64;
    for i in 0..10i64 {
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
            .partition(0)
            .payload(&b"x"[..])
            .timestamp(base + i * 1000);
        rt.block_on(producer.send(record, TIMEOUT)).unwrap();
    }
    let consumer = consumer_from(&bootstrap, &topic, &[0], Offset::Beginning);
    let lookup = |ts: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(ts))
            .unwrap();
        let result = consumer.offsets_for_times(tpl, TIMEOUT).unwrap();
        result.elements()[0].offset()
    };
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 4500), Offset::Offset(5));
    assert_eq!(lookup(base + 9000), Offset::Offset(9));
    assert_eq!(lookup(base + 99_000), Offset::End);
    let (low, high) = consumer.fetch_watermarks(&topic, 0, TIMEOUT).unwrap();
    assert_eq!((low, high), (0, 10));
}

/// ListOffsets MAX_TIMESTAMP names the record with the largest timestamp,
/// even inside a batch whose last record is older (as Kafka 3.8+ does), and
/// an answer that finds nothing carries no leader epoch.
#[test]
fn list_offsets_max_timestamp_names_the_record() {
    use common::wire::Wire;
    use kafka_protocol::messages::{list_offsets_request, ListOffsetsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("maxts");
    create_topic(&bootstrap, &topic, 2, &[]);
    // One batch (a long linger): the newest timestamp is the second record's.
    let producer = producer(&bootstrap, &[("linger.ms", "200")]);
    let base = 1_700_000_000_000i64;
    let deliveries: Vec<_> = [0, 50, 10, 20, 5]
        .iter()
        .map(|dt| {
            let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
                .partition(0)
                .payload(&b"x"[..])
                .timestamp(base + dt);
            producer.send_result(record).map_err(|(e, _)| e).unwrap()
        })
        .collect();
    for d in deliveries {
        rt().block_on(d).unwrap().unwrap();
    }
    let mut wire = Wire::connect(&bootstrap);
    let mut ask = |partition: i32, timestamp: i64| {
        let request = ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)]),
        ]);
        let p = wire.request(8, &request).topics[0].partitions[0].clone();
        assert_eq!(p.error_code, 0);
        (p.offset, p.timestamp, p.leader_epoch)
    };
    assert_eq!(ask(0, -3), (1, base + 50, 0), "max timestamp");
    assert_eq!(ask(0, base + 30), (1, base + 50, 0), "by time");
    assert_eq!(ask(0, base + 99), (-1, -1, -1), "after everything");
    assert_eq!(
        ask(1, -3),
        (-1, -1, -1),
        "max timestamp of an empty partition"
    );
    assert_eq!(ask(1, -1), (0, -1, 0), "latest of an empty partition");
}

#[test]
fn log_append_time_and_message_too_large() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = unique("lat");
    create_topic(
        &bootstrap,
        &topic,
        1,
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "2048"),
        ],
    );
    let producer = producer(&bootstrap, &[]);
    let rt = rt();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic)
        .partition(0)
        .payload(&b"x"[..])
        .timestamp(42);
    let delivery = rt.block_on(producer.send(record, TIMEOUT)).unwrap();
    assert_eq!(delivery.offset, 0);
    let consumer = consumer_from(&bootstrap, &topic, &[0], Offset::Beginning);
    let message = &consume(&consumer, 1)[0];
    match message.timestamp() {
        rdkafka::Timestamp::LogAppendTime(ts) => {
            assert!(ts >= before, "broker time {ts} < {before}")
        }
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
    let big = vec![b'x'; 10_000];
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).partition(0).payload(&big);
    let err = rt.block_on(producer.send(record, TIMEOUT)).unwrap_err().0;
    assert!(
        matches!(
            err.rdkafka_error_code(),
            Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
        ),
        "got {err:?}"
    );
    let (_, high) = consumer.fetch_watermarks(&topic, 0, TIMEOUT).unwrap();
    assert_eq!(high, 1, "the rejected batch was not stored");
}

#[test]
fn a_second_broker_on_the_same_data_dir_does_not_start() {
    let data = tempfile::tempdir().unwrap();
    let first = TestBroker::start_in(data.path());
    let config = strom_broker::BrokerConfig {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        admin_listen: None,
        ..strom_broker::BrokerConfig::default()
    };
    let second = rt().block_on(strom_broker::start(config.clone()));
    let err = second.err().expect("the data dir is locked");
    assert!(
        matches!(err, strom_broker::BrokerError::DataDirLocked { .. }),
        "{err}"
    );
    // The first one is unharmed and, once stopped, frees the dir.
    let topic = unique("locked");
    create_topic(&first.bootstrap(), &topic, 1, &[]);
    first.stop();
    let runtime = rt();
    let third = runtime
        .block_on(strom_broker::start(config))
        .expect("free again");
    assert!(third.context().topics.get(&topic).is_some());
    runtime.block_on(third.shutdown()).unwrap();
}
