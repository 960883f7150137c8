//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat with
//! server-side assignment and incremental reconciliation) against Kafka's
//! behaviour, with a fake topic catalogue. The property test checks that no
//! partition is ever owned twice, whatever the members do, and that a group
//! whose members keep acknowledging converges to a balanced assignment.

mod common;

use common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    DeleteGroupsRequest, ListGroupsRequest, OffsetDeleteRequest,
};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use strom_coordinator::assignor::Assignment;
use strom_coordinator::consumer::ConsumerGroupState;
use strom_coordinator::{GroupCoordinator, TopicsView};
use uuid::Uuid;

// Kafka's error codes.
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;

const REBALANCE_TIMEOUT: i32 = 30_000;
const SESSION_TIMEOUT: i64 = 45_000;

/// A topic catalogue: name → (id, partition count).
#[derive(Clone, Debug, Default)]
struct Topics(BTreeMap<String, (Uuid, i32)>);

fn topic_id(name: &str) -> Uuid {
    Uuid::from_u128(name.bytes().fold(0u128, |h, b| h * 257 + b as u128) + 1)
}

impl Topics {
    fn with(topics: &[(&str, i32)]) -> Self {
        Topics(
            topics
                .iter()
                .map(|(name, count)| (name.to_string(), (topic_id(name), *count)))
                .collect(),
        )
    }

    /// Adds partitions, creating the topic if needed.
    fn grow(&mut self, name: &str, by: i32) {
        self.0
            .entry(name.to_string())
            .or_insert((topic_id(name), 0))
            .1 += by;
    }

    fn partitions(&self, names: &[&str]) -> BTreeSet<(Uuid, i32)> {
        names
            .iter()
            .filter_map(|n| self.0.get(*n))
            .flat_map(|(id, count)| (0..*count).map(move |p| (*id, p)))
            .collect()
    }
}

impl TopicsView for Topics {
    fn by_name(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).copied()
    }
    fn by_id(&self, id: Uuid) -> Option<(String, i32)> {
        self.0
            .iter()
            .find(|(_, (i, _))| *i == id)
            .map(|(name, (_, count))| (name.clone(), *count))
    }
}

fn flat(a: &Assignment) -> BTreeSet<(Uuid, i32)> {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

fn set(t: &str, partitions: impl IntoIterator<Item = i32>) -> BTreeSet<(Uuid, i32)> {
    partitions.into_iter().map(|p| (topic_id(t), p)).collect()
}

fn to_assignment(partitions: &BTreeSet<(Uuid, i32)>) -> Assignment {
    let mut a = Assignment::new();
    for (t, p) in partitions {
        a.entry(*t).or_default().insert(*p);
    }
    a
}

fn owned(partitions: &BTreeSet<(Uuid, i32)>) -> Option<Vec<TopicPartitions>> {
    Some(
        to_assignment(partitions)
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic_id(t)
                    .with_partitions(ps.into_iter().collect())
            })
            .collect(),
    )
}

/// The assignment in a heartbeat response, if it carries one.
fn received(response: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<(Uuid, i32)>> {
    response.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic_id, *p)))
            .collect()
    })
}

/// A first heartbeat (epoch 0) subscribing to `topics`.
fn join(member_id: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(GROUP))
        .with_member_id(s(member_id))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

/// A later heartbeat: only the epoch and, optionally, the partitions owned.
fn beat(
    member_id: &str,
    epoch: i32,
    owning: Option<&BTreeSet<(Uuid, i32)>>,
) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(gid(GROUP))
        .with_member_id(s(member_id))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(REBALANCE_TIMEOUT)
        .with_topic_partitions(owning.and_then(owned))
}

fn heartbeat(
    h: &mut Harness,
    now: i64,
    topics: &Topics,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let out = h.c.consumer_heartbeat(now, client(), request, topics);
    h.absorb(out).expect("consumer heartbeats answer at once")
}

fn consumer(c: &GroupCoordinator) -> &ConsumerGroupState {
    c.group(GROUP)
        .and_then(|g| g.consumer.as_ref())
        .expect("a consumer group")
}

fn assigned_of(c: &GroupCoordinator, member: &str) -> BTreeSet<(Uuid, i32)> {
    flat(&consumer(c).members[member].assigned)
}

