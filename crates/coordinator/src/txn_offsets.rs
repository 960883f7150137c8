//! Offsets committed inside a transaction (TxnOffsetCommit): held as
//! pending until the transaction's marker decides them — materialised on
//! commit, dropped on abort. They are persisted as `txn-offset` records so
//! a restart between commit and marker loses nothing.

use crate::coordinator::{offset_to_commit, GroupCoordinator, Outcome};
use crate::group::ClassicGroup;
use crate::records::{offset_record, txn_offset_record};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

impl GroupCoordinator {
    pub fn txn_commit_offsets(
        &mut self,
        now: i64,
        request: TxnOffsetCommitRequest,
        partition_exists: impl Fn(&str, i32) -> bool,
    ) -> Outcome<TxnOffsetCommitResponse> {
        let group_id = request.group_id.as_str().to_string();
        let producer_id = request.producer_id.0;
        let member_id = request.member_id.as_str();
        // v3+ clients send their generation for fencing (KIP-447); -1 skips it.
        let group_error = match self.groups.get(&group_id) {
            _ if group_id.is_empty() => Some(ResponseError::InvalidGroupId),
            Some(group) if request.generation_id >= 0 && group.consumer.is_none() => {
                if group.member(member_id).is_none() {
                    Some(ResponseError::UnknownMemberId)
                } else if request.generation_id != group.generation {
                    Some(ResponseError::IllegalGeneration)
                } else {
                    None
                }
            }
            _ => None,
        };
        let max_metadata = self.config.offset_metadata_max_bytes;
        let mut out = Outcome::pending();
        let mut topics = Vec::new();
        for topic in &request.topics {
            let name = topic.name.as_str();
            let mut partitions = Vec::new();
            for p in &topic.partitions {
                let checked = match group_error {
                    Some(code) => Err(code),
                    None => offset_to_commit(
                        max_metadata,
                        partition_exists(name, p.partition_index),
                        p.committed_offset,
                        p.committed_leader_epoch,
                        p.committed_metadata.as_ref(),
                        now,
                    ),
                };
                let code = checked.as_ref().err().copied();
                if let Ok(value) = checked {
                    out.records.push(txn_offset_record(
                        &group_id,
                        producer_id,
                        name,
                        p.partition_index,
                        Some(&value),
                    ));
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| ClassicGroup::new(&group_id, now));
                    group
                        .pending_txn_offsets
                        .entry(producer_id)
                        .or_default()
                        .insert((name.to_string(), p.partition_index), value);
                }
                partitions.push(
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.map_or(0, |c| c.code())),
                );
            }
            topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        out.response = Some(TxnOffsetCommitResponse::default().with_topics(topics));
        out
    }

    /// The transaction of `producer_id` ended: its pending offsets for the
    /// group become committed offsets (commit) or vanish (abort).
    pub fn complete_txn_offsets(
        &mut self,
        now: i64,
        group_id: &str,
        producer_id: i64,
        commit: bool,
    ) -> Outcome<()> {
        let mut out = Outcome::pending();
        let Some(group) = self.groups.get_mut(group_id) else {
            return out;
        };
        let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
            return out;
        };
        for ((topic, partition), mut value) in pending {
            out.records.push(txn_offset_record(
                group_id,
                producer_id,
                &topic,
                partition,
                None,
            ));
            if commit {
                value.commit_timestamp = now;
                out.records
                    .push(offset_record(group_id, &topic, partition, Some(&value)));
                group.offsets.insert((topic, partition), value);
            }
        }
        out
    }

    /// Whether a transaction holds an undecided offset for this partition
    /// (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups.get(group_id).is_some_and(|g| {
            g.pending_txn_offsets
                .values()
                .any(|p| p.contains_key(&(topic.to_string(), partition)))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{GroupConfig, GroupCoordinator};
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{
        GroupId, OffsetFetchRequest, ProducerId, TopicName, TxnOffsetCommitRequest,
    };
    use kafka_protocol::protocol::StrBytes;

    fn fetch(c: &GroupCoordinator, require_stable: bool) -> (i16, i64) {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_require_stable(require_stable)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0])]));
        let p = &c.fetch_offsets(7, request).topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    }

    #[test]
    fn pending_offsets_are_invisible_until_the_marker_and_unstable_when_asked() {
        let mut c = GroupCoordinator::new(GroupConfig::default());
        let commit = TxnOffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_producer_id(ProducerId(7))
            .with_generation_id(-1)
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)])]);
        let out = c.txn_commit_offsets(1, commit, |_, _| true);
        assert_eq!(out.response.unwrap().topics[0].partitions[0].error_code, 0);
        assert_eq!(fetch(&c, false), (0, -1), "pending: not visible");
        assert_eq!(
            fetch(&c, true),
            (88, -1),
            "UNSTABLE_OFFSET_COMMIT with require_stable"
        );
        // An abort drops it; a commit of another transaction applies it.
        c.complete_txn_offsets(2, "g", 7, false);
        assert_eq!(fetch(&c, true), (0, -1));
        c.txn_commit_offsets(
            3,
            TxnOffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_producer_id(ProducerId(8))
                .with_generation_id(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(43)])]),
            |_, _| true,
        );
        let records = c.complete_txn_offsets(4, "g", 8, true).records;
        assert_eq!(
            records.len(),
            2,
            "a tombstone for the pending record and the committed offset"
        );
        assert_eq!(fetch(&c, true), (0, 43));
    }
}
