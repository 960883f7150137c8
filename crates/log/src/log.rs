//! [`PartitionLog`]: append, read and lookups. Opening/recovery, flushing and
//! retention live in their own modules as further `impl PartitionLog` blocks.
//!
//! Locking: `state` is a `parking_lot::RwLock`. Everything that changes the
//! segment list or writes a segment (append, roll, retention, DeleteRecords)
//! holds its *upgradable* read lock, which serialises those writers while
//! readers keep going; it upgrades to the write lock only to publish (a few
//! in-memory updates). Readers copy what they need (file handle, positions)
//! under the read lock and do their file I/O after releasing it. fsyncs run
//! with no state lock held at all.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};

use crate::batch::{self, BatchHeader};
use crate::config::{LogConfig, TimestampType};
use crate::error::LogError;
use crate::flush::FlushState;
use crate::producer_state::SequenceCheck;
use crate::segment::{self, Segment, SegmentFiles};
use crate::storage::Storage;
use crate::RecoveryReport;

/// What [`PartitionLog::append`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record of the first batch.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// The timestamp written when the log uses LogAppendTime, else -1.
    pub log_append_time: i64,
    pub record_count: i64,
    pub log_start_offset: i64,
    /// The batch was a re-send of one already in the log (idempotent
    /// producer): nothing was appended, the offsets are the original ones.
    pub duplicate: bool,
}

/// What [`PartitionLog::read`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, byte for byte as stored.
    pub records: Bytes,
    pub log_start_offset: i64,
    /// The high watermark on a single node.
    pub log_end_offset: i64,
}

/// Where a batch lives on disk (see [`PartitionLog::locate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLocation {
    /// Base offset of the segment (and the name of its files).
    pub segment_base_offset: i64,
    /// Byte position of the batch in the segment's `.log` file.
    pub position: u64,
    pub header: BatchHeader,
}

/// The in-memory picture of the log, guarded by `PartitionLog::state`.
#[derive(Debug)]
pub(crate) struct LogState {
    /// Ordered by base offset; never empty; the last one is active.
    pub segments: Vec<Segment>,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// Idempotent producers' epochs and last batches, for de-duplication.
    pub producers: crate::producer_state::ProducerStateManager,
}

/// See [`LogState::close_fingerprint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CloseFingerprint {
    log_start_offset: i64,
    log_end_offset: i64,
    segments: usize,
    active_base_offset: i64,
    active_size: u64,
    producers: usize,
}

impl LogState {
    /// Index of the segment that holds `offset` (the last one starting at or
    /// below it; the first one if `offset` is below every segment).
    pub fn segment_index(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    pub fn active(&self) -> &Segment {
        self.segments.last().expect("a log always has a segment")
    }

    /// What [`PartitionLog::close`] writes depends on: while it stays the
    /// same, files a close (or a clean open) left complete stay so.
    pub fn close_fingerprint(&self) -> CloseFingerprint {
        let active = self.active();
        CloseFingerprint {
            log_start_offset: self.log_start_offset,
            log_end_offset: self.log_end_offset,
            segments: self.segments.len(),
            active_base_offset: active.base_offset,
            active_size: active.size,
            producers: self.producers.len(),
        }
    }

    pub fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has a segment")
    }
}

/// One partition's log. See the crate documentation for an example.
///
/// Internally synchronised: all methods take `&self` and the type is
/// `Send + Sync`. Appends serialise on an internal lock; reads never wait for
/// an fsync.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) config: RwLock<LogConfig>,
    pub(crate) state: RwLock<LogState>,
    pub(crate) flush_state: Mutex<FlushState>,
    pub(crate) flush_done: Condvar,
    /// Serialises checkpoint writes; holds the segment base of the last
    /// recovery point written.
    pub(crate) checkpoint_lock: Mutex<i64>,
    pub(crate) recovery_report: Option<RecoveryReport>,
    /// fdatasyncs issued on segment `.log` files.
    pub(crate) fsyncs: AtomicU64,
    /// A segment file was created since the directory was last fsynced.
    pub(crate) dir_dirty: AtomicBool,
    /// Set after a failed write or fsync: the log refuses further writes.
    pub(crate) offline: Mutex<Option<String>>,
    pub(crate) opened_at: Instant,
    /// Millis after `opened_at` at which the last flush completed.
    pub(crate) last_flush_ms: AtomicU64,
    /// The cleaner's progress; held for a whole compaction pass.
    pub(crate) cleaner: Mutex<crate::compaction::CleanerState>,
    /// Told how long each segment fdatasync took (for metrics).
    pub(crate) fsync_observer: Mutex<Option<FsyncObserver>>,
    /// The state the files were last left complete for (index files,
    /// checkpoints, producer snapshot): by a close, or as a clean open found
    /// them. A close of an unchanged log has nothing to write.
    pub(crate) closed_as: Mutex<Option<CloseFingerprint>>,
}