/// (state, group epoch, assignment epoch, member → (epoch, assignment)) per ConsumerGroupDescribe.
#[allow(clippy::type_complexity)]
fn describe(
    c: &GroupCoordinator,
    topics: &Topics,
) -> (
    String,
    i32,
    i32,
    BTreeMap<String, (i32, BTreeSet<(String, i32)>)>,
) {
    let response = c.consumer_group_describe(
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid(GROUP)]),
        topics,
    );
    let group = &response.groups[0];
    assert_eq!(group.error_code, 0);
    let members = group
        .members
        .iter()
        .map(|m| {
            let partitions = m
                .assignment
                .topic_partitions
                .iter()
                .flat_map(|tp| {
                    tp.partitions
                        .iter()
                        .map(move |p| (tp.topic_name.as_str().to_string(), *p))
                })
                .collect();
            (
                m.member_id.as_str().to_string(),
                (m.member_epoch, partitions),
            )
        })
        .collect();
    (
        group.group_state.as_str().to_string(),
        group.group_epoch,
        group.assignment_epoch,
        members,
    )
}

/// Members "a" and "b" sharing topic "t" (4 partitions), reconciled: both at
/// epoch 2, two partitions each.
fn stable_two(h: &mut Harness, topics: &Topics) {
    let r = heartbeat(h, 0, topics, join("a", &["t"]));
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    let all = received(&r).unwrap();
    let r = heartbeat(h, 10, topics, join("b", &["t"]));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    let r = heartbeat(h, 20, topics, beat("a", 1, Some(&all)));
    let kept = received(&r).unwrap();
    let r = heartbeat(h, 30, topics, beat("a", 1, Some(&kept)));
    assert_eq!(r.member_epoch, 2);
    let r = heartbeat(h, 40, topics, beat("b", 2, Some(&BTreeSet::new())));
    let got = received(&r).unwrap();
    heartbeat(h, 50, topics, beat("b", 2, Some(&got)));
    let (state, epoch, _, members) = describe(&h.c, topics);
    assert_eq!((state.as_str(), epoch), ("Stable", 2));
    assert_eq!(members["a"].1.len(), 2);
    assert_eq!(members["b"].1.len(), 2);
}

// ---------------------------------------------------------------- scenarios

#[test]
fn partitions_move_only_after_their_owner_revokes_them() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);

    // The first member gets an id and every partition.
    let r = heartbeat(&mut h, 0, &topics, join("", &["t"]));
    assert_eq!(r.error_code, 0);
    let a = r
        .member_id
        .as_ref()
        .expect("a member id")
        .as_str()
        .to_string();
    assert!(!a.is_empty());
    assert_eq!(r.member_epoch, 1);
    assert!(r.heartbeat_interval_ms > 0);
    let all = received(&r).expect("the first response carries the assignment");
    assert_eq!(all, set("t", 0..4));
    assert!(!h.records.is_empty(), "the group is persisted");

    // A second member joins: the group moves to epoch 2, but A still holds everything.
    let r = heartbeat(&mut h, 100, &topics, join("member-b", &["t"]));
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.member_id.as_ref().unwrap().as_str(),
        "member-b",
        "a client-chosen id is kept"
    );
    assert_eq!(r.member_epoch, 2);
    assert_eq!(
        received(&r),
        Some(BTreeSet::new()),
        "nothing free to hand out yet"
    );
    let b = "member-b".to_string();

    // A is asked to revoke some partitions; its epoch stays 1 until it does.
    let r = heartbeat(&mut h, 200, &topics, beat(&a, 1, Some(&all)));
    assert_eq!((r.error_code, r.member_epoch), (0, 1));
    let kept = received(&r).expect("a smaller assignment");
    assert!(kept.is_subset(&all) && kept.len() < all.len() && !kept.is_empty());
    let revoked: BTreeSet<_> = all.difference(&kept).copied().collect();
    assert_eq!(kept.len(), 2, "uniform: 2 partitions each");

    // B gets none of them while A holds them: not on a heartbeat without
    // owned partitions, not while A keeps reporting them.
    let r = heartbeat(&mut h, 300, &topics, beat(&b, 2, Some(&BTreeSet::new())));
    assert_eq!(r.error_code, 0);
    assert!(received(&r).unwrap_or_default().is_empty());
    let r = heartbeat(&mut h, 350, &topics, beat(&a, 1, None));
    assert_eq!(
        r.member_epoch, 1,
        "no owned partitions: not an acknowledgement"
    );
    let r = heartbeat(&mut h, 400, &topics, beat(&a, 1, Some(&all)));
    assert_eq!(r.member_epoch, 1, "still owns them");
    let r = heartbeat(&mut h, 450, &topics, beat(&b, 2, Some(&BTreeSet::new())));
    assert!(received(&r).unwrap_or_default().is_empty());
    assert!(assigned_of(&h.c, &b).is_empty());
    let (state, group_epoch, assignment_epoch, _) = describe(&h.c, &topics);
    assert_eq!(
        (state.as_str(), group_epoch, assignment_epoch),
        ("Reconciling", 2, 2)
    );

    // A acknowledges: it reaches epoch 2, and B then gets the partitions.
    let r = heartbeat(&mut h, 500, &topics, beat(&a, 1, Some(&kept)));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    assert_eq!(received(&r).unwrap_or_else(|| kept.clone()), kept);
    let r = heartbeat(&mut h, 600, &topics, beat(&b, 2, Some(&BTreeSet::new())));
    assert_eq!((r.error_code, r.member_epoch), (0, 2));
    assert_eq!(received(&r), Some(revoked.clone()));
    let r = heartbeat(&mut h, 700, &topics, beat(&b, 2, Some(&revoked)));
    assert_eq!(received(&r), None, "nothing new to say");

    let (state, group_epoch, assignment_epoch, members) = describe(&h.c, &topics);
    assert_eq!(
        (state.as_str(), group_epoch, assignment_epoch),
        ("Stable", 2, 2)
    );
    assert_eq!(members[&a].0, 2);
    assert_eq!(members[&b].0, 2);
    let a_parts = &members[&a].1;
    let b_parts = &members[&b].1;
    assert!(a_parts.is_disjoint(b_parts));
    assert_eq!(a_parts.len() + b_parts.len(), 4);
    assert!(a_parts.iter().chain(b_parts).all(|(t, _)| t == "t"));
}

