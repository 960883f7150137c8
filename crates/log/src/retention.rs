//! Deleting old data: DeleteRecords (`delete_records_before`) and retention by
//! time and size (`apply_retention`). Both advance the log start offset,
//! persist it, and then delete whole segments; the active segment is never
//! deleted (retention rolls it first when it has to go).

use parking_lot::RwLockUpgradableReadGuard;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE};
use crate::error::LogError;
use crate::log::LogState;
use crate::segment::Segment;
use crate::PartitionLog;

impl PartitionLog {
    /// DeleteRecords: advances the log start offset to `offset` (which must
    /// not exceed the log end offset), deletes segments wholly below it, and
    /// persists the new log start offset. Returns the log start offset, which
    /// never moves backwards.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        self.check_online()?;
        let state = self.state.upgradable_read();
        if offset < 0 || offset > state.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start_offset,
                log_end: state.log_end_offset,
            });
        }
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        let count = segments_below(&state, offset);
        self.delete_prefix(state, count, offset)
    }

    /// Applies `retention.ms` (a segment whose largest timestamp is older than
    /// `now_ms - retention.ms`) and `retention.bytes` (delete the oldest
    /// segments while the log stays at or above the limit without them) if
    /// `cleanup.policy` includes `delete`, and drops segments wholly below
    /// the log start offset whatever the policy. If the active
    /// segment itself has to go and is not empty, it is rolled first, as
    /// Kafka does. Returns the number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        self.check_online()?;
        let config = self.config();
        let state = self.state.upgradable_read();
        let segments = &state.segments;
        let mut count = segments_below(&state, state.log_start_offset);

        // `compact` alone keeps data whatever its age or size.
        let deletes = config.cleanup_policy.delete;
        if let Some(retention_ms) = config.retention_ms.filter(|_| deletes) {
            let retention_ms = i64::try_from(retention_ms).unwrap_or(i64::MAX);
            let mut expired = 0;
            for s in segments {
                if s.is_empty() || now_ms.saturating_sub(s.largest_timestamp()?) <= retention_ms {
                    break;
                }
                expired += 1;
            }
            count = count.max(expired);
        }

        if let Some(retention_bytes) = config.retention_bytes.filter(|_| deletes) {
            let total: u64 = segments.iter().map(|s| s.size).sum();
            let mut excess = i128::from(total) - i128::from(retention_bytes);
            let mut over = 0;
            for s in segments {
                if s.is_empty() || excess - i128::from(s.size) < 0 {
                    break;
                }
                excess -= i128::from(s.size);
                over += 1;
            }
            count = count.max(over);
        }

        if count == 0 {
            return Ok(0);
        }
        let state = if count == segments.len() {
            // Everything has to go, the active segment included: roll so a
            // fresh active segment remains (the active segment is non-empty
            // here, empty segments never count as deletable).
            self.roll(state)?
        } else {
            state
        };
        let new_start = state.segments[count]
            .base_offset
            .max(state.log_start_offset);
        self.delete_prefix(state, count, new_start)?;
        Ok(count)
    }

    /// Persists `new_start` as the log start offset, then removes the first
    /// `count` segments (never the active one) from the log and deletes
    /// their files.
    fn delete_prefix(
        &self,
        state: RwLockUpgradableReadGuard<'_, LogState>,
        count: usize,
        new_start: i64,
    ) -> Result<i64, LogError> {
        debug_assert!(count < state.segments.len());
        if new_start != state.log_start_offset {
            // Persist first: after a crash, segments below a persisted log
            // start offset are deleted on open; the reverse order could
            // resurrect deleted records.
            checkpoint::write(&*self.storage, &self.dir, LOG_START_OFFSET_FILE, new_start)?;
        }
        let mut state = RwLockUpgradableReadGuard::upgrade(state);
        state.log_start_offset = new_start;
        let removed: Vec<Segment> = state.segments.drain(..count).collect();
        drop(state);
        for segment in &removed {
            tracing::info!(
                dir = %self.dir.display(),
                segment = segment.base_offset,
                log_start_offset = new_start,
                "deleting segment"
            );
            segment.delete_files(&*self.storage)?;
        }
        if !removed.is_empty() {
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io("fsyncing directory", &self.dir, e))?;
        }
        Ok(new_start)
    }
}

/// How many leading segments lie wholly below `offset` (the next segment
/// starts at or before it). The active segment never counts.
fn segments_below(state: &LogState, offset: i64) -> usize {
    state
        .segments
        .windows(2)
        .take_while(|pair| pair[1].base_offset <= offset)
        .count()
}
