//! The crate's error type.
//!
//! Each variant maps to one Kafka error code at the protocol edge (the broker
//! does the mapping; this crate knows nothing about wire codes):
//!
//! | variant            | Kafka error code        |
//! |--------------------|-------------------------|
//! | `CorruptBatch`     | `CORRUPT_MESSAGE`       |
//! | `RecordTooLarge`   | `MESSAGE_TOO_LARGE`     |
//! | `OffsetOutOfRange` | `OFFSET_OUT_OF_RANGE`   |
//! | `Io`               | `KAFKA_STORAGE_ERROR`   |
//! | `InvalidRecords`   | `INVALID_RECORD`        |
//!
//! After a failed write or fsync the log goes offline (what is on disk is no
//! longer known) and answers every further append and flush with `Io`.

use std::io;
use std::path::Path;

/// Everything that can go wrong in the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A record batch failed validation: bad length, magic, or CRC.
    ///
    /// `position` is the byte position of the batch: within the input for an
    /// append, within the segment file during recovery.
    #[error("corrupt record batch at byte position {position}: {reason}")]
    CorruptBatch { position: u64, reason: String },

    /// A batch is larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes={max}")]
    RecordTooLarge { size: usize, max: usize },

    /// A read or DeleteRecords asked for an offset outside the log.
    #[error("offset {requested} is out of range: log start offset {log_start}, log end offset {log_end}")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },

    /// The file system failed.
    #[error("I/O error while {context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// The framing is fine but the content is unacceptable (empty input,
    /// record count not matching the offset delta, unknown compression codec).
    #[error("invalid records: {0}")]
    InvalidRecords(String),

    /// An idempotent producer's batch is out of sequence, from a fenced
    /// epoch, or from a producer the log does not know.
    #[error("{0}")]
    ProducerSequence(#[from] crate::producer_state::SequenceError),
}

impl LogError {
    /// An [`LogError::Io`] whose context names the action and the path.
    pub(crate) fn io(action: &str, path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }

    /// A [`LogError::CorruptBatch`].
    pub(crate) fn corrupt(position: u64, reason: impl Into<String>) -> LogError {
        LogError::CorruptBatch {
            position,
            reason: reason.into(),
        }
    }

    /// True for errors caused by the caller's input rather than by the log.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            LogError::CorruptBatch { .. }
                | LogError::RecordTooLarge { .. }
                | LogError::OffsetOutOfRange { .. }
                | LogError::InvalidRecords(_)
                | LogError::ProducerSequence(_)
        )
    }
}
