//! The classic group protocol against Kafka's behaviour: JoinGroup (KIP-394),
//! SyncGroup, Heartbeat, LeaveGroup, the rebalance timers, static
//! membership (KIP-345), offsets and their retention, and replay. Time is an
//! explicit argument, so nothing here sleeps.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, JoinGroupResponse, ListGroupsRequest,
    OffsetDeleteRequest,
};
use strom_coordinator::records::RecordKey;
use strom_coordinator::{GroupConfig, GroupCoordinator, GroupState};

// Kafka's error codes.
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn range() -> Vec<(&'static str, Bytes)> {
    vec![("range", subscription(&["t1"]))]
}

fn state(c: &GroupCoordinator, group: &str) -> GroupState {
    c.group(group).expect("group exists").state
}

fn member_ids(response: &JoinGroupResponse) -> Vec<String> {
    response
        .members
        .iter()
        .map(|m| m.member_id.as_str().to_string())
        .collect()
}

/// Two dynamic members A (leader) and B in a Stable group at generation 2;
/// A's assignment is "A2" and B's "B2".
struct Pair {
    a: String,
    b: String,
    generation: i32,
}

fn stable_pair(h: &mut Harness, now: i64) -> Pair {
    let a = h.member_id(now, GROUP);
    let (_, first) = h.join(now, 5, join_request(GROUP, &a, None, &range()));
    let first = first.expect("a lone member's join completes at once");
    assert_eq!((first.error_code, first.generation_id), (0, 1));
    let (_, synced) = h.sync(now, sync_request(GROUP, &a, 1, None, &[(&a, b"A1")]));
    assert_eq!(synced.expect("leader sync answers").error_code, 0);

    let b = h.member_id(now, GROUP);
    let (tb, parked) = h.join(now, 5, join_request(GROUP, &b, None, &range()));
    assert!(parked.is_none(), "B waits for A to rejoin");
    let (_, rejoined) = h.join(now, 5, join_request(GROUP, &a, None, &range()));
    let ja = rejoined.expect("A's rejoin completes the join phase");
    let jb = h.join_done(tb);
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));

    let (tsb, parked) = h.sync(now, sync_request(GROUP, &b, 2, None, &[]));
    assert!(parked.is_none());
    let (_, sa) = h.sync(
        now,
        sync_request(GROUP, &a, 2, None, &[(&a, b"A2"), (&b, b"B2")]),
    );
    assert_eq!(sa.expect("leader sync answers").assignment.as_ref(), b"A2");
    assert_eq!(h.sync_done(tsb).assignment.as_ref(), b"B2");
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    Pair {
        a,
        b,
        generation: 2,
    }
}

// ---------------------------------------------------------------- joining

#[test]
fn v4_first_join_requires_a_member_id_and_v3_joins_directly() {
    let mut h = Harness::no_delay();
    let (_, response) = h.join(0, 4, join_request(GROUP, "", None, &range()));
    let response = response.expect("answered at once");
    assert_eq!(response.error_code, MEMBER_ID_REQUIRED);
    assert_eq!(response.generation_id, -1);
    let id = response.member_id.as_str().to_string();
    assert!(!id.is_empty(), "the error carries the member id to use");
    assert!(
        h.c.group(GROUP).unwrap().members.is_empty(),
        "not a member until it joins with the id"
    );

    let (_, response) = h.join(1, 4, join_request(GROUP, &id, None, &range()));
    let response = response.expect("a lone member completes the join at once");
    assert_eq!(response.error_code, 0);
    assert_eq!(response.member_id.as_str(), id);
    assert_eq!(
        (response.generation_id, response.leader.as_str()),
        (1, id.as_str())
    );

    // v3 predates KIP-394: the member is created and joins in one go.
    let mut h = Harness::no_delay();
    let (_, response) = h.join(0, 3, join_request(GROUP, "", None, &range()));
    let response = response.expect("answered at once");
    assert_eq!(response.error_code, 0);
    assert!(!response.member_id.is_empty());
    assert_eq!(response.generation_id, 1);
    assert_eq!(response.leader, response.member_id);
}

