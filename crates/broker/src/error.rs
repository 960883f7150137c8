//! Broker errors. Kafka wire error codes are a separate type
//! ([`kafka_protocol::error::ResponseError`]) chosen at the protocol edge.

use kafka_protocol::error::ResponseError;
use strom_log::producer_state::SequenceError;
use strom_log::LogError;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("configuration: unknown broker config `{0}`")]
    UnknownConfig(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to acquire the lock on {path}: another broker is using this data dir")]
    DataDirLocked { path: String },
    #[error("log: {0}")]
    Log(#[from] LogError),
    #[error("metadata store: {0}")]
    Metadata(String),
    #[error("I/O on {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// An error to report for one topic or partition: a Kafka error code plus
/// a message for clients that show one.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ResponseError,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// Maps a log error to the code a Kafka broker returns for it.
pub fn log_error_code(err: &LogError) -> ResponseError {
    match err {
        LogError::CorruptBatch { .. } => ResponseError::CorruptMessage,
        LogError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::InvalidRecords(_) => ResponseError::InvalidRecord,
        LogError::ProducerSequence(e) => match e {
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber,
            SequenceError::UnknownProducer { .. } => ResponseError::UnknownProducerId,
        },
        _ => ResponseError::KafkaStorageError,
    }
}

impl From<LogError> for ApiError {
    fn from(err: LogError) -> Self {
        ApiError::new(log_error_code(&err), err.to_string())
    }
}
