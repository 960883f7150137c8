//! Shared by the broker tests: a Strom broker in-process (strom-testkit)
//! with settings that keep group and transaction start-up fast, and small
//! rdkafka helpers to create topics, produce and read everything back.
#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strom_streams::*;
use strom_testkit::TestBroker;

pub fn broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.offsets_topic_partitions = 1;
        c.transaction_topic_partitions = 1;
    })
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let result = futures::executor::block_on(admin.create_topics([&t], &AdminOptions::new()))
        .expect("create topics");
    for r in result {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

pub fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Sends and retries on a full queue.
pub fn send(
    p: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = value {
        record = record.payload(v);
    }
    loop {
        match p.send(record) {
            Ok(()) => break,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                p.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("producing to {topic}: {e}"),
        }
    }
    p.poll(Duration::ZERO);
}

pub fn flush(p: &BaseProducer) {
    p.flush(Duration::from_secs(60)).expect("flush");
}

/// A read_committed reader of every partition of `topic` from the start.
pub fn reader(bootstrap: &str, topic: &str, partitions: i32) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");
    consumer
}

/// Word counts as read from a count topic: every value per word, in order.
#[derive(Default)]
pub struct CountLog {
    pub values: BTreeMap<String, Vec<i64>>,
    pub records: usize,
}

impl CountLog {
    pub fn poll(&mut self, consumer: &BaseConsumer, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(m) = consumer.poll(deadline.saturating_duration_since(Instant::now())) {
            let m = m.expect("reading counts");
            let word = String::from_utf8(m.key().expect("key").to_vec()).expect("UTF-8 word");
            let n = i64::from_be_bytes(
                m.payload()
                    .expect("count")
                    .try_into()
                    .expect("8-byte count"),
            );
            self.values.entry(word).or_default().push(n);
            self.records += 1;
            if Instant::now() >= deadline {
                break;
            }
        }
    }

    pub fn latest(&self) -> BTreeMap<String, i64> {
        self.values
            .iter()
            .map(|(w, v)| (w.clone(), *v.last().expect("a value")))
            .collect()
    }

    /// Exactly once: each word's counts are 1, 2, ..., n with no repeat and
    /// no gap, and n is the expected count. Returns what is wrong.
    pub fn exactly(&self, expected: &BTreeMap<String, i64>) -> Vec<String> {
        let mut problems = Vec::new();
        for (word, want) in expected {
            let got = self.values.get(word).map(Vec::as_slice).unwrap_or_default();
            let ideal: Vec<i64> = (1..=*want).collect();
            if got != ideal.as_slice() {
                let dups = got.len() as i64
                    - got.iter().collect::<std::collections::BTreeSet<_>>().len() as i64;
                problems.push(format!(
                    "{word}: want 1..={want}, got {} values (last {:?}, {dups} repeated)",
                    got.len(),
                    got.last()
                ));
            }
        }
        for word in self.values.keys() {
            if !expected.contains_key(word) {
                problems.push(format!("{word}: unexpected"));
            }
        }
        problems
    }
}

/// Word count: lines (no key) split into words, counted in the store
/// `counts` and written to `output`.
pub fn word_count(input: &str, output: &str) -> Topology {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, Consumed::with(Serdes::unit(), Serdes::string()))
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
        })
        .group_by(
            |_, word: &String| word.clone(),
            Grouped::with(Serdes::string(), Serdes::string()),
        )
        .count_with(Materialized::named("counts"))
        .to(output, Produced::with(Serdes::string(), Serdes::i64()));
    builder.build().expect("word count topology")
}

/// Line `i` of the input: two words out of 40.
pub fn line(i: u64) -> String {
    format!("w{} W{}", i % 40, (i * 7 + 3) % 40)
}

pub fn expected_counts(lines: std::ops::Range<u64>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for i in lines {
        for w in line(i).split_whitespace() {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
    }
    counts
}

pub fn produce_lines(bootstrap: &str, topic: &str, lines: std::ops::Range<u64>) {
    let p = producer(bootstrap);
    for i in lines {
        let l = line(i);
        send(&p, topic, Some((i % 3) as i32), None, Some(l.as_bytes()));
    }
    flush(&p);
}

/// Polls `cond` until it holds or `limit` passes.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
