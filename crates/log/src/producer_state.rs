//! Idempotent-producer state of one partition (Kafka's
//! `ProducerStateManager`): for every producer id, its epoch and its last
//! five batches, so that a re-sent batch is recognised and answered with
//! its original offsets instead of being appended twice, and a gap in the
//! sequence is refused.
//!
//! Pure logic: the log calls [`ProducerStateManager::check`] under its
//! append lock before assigning offsets, and [`ProducerStateManager::update`]
//! after appending. The state is rebuilt at start-up from a snapshot plus
//! the batch headers after it.

use crate::batch::BatchHeader;
use std::collections::{HashMap, VecDeque};

/// How many batches per producer are remembered for de-duplication (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_PER_PRODUCER: usize = 5;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_SEQUENCE: i32 = -1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first; at most [`BATCHES_PER_PRODUCER`].
    pub batches: VecDeque<BatchMetadata>,
    /// Timestamp of the last append (for expiring idle producers).
    pub last_timestamp: i64,
    /// First offset of this producer's open transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

/// A transaction aborted in this partition: consumers reading committed
/// data skip this producer's records from `first_offset` up to the marker
/// at `last_offset` (Kafka's aborted transaction index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

impl ProducerEntry {
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }
}

/// Why a batch from an idempotent producer is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// INVALID_PRODUCER_EPOCH: a zombie of an older epoch.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// OUT_OF_ORDER_SEQUENCE_NUMBER: a gap (or a replay beyond the remembered batches).
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// UNKNOWN_PRODUCER_ID: no state for this producer and the batch does not start a sequence.
    #[error("producer {producer_id} is unknown and its batch starts at sequence {got}, not 0")]
    UnknownProducer { producer_id: i64, got: i32 },
}

