//! Log compaction, Kafka's log cleaner for one partition
//! ([`PartitionLog::compact`]).
//!
//! A pass works on the *cleanable* segments: sealed segments whose data and
//! indexes are durable (the pass flushes first), never the active one.
//! Everything below the cleaner's first dirty offset was cleaned before; the
//! dirty part runs from there to the first uncleanable offset, which is the
//! first segment holding a record newer than `min.compaction.lag.ms`, or the
//! first segment that is not durably sealed. A pass runs when
//! `dirty bytes / (clean + dirty bytes) >= min.cleanable.dirty.ratio`, or
//! when the oldest dirty record is older than `max.compaction.lag.ms`.
//!
//! 1. Build the offset map, key → latest offset, from the dirty segments
//!    (up to [`CleanerOptions::offset_map_bytes`]; if that is not enough the
//!    dirty range ends early, at a segment boundary, and the next pass goes
//!    on from there).
//! 2. Rewrite every cleanable segment below the end of the dirty range,
//!    grouped so that small segments merge (a group stays within
//!    `segment.bytes`). A record is kept if it has a key, no later offset of
//!    the map has the same key, and it is not a tombstone past its batch's
//!    delete horizon. A batch that keeps a tombstone and has no horizon yet
//!    gets one (`now + delete.retention.ms`, stored in the batch as KIP-534
//!    does), so a tombstone outlives its first clean by at least
//!    `delete.retention.ms`. Unchanged batches are copied byte for byte;
//!    changed ones are rebuilt with their original offsets (see `records`).
//!    Records without a key are dropped, as Kafka's cleaner drops them.
//! 3. Swap the cleaned segments in (see `swap`), then record the new first
//!    dirty offset in the `cleaner-offset-checkpoint`.
//!
//! Not yet: transactional and control batches are kept whole and their keys
//! do not enter the offset map (aborted data and markers are removed once
//! transactions exist); the last batch of an idempotent producer is not
//! specially retained (the rebuilt batches keep their producer id, epoch,
//! base sequence and last offset, so the producer state still reads).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLockUpgradableReadGuard;

use crate::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use crate::checkpoint::{self, CLEANER_OFFSET_FILE, LOG_START_OFFSET_FILE};
use crate::error::LogError;
use crate::index::SegmentIndexer;
use crate::records;
use crate::segment::{Segment, SegmentFiles, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX};
use crate::storage::{self, OpenMode, StorageFile};
use crate::swap::{self, SwapEntry};
use crate::PartitionLog;

/// Read and write size while cleaning.
const IO_CHUNK: usize = 1 << 20;
/// Estimated bytes per offset map entry besides the key (hash table slot,
/// `Vec` header, allocation).
const MAP_ENTRY_OVERHEAD: usize = 64;

/// Settings of the cleaner itself (Kafka's broker-level `log.cleaner.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanerOptions {
    /// Memory for the offset map of one pass (`log.cleaner.dedupe.buffer.size`).
    pub offset_map_bytes: usize,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            offset_map_bytes: 64 << 20,
        }
    }
}

/// Why [`PartitionLog::compact`] left the log alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompactionSkipped {
    /// `cleanup.policy` does not include `compact`.
    NotCompacted,
    /// No sealed, durable segment holds dirty records old enough to clean.
    NothingToClean,
    /// The dirty ratio is below `min.cleanable.dirty.ratio` and no record is
    /// past `max.compaction.lag.ms`.
    BelowDirtyRatio,
}

/// What one [`PartitionLog::compact`] call did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionReport {
    /// `Some` if nothing was cleaned.
    pub skipped: Option<CompactionSkipped>,
    /// Dirty bytes / cleanable bytes when the pass started.
    pub dirty_ratio: f64,
    /// The pass ran because of `max.compaction.lag.ms`, below the ratio.
    pub forced_by_max_lag: bool,
    /// Offsets rewritten: from the first segment to the new first dirty
    /// offset (exclusive).
    pub cleaned_range: Option<(i64, i64)>,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Records removed because a later record has the same key.
    pub superseded_removed: u64,
    /// Tombstones removed after their delete horizon.
    pub tombstones_removed: u64,
    /// Records without a key, removed.
    pub keyless_removed: u64,
}

impl CompactionReport {
    pub fn cleaned(&self) -> bool {
        self.skipped.is_none()
    }

