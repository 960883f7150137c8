//! The records the group coordinator writes to `__consumer_offsets` and
//! rebuilds its state from. Keys are compact JSON arrays (stable bytes, so
//! compaction keeps the latest per key); a `None` value is a tombstone.
//!
//! Kafka uses its own binary schemas here; Strom's are JSON. Only Strom reads
//! this topic, and the key identity (group; group + topic + partition) is
//! the same as Kafka's.

use serde::{Deserialize, Serialize};

/// One record for `__consumer_offsets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorRecord {
    /// The group it belongs to: picks the `__consumer_offsets` partition.
    pub group_id: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    /// `["offset", group, topic, partition]`
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    /// `["group", group]`: a classic group
    Group(String),
    /// `["consumer-group", group]`: a consumer-protocol (KIP-848) group
    ConsumerGroup(String),
    /// `["txn-offset", group, producer id, topic, partition]`: an offset
    /// committed in a transaction that is not decided yet
    TxnOffset {
        group: String,
        producer_id: i64,
        topic: String,
        partition: i32,
    },
}

impl RecordKey {
    pub fn offset(group: &str, topic: &str, partition: i32) -> Self {
        RecordKey::Offset {
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }
    pub fn group(group: &str) -> Self {
        RecordKey::Group(group.into())
    }
    pub fn encode(&self) -> Vec<u8> {
        let value = match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => serde_json::json!(["offset", group, topic, partition]),
            RecordKey::Group(group) => serde_json::json!(["group", group]),
            RecordKey::ConsumerGroup(group) => serde_json::json!(["consumer-group", group]),
            RecordKey::TxnOffset {
                group,
                producer_id,
                topic,
                partition,
            } => {
                serde_json::json!(["txn-offset", group, producer_id, topic, partition])
            }
        };
        serde_json::to_vec(&value).expect("keys always serialise")
    }
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let parts: Vec<serde_json::Value> = serde_json::from_slice(bytes).ok()?;
        let text = |i: usize| parts.get(i).and_then(|v| v.as_str()).map(str::to_string);
        match (text(0)?.as_str(), parts.len()) {
            ("offset", 4) => Some(RecordKey::Offset {
                group: text(1)?,
                topic: text(2)?,
                partition: i32::try_from(parts[3].as_i64()?).ok()?,
            }),
            ("group", 2) => Some(RecordKey::Group(text(1)?)),
            ("consumer-group", 2) => Some(RecordKey::ConsumerGroup(text(1)?)),
            ("txn-offset", 5) => Some(RecordKey::TxnOffset {
                group: text(1)?,
                producer_id: parts[2].as_i64()?,
                topic: text(3)?,
                partition: i32::try_from(parts[4].as_i64()?).ok()?,
            }),
            _ => None,
        }
    }
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// A classic group as of its last completed rebalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// Protocol name and metadata, in the member's order of preference.
    pub protocols: Vec<(String, Vec<u8>)>,
    pub assignment: Vec<u8>,
}

pub fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> CoordinatorRecord {
    CoordinatorRecord {
        group_id: group.to_string(),
        key: RecordKey::offset(group, topic, partition).encode(),
        value: value.map(|v| serde_json::to_vec(v).expect("serialisable")),
    }
}

/// (topic id, partitions) pairs.
pub type FlatAssignment = Vec<(uuid::Uuid, Vec<i32>)>;

/// A consumer-protocol group: its epoch and members with their assignments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroupValue {
    pub group_epoch: i32,
    pub members: Vec<ConsumerMemberValue>,
    /// The epoch and content of the target assignment.
    #[serde(default)]
    pub target_epoch: i32,
    #[serde(default)]
    pub target: Vec<(String, FlatAssignment)>,
    /// Partition counts the target was computed with.
    #[serde(default)]
    pub topic_partitions: Vec<(uuid::Uuid, i32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topics: Vec<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    #[serde(default)]
    pub previous_member_epoch: i32,
    /// (topic id, partitions)
    pub assigned: Vec<(uuid::Uuid, Vec<i32>)>,
    /// Partitions the member was asked to give up and has not yet released.
    #[serde(default)]
    pub pending_revocation: Vec<(uuid::Uuid, Vec<i32>)>,
}

pub fn consumer_group_record(group: &str, value: Option<&ConsumerGroupValue>) -> CoordinatorRecord {
    CoordinatorRecord {
        group_id: group.to_string(),
        key: RecordKey::ConsumerGroup(group.into()).encode(),
        value: value.map(|v| serde_json::to_vec(v).expect("serialisable")),
    }
}

pub fn txn_offset_record(
    group: &str,
    producer_id: i64,
    topic: &str,
    partition: i32,
    value: Option<&OffsetValue>,
) -> CoordinatorRecord {
    CoordinatorRecord {
        group_id: group.to_string(),
        key: RecordKey::TxnOffset {
            group: group.into(),
            producer_id,
            topic: topic.into(),
            partition,
        }
        .encode(),
        value: value.map(|v| serde_json::to_vec(v).expect("serialisable")),
    }
}

pub fn group_record(group: &str, value: Option<&GroupValue>) -> CoordinatorRecord {
    CoordinatorRecord {
        group_id: group.to_string(),
        key: RecordKey::group(group).encode(),
        value: value.map(|v| serde_json::to_vec(v).expect("serialisable")),
    }
}

/// Kafka's `Utils.abs(groupId.hashCode()) % partitions`: the
/// `__consumer_offsets` partition of a group.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_are_stable() {
        let k = RecordKey::offset("g", "t", 3);
        assert_eq!(k.encode(), br#"["offset","g","t",3]"#);
        assert_eq!(RecordKey::decode(&k.encode()), Some(k));
        let g = RecordKey::group("g");
        assert_eq!(RecordKey::decode(&g.encode()), Some(g));
        assert_eq!(RecordKey::decode(br#"["other","g"]"#), None);
        assert_eq!(RecordKey::decode(b"garbage"), None);
    }

    #[test]
    fn partition_matches_java_hash_code() {
        // "test-group".hashCode() == 627841412 in Java; "polygenelubricants" hashes to i32::MIN.
        assert_eq!(partition_for("test-group", 50), 627841412 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
    }
}
