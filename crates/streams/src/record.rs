//! Record-level types: windowed keys, table changes, task ids, record
//! metadata.

use std::fmt;

/// A key with the window it belongs to. `start` is inclusive; `end` is
/// exclusive for time windows and inclusive (the last record's timestamp)
/// for session and sliding windows, as in Kafka Streams.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    pub key: K,
    pub start: i64,
    pub end: i64,
}

/// An update of a table row: the new value (None = deleted) and the old one.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<V> {
    pub new: Option<V>,
    pub old: Option<V>,
}

/// A task: one sub-topology's processing of one partition number of its
/// source topics. Printed as Kafka Streams prints it, `SUBTOPOLOGY_PARTITION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// Where the record being processed came from.
#[derive(Debug, Clone, Default)]
pub struct RecordMeta {
    pub topic: std::sync::Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// Event time: the record's timestamp (or what the extractor returned).
    pub timestamp: i64,
}
