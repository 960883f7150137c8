//! Opening a log: loading segments and indexes, and recovery after an unclean
//! shutdown.
//!
//! * Clean shutdown: sealed segments are trusted and their index files loaded;
//!   the active segment is scanned (and validated) from its last offset-index
//!   entry to find the log end offset.
//! * Unclean shutdown: every segment from the one containing the recovery
//!   point on is scanned from its start; each batch is validated (length,
//!   magic 2, CRC-32C, counts, contiguous offsets). At the first invalid or
//!   torn batch the segment is truncated and later segments are deleted.
//!   Indexes of scanned segments are rebuilt from the batches.
//!
//! In both cases an index file that is missing or invalid (size not a
//! multiple of the entry size, entries not monotonic, pointing past the log,
//! last entry not naming a batch) is rebuilt from the `.log`.
//!
//! Compaction: first of all, a segment swap that a crash interrupted after
//! its commit is completed (see `swap`). Segments below the recovery point,
//! or wholly below the cleaner checkpoint, are durable and may have offset
//! gaps (the cleaner removed records); their offset range reaches the next
//! segment's base, and a rescan of one (for a bad index) accepts increasing
//! offsets. Segments from the recovery point on were only ever appended to:
//! they must be contiguous within and across segments.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::checkpoint::{self, CLEANER_OFFSET_FILE, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::compaction::CleanerState;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::flush::FlushState;
use crate::index::{OffsetIndex, SegmentIndexer, TimeIndex};
use crate::log::LogState;
use crate::segment::{self, OffsetOrder, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::storage::{StdStorage, Storage};
use crate::PartitionLog;

/// What opening a log found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments whose batches were read and validated.
    pub segments_scanned: usize,
    /// Bytes cut from a torn or corrupt tail, including deleted later segments.
    pub truncated_bytes: u64,
    /// Segments whose index files were missing or invalid and were rebuilt
    /// (indexes of segments scanned for recovery are not counted).
    pub indexes_rebuilt: usize,
    pub log_end_offset: i64,
}

/// Files a crash can leave behind, removed on open.
const LEFTOVER_SUFFIXES: [&str; 4] = [".tmp", ".deleted", ".cleaned", ".swap"];

impl PartitionLog {
    /// Opens (creating if absent) the log in `dir`, e.g. `data/mytopic-0`.
    /// With `clean_shutdown == false` the tail is recovered (see the module
    /// documentation of `recovery`); what was done is logged and available
    /// from [`PartitionLog::recovery_report`].
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        Self::open_with_storage(dir, config, clean_shutdown, Arc::new(StdStorage))
    }

    /// [`PartitionLog::open`] on a given storage backend (tests use this to
    /// inject faults).
    pub fn open_with_storage(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        storage: Arc<dyn Storage>,
    ) -> Result<PartitionLog, LogError> {
        Self::open_inner(dir, config, clean_shutdown, storage, None)
    }

    /// After a storage failure took this log offline (see
    /// [`PartitionLog::offline_reason`]): opens it afresh from its files,
    /// first cutting everything past the durable offset (after a failed
    /// fsync nothing says what of it reached the disk, and a retried fsync
    /// may succeed without writing it), then recovering as after a crash.
    /// The returned log replaces this one, which stays offline; appends and
    /// flushes wait meanwhile. Fails while the storage still fails.
    pub fn reopen(&self) -> Result<PartitionLog, LogError> {
        let _cleaner = self.cleaner.lock();
        let _writers = self.state.upgradable_read();
        let durable = self.durable_offset();
        let log = Self::open_inner(
            &self.dir,
            self.config(),
            false,
            Arc::clone(&self.storage),
            Some(durable),
        )?;
        log.set_fsync_observer(self.fsync_observer.lock().clone());
        tracing::warn!(
            dir = %self.dir.display(),
            durable_offset = durable,
            log_end_offset_before = self.log_end_offset(),
            log_end_offset = log.log_end_offset(),
            "reopened log after a storage failure"
        );
        Ok(log)
    }

    fn open_inner(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
        storage: Arc<dyn Storage>,
        truncate_at: Option<i64>,
    ) -> Result<PartitionLog, LogError> {
        let loader = Loader {
            storage: &*storage,
            dir,
            config: &config,
            clean: clean_shutdown,
            truncate_at,
            report: RecoveryReport::default(),
            repaired: false,
            dir_changed: false,
        };
        let loaded = loader.load()?;
        let durable = loaded.state.log_end_offset;
        // A clean open that repaired nothing found the files as a close left
        // them.
        let closed_as = loaded
            .report
            .is_none()
            .then(|| loaded.state.close_fingerprint());
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            storage,
            config: RwLock::new(config),
            state: RwLock::new(loaded.state),
            flush_state: Mutex::new(FlushState {
                durable,
                in_flight: false,
            }),
            flush_done: Condvar::new(),
            checkpoint_lock: Mutex::new(loaded.checkpointed_segment_base),
            recovery_report: loaded.report,
            fsyncs: AtomicU64::new(0),
            dir_dirty: AtomicBool::new(false),
            offline: Mutex::new(None),
            opened_at: Instant::now(),
            last_flush_ms: AtomicU64::new(0),
            cleaner: Mutex::new(CleanerState {
                first_dirty_offset: loaded.first_dirty_offset,
            }),
            fsync_observer: Mutex::new(None),
            closed_as: Mutex::new(closed_as),
        })
    }
}