    fn skipped(reason: CompactionSkipped, dirty_ratio: f64) -> Self {
        CompactionReport {
            skipped: Some(reason),
            dirty_ratio,
            ..Default::default()
        }
    }
}

/// The cleaner's state of one log; its mutex also serialises passes.
#[derive(Debug)]
pub(crate) struct CleanerState {
    pub first_dirty_offset: i64,
}

/// A cleanable segment as of the start of a pass.
struct Snap {
    base: i64,
    /// Base offset of the next segment.
    end: i64,
    size: u64,
    largest_timestamp: i64,
    files: Arc<SegmentFiles>,
}

/// A group of old segments and what the pass wrote for it.
struct Cleaned {
    entry: SwapEntry,
    members: Vec<Arc<SegmentFiles>>,
    /// Size and indexes of the cleaned segment, if any record survived.
    output: Option<(u64, SegmentIndexer)>,
    /// Every batch was copied unchanged.
    unchanged: bool,
}

type OffsetMap = HashMap<Vec<u8>, i64>;

impl PartitionLog {
    /// One cleaner pass with default [`CleanerOptions`]; see
    /// [`PartitionLog::compact_with`].
    pub fn compact(&self, now_ms: i64) -> Result<CompactionReport, LogError> {
        self.compact_with(now_ms, &CleanerOptions::default())
    }

    /// One cleaner pass at time `now_ms` (see the module documentation of
    /// `compaction` in the crate source, and docs/architecture.md): keeps
    /// the latest record per key in the durable, sealed segments, never
    /// renumbering offsets. Does nothing unless `cleanup.policy` includes
    /// `compact`. Concurrent reads see either the old or the new segments;
    /// appends continue except during the swap itself. An error before the
    /// swap leaves the log as it was; an error during the swap takes the log
    /// offline (the next open completes the swap).
    pub fn compact_with(
        &self,
        now_ms: i64,
        options: &CleanerOptions,
    ) -> Result<CompactionReport, LogError> {
        let config = self.config();
        if !config.cleanup_policy.compact {
            return Ok(CompactionReport::skipped(
                CompactionSkipped::NotCompacted,
                0.0,
            ));
        }
        self.check_online()?;
        let mut cleaner = self.cleaner.lock();
        // A manifest left by a pass that could not remove it would, after a
        // crash, make this pass's unfinished cleaned files look committed.
        let manifest = self.dir.join(swap::MANIFEST_FILE);
        if self
            .storage
            .exists(&manifest)
            .map_err(|e| LogError::io("checking", &manifest, e))?
        {
            swap::remove_manifest(&*self.storage, &self.dir)?;
        }
        let needs_flush = {
            let state = self.state.read();
            state.segments[..state.segments.len() - 1]
                .iter()
                .any(|s| !s.files.durable_sealed.load(Ordering::Acquire))
        };
        if needs_flush {
            // Only durably sealed segments are rewritten.
            self.flush()?;
        }
        let (snaps, log_start, segments_before) = self.cleanable_segments()?;
        let first_dirty = cleaner.first_dirty_offset.max(log_start);
        let d = snaps.partition_point(|s| s.end <= first_dirty);
        let min_lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let mut u = (d..snaps.len())
            .find(|&i| min_lag > 0 && snaps[i].largest_timestamp > now_ms.saturating_sub(min_lag))
            .unwrap_or(snaps.len());
        let clean_bytes: u64 = snaps[..d].iter().map(|s| s.size).sum();
        let dirty_bytes: u64 = snaps[d.min(u)..u].iter().map(|s| s.size).sum();
        if u <= d || dirty_bytes == 0 {
            return Ok(CompactionReport::skipped(
                CompactionSkipped::NothingToClean,
                0.0,
            ));
        }
        let dirty_ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64;
        let forced_by_max_lag = match config.max_compaction_lag_ms {
            Some(max_lag) => {
                // Kafka's measure: the first dirty batch's timestamp.
                let first = if snaps[d].size >= HEADER_LEN as u64 {
                    segment_header_at(&snaps[d].files, 0)?.max_timestamp
                } else {
                    -1
                };
                let oldest = if first >= 0 {
                    first
                } else {
                    snaps[d].largest_timestamp
                };
                let max_lag = i64::try_from(max_lag).unwrap_or(i64::MAX);
                now_ms.saturating_sub(oldest) > max_lag
            }
            None => false,
        };
        if dirty_ratio < config.min_cleanable_dirty_ratio && !forced_by_max_lag {
            return Ok(CompactionReport::skipped(
                CompactionSkipped::BelowDirtyRatio,
                dirty_ratio,
            ));
        }
        let forced_by_max_lag = forced_by_max_lag && dirty_ratio < config.min_cleanable_dirty_ratio;

        let mut map = OffsetMap::new();
        let mut map_bytes = 0usize;
        for (i, snap) in snaps.iter().enumerate().take(u).skip(d) {
            self.add_to_offset_map(snap, &mut map, &mut map_bytes)?;
            if map_bytes >= options.offset_map_bytes && i + 1 < u {
                tracing::info!(
                    dir = %self.dir.display(),
                    keys = map.len(),
                    dirty_end = snap.end,
                    "offset map full: cleaning part of the dirty range"
                );
                u = i + 1;
                break;
            }
        }
        let end = snaps[u - 1].end;

        let mut report = CompactionReport {
            dirty_ratio,
            forced_by_max_lag,
            cleaned_range: Some((snaps[0].base, end)),
            segments_before,
            bytes_before: snaps[..u].iter().map(|s| s.size).sum(),
            ..Default::default()
        };
        let max_group_bytes = config.effective_segment_bytes();
        let mut cleaned: Vec<Cleaned> = Vec::new();
        let mut start = 0;
        let mut group_bytes = 0u64;
        for i in 0..=u {
            let split = i == u
                || (i > start
                    && (group_bytes + snaps[i].size > max_group_bytes
                        || snaps[i].end - snaps[start].base > i64::from(i32::MAX)));
            if split {
                let group = &snaps[start..i];
                match self.clean_group(group, &map, now_ms, &config, &mut report) {
                    Ok(c) => cleaned.push(c),
                    Err(e) => {
                        for c in cleaned.iter().map(|c| c.entry.base).chain([group[0].base]) {
                            swap::remove_cleaned(&*self.storage, &self.dir, c);
                        }
                        return Err(e);
                    }
                }
                start = i;
                group_bytes = 0;
            }
            if i < u {
                group_bytes += snaps[i].size;
            }
        }
        report.bytes_after = cleaned
            .iter()
            .filter_map(|c| c.output.as_ref().map(|(size, _)| size))
            .sum();
        // A segment that would come back byte for byte needs no swap.
        cleaned.retain(|c| {
            let identical = c.unchanged && c.members.len() == 1;
            if identical {
                swap::remove_cleaned(&*self.storage, &self.dir, c.entry.base);
            }
            !identical
        });

        report.segments_after = self.swap_in(cleaned)?;
        cleaner.first_dirty_offset = end;
        checkpoint::write(&*self.storage, &self.dir, CLEANER_OFFSET_FILE, end)?;
        Ok(report)
    }