#[test]
fn second_member_triggers_rebalance_and_sync_hands_out_assignments() {
    let mut h = Harness::no_delay();
    let a = h.member_id(0, GROUP);
    let (_, ja) = h.join(0, 5, join_request(GROUP, &a, None, &range()));
    assert_eq!(ja.unwrap().generation_id, 1);
    let (_, sa) = h.sync(0, sync_request(GROUP, &a, 1, None, &[(&a, b"all")]));
    assert_eq!(sa.unwrap().assignment.as_ref(), b"all");
    assert_eq!(h.heartbeat(10, GROUP, &a, 1, None), 0);

    // B joins: the group prepares a rebalance and B's join waits for A.
    let b = h.member_id(100, GROUP);
    let b_metadata = subscription(&["t1", "t2"]);
    let (tb, jb) = h.join(
        100,
        5,
        join_request(GROUP, &b, None, &[("range", b_metadata.clone())]),
    );
    assert!(jb.is_none());
    assert_eq!(state(&h.c, GROUP), GroupState::PreparingRebalance);
    assert_eq!(h.heartbeat(200, GROUP, &a, 1, None), REBALANCE_IN_PROGRESS);
    assert!(h.join_pending(tb));

    // A rejoins: both joins complete with generation 2.
    let (ta, ja) = h.join(300, 5, join_request(GROUP, &a, None, &range()));
    let ja = ja.expect("the last member to rejoin is answered at once");
    assert!(h.join_pending(ta), "not also answered as a completion");
    let jb = h.join_done(tb);
    assert_eq!((ja.error_code, jb.error_code), (0, 0));
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    assert_eq!(ja.leader.as_str(), a, "the leader stays the leader");
    assert_eq!(jb.leader.as_str(), a);
    assert_eq!(ja.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    assert_eq!(jb.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    // Only the leader learns the members, with their metadata for the chosen protocol.
    assert!(jb.members.is_empty());
    let mut listed = member_ids(&ja);
    listed.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    let b_listed = ja
        .members
        .iter()
        .find(|m| m.member_id.as_str() == b)
        .unwrap();
    assert_eq!(b_listed.metadata, b_metadata);
    let a_listed = ja
        .members
        .iter()
        .find(|m| m.member_id.as_str() == a)
        .unwrap();
    assert_eq!(a_listed.metadata, subscription(&["t1"]));
    assert_eq!(state(&h.c, GROUP), GroupState::CompletingRebalance);
    assert_eq!(
        h.heartbeat(350, GROUP, &b, 2, None),
        0,
        "heartbeats are fine while syncing"
    );

    // The follower's sync waits for the leader's.
    let (tsb, sb) = h.sync(400, sync_request(GROUP, &b, 2, None, &[]));
    assert!(sb.is_none());
    assert!(h.sync_pending(tsb));
    let (_, sa) = h.sync(
        500,
        sync_request(GROUP, &a, 2, None, &[(&a, b"for-a"), (&b, b"for-b")]),
    );
    let sa = sa.expect("the leader's sync answers at once");
    assert_eq!(sa.error_code, 0);
    assert_eq!(sa.assignment.as_ref(), b"for-a");
    let sb = h.sync_done(tsb);
    assert_eq!(sb.error_code, 0);
    assert_eq!(sb.assignment.as_ref(), b"for-b");
    assert_eq!(sb.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert_eq!(h.heartbeat(600, GROUP, &a, 2, None), 0);
    assert_eq!(h.heartbeat(600, GROUP, &b, 2, None), 0);

    // A late sync in Stable gets the member's assignment again.
    let (_, again) = h.sync(700, sync_request(GROUP, &b, 2, None, &[]));
    assert_eq!(again.unwrap().assignment.as_ref(), b"for-b");
}

#[test]
fn protocol_is_chosen_by_vote_among_protocols_all_members_support() {
    let mut h = Harness::no_delay();
    let meta = |tag: &str| subscription(&[tag]);
    // A prefers range; B and C prefer roundrobin; only C knows sticky.
    let a_protocols = vec![("range", meta("a-range")), ("roundrobin", meta("a-rr"))];
    let b_protocols = vec![("roundrobin", meta("b-rr")), ("range", meta("b-range"))];
    let c_protocols = vec![
        ("sticky", meta("c-sticky")),
        ("roundrobin", meta("c-rr")),
        ("range", meta("c-range")),
    ];
    let a = h.member_id(0, GROUP);
    let (_, ja) = h.join(0, 5, join_request(GROUP, &a, None, &a_protocols));
    let ja = ja.unwrap();
    assert_eq!(ja.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    h.sync(0, sync_request(GROUP, &a, 1, None, &[]));

    let b = h.member_id(1, GROUP);
    let (tb, _) = h.join(1, 5, join_request(GROUP, &b, None, &b_protocols));
    let c = h.member_id(2, GROUP);
    let (tc, _) = h.join(2, 5, join_request(GROUP, &c, None, &c_protocols));
    let (_, ja) = h.join(3, 5, join_request(GROUP, &a, None, &a_protocols));
    let ja = ja.unwrap();
    let jb = h.join_done(tb);
    let jc = h.join_done(tc);
    for response in [&ja, &jb, &jc] {
        assert_eq!(response.error_code, 0);
        assert_eq!(response.generation_id, 2);
        assert_eq!(
            response.protocol_name.as_ref().map(|p| p.as_str()),
            Some("roundrobin"),
            "two votes for roundrobin beat one for range; sticky is not common to all"
        );
    }
    // The leader gets each member's metadata for the chosen protocol.
    let metadata_of = |id: &str| {
        ja.members
            .iter()
            .find(|m| m.member_id.as_str() == id)
            .map(|m| m.metadata.clone())
    };
    assert_eq!(metadata_of(&a), Some(meta("a-rr")));
    assert_eq!(metadata_of(&b), Some(meta("b-rr")));
    assert_eq!(metadata_of(&c), Some(meta("c-rr")));
}

#[test]
fn initial_rebalance_delay_holds_the_first_join() {
    let config = GroupConfig {
        initial_rebalance_delay_ms: 3000,
        ..Default::default()
    };
    let mut h = Harness::new(config.clone());
    let (ta, ja) = h.join(0, 3, join_request(GROUP, "", None, &range()));
    assert!(ja.is_none(), "a new group waits for more members");
    h.tick(1000);
    h.tick(2999);
    assert!(h.join_pending(ta));
    h.tick(3000);
    let ja = h.join_done(ta);
    assert_eq!((ja.error_code, ja.generation_id), (0, 1));

    // A member arriving during the delay pushes it back.
    let mut h = Harness::new(config);
    let (ta, _) = h.join(0, 3, join_request(GROUP, "", None, &range()));
    let (tb, jb) = h.join(2000, 3, join_request(GROUP, "", None, &range()));
    assert!(jb.is_none());
    h.tick(3000);
    assert!(
        h.join_pending(ta) && h.join_pending(tb),
        "the delay was extended"
    );
    h.tick(6000);
    let (ja, jb) = (h.join_done(ta), h.join_done(tb));
    assert_eq!((ja.generation_id, jb.generation_id), (1, 1));
    assert_eq!(ja.leader, jb.leader);
    let leader = ja.leader.as_str();
    let leader_response = if ja.member_id.as_str() == leader {
        &ja
    } else {
        &jb
    };
    assert_eq!(leader_response.members.len(), 2, "both joined generation 1");
}

// ---------------------------------------------------------------- timers

#[test]
fn session_timeout_removes_a_silent_member_and_rebalances() {
    let mut h = Harness::no_delay();
    let pair = stable_pair(&mut h, 0);
    // B heartbeats, A stays silent (session timeout 10 s).
    assert_eq!(h.heartbeat(5000, GROUP, &pair.b, pair.generation, None), 0);
    h.tick(9000);
    assert_eq!(state(&h.c, GROUP), GroupState::Stable, "nobody expired yet");
    assert_eq!(h.heartbeat(9500, GROUP, &pair.b, pair.generation, None), 0);
    h.tick(10_001);
    assert!(
        h.c.group(GROUP).unwrap().member(&pair.a).is_none(),
        "A expired"
    );
    assert!(h.c.group(GROUP).unwrap().member(&pair.b).is_some());
    assert_eq!(state(&h.c, GROUP), GroupState::PreparingRebalance);
    assert_eq!(
        h.heartbeat(10_100, GROUP, &pair.b, pair.generation, None),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        h.heartbeat(10_100, GROUP, &pair.a, pair.generation, None),
        UNKNOWN_MEMBER_ID
    );
    // B rejoins alone and leads generation 3.
    let (_, jb) = h.join(10_200, 5, join_request(GROUP, &pair.b, None, &range()));
    let jb = jb.expect("B is the only member left");
    assert_eq!(jb.generation_id, 3);
    assert_eq!(jb.leader.as_str(), pair.b);
    assert_eq!(member_ids(&jb), vec![pair.b.clone()]);
}

#[test]
fn rebalance_timeout_drops_members_that_did_not_rejoin() {
    let mut h = Harness::no_delay();
    let pair = stable_pair(&mut h, 0);
    // C joins at 1000: the rebalance must be over by 1000 + 10 s.
    let c = h.member_id(1000, GROUP);
    let (tc, _) = h.join(1000, 5, join_request(GROUP, &c, None, &range()));
    let (ta, ja) = h.join(1500, 5, join_request(GROUP, &pair.a, None, &range()));
    assert!(ja.is_none(), "still waiting for B");
    // B keeps heartbeating (so its session does not expire) but never rejoins.
    for now in [2000, 5000, 8000, 10_500] {
        assert_eq!(
            h.heartbeat(now, GROUP, &pair.b, pair.generation, None),
            REBALANCE_IN_PROGRESS
        );
        h.tick(now);
    }
    assert!(h.join_pending(ta) && h.join_pending(tc));
    h.tick(11_000);
    let ja = h.join_done(ta);
    let jc = h.join_done(tc);
    assert_eq!((ja.generation_id, jc.generation_id), (3, 3));
    let leader = if ja.leader.as_str() == pair.a {
        &ja
    } else {
        &jc
    };
    let mut listed = member_ids(leader);
    listed.sort();
    let mut expected = vec![pair.a.clone(), c.clone()];
    expected.sort();
    assert_eq!(listed, expected, "B was dropped");
    assert_eq!(
        h.heartbeat(11_100, GROUP, &pair.b, pair.generation, None),
        UNKNOWN_MEMBER_ID
    );
}

// ---------------------------------------------------------------- leaving

#[test]
fn leave_group_batched_and_last_member_empties_the_group() {
    let mut h = Harness::no_delay();
    let pair = stable_pair(&mut h, 0);
    let response = h.leave(100, 3, GROUP, &[(&pair.a, None), ("nobody", None)]);
    assert_eq!(response.error_code, 0, "v3+: errors are per member");
    let codes: Vec<(String, i16)> = response
        .members
        .iter()
        .map(|m| (m.member_id.as_str().to_string(), m.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            (pair.a.clone(), 0),
            ("nobody".to_string(), UNKNOWN_MEMBER_ID)
        ]
    );
    assert!(h.c.group(GROUP).unwrap().member(&pair.a).is_none());
    assert_eq!(state(&h.c, GROUP), GroupState::PreparingRebalance);

    let (_, jb) = h.join(200, 5, join_request(GROUP, &pair.b, None, &range()));
    let jb = jb.expect("B alone completes the join");
    assert_eq!((jb.generation_id, jb.leader.as_str()), (3, pair.b.as_str()));
    h.sync(
        200,
        sync_request(GROUP, &pair.b, 3, None, &[(&pair.b, b"x")]),
    );

    let response = h.leave(300, 4, GROUP, &[(&pair.b, None)]);
    assert_eq!(response.members[0].error_code, 0);
    assert_eq!(state(&h.c, GROUP), GroupState::Empty);
    let listed = h.c.list_groups(ListGroupsRequest::default());
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_state.as_str(), "Empty");

    // Before v3 the single member's error is the top-level error.
    let response = h.leave(400, 1, GROUP, &[("nobody", None)]);
    assert_eq!(response.error_code, UNKNOWN_MEMBER_ID);
}

// ---------------------------------------------------------------- errors

#[test]
fn errors_follow_kafka() {
    let mut h = Harness::no_delay();
    let pair = stable_pair(&mut h, 0);
    let (a, b, generation) = (pair.a.as_str(), pair.b.as_str(), pair.generation);

    // Stale generation.
    assert_eq!(
        h.heartbeat(10, GROUP, a, generation - 1, None),
        ILLEGAL_GENERATION
    );
    let (_, sync) = h.sync(10, sync_request(GROUP, b, generation - 1, None, &[]));
    assert_eq!(sync.unwrap().error_code, ILLEGAL_GENERATION);

    // Unknown member.
    assert_eq!(
        h.heartbeat(10, GROUP, "ghost", generation, None),
        UNKNOWN_MEMBER_ID
    );
    let (_, sync) = h.sync(10, sync_request(GROUP, "ghost", generation, None, &[]));
    assert_eq!(sync.unwrap().error_code, UNKNOWN_MEMBER_ID);
    let (_, join) = h.join(10, 5, join_request(GROUP, "ghost", None, &range()));
    assert_eq!(join.unwrap().error_code, UNKNOWN_MEMBER_ID);
    let (_, join) = h.join(
        10,
        5,
        join_request("no-such-group", "ghost", None, &range()),
    );
    assert_eq!(join.unwrap().error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(
        h.heartbeat(10, "no-such-group", a, generation, None),
        UNKNOWN_MEMBER_ID
    );

    // Wrong protocol type, or no protocol in common with the group.
    let mut wrong_type = join_request(GROUP, "", None, &range());
    wrong_type.protocol_type = s("connect");
    let (_, join) = h.join(10, 5, wrong_type);
    assert_eq!(join.unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);
    let (_, join) = h.join(
        10,
        5,
        join_request(GROUP, "", None, &[("roundrobin", subscription(&["t1"]))]),
    );
    assert_eq!(join.unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);
    // A sync naming another protocol than the group's.
    let mut sync = sync_request(GROUP, b, generation, None, &[]);
    sync.protocol_name = Some(s("roundrobin"));
    let (_, sync) = h.sync(10, sync);
    assert_eq!(sync.unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);

    // Session timeout outside [group.min.session.timeout.ms, group.max.session.timeout.ms].
    for timeout in [5999, 1_800_001] {
        let mut request = join_request("other", "", None, &range());
        request.session_timeout_ms = timeout;
        let (_, join) = h.join(10, 5, request);
        assert_eq!(
            join.unwrap().error_code,
            INVALID_SESSION_TIMEOUT,
            "timeout {timeout}"
        );
    }

    // The group is untouched by all of that.
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert_eq!(h.heartbeat(20, GROUP, a, generation, None), 0);

    // SyncGroup while the group prepares a rebalance.
    let c = h.member_id(30, GROUP);
    h.join(30, 5, join_request(GROUP, &c, None, &range()));
    assert_eq!(state(&h.c, GROUP), GroupState::PreparingRebalance);
    let (_, sync) = h.sync(40, sync_request(GROUP, b, generation, None, &[]));
    assert_eq!(sync.unwrap().error_code, REBALANCE_IN_PROGRESS);
}

// ---------------------------------------------------------------- static membership

/// Static members A ("ia", leader) and B ("ib") in a Stable group at generation 2.
fn stable_static_pair(h: &mut Harness) -> Pair {
    // With a group.instance.id there is no MEMBER_ID_REQUIRED round trip.
    let (_, ja) = h.join(0, 5, join_request(GROUP, "", Some("ia"), &range()));
    let ja = ja.expect("a static member joins at once");
    assert_eq!(ja.error_code, 0);
    let a = ja.member_id.as_str().to_string();
    h.sync(0, sync_request(GROUP, &a, 1, Some("ia"), &[(&a, b"A1")]));
    let (tb, jb) = h.join(10, 5, join_request(GROUP, "", Some("ib"), &range()));
    assert!(jb.is_none());
    let (_, ja) = h.join(20, 5, join_request(GROUP, &a, Some("ia"), &range()));
    assert_eq!(ja.unwrap().generation_id, 2);
    let b = h.join_done(tb).member_id.as_str().to_string();
    let (tsb, _) = h.sync(30, sync_request(GROUP, &b, 2, Some("ib"), &[]));
    h.sync(
        30,
        sync_request(GROUP, &a, 2, Some("ia"), &[(&a, b"A2"), (&b, b"B2")]),
    );
    assert_eq!(h.sync_done(tsb).assignment.as_ref(), b"B2");
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    Pair {
        a,
        b,
        generation: 2,
    }
}

#[test]
fn static_follower_rejoining_replaces_itself_without_rebalance_and_fences_the_old_id() {
    let mut h = Harness::no_delay();
    let pair = stable_static_pair(&mut h);
    let records_before = h.records.len();

    // B restarts: same instance id, no member id, same protocols.
    let (_, jb) = h.join(1000, 5, join_request(GROUP, "", Some("ib"), &range()));
    let jb = jb.expect("answered at once, no rebalance");
    assert_eq!(jb.error_code, 0);
    let new_b = jb.member_id.as_str().to_string();
    assert_ne!(new_b, pair.b, "a new member id");
    assert_eq!(jb.generation_id, pair.generation);
    assert_eq!(jb.leader.as_str(), pair.a);
    assert!(jb.members.is_empty(), "a follower gets no member list");
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert!(
        h.records.len() > records_before,
        "the new member id is persisted"
    );
    assert_eq!(
        h.heartbeat(1100, GROUP, &pair.a, pair.generation, Some("ia")),
        0
    );

    // The new incarnation keeps B's assignment.
    let (_, sync) = h.sync(
        1200,
        sync_request(GROUP, &new_b, pair.generation, Some("ib"), &[]),
    );
    let sync = sync.unwrap();
    assert_eq!((sync.error_code, sync.assignment.as_ref()), (0, &b"B2"[..]));
    assert_eq!(
        h.heartbeat(1300, GROUP, &new_b, pair.generation, Some("ib")),
        0
    );

    // The old incarnation is fenced everywhere.
    assert_eq!(
        h.heartbeat(1400, GROUP, &pair.b, pair.generation, Some("ib")),
        FENCED_INSTANCE_ID
    );
    let (_, sync) = h.sync(
        1400,
        sync_request(GROUP, &pair.b, pair.generation, Some("ib"), &[]),
    );
    assert_eq!(sync.unwrap().error_code, FENCED_INSTANCE_ID);
    let commit = h.commit(
        1400,
        commit_request(
            GROUP,
            &pair.b,
            pair.generation,
            Some("ib"),
            &[("t1", 0, 5, None)],
        ),
    );
    assert_eq!(
        commit_errors(&commit),
        vec![("t1".into(), 0, FENCED_INSTANCE_ID)]
    );
    let (_, join) = h.join(1400, 5, join_request(GROUP, &pair.b, Some("ib"), &range()));
    assert_eq!(join.unwrap().error_code, FENCED_INSTANCE_ID);
    // The new one commits.
    let commit = h.commit(
        1500,
        commit_request(
            GROUP,
            &new_b,
            pair.generation,
            Some("ib"),
            &[("t1", 0, 5, None)],
        ),
    );
    assert_eq!(commit_errors(&commit), vec![("t1".into(), 0, 0)]);
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);

    // LeaveGroup by instance id: the old member id is fenced, the instance alone is enough.
    let response = h.leave(1600, 3, GROUP, &[(&pair.b, Some("ib"))]);
    assert_eq!(response.members[0].error_code, FENCED_INSTANCE_ID);
    assert!(h.c.group(GROUP).unwrap().member(&new_b).is_some());
    let response = h.leave(1700, 3, GROUP, &[("", Some("ib")), ("", Some("nobody"))]);
    let codes: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, UNKNOWN_MEMBER_ID]);
    assert!(h.c.group(GROUP).unwrap().member(&new_b).is_none());
    assert_eq!(state(&h.c, GROUP), GroupState::PreparingRebalance);
}

#[test]
fn static_leader_rejoining_with_v9_skips_assignment_without_rebalance() {
    let mut h = Harness::no_delay();
    let pair = stable_static_pair(&mut h);
    let (_, ja) = h.join(1000, 9, join_request(GROUP, "", Some("ia"), &range()));
    let ja = ja.expect("answered at once");
    assert_eq!(ja.error_code, 0);
    assert_eq!(ja.generation_id, pair.generation);
    assert!(ja.skip_assignment, "KIP-814: the leader must not reassign");
    let new_a = ja.member_id.as_str().to_string();
    assert_eq!(ja.leader.as_str(), new_a);
    let mut listed = member_ids(&ja);
    listed.sort();
    let mut expected = vec![new_a.clone(), pair.b.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert_eq!(
        h.heartbeat(1100, GROUP, &pair.b, pair.generation, Some("ib")),
        0
    );
    assert_eq!(
        h.heartbeat(1100, GROUP, &pair.a, pair.generation, Some("ia")),
        FENCED_INSTANCE_ID
    );
}

#[test]
fn static_leader_rejoining_before_v9_does_not_rebalance() {
    // Kafka's GroupCoordinatorTest.staticMemberRejoinWithLeaderIdAndUnknownMemberId
    // (both with and without KIP-814 support): no rebalance, same generation,
    // and before v9 an empty member list.
    let mut h = Harness::no_delay();
    let pair = stable_static_pair(&mut h);
    let (_, ja) = h.join(1000, 5, join_request(GROUP, "", Some("ia"), &range()));
    let ja = ja.expect("answered at once, not parked for a rebalance");
    assert_eq!(ja.error_code, 0);
    assert_eq!(ja.generation_id, pair.generation);
    assert!(ja.members.is_empty());
    assert!(!ja.skip_assignment);
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert_eq!(
        h.heartbeat(1100, GROUP, &pair.b, pair.generation, Some("ib")),
        0
    );
}

// ---------------------------------------------------------------- offsets

#[test]
fn standalone_commits_and_fetches() {
    let mut h = Harness::no_delay();
    // Generation -1 on a group that does not exist: a "simple" consumer.
    let response = h.commit(
        100,
        commit_request(
            "simple",
            "",
            -1,
            None,
            &[
                ("t1", 0, 42, Some("meta-0")),
                ("t1", 1, 7, None),
                ("t2", 3, 9, Some("")),
            ],
        ),
    );
    assert_eq!(
        commit_errors(&response),
        vec![
            ("t1".into(), 0, 0),
            ("t1".into(), 1, 0),
            ("t2".into(), 3, 0)
        ]
    );
    // Unknown topics and partitions are refused per partition.
    let response = h.commit(
        100,
        commit_request(
            "simple",
            "",
            -1,
            None,
            &[("nope", 0, 1, None), ("t1", 99, 1, None)],
        ),
    );
    assert_eq!(
        commit_errors(&response),
        vec![
            ("nope".into(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("t1".into(), 99, UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );

    // v7 layout: given partitions (unknown ones come back as -1) or everything.
    let fetched = fetch_v7(&h.c, "simple", Some(&[("t1", &[0, 1, 5]), ("t3", &[0])]));
    assert_eq!(
        fetched,
        vec![
            ("t1".into(), 0, 42, "meta-0".into(), 0),
            ("t1".into(), 1, 7, "".into(), 0),
            ("t1".into(), 5, -1, "".into(), 0),
            ("t3".into(), 0, -1, "".into(), 0),
        ]
    );
    let all = fetch_v7(&h.c, "simple", None);
    assert_eq!(
        all,
        vec![
            ("t1".into(), 0, 42, "meta-0".into(), 0),
            ("t1".into(), 1, 7, "".into(), 0),
            ("t2".into(), 3, 9, "".into(), 0),
        ]
    );
    assert_eq!(
        fetch_v7(&h.c, "unknown", Some(&[("t1", &[0])])),
        vec![("t1".into(), 0, -1, "".into(), 0)]
    );
    assert!(fetch_v7(&h.c, "unknown", None).is_empty());

    // v8 layout: several groups in one request.
    h.commit(
        200,
        commit_request("other", "", -1, None, &[("t2", 0, 1000, Some("x"))]),
    );
    let response = fetch_v8(
        &h.c,
        &[
            ("simple", Some(&[("t2", &[3, 4])])),
            ("other", None),
            ("unknown", Some(&[("t1", &[2])])),
        ],
    );
    assert_eq!(response.groups.len(), 3);
    assert_eq!(
        fetched_v8(&response, "simple"),
        vec![
            ("t2".into(), 3, 9, "".into(), 0),
            ("t2".into(), 4, -1, "".into(), 0)
        ]
    );
    assert_eq!(
        fetched_v8(&response, "other"),
        vec![("t2".into(), 0, 1000, "x".into(), 0)]
    );
    assert_eq!(
        fetched_v8(&response, "unknown"),
        vec![("t1".into(), 2, -1, "".into(), 0)]
    );
}

#[test]
fn commits_from_members_are_checked() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offset_metadata_max_bytes: 10,
        ..Default::default()
    });
    let pair = stable_pair(&mut h, 0);
    let entry = [("t1", 0, 5, None)];
    // Not a member of this live group, whether or not it claims a generation.
    for (member, generation) in [("ghost", pair.generation), ("", -1)] {
        let response = h.commit(10, commit_request(GROUP, member, generation, None, &entry));
        assert_eq!(
            commit_errors(&response),
            vec![("t1".into(), 0, UNKNOWN_MEMBER_ID)]
        );
    }
    let response = h.commit(10, commit_request(GROUP, &pair.a, 1, None, &entry));
    assert_eq!(
        commit_errors(&response),
        vec![("t1".into(), 0, ILLEGAL_GENERATION)]
    );
    // Metadata: up to offset.metadata.max.bytes.
    let response = h.commit(
        10,
        commit_request(
            GROUP,
            &pair.a,
            pair.generation,
            None,
            &[
                ("t1", 0, 5, Some("0123456789")),
                ("t1", 1, 6, Some("0123456789X")),
            ],
        ),
    );
    assert_eq!(
        commit_errors(&response),
        vec![
            ("t1".into(), 0, 0),
            ("t1".into(), 1, OFFSET_METADATA_TOO_LARGE)
        ]
    );
    assert_eq!(
        fetch_v7(&h.c, GROUP, Some(&[("t1", &[0, 1])])),
        vec![
            ("t1".into(), 0, 5, "0123456789".into(), 0),
            ("t1".into(), 1, -1, "".into(), 0)
        ]
    );
    // Nothing was stored for the refused commits.
    assert_eq!(fetch_v7(&h.c, GROUP, None).len(), 1);
    // A commit during CompletingRebalance is refused.
    let c = h.member_id(20, GROUP);
    let (tc, _) = h.join(20, 5, join_request(GROUP, &c, None, &range()));
    h.join(20, 5, join_request(GROUP, &pair.a, None, &range()));
    h.join(20, 5, join_request(GROUP, &pair.b, None, &range()));
    assert_eq!(h.join_done(tc).generation_id, 3);
    assert_eq!(state(&h.c, GROUP), GroupState::CompletingRebalance);
    let response = h.commit(30, commit_request(GROUP, &c, 3, None, &entry));
    assert_eq!(
        commit_errors(&response),
        vec![("t1".into(), 0, REBALANCE_IN_PROGRESS)]
    );
}

#[test]
fn delete_groups_refuses_live_groups_and_tombstones_empty_ones() {
    let mut h = Harness::no_delay();
    let pair = stable_pair(&mut h, 0);
    h.commit(
        10,
        commit_request(
            GROUP,
            &pair.a,
            pair.generation,
            None,
            &[("t1", 0, 5, None), ("t2", 1, 6, None)],
        ),
    );
    let delete = |h: &mut Harness, groups: &[&str]| {
        let out = h.c.delete_groups(
            DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| gid(g)).collect()),
        );
        let first = h.records.len();
        let response = h.absorb(out).unwrap();
        let records = h.records[first..].to_vec();
        let codes: Vec<(String, i16)> = response
            .results
            .iter()
            .map(|r| (r.group_id.as_str().to_string(), r.error_code))
            .collect();
        (codes, records)
    };
    let (codes, records) = delete(&mut h, &[GROUP, "missing"]);
    assert_eq!(
        codes,
        vec![
            (GROUP.into(), NON_EMPTY_GROUP),
            ("missing".into(), GROUP_ID_NOT_FOUND)
        ]
    );
    assert!(records.is_empty());
    assert_eq!(fetch_v7(&h.c, GROUP, None).len(), 2);

    h.leave(20, 3, GROUP, &[(&pair.a, None), (&pair.b, None)]);
    assert_eq!(state(&h.c, GROUP), GroupState::Empty);
    let (codes, records) = delete(&mut h, &[GROUP]);
    assert_eq!(codes, vec![(GROUP.into(), 0)]);
    let mut tombstoned: Vec<RecordKey> = records
        .iter()
        .map(|r| {
            assert_eq!(r.value, None, "only tombstones");
            assert_eq!(r.group_id, GROUP);
            RecordKey::decode(&r.key).unwrap()
        })
        .collect();
    tombstoned.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(
        tombstoned,
        vec![
            RecordKey::group(GROUP),
            RecordKey::offset(GROUP, "t1", 0),
            RecordKey::offset(GROUP, "t2", 1),
        ]
    );
    assert!(h.c.group(GROUP).is_none());
    assert_eq!(fetch_v7(&h.c, GROUP, Some(&[("t1", &[0])]))[0].2, -1);
    // And a replay agrees that the group is gone.
    let replayed = h.replayed(30);
    assert!(replayed.group(GROUP).is_none());
}

#[test]
fn offset_delete_refuses_topics_a_live_consumer_group_subscribes_to() {
    let mut h = Harness::no_delay();
    // The members subscribe to t1 (see `range()`); offsets exist for t1 and t2.
    let pair = stable_pair(&mut h, 0);
    h.commit(
        10,
        commit_request(
            GROUP,
            &pair.a,
            pair.generation,
            None,
            &[("t1", 0, 5, None), ("t2", 0, 6, None)],
        ),
    );
    let request = || {
        OffsetDeleteRequest::default()
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
            )
    };
    let codes = |response: &kafka_protocol::messages::OffsetDeleteResponse| -> Vec<(String, i16)> {
        assert_eq!(response.error_code, 0);
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.name.as_str().to_string(), p.error_code))
            })
            .collect()
    };
    let out = h.c.delete_offsets(request());
    let first = h.records.len();
    let response = h.absorb(out).unwrap();
    assert_eq!(
        codes(&response),
        vec![("t1".into(), GROUP_SUBSCRIBED_TO_TOPIC), ("t2".into(), 0)]
    );
    assert_eq!(h.records[first..].len(), 1);
    assert_eq!(h.records[first].value, None);
    assert_eq!(
        RecordKey::decode(&h.records[first].key),
        Some(RecordKey::offset(GROUP, "t2", 0))
    );
    assert_eq!(
        fetch_v7(&h.c, GROUP, None),
        vec![("t1".into(), 0, 5, "".into(), 0)]
    );

    // Once the group is empty nothing is subscribed any more.
    h.leave(20, 3, GROUP, &[(&pair.a, None), (&pair.b, None)]);
    let out = h.c.delete_offsets(request());
    let response = h.absorb(out).unwrap();
    assert_eq!(codes(&response), vec![("t1".into(), 0), ("t2".into(), 0)]);
    assert!(fetch_v7(&h.c, GROUP, None).is_empty());

    let out =
        h.c.delete_offsets(OffsetDeleteRequest::default().with_group_id(gid("missing")));
    assert_eq!(h.absorb(out).unwrap().error_code, GROUP_ID_NOT_FOUND);
}

