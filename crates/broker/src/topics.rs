//! The partition manager: which topics exist, their partitions' logs, and
//! the admin operations that change them. Every change is written to the
//! metadata log (fsynced) before it takes effect, so a restart restores it.

use crate::error::{ApiError, BrokerError};
use crate::metadata::{
    MetadataChange, MetadataImage, MetadataStore, TopicRecord, METADATA_LOG_DIR,
};
use crate::topic_config::{self, BrokerDefaults};
use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strom_log::PartitionLog;
use uuid::Uuid;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Validates a topic name as Kafka does (`Topic.validate`).
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// One partition. The log sits behind a lock only so that topic deletion
/// can take it away from under concurrent requests safely.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: RwLock<Option<PartitionLog>>,
}

impl Partition {
    /// The log, or UNKNOWN_TOPIC_OR_PARTITION if the topic was deleted.
    pub fn log(&self) -> Result<LogGuard<'_>, ApiError> {
        let guard = self.log.read();
        if guard.is_none() {
            return Err(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("{}-{} was deleted", self.topic, self.index),
            ));
        }
        Ok(LogGuard(guard))
    }
}

impl Partition {
    /// Reopens the log if a storage failure took it offline; readers and
    /// writers wait meanwhile. `Ok(true)` if it was reopened.
    pub fn reopen_if_offline(&self) -> Result<bool, strom_log::LogError> {
        if self
            .log
            .read()
            .as_ref()
            .is_none_or(|log| log.offline_reason().is_none())
        {
            return Ok(false);
        }
        let mut guard = self.log.write();
        let Some(log) = guard.as_ref() else {
            return Ok(false);
        };
        if log.offline_reason().is_none() {
            return Ok(false);
        }
        *guard = Some(log.reopen()?);
        tracing::info!(topic = %self.topic, partition = self.index, "partition back online");
        Ok(true)
    }
}

pub struct LogGuard<'a>(RwLockReadGuard<'a, Option<PartitionLog>>);

impl std::ops::Deref for LogGuard<'_> {
    type Target = PartitionLog;
    fn deref(&self) -> &PartitionLog {
        self.0.as_ref().expect("checked in Partition::log")
    }
}

