//! The KIP-848 consumer group protocol with librdkafka's
//! `group.protocol=consumer`: server-side assignment, rebalances by
//! heartbeat, committed offsets.

mod common;

use common::wire::Wire;
use common::*;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, GroupId, ListGroupsRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use strom_testkit::TestBroker;

fn consumer(bootstrap: &str, group: &str, assignor: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("group.remote.assignor", assignor)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

fn poll_until<F: FnMut() -> bool>(what: &str, mut done: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

fn assignment(c: &BaseConsumer) -> HashSet<i32> {
    c.assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[test]
fn members_get_server_side_assignments_and_rebalance() {
    let broker = TestBroker::start_with(|c| {
        c.groups.consumer_heartbeat_interval_ms = 300;
        c.offsets_topic_partitions = 3;
    });
    let bootstrap = broker.bootstrap();
    let topic = unique("kip848");
    create_topic(&bootstrap, &topic, 6, &[]);
    let producer = producer(&bootstrap, &[]);
    for i in 0..60 {
        send(
            &producer,
            &topic,
            Some(i % 6),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
    let group = unique("g848");
    let a = consumer(&bootstrap, &group, "uniform");
    a.subscribe(&[&topic]).unwrap();
    let mut seen = Vec::new();
    poll_until("a's first assignment", || {
        if let Some(m) = a.poll(Duration::from_millis(50)) {
            let m = m.unwrap();
            seen.push((
                0,
                m.partition(),
                String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
            ));
        }
        assignment(&a).len() == 6
    });
    let b = consumer(&bootstrap, &group, "uniform");
    b.subscribe(&[&topic]).unwrap();
    // Both poll until every record was seen; B's arrival moves partitions from A.
    poll_until("all 60 records and a balanced group", || {
        for (i, c) in [&a, &b].iter().enumerate() {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.unwrap();
                seen.push((
                    i,
                    m.partition(),
                    String::from_utf8_lossy(m.payload().unwrap()).into_owned(),
                ));
            }
        }
        let values: HashSet<&String> = seen.iter().map(|s| &s.2).collect();
        values.len() == 60 && assignment(&a).len() == 3 && assignment(&b).len() == 3
    });
    assert!(
        assignment(&a).is_disjoint(&assignment(&b)),
        "no partition owned twice"
    );

    let mut wire = Wire::connect(&bootstrap);
    let described = wire.request(
        0,
        &ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.clone()))]),
    );
    let g = &described.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    let listed = wire.request(5, &ListGroupsRequest::default());
    let entry = listed
        .groups
        .iter()
        .find(|l| l.group_id.as_str() == group)
        .expect("listed");
    assert_eq!(entry.group_type.as_str(), "consumer");

    // Commits with the member epoch; B leaves; A gets everything back.
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    b.commit_consumer_state(CommitMode::Sync).unwrap();
    drop(b);
    poll_until("a owning all partitions again", || {
        let _ = a.poll(Duration::from_millis(50));
        assignment(&a).len() == 6
    });
    for i in 60..66 {
        send(
            &producer,
            &topic,
            Some(i % 6),
            None,
            Some(format!("{i}").as_bytes()),
        );
    }
    let mut late = HashSet::new();
    poll_until("the new records", || {
        if let Some(m) = a.poll(Duration::from_millis(50)) {
            late.insert(String::from_utf8_lossy(m.unwrap().payload().unwrap()).into_owned());
        }
        late.len() == 6
    });
    let expected: HashSet<String> = (60..66).map(|i| i.to_string()).collect();
    assert_eq!(
        late, expected,
        "resumed from the commits: nothing redelivered"
    );
}