// ---------------------------------------------------------------- retention

const RETENTION: i64 = 60_000;

fn retention_config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: RETENTION,
        ..Default::default()
    }
}

#[test]
fn offsets_expire_once_the_group_has_been_empty_for_the_retention_period() {
    let mut h = Harness::new(retention_config());
    let a = h.member_id(0, GROUP);
    let (_, ja) = h.join(0, 5, join_request(GROUP, &a, None, &range()));
    assert_eq!(ja.unwrap().generation_id, 1);
    h.sync(0, sync_request(GROUP, &a, 1, None, &[(&a, b"x")]));
    h.commit(
        1000,
        commit_request(
            GROUP,
            &a,
            1,
            None,
            &[("t1", 0, 5, None), ("t1", 1, 6, None)],
        ),
    );

    // Long past the commit's retention, but the group still has its member.
    assert_eq!(h.heartbeat(5000, GROUP, &a, 1, None), 0);
    h.tick(9000);
    assert_eq!(h.heartbeat(9000, GROUP, &a, 1, None), 0);
    h.leave(10_000, 3, GROUP, &[(&a, None)]);
    assert_eq!(state(&h.c, GROUP), GroupState::Empty);

    // Retention counts from when the group became empty (10 s), not from the commit (1 s).
    let first = h.records.len();
    h.tick(1000 + RETENTION + 1);
    h.tick(10_000 + RETENTION - 1);
    assert_eq!(fetch_v7(&h.c, GROUP, None).len(), 2, "not expired yet");
    assert_eq!(h.records.len(), first);

    h.tick(10_000 + RETENTION + 1);
    assert!(fetch_v7(&h.c, GROUP, None).is_empty());
    let keys: Vec<RecordKey> = h.records[first..]
        .iter()
        .map(|r| {
            assert_eq!(r.value, None, "expiry writes tombstones");
            RecordKey::decode(&r.key).unwrap()
        })
        .collect();
    assert_eq!(
        keys,
        vec![
            RecordKey::offset(GROUP, "t1", 0),
            RecordKey::offset(GROUP, "t1", 1),
            RecordKey::group(GROUP)
        ]
    );
    assert!(
        h.c.group(GROUP).is_none(),
        "an empty group with no offsets goes"
    );
    assert!(h
        .c
        .list_groups(ListGroupsRequest::default())
        .groups
        .is_empty());
    assert!(h.replayed(10_000 + RETENTION + 2).group(GROUP).is_none());
}

