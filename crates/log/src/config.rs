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

/// Configuration of one partition's log.
#[derive(Clone, Debug, PartialEq, Eq)]
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
        }
    }
}

impl LogConfig {
    /// `segment_bytes` capped so that file positions fit Kafka's 32-bit index.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}