    /// The leading durable, sealed segments (never the active one), the log
    /// start offset and the number of segments.
    fn cleanable_segments(&self) -> Result<(Vec<Snap>, i64, usize), LogError> {
        let state = self.state.read();
        let mut snaps = Vec::new();
        for pair in state.segments.windows(2) {
            let s = &pair[0];
            if !(s.sealed && s.files.durable_sealed.load(Ordering::Acquire)) {
                break;
            }
            snaps.push(Snap {
                base: s.base_offset,
                end: pair[1].base_offset,
                size: s.size,
                largest_timestamp: s.largest_timestamp()?,
                files: Arc::clone(&s.files),
            });
        }
        Ok((snaps, state.log_start_offset, state.segments.len()))
    }

    fn add_to_offset_map(
        &self,
        snap: &Snap,
        map: &mut OffsetMap,
        map_bytes: &mut usize,
    ) -> Result<(), LogError> {
        for_each_batch(&snap.files, snap.size, |position, bytes| {
            let header = BatchHeader::parse(bytes)?;
            if header.is_control() || header.is_transactional() {
                return Ok(());
            }
            let decoded = records::decode(bytes).map_err(|e| corrupt(&snap.files, position, e))?;
            for record in &decoded.records {
                let Some(key) = decoded.key(record) else {
                    continue;
                };
                match map.get_mut(key) {
                    Some(offset) => *offset = record.offset,
                    None => {
                        *map_bytes += key.len() + MAP_ENTRY_OVERHEAD;
                        map.insert(key.to_vec(), record.offset);
                    }
                }
            }
            Ok(())
        })
    }