#[test]
fn standalone_offsets_expire_after_the_retention_period() {
    let mut h = Harness::new(retention_config());
    h.commit(
        1000,
        commit_request("simple", "", -1, None, &[("t1", 0, 5, None)]),
    );
    h.commit(
        30_000,
        commit_request("simple", "", -1, None, &[("t1", 1, 5, None)]),
    );
    h.tick(1000 + RETENTION - 1);
    assert_eq!(fetch_v7(&h.c, "simple", None).len(), 2);
    h.tick(1000 + RETENTION + 1);
    assert_eq!(
        fetch_v7(&h.c, "simple", None),
        vec![("t1".into(), 1, 5, "".into(), 0)],
        "only the older commit expired"
    );
    h.tick(30_000 + RETENTION + 1);
    assert!(fetch_v7(&h.c, "simple", None).is_empty());
    assert!(h.c.group("simple").is_none());
}

#[test]
fn offsets_of_unsubscribed_topics_expire_in_a_stable_group() {
    // Kafka's ClassicGroup.offsetExpirationCondition: a Stable group using the
    // consumer protocol with known subscriptions expires offsets by commit
    // time; OffsetMetadataManager skips only the subscribed topics.
    let mut h = Harness::new(retention_config());
    let mut join = join_request(GROUP, "", Some("ia"), &range());
    join.session_timeout_ms = 1_800_000;
    let (_, ja) = h.join(0, 5, join);
    let a = ja.unwrap().member_id.as_str().to_string();
    h.sync(0, sync_request(GROUP, &a, 1, Some("ia"), &[(&a, b"x")]));
    h.commit(
        1000,
        commit_request(
            GROUP,
            &a,
            1,
            Some("ia"),
            &[("t1", 0, 5, None), ("t2", 0, 6, None)],
        ),
    );
    h.tick(1000 + RETENTION + 1);
    assert_eq!(state(&h.c, GROUP), GroupState::Stable);
    assert_eq!(
        fetch_v7(&h.c, GROUP, None),
        vec![("t1".into(), 0, 5, "".into(), 0)],
        "t2 is not subscribed: its offset expired"
    );
}