#[test]
fn leaving_with_epoch_minus_one_frees_the_partitions() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    stable_two(&mut h, &topics);
    let r = heartbeat(&mut h, 100, &topics, beat("b", -1, None));
    assert_eq!((r.error_code, r.member_epoch), (0, -1));
    let (_, epoch, _, members) = describe(&h.c, &topics);
    assert_eq!(epoch, 3);
    assert_eq!(members.keys().collect::<Vec<_>>(), vec!["a"]);
    let a_had = assigned_of(&h.c, "a");
    let r = heartbeat(&mut h, 200, &topics, beat("a", 2, Some(&a_had)));
    assert_eq!((r.error_code, r.member_epoch), (0, 3));
    assert_eq!(received(&r), Some(set("t", 0..4)));

    // Leaving twice, or as a stranger.
    let r = heartbeat(&mut h, 300, &topics, beat("b", -1, None));
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    let r = heartbeat(&mut h, 300, &topics, beat("a", -1, None));
    assert_eq!(r.error_code, 0);
    let (state, ..) = describe(&h.c, &topics);
    assert_eq!(state, "Empty");
    let listed = h.c.list_groups(ListGroupsRequest::default());
    assert_eq!(listed.groups[0].group_state.as_str(), "Empty");
    assert_eq!(listed.groups[0].group_type.as_str(), "consumer");
}

#[test]
fn heartbeat_errors_follow_kafka() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    let r = heartbeat(&mut h, 0, &topics, join("a", &["t"]));
    assert_eq!(r.member_epoch, 1);
    let all = received(&r).unwrap();

    // An epoch the coordinator never gave this member.
    for epoch in [2, 7, 1000] {
        let r = heartbeat(&mut h, 10, &topics, beat("a", epoch, Some(&all)));
        assert_eq!(r.error_code, FENCED_MEMBER_EPOCH, "epoch {epoch}");
    }
    // A member the group does not know.
    let r = heartbeat(&mut h, 10, &topics, beat("stranger", 1, None));
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    // An assignor the coordinator does not have.
    let r = heartbeat(
        &mut h,
        10,
        &topics,
        join("c", &["t"]).with_server_assignor(Some(s("fancy"))),
    );
    assert_eq!(r.error_code, UNSUPPORTED_ASSIGNOR);
    // A first heartbeat must say what it subscribes to.
    let r = heartbeat(
        &mut h,
        10,
        &topics,
        join("c", &["t"]).with_subscribed_topic_names(None),
    );
    assert_eq!(r.error_code, INVALID_REQUEST);
    let r = heartbeat(
        &mut h,
        10,
        &topics,
        join("c", &["t"]).with_group_id(gid("")),
    );
    assert_eq!(r.error_code, INVALID_REQUEST);
    // None of that touched the group or the member.
    let (state, epoch, _, members) = describe(&h.c, &topics);
    assert_eq!((state.as_str(), epoch, members.len()), ("Stable", 1, 1));
    let r = heartbeat(&mut h, 20, &topics, beat("a", 1, Some(&all)));
    assert_eq!((r.error_code, r.member_epoch), (0, 1));

    // Both supported assignors are accepted, and range is used when asked for.
    let r = heartbeat(
        &mut h,
        30,
        &topics,
        join("b", &["t"]).with_server_assignor(Some(s("range"))),
    );
    assert_eq!(r.error_code, 0);
}