    /// Writes the cleaned segment of `group` to its `.cleaned` files.
    fn clean_group(
        &self,
        group: &[Snap],
        map: &OffsetMap,
        now_ms: i64,
        config: &crate::LogConfig,
        report: &mut CompactionReport,
    ) -> Result<Cleaned, LogError> {
        let base = group[0].base;
        let entry_end = group[group.len() - 1].end;
        let log_path = swap::cleaned_path(&self.dir, base, LOG_SUFFIX);
        let mut writer = CleanedWriter {
            storage: &*self.storage,
            path: &log_path,
            file: None,
            pending: Vec::new(),
            size: 0,
        };
        let mut indexer = SegmentIndexer::new(base);
        let interval = config.index_interval_bytes;
        let delete_retention = i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX);
        let mut unchanged = true;
        for snap in group {
            for_each_batch(&snap.files, snap.size, |position, bytes| {
                let kept = filter_batch(bytes, map, now_ms, delete_retention, report)
                    .map_err(|e| corrupt(&snap.files, position, e))?;
                unchanged &= matches!(kept, Some(Cow::Borrowed(_)));
                if let Some(kept) = kept {
                    if writer.size + kept.len() as u64 > i32::MAX as u64 {
                        // Index positions are 32-bit; rebuilt batches can
                        // grow a little (re-encoded timestamp deltas).
                        return Err(LogError::InvalidRecords(format!(
                            "cleaned segment {base} would exceed {} bytes",
                            i32::MAX
                        )));
                    }
                    let header = BatchHeader::parse(&kept)?;
                    indexer.on_batch(&header, writer.size, interval);
                    writer.write(&kept)?;
                }
                Ok(())
            })?;
        }
        let output = match writer.finish()? {
            Some((file, size)) => {
                file.sync()
                    .map_err(|e| LogError::io("fsyncing", &log_path, e))?;
                indexer.seal();
                for (suffix, bytes) in [
                    (INDEX_SUFFIX, indexer.offset_index.to_bytes()),
                    (TIME_INDEX_SUFFIX, indexer.time_index.to_bytes()),
                ] {
                    let path = swap::cleaned_path(&self.dir, base, suffix);
                    storage::overwrite(&*self.storage, &path, &bytes)
                        .and_then(|f| f.sync())
                        .map_err(|e| LogError::io("writing and fsyncing", &path, e))?;
                }
                Some((size, indexer))
            }
            None => None,
        };
        Ok(Cleaned {
            entry: SwapEntry {
                base,
                end: entry_end,
                kept: output.is_some(),
            },
            members: group.iter().map(|s| Arc::clone(&s.files)).collect(),
            output,
            unchanged,
        })
    }

    /// Swaps the cleaned groups in (those whose old segments are all still
    /// there: retention may have deleted some meanwhile). Returns the number
    /// of segments afterwards.
    fn swap_in(&self, cleaned: Vec<Cleaned>) -> Result<usize, LogError> {
        if cleaned.is_empty() {
            return Ok(self.segment_count());
        }
        // The cleaned files' directory entries, before the commit refers to
        // them (outside the append lock: nobody else touches them).
        if let Err(e) = self
            .storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io("fsyncing directory", &self.dir, e))
        {
            for c in &cleaned {
                swap::remove_cleaned(&*self.storage, &self.dir, c.entry.base);
            }
            return Err(e);
        }
        let state = self.state.upgradable_read();
        let position = |c: &Cleaned| -> Option<usize> {
            let i = state
                .segments
                .iter()
                .position(|s| Arc::ptr_eq(&s.files, &c.members[0]))?;
            let n = c.members.len();
            let intact = i + n < state.segments.len()
                && state.segments[i + n].base_offset == c.entry.end
                && c.members
                    .iter()
                    .zip(&state.segments[i..i + n])
                    .all(|(m, s)| Arc::ptr_eq(m, &s.files));
            intact.then_some(i)
        };
        let (valid, stale): (Vec<Cleaned>, Vec<Cleaned>) =
            cleaned.into_iter().partition(|c| position(c).is_some());
        for c in &stale {
            tracing::info!(dir = %self.dir.display(), base = c.entry.base, "segments changed during cleaning; not swapping them");
            swap::remove_cleaned(&*self.storage, &self.dir, c.entry.base);
        }
        if valid.is_empty() {
            return Ok(state.segments.len());
        }
        let entries: Vec<SwapEntry> = valid.iter().map(|c| c.entry).collect();
        let head_dropped = valid
            .first()
            .is_some_and(|c| c.output.is_none() && position(c) == Some(0));
        if head_dropped {
            // The log then starts below its first segment; the log start
            // offset must not follow the segment up after a restart (a
            // consumer at an offset in between would be out of range).
            let written = checkpoint::write(
                &*self.storage,
                &self.dir,
                LOG_START_OFFSET_FILE,
                state.log_start_offset,
            );
            if let Err(e) = written {
                for c in &valid {
                    swap::remove_cleaned(&*self.storage, &self.dir, c.entry.base);
                }
                return Err(e);
            }
        }
        match swap::commit(&*self.storage, &self.dir, &entries) {
            Ok(()) => {}
            Err(swap::CommitError::NotCommitted(e)) => {
                // Nothing refers to the cleaned files: the pass just fails
                // (a full disk leaves the log online, as for an append).
                for c in &valid {
                    swap::remove_cleaned(&*self.storage, &self.dir, c.entry.base);
                }
                return Err(e);
            }
            Err(swap::CommitError::Unknown(e)) => {
                self.go_offline(format!("committing a segment swap: {e}"));
                return Err(e);
            }
        }

        // Committed: from here on a failure leaves disk and memory apart,
        // and only reopening (which completes the swap) reconciles them.
        let fail = |e: LogError| {
            self.go_offline(format!("completing a segment swap: {e}"));
            e
        };
        swap::replace_files(&*self.storage, &self.dir, &entries).map_err(fail)?;
        let mut replacements = Vec::with_capacity(valid.len());
        for c in valid {
            let i = position(&c).expect("checked above, under the same lock");
            let segment = match c.output {
                Some((size, indexer)) => {
                    Some(self.open_cleaned(c.entry, size, indexer).map_err(fail)?)
                }
                None => None,
            };
            replacements.push((i, c.members.len(), segment));
        }
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        for (i, n, segment) in replacements.into_iter().rev() {
            let dropped = segment.is_none();
            state.segments.splice(i..i + n, segment);
            if dropped && i > 0 {
                // The previous segment's offset range now reaches the next one.
                state.segments[i - 1].next_offset = state.segments[i].base_offset;
            }
        }
        let segments = state.segments.len();
        drop(state);
        // Still under the cleaner's lock, so no other swap starts meanwhile.
        if let Err(e) = swap::remove_manifest(&*self.storage, &self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not finish a segment swap; the next open will");
        }
        Ok(segments)
    }

    /// The in-memory segment for a swapped-in cleaned segment.
    fn open_cleaned(
        &self,
        entry: SwapEntry,
        size: u64,
        indexer: SegmentIndexer,
    ) -> Result<Segment, LogError> {
        let (log_path, index_path, time_index_path) = Segment::paths(&self.dir, entry.base);
        let log = self
            .storage
            .open(&log_path, OpenMode::Existing)
            .map_err(|e| LogError::io("opening cleaned segment", &log_path, e))?;
        Ok(Segment {
            base_offset: entry.base,
            files: Arc::new(SegmentFiles {
                log,
                log_path,
                index_path,
                time_index_path,
                durable_sealed: AtomicBool::new(true),
            }),
            size,
            next_offset: entry.end,
            indexer,
            roll_base_ms: None,
            sealed: true,
        })
    }
}

