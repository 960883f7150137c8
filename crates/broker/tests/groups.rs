//! Consumer groups with real rdkafka consumers (and the raw wire for the
//! protocol's error paths).

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::{
    DescribeGroupsRequest, GroupId, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
    SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

fn group_broker() -> TestBroker {
    TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay_ms = 0;
        c.groups.min_session_timeout_ms = 1000;
        c.offsets_topic_partitions = 3;
    })
}

#[derive(Default, Clone)]
struct Counting(Arc<AtomicUsize>);
impl ClientContext for Counting {}
impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn group_consumer(
    bootstrap: &str,
    group: &str,
    extra: &[(&str, &str)],
) -> (BaseConsumer<Counting>, Counting) {
    let context = Counting::default();
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let consumer: BaseConsumer<Counting> = config
        .create_with_context(context.clone())
        .expect("consumer");
    (consumer, context)
}

fn produce_numbered(bootstrap: &str, topic: &str, partitions: i32, range: std::ops::Range<u32>) {
    let producer = producer(bootstrap, &[]);
    for i in range {
        send(
            &producer,
            topic,
            Some((i % partitions as u32) as i32),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
}

/// Polls every consumer round-robin until `n` records arrived in total.
fn drain<C: ConsumerContext>(
    consumers: &[&BaseConsumer<C>],
    n: usize,
) -> Vec<(usize, i32, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records arrived: {got:?}",
            got.len()
        );
        for (i, c) in consumers.iter().enumerate() {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.expect("consume");
                got.push((
                    i,
                    m.partition(),
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                ));
            }
        }
    }
    got
}

/// Polls every consumer until `n` distinct values arrived.
fn drain_unique<C: ConsumerContext>(consumers: &[&BaseConsumer<C>], n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut values = HashSet::new();
    while values.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} values arrived",
            values.len()
        );
        for c in consumers {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                values.insert(m.expect("consume").payload().unwrap().to_vec());
            }
        }
    }
}

fn strategy_round(strategy: &str) {
    let broker = group_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("shared");
    create_topic(&bootstrap, &topic, 6, &[]);
    let group = unique("g");
    let extra = [("partition.assignment.strategy", strategy)];
    let (a, _) = group_consumer(&bootstrap, &group, &extra);
    let (b, _) = group_consumer(&bootstrap, &group, &extra);
    a.subscribe(&[&topic]).unwrap();
    b.subscribe(&[&topic]).unwrap();
    // Produce once the group has settled with both members: records read
    // during a rebalance without commits may legitimately be read again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (na, nb) = (
            a.assignment().unwrap().count(),
            b.assignment().unwrap().count(),
        );
        if na > 0 && nb > 0 && na + nb == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{strategy}: the group never settled ({na} + {nb})"
        );
        assert!(a.poll(Duration::from_millis(50)).is_none());
        assert!(b.poll(Duration::from_millis(50)).is_none());
    }
    produce_numbered(&bootstrap, &topic, 6, 0..60);
    let got = drain(&[&a, &b], 60);
    let unique_records: HashSet<_> = got.iter().map(|r| r.3.clone()).collect();
    assert_eq!(
        unique_records.len(),
        60,
        "{strategy}: every record exactly once: {got:?}"
    );
    // Both members got a share, and no partition went to both.
    let parts_a: HashSet<i32> = got.iter().filter(|r| r.0 == 0).map(|r| r.1).collect();
    let parts_b: HashSet<i32> = got.iter().filter(|r| r.0 == 1).map(|r| r.1).collect();
    assert!(
        parts_a.is_disjoint(&parts_b),
        "{strategy}: {parts_a:?} vs {parts_b:?}"
    );
    assert_eq!(parts_a.len() + parts_b.len(), 6);
    assert!(
        !parts_a.is_empty() && !parts_b.is_empty(),
        "{strategy}: both members share the work"
    );

    // Both commit what they consumed; then B leaves: A takes over every
    // partition from the committed offsets and gets only what comes next.
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    b.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(b);
    // Let the rebalance settle before producing more, so that nothing new
    // is consumed and then re-read from the commit (at-least-once).
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.assignment().unwrap().count() != 6 {
        assert!(
            Instant::now() < deadline,
            "{strategy}: A never got all partitions"
        );
        assert!(a.poll(Duration::from_millis(50)).is_none());
    }
    produce_numbered(&bootstrap, &topic, 6, 60..72);
    let got = drain(&[&a], 12);
    let values: HashSet<_> = got.iter().map(|r| r.3.parse::<u32>().unwrap()).collect();
    assert_eq!(
        values,
        (60..72).collect(),
        "{strategy}: the remaining member consumes all partitions"
    );
}

