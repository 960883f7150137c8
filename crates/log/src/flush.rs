//! Durability: group commit (`flush_up_to`), the recovery-point checkpoint and
//! clean close.
//!
//! One caller at a time runs a *sync round*: it notes the log end offset,
//! fdatasyncs every segment holding unsynced data, writes and fsyncs the index
//! files of sealed segments, fsyncs the directory if segments were created,
//! and then publishes the noted offset as durable. Callers arriving meanwhile
//! wait for that round; if it covers their offset they return without an
//! fsync of their own, otherwise one of them runs the next round, which
//! covers everybody who arrived in the meantime.
//!
//! The recovery point written to disk is the start of the first segment that
//! is not yet durably sealed (capped by the durable offset): recovery rescans
//! from the start of the segment containing the recovery point, so the file
//! only needs rewriting when that segment changes, i.e. about once per roll.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::error::LogError;
use crate::segment::SegmentFiles;
use crate::PartitionLog;

#[derive(Debug)]
pub(crate) struct FlushState {
    /// Everything below this offset is fdatasynced.
    pub durable: i64,
    /// A sync round is running.
    pub in_flight: bool,
}

/// Why a sync round failed, and whether an fsync did (see `flush_up_to`).
struct SyncFailure {
    error: LogError,
    fsync: bool,
}

impl SyncFailure {
    fn fsync(error: LogError) -> SyncFailure {
        SyncFailure { error, fsync: true }
    }
}

/// Work for one segment in a sync round.
struct SyncJob {
    files: Arc<SegmentFiles>,
    /// For a sealed segment not yet durably sealed: its index files' bytes.
    index_bytes: Option<(Vec<u8>, Vec<u8>)>,
}

impl PartitionLog {
    /// Group commit: returns once everything below `offset` (capped at the log
    /// end offset) is fdatasynced. Concurrent callers share sync rounds.
    pub fn flush_up_to(&self, offset: i64) -> Result<(), LogError> {
        let offset = offset.min(self.log_end_offset());
        let mut flush = self.flush_state.lock();
        loop {
            self.check_online()?;
            if flush.durable >= offset {
                drop(flush);
                self.note_flush_completed();
                return Ok(());
            }
            if flush.in_flight {
                self.flush_done.wait(&mut flush);
                continue;
            }
            flush.in_flight = true;
            let durable_before = flush.durable;
            drop(flush);

            let result = self.sync_round(durable_before);

            flush = self.flush_state.lock();
            flush.in_flight = false;
            match result {
                Ok(durable) => flush.durable = flush.durable.max(durable),
                Err(SyncFailure { error, fsync }) => {
                    if fsync {
                        // After a failed fsync the kernel may have dropped
                        // the dirty pages and cleared the error: what is on
                        // disk is unknown, and a retried fsync could succeed
                        // without writing them. Only a reopen (which cuts
                        // back to the durable offset) may write again.
                        self.go_offline(error.to_string());
                    }
                    self.flush_done.notify_all();
                    return Err(error);
                }
            }
            self.flush_done.notify_all();
        }
    }

    /// `flush_up_to(log_end_offset())`.
    pub fn flush(&self) -> Result<(), LogError> {
        self.flush_up_to(self.log_end_offset())
    }

    /// The offset below which everything is known durable.
    pub fn durable_offset(&self) -> i64 {
        self.flush_state.lock().durable
    }

    /// Milliseconds since the last flush completed (or since opening).
    pub fn ms_since_last_flush(&self) -> u64 {
        let now = self.opened_at.elapsed().as_millis() as u64;
        now.saturating_sub(self.last_flush_ms.load(Ordering::Relaxed))
    }

    fn note_flush_completed(&self) {
        let now = self.opened_at.elapsed().as_millis() as u64;
        self.last_flush_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// One sync round; returns the offset it made durable.
    fn sync_round(&self, durable_before: i64) -> Result<i64, SyncFailure> {
        let (target, jobs) = {
            let state = self.state.read();
            let jobs: Vec<SyncJob> = state
                .segments
                .iter()
                .filter_map(|s| {
                    let unsealed_durably =
                        s.sealed && !s.files.durable_sealed.load(Ordering::Acquire);
                    let unsynced = s.next_offset > durable_before && s.size > 0;
                    (unsealed_durably || unsynced).then(|| SyncJob {
                        files: Arc::clone(&s.files),
                        index_bytes: unsealed_durably.then(|| {
                            (
                                s.indexer.offset_index.to_bytes(),
                                s.indexer.time_index.to_bytes(),
                            )
                        }),
                    })
                })
                .collect();
            (state.log_end_offset, jobs)
        };
        // Read before syncing files: a segment created after this point is
        // covered by the next round.
        let dir_dirty = self.dir_dirty.swap(false, Ordering::AcqRel);
        let result = self.run_sync_jobs(&jobs, dir_dirty);
        if result.is_err() && dir_dirty {
            self.dir_dirty.store(true, Ordering::Release);
        }
        result?;
        // The data is durable; an older recovery point only means a longer
        // rescan after a crash, so a failure to move it (a full disk) must
        // not fail the flush.
        if let Err(e) = self.maybe_checkpoint_recovery_point(target) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not write the recovery point");
        }
        Ok(target)
    }

