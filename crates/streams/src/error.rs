//! The crate's error type.

use thiserror::Error;

/// A (de)serialization failure.
#[derive(Debug, Error)]
pub enum SerdeError {
    #[error(
        "null where a value was expected (use Serdes::option or Serdes::unit for nullable data)"
    )]
    Null,
    #[error("invalid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("{0}")]
    Custom(String),
}

/// Everything that can go wrong in a topology or the runtime.
#[derive(Debug, Error)]
pub enum StreamsError {
    #[error("deserializing a record of {topic}-{partition} at offset {offset}: {source}")]
    Deserialize {
        topic: String,
        partition: i32,
        offset: i64,
        #[source]
        source: SerdeError,
    },
    #[error("serializing a record for {what}: {source}")]
    Serialize {
        what: String,
        #[source]
        source: SerdeError,
    },
    #[error("state store {store}: {message}")]
    Store { store: String, message: String },
    #[error("topology: {0}")]
    Topology(String),
    #[error("Kafka client: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("source topic {0} does not exist")]
    MissingSourceTopic(String),
    #[error("producing a record failed: {0}")]
    Produce(String),
    #[error("I/O: {context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("processor: {0}")]
    Processor(String),
    #[error("the stream thread is not running: {0}")]
    NotRunning(String),
}

impl StreamsError {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        StreamsError::Kafka {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StreamsError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn store(store: &str, message: impl std::fmt::Display) -> Self {
        StreamsError::Store {
            store: store.to_string(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