#[test]
fn members_share_partitions_and_rebalance_eager() {
    strategy_round("range");
}

#[test]
fn members_share_partitions_and_rebalance_cooperative() {
    strategy_round("cooperative-sticky");
}

#[test]
fn committed_offsets_survive_restart_and_are_not_redelivered() {
    let broker = group_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("commits");
    create_topic(&bootstrap, &topic, 1, &[]);
    produce_numbered(&bootstrap, &topic, 1, 0..20);
    let group = unique("g");
    {
        let (c, _) = group_consumer(&bootstrap, &group, &[]);
        c.subscribe(&[&topic]).unwrap();
        let got = drain(&[&c], 8);
        // Commit after the 5th record only: 5..8 were seen but not committed.
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(got[4].2 + 1))
            .unwrap();
        c.commit(&tpl, CommitMode::Sync).unwrap();
    }
    broker.restart();
    let bootstrap = broker.bootstrap();
    let (c, _) = group_consumer(&bootstrap, &group, &[]);
    c.subscribe(&[&topic]).unwrap();
    let got = drain(&[&c], 15);
    let values: Vec<u32> = got.iter().map(|r| r.3.parse().unwrap()).collect();
    assert_eq!(
        values,
        (5..20).collect::<Vec<_>>(),
        "resumes exactly after the commit"
    );
    let committed = c.committed(TIMEOUT).unwrap();
    assert_eq!(committed.elements()[0].offset(), rdkafka::Offset::Offset(5));
}

/// Two static members; one restarts within its session timeout (a static
/// member sends no LeaveGroup) and the other sees no rebalance, whether the
/// one restarting is a follower or the leader.
fn static_restart(restart_leader: bool) {
    let broker = group_broker();
    let bootstrap = broker.bootstrap();
    let topic = unique("static");
    create_topic(&bootstrap, &topic, 4, &[]);
    produce_numbered(&bootstrap, &topic, 4, 0..40);
    let group = unique("g");
    // The first to join leads.
    let (first, first_rebalances) =
        group_consumer(&bootstrap, &group, &[("group.instance.id", "first")]);
    first.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut consumed = 0;
    while first.assignment().unwrap().count() == 0 {
        assert!(Instant::now() < deadline);
        consumed += first.poll(Duration::from_millis(50)).is_some() as usize;
    }
    let (second, second_rebalances) =
        group_consumer(&bootstrap, &group, &[("group.instance.id", "second")]);
    second.subscribe(&[&topic]).unwrap();
    // Records taken before the second member joined may be read again after
    // the rebalance (nothing was committed yet): wait for every value.
    let _ = consumed;
    drain_unique(&[&first, &second], 40);
    first.commit_consumer_state(CommitMode::Sync).unwrap();
    second.commit_consumer_state(CommitMode::Sync).unwrap();
    let (stayer, stayer_rebalances, instance) = if restart_leader {
        drop(first);
        (second, second_rebalances, "first")
    } else {
        drop(second);
        (first, first_rebalances, "second")
    };
    let before = stayer_rebalances.0.load(Ordering::SeqCst);
    let (back, _) = group_consumer(&bootstrap, &group, &[("group.instance.id", instance)]);
    back.subscribe(&[&topic]).unwrap();
    produce_numbered(&bootstrap, &topic, 4, 40..80);
    let got = drain(&[&stayer, &back], 40);
    assert!(
        got.iter().any(|r| r.0 == 1),
        "the restarted static member consumes again"
    );
    let values: HashSet<u32> = got.iter().map(|r| r.3.parse().unwrap()).collect();
    assert_eq!(
        values,
        (40..80).collect(),
        "exactly the new records, each once: {got:?}"
    );
    assert_eq!(
        stayer_rebalances.0.load(Ordering::SeqCst),
        before,
        "no rebalance for the other member"
    );
}

