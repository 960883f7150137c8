//! The I/O around the transaction coordinator: `__transaction_state`
//! (created on first use, replayed at start-up) and the transaction markers
//! it asks for, written to every partition of a transaction and applied to
//! the groups' pending offsets before the transaction counts as complete.
//!
//! Markers are written synchronously: EndTxn is answered once the markers
//! are in the logs, so a client that sees its commit acknowledged can read
//! it with read_committed at once.

use crate::error::ApiError;
use crate::internal_log;
use crate::metadata::now_ms;
use crate::server::BrokerContext;
use crate::topics::{Topic, TopicManager};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use strom_coordinator::txn::{
    MarkerRequest, TransactionCoordinator, TxnConfig, TxnOutcome, TxnRecord,
};

pub const TXN_TOPIC: &str = "__transaction_state";

pub struct TxnService {
    coordinator: Mutex<TransactionCoordinator>,
    /// Transactions whose markers a request or the timer is writing right
    /// now. The timer's retry of owed markers skips them: a second copy of
    /// a marker, written after EndTxn was answered, could land inside the
    /// producer's next transaction and abort (or commit) part of it.
    writing: Mutex<HashSet<String>>,
    partitions: i32,
}

impl TxnService {
    pub fn load(
        topics: &TopicManager,
        config: TxnConfig,
        partitions: i32,
    ) -> Result<TxnService, ApiError> {
        let mut coordinator = TransactionCoordinator::new(config);
        if let Some(topic) = topics.get(TXN_TOPIC) {
            for partition in &topic.partitions {
                let log = partition.log()?;
                internal_log::for_each_record(&log, |record| {
                    if let Some(key) = &record.key {
                        coordinator.replay(&String::from_utf8_lossy(key), record.value.as_deref());
                    }
                })
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            }
        }
        Ok(TxnService {
            coordinator: Mutex::new(coordinator),
            writing: Mutex::new(HashSet::new()),
            partitions: topics
                .get(TXN_TOPIC)
                .map_or(partitions, |t| t.partitions.len() as i32),
        })
    }

    /// `__transaction_state`, created (compacted, like Kafka's) on first use.
    pub fn txn_topic(&self, topics: &TopicManager) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = topics.get(TXN_TOPIC) {
            return Ok(topic);
        }
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        match topics.create_topic(TXN_TOPIC, self.partitions, configs, false) {
            Ok(topic) => Ok(topic),
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                topics.get(TXN_TOPIC).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        "transaction topic vanished",
                    )
                })
            }
            Err(e) => Err(e),
        }
    }

    pub fn read<R>(&self, f: impl FnOnce(&TransactionCoordinator) -> R) -> R {
        f(&self.coordinator.lock())
    }

    /// Runs a coordinator call, persists its records, then writes the markers
    /// it asks for and records their completion. Blocking.
    pub fn run<R>(
        &self,
        broker: &BrokerContext,
        f: impl FnOnce(&mut TransactionCoordinator, i64) -> TxnOutcome<R>,
    ) -> Result<R, ApiError> {
        let (response, markers) = {
            let mut coordinator = self.coordinator.lock();
            let outcome = f(&mut coordinator, now_ms());
            self.append(&broker.topics, &outcome.records)?;
            // Claimed in the same critical section that entered the Prepare
            // state, so the timer never sees them as owed.
            let mut writing = self.writing.lock();
            for m in &outcome.markers {
                writing.insert(m.transactional_id.clone());
            }
            (outcome.response, outcome.markers)
        };
        let mut result = Ok(());
        for marker in markers {
            let written = self.write_markers(broker, &marker);
            self.writing.lock().remove(&marker.transactional_id);
            if result.is_ok() {
                result = written;
            }
        }
        result.map(|()| response)
    }

    fn append(&self, topics: &TopicManager, records: &[TxnRecord]) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        let topic = self.txn_topic(topics)?;
        let now = now_ms();
        for r in records {
            let p = strom_coordinator::partition_for(
                &r.transactional_id,
                topic.partitions.len() as i32,
            );
            let log = topic.partitions[p as usize].log()?;
            let batch = internal_log::encode_batch(
                &[(r.transactional_id.clone().into_bytes(), r.value.clone())],
                now,
            )
            .map_err(|m| ApiError::new(ResponseError::CoordinatorNotAvailable, m))?;
            let info = log.append(&batch, now)?;
            // Transaction state is small and decisive: always durable.
            log.flush_up_to(info.last_offset + 1)?;
        }
        Ok(())
    }

    /// Writes one transaction's markers and applies its offsets, then marks
    /// it complete.
    pub fn write_markers(
        &self,
        broker: &BrokerContext,
        marker: &MarkerRequest,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        for (topic, partition) in &marker.partitions {
            let Some(topic_state) = broker.topics.get(topic) else {
                continue;
            };
            let Some(p) = usize::try_from(*partition)
                .ok()
                .and_then(|i| topic_state.partitions.get(i))
            else {
                continue;
            };
            let log = p.log()?;
            let info = log.append_marker(
                marker.producer_id,
                marker.producer_epoch,
                marker.commit,
                0,
                now,
            )?;
            if log.config().flush == strom_log::FlushPolicy::Always {
                log.flush_up_to(info.last_offset + 1)?;
            }
        }
        for group in &marker.groups {
            let (_, completions) = broker.groups.run(&broker.topics, |c, now| {
                c.complete_txn_offsets(now, group, marker.producer_id, marker.commit)
            })?;
            broker.groups.deliver(completions);
        }
        let records = self.coordinator.lock().markers_written(
            now,
            &marker.transactional_id,
            marker.producer_epoch,
        );
        self.append(&broker.topics, &records)?;
        broker.appended.notify_waiters();
        tracing::debug!(
            transactional_id = %marker.transactional_id,
            commit = marker.commit,
            partitions = marker.partitions.len(),
            "transaction markers written"
        );
        Ok(())
    }

    /// Markers owed since before a restart, and timed-out transactions.
    pub fn tick(&self, broker: &BrokerContext) {
        let pending: Vec<_> = {
            let coordinator = self.coordinator.lock();
            let mut writing = self.writing.lock();
            coordinator
                .pending_markers()
                .into_iter()
                .filter(|m| writing.insert(m.transactional_id.clone()))
                .collect()
        };
        for marker in pending {
            let written = self.write_markers(broker, &marker);
            self.writing.lock().remove(&marker.transactional_id);
            if let Err(e) = written {
                tracing::error!(error = %e, "writing transaction markers");
            }
        }
        if let Err(e) = self.run(broker, |c, now| c.expire(now)) {
            tracing::error!(error = %e, "expiring transactions");
        }
    }
}
