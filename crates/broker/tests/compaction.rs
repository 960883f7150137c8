//! Log compaction through a real broker and rdkafka: the background cleaner
//! keeps the latest value per key at its original offset, removes tombstones
//! after `delete.retention.ms`, compacts `__consumer_offsets` (whose replay
//! after a restart still finds the last commit), and a compacted topic
//! refuses records without a key.

mod common;

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

/// Segments roll on the first append 100 ms after a segment started.
const SEGMENT_MS: &str = "100";
const ROLL_WAIT: Duration = Duration::from_millis(150);

fn broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.cleaner_backoff = Duration::from_millis(100);
        c.offsets_topic_partitions = 1;
        c.groups.initial_rebalance_delay_ms = 0;
        // Broker default, so that `__consumer_offsets` rolls quickly too.
        c.log_defaults
            .insert("log.roll.ms".into(), SEGMENT_MS.into());
    })
}

/// (offset, key, value) of every record from the beginning up to the high
/// watermark, as an rdkafka consumer sees them.
fn read_topic(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let consumer = consumer_from(bootstrap, topic, &[0], Offset::Beginning);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks");
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while out
        .last()
        .is_none_or(|r: &(i64, String, Option<String>)| r.0 < high - 1)
    {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let m = message.expect("consume error");
            out.push((
                m.offset(),
                String::from_utf8_lossy(m.key().expect("a key")).into_owned(),
                m.payload().map(|p| String::from_utf8_lossy(p).into_owned()),
            ));
        }
    }
    out
}

/// Polls `read_topic` until `done` holds for what it returns.
fn wait_for(
    bootstrap: &str,
    topic: &str,
    mut between: impl FnMut(),
    done: impl Fn(&[(i64, String, Option<String>)]) -> bool,
) -> Vec<(i64, String, Option<String>)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = read_topic(bootstrap, topic);
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "not compacted in time: {rows:?}");
        between();
    }
}

/// Produces rounds of updates for keys k0..k19, one segment per round;
/// round 4 deletes k15..k19. Returns the offset of every key's last record
/// and the offset of a final marker record that rolls the last round out of
/// the active segment.
fn produce_rounds(bootstrap: &str, topic: &str) -> (BTreeMap<String, (i64, Option<String>)>, i64) {
    let producer = producer(bootstrap, &[]);
    let mut latest = BTreeMap::new();
    for round in 0..5 {
        for k in 0..20 {
            let key = format!("k{k}");
            let value = (round < 4 || k < 15).then(|| format!("r{round}-{key}"));
            let (_, offset) = send(
                &producer,
                topic,
                Some(0),
                Some(key.as_bytes()),
                value.as_deref().map(str::as_bytes),
            );
            latest.insert(key, (offset, value));
        }
        std::thread::sleep(ROLL_WAIT);
    }
    let (_, marker) = send(&producer, topic, Some(0), Some(b"end"), Some(b"end"));
    (latest, marker)
}

#[test]
fn the_cleaner_keeps_the_latest_value_per_key_at_its_offset() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("compacted");
    create_topic(
        &bootstrap,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", SEGMENT_MS),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    let (latest, marker) = produce_rounds(&bootstrap, &topic);
    let rows = wait_for(
        &bootstrap,
        &topic,
        || std::thread::sleep(ROLL_WAIT),
        |rows| rows.len() == 21,
    );

    // Every key once, with its last value (or tombstone) at the offset it
    // was produced at; offsets strictly increase.
    let mut expected: Vec<(i64, String, Option<String>)> = latest
        .iter()
        .map(|(k, (offset, value))| (*offset, k.clone(), value.clone()))
        .collect();
    expected.push((marker, "end".into(), Some("end".into())));
    expected.sort();
    assert_eq!(rows, expected);

    // The same after a restart, and producing continues after the marker.
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(read_topic(&bootstrap, &topic), expected);
    let (_, next) = send(
        &producer(&bootstrap, &[]),
        &topic,
        Some(0),
        Some(b"k0"),
        Some(b"again"),
    );
    assert_eq!(next, marker + 1);
}

