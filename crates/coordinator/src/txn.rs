//! The transaction coordinator (Kafka's `TransactionCoordinator` and
//! `TransactionMetadata`), as an I/O-free state machine like the group
//! coordinator: handlers return the records for `__transaction_state`, the
//! response, and [`MarkerRequest`]s — transaction markers the broker must
//! write to every partition of a transaction before calling
//! [`TransactionCoordinator::markers_written`].
//!
//! States follow Kafka: Empty → Ongoing (first AddPartitionsToTxn) →
//! PrepareCommit / PrepareAbort (EndTxn, or a timeout) → CompleteCommit /
//! CompleteAbort (markers written) → Ongoing again with the next
//! transaction. InitProducerId bumps the epoch, which fences zombies; an
//! ongoing transaction is aborted first.

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// The name Kafka reports in DescribeTransactions and ListTransactions.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump (a retried InitProducerId is accepted with it).
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// (topic, partition) in the current transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Consumer groups whose offsets are part of the transaction.
    pub groups: BTreeSet<String>,
    pub start_timestamp: i64,
    pub last_update_timestamp: i64,
}

/// Markers to write: a control batch (commit or abort) from this producer
/// and epoch to each partition, and the groups' pending offsets to
/// materialise (commit) or drop (abort).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerRequest {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnRecord {
    pub transactional_id: String,
    /// JSON of [`TransactionMetadata`]; None deletes it.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct TxnOutcome<R> {
    pub response: R,
    pub records: Vec<TxnRecord>,
    pub markers: Vec<MarkerRequest>,
}

#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`
    pub max_timeout_ms: i32,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
        }
    }
}

/// A successful InitProducerId.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

type TxnResult<T> = Result<T, ResponseError>;

pub struct TransactionCoordinator {
    config: TxnConfig,
    transactions: BTreeMap<String, TransactionMetadata>,
}

