//! The error codes a response carries, for `strom_errors_total`.
//!
//! Kafka answers most errors inside a successful response: per partition
//! (Produce, Fetch, ListOffsets, OffsetCommit, ...), per resource (configs,
//! topics, groups) or once for the whole request (JoinGroup, EndTxn, ...).
//! [`for_each_error_code`] walks every such field of a response Strom is
//! about to send and calls back with each non-zero code, so every API is
//! counted the same way, in one place, after the handler has decided.

use kafka_protocol::messages::ResponseKind;

/// Calls `f` with every non-zero error code in `response`, once per
/// partition, resource, group or member that carries it.
pub fn for_each_error_code(response: &ResponseKind, mut f: impl FnMut(i16)) {
    let mut emit = |code: i16| {
        if code != 0 {
            f(code)
        }
    };
    match response {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::Fetch(r) => {
            emit(r.error_code);
            r.responses
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| emit(p.error_code));
        }
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::Metadata(r) => {
            emit(r.error_code);
            for topic in &r.topics {
                emit(topic.error_code);
                topic.partitions.iter().for_each(|p| emit(p.error_code));
            }
        }
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::OffsetFetch(r) => {
            // v0-7 answer one group at the top level, v8+ a list of groups.
            emit(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| emit(p.error_code));
            for group in &r.groups {
                emit(group.error_code);
                group
                    .topics
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .for_each(|p| emit(p.error_code));
            }
        }
        ResponseKind::FindCoordinator(r) => {
            emit(r.error_code);
            r.coordinators.iter().for_each(|c| emit(c.error_code));
        }
        ResponseKind::JoinGroup(r) => emit(r.error_code),
        ResponseKind::Heartbeat(r) => emit(r.error_code),
        ResponseKind::LeaveGroup(r) => {
            emit(r.error_code);
            r.members.iter().for_each(|m| emit(m.error_code));
        }
        ResponseKind::SyncGroup(r) => emit(r.error_code),
        ResponseKind::DescribeGroups(r) => r.groups.iter().for_each(|g| emit(g.error_code)),
        ResponseKind::ListGroups(r) => emit(r.error_code),
        ResponseKind::ApiVersions(r) => emit(r.error_code),
        ResponseKind::CreateTopics(r) => r.topics.iter().for_each(|t| emit(t.error_code)),
        ResponseKind::DeleteTopics(r) => r.responses.iter().for_each(|t| emit(t.error_code)),
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::InitProducerId(r) => emit(r.error_code),
        ResponseKind::AddPartitionsToTxn(r) => {
            emit(r.error_code);
            // v0-3: one transaction in `results_by_topic_v3_and_below`;
            // v4+: `results_by_transaction`.
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| &t.results_by_partition)
                .for_each(|p| emit(p.partition_error_code));
            for txn in &r.results_by_transaction {
                txn.topic_results
                    .iter()
                    .flat_map(|t| &t.results_by_partition)
                    .for_each(|p| emit(p.partition_error_code));
            }
        }
        ResponseKind::AddOffsetsToTxn(r) => emit(r.error_code),
        ResponseKind::EndTxn(r) => emit(r.error_code),
        ResponseKind::TxnOffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::DescribeConfigs(r) => r.results.iter().for_each(|c| emit(c.error_code)),
        ResponseKind::AlterConfigs(r) => r.responses.iter().for_each(|c| emit(c.error_code)),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().for_each(|c| emit(c.error_code))
        }
        ResponseKind::CreatePartitions(r) => r.results.iter().for_each(|t| emit(t.error_code)),
        ResponseKind::DeleteGroups(r) => r.results.iter().for_each(|g| emit(g.error_code)),
        ResponseKind::OffsetDelete(r) => {
            emit(r.error_code);
            r.topics
                .iter()
                .flat_map(|t| &t.partitions)
                .for_each(|p| emit(p.error_code));
        }
        ResponseKind::DescribeCluster(r) => emit(r.error_code),
        ResponseKind::DescribeProducers(r) => r
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .for_each(|p| emit(p.error_code)),
        ResponseKind::DescribeTransactions(r) => {
            r.transaction_states.iter().for_each(|t| emit(t.error_code))
        }
        ResponseKind::ListTransactions(r) => emit(r.error_code),
        ResponseKind::ConsumerGroupHeartbeat(r) => emit(r.error_code),
        ResponseKind::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| emit(g.error_code)),
        // APIs Strom does not serve have no responses to count.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::*;

    fn codes(response: &ResponseKind) -> Vec<i16> {
        let mut out = Vec::new();
        for_each_error_code(response, |c| out.push(c));
        out
    }

    #[test]
    fn per_partition_codes_of_produce() {
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let response = ProduceResponse::default().with_responses(vec![
            produce_response::TopicProduceResponse::default().with_partition_responses(vec![
                produce_response::PartitionProduceResponse::default().with_error_code(unknown),
                produce_response::PartitionProduceResponse::default(),
                produce_response::PartitionProduceResponse::default().with_error_code(unknown),
            ]),
        ]);
        assert_eq!(
            codes(&ResponseKind::Produce(response)),
            vec![unknown, unknown]
        );
    }

    #[test]
    fn top_level_and_nested_codes() {
        let coordinator = ResponseError::CoordinatorNotAvailable.code();
        let response = FindCoordinatorResponse::default().with_coordinators(vec![
            find_coordinator_response::Coordinator::default().with_error_code(coordinator),
            find_coordinator_response::Coordinator::default(),
        ]);
        assert_eq!(
            codes(&ResponseKind::FindCoordinator(response)),
            vec![coordinator]
        );

        let fenced = ResponseError::ProducerFenced.code();
        let end = EndTxnResponse::default().with_error_code(fenced);
        assert_eq!(codes(&ResponseKind::EndTxn(end)), vec![fenced]);

        let ok = HeartbeatResponse::default();
        assert!(codes(&ResponseKind::Heartbeat(ok)).is_empty());
    }

    #[test]
    fn offset_fetch_old_and_new_shapes() {
        let stable = ResponseError::UnstableOffsetCommit.code();
        let old = OffsetFetchResponse::default().with_topics(vec![
            offset_fetch_response::OffsetFetchResponseTopic::default().with_partitions(vec![
                offset_fetch_response::OffsetFetchResponsePartition::default()
                    .with_error_code(stable),
            ]),
        ]);
        assert_eq!(codes(&ResponseKind::OffsetFetch(old)), vec![stable]);
        let new = OffsetFetchResponse::default().with_groups(vec![
            offset_fetch_response::OffsetFetchResponseGroup::default()
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_topics(vec![
                    offset_fetch_response::OffsetFetchResponseTopics::default().with_partitions(
                        vec![
                            offset_fetch_response::OffsetFetchResponsePartitions::default()
                                .with_error_code(stable),
                        ],
                    ),
                ]),
        ]);
        assert_eq!(
            codes(&ResponseKind::OffsetFetch(new)),
            vec![ResponseError::GroupIdNotFound.code(), stable]
        );
    }
}