#[test]
fn tombstones_go_after_delete_retention() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("tombstones");
    create_topic(
        &bootstrap,
        &topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", SEGMENT_MS),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "500"),
        ],
    );
    let (latest, _) = produce_rounds(&bootstrap, &topic);
    // Keep producing, so that the cleaner has dirty segments to clean once
    // the tombstones' delete horizon has passed.
    let ticker = producer(&bootstrap, &[]);
    let rows = wait_for(
        &bootstrap,
        &topic,
        || {
            std::thread::sleep(ROLL_WAIT);
            send(&ticker, &topic, Some(0), Some(b"tick"), Some(b"tick"));
        },
        |rows| !rows.iter().any(|r| r.2.is_none()),
    );
    for k in 0..20 {
        let key = format!("k{k}");
        let found: Vec<_> = rows.iter().filter(|r| r.1 == key).collect();
        if k < 15 {
            let (offset, value) = &latest[&key];
            assert_eq!(found, [&(*offset, key.clone(), value.clone())], "{key}");
        } else {
            assert!(found.is_empty(), "{key} is still there: {found:?}");
        }
    }
}

#[test]
fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("keyless");
    create_topic(
        &bootstrap,
        &topic,
        1,
        &[("cleanup.policy", "compact,delete")],
    );
    let producer = producer(&bootstrap, &[("message.timeout.ms", "5000")]);
    let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).partition(0).payload(b"v");
    let result = rt().block_on(producer.send(record, TIMEOUT));
    match result {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord), _)) => {}
        other => panic!("expected INVALID_RECORD, got {other:?}"),
    }
    let consumer: BaseConsumer = client_config(&bootstrap).create().unwrap();
    assert_eq!(
        consumer.fetch_watermarks(&topic, 0, TIMEOUT).unwrap(),
        (0, 0)
    );
    // Keyed records are fine, and a topic without `compact` takes keyless ones.
    assert_eq!(
        send(&producer, &topic, Some(0), Some(b"k"), Some(b"v")).1,
        0
    );
    let plain = unique("plain");
    create_topic(&bootstrap, &plain, 1, &[("cleanup.policy", "delete")]);
    assert_eq!(send(&producer, &plain, Some(0), None, Some(b"v")).1, 0);
}

/// Records in the segment files of a partition directory, read from disk.
fn records_on_disk(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            // The active segment may end in a batch being written: stop there.
            for found in strom_log::batch::batches(&bytes) {
                let Ok(found) = found else { break };
                count += found.header.record_count as usize;
            }
        }
    }
    count
}

#[test]
fn consumer_offsets_are_compacted_and_replay_after_a_restart() {
    let broker = broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("committed");
    create_topic(&bootstrap, &topic, 1, &[]);
    let group = unique("g");
    let consumer: BaseConsumer = client_config(&bootstrap)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let commit = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(offset))
            .unwrap();
        consumer.commit(&tpl, CommitMode::Sync).unwrap();
    };
    let commits = 12;
    for offset in 1..=commits {
        commit(offset);
        std::thread::sleep(ROLL_WAIT);
    }
    let offsets_dir = broker.data_dir().join("__consumer_offsets-0");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // One commit in the cleaned segments, at most one in the active one.
        let on_disk = records_on_disk(&offsets_dir);
        if on_disk <= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{on_disk} records still on disk");
        std::thread::sleep(ROLL_WAIT);
        commit(commits);
    }
    drop(consumer);
    broker.restart();
    let bootstrap = broker.bootstrap();
    let consumer: BaseConsumer = client_config(&bootstrap)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&topic, 0);
    let committed = consumer.committed_offsets(tpl, TIMEOUT).unwrap();
    assert_eq!(committed.elements()[0].offset(), Offset::Offset(commits));
}
