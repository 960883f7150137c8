//! Start-up: the process id, partition counts of every sub-topology, and
//! the internal topics (repartition and changelog), created as Kafka
//! Streams creates them.

use super::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::store::StoreKind;
use crate::topology::{TopicRef, Topology};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Kafka Streams' `windowstore.changelog.additional.retention.ms` default.
const ADDITIONAL_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The instance's process id, kept in `<app dir>/kafka-streams-process-metadata`
/// so that a restarted instance gets the same transactional id and fences
/// its predecessor at once.
pub(crate) fn process_id(app_dir: &Path) -> Result<String> {
    let path = app_dir.join("kafka-streams-process-metadata");
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Some(id) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.get("processId")
                    .and_then(|p| p.as_str().map(String::from))
            })
        {
            return Ok(id);
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::json!({ "processId": id }).to_string())
        .map_err(|e| StreamsError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| StreamsError::io(format!("renaming to {}", path.display()), e))?;
    Ok(id)
}

pub(crate) fn client_config(config: &StreamsConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.client {
        c.set(k, v);
    }
    c
}

/// Consumer-only properties, kept from the producer (librdkafka warns).
const CONSUMER_ONLY: &[&str] = &[
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "group.instance.id",
    "max.poll.interval.ms",
    "group.protocol",
    "fetch.min.bytes",
    "fetch.wait.max.ms",
    "fetch.max.bytes",
    "max.partition.fetch.bytes",
];

pub(crate) fn producer_config(config: &StreamsConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers);
    for (k, v) in &config.client {
        if !CONSUMER_ONLY.contains(&k.as_str()) {
            c.set(k, v);
        }
    }
    c
}

fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Option<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| StreamsError::kafka(format!("metadata of {topic}"), e))?;
    Ok(metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|n| *n > 0))
}

/// Partition count per sub-topology: the largest of its source topics'
/// (repartition topics get their writer sub-topology's count unless set).
pub(crate) fn subtopology_partitions(
    topology: &Topology,
    config: &StreamsConfig,
) -> Result<Vec<i32>> {
    let consumer: BaseConsumer = client_config(config)
        .create()
        .map_err(|e| StreamsError::kafka("metadata client", e))?;
    let app = &config.application_id;
    let mut known: BTreeMap<String, i32> = BTreeMap::new();
    for source in &topology.sources {
        if let TopicRef::External(t) = &source.topic {
            if !known.contains_key(t) {
                let n = partitions_of(&consumer, t)?
                    .ok_or_else(|| StreamsError::MissingSourceTopic(t.clone()))?;
                known.insert(t.clone(), n);
            }
        }
    }
    let subs = topology.subtopologies.len();
    let mut counts: Vec<Option<i32>> = vec![None; subs];
    for _ in 0..=subs {
        for r in &topology.repartitions {
            let topic = TopicRef::Internal(r.suffix.clone()).resolve(app);
            if known.contains_key(&topic) {
                continue;
            }
            let writer = topology
                .subtopology_of_node(r.writer)
                .and_then(|s| counts[s]);
            if let Some(n) = r.partitions.or(writer) {
                known.insert(topic, n);
            }
        }
        for (s, count) in counts.iter_mut().enumerate() {
            let topics = topology.source_topics(s, app);
            if topics.iter().all(|t| known.contains_key(t)) {
                *count = topics.iter().map(|t| known[t]).max();
            }
        }
    }
    // Joins need co-partitioned inputs: the same key in the same partition
    // number of every topic the join reads (Kafka Streams' rule).
    for (s, sub) in topology.subtopologies.iter().enumerate() {
        let joins = sub
            .nodes
            .iter()
            .any(|n| topology.nodes[*n].name.contains("JOIN"));
        let topics = topology.source_topics(s, app);
        let sizes: std::collections::BTreeSet<i32> = topics
            .iter()
            .filter_map(|t| known.get(t).copied())
            .collect();
        if joins && sizes.len() > 1 {
            return Err(StreamsError::Topology(format!(
                "topics {topics:?} are joined but not co-partitioned (partition counts {sizes:?})"
            )));
        }
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(s, c)| {
            c.ok_or_else(|| StreamsError::Topology(format!("cannot size sub-topology {s}")))
        })
        .collect()
}

/// Creates the repartition and changelog topics that do not exist yet.
pub(crate) fn create_internal_topics(
    topology: &Topology,
    config: &StreamsConfig,
    partitions: &[i32],
) -> Result<()> {
    let app = &config.application_id;
    // (topic, partitions, configs)
    type Wanted = (String, i32, Vec<(String, String)>);
    let mut wanted: Vec<Wanted> = Vec::new();
    for r in &topology.repartitions {
        let topic = TopicRef::Internal(r.suffix.clone()).resolve(app);
        let reader = topology
            .subtopology_of_topic(&topic, app)
            .expect("a repartition topic is read");
        wanted.push((
            topic,
            partitions[reader],
            vec![
                ("cleanup.policy".into(), "delete".into()),
                ("retention.ms".into(), "-1".into()),
            ],
        ));
    }
    for (s, sub) in topology.subtopologies.iter().enumerate() {
        for spec in sub.stores.iter().map(|i| &topology.stores[*i]) {
            if !spec.logged {
                continue;
            }
            let configs = match spec.kind {
                StoreKind::KeyValue => vec![("cleanup.policy".into(), "compact".into())],
                StoreKind::Window { retention_ms } => vec![
                    ("cleanup.policy".into(), "compact,delete".into()),
                    (
                        "retention.ms".into(),
                        retention_ms
                            .saturating_add(ADDITIONAL_RETENTION_MS)
                            .to_string(),
                    ),
                ],
            };
            wanted.push((
                topology.changelog_topic(app, &spec.name),
                partitions[s],
                configs,
            ));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = producer_config(config)
        .create()
        .map_err(|e| StreamsError::kafka("admin client", e))?;
    let new_topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|(name, n, configs)| {
            let mut t = NewTopic::new(name, *n, TopicReplication::Fixed(config.replication_factor));
            for (k, v) in configs {
                t = t.set(k, v);
            }
            t
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics(&new_topics, &options))
        .map_err(|e| StreamsError::kafka("creating internal topics", e))?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "created internal topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(StreamsError::Topology(format!(
                    "creating internal topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}
