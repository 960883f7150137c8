//! The distributed stores: connector configs, source offsets and statuses in
//! compacted topics (`connect-configs`, `connect-offsets`, `connect-status`
//! by default), each followed by every worker.

use crate::error::Result;
use crate::runtime::kafka::{ensure_topic, TopicLog};
use crate::runtime::store::{
    offset_key, ConfigApplier, ConfigRecord, ConfigState, ConfigStore, JsonObject, OffsetMap,
    OffsetStore, RestartRequest, Status, StatusId, StatusMap, StatusStore, TaskId,
};
use crate::runtime::worker_config::WorkerConfig;
use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

/// Creates the three topics if missing (compacted, as Kafka Connect does).
pub async fn create_topics(config: &WorkerConfig) -> Result<()> {
    let admin = config.client_props("admin");
    let compact = [("cleanup.policy", "compact")];
    ensure_topic(
        &admin,
        &config.config_topic,
        1,
        config.config_replication_factor,
        &compact,
    )
    .await?;
    ensure_topic(
        &admin,
        &config.offset_topic,
        config.offset_partitions,
        config.offset_replication_factor,
        &compact,
    )
    .await?;
    ensure_topic(
        &admin,
        &config.status_topic,
        config.status_partitions,
        config.status_replication_factor,
        &compact,
    )
    .await
}

pub struct KafkaConfigStore {
    applier: ConfigApplier,
    log: TopicLog,
}

impl KafkaConfigStore {
    /// Follows the config topic and reads it to its end.
    pub async fn start(config: &WorkerConfig) -> Result<KafkaConfigStore> {
        let applier = ConfigApplier::default();
        let apply_to = applier.clone();
        let log = TopicLog::start(
            &config.client_props("consumer"),
            &config.client_props("producer"),
            &config.config_topic,
            Box::new(
                move |offset, key, value| match ConfigRecord::decode(key, value) {
                    Ok(record) => apply_to.apply(record, Some(offset)),
                    Err(e) => tracing::warn!(error = %e, offset, "skipping a config record"),
                },
            ),
        )
        .await?;
        log.read_to_end().await?;
        applier.go_live();
        Ok(KafkaConfigStore { applier, log })
    }
}

#[async_trait]
impl ConfigStore for KafkaConfigStore {
    fn snapshot(&self) -> ConfigState {
        self.applier.state.lock().clone()
    }

    async fn write(&self, record: ConfigRecord) -> Result<()> {
        let (key, value) = record.encode();
        self.log.send(key.as_bytes(), value.as_deref()).await?;
        self.log.read_to_end().await
    }

    async fn refresh(&self) -> Result<()> {
        self.log.read_to_end().await
    }

    fn changes(&self) -> watch::Receiver<i64> {
        self.applier.changes()
    }

    fn restarts(&self) -> broadcast::Receiver<RestartRequest> {
        self.applier.restarts()
    }
}

pub struct KafkaOffsetStore {
    map: OffsetMap,
    log: TopicLog,
}

impl KafkaOffsetStore {
    pub async fn start(config: &WorkerConfig) -> Result<KafkaOffsetStore> {
        let map = OffsetMap::default();
        let apply_to = map.clone();
        let log = TopicLog::start(
            &config.client_props("consumer"),
            &config.client_props("producer"),
            &config.offset_topic,
            Box::new(move |_, key, value| apply_to.apply_raw(key, value)),
        )
        .await?;
        log.read_to_end().await?;
        Ok(KafkaOffsetStore { map, log })
    }

    pub fn topic(&self) -> &str {
        self.log.topic()
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn refresh(&self) -> Result<()> {
        self.log.read_to_end().await
    }

    fn get(&self, connector: &str, partition: &JsonObject) -> Option<JsonObject> {
        self.map.get(connector, partition)
    }

    async fn put(
        &self,
        connector: &str,
        offsets: Vec<(JsonObject, Option<JsonObject>)>,
    ) -> Result<()> {
        for (partition, offset) in &offsets {
            let key = offset_key(connector, partition);
            let value = offset
                .as_ref()
                .map(|o| serde_json::to_vec(o).expect("JSON"));
            self.log.send(&key, value.as_deref()).await?;
            self.map.set(connector, partition, offset.as_ref());
        }
        Ok(())
    }

    fn put_local(&self, connector: &str, offsets: Vec<(JsonObject, Option<JsonObject>)>) {
        for (partition, offset) in &offsets {
            self.map.set(connector, partition, offset.as_ref());
        }
    }

    fn all(&self, connector: &str) -> Vec<(JsonObject, JsonObject)> {
        self.map.all(connector)
    }
}

pub struct KafkaStatusStore {
    map: StatusMap,
    log: TopicLog,
}

impl KafkaStatusStore {
    pub async fn start(config: &WorkerConfig) -> Result<KafkaStatusStore> {
        let map = StatusMap::default();
        let apply_to = map.clone();
        let log = TopicLog::start(
            &config.client_props("consumer"),
            &config.client_props("producer"),
            &config.status_topic,
            Box::new(move |_, key, value| {
                let Some(id) = std::str::from_utf8(key).ok().and_then(StatusId::parse) else {
                    return;
                };
                let status = value.and_then(|v| serde_json::from_slice::<Status>(v).ok());
                apply_to.apply(id, status);
            }),
        )
        .await?;
        log.read_to_end().await?;
        Ok(KafkaStatusStore { map, log })
    }
}

#[async_trait]
impl StatusStore for KafkaStatusStore {
    async fn put(&self, id: StatusId, status: Option<Status>) {
        self.map.apply(id.clone(), status.clone());
        let value = status.map(|s| serde_json::to_vec(&s).expect("JSON"));
        if let Err(e) = self.log.send(id.key().as_bytes(), value.as_deref()).await {
            tracing::warn!(error = %e, "writing a status");
        }
    }

    fn get(&self, id: &StatusId) -> Option<Status> {
        self.map.get(id)
    }

    fn tasks(&self, connector: &str) -> Vec<(u32, Status)> {
        self.map.tasks(connector)
    }
}

/// Unused-import guard for `TaskId` in docs.
#[allow(dead_code)]
fn _task_id(_: TaskId) {}