#[test]
fn silent_members_expire_and_their_partitions_move() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    stable_two(&mut h, &topics);
    let b_has = assigned_of(&h.c, "b");
    // B heartbeats, A does not (its last heartbeat was at 30).
    let r = heartbeat(&mut h, 40_000, &topics, beat("b", 2, Some(&b_has)));
    assert_eq!(r.error_code, 0);
    h.tick(40_000);
    assert_eq!(consumer(&h.c).members.len(), 2);
    let first = h.records.len();
    h.tick(30 + SESSION_TIMEOUT + 1);
    assert_eq!(
        consumer(&h.c).members.keys().collect::<Vec<_>>(),
        vec!["b"],
        "A's session expired"
    );
    assert!(h.records.len() > first, "the removal is persisted");
    let r = heartbeat(&mut h, 46_000, &topics, beat("b", 2, Some(&b_has)));
    assert_eq!((r.error_code, r.member_epoch), (0, 3));
    assert_eq!(received(&r), Some(set("t", 0..4)));
    let r = heartbeat(&mut h, 46_100, &topics, beat("a", 2, None));
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn a_member_that_never_revokes_is_removed_after_its_rebalance_timeout() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    let r = heartbeat(&mut h, 0, &topics, join("a", &["t"]));
    let all = received(&r).unwrap();
    heartbeat(&mut h, 10, &topics, join("b", &["t"]));
    let r = heartbeat(&mut h, 20, &topics, beat("a", 1, Some(&all)));
    assert_eq!(r.member_epoch, 1, "asked to revoke");
    // A keeps heartbeating but never lets go; B waits.
    let mut now = 20;
    while now < 20 + REBALANCE_TIMEOUT as i64 - 1000 {
        now += 5000;
        let r = heartbeat(&mut h, now, &topics, beat("a", 1, Some(&all)));
        assert_eq!(r.error_code, 0);
        let r = heartbeat(&mut h, now, &topics, beat("b", 2, Some(&BTreeSet::new())));
        assert!(received(&r).unwrap_or_default().is_empty());
        h.tick(now);
    }
    h.tick(20 + REBALANCE_TIMEOUT as i64 + 1);
    assert!(!consumer(&h.c).members.contains_key("a"));
    let r = heartbeat(
        &mut h,
        now + 2000,
        &topics,
        beat("b", 2, Some(&BTreeSet::new())),
    );
    assert_eq!(received(&r), Some(set("t", 0..4)));
}

#[test]
fn commits_from_consumer_members_check_the_member_epoch() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t1", 4)]);
    let r = heartbeat(&mut h, 0, &topics, join("a", &["t1"]));
    assert_eq!(r.member_epoch, 1);
    for (epoch, code) in [(0, STALE_MEMBER_EPOCH), (2, STALE_MEMBER_EPOCH), (1, 0)] {
        let response = h.commit(
            10,
            commit_request(GROUP, "a", epoch, None, &[("t1", 0, 5, None)]),
        );
        assert_eq!(
            commit_errors(&response),
            vec![("t1".into(), 0, code)],
            "epoch {epoch}"
        );
    }
    let response = h.commit(
        10,
        commit_request(GROUP, "nobody", 1, None, &[("t1", 1, 5, None)]),
    );
    assert_eq!(
        commit_errors(&response),
        vec![("t1".into(), 1, UNKNOWN_MEMBER_ID)]
    );
    let response = h.commit(
        10,
        commit_request(GROUP, "", -1, None, &[("t1", 1, 5, None)]),
    );
    assert_eq!(
        commit_errors(&response),
        vec![("t1".into(), 1, UNKNOWN_MEMBER_ID)],
        "no admin commits while the group has members"
    );
    assert_eq!(
        fetch_v7(&h.c, GROUP, None),
        vec![("t1".into(), 0, 5, "".into(), 0)]
    );
}

