//! The crate's error type.

use std::collections::BTreeMap;

/// Errors of the Connect runtime, the SDK and the built-in connectors.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A connector configuration with one or more invalid fields; the map
    /// holds every invalid field with its problems.
    #[error("connector configuration is invalid and contains the following {} error(s):\n{}", count_errors(.0), format_errors(.0))]
    InvalidConfig(BTreeMap<String, Vec<String>>),
    /// A worker configuration problem.
    #[error("worker configuration: {0}")]
    WorkerConfig(String),
    /// A failure that may go away when retried (a broker or an external
    /// system unavailable for a moment). Sinks are given the records again.
    #[error("retriable: {0}")]
    Retriable(String),
    /// Converting a record to or from bytes failed.
    #[error("conversion failed: {0}")]
    Conversion(String),
    /// A single message transform failed.
    #[error("transform failed: {0}")]
    Transform(String),
    /// A connector or task failed for good.
    #[error("{0}")]
    Failed(String),
    #[error("unknown connector {0}")]
    UnknownConnector(String),
    #[error("unknown task {0}")]
    UnknownTask(String),
    #[error("connector {0} already exists")]
    ConnectorExists(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("Kafka: {context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error("Kafka protocol: {0}")]
    Protocol(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the worker is shutting down")]
    ShuttingDown,
}

fn count_errors(errors: &BTreeMap<String, Vec<String>>) -> usize {
    errors.values().map(Vec::len).sum()
}

fn format_errors(errors: &BTreeMap<String, Vec<String>>) -> String {
    let mut lines = Vec::new();
    for (field, problems) in errors {
        for problem in problems {
            lines.push(format!("{field}: {problem}"));
        }
    }
    lines.join("\n")
}

impl ConnectError {
    pub fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        ConnectError::Kafka {
            context: context.into(),
            source,
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ConnectError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn failed(message: impl std::fmt::Display) -> Self {
        ConnectError::Failed(message.to_string())
    }

    pub fn retriable(message: impl std::fmt::Display) -> Self {
        ConnectError::Retriable(message.to_string())
    }

    /// True for errors worth retrying (Kafka Connect's RetriableException).
    pub fn is_retriable(&self) -> bool {
        match self {
            ConnectError::Retriable(_) => true,
            ConnectError::Kafka { source, .. } => {
                source.rdkafka_error_code().is_some_and(is_retriable_code)
            }
            _ => false,
        }
    }
}

fn is_retriable_code(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::MessageTimedOut
            | C::RequestTimedOut
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::NotLeaderForPartition
            | C::LeaderNotAvailable
            | C::NetworkException
            | C::OperationTimedOut
            | C::QueueFull
    )
}

pub type Result<T, E = ConnectError> = std::result::Result<T, E>;