/// Decides which records of one batch stay; `None` if none does.
fn filter_batch<'a>(
    bytes: &'a [u8],
    map: &OffsetMap,
    now_ms: i64,
    delete_retention_ms: i64,
    report: &mut CompactionReport,
) -> Result<Option<Cow<'a, [u8]>>, String> {
    let header = BatchHeader::parse(bytes).map_err(|e| e.to_string())?;
    if header.is_control() || header.is_transactional() {
        return Ok(Some(Cow::Borrowed(bytes)));
    }
    let decoded = records::decode(bytes)?;
    let horizon = header.delete_horizon_ms();
    let tombstones_expired = horizon.is_some_and(|h| now_ms >= h);
    let mut keep = Vec::with_capacity(decoded.records.len());
    let mut keeps_tombstone = false;
    for (i, record) in decoded.records.iter().enumerate() {
        let Some(key) = decoded.key(record) else {
            report.keyless_removed += 1;
            continue;
        };
        if map.get(key).is_some_and(|&latest| record.offset < latest) {
            report.superseded_removed += 1;
            continue;
        }
        if !record.has_value {
            if tombstones_expired {
                report.tombstones_removed += 1;
                continue;
            }
            keeps_tombstone = true;
        }
        keep.push(i);
    }
    let set_horizon = keeps_tombstone && horizon.is_none();
    if keep.is_empty() {
        return Ok(None);
    }
    if keep.len() == decoded.records.len() && !set_horizon {
        return Ok(Some(Cow::Borrowed(bytes)));
    }
    let horizon = if set_horizon {
        Some(now_ms.saturating_add(delete_retention_ms))
    } else {
        horizon
    };
    records::rebuild(&decoded, &keep, horizon).map(|b| Some(Cow::Owned(b)))
}