// ---------------------------------------------------------------- replay

#[test]
fn replaying_the_records_rebuilds_the_same_state() {
    let mut h = Harness::no_delay();
    // A live group at generation 2 with offsets.
    let pair = stable_pair(&mut h, 0);
    h.commit(
        100,
        commit_request(
            GROUP,
            &pair.a,
            pair.generation,
            None,
            &[
                ("t1", 0, 10, Some("a")),
                ("t1", 1, 11, None),
                ("t2", 0, 12, Some("b")),
            ],
        ),
    );
    // Overwritten and deleted offsets.
    h.commit(
        200,
        commit_request(
            GROUP,
            &pair.b,
            pair.generation,
            None,
            &[("t1", 1, 21, Some("again"))],
        ),
    );
    let out = h.c.delete_offsets(
        OffsetDeleteRequest::default()
            .with_group_id(gid(GROUP))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(topic("t2"))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(0)
                ])]),
    );
    h.absorb(out);
    // A simple group.
    h.commit(
        300,
        commit_request("simple", "", -1, None, &[("t3", 4, 99, Some("s"))]),
    );
    // A group that went through a generation and is empty now.
    let x = h.member_id(400, "emptied");
    h.join(400, 5, join_request("emptied", &x, None, &range()));
    h.sync(400, sync_request("emptied", &x, 1, None, &[(&x, b"x")]));
    h.commit(
        450,
        commit_request("emptied", &x, 1, None, &[("t1", 3, 33, None)]),
    );
    h.leave(500, 3, "emptied", &[(&x, None)]);
    // A deleted group.
    h.commit(
        600,
        commit_request("deleted", "", -1, None, &[("t1", 0, 1, None)]),
    );
    let out =
        h.c.delete_groups(DeleteGroupsRequest::default().with_groups_names(vec![gid("deleted")]));
    h.absorb(out);

    let now = 1000;
    let replayed = h.replayed(now);
    let groups = ["g", "simple", "emptied", "deleted", "never"];
    let fetch_all =
        |c: &GroupCoordinator| fetch_v8(c, &groups.iter().map(|g| (*g, None)).collect::<Vec<_>>());
    assert_eq!(fetch_all(&replayed), fetch_all(&h.c));
    assert_eq!(
        fetched_v8(&fetch_all(&replayed), GROUP),
        vec![
            ("t1".into(), 0, 10, "a".into(), 0),
            ("t1".into(), 1, 21, "again".into(), 0)
        ]
    );
    assert_eq!(
        replayed.list_groups(ListGroupsRequest::default()),
        h.c.list_groups(ListGroupsRequest::default())
    );
    let describe =
        DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| gid(g)).collect());
    assert_eq!(
        replayed.describe_groups(5, describe.clone()),
        h.c.describe_groups(5, describe)
    );
    assert_eq!(replayed.group_ids(), h.c.group_ids());
    assert_eq!(replayed.group(GROUP).unwrap().generation, pair.generation);
    assert_eq!(
        replayed.group("emptied").unwrap().generation,
        h.c.group("emptied").unwrap().generation
    );

    // The members carry on with the generation they had.
    let mut replayed = Harness::wrap(replayed);
    assert_eq!(
        replayed.heartbeat(now, GROUP, &pair.a, pair.generation, None),
        0
    );
    assert_eq!(
        replayed.heartbeat(now, GROUP, &pair.b, pair.generation, None),
        0
    );
    assert_eq!(
        replayed.heartbeat(now, GROUP, &pair.b, pair.generation - 1, None),
        ILLEGAL_GENERATION
    );
    let (_, sync) = replayed.sync(
        now,
        sync_request(GROUP, &pair.b, pair.generation, None, &[]),
    );
    assert_eq!(sync.unwrap().assignment.as_ref(), b"B2");
    // ... and must keep heartbeating: a restored member has a fresh session.
    assert_eq!(
        replayed.heartbeat(now + 9000, GROUP, &pair.a, pair.generation, None),
        0
    );
    replayed.tick(now + 10_001);
    let group = replayed.c.group(GROUP).unwrap();
    assert!(group.member(&pair.a).is_some());
    assert!(
        group.member(&pair.b).is_none(),
        "B did not heartbeat after the restart"
    );
}