#[test]
fn replay_restores_members_assignments_and_offsets() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    stable_two(&mut h, &topics);
    h.commit(
        60,
        commit_request(GROUP, "a", 2, None, &[("t1", 0, 7, Some("m"))]),
    );
    let a_has = assigned_of(&h.c, "a");
    let b_has = assigned_of(&h.c, "b");

    let mut r = Harness::wrap(h.replayed(1000));
    let (_, _, _, members) = describe(&r.c, &topics);
    let (_, _, _, before) = describe(&h.c, &topics);
    assert_eq!(members, before, "same members, epochs and assignments");
    assert_eq!(fetch_v7(&r.c, GROUP, None), fetch_v7(&h.c, GROUP, None));
    // The members carry on: same partitions, no one fenced.
    let ra = heartbeat(&mut r, 1000, &topics, beat("a", 2, Some(&a_has)));
    let rb = heartbeat(&mut r, 1000, &topics, beat("b", 2, Some(&b_has)));
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    assert_eq!(received(&ra).unwrap_or_else(|| a_has.clone()), a_has);
    assert_eq!(received(&rb).unwrap_or_else(|| b_has.clone()), b_has);
    assert_eq!(assigned_of(&r.c, "a"), a_has);
    assert_eq!(assigned_of(&r.c, "b"), b_has);
    let ra = heartbeat(
        &mut r,
        1100,
        &topics,
        beat("a", ra.member_epoch, Some(&a_has)),
    );
    let rb = heartbeat(
        &mut r,
        1100,
        &topics,
        beat("b", rb.member_epoch, Some(&b_has)),
    );
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    let (state, ..) = describe(&r.c, &topics);
    assert_eq!(state, "Stable");
}

#[test]
fn replay_reports_the_same_group_state() {
    // Kafka rebuilds the group epoch, target assignment epoch and member
    // epochs exactly, so a restarted coordinator lists the group as Stable.
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    stable_two(&mut h, &topics);
    let r = h.replayed(1000);
    assert_eq!(
        r.list_groups(ListGroupsRequest::default()),
        h.c.list_groups(ListGroupsRequest::default())
    );
    assert_eq!(describe(&r, &topics), describe(&h.c, &topics));
}

// ---------------------------------------------------------------- known bugs

#[test]
fn replay_keeps_partitions_pending_revocation() {
    // Kafka stores PartitionsPendingRevocation in ConsumerGroupCurrentMemberAssignmentValue.
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    let r = heartbeat(&mut h, 0, &topics, join("a", &["t"]));
    let all = received(&r).unwrap();
    heartbeat(&mut h, 10, &topics, join("b", &["t"]));
    let r = heartbeat(&mut h, 20, &topics, beat("a", 1, Some(&all)));
    let kept = received(&r).unwrap();
    let revoking: BTreeSet<_> = all.difference(&kept).copied().collect();
    assert!(!revoking.is_empty());

    // The coordinator restarts before A has acknowledged.
    let mut r = Harness::wrap(h.replayed(100));
    let rb = heartbeat(&mut r, 100, &topics, beat("b", 2, Some(&BTreeSet::new())));
    assert_eq!(rb.error_code, 0);
    let given = received(&rb).unwrap_or_default();
    assert!(
        given.is_disjoint(&revoking),
        "B was given {given:?} while A still owns {revoking:?}"
    );
}

#[test]
fn static_member_leaving_temporarily_keeps_its_partitions() {
    // Kafka's GroupMetadataManager.consumerGroupStaticMemberGroupLeave.
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    let static_join =
        |id: &str, instance: &str| join(id, &["t"]).with_instance_id(Some(s(instance)));
    let r = heartbeat(&mut h, 0, &topics, static_join("a1", "ia"));
    let all = received(&r).unwrap();
    heartbeat(&mut h, 10, &topics, static_join("b", "ib"));
    let r = heartbeat(
        &mut h,
        20,
        &topics,
        beat("a1", 1, Some(&all)).with_instance_id(Some(s("ia"))),
    );
    let kept = received(&r).unwrap();
    heartbeat(
        &mut h,
        30,
        &topics,
        beat("a1", 1, Some(&kept)).with_instance_id(Some(s("ia"))),
    );
    let r = heartbeat(
        &mut h,
        40,
        &topics,
        beat("b", 2, Some(&BTreeSet::new())).with_instance_id(Some(s("ib"))),
    );
    let b_has = received(&r).unwrap();
    heartbeat(
        &mut h,
        50,
        &topics,
        beat("b", 2, Some(&b_has)).with_instance_id(Some(s("ib"))),
    );
    assert_eq!(describe(&h.c, &topics).0, "Stable");

    // A restarts: it leaves "temporarily" ...
    let r = heartbeat(
        &mut h,
        1000,
        &topics,
        beat("a1", -2, None).with_instance_id(Some(s("ia"))),
    );
    assert_eq!((r.error_code, r.member_epoch), (0, -2));
    // ... B is not handed A's partitions meanwhile ...
    let r = heartbeat(
        &mut h,
        1100,
        &topics,
        beat("b", 2, Some(&b_has)).with_instance_id(Some(s("ib"))),
    );
    assert_eq!(r.error_code, 0);
    let b_now = received(&r).unwrap_or_else(|| b_has.clone());
    assert!(b_now.is_disjoint(&kept), "B got {b_now:?} of A's {kept:?}");
    // ... and A's new incarnation gets them back at once.
    let r = heartbeat(&mut h, 2000, &topics, static_join("a2", "ia"));
    assert_eq!(r.error_code, 0);
    assert_eq!(received(&r), Some(kept));
}