/// A written file and its size.
type WrittenFile = (Arc<dyn StorageFile>, u64);

/// Appends to a `.cleaned` file in large writes, creating it on first use.
struct CleanedWriter<'a> {
    storage: &'a dyn crate::Storage,
    path: &'a std::path::Path,
    file: Option<Arc<dyn StorageFile>>,
    pending: Vec<u8>,
    /// Bytes written or pending.
    size: u64,
}

impl CleanedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        self.pending.extend_from_slice(bytes);
        self.size += bytes.len() as u64;
        if self.pending.len() >= IO_CHUNK {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = match &self.file {
            Some(file) => file,
            None => self.file.insert(
                self.storage
                    .open(self.path, OpenMode::Truncate)
                    .map_err(|e| LogError::io("creating", self.path, e))?,
            ),
        };
        file.append(&self.pending)
            .map_err(|e| LogError::io("writing", self.path, e))?;
        self.pending.clear();
        Ok(())
    }

    /// The file and its size, or `None` if nothing was written.
    fn finish(mut self) -> Result<Option<WrittenFile>, LogError> {
        self.drain()?;
        Ok(self.file.take().map(|f| (f, self.size)))
    }
}

/// Calls `f` with the position and bytes of every batch of a segment's first
/// `size` bytes, each validated (CRC included).
fn for_each_batch(
    files: &SegmentFiles,
    size: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut position = 0u64;
    let mut buf = Vec::new();
    while position < size {
        let want = (size - position).min(IO_CHUNK as u64) as usize;
        buf.resize(want, 0);
        files
            .log
            .read_at(&mut buf, position)
            .map_err(|e| LogError::io("reading", &files.log_path, e))?;
        let mut used = 0usize;
        while buf.len() - used >= HEADER_LEN {
            let header = BatchHeader::parse(&buf[used..])
                .map_err(|e| batch::at_position(e, position + used as u64))?;
            let total = header.total_size();
            if total > buf.len() - used {
                break;
            }
            let bytes = &buf[used..used + total];
            batch::validate_stored(bytes)
                .map_err(|e| batch::at_position(e, position + used as u64))?;
            f(position + used as u64, bytes)?;
            used += total;
        }
        if used > 0 {
            position += used as u64;
            continue;
        }
        // A batch larger than the chunk, or a torn end.
        let header = segment_header_at(files, position)?;
        let total = header.total_size();
        if total < LOG_OVERHEAD || position + total as u64 > size {
            return Err(corrupt(
                files,
                position,
                "batch runs past the segment end".into(),
            ));
        }
        buf.resize(total, 0);
        files
            .log
            .read_at(&mut buf, position)
            .map_err(|e| LogError::io("reading", &files.log_path, e))?;
        batch::validate_stored(&buf).map_err(|e| batch::at_position(e, position))?;
        f(position, &buf)?;
        position += total as u64;
    }
    Ok(())
}

fn segment_header_at(files: &SegmentFiles, position: u64) -> Result<BatchHeader, LogError> {
    crate::segment::read_header(&*files.log, &files.log_path, position)
}

fn corrupt(files: &SegmentFiles, position: u64, reason: String) -> LogError {
    LogError::corrupt(
        position,
        format!("in {}: {reason}", files.log_path.display()),
    )
}