fn record(meta: &TransactionMetadata) -> TxnRecord {
    TxnRecord {
        transactional_id: meta.transactional_id.clone(),
        value: Some(serde_json::to_vec(meta).expect("serialisable")),
    }
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> Self {
        TransactionCoordinator {
            config,
            transactions: BTreeMap::new(),
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.transactions.get(transactional_id)
    }

    pub fn transactions(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.transactions.values()
    }

    /// Rebuilds the state from `__transaction_state`, record by record.
    /// Afterwards, [`pending_markers`](Self::pending_markers) lists the
    /// transactions caught in a Prepare state, whose markers must be
    /// (re)written.
    pub fn replay(&mut self, transactional_id: &str, value: Option<&[u8]>) {
        match value.and_then(|v| serde_json::from_slice::<TransactionMetadata>(v).ok()) {
            Some(meta) => {
                self.transactions.insert(transactional_id.to_string(), meta);
            }
            None => {
                self.transactions.remove(transactional_id);
            }
        }
    }

    /// Markers still owed after a replay (transactions left in a Prepare state).
    pub fn pending_markers(&self) -> Vec<MarkerRequest> {
        self.transactions
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|m| markers_for(m, m.state == TxnState::PrepareCommit))
            .collect()
    }

    /// InitProducerId with a transactional id. `allocate` hands out a fresh
    /// producer id (for a new transactional id, or when the epoch runs out).
    /// `expected` is the (producer id, epoch) a KIP-360 client sends, if any.
    pub fn init_producer_id(
        &mut self,
        now: i64,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        mut allocate: impl FnMut() -> TxnResult<i64>,
    ) -> TxnOutcome<TxnResult<ProducerIdAndEpoch>> {
        let fail = |e| TxnOutcome {
            response: Err(e),
            records: Vec::new(),
            markers: Vec::new(),
        };
        if transactional_id.is_empty() {
            return fail(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return fail(ResponseError::InvalidTransactionTimeout);
        }
        let Some(meta) = self.transactions.get_mut(transactional_id) else {
            let producer_id = match allocate() {
                Ok(id) => id,
                Err(e) => return fail(e),
            };
            let meta = TransactionMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch: 0,
                last_producer_epoch: -1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                start_timestamp: -1,
                last_update_timestamp: now,
            };
            let out = TxnOutcome {
                response: Ok(ProducerIdAndEpoch {
                    producer_id,
                    producer_epoch: 0,
                }),
                records: vec![record(&meta)],
                markers: Vec::new(),
            };
            self.transactions.insert(transactional_id.to_string(), meta);
            return out;
        };
        if let Some(expected) = expected {
            let current = expected.producer_id == meta.producer_id
                && (expected.producer_epoch == meta.producer_epoch
                    || expected.producer_epoch == meta.last_producer_epoch);
            if !current {
                return fail(ResponseError::ProducerFenced);
            }
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                fail(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Abort the open transaction under a bumped epoch (fencing the
                // old producer); the client retries once the markers are out.
                bump_epoch(meta);
                meta.state = TxnState::PrepareAbort;
                meta.last_update_timestamp = now;
                TxnOutcome {
                    response: Err(ResponseError::ConcurrentTransactions),
                    records: vec![record(meta)],
                    markers: vec![markers_for(meta, false)],
                }
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if meta.producer_epoch >= i16::MAX - 1 {
                    match allocate() {
                        Ok(id) => {
                            meta.producer_id = id;
                            meta.last_producer_epoch = -1;
                            meta.producer_epoch = 0;
                        }
                        Err(e) => return fail(e),
                    }
                } else {
                    bump_epoch(meta);
                }
                meta.timeout_ms = timeout_ms;
                meta.state = TxnState::Empty;
                meta.partitions.clear();
                meta.groups.clear();
                meta.last_update_timestamp = now;
                TxnOutcome {
                    response: Ok(ProducerIdAndEpoch {
                        producer_id: meta.producer_id,
                        producer_epoch: meta.producer_epoch,
                    }),
                    records: vec![record(meta)],
                    markers: Vec::new(),
                }
            }
        }
    }

    fn validate(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> TxnResult<&TransactionMetadata> {
        let meta = self
            .transactions
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn (the offsets partition of a
    /// group comes as a group).
    pub fn add_to_txn(
        &mut self,
        now: i64,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> TxnOutcome<TxnResult<()>> {
        let fail = |e| TxnOutcome {
            response: Err(e),
            records: Vec::new(),
            markers: Vec::new(),
        };
        let state = match self.validate(transactional_id, producer_id, epoch) {
            Ok(meta) => meta.state,
            Err(e) => return fail(e),
        };
        if matches!(state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return fail(ResponseError::ConcurrentTransactions);
        }
        let meta = self
            .transactions
            .get_mut(transactional_id)
            .expect("validated");
        let already = partitions.iter().all(|p| meta.partitions.contains(p))
            && group.is_none_or(|g| meta.groups.contains(g))
            && state == TxnState::Ongoing;
        if already {
            return TxnOutcome {
                response: Ok(()),
                records: Vec::new(),
                markers: Vec::new(),
            };
        }
        if state != TxnState::Ongoing {
            meta.partitions.clear();
            meta.groups.clear();
            meta.start_timestamp = now;
            meta.state = TxnState::Ongoing;
        }
        meta.partitions.extend(partitions.iter().cloned());
        if let Some(g) = group {
            meta.groups.insert(g.to_string());
        }
        meta.last_update_timestamp = now;
        TxnOutcome {
            response: Ok(()),
            records: vec![record(meta)],
            markers: Vec::new(),
        }
    }

    /// KIP-890 part 1: may this producer write transactional data to this
    /// partition now? Only if the partition was added to its ongoing
    /// transaction.
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partition: &(String, i32),
    ) -> TxnResult<()> {
        let meta = self.validate(transactional_id, producer_id, epoch)?;
        if meta.state == TxnState::Ongoing && meta.partitions.contains(partition) {
            Ok(())
        } else {
            Err(ResponseError::InvalidTxnState)
        }
    }

    /// EndTxn: prepare the commit or abort; the broker writes the markers.
    pub fn end_txn(
        &mut self,
        now: i64,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> TxnOutcome<TxnResult<()>> {
        let fail = |e| TxnOutcome {
            response: Err(e),
            records: Vec::new(),
            markers: Vec::new(),
        };
        let state = match self.validate(transactional_id, producer_id, epoch) {
            Ok(meta) => meta.state,
            Err(e) => return fail(e),
        };
        let ok = || TxnOutcome {
            response: Ok(()),
            records: Vec::new(),
            markers: Vec::new(),
        };
        match (state, commit) {
            (TxnState::Ongoing, _) => {
                let meta = self
                    .transactions
                    .get_mut(transactional_id)
                    .expect("validated");
                meta.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                meta.last_update_timestamp = now;
                TxnOutcome {
                    response: Ok(()),
                    records: vec![record(meta)],
                    markers: vec![markers_for(meta, commit)],
                }
            }
            // A retried EndTxn whose first attempt went through.
            (TxnState::CompleteCommit | TxnState::PrepareCommit, true) => ok(),
            (TxnState::CompleteAbort | TxnState::PrepareAbort, false) => ok(),
            (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                fail(ResponseError::ConcurrentTransactions)
            }
            _ => fail(ResponseError::InvalidTxnState),
        }
    }

    /// The markers of a Prepare state are written: the transaction completes.
    pub fn markers_written(
        &mut self,
        now: i64,
        transactional_id: &str,
        producer_epoch: i16,
    ) -> Vec<TxnRecord> {
        let Some(meta) = self.transactions.get_mut(transactional_id) else {
            return Vec::new();
        };
        if meta.producer_epoch != producer_epoch {
            return Vec::new();
        }
        meta.state = match meta.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return Vec::new(),
        };
        meta.partitions.clear();
        meta.groups.clear();
        meta.last_update_timestamp = now;
        vec![record(meta)]
    }

    /// Transactions open past their timeout are aborted under a bumped epoch,
    /// so the producer that let them lapse is fenced.
    pub fn expire(&mut self, now: i64) -> TxnOutcome<()> {
        let mut out = TxnOutcome {
            response: (),
            records: Vec::new(),
            markers: Vec::new(),
        };
        for meta in self.transactions.values_mut() {
            if meta.state == TxnState::Ongoing
                && now - meta.start_timestamp > meta.timeout_ms as i64
            {
                tracing::info!(transactional_id = %meta.transactional_id, "transaction timed out: aborting");
                bump_epoch(meta);
                meta.state = TxnState::PrepareAbort;
                meta.last_update_timestamp = now;
                out.records.push(record(meta));
                out.markers.push(markers_for(meta, false));
            }
        }
        out
    }
}

fn bump_epoch(meta: &mut TransactionMetadata) {
    meta.last_producer_epoch = meta.producer_epoch;
    meta.producer_epoch += 1;
}

fn markers_for(meta: &TransactionMetadata, commit: bool) -> MarkerRequest {
    MarkerRequest {
        transactional_id: meta.transactional_id.clone(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        commit,
        partitions: meta.partitions.iter().cloned().collect(),
        groups: meta.groups.iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut() -> TxnResult<i64> {
        let mut next = 100;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn p(topic: &str, partition: i32) -> (String, i32) {
        (topic.to_string(), partition)
    }

    #[test]
    fn commit_cycle_and_retries() {
        let mut c = TransactionCoordinator::new(TxnConfig::default());
        let init = c
            .init_producer_id(0, "t", 60_000, None, ids())
            .response
            .unwrap();
        assert_eq!(init.producer_epoch, 0);
        let (pid, epoch) = (init.producer_id, init.producer_epoch);
        assert_eq!(
            c.end_txn(1, "t", pid, epoch, true).response,
            Err(ResponseError::InvalidTxnState)
        );
        let added = c.add_to_txn(1, "t", pid, epoch, &[p("a", 0), p("b", 1)], None);
        assert!(added.response.is_ok());
        assert_eq!(added.records.len(), 1);
        assert!(c.verify_partition("t", pid, epoch, &p("a", 0)).is_ok());
        assert_eq!(
            c.verify_partition("t", pid, epoch, &p("a", 9)),
            Err(ResponseError::InvalidTxnState)
        );
        c.add_to_txn(2, "t", pid, epoch, &[], Some("g"));
        let end = c.end_txn(3, "t", pid, epoch, true);
        assert!(end.response.is_ok());
        assert_eq!(end.markers.len(), 1);
        assert_eq!(end.markers[0].partitions, vec![p("a", 0), p("b", 1)]);
        assert_eq!(end.markers[0].groups, vec!["g".to_string()]);
        assert!(end.markers[0].commit);
        // While markers are being written: a retry of the same EndTxn is fine,
        // anything else waits.
        assert!(c.end_txn(4, "t", pid, epoch, true).response.is_ok());
        assert_eq!(
            c.add_to_txn(4, "t", pid, epoch, &[p("a", 0)], None)
                .response,
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(c.markers_written(5, "t", epoch).len(), 1);
        assert_eq!(c.get("t").unwrap().state, TxnState::CompleteCommit);
        assert!(
            c.end_txn(6, "t", pid, epoch, true).response.is_ok(),
            "idempotent retry"
        );
        assert_eq!(
            c.end_txn(6, "t", pid, epoch, false).response,
            Err(ResponseError::InvalidTxnState)
        );
        // The next transaction.
        assert!(c
            .add_to_txn(7, "t", pid, epoch, &[p("c", 0)], None)
            .response
            .is_ok());
        assert_eq!(c.get("t").unwrap().partitions, [p("c", 0)].into());
    }

    #[test]
    fn a_new_producer_fences_the_old_one_and_aborts_its_transaction() {
        let mut c = TransactionCoordinator::new(TxnConfig::default());
        let old = c
            .init_producer_id(0, "t", 60_000, None, ids())
            .response
            .unwrap();
        c.add_to_txn(
            1,
            "t",
            old.producer_id,
            old.producer_epoch,
            &[p("a", 0)],
            None,
        );
        let first = c.init_producer_id(2, "t", 60_000, None, ids());
        assert_eq!(first.response, Err(ResponseError::ConcurrentTransactions));
        assert_eq!(first.markers.len(), 1);
        assert!(!first.markers[0].commit);
        assert_eq!(
            first.markers[0].producer_epoch, 1,
            "markers carry the bumped epoch"
        );
        c.markers_written(3, "t", 1);
        let new = c
            .init_producer_id(4, "t", 60_000, None, ids())
            .response
            .unwrap();
        assert_eq!((new.producer_id, new.producer_epoch), (old.producer_id, 2));
        // The zombie is fenced everywhere.
        assert_eq!(
            c.add_to_txn(
                5,
                "t",
                old.producer_id,
                old.producer_epoch,
                &[p("a", 0)],
                None
            )
            .response,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            c.end_txn(5, "t", old.producer_id, old.producer_epoch, true)
                .response,
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            c.add_to_txn(5, "t", 999, 2, &[p("a", 0)], None).response,
            Err(ResponseError::InvalidProducerIdMapping)
        );
    }

    #[test]
    fn timeouts_abort_and_fence() {
        let mut c = TransactionCoordinator::new(TxnConfig {
            max_timeout_ms: 10_000,
        });
        assert_eq!(
            c.init_producer_id(0, "t", 20_000, None, ids()).response,
            Err(ResponseError::InvalidTransactionTimeout)
        );
        let init = c
            .init_producer_id(0, "t", 1_000, None, ids())
            .response
            .unwrap();
        c.add_to_txn(
            100,
            "t",
            init.producer_id,
            init.producer_epoch,
            &[p("a", 0)],
            None,
        );
        assert!(c.expire(1_000).markers.is_empty());
        let expired = c.expire(1_200);
        assert_eq!(expired.markers.len(), 1);
        assert_eq!(c.get("t").unwrap().state, TxnState::PrepareAbort);
        assert_eq!(c.pending_markers().len(), 1);
        assert_eq!(
            c.end_txn(1_300, "t", init.producer_id, init.producer_epoch, true)
                .response,
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn replay_restores_every_transaction() {
        let mut c = TransactionCoordinator::new(TxnConfig::default());
        let mut log = Vec::new();
        let a = c.init_producer_id(0, "a", 60_000, None, ids());
        log.extend(a.records);
        let a = a.response.unwrap();
        log.extend(
            c.add_to_txn(1, "a", a.producer_id, a.producer_epoch, &[p("x", 0)], None)
                .records,
        );
        log.extend(
            c.end_txn(2, "a", a.producer_id, a.producer_epoch, true)
                .records,
        );
        let mut replayed = TransactionCoordinator::new(TxnConfig::default());
        for r in &log {
            replayed.replay(&r.transactional_id, r.value.as_deref());
        }
        assert_eq!(replayed.get("a"), c.get("a"));
        assert_eq!(replayed.pending_markers(), c.pending_markers());
        assert_eq!(
            replayed.pending_markers().len(),
            1,
            "a prepared commit still owes its markers"
        );
    }
}