#[test]
fn delete_groups_refuses_a_live_consumer_group() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t", 4)]);
    heartbeat(&mut h, 0, &topics, join("a", &["t"]));
    let out =
        h.c.delete_groups(DeleteGroupsRequest::default().with_groups_names(vec![gid(GROUP)]));
    let response = h.absorb(out).unwrap();
    assert_eq!(response.results[0].error_code, NON_EMPTY_GROUP);
    assert!(h.c.group(GROUP).is_some());
}

#[test]
fn offset_delete_refuses_topics_a_consumer_group_subscribes_to() {
    let mut h = Harness::no_delay();
    let topics = Topics::with(&[("t1", 4), ("t2", 4)]);
    heartbeat(&mut h, 0, &topics, join("a", &["t1"]));
    h.commit(
        10,
        commit_request(
            GROUP,
            "a",
            1,
            None,
            &[("t1", 0, 5, None), ("t2", 0, 6, None)],
        ),
    );
    let request = OffsetDeleteRequest::default()
        .with_group_id(gid(GROUP))
        .with_topics(
            ["t1", "t2"]
                .iter()
                .map(|t| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0)
                        ])
                })
                .collect(),
        );
    let out = h.c.delete_offsets(request);
    let response = h.absorb(out).unwrap();
    let codes: Vec<i16> = response
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![GROUP_SUBSCRIBED_TO_TOPIC, 0]);
}

// ---------------------------------------------------------------- property

#[derive(Clone, Debug)]
enum Op {
    /// A new member joins.
    Join,
    /// A member leaves (epoch -1).
    Leave(usize),
    /// A member heartbeats; with `ack` it first applies its latest assignment
    /// (revoking what it lost), without it it still reports its old partitions.
    Beat { who: usize, ack: bool },
    /// A member lost everything and rejoins with its id at epoch 0.
    Rejoin(usize),
    /// A member changes its subscription (bit i: `TOPIC_NAMES[i]`) and heartbeats.
    Subscribe { who: usize, mask: u8 },
    /// Partitions are added to a topic ("c" starts out missing).
    Grow { topic: usize, by: i32 },
    /// Time passes and the coordinator's timers run.
    Tick(i64),
}

const TOPIC_NAMES: [&str; 3] = ["a", "b", "c"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Join),
        1 => any::<usize>().prop_map(Op::Leave),
        12 => (any::<usize>(), prop::bool::weighted(0.7)).prop_map(|(who, ack)| Op::Beat { who, ack }),
        1 => any::<usize>().prop_map(Op::Rejoin),
        1 => (any::<usize>(), 1..8u8).prop_map(|(who, mask)| Op::Subscribe { who, mask }),
        1 => (0..3usize, 1..4i32).prop_map(|(topic, by)| Op::Grow { topic, by }),
        2 => (0..40_000i64).prop_map(Op::Tick),
    ]
}

/// What a client believes: its epoch, the partitions it reported owning
/// last, and the latest assignment the coordinator sent it.
#[derive(Debug)]
struct Client {
    id: String,
    subscription: Vec<&'static str>,
    epoch: i32,
    owned: BTreeSet<(Uuid, i32)>,
    latest: BTreeSet<(Uuid, i32)>,
}

struct Sim {
    h: Harness,
    topics: Topics,
    now: i64,
    clients: Vec<Client>,
    next_id: usize,
    assignor: Option<&'static str>,
}

impl Sim {
    fn new(assignor: Option<&'static str>) -> Self {
        Sim {
            h: Harness::no_delay(),
            topics: Topics::with(&[("a", 3), ("b", 2)]),
            now: 0,
            clients: Vec::new(),
            next_id: 0,
            assignor,
        }
    }

    fn join_request(&self, id: &str) -> ConsumerGroupHeartbeatRequest {
        join(id, &TOPIC_NAMES).with_server_assignor(self.assignor.map(s))
    }

