//! Finding (and with --create, making) the topic a run uses.

use super::options::TopicOptions;
use crate::client::common::ClientArgs;
use crate::client::topic::{admin_options, fetch_metadata, Admin};
use anyhow::{bail, Context as _};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// How long a topic just created may take to show up with all its partitions
/// in the metadata (a multi-broker cluster propagates it asynchronously).
const CREATION_PATIENCE: Duration = Duration::from_secs(15);

/// Creates the topic if asked to, and returns its partition ids in order.
pub async fn prepare(client: &ClientArgs, options: &TopicOptions) -> anyhow::Result<Vec<i32>> {
    let admin: Admin = client
        // A metadata request from a producer-based client could auto-create
        // the topic with the broker's defaults; a typo should fail instead.
        .config(&[("allow.auto.create.topics", "false")])
        .create()
        .context("creating the Kafka admin client")?;
    if options.create {
        let topic = NewTopic::new(
            &options.topic,
            options.partitions,
            TopicReplication::Fixed(options.replication_factor),
        );
        let results = admin
            .create_topics([&topic], &admin_options())
            .await
            .context("CreateTopics request failed")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => bail!("cannot create topic {topic}: {code}"),
            }
        }
    }
    let deadline = Instant::now() + CREATION_PATIENCE;
    loop {
        match partitions(&admin, &options.topic) {
            Ok(ids) => {
                if options.create && ids.len() != usize::try_from(options.partitions)? {
                    eprintln!(
                        "note: topic {} already existed with {} partitions; using it as it is",
                        options.topic,
                        ids.len()
                    );
                }
                return Ok(ids);
            }
            Err(err) if options.create && Instant::now() < deadline => {
                tracing::debug!("waiting for the new topic to appear: {err:#}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// The topic's partition ids; fails unless it exists and every partition has
/// a leader.
fn partitions(admin: &Admin, topic: &str) -> anyhow::Result<Vec<i32>> {
    let metadata = fetch_metadata(admin, Some(topic))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic} is missing from the metadata response");
    };
    if let Some(err) = found.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            bail!("topic {topic} does not exist (--create makes it)");
        }
        bail!("cannot use topic {topic}: {code}");
    }
    if found.partitions().is_empty() {
        bail!("topic {topic} has no partitions");
    }
    if let Some(leaderless) = found.partitions().iter().find(|p| p.leader() < 0) {
        bail!("partition {} of {topic} has no leader", leaderless.id());
    }
    let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}