#[test]
fn static_follower_restart_does_not_rebalance_others() {
    static_restart(false);
}

#[test]
fn static_leader_restart_does_not_rebalance_others() {
    static_restart(true);
}

fn join_request(group: &str, member_id: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(session_ms)
        .with_member_id(StrBytes::from_string(member_id.into()))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(bytes::Bytes::from_static(&[
                0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff,
            ]))])
}

#[test]
fn silent_member_is_expelled_and_errors_follow_kafka() {
    let broker = group_broker();
    let mut wire = Wire::connect(&broker.bootstrap());
    let group = unique("g");
    let first = wire.request(5, &join_request(&group, "", 1000));
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.as_str().to_string();
    let joined = wire.request(5, &join_request(&group, &member, 1000));
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader.as_str(), member);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_string(member.clone()));
    assert_eq!(wire.request(3, &sync).error_code, 0);

    let heartbeat = |generation: i32, member: &str| {
        HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.into()))
    };
    assert_eq!(wire.request(3, &heartbeat(1, &member)).error_code, 0);
    assert_eq!(
        wire.request(3, &heartbeat(7, &member)).error_code,
        22,
        "ILLEGAL_GENERATION"
    );
    assert_eq!(
        wire.request(3, &heartbeat(1, "nobody")).error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let mut wrong_type = join_request(&group, "", 1000);
    wrong_type.protocol_type = StrBytes::from_static_str("connect");
    assert_eq!(
        wire.request(5, &wrong_type).error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );
    assert_eq!(
        wire.request(5, &join_request(&group, "", 10)).error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(StrBytes::from_string(member.clone()))
        .with_topics(vec![kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(kafka_protocol::messages::TopicName(StrBytes::from_static_str("no-such-topic")))
            .with_partitions(vec![
                kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(3),
            ])]);
    let response = wire.request(8, &commit);
    assert_eq!(
        response.topics[0].partitions[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );

    // Silence: after the 1 s session timeout the member is gone.
    std::thread::sleep(Duration::from_millis(1800));
    let described = wire.request(
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.clone()))]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
    assert!(described.groups[0].members.is_empty());
    assert_eq!(wire.request(3, &heartbeat(1, &member)).error_code, 25);
}

#[test]
fn huge_member_metadata_and_unknown_groups_are_handled() {
    let broker = group_broker();
    let mut wire = Wire::connect(&broker.bootstrap());
    let group = unique("big");
    // 20 MiB of member metadata: within socket.request.max.bytes, so Kafka
    // accepts it; the broker must neither panic nor stall other clients.
    let mut join = join_request(&group, "", 6000);
    join.protocols[0].metadata = bytes::Bytes::from(vec![7u8; 20 << 20]);
    let first = wire.request(5, &join);
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let joined = wire.request(5, &join.with_member_id(first.member_id.clone()));
    assert_eq!(joined.error_code, 0);
    assert_eq!(
        joined.members[0].metadata.len(),
        20 << 20,
        "the leader gets the metadata back"
    );
    // Other clients are served meanwhile and afterwards.
    let mut other = Wire::connect(&broker.bootstrap());
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("no-such-group")))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_static_str("nobody"));
    assert_eq!(
        other.request(3, &heartbeat).error_code,
        25,
        "UNKNOWN_MEMBER_ID for an unknown group"
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("no-such-group")))
        .with_generation_id(1)
        .with_member_id(StrBytes::from_static_str("nobody"));
    assert_eq!(other.request(3, &sync).error_code, 25);
}