    fn send(&mut self, request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse {
        self.now += 50;
        let out = self
            .h
            .c
            .consumer_heartbeat(self.now, client(), request, &self.topics);
        self.h.absorb(out).expect("answered at once")
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Join => {
                let id = format!("m{:03}", self.next_id);
                self.next_id += 1;
                let r = self.send(self.join_request(&id));
                assert_eq!(r.error_code, 0, "join: {:?}", r.error_message);
                self.clients.push(Client {
                    id,
                    subscription: TOPIC_NAMES.to_vec(),
                    epoch: r.member_epoch,
                    owned: BTreeSet::new(),
                    latest: received(&r).expect("a join gets its assignment"),
                });
            }
            Op::Leave(i) => {
                if self.clients.is_empty() {
                    return;
                }
                let c = self.clients.remove(i % self.clients.len());
                let r = self.send(beat(&c.id, -1, None));
                assert!(
                    [0, UNKNOWN_MEMBER_ID].contains(&r.error_code),
                    "leave: {:?}",
                    r.error_message
                );
            }
            Op::Beat { who, ack } => {
                if self.clients.is_empty() {
                    return;
                }
                let i = who % self.clients.len();
                self.beat(i, ack);
            }
            Op::Rejoin(i) => {
                if self.clients.is_empty() {
                    return;
                }
                let i = i % self.clients.len();
                let r = self.send(self.join_request(&self.clients[i].id.clone()));
                assert_eq!(r.error_code, 0, "rejoin: {:?}", r.error_message);
                let c = &mut self.clients[i];
                c.subscription = TOPIC_NAMES.to_vec();
                c.epoch = r.member_epoch;
                c.owned = BTreeSet::new();
                c.latest = received(&r).expect("a join gets its assignment");
            }
            Op::Subscribe { who, mask } => {
                if self.clients.is_empty() {
                    return;
                }
                let i = who % self.clients.len();
                self.clients[i].subscription = (0..TOPIC_NAMES.len())
                    .filter(|b| mask & (1 << b) != 0)
                    .map(|b| TOPIC_NAMES[b])
                    .collect();
                self.beat(i, true);
            }
            Op::Grow { topic, by } => self.topics.grow(TOPIC_NAMES[topic], by),
            Op::Tick(d) => {
                self.now += d;
                self.h.tick(self.now);
            }
        }
    }

    /// One heartbeat of client `i`; a client that is no longer a member drops out.
    fn beat(&mut self, i: usize, ack: bool) {
        let c = &self.clients[i];
        let reporting = if ack {
            c.latest.clone()
        } else {
            c.owned.clone()
        };
        let subscription: Vec<_> = c.subscription.iter().map(|t| topic(t)).collect();
        let r = self.send(
            beat(&c.id.clone(), c.epoch, Some(&reporting))
                .with_subscribed_topic_names(Some(subscription)),
        );
        match r.error_code {
            0 => {
                let c = &mut self.clients[i];
                c.owned = reporting;
                c.epoch = r.member_epoch;
                if let Some(a) = received(&r) {
                    c.latest = a;
                }
            }
            UNKNOWN_MEMBER_ID | FENCED_MEMBER_EPOCH => {
                self.clients.remove(i);
            }
            other => panic!("heartbeat error {other}: {:?}", r.error_message),
        }
    }

    fn state(&self) -> Option<&ConsumerGroupState> {
        self.h.c.group(GROUP).and_then(|g| g.consumer.as_ref())
    }

    /// No partition held by two members, in the coordinator's view and in the clients'.
    fn check_exclusive(&self) -> Result<(), TestCaseError> {
        let Some(state) = self.state() else {
            return Ok(());
        };
        let mut holder: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for member in state.members.values() {
            let held = flat(&member.assigned);
            let pending = flat(&member.pending_revocation);
            prop_assert!(held.is_disjoint(&pending));
            prop_assert!(member.member_epoch <= state.group_epoch);
            for p in held.union(&pending) {
                if let Some(other) = holder.insert(*p, &member.member_id) {
                    return Err(TestCaseError::fail(format!(
                        "{p:?} held by both {other} and {} in the coordinator",
                        member.member_id
                    )));
                }
            }
        }
        let mut holder: BTreeMap<(Uuid, i32), &str> = BTreeMap::new();
        for c in self
            .clients
            .iter()
            .filter(|c| state.members.contains_key(&c.id))
        {
            for p in c.owned.union(&c.latest) {
                if let Some(other) = holder.insert(*p, &c.id) {
                    return Err(TestCaseError::fail(format!(
                        "{p:?} owned by both clients {other} and {}",
                        c.id
                    )));
                }
            }
        }
        Ok(())
    }

    fn converged(&self) -> bool {
        let Some(state) = self.state() else {
            return false;
        };
        let epoch = state.group_epoch;
        state.target_epoch == epoch
            && state.members.values().all(|m| {
                m.member_epoch == epoch
                    && m.pending_revocation.is_empty()
                    && m.state == strom_coordinator::consumer::MemberState::Stable
            })
            && self
                .clients
                .iter()
                .all(|c| c.epoch == epoch && c.owned == c.latest)
    }