    fn run_sync_jobs(&self, jobs: &[SyncJob], dir_dirty: bool) -> Result<(), SyncFailure> {
        for job in jobs {
            let started = std::time::Instant::now();
            job.files.log.sync().map_err(|e| {
                SyncFailure::fsync(LogError::io("fsyncing", &job.files.log_path, e))
            })?;
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            if let Some(observer) = self.fsync_observer.lock().as_ref() {
                observer(started.elapsed());
            }
            if let Some((offset_index, time_index)) = &job.index_bytes {
                for (path, bytes) in [
                    (&job.files.index_path, offset_index),
                    (&job.files.time_index_path, time_index),
                ] {
                    // Index files can be rebuilt: a failure here leaves the
                    // segment not durably sealed, and the next round retries.
                    crate::storage::overwrite(&*self.storage, path, bytes)
                        .and_then(|file| file.sync())
                        .map_err(|e| SyncFailure {
                            error: LogError::io("writing and fsyncing", path, e),
                            fsync: false,
                        })?;
                }
                job.files.durable_sealed.store(true, Ordering::Release);
            }
        }
        if dir_dirty {
            self.storage.sync_dir(&self.dir).map_err(|e| {
                SyncFailure::fsync(LogError::io("fsyncing directory", &self.dir, e))
            })?;
        }
        Ok(())
    }

    /// Writes the recovery-point checkpoint if the segment it falls in changed.
    pub(crate) fn maybe_checkpoint_recovery_point(&self, durable: i64) -> Result<(), LogError> {
        let (recovery_point, segment_base) = {
            let state = self.state.read();
            let first_open = state
                .segments
                .iter()
                .find(|s| !(s.sealed && s.files.durable_sealed.load(Ordering::Acquire)))
                .map_or(state.log_end_offset, |s| s.base_offset);
            let recovery_point = durable.min(first_open);
            let segment_base = state.segments[state.segment_index(recovery_point)].base_offset;
            (recovery_point, segment_base)
        };
        let mut last_written = self.checkpoint_lock.lock();
        if *last_written != segment_base {
            checkpoint::write(
                &*self.storage,
                &self.dir,
                RECOVERY_POINT_FILE,
                recovery_point,
            )?;
            *last_written = segment_base;
        }
        Ok(())
    }

    /// Flushes everything and writes final index files and checkpoints; call
    /// at clean shutdown, before writing the clean-shutdown marker. The log
    /// stays usable (a later append simply makes the next open recover it).
    ///
    /// A log that has not changed since the last close (or since a clean
    /// open) and holds nothing unflushed has nothing to write: a broker with
    /// many idle partitions stops in milliseconds.
    pub fn close(&self) -> Result<(), LogError> {
        {
            let state = self.state.read();
            if *self.closed_as.lock() == Some(state.close_fingerprint())
                && self.durable_offset() >= state.log_end_offset
                && self.offline_reason().is_none()
            {
                return Ok(());
            }
        }
        self.flush()?;
        let fingerprint = {
            // The upgradable lock keeps retention and DeleteRecords (which
            // also write the log start checkpoint) out meanwhile, and
            // appends: the files written are of this state.
            let state = self.state.upgradable_read();
            let active = state.active();
            for file in active.write_index_files(&*self.storage)? {
                file.sync()
                    .map_err(|e| LogError::io("fsyncing index of", &active.files.log_path, e))?;
            }
            checkpoint::write(
                &*self.storage,
                &self.dir,
                LOG_START_OFFSET_FILE,
                state.log_start_offset,
            )?;
            crate::producer_state::write_snapshot(&*self.storage, &self.dir, &state)?;
            state.close_fingerprint()
        };
        *self.checkpoint_lock.lock() = i64::MIN;
        self.maybe_checkpoint_recovery_point(self.durable_offset())?;
        *self.closed_as.lock() = Some(fingerprint);
        Ok(())
    }
}