struct Loaded {
    state: LogState,
    report: Option<RecoveryReport>,
    checkpointed_segment_base: i64,
    first_dirty_offset: i64,
}

struct Loader<'a> {
    storage: &'a dyn Storage,
    dir: &'a Path,
    config: &'a LogConfig,
    clean: bool,
    /// Cut the log at this offset (a batch boundary), after loading.
    truncate_at: Option<i64>,
    report: RecoveryReport,
    repaired: bool,
    dir_changed: bool,
}

/// How handling one segment went.
type Invalid = Option<(u64, String)>;

impl Loader<'_> {
    fn io(&self, action: &str, e: std::io::Error) -> LogError {
        LogError::io(action, self.dir, e)
    }

    fn load(mut self) -> Result<Loaded, LogError> {
        self.storage
            .create_dir_all(self.dir)
            .map_err(|e| self.io("creating partition directory", e))?;
        if crate::swap::finish_interrupted(self.storage, self.dir)? {
            self.repaired = true;
            self.dir_changed = true;
        }
        let bases = self.list_segments()?;
        let checkpointed_start = checkpoint::read(self.storage, self.dir, LOG_START_OFFSET_FILE)?;
        let recovery_point = checkpoint::read(self.storage, self.dir, RECOVERY_POINT_FILE)?;
        let cleaned_up_to = checkpoint::read(self.storage, self.dir, CLEANER_OFFSET_FILE)?;

        let mut segments = Vec::with_capacity(bases.len().max(1));
        for base in bases {
            segments.push(Segment::open(self.storage, self.dir, base)?);
        }
        if segments.is_empty() {
            let base = checkpointed_start.unwrap_or(0);
            segments.push(Segment::create(self.storage, self.dir, base)?);
            self.dir_changed = true;
        }

        let scan_from = if self.clean {
            segments.len() - 1
        } else {
            let point = recovery_point.unwrap_or(i64::MIN);
            // Segments wholly below the cleaner's checkpoint were rewritten
            // and fsynced by the cleaner: durable even if the recovery point
            // was lost.
            let cleaned = cleaned_up_to.unwrap_or(i64::MIN);
            let cleaned_segments = segments[1..].partition_point(|s| s.base_offset <= cleaned);
            segments
                .partition_point(|s| s.base_offset <= point)
                .saturating_sub(1)
                .max(cleaned_segments)
        };
        let mut i = 0;
        while i < segments.len() {
            // From the recovery point on, offsets are contiguous across
            // segments: a gap means a later segment reached the disk while
            // the end of an earlier one did not, and only the prefix before
            // it is valid. (Below it, sealed segments span up to the next
            // one's base even when the cleaner removed their last records.)
            if i > 0 && segments[i].base_offset != segments[i - 1].next_offset {
                let reason = format!(
                    "segment starts at offset {} but the previous one ends at {}",
                    segments[i].base_offset,
                    segments[i - 1].next_offset
                );
                self.drop_segments_from(&mut segments, i, &reason)?;
                break;
            }
            let invalid = if i < scan_from {
                let next_base = segments[i + 1].base_offset;
                self.load_sealed(&mut segments[i], next_base)?
            } else if !self.clean {
                self.report.segments_scanned += 1;
                self.full_scan(&mut segments[i], OffsetOrder::Contiguous)?
            } else {
                self.load_active(&mut segments[i])?
            };
            if let Some((position, reason)) = invalid {
                self.truncate(&mut segments, i, position, &reason)?;
                break;
            }
            i += 1;
        }
        if let Some(limit) = self.truncate_at {
            self.cut_at(&mut segments, limit)?;
        }

        let mut state = LogState {
            log_start_offset: 0,
            log_end_offset: 0,
            segments,
            producers: Default::default(),
        };
        self.settle_offsets(&mut state, checkpointed_start)?;
        self.finish_segments(&mut state)?;
        state.producers = crate::producer_state::rebuild(self.storage, self.dir, &state)?;
        self.persist(&state)?;
        if !self.clean || self.repaired {
            // A snapshot taken beyond the recovered end describes batches
            // that are gone; once new appends pass its offset, the next
            // recovery would take it for the truth and forget the batches
            // in between (an idempotent producer's re-send would then be
            // appended twice). Replace it, durably, before any append.
            crate::producer_state::write_snapshot(self.storage, self.dir, &state)?;
        }

        let checkpointed_segment_base = if !self.clean || self.repaired {
            let base = state.active().base_offset;
            checkpoint::write(self.storage, self.dir, RECOVERY_POINT_FILE, base)?;
            base
        } else {
            recovery_point.map_or(i64::MIN, |p| {
                state.segments[state.segment_index(p)].base_offset
            })
        };
        if checkpointed_start != Some(state.log_start_offset) && self.repaired {
            checkpoint::write(
                self.storage,
                self.dir,
                LOG_START_OFFSET_FILE,
                state.log_start_offset,
            )?;
        }

        let first_dirty_offset = cleaned_up_to
            .unwrap_or(state.log_start_offset)
            .clamp(state.log_start_offset, state.log_end_offset);
        self.report.log_end_offset = state.log_end_offset;
        let report = (!self.clean || self.repaired).then_some(self.report.clone());
        if let Some(report) = &report {
            if report.truncated_bytes > 0 || report.indexes_rebuilt > 0 {
                tracing::warn!(dir = %self.dir.display(), ?report, "log recovered");
            } else {
                tracing::info!(dir = %self.dir.display(), ?report, "log recovered");
            }
        }
        Ok(Loaded {
            state,
            report,
            checkpointed_segment_base,
            first_dirty_offset,
        })
    }

    /// Base offsets of the `.log` files, sorted; removes crash leftovers and
    /// index files without a `.log`.
    fn list_segments(&mut self) -> Result<Vec<i64>, LogError> {
        let names = self
            .storage
            .list(self.dir)
            .map_err(|e| self.io("listing partition directory", e))?;
        let mut bases: Vec<i64> = names
            .iter()
            .filter_map(|n| segment::parse_log_file_name(n))
            .collect();
        bases.sort_unstable();
        for name in &names {
            let orphan_index = [INDEX_SUFFIX, TIME_INDEX_SUFFIX].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|stem| segment::parse_log_file_name(&format!("{stem}{LOG_SUFFIX}")))
                    .is_some_and(|base| bases.binary_search(&base).is_err())
            });
            let leftover = LEFTOVER_SUFFIXES.iter().any(|s| name.ends_with(s));
            if orphan_index || leftover {
                tracing::info!(dir = %self.dir.display(), file = %name, "removing leftover file");
                let path = self.dir.join(name);
                self.storage
                    .remove(&path)
                    .map_err(|e| LogError::io("removing leftover", &path, e))?;
                self.dir_changed = true;
            }
        }
        Ok(bases)
    }

    /// Reads and validates a segment's index files. `relative_limit` bounds
    /// the time index's relative offsets when the segment's end is known;
    /// `sealed` segments must have their final time index entry.
    fn read_indexes(
        &self,
        segment: &Segment,
        relative_limit: Option<u64>,
        sealed: bool,
    ) -> Result<Result<(OffsetIndex, TimeIndex), String>, LogError> {
        let read = |path: &Path| {
            self.storage
                .read_file(path)
                .map_err(|e| LogError::io("reading index", path, e))
        };
        let offset_bytes = read(&segment.files.index_path)?;
        let time_bytes = read(&segment.files.time_index_path)?;
        let (offset_bytes, time_bytes) = match (offset_bytes, time_bytes) {
            (Some(o), Some(t)) => (o, t),
            _ if segment.size == 0 => (Vec::new(), Vec::new()),
            _ => return Ok(Err("index file missing".into())),
        };
        let offset_index = match OffsetIndex::from_bytes(&offset_bytes, segment.size) {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("offset index: {reason}"))),
        };
        let time_index = match TimeIndex::from_bytes(&time_bytes, relative_limit) {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("time index: {reason}"))),
        };
        // A sealed segment's time index ends with the segment's max
        // timestamp, which is at least the first batch's.
        if sealed && segment.size > 0 {
            let first = segment.read_header(0)?;
            let last_ts = time_index.last().map_or(-1, |(t, _)| t);
            if first.max_timestamp >= 0 && last_ts < first.max_timestamp {
                return Ok(Err(format!(
                    "time index ends at timestamp {last_ts}, below the first batch's {}",
                    first.max_timestamp
                )));
            }
        }
        // The last entry must name the start of the batch it claims.
        if let Some((relative, position)) = offset_index.last() {
            let expected = segment.base_offset + i64::from(relative);
            match segment.read_header(u64::from(position)) {
                Ok(h) if h.last_offset() == expected => {}
                _ => {
                    return Ok(Err(format!(
                        "last offset index entry ({relative}, {position}) names no batch ending at offset {expected}"
                    )))
                }
            }
        }
        Ok(Ok((offset_index, time_index)))
    }

    fn note_rebuild(&mut self, segment: &Segment, reason: &str) {
        tracing::warn!(
            dir = %self.dir.display(),
            segment = segment.base_offset,
            %reason,
            "rebuilding index"
        );
        self.report.indexes_rebuilt += 1;
        self.repaired = true;
    }

    /// A sealed segment below the recovery point: trust the data, load the
    /// index files (rebuilding them if they are bad).
    fn load_sealed(&mut self, segment: &mut Segment, next_base: i64) -> Result<Invalid, LogError> {
        let limit = u64::try_from(next_base - segment.base_offset).ok();
        match self.read_indexes(segment, limit, true)? {
            Ok((offset_index, time_index)) => {
                segment.indexer =
                    SegmentIndexer::from_indexes(segment.base_offset, offset_index, time_index);
                segment.next_offset = next_base;
                segment.files.durable_sealed.store(true, Ordering::Release);
                Ok(None)
            }
            Err(reason) => {
                self.note_rebuild(segment, &reason);
                self.report.segments_scanned += 1;
                let invalid = self.full_scan(segment, OffsetOrder::Increasing)?;
                if invalid.is_none() {
                    segment.next_offset = next_base;
                }
                Ok(invalid)
            }
        }
    }

    /// The active segment after a clean shutdown: load the indexes and scan
    /// from the last offset-index entry to the end of the file.
    fn load_active(&mut self, segment: &mut Segment) -> Result<Invalid, LogError> {
        let (offset_index, time_index) = match self.read_indexes(segment, None, false)? {
            Ok(indexes) => indexes,
            Err(reason) => {
                self.note_rebuild(segment, &reason);
                self.report.segments_scanned += 1;
                return self.full_scan(segment, OffsetOrder::Contiguous);
            }
        };
        let Some((_, position)) = offset_index.last() else {
            // Less than one index interval of data: just scan it all.
            return self.full_scan(segment, OffsetOrder::Contiguous);
        };
        let position = u64::from(position);
        let first = segment.read_header(position)?;
        let mut indexer =
            SegmentIndexer::from_indexes(segment.base_offset, offset_index, time_index);
        let interval = self.config.index_interval_bytes;
        let outcome = segment.scan(
            position,
            first.base_offset,
            OffsetOrder::Contiguous,
            |h, p| indexer.resume_batch(h, p, interval),
        )?;
        let time_index_ok = indexer
            .time_index
            .last()
            .is_none_or(|(_, o)| segment.base_offset + i64::from(o) < outcome.next_offset);
        if outcome.invalid.is_some() || !time_index_ok {
            // Either real corruption or an index that lies: a full scan
            // tells them apart.
            self.note_rebuild(segment, "resuming from the index failed");
            self.report.segments_scanned += 1;
            return self.full_scan(segment, OffsetOrder::Contiguous);
        }
        segment.indexer = indexer;
        segment.next_offset = outcome.next_offset;
        Ok(None)
    }

    /// Validates every batch and rebuilds the indexes from them.
    fn full_scan(
        &mut self,
        segment: &mut Segment,
        order: OffsetOrder,
    ) -> Result<Invalid, LogError> {
        let mut indexer = SegmentIndexer::new(segment.base_offset);
        let interval = self.config.index_interval_bytes;
        let outcome = segment.scan(0, segment.base_offset, order, |h, p| {
            indexer.on_batch(h, p, interval)
        })?;
        segment.indexer = indexer;
        segment.next_offset = outcome.next_offset;
        segment.files.durable_sealed.store(false, Ordering::Release);
        Ok(outcome.invalid)
    }

    /// Cuts segment `i` at `position` and deletes every later segment.
    fn truncate(
        &mut self,
        segments: &mut Vec<Segment>,
        i: usize,
        position: u64,
        reason: &str,
    ) -> Result<(), LogError> {
        let segment = &mut segments[i];
        let cut = segment.size - position;
        tracing::warn!(
            dir = %self.dir.display(),
            segment = segment.base_offset,
            position,
            truncated_bytes = cut,
            %reason,
            "truncating log at invalid batch"
        );
        segment
            .files
            .log
            .truncate(position)
            .map_err(|e| LogError::io("truncating", &segment.files.log_path, e))?;
        segment.size = position;
        self.report.truncated_bytes += cut;
        self.repaired = true;
        self.drop_segments_from(segments, i + 1, reason)
    }

    /// Cuts the log before the first batch ending at or past `limit`.
    fn cut_at(&mut self, segments: &mut Vec<Segment>, limit: i64) -> Result<(), LogError> {
        let reason = format!("past the durable offset {limit} after a storage failure");
        let keep = segments.partition_point(|s| s.base_offset < limit).max(1);
        self.drop_segments_from(segments, keep, &reason)?;
        let last = segments.len() - 1;
        if segments[last].next_offset <= limit {
            return Ok(());
        }
        let mut cut = None;
        let segment = &segments[last];
        let outcome = segment.scan(0, segment.base_offset, OffsetOrder::Increasing, |h, p| {
            if cut.is_none() && h.last_offset() >= limit {
                cut = Some(p);
            }
        })?;
        let position = cut.unwrap_or(outcome.valid_end);
        self.truncate(segments, last, position, &reason)?;
        let invalid = self.full_scan(&mut segments[last], OffsetOrder::Increasing)?;
        debug_assert!(invalid.is_none());
        Ok(())
    }

    /// Deletes segment `i` and every later one.
    fn drop_segments_from(
        &mut self,
        segments: &mut Vec<Segment>,
        i: usize,
        reason: &str,
    ) -> Result<(), LogError> {
        if i >= segments.len() {
            return Ok(());
        }
        let later: Vec<Segment> = segments.drain(i..).collect();
        let bytes: u64 = later.iter().map(|s| s.size).sum();
        tracing::warn!(
            dir = %self.dir.display(),
            first = later[0].base_offset,
            segments = later.len(),
            bytes,
            %reason,
            "deleting segments after the end of the valid log"
        );
        for s in &later {
            s.delete_files(self.storage)?;
        }
        self.report.truncated_bytes += bytes;
        self.repaired = true;
        self.dir_changed = true;
        Ok(())
    }

    /// Derives the log start and end offsets, dropping segments wholly below
    /// the log start offset.
    fn settle_offsets(
        &mut self,
        state: &mut LogState,
        checkpointed_start: Option<i64>,
    ) -> Result<(), LogError> {
        let first_base = state.segments[0].base_offset;
        state.log_end_offset = state.active().next_offset;
        // The cleaner may have removed every record of the first segments
        // (and then the segments): the log start offset stays where it was.
        state.log_start_offset = checkpointed_start.unwrap_or(first_base);
        if state.log_start_offset > state.log_end_offset {
            tracing::warn!(
                dir = %self.dir.display(),
                log_start_offset = state.log_start_offset,
                log_end_offset = state.log_end_offset,
                "log start offset is beyond the recovered log end; starting an empty log there"
            );
            for s in state.segments.drain(..) {
                self.report.truncated_bytes += s.size;
                s.delete_files(self.storage)?;
            }
            let segment = Segment::create(self.storage, self.dir, state.log_start_offset)?;
            state.segments.push(segment);
            state.log_end_offset = state.log_start_offset;
            self.repaired = true;
            self.dir_changed = true;
        }
        while state.segments.len() > 1 && state.segments[1].base_offset <= state.log_start_offset {
            let s = state.segments.remove(0);
            tracing::info!(
                dir = %self.dir.display(),
                segment = s.base_offset,
                "deleting segment below the log start offset"
            );
            s.delete_files(self.storage)?;
            self.dir_changed = true;
        }
        Ok(())
    }

    /// Seals all segments but the last (idempotent for segments whose index
    /// files already carry the final entry) and prepares the active one.
    fn finish_segments(&mut self, state: &mut LogState) -> Result<(), LogError> {
        let (active, sealed) = state
            .segments
            .split_last_mut()
            .expect("a log always has a segment");
        for segment in sealed {
            segment.indexer.seal();
            segment.sealed = true;
        }
        active.sealed = false;
        if active.size > 0 {
            let first = active.read_header(0)?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            active.roll_base_ms = Some(if first.max_timestamp >= 0 {
                first.max_timestamp
            } else {
                now
            });
        }
        Ok(())
    }

    /// Makes what recovery decided durable: rebuilt index files of sealed
    /// segments, the log files of scanned segments, the directory.
    fn persist(&mut self, state: &LogState) -> Result<(), LogError> {
        let (active, sealed) = state
            .segments
            .split_last()
            .expect("a log always has a segment");
        for s in sealed {
            if s.files.durable_sealed.load(Ordering::Acquire) {
                continue;
            }
            s.files
                .log
                .sync()
                .map_err(|e| LogError::io("fsyncing", &s.files.log_path, e))?;
            for file in s.write_index_files(self.storage)? {
                file.sync()
                    .map_err(|e| LogError::io("fsyncing index of", &s.files.log_path, e))?;
            }
            s.files.durable_sealed.store(true, Ordering::Release);
        }
        if !self.clean || self.repaired {
            active
                .files
                .log
                .sync()
                .map_err(|e| LogError::io("fsyncing", &active.files.log_path, e))?;
        }
        if self.dir_changed {
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| self.io("fsyncing directory", e))?;
        }
        Ok(())
    }
}
