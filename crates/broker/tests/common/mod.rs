//! Shared helpers for the broker's integration tests: real rdkafka clients
//! and a raw wire client for requests rdkafka cannot make (or must not).
#![allow(dead_code)]

pub mod wire;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A runtime for rdkafka's futures (separate from the broker's).
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    config
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().expect("producer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("admin client")
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = rt()
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .expect("create_topics");
    assert_eq!(results.len(), 1);
    results[0]
        .as_ref()
        .unwrap_or_else(|e| panic!("creating {name}: {e:?}"));
}

/// Sends one record and returns (partition, offset) once acknowledged.
pub fn send(
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> (i32, i64) {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = value {
        record = record.payload(v);
    }
    let delivery = rt()
        .block_on(producer.send(record, TIMEOUT))
        .unwrap_or_else(|(e, _)| panic!("send: {e}"));
    (delivery.partition, delivery.offset)
}

/// A consumer assigned to `partitions` of `topic` from the given offset, no group.
pub fn consumer_from(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    offset: Offset,
) -> BaseConsumer {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "strom-test-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition_offset(topic, *p, offset).unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Polls until `n` messages arrived (panics after TIMEOUT).
pub fn consume(consumer: &BaseConsumer, n: usize) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "timed out with {} of {n} messages",
            out.len()
        );
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            out.push(message.expect("consume error").detach());
        }
    }
    out
}

pub fn headers_of(message: &OwnedMessage) -> Vec<(String, Option<Vec<u8>>)> {
    match message.headers() {
        None => Vec::new(),
        Some(h) => h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect(),
    }
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A v2 record batch (no compression, no producer id) holding `values`.
pub fn batch(values: &[&[u8]]) -> bytes::BytesMut {
    use kafka_protocol::records::*;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}
