//! The I/O around the group coordinator: `__consumer_offsets` (created on
//! first use, replayed at start-up), parked JoinGroup/SyncGroup requests, and
//! the timer that drives session and rebalance timeouts.
//!
//! Each call locks the coordinator, lets it decide, and appends the records
//! it returns before unlocking, so the log holds them in the order they took
//! effect. Responses completed by the call are then delivered.

use crate::error::ApiError;
use crate::internal_log;
use crate::metadata::now_ms;
use crate::topics::{Topic, TopicManager};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strom_coordinator::{
    Completion, CoordinatorRecord, GroupConfig, GroupCoordinator, Outcome, Token,
};
use tokio::sync::oneshot;

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

enum Parked {
    Join(oneshot::Sender<JoinGroupResponse>),
    Sync(oneshot::Sender<SyncGroupResponse>),
}

pub struct GroupService {
    coordinator: Mutex<GroupCoordinator>,
    parked: Mutex<HashMap<Token, Parked>>,
    next_token: AtomicU64,
    offsets_partitions: i32,
}

impl GroupService {
    /// Rebuilds the coordinator from `__consumer_offsets`, if it exists.
    pub fn load(
        topics: &TopicManager,
        config: GroupConfig,
        offsets_partitions: i32,
    ) -> Result<GroupService, ApiError> {
        let mut coordinator = GroupCoordinator::new(config);
        if let Some(topic) = topics.get(OFFSETS_TOPIC) {
            let now = now_ms();
            let mut count = 0usize;
            for partition in &topic.partitions {
                let log = partition.log()?;
                internal_log::for_each_record(&log, |record| {
                    if let Some(key) = &record.key {
                        coordinator.replay(now, key, record.value.as_deref());
                        count += 1;
                    }
                })
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            }
            tracing::info!(
                records = count,
                groups = coordinator.group_ids().len(),
                "loaded consumer groups"
            );
        }
        Ok(GroupService {
            coordinator: Mutex::new(coordinator),
            parked: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(1),
            offsets_partitions: topics
                .get(OFFSETS_TOPIC)
                .map_or(offsets_partitions, |t| t.partitions.len() as i32),
        })
    }

    /// `__consumer_offsets`, created (compacted, like Kafka's) on first use.
    pub fn offsets_topic(&self, topics: &TopicManager) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = topics.get(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]);
        match topics.create_topic(OFFSETS_TOPIC, self.offsets_partitions, configs, false) {
            Ok(topic) => Ok(topic),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                topics.get(OFFSETS_TOPIC).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        "offsets topic vanished",
                    )
                })
            }
            Err(e) => Err(e),
        }
    }

    pub fn next_token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a coordinator call and persists its records, under the lock.
    /// Blocking: call from a blocking task.
    pub fn run<R>(
        &self,
        topics: &TopicManager,
        f: impl FnOnce(&mut GroupCoordinator, i64) -> Outcome<R>,
    ) -> Result<(Option<R>, Vec<Completion>), ApiError> {
        let mut coordinator = self.coordinator.lock();
        let outcome = f(&mut coordinator, now_ms());
        if !outcome.records.is_empty() {
            self.append(topics, &outcome.records)?;
        }
        Ok((outcome.response, outcome.completions))
    }

    /// Read-only access (OffsetFetch, DescribeGroups, ListGroups).
    pub fn read<R>(&self, f: impl FnOnce(&GroupCoordinator) -> R) -> R {
        f(&self.coordinator.lock())
    }

    fn append(&self, topics: &TopicManager, records: &[CoordinatorRecord]) -> Result<(), ApiError> {
        let topic = self.offsets_topic(topics)?;
        let mut by_partition: BTreeMap<i32, Vec<internal_log::KeyedRecord>> = BTreeMap::new();
        for r in records {
            let p = strom_coordinator::partition_for(&r.group_id, topic.partitions.len() as i32);
            by_partition
                .entry(p)
                .or_default()
                .push((r.key.clone(), r.value.clone()));
        }
        let now = now_ms();
        for (p, batch) in by_partition {
            let partition = &topic.partitions[p as usize];
            let log = partition.log()?;
            let bytes = internal_log::encode_batch(&batch, now)
                .map_err(|m| ApiError::new(ResponseError::CoordinatorNotAvailable, m))?;
            let info = log.append(&bytes, now).map_err(|e| {
                tracing::error!(error = %e, "appending to __consumer_offsets");
                ApiError::new(ResponseError::CoordinatorNotAvailable, e.to_string())
            })?;
            if log.config().flush == strom_log::FlushPolicy::Always {
                log.flush_up_to(info.last_offset + 1).map_err(|e| {
                    ApiError::new(ResponseError::CoordinatorNotAvailable, e.to_string())
                })?;
            }
        }
        Ok(())
    }

    pub fn park_join(&self, token: Token) -> oneshot::Receiver<JoinGroupResponse> {
        let (tx, rx) = oneshot::channel();
        self.parked.lock().insert(token, Parked::Join(tx));
        rx
    }

    pub fn park_sync(&self, token: Token) -> oneshot::Receiver<SyncGroupResponse> {
        let (tx, rx) = oneshot::channel();
        self.parked.lock().insert(token, Parked::Sync(tx));
        rx
    }

    /// Forgets a parked request (answered directly, or its client went away).
    pub fn unpark(&self, token: Token, cancel: bool) {
        self.parked.lock().remove(&token);
        if cancel {
            self.coordinator.lock().cancel(token);
        }
    }

    pub fn deliver(&self, completions: Vec<Completion>) {
        let mut parked = self.parked.lock();
        for completion in completions {
            match completion {
                Completion::Join(token, response) => {
                    if let Some(Parked::Join(tx)) = parked.remove(&token) {
                        let _ = tx.send(response);
                    }
                }
                Completion::Sync(token, response) => {
                    if let Some(Parked::Sync(tx)) = parked.remove(&token) {
                        let _ = tx.send(response);
                    }
                }
            }
        }
    }

    /// Timers; called every 100 ms from a background task.
    pub fn tick(&self, topics: &TopicManager) {
        match self.run(topics, |c, now| c.tick(now)) {
            Ok((_, completions)) => self.deliver(completions),
            Err(e) => tracing::error!(error = %e, "group coordinator tick"),
        }
    }
}

/// Removes a parked request if the future awaiting it is dropped (the
/// client disconnected), so the coordinator does not answer into the void.
pub struct ParkGuard<'a> {
    pub service: &'a GroupService,
    pub token: Token,
    pub armed: bool,
}

impl Drop for ParkGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.service.unpark(self.token, true);
        }
    }
}
