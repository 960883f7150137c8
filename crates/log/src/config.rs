//! Per-log configuration, named after Kafka's topic configs.

use std::time::Duration;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// `message.timestamp.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite them with the broker's clock at append.
    LogAppendTime,
}

/// When the broker fsyncs. The log itself never fsyncs on append; the broker
/// reads this policy and calls [`crate::PartitionLog::flush_up_to`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Before acknowledging each produce request.
    Always,
    /// At most this long after data was appended.
    Interval(Duration),
    /// Leave it to the OS (and to clean shutdown).
    Never,
}

/// `cleanup.policy`: what happens to old data. Kafka allows `delete`,
/// `compact`, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Retention by time and size deletes whole old segments.
    pub delete: bool,
    /// The cleaner keeps the latest record per key (see
    /// [`crate::PartitionLog::compact`]).
    pub compact: bool,
}

impl CleanupPolicy {
    /// `cleanup.policy=delete`, Kafka's default.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `cleanup.policy=compact`: never deleted by time or size.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
    /// `cleanup.policy=compact,delete`: both.
    pub const COMPACT_DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: true,
    };
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        CleanupPolicy::DELETE
    }
}

/// Configuration of one partition's log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow beyond this.
    /// Values above `i32::MAX` are treated as `i32::MAX` (positions are 32-bit).
    pub segment_bytes: u64,
    /// `segment.ms`: roll a non-empty segment older than this.
    pub segment_ms: Option<u64>,
    /// `retention.ms`; `None` keeps data forever.
    pub retention_ms: Option<u64>,
    /// `retention.bytes`; `None` means no size limit.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: the largest accepted batch, log overhead included.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `flush.ms`/`flush.messages`, simplified.
    pub flush: FlushPolicy,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `delete.retention.ms`: how long a tombstone stays after the cleaner
    /// first saw it, so that consumers get to see the delete.
    pub delete_retention_ms: u64,
    /// `min.cleanable.dirty.ratio`: clean only once at least this share of
    /// the cleanable bytes was not cleaned yet.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never cleaned.
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms`: a record older than this that was not
    /// cleaned yet forces a clean whatever the dirty ratio. `None` is
    /// Kafka's default (Long.MAX).
    pub max_compaction_lag_ms: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            retention_ms: Some(7 * DAY_MS),
            retention_bytes: None,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            flush: FlushPolicy::Interval(Duration::from_millis(1000)),
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: DAY_MS,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
        }
    }
}

impl LogConfig {
    /// `segment_bytes` capped so that file positions fit Kafka's 32-bit index.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