/// A topic as of one moment; changes replace the whole value.
pub struct Topic {
    pub name: String,
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<Arc<Partition>>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl Topic {
    pub fn is_internal(&self) -> bool {
        self.name == "__consumer_offsets" || self.name == "__transaction_state"
    }

    fn record(&self) -> TopicRecord {
        TopicRecord {
            name: self.name.clone(),
            id: self.id,
            partitions: self.partitions.len() as i32,
            configs: self.configs.clone(),
        }
    }
}

struct State {
    topics: HashMap<String, Arc<Topic>>,
    by_id: HashMap<Uuid, String>,
    defaults: BrokerDefaults,
}

pub struct TopicManager {
    data_dir: PathBuf,
    node_id: i32,
    state: RwLock<State>,
    /// Serialises changes so that metadata writes and state updates agree.
    changes: Mutex<MetadataStore>,
    /// The producer ids left in the current block: `next..end`.
    producer_ids: Mutex<(i64, i64)>,
    /// Given to every partition log, present and future (fsync timing).
    fsync_observer: Mutex<Option<strom_log::FsyncObserver>>,
    /// Where partition logs live (the real file system but in fault tests).
    storage: Arc<dyn strom_log::Storage>,
}

/// Producer ids are taken from the metadata log in blocks of this many.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl TopicManager {
    /// Opens the metadata log and every partition in it.
    pub fn open(
        data_dir: &Path,
        node_id: i32,
        defaults: BrokerDefaults,
        clean_shutdown: bool,
        storage: Arc<dyn strom_log::Storage>,
    ) -> Result<TopicManager, BrokerError> {
        let (store, image) = MetadataStore::open(data_dir, clean_shutdown)?;
        let MetadataImage {
            topics,
            broker_configs,
            next_producer_id_block,
        } = image;
        let mut defaults = defaults;
        defaults.dynamic_default = broker_configs.get("").cloned().unwrap_or_default();
        defaults.dynamic_broker = broker_configs
            .get(&node_id.to_string())
            .cloned()
            .unwrap_or_default();
        let mut state = State {
            topics: HashMap::new(),
            by_id: HashMap::new(),
            defaults,
        };
        for record in topics.into_values() {
            let log_config = topic_config::log_config(&record.configs, &state.defaults);
            let mut partitions = Vec::new();
            for index in 0..record.partitions {
                let dir = data_dir.join(format!("{}-{index}", record.name));
                let log = PartitionLog::open_with_storage(
                    &dir,
                    log_config.clone(),
                    clean_shutdown,
                    Arc::clone(&storage),
                )?;
                if let Some(report) = log.recovery_report() {
                    if report.truncated_bytes > 0 {
                        tracing::warn!(
                            partition = %dir.display(),
                            truncated_bytes = report.truncated_bytes,
                            log_end_offset = report.log_end_offset,
                            "recovered partition after unclean shutdown"
                        );
                    }
                }
                partitions.push(Arc::new(Partition {
                    topic: record.name.clone(),
                    index,
                    log: RwLock::new(Some(log)),
                }));
            }
            state.by_id.insert(record.id, record.name.clone());
            state.topics.insert(
                record.name.clone(),
                Arc::new(Topic {
                    name: record.name,
                    id: record.id,
                    configs: record.configs,
                    partitions,
                }),
            );
        }
        remove_stray_partition_dirs(data_dir, &state.topics);
        Ok(TopicManager {
            data_dir: data_dir.to_path_buf(),
            node_id,
            state: RwLock::new(state),
            changes: Mutex::new(store),
            // Nothing left: the first allocation takes a new block.
            producer_ids: Mutex::new((next_producer_id_block, next_producer_id_block)),
            fsync_observer: Mutex::new(None),
            storage,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.state.read().topics.get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let state = self.state.read();
        state
            .by_id
            .get(&id)
            .and_then(|name| state.topics.get(name))
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut topics: Vec<_> = self.state.read().topics.values().cloned().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        topics
    }

    pub fn defaults(&self) -> BrokerDefaults {
        self.state.read().defaults.clone()
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.state
            .read()
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect()
    }

    /// Validates configs for a new or altered topic.
    fn validate_configs(configs: &BTreeMap<String, String>) -> Result<(), ApiError> {
        for (name, value) in configs {
            topic_config::validate(name, value)
                .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        }
        Ok(())
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        validate_topic_name(name)?;
        if name == METADATA_LOG_DIR.trim_end_matches("-0") {
            return Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("{name} is reserved"),
            ));
        }
        if partitions < 1 {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions was set to an invalid non-positive value: {partitions}"
                ),
            ));
        }
        Self::validate_configs(&configs)?;
        let store = self.changes.lock();
        if self.get(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(collision) = self
            .state
            .read()
            .topics
            .keys()
            .find(|t| t.replace('.', "_") == name.replace('.', "_"))
        {
            return Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {collision}"),
            ));
        }
        let defaults = self.defaults();
        let log_config = topic_config::log_config(&configs, &defaults);
        let id = Uuid::new_v4();
        let topic = Topic {
            name: name.to_string(),
            id,
            configs,
            partitions: Vec::new(),
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }
        store
            .write(&[MetadataChange::Topic(TopicRecord {
                partitions,
                ..topic.record()
            })])
            .map_err(storage)?;
        let partitions = (0..partitions)
            .map(|index| self.open_new_partition(name, index, log_config.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic {
            partitions,
            ..topic
        });
        let mut state = self.state.write();
        state.by_id.insert(id, name.to_string());
        state.topics.insert(name.to_string(), topic.clone());
        tracing::info!(
            topic = name,
            partitions = topic.partitions.len(),
            "created topic"
        );
        Ok(topic)
    }

    fn open_new_partition(
        &self,
        topic: &str,
        index: i32,
        config: strom_log::LogConfig,
    ) -> Result<Arc<Partition>, ApiError> {
        let dir = self.data_dir.join(format!("{topic}-{index}"));
        // A leftover of a deleted topic of the same name must not come back.
        if self.storage.exists(&dir).unwrap_or(false) {
            let _ = self.storage.remove_dir_all(&dir);
        }
        let log = PartitionLog::open_with_storage(&dir, config, true, Arc::clone(&self.storage))
            .map_err(ApiError::from)?;
        log.set_fsync_observer(self.fsync_observer.lock().clone());
        Ok(Arc::new(Partition {
            topic: topic.to_string(),
            index,
            log: RwLock::new(Some(log)),
        }))
    }

    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        let store = self.changes.lock();
        let topic = self.get(name).ok_or_else(|| unknown_topic(name))?;
        store
            .write(&[MetadataChange::TopicDeleted(name.to_string())])
            .map_err(storage)?;
        {
            let mut state = self.state.write();
            state.topics.remove(name);
            state.by_id.remove(&topic.id);
        }
        for partition in &topic.partitions {
            if let Some(log) = partition.log.write().take() {
                if let Err(e) = log.delete() {
                    tracing::warn!(topic = name, partition = partition.index, error = %e, "removing deleted partition");
                }
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let store = self.changes.lock();
        let topic = self.get(name).ok_or_else(|| unknown_topic(name))?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            let message = if count == current {
                format!("Topic already has {current} partition(s).")
            } else {
                format!("The topic {name} currently has {current} partition(s); {count} would not be an increase.")
            };
            return Err(ApiError::new(ResponseError::InvalidPartitions, message));
        }
        if validate_only {
            return Ok(());
        }
        store
            .write(&[MetadataChange::Topic(TopicRecord {
                partitions: count,
                ..topic.record()
            })])
            .map_err(storage)?;
        let log_config = topic_config::log_config(&topic.configs, &self.defaults());
        let mut partitions = topic.partitions.clone();
        for index in current..count {
            partitions.push(self.open_new_partition(name, index, log_config.clone())?);
        }
        let updated = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs: topic.configs.clone(),
            partitions,
        });
        self.state.write().topics.insert(name.to_string(), updated);
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs semantics).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        Self::validate_configs(&configs)?;
        let store = self.changes.lock();
        let topic = self.get(name).ok_or_else(|| unknown_topic(name))?;
        if validate_only {
            return Ok(());
        }
        store
            .write(&[MetadataChange::Topic(TopicRecord {
                configs: configs.clone(),
                ..topic.record()
            })])
            .map_err(storage)?;
        let log_config = topic_config::log_config(&configs, &self.defaults());
        for partition in &topic.partitions {
            if let Ok(log) = partition.log() {
                log.update_config(log_config.clone());
            }
        }
        let updated = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            configs,
            partitions: topic.partitions.clone(),
        });
        self.state.write().topics.insert(name.to_string(), updated);
        Ok(())
    }

    /// Replaces the dynamic configs of a broker resource ("" = cluster default).
    pub fn set_broker_configs(
        &self,
        resource: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        for (name, value) in &configs {
            let Some((_, topic_name)) = crate::config::BROKER_TOPIC_DEFAULTS
                .iter()
                .find(|(b, _)| b == name)
            else {
                return Err(ApiError::new(
                    ResponseError::InvalidConfig,
                    format!("Cannot update these configs dynamically: {name}"),
                ));
            };
            topic_config::validate(topic_name, value)
                .map_err(|m| ApiError::new(ResponseError::InvalidConfig, m))?;
        }
        if !resource.is_empty() && resource != self.node_id.to_string() {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown broker {resource}"),
            ));
        }
        let store = self.changes.lock();
        if validate_only {
            return Ok(());
        }
        store
            .write(&[MetadataChange::BrokerConfig {
                resource: resource.to_string(),
                configs: configs.clone(),
            }])
            .map_err(storage)?;
        {
            let mut state = self.state.write();
            if resource.is_empty() {
                state.defaults.dynamic_default = configs;
            } else {
                state.defaults.dynamic_broker = configs;
            }
        }
        // New defaults change the effective settings of topics without overrides.
        let defaults = self.defaults();
        for topic in self.list() {
            let log_config = topic_config::log_config(&topic.configs, &defaults);
            for partition in &topic.partitions {
                if let Ok(log) = partition.log() {
                    log.update_config(log_config.clone());
                }
            }
        }
        Ok(())
    }

    /// A producer id never handed out before, not even before a restart:
    /// blocks are recorded (fsynced) in the metadata log before use.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let end = ids.1 + PRODUCER_ID_BLOCK;
            self.changes
                .lock()
                .write(&[MetadataChange::ProducerIdBlock { end }])
                .map_err(storage)?;
            *ids = (ids.1, end);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Times every fdatasync of every partition log, now and later.
    pub fn set_fsync_observer(&self, observer: strom_log::FsyncObserver) {
        *self.fsync_observer.lock() = Some(observer.clone());
        for partition in self.all_partitions() {
            if let Ok(log) = partition.log() {
                log.set_fsync_observer(Some(observer.clone()));
            }
        }
    }

    /// Flushes every log and the metadata log (clean shutdown).
    pub fn close(&self) -> Result<(), BrokerError> {
        let mut first_error = None;
        for partition in self.all_partitions() {
            if let Ok(log) = partition.log() {
                if let Err(e) = log.close() {
                    tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "closing log");
                    first_error.get_or_insert(BrokerError::from(e));
                }
            }
        }
        self.changes.lock().close()?;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn unknown_topic(name: &str) -> ApiError {
    ApiError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("This server does not host this topic: {name}"),
    )
}