/// Receives the duration of every segment fdatasync (see
/// [`PartitionLog::set_fsync_observer`]).
pub type FsyncObserver = Arc<dyn Fn(std::time::Duration) + Send + Sync>;

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .field("log_start_offset", &self.log_start_offset())
            .field("log_end_offset", &self.log_end_offset())
            .finish_non_exhaustive()
    }
}

impl PartitionLog {
    /// Validates every batch in `records` (v2 batches as a producer sends
    /// them), assigns offsets from the log end offset, applies LogAppendTime
    /// if configured, and appends all batches or none. Rolls a new segment
    /// first when the active one is full or too old. Does not fsync.
    pub fn append(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        self.append_internal(records, now_ms, None)
    }

    /// Appends a transaction marker (a control batch) ending `producer_id`'s
    /// open transaction in this partition: a commit, or an abort that
    /// read_committed consumers then skip.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let batch = crate::control::marker_batch(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        );
        self.append_internal(&batch, now_ms, Some(commit))
    }

    /// The offset below which every transaction is decided (committed or
    /// aborted): read_committed consumers read up to here.
    pub fn last_stable_offset(&self) -> i64 {
        let state = self.state.read();
        state
            .producers
            .first_unstable_offset()
            .unwrap_or(state.log_end_offset)
            .min(state.log_end_offset)
    }

    /// Aborted transactions overlapping `[from, to)`, for read_committed fetches.
    pub fn aborted_transactions(
        &self,
        from: i64,
        to: i64,
    ) -> Vec<crate::producer_state::AbortedTxn> {
        self.state.read().producers.aborted_between(from, to)
    }

    /// The idempotent and transactional producers this partition knows.
    pub fn producer_states(&self) -> Vec<(i64, crate::producer_state::ProducerEntry)> {
        self.state
            .read()
            .producers
            .producers()
            .map(|(id, e)| (id, e.clone()))
            .collect()
    }

    /// `marker`: Some(commit) when appending a transaction marker.
    fn append_internal(
        &self,
        records: &[u8],
        now_ms: i64,
        marker: Option<bool>,
    ) -> Result<AppendInfo, LogError> {
        let config = self.config();
        let mut data = records.to_vec();
        let mut batches = validate_for_append(&data, config.max_message_bytes)?;
        if marker.is_none() && batches.iter().any(|(_, h)| h.is_control()) {
            return Err(LogError::InvalidRecords(
                "control batches are written by the broker, not by clients".into(),
            ));
        }
        if data.len() as u64 > u64::from(u32::MAX) / 2 {
            return Err(LogError::InvalidRecords(format!(
                "{} bytes are too many for one append",
                data.len()
            )));
        }
        self.check_online()?;
        let state = self.state.upgradable_read();

        // Idempotent producers: one batch per request (as Kafka requires),
        // re-sends answered with their original offsets, gaps refused.
        if batches.iter().any(|(_, h)| h.producer_id >= 0) && batches.len() > 1 {
            return Err(LogError::InvalidRecords(
                "an idempotent or transactional producer must send exactly one batch per partition"
                    .into(),
            ));
        }
        if let (Some(commit), Some((_, header))) = (marker, batches.first()) {
            if let Some(entry) = state.producers.get(header.producer_id) {
                if header.producer_epoch < entry.epoch {
                    return Err(crate::producer_state::SequenceError::StaleEpoch {
                        producer_id: header.producer_id,
                        epoch: header.producer_epoch,
                        current: entry.epoch,
                    }
                    .into());
                }
            }
            let _ = commit;
        } else if let Some((_, header)) = batches.first() {
            if let SequenceCheck::Duplicate(original) = state.producers.check(header)? {
                return Ok(AppendInfo {
                    base_offset: original.first_offset,
                    last_offset: original.last_offset,
                    log_append_time: -1,
                    record_count: original.last_offset - original.first_offset + 1,
                    log_start_offset: state.log_start_offset,
                    duplicate: true,
                });
            }
        }

        let base_offset = state.log_end_offset;
        let mut next_offset = base_offset;
        let log_append_time = config.timestamp_type == TimestampType::LogAppendTime;
        for (position, header) in &mut batches {
            let bytes = &mut data[*position..*position + header.total_size()];
            batch::set_base_offset(bytes, next_offset);
            if log_append_time {
                batch::set_log_append_time(bytes, now_ms);
            }
            *header = BatchHeader::parse(bytes)?;
            next_offset = header.next_offset();
        }
        let last_offset = next_offset - 1;
        // Index entries hold 32-bit offsets relative to the segment base.
        if last_offset - base_offset > i64::from(i32::MAX) {
            return Err(LogError::InvalidRecords(format!(
                "one append may span at most {} offsets, this one spans {}",
                i32::MAX,
                next_offset - base_offset
            )));
        }

        let state = if self.should_roll(
            state.active(),
            &config,
            data.len() as u64,
            last_offset,
            now_ms,
        ) {
            self.roll(state)?
        } else {
            state
        };

        let active = state.active();
        let position = active.size;
        let files = Arc::clone(&active.files);
        let file_len = files
            .log
            .len()
            .map_err(|e| LogError::io("measuring", &files.log_path, e))?;
        if file_len != position {
            // Index positions would be wrong from here on: refuse to write.
            let reason = format!(
                "{} is {file_len} bytes long but the log expects {position}",
                files.log_path.display()
            );
            self.go_offline(reason.clone());
            return Err(LogError::Io {
                context: "appending".into(),
                source: std::io::Error::other(reason),
            });
        }
        if let Err(e) = files.log.append(&data) {
            // Undo a partial write so the file matches what readers see.
            if let Err(undo) = files.log.truncate(position) {
                self.go_offline(format!(
                    "could not undo a failed append to {}: {undo}",
                    files.log_path.display()
                ));
            }
            return Err(LogError::io("appending to", &files.log_path, e));
        }

        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        let interval = config.index_interval_bytes;
        let active = state.active_mut();
        for (offset_in_data, header) in &batches {
            active
                .indexer
                .on_batch(header, position + *offset_in_data as u64, interval);
        }
        active.size += data.len() as u64;
        active.next_offset = next_offset;
        active.roll_base_ms.get_or_insert(now_ms);
        for (_, header) in &batches {
            match marker {
                Some(commit) => state
                    .producers
                    .complete_txn(header, header.base_offset, commit),
                None => state.producers.update(header, header.base_offset),
            }
        }
        state.log_end_offset = next_offset;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time: if log_append_time { now_ms } else { -1 },
            record_count: next_offset - base_offset,
            log_start_offset: state.log_start_offset,
            duplicate: false,
        })
    }

    fn should_roll(
        &self,
        active: &Segment,
        config: &LogConfig,
        append_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        if active.is_empty() {
            return false;
        }
        let full = active.size + append_bytes > config.effective_segment_bytes();
        let old = match (config.segment_ms, active.roll_base_ms) {
            (Some(max_age), Some(base)) => now_ms.saturating_sub(base) > max_age as i64,
            _ => false,
        };
        // Index entries hold 32-bit relative offsets.
        let offsets_overflow = last_offset - active.base_offset > i64::from(i32::MAX);
        full || old || offsets_overflow
    }

    /// Seals the active segment and starts a new one at the log end offset.
    /// The sealed segment's index files are written and fsynced by the next
    /// flush.
    pub(crate) fn roll<'a>(
        &'a self,
        state: RwLockUpgradableReadGuard<'a, LogState>,
    ) -> Result<RwLockUpgradableReadGuard<'a, LogState>, LogError> {
        // A producer-state snapshot at every roll (as Kafka takes them)
        // bounds what a recovery after a crash must rescan to rebuild it.
        crate::producer_state::write_snapshot(&*self.storage, &self.dir, &state)?;
        let segment = Segment::create(&*self.storage, &self.dir, state.log_end_offset)?;
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        let sealed = state.active_mut();
        sealed.indexer.seal();
        sealed.sealed = true;
        tracing::debug!(
            dir = %self.dir.display(),
            sealed = sealed.base_offset,
            new = segment.base_offset,
            "rolled segment"
        );
        state.segments.push(segment);
        self.dir_dirty.store(true, Ordering::Release);
        Ok(RwLockWriteGuard::downgrade_to_upgradable(state))
    }

    /// Whole batches starting with the one that contains `offset`. The first
    /// batch is returned whole even if larger than `max_bytes` (KIP-74);
    /// further batches only while the total stays within `max_bytes`. Nothing
    /// at or beyond `upper_bound` (exclusive; `None` = log end offset) is
    /// returned, including a batch straddling it.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: Option<i64>,
    ) -> Result<ReadResult, LogError> {
        let (parts, log_start_offset, log_end_offset, upper) =
            self.read_candidates(offset, upper_bound)?;

        let mut out: Vec<u8> = Vec::new();
        let mut found_first = false;
        for part in parts {
            let (start, first_size) = if found_first {
                (part.start, 0)
            } else {
                match segment::find_batch(
                    &*part.files.log,
                    &part.files.log_path,
                    part.start,
                    part.end,
                    offset,
                )? {
                    Some((position, header)) => {
                        found_first = true;
                        if header.last_offset() >= upper {
                            break;
                        }
                        (position, header.total_size())
                    }
                    None => continue,
                }
            };
            let budget = if out.is_empty() {
                max_bytes.max(first_size)
            } else {
                max_bytes.saturating_sub(out.len())
            };
            let len = (part.end.saturating_sub(start)).min(budget as u64) as usize;
            if len == 0 {
                if budget == 0 {
                    break;
                }
                continue;
            }
            let mut buf = vec![0u8; len];
            part.files
                .log
                .read_at(&mut buf, start)
                .map_err(|e| LogError::io("reading", &part.files.log_path, e))?;
            let mut used = 0;
            for found in batch::batches(&buf) {
                match found {
                    Ok(b) if b.header.last_offset() < upper => used = b.position + b.bytes.len(),
                    _ => break,
                }
            }
            let exhausted = used == buf.len() && start + len as u64 == part.end;
            if out.is_empty() {
                buf.truncate(used);
                out = buf;
            } else {
                out.extend_from_slice(&buf[..used]);
            }
            if !exhausted {
                break;
            }
        }
        Ok(ReadResult {
            records: Bytes::from(out),
            log_start_offset,
            log_end_offset,
        })
    }

    /// Where the batch containing `offset` is stored, found through the
    /// offset index (for diagnostics and tests). `None` at the log end.
    pub fn locate(&self, offset: i64) -> Result<Option<BatchLocation>, LogError> {
        let candidates: Vec<(i64, Arc<SegmentFiles>, u64, u64)> = {
            let state = self.state.read();
            if offset < state.log_start_offset || offset > state.log_end_offset {
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    log_start: state.log_start_offset,
                    log_end: state.log_end_offset,
                });
            }
            let first = state.segment_index(offset);
            state.segments[first..]
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let start = if i == 0 {
                        s.indexer.offset_index.lookup(s.base_offset, offset)
                    } else {
                        0
                    };
                    (s.base_offset, Arc::clone(&s.files), start, s.size)
                })
                .collect()
        };
        for (segment_base_offset, files, start, end) in candidates {
            if let Some((position, header)) =
                segment::find_batch(&*files.log, &files.log_path, start, end, offset)?
            {
                return Ok(Some(BatchLocation {
                    segment_base_offset,
                    position,
                    header,
                }));
            }
        }
        Ok(None)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.state.read().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.state.read().log_end_offset
    }

    /// The first batch (whole bytes) whose max timestamp is `>= timestamp`,
    /// found through the time index; `None` if there is none. Batches wholly
    /// below the log start offset are skipped.
    pub fn batch_for_timestamp(&self, timestamp: i64) -> Result<Option<Bytes>, LogError> {
        let (candidates, log_start) = {
            let state = self.state.read();
            let log_start = state.log_start_offset;
            let candidates: Vec<(Arc<SegmentFiles>, u64, u64)> = state
                .segments
                .iter()
                .filter(|s| s.indexer.max_timestamp >= timestamp && s.next_offset > log_start)
                .map(|s| {
                    let from_offset = s.indexer.time_index.lookup(s.base_offset, timestamp);
                    let position = s.indexer.offset_index.lookup(s.base_offset, from_offset);
                    (Arc::clone(&s.files), position, s.size)
                })
                .collect();
            (candidates, log_start)
        };
        for (files, start, end) in candidates {
            let found = segment::find_batch_by_timestamp(
                &*files.log,
                &files.log_path,
                start,
                end,
                timestamp,
                log_start,
            )?;
            if let Some((position, header)) = found {
                let mut buf = vec![0u8; header.total_size()];
                files
                    .log
                    .read_at(&mut buf, position)
                    .map_err(|e| LogError::io("reading", &files.log_path, e))?;
                return Ok(Some(Bytes::from(buf)));
            }
        }
        Ok(None)
    }

    /// `(max timestamp, offset)` over the log, at batch granularity: the
    /// offset is the last offset of the last batch carrying the max
    /// timestamp (after a restart, of the first such batch of its segment).
    /// `None` if the log is empty or carries no timestamps.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let state = self.state.read();
        if state.log_start_offset >= state.log_end_offset {
            return None;
        }
        let mut best: Option<(i64, i64)> = None;
        for s in &state.segments {
            let ts = s.indexer.max_timestamp;
            if ts >= 0
                && s.next_offset > state.log_start_offset
                && best.is_none_or(|(b, _)| ts >= b)
            {
                best = Some((ts, s.indexer.last_offset_of_max_timestamp));
            }
        }
        best
    }

    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration; it applies from the next append/retention run.
    pub fn update_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// Bytes in all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.state.read().segments.iter().map(|s| s.size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.state.read().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.state
            .read()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }

    /// The partition directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// What recovery did when the log was opened: `Some` after an unclean
    /// shutdown, or after a clean one if anything had to be repaired.
    pub fn recovery_report(&self) -> Option<RecoveryReport> {
        self.recovery_report.clone()
    }

    /// Lets the embedding broker time fdatasyncs, without the log depending
    /// on a metrics library.
    pub fn set_fsync_observer(&self, observer: Option<FsyncObserver>) {
        *self.fsync_observer.lock() = observer;
    }

    /// Number of fdatasyncs issued on segment `.log` files since opening
    /// (recovery excluded). Group commit keeps it below the number of
    /// [`PartitionLog::flush_up_to`] calls under concurrency.
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Removes the partition directory entirely (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let storage = Arc::clone(&self.storage);
        drop(self);
        storage
            .remove_dir_all(&dir)
            .map_err(|e| LogError::io("deleting partition directory", &dir, e))?;
        if let Some(parent) = dir.parent() {
            storage
                .sync_dir(parent)
                .map_err(|e| LogError::io("syncing directory", parent, e))?;
        }
        Ok(())
    }

    /// Why the log refuses writes, if a storage failure took it offline
    /// (see [`PartitionLog::reopen`]). Reads go on meanwhile.
    pub fn offline_reason(&self) -> Option<String> {
        self.offline.lock().clone()
    }

    pub(crate) fn check_online(&self) -> Result<(), LogError> {
        match &*self.offline.lock() {
            None => Ok(()),
            Some(reason) => Err(LogError::Io {
                context: format!(
                    "using log in {}, which is offline after an earlier storage failure",
                    self.dir.display()
                ),
                source: std::io::Error::other(reason.clone()),
            }),
        }
    }

    pub(crate) fn go_offline(&self, reason: String) {
        tracing::error!(dir = %self.dir.display(), %reason, "log going offline");
        self.offline.lock().get_or_insert(reason);
    }
}

/// Checks an append's input: whole batches, each within `max_message_bytes`
/// and valid. Returns each batch's position and header.
fn validate_for_append(
    data: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<(usize, BatchHeader)>, LogError> {
    if data.is_empty() {
        return Err(LogError::InvalidRecords(
            "no record batches to append".into(),
        ));
    }
    let mut batches = Vec::new();
    for found in batch::batches(data) {
        let found = found?;
        if found.bytes.len() > max_message_bytes {
            return Err(LogError::RecordTooLarge {
                size: found.bytes.len(),
                max: max_message_bytes,
            });
        }
        let header = batch::validate(found.bytes)
            .map_err(|e| batch::at_position(e, found.position as u64))?;
        batches.push((found.position, header));
    }
    Ok(batches)
}