#[test]
fn replay_keeps_a_replaced_static_member() {
    let mut h = Harness::no_delay();
    let pair = stable_static_pair(&mut h);
    let (_, jb) = h.join(1000, 5, join_request(GROUP, "", Some("ib"), &range()));
    let new_b = jb.unwrap().member_id.as_str().to_string();
    let mut replayed = Harness::wrap(h.replayed(2000));
    assert_eq!(
        replayed.heartbeat(2000, GROUP, &new_b, pair.generation, Some("ib")),
        0
    );
    assert_eq!(
        replayed.heartbeat(2000, GROUP, &pair.b, pair.generation, Some("ib")),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        replayed.heartbeat(2000, GROUP, &pair.a, pair.generation, Some("ia")),
        0
    );
}

#[test]
fn describing_an_unknown_group_is_dead_or_not_found_from_v6() {
    let h = Harness::no_delay();
    let request =
        kafka_protocol::messages::DescribeGroupsRequest::default().with_groups(vec![gid("nobody")]);
    let v5 = h.c.describe_groups(5, request.clone());
    assert_eq!(
        (v5.groups[0].error_code, v5.groups[0].group_state.as_str()),
        (0, "Dead")
    );
    let v6 = h.c.describe_groups(6, request);
    assert_eq!(v6.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");
}
