//! The "consumer" embedded protocol: what consumers put in JoinGroup
//! metadata and SyncGroup assignments (a version, then Kafka's
//! ConsumerProtocolSubscription / ConsumerProtocolAssignment).

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// Topics a consumer's subscription names; None if it cannot be parsed.
pub fn subscription_topics(metadata: &Bytes) -> Option<Vec<String>> {
    let mut buf = metadata.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut buf, version).ok()?;
    Some(
        subscription
            .topics
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
    )
}

/// (topic, partitions) of a consumer's assignment; None if it cannot be parsed.
pub fn assignment_partitions(assignment: &Bytes) -> Option<Vec<(String, Vec<i32>)>> {
    let mut buf = assignment.clone();
    if buf.remaining() < 2 {
        return None;
    }
    let version = buf.get_i16().clamp(0, 3);
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    Some(
        assignment
            .assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.as_str().to_string(), tp.partitions))
            .collect(),
    )
}