    /// Every client acknowledges every round until the group settles; then
    /// the assignment covers every partition once and is balanced.
    fn converge(&mut self) -> Result<(), TestCaseError> {
        // Everyone back on every topic, so that balance is well defined.
        for c in &mut self.clients {
            c.subscription = TOPIC_NAMES.to_vec();
        }
        // At least one round: the coordinator only notices new partitions
        // when someone heartbeats.
        let mut rounds = 0;
        while rounds == 0 || !self.converged() {
            rounds += 1;
            prop_assert!(
                rounds <= 10,
                "no convergence after 10 rounds: {:?}",
                self.clients
            );
            if self.clients.is_empty() {
                // Everyone expired or left: someone has to consume.
                self.apply(&Op::Join);
                self.check_exclusive()?;
            }
            let mut i = 0;
            while i < self.clients.len() {
                let before = self.clients.len();
                self.beat(i, true);
                self.check_exclusive()?;
                if self.clients.len() == before {
                    i += 1;
                }
            }
        }
        let state = self.state().expect("converged");
        prop_assert_eq!(state.state_name(), "Stable");
        prop_assert_eq!(state.members.len(), self.clients.len());
        let everything = self.topics.partitions(&TOPIC_NAMES);
        let mut covered = BTreeSet::new();
        for m in state.members.values() {
            let mine = flat(&m.assigned);
            prop_assert!(covered.is_disjoint(&mine));
            covered.extend(mine.iter().copied());
            let client = self.clients.iter().find(|c| c.id == m.member_id).unwrap();
            prop_assert_eq!(&client.latest, &mine, "the client knows its assignment");
        }
        prop_assert_eq!(&covered, &everything, "every partition is assigned");
        // Balance: uniform over all partitions, range per topic.
        let counts = |filter: &dyn Fn(&Uuid) -> bool| -> Vec<usize> {
            state
                .members
                .values()
                .map(|m| flat(&m.assigned).iter().filter(|(t, _)| filter(t)).count())
                .collect()
        };
        let spread = |v: Vec<usize>| v.iter().max().unwrap() - v.iter().min().unwrap();
        if self.assignor == Some("range") {
            for (id, _) in self.topics.0.values() {
                prop_assert!(spread(counts(&|t| t == id)) <= 1, "range: unbalanced topic");
            }
        } else {
            prop_assert!(spread(counts(&|_| true)) <= 1, "uniform: unbalanced");
        }
        Ok(())
    }
}

fn assignor() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![Just(None), Just(Some("uniform")), Just(Some("range"))]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn no_partition_is_ever_owned_twice_and_acking_groups_converge(
        assignor in assignor(),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let mut sim = Sim::new(assignor);
        for op in &ops {
            sim.apply(op);
            sim.check_exclusive()?;
        }
        sim.converge()?;
    }
}

/// A fixed run of the simulation, so a plain `cargo test` exercises growth,
/// expiry and slow acknowledgements even with a lucky proptest seed.
#[test]
fn a_busy_group_stays_exclusive_and_converges() {
    let mut sim = Sim::new(None);
    let script = [
        Op::Join,
        Op::Join,
        Op::Beat { who: 0, ack: false },
        Op::Join,
        Op::Beat { who: 0, ack: true },
        Op::Beat { who: 1, ack: true },
        Op::Grow { topic: 2, by: 3 },
        Op::Beat { who: 2, ack: false },
        Op::Beat { who: 1, ack: false },
        Op::Beat { who: 0, ack: true },
        Op::Rejoin(1),
        Op::Beat { who: 2, ack: true },
        Op::Tick(20_000),
        Op::Beat { who: 0, ack: true },
        Op::Beat { who: 2, ack: true },
        Op::Tick(30_000),
        Op::Join,
        Op::Leave(0),
        Op::Grow { topic: 0, by: 2 },
        Op::Subscribe {
            who: 0,
            mask: 0b001,
        },
        Op::Beat { who: 1, ack: false },
        Op::Subscribe {
            who: 1,
            mask: 0b110,
        },
        Op::Beat { who: 0, ack: true },
        Op::Beat { who: 1, ack: true },
    ];
    for op in &script {
        sim.apply(op);
        sim.check_exclusive().unwrap();
    }
    sim.converge().unwrap();
    // Topic "c" was created on the way and is assigned too.
    let c_partitions = sim.topics.partitions(&["c"]);
    let state = sim.state().unwrap();
    let assigned: BTreeSet<_> = state
        .members
        .values()
        .flat_map(|m| flat(&m.assigned))
        .collect();
    assert!(c_partitions.len() == 3 && c_partitions.is_subset(&assigned));
}