fn storage(e: BrokerError) -> ApiError {
    tracing::error!(error = %e, "writing cluster metadata");
    ApiError::new(ResponseError::KafkaStorageError, e.to_string())
}

/// Removes partition directories that no topic owns: leftovers of a topic
/// deletion interrupted by a crash (its tombstone is durable, so the data is
/// no longer wanted).
fn remove_stray_partition_dirs(data_dir: &Path, topics: &HashMap<String, Arc<Topic>>) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || name == METADATA_LOG_DIR {
            continue;
        }
        let Some((topic, index)) = name.rsplit_once('-') else {
            continue;
        };
        let Ok(index) = index.parse::<i32>() else {
            continue;
        };
        let owned = topics
            .get(topic)
            .is_some_and(|t| index < t.partitions.len() as i32);
        if !owned && validate_topic_name(topic).is_ok() {
            tracing::warn!(dir = %entry.path().display(), "removing partition directory of a deleted topic");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad topic!").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn topics_survive_restart_and_deletion_sticks() {
        let dir = tempfile::tempdir().unwrap();
        let defaults = BrokerDefaults::default();
        let manager = TopicManager::open(
            dir.path(),
            1,
            defaults.clone(),
            true,
            Arc::new(strom_log::StdStorage),
        )
        .unwrap();
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let created = manager
            .create_topic("t1", 3, configs.clone(), false)
            .unwrap();
        manager
            .create_topic("t2", 1, BTreeMap::new(), false)
            .unwrap();
        assert_eq!(
            manager
                .create_topic("t1", 1, BTreeMap::new(), false)
                .unwrap_err()
                .code,
            ResponseError::TopicAlreadyExists
        );
        manager.create_partitions("t1", 4, false).unwrap();
        manager.delete_topic("t2").unwrap();
        manager.close().unwrap();
        drop(manager);

        let manager = TopicManager::open(
            dir.path(),
            1,
            defaults,
            false,
            Arc::new(strom_log::StdStorage),
        )
        .unwrap();
        let t1 = manager.get("t1").unwrap();
        assert_eq!(t1.id, created.id);
        assert_eq!(t1.partitions.len(), 4);
        assert_eq!(t1.configs, configs);
        assert!(manager.get("t2").is_none());
        assert!(!dir.path().join("t2-0").exists());
        assert!(manager.get_by_id(created.id).is_some());
    }

    #[test]
    fn producer_ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let manager = TopicManager::open(
            dir.path(),
            1,
            BrokerDefaults::default(),
            true,
            Arc::new(strom_log::StdStorage),
        )
        .unwrap();
        let first: Vec<i64> = (0..3)
            .map(|_| manager.allocate_producer_id().unwrap())
            .collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(manager);
        let manager = TopicManager::open(
            dir.path(),
            1,
            BrokerDefaults::default(),
            false,
            Arc::new(strom_log::StdStorage),
        )
        .unwrap();
        let next = manager.allocate_producer_id().unwrap();
        assert_eq!(next, PRODUCER_ID_BLOCK, "a restart starts a fresh block");
    }
}