/// The outcome of checking a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not idempotent, or the next batch in sequence: append it.
    Append,
    /// Already appended: answer with these offsets, append nothing.
    Duplicate(BatchMetadata),
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch, wrapping past `i32::MAX` as Kafka does.
pub fn last_sequence(header: &BatchHeader) -> i32 {
    let delta = header.last_offset_delta as i64;
    ((header.base_sequence as i64 + delta) % (i32::MAX as i64 + 1)) as i32
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Oldest first.
    aborted: Vec<AbortedTxn>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    pub fn producers(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(id, e)| (*id, e))
    }

    /// Decides what to do with a batch a client sent.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        let producer_id = header.producer_id;
        if producer_id == NO_PRODUCER_ID || header.base_sequence == NO_SEQUENCE {
            return Ok(SequenceCheck::Append);
        }
        let first = header.base_sequence;
        let last = last_sequence(header);
        let Some(entry) = self.producers.get(&producer_id) else {
            if first != 0 {
                return Err(SequenceError::UnknownProducer {
                    producer_id,
                    got: first,
                });
            }
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                epoch: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch restarts the sequence.
            if first != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first,
                });
            }
            return Ok(SequenceCheck::Append);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        let expected = entry.last_seq().map_or(0, next_seq);
        if first != expected {
            return Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got: first,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Records an appended batch (or one read back at recovery).
    pub fn update(&mut self, header: &BatchHeader, first_offset: i64) {
        if header.producer_id == NO_PRODUCER_ID {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        if header.producer_epoch > entry.epoch || entry.batches.is_empty() {
            if header.producer_epoch != entry.epoch {
                entry.batches.clear();
            }
            entry.epoch = header.producer_epoch;
        }
        entry.last_timestamp = header.max_timestamp;
        if header.is_transactional()
            && !header.is_control()
            && entry.current_txn_first_offset.is_none()
        {
            entry.current_txn_first_offset = Some(first_offset);
        }
        if header.base_sequence == NO_SEQUENCE {
            // Control batches (transaction markers) carry no sequence.
            return;
        }
        entry.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: last_sequence(header),
            first_offset,
            last_offset: first_offset + header.last_offset_delta as i64,
            max_timestamp: header.max_timestamp,
        });
        while entry.batches.len() > BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
    }

    /// A transaction marker was appended at `marker_offset`: the producer's
    /// open transaction ends; an abort is remembered for read_committed.
    pub fn complete_txn(&mut self, header: &BatchHeader, marker_offset: i64, commit: bool) {
        self.update(header, marker_offset);
        let Some(entry) = self.producers.get_mut(&header.producer_id) else {
            return;
        };
        if let Some(first_offset) = entry.current_txn_first_offset.take() {
            if !commit {
                self.aborted.push(AbortedTxn {
                    producer_id: header.producer_id,
                    first_offset,
                    last_offset: marker_offset,
                });
            }
        }
    }

    /// The first offset of the oldest open transaction: the last stable
    /// offset, unless there is none (then it is the high watermark).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.current_txn_first_offset)
            .min()
    }

    /// Aborted transactions that overlap `[from, to)`.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start offset.
    pub fn truncate_aborted_below(&mut self, log_start_offset: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
    }

    /// Forgets producers idle since before `cutoff_ms`
    /// (`producer.id.expiration.ms`).
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| e.last_timestamp >= cutoff_ms);
        before - self.producers.len()
    }

    /// A compact binary snapshot: count, then per producer its id, epoch,
    /// last timestamp and batches.
    pub fn to_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
                out.extend_from_slice(&b.max_timestamp.to_be_bytes());
            }
        }
        out.extend_from_slice(&(self.aborted.len() as u32).to_be_bytes());
        for a in &self.aborted {
            out.extend_from_slice(&a.producer_id.to_be_bytes());
            out.extend_from_slice(&a.first_offset.to_be_bytes());
            out.extend_from_slice(&a.last_offset.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Reads a snapshot; None if it is truncated or its checksum fails.
    pub fn from_snapshot(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 8 {
            return None;
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut r = Reader(body);
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let txn_first = r.i64()?;
            let n = r.u8()?;
            let mut batches = VecDeque::new();
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    max_timestamp: r.i64()?,
                });
            }
            let current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_timestamp,
                    current_txn_first_offset,
                },
            );
        }
        let aborted_count = r.u32()?;
        let mut aborted = Vec::new();
        for _ in 0..aborted_count {
            aborted.push(AbortedTxn {
                producer_id: r.i64()?,
                first_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        r.0.is_empty()
            .then_some(ProducerStateManager { producers, aborted })
    }
}

/// The file holding a snapshot: the offset it covers up to (8 bytes), then
/// [`ProducerStateManager::to_snapshot`].
pub(crate) const SNAPSHOT_FILE: &str = "producer-state-snapshot";

/// Written at clean close, so the next open need not scan the whole log.
pub(crate) fn write_snapshot(
    storage: &dyn crate::storage::Storage,
    dir: &std::path::Path,
    state: &crate::log::LogState,
) -> Result<(), crate::LogError> {
    let path = dir.join(SNAPSHOT_FILE);
    let mut bytes = state.log_end_offset.to_be_bytes().to_vec();
    bytes.extend_from_slice(&state.producers.to_snapshot());
    crate::storage::write_atomically(storage, &path, &bytes)
        .map_err(|e| crate::LogError::io("writing producer state snapshot", &path, e))
}

/// Rebuilds the producer state at open: the snapshot (if it is readable and
/// not beyond the log's end), then every batch header after it.
pub(crate) fn rebuild(
    storage: &dyn crate::storage::Storage,
    dir: &std::path::Path,
    state: &crate::log::LogState,
) -> Result<ProducerStateManager, crate::LogError> {
    let path = dir.join(SNAPSHOT_FILE);
    let snapshot = storage
        .read_file(&path)
        .map_err(|e| crate::LogError::io("reading producer state snapshot", &path, e))?
        .and_then(|bytes| {
            let offset = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
            let producers = ProducerStateManager::from_snapshot(&bytes[8..])?;
            (offset <= state.log_end_offset).then_some((producers, offset))
        });
    let (mut producers, from) = snapshot.unwrap_or_default();
    for segment in &state.segments {
        if segment.next_offset <= from {
            continue;
        }
        let mut position = 0u64;
        while position < segment.size {
            let header = segment.read_header(position)?;
            if header.last_offset() >= from {
                if header.is_control() {
                    // Markers are small: read the whole batch for its type.
                    let mut bytes = vec![0u8; header.total_size()];
                    segment
                        .files
                        .log
                        .read_at(&mut bytes, position)
                        .map_err(|e| {
                            crate::LogError::io("reading marker in", &segment.files.log_path, e)
                        })?;
                    match crate::control::marker_type(&header, &bytes) {
                        Some(commit) => producers.complete_txn(&header, header.base_offset, commit),
                        None => producers.update(&header, header.base_offset),
                    }
                } else {
                    producers.update(&header, header.base_offset);
                }
            }
            position += header.total_size() as u64;
        }
    }
    producers.truncate_aborted_below(state.log_start_offset);
    Ok(producers)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1000,
            max_timestamp: 1000,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn duplicates_gaps_and_epochs() {
        let mut state = ProducerStateManager::new();
        let b0 = header(7, 0, 0, 3);
        assert_eq!(state.check(&b0), Ok(SequenceCheck::Append));
        state.update(&b0, 100);
        // The same batch again: a duplicate with its original offsets.
        match state.check(&b0) {
            Ok(SequenceCheck::Duplicate(m)) => {
                assert_eq!((m.first_offset, m.last_offset), (100, 102))
            }
            other => panic!("{other:?}"),
        }
        let b1 = header(7, 0, 3, 2);
        assert_eq!(state.check(&b1), Ok(SequenceCheck::Append));
        state.update(&b1, 103);
        // A gap.
        assert!(matches!(
            state.check(&header(7, 0, 9, 1)),
            Err(SequenceError::OutOfOrder { expected: 5, .. })
        ));
        // A zombie.
        let mut s2 = state.clone();
        s2.update(&header(7, 1, 0, 1), 105);
        assert!(matches!(
            s2.check(&header(7, 0, 5, 1)),
            Err(SequenceError::StaleEpoch { .. })
        ));
        // A new epoch must start at 0.
        assert!(matches!(
            state.check(&header(7, 1, 4, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(state.check(&header(7, 1, 0, 1)), Ok(SequenceCheck::Append));
        // Unknown producer not starting at 0.
        assert!(matches!(
            state.check(&header(8, 0, 4, 1)),
            Err(SequenceError::UnknownProducer { .. })
        ));
        // Non-idempotent batches are never checked.
        assert_eq!(
            state.check(&header(-1, -1, -1, 10)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn only_five_batches_are_remembered() {
        let mut state = ProducerStateManager::new();
        for i in 0..7 {
            state.update(&header(1, 0, i, 1), i as i64);
        }
        assert_eq!(state.get(1).unwrap().batches.len(), BATCHES_PER_PRODUCER);
        assert!(matches!(
            state.check(&header(1, 0, 6, 1)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        // Older than the remembered window: out of order, as in Kafka.
        assert!(matches!(
            state.check(&header(1, 0, 0, 1)),
            Err(SequenceError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut state = ProducerStateManager::new();
        let h = header(1, 0, i32::MAX - 1, 2);
        assert_eq!(last_sequence(&h), i32::MAX);
        state.update(&header(1, 0, 0, 1), 0);
        state
            .producers
            .get_mut(&1)
            .unwrap()
            .batches
            .back_mut()
            .unwrap()
            .last_seq = i32::MAX;
        assert!(state.check(&header(1, 0, 0, 1)).is_ok());
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut state = ProducerStateManager::new();
        for pid in 0..4 {
            for seq in 0..3 {
                state.update(
                    &header(pid, pid as i16, seq * 2, 2),
                    (pid * 100 + seq as i64) * 2,
                );
            }
        }
        let bytes = state.to_snapshot();
        assert_eq!(
            ProducerStateManager::from_snapshot(&bytes),
            Some(state.clone())
        );
        let mut bad = bytes.clone();
        bad[10] ^= 1;
        assert_eq!(ProducerStateManager::from_snapshot(&bad), None);
        assert_eq!(
            ProducerStateManager::from_snapshot(&bytes[..bytes.len() - 1]),
            None
        );
        assert_eq!(state.expire(2000), 4);
    }
}
