//! Test-driver tests of aggregations, every window type (in order, out of
//! order within the grace period, and beyond it), emit-final, tables and
//! joins, and restoring from changelogs.

use std::time::Duration;
use strom_streams::*;

fn s(x: &str) -> String {
    x.to_string()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn grouped(b: &StreamsBuilder) -> KGroupedStream<String, i64> {
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
}

/// Windowed results as `(key, start, end, value)`; `None` value = a
/// retraction (an old session replaced by a merged one).
type WinOut = Vec<(String, i64, i64, Option<i64>)>;

fn windowed_to(table: KTable<Windowed<String>, i64>) {
    table.to_stream().to(
        "out",
        Produced::with(
            Serdes::windowed(Serdes::string()),
            Serdes::option(Serdes::i64()),
        ),
    );
}

fn read_windowed(d: &TopologyTestDriver) -> WinOut {
    d.output_topic(
        "out",
        Serdes::windowed(Serdes::string()),
        Serdes::option(Serdes::i64()),
    )
    .read_key_values_to_vec()
    .into_iter()
    .map(|(w, v)| (w.key, w.start, w.end, v))
    .collect()
}

fn driver(b: StreamsBuilder) -> (TopologyTestDriver, TestInputTopic<String, i64>) {
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    (d, i)
}

#[test]
fn count_reduce_aggregate() {
    let b = StreamsBuilder::new();
    let g = grouped(&b);
    g.count_with(Materialized::named("counts"))
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    g.reduce(|a, v| a.max(v))
        .to("max", Produced::with(Serdes::string(), Serdes::i64()));
    g.aggregate(
        Vec::<i64>::new,
        |_, v, mut all| {
            all.push(v);
            all
        },
        Materialized::with_value_serde(Serdes::json::<Vec<i64>>()).name("lists"),
    )
    .to("lists", Produced::with(Serdes::string(), Serdes::json()));
    let (d, i) = driver(b);
    i.pipe_all([
        (s("a"), 3, 0),
        (s("b"), 1, 1),
        (s("a"), 7, 2),
        (s("a"), 5, 3),
    ])
    .unwrap();
    let counts = d.output_topic("counts", Serdes::string(), Serdes::i64());
    assert_eq!(
        counts.read_key_values_to_vec(),
        vec![(s("a"), 1), (s("b"), 1), (s("a"), 2), (s("a"), 3)]
    );
    let max = d.output_topic("max", Serdes::string(), Serdes::i64());
    assert_eq!(max.read_values_to_vec(), vec![3, 1, 7, 7]);
    let lists = d.output_topic("lists", Serdes::string(), Serdes::json::<Vec<i64>>());
    assert_eq!(lists.read_key_values_to_map()["a"], vec![3, 7, 5]);
    let store = d
        .key_value_store("counts", Serdes::string(), Serdes::i64())
        .unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), Some(3));
    assert_eq!(store.get(&s("zz")).unwrap(), None);
    assert_eq!(store.all().unwrap(), vec![(s("a"), 3), (s("b"), 1)]);
}

#[test]
fn group_by_key_after_a_key_change_repartitions() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .map(|k, v| (k.to_lowercase(), v))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()).named("lower"))
        .count()
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::with_config(b.build().unwrap(), "app", 0).unwrap();
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    i.pipe_input(s("A"), 0).unwrap();
    i.pipe_input(s("a"), 0).unwrap();
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::i64())
            .read_values_to_vec(),
        vec![1, 2]
    );
    assert!(d.written_topics().contains(&s("app-lower-repartition")));
}

#[test]
fn tumbling_windows_with_grace_accept_late_records_until_the_window_closes() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
            .count_with(Materialized::named("w")),
    );
    let (d, i) = driver(b);
    i.pipe_input_at(s("k"), 0, 1).unwrap();
    i.pipe_input_at(s("k"), 0, 12).unwrap(); // stream time 12
    i.pipe_input_at(s("k"), 0, 3).unwrap(); // out of order, [0,10) closes at 15: accepted
    i.pipe_input_at(s("k"), 0, 15).unwrap(); // stream time 15: [0,10) closed
    i.pipe_input_at(s("k"), 0, 4).unwrap(); // beyond grace: dropped
    assert_eq!(
        read_windowed(&d),
        vec![
            (s("k"), 0, 10, Some(1)),
            (s("k"), 10, 20, Some(1)),
            (s("k"), 0, 10, Some(2)),
            (s("k"), 10, 20, Some(2)),
        ]
    );
    assert_eq!(d.dropped_records(), 1);
    let store = d
        .window_store("w", Serdes::string(), Serdes::i64())
        .unwrap();
    let windows = store.fetch(&s("k"), 0, 100).unwrap();
    assert_eq!(
        windows,
        vec![
            WindowEntry {
                start: 0,
                end: 10,
                value: 2
            },
            WindowEntry {
                start: 10,
                end: 20,
                value: 2
            }
        ]
    );
    assert_eq!(store.fetch(&s("k"), 5, 100).unwrap().len(), 1);
}

#[test]
fn hopping_windows_count_a_record_in_every_window_holding_it() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(0)).advance_by(ms(5)))
            .count(),
    );
    let (d, i) = driver(b);
    i.pipe_input_at(s("k"), 0, 7).unwrap();
    i.pipe_input_at(s("k"), 0, 11).unwrap();
    i.pipe_input_at(s("k"), 0, 6).unwrap(); // [0,10) closed at stream time 11: only [5,15)
    assert_eq!(
        read_windowed(&d),
        vec![
            (s("k"), 0, 10, Some(1)),
            (s("k"), 5, 15, Some(1)),
            (s("k"), 5, 15, Some(2)),
            (s("k"), 10, 20, Some(1)),
            (s("k"), 5, 15, Some(3)),
        ]
    );
    assert_eq!(d.dropped_records(), 0, "the record still fit one window");
    i.pipe_input_at(s("k"), 0, 1).unwrap(); // fits only [0,10), closed
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn emit_final_sends_one_result_per_window_when_it_closes() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
            .emit_final()
            .count(),
    );
    let (d, i) = driver(b);
    i.pipe_input_at(s("k"), 0, 1).unwrap();
    i.pipe_input_at(s("j"), 0, 2).unwrap();
    i.pipe_input_at(s("k"), 0, 12).unwrap();
    i.pipe_input_at(s("k"), 0, 8).unwrap(); // late but within grace
    assert!(read_windowed(&d).is_empty(), "nothing closed yet");
    i.pipe_input_at(s("x"), 0, 15).unwrap(); // closes [0,10)
    assert_eq!(
        read_windowed(&d),
        vec![(s("j"), 0, 10, Some(1)), (s("k"), 0, 10, Some(2))]
    );
    i.pipe_input_at(s("k"), 0, 9).unwrap(); // too late: dropped, nothing emitted
    assert!(read_windowed(&d).is_empty());
    assert_eq!(d.dropped_records(), 1);
    i.pipe_input_at(s("x"), 0, 40).unwrap();
    assert_eq!(
        read_windowed(&d),
        vec![(s("k"), 10, 20, Some(1)), (s("x"), 10, 20, Some(1))]
    );
}

#[test]
fn sliding_windows_hold_every_set_of_records_within_the_time_difference() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by_sliding(SlidingWindows::with_time_difference_and_grace(
                ms(10),
                ms(20),
            ))
            .reduce(|a, v| a + v),
    );
    let (d, i) = driver(b);
    i.pipe_input_at(s("k"), 1, 10).unwrap();
    assert_eq!(read_windowed(&d), vec![(s("k"), 0, 10, Some(1))]);
    i.pipe_input_at(s("k"), 2, 15).unwrap();
    // New left window [5,15] holds both; the first record's right window
    // [11,21] now exists and holds the second.
    assert_eq!(
        read_windowed(&d),
        vec![(s("k"), 5, 15, Some(3)), (s("k"), 11, 21, Some(2))]
    );
    // Out of order, within grace: 4 at 12 updates every window holding 12.
    i.pipe_input_at(s("k"), 4, 12).unwrap();
    assert_eq!(
        read_windowed(&d),
        vec![
            (s("k"), 2, 12, Some(5)),
            (s("k"), 5, 15, Some(7)),
            (s("k"), 11, 21, Some(6)),
            (s("k"), 13, 23, Some(2)),
        ]
    );
    // Far ahead: stream time 100 closes everything above.
    i.pipe_input_at(s("k"), 8, 100).unwrap();
    assert_eq!(read_windowed(&d), vec![(s("k"), 90, 100, Some(8))]);
    i.pipe_input_at(s("k"), 16, 14).unwrap(); // beyond grace
    assert!(read_windowed(&d).is_empty());
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn session_windows_merge_and_retract() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by_session(SessionWindows::with_inactivity_gap_and_grace(ms(5), ms(15)))
            .count_with(Materialized::named("sessions")),
    );
    let (d, i) = driver(b);
    i.pipe_input_at(s("k"), 0, 0).unwrap();
    i.pipe_input_at(s("k"), 0, 20).unwrap();
    assert_eq!(
        read_windowed(&d),
        vec![(s("k"), 0, 0, Some(1)), (s("k"), 20, 20, Some(1))]
    );
    i.pipe_input_at(s("k"), 0, 24).unwrap(); // extends [20,20] to [20,24]
    assert_eq!(
        read_windowed(&d),
        vec![(s("k"), 20, 20, None), (s("k"), 20, 24, Some(2))]
    );
    // Out of order within grace (open until 12 + 15 < stream time), bridging
    // nothing: a new session [12,12].
    i.pipe_input_at(s("k"), 0, 12).unwrap();
    assert_eq!(read_windowed(&d), vec![(s("k"), 12, 12, Some(1))]);
    // A record at 16 is within 5 of both 12 and 20: the sessions merge.
    i.pipe_input_at(s("k"), 0, 16).unwrap();
    assert_eq!(
        read_windowed(&d),
        vec![
            (s("k"), 12, 12, None),
            (s("k"), 20, 24, None),
            (s("k"), 12, 24, Some(4))
        ]
    );
    // Stream time 24, grace 15: the session [0,0] closed at 16.
    i.pipe_input_at(s("k"), 0, 3).unwrap();
    assert!(read_windowed(&d).is_empty());
    assert_eq!(d.dropped_records(), 1);
    let store = d
        .window_store("sessions", Serdes::string(), Serdes::i64())
        .unwrap();
    let all: Vec<(i64, i64, i64)> = store
        .fetch(&s("k"), i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .map(|e| (e.start, e.end, e.value))
        .collect();
    assert_eq!(all, vec![(0, 0, 1), (12, 24, 4)]);
}

#[test]
fn session_windows_emit_final() {
    let b = StreamsBuilder::new();
    windowed_to(
        grouped(&b)
            .windowed_by_session(SessionWindows::with_inactivity_gap(ms(5)))
            .emit_final()
            .count(),
    );
    let (d, i) = driver(b);
    for ts in [0, 3, 6] {
        i.pipe_input_at(s("k"), 0, ts).unwrap();
    }
    assert!(read_windowed(&d).is_empty());
    i.pipe_input_at(s("k"), 0, 50).unwrap();
    assert_eq!(read_windowed(&d), vec![(s("k"), 0, 6, Some(3))]);
}

#[test]
fn table_keeps_the_latest_value_and_tombstones_delete() {
    let b = StreamsBuilder::new();
    let table = b.table(
        "t",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::named("t-store"),
    );
    table
        .filter(|_, v| v != "hidden")
        .map_values(|_, v| v.len() as i64)
        .to("lengths", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let t = d.input_topic("t", Serdes::string(), Serdes::option(Serdes::string()));
    t.pipe_input(s("a"), Some(s("one"))).unwrap();
    t.pipe_input(s("a"), Some(s("three"))).unwrap();
    t.pipe_input(s("b"), Some(s("hidden"))).unwrap();
    t.pipe_input(s("a"), None).unwrap();
    let store = d
        .key_value_store("t-store", Serdes::string(), Serdes::string())
        .unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), None);
    assert_eq!(store.get(&s("b")).unwrap(), Some(s("hidden")));
    let out = d.output_topic("lengths", Serdes::string(), Serdes::option(Serdes::i64()));
    assert_eq!(
        out.read_key_values_to_vec(),
        vec![(s("a"), Some(3)), (s("a"), Some(5)), (s("a"), None)]
    );
}

#[test]
fn stream_table_join_sees_the_latest_table_value() {
    let b = StreamsBuilder::new();
    let users = b.table(
        "users",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::default(),
    );
    let clicks = b.stream("clicks", Consumed::with(Serdes::string(), Serdes::i64()));
    clicks
        .join_table(&users, |n, region| format!("{region}:{n}"))
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    clicks
        .left_join_table(&users, |n, region| {
            format!("{}:{n}", region.map_or("?", String::as_str))
        })
        .to("left", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let u = d.input_topic("users", Serdes::string(), Serdes::string());
    let c = d.input_topic("clicks", Serdes::string(), Serdes::i64());
    c.pipe_input(s("alice"), 1).unwrap();
    u.pipe_input(s("alice"), s("eu")).unwrap();
    c.pipe_input(s("alice"), 2).unwrap();
    u.pipe_input(s("alice"), s("us")).unwrap();
    c.pipe_input(s("alice"), 3).unwrap();
    let read = |t| {
        d.output_topic(t, Serdes::string(), Serdes::string())
            .read_values_to_vec()
    };
    assert_eq!(read("inner"), vec![s("eu:2"), s("us:3")]);
    assert_eq!(read("left"), vec![s("?:1"), s("eu:2"), s("us:3")]);
}

#[test]
fn windowed_stream_stream_join() {
    let b = StreamsBuilder::new();
    let left = b.stream("l", Consumed::with(Serdes::string(), Serdes::string()));
    let right = b.stream("r", Consumed::with(Serdes::string(), Serdes::string()));
    left.join_windowed(
        &right,
        |a, b| format!("{a}+{b}"),
        JoinWindows::of_time_difference_and_grace(ms(10), ms(5)),
        StreamJoined::with(Serdes::string(), Serdes::string(), Serdes::string()),
    )
    .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let l = d.input_topic("l", Serdes::string(), Serdes::string());
    let r = d.input_topic("r", Serdes::string(), Serdes::string());
    l.pipe_input_at(s("k"), s("L1"), 100).unwrap();
    r.pipe_input_at(s("k"), s("R1"), 105).unwrap(); // within 10: joins
    r.pipe_input_at(s("x"), s("R2"), 105).unwrap(); // other key
    r.pipe_input_at(s("k"), s("R3"), 111).unwrap(); // 11 after L1: no
    l.pipe_input_at(s("k"), s("L2"), 101).unwrap(); // out of order: joins R1 and R3
    let out = d
        .output_topic("out", Serdes::string(), Serdes::string())
        .read_records_to_vec();
    let got: Vec<(String, i64)> = out.into_iter().map(|r| (r.value, r.timestamp)).collect();
    assert_eq!(
        got,
        vec![(s("L1+R1"), 105), (s("L2+R1"), 105), (s("L2+R3"), 111)]
    );
    // Stream time 111; a left record at 90 is beyond window + grace.
    l.pipe_input_at(s("k"), s("L3"), 95).unwrap();
    assert!(d
        .output_topic("out", Serdes::string(), Serdes::string())
        .is_empty());
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn table_table_joins() {
    let b = StreamsBuilder::new();
    let left = b.table(
        "l",
        Consumed::with(Serdes::string(), Serdes::string()),
        Materialized::default(),
    );
    let right = b.table(
        "r",
        Consumed::with(Serdes::string(), Serdes::i64()),
        Materialized::default(),
    );
    left.join(&right, |a, b| format!("{a}{b}"))
        .to("inner", Produced::with(Serdes::string(), Serdes::string()));
    left.left_join(&right, |a, b| {
        format!("{a}{}", b.map_or(s("-"), |b| b.to_string()))
    })
    .to("left", Produced::with(Serdes::string(), Serdes::string()));
    left.outer_join(&right, |a, b| {
        format!(
            "{}{}",
            a.map_or("-", String::as_str),
            b.map_or(s("-"), |b| b.to_string())
        )
    })
    .to("outer", Produced::with(Serdes::string(), Serdes::string()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let l = d.input_topic("l", Serdes::string(), Serdes::option(Serdes::string()));
    let r = d.input_topic("r", Serdes::string(), Serdes::option(Serdes::i64()));
    l.pipe_input(s("k"), Some(s("a"))).unwrap();
    r.pipe_input(s("k"), Some(1)).unwrap();
    r.pipe_input(s("j"), Some(2)).unwrap();
    l.pipe_input(s("k"), Some(s("b"))).unwrap();
    r.pipe_input(s("k"), None).unwrap();
    let read = |t| {
        d.output_topic(t, Serdes::string(), Serdes::option(Serdes::string()))
            .read_key_values_to_vec()
    };
    assert_eq!(
        read("inner"),
        vec![
            (s("k"), Some(s("a1"))),
            (s("k"), Some(s("b1"))),
            (s("k"), None)
        ]
    );
    assert_eq!(
        read("left"),
        vec![
            (s("k"), Some(s("a-"))),
            (s("k"), Some(s("a1"))),
            (s("k"), Some(s("b1"))),
            (s("k"), Some(s("b-")))
        ]
    );
    assert_eq!(
        read("outer"),
        vec![
            (s("k"), Some(s("a-"))),
            (s("k"), Some(s("a1"))),
            (s("j"), Some(s("-2"))),
            (s("k"), Some(s("b1"))),
            (s("k"), Some(s("b-")))
        ]
    );
}

#[test]
fn stores_are_rebuilt_from_their_changelogs() {
    let b = StreamsBuilder::new();
    let g = grouped(&b);
    g.count_with(Materialized::named("counts"))
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    windowed_to(
        g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
            .emit_final()
            .count_with(Materialized::named("w")),
    );
    let (d, i) = driver(b);
    i.pipe_all([(s("a"), 0, 1), (s("a"), 0, 2), (s("b"), 0, 3)])
        .unwrap();
    d.restart_from_changelogs().unwrap();
    i.pipe_input_at(s("a"), 0, 4).unwrap();
    let counts = d
        .output_topic("counts", Serdes::string(), Serdes::i64())
        .read_key_values_to_map();
    assert_eq!(
        counts[&s("a")],
        3,
        "the count continued from the restored store"
    );
    // The emit-final buffer came back too: the window closes with every record.
    i.pipe_input_at(s("z"), 0, 30).unwrap();
    assert_eq!(
        read_windowed(&d),
        vec![(s("a"), 0, 10, Some(3)), (s("b"), 0, 10, Some(1))]
    );
    assert!(d
        .written_topics()
        .contains(&s("test-driver-counts-changelog")));
}

#[test]
fn a_derived_table_can_be_materialized_and_joined() {
    let b = StreamsBuilder::new();
    let prices = b.table(
        "prices",
        Consumed::with(Serdes::string(), Serdes::i64()),
        Materialized::default(),
    );
    let cheap = prices.filter(|_, p| *p < 100).materialize(
        Serdes::string(),
        Materialized::named("cheap").value_serde(Serdes::i64()),
    );
    b.stream("orders", Consumed::with(Serdes::string(), Serdes::i64()))
        .join_table(&cheap, |qty, price| qty * price)
        .to("totals", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let p = d.input_topic("prices", Serdes::string(), Serdes::i64());
    let o = d.input_topic("orders", Serdes::string(), Serdes::i64());
    p.pipe_input(s("pen"), 2).unwrap();
    p.pipe_input(s("car"), 20_000).unwrap();
    o.pipe_input(s("pen"), 3).unwrap();
    o.pipe_input(s("car"), 1).unwrap(); // not cheap: no join
    p.pipe_input(s("pen"), 500).unwrap(); // no longer cheap: deleted from `cheap`
    o.pipe_input(s("pen"), 1).unwrap();
    assert_eq!(
        d.output_topic("totals", Serdes::string(), Serdes::i64())
            .read_values_to_vec(),
        vec![6]
    );
    let cheap = d
        .key_value_store("cheap", Serdes::string(), Serdes::i64())
        .unwrap();
    assert_eq!(cheap.all().unwrap(), vec![]);
}

#[test]
fn windowed_and_session_aggregates_with_a_merger() {
    let b = StreamsBuilder::new();
    let g = grouped(&b);
    g.windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
        .aggregate(
            || 100,
            |_, v, a| a + v,
            Materialized::with_value_serde(Serdes::i64()),
        )
        .to_stream()
        .to(
            "sums",
            Produced::with(
                Serdes::windowed(Serdes::string()),
                Serdes::option(Serdes::i64()),
            ),
        );
    // The merger sees both sessions' aggregates: max-of-sums would differ
    // from sum-of-sums, so the merged value shows which one ran.
    g.windowed_by_session(SessionWindows::with_inactivity_gap_and_grace(
        ms(5),
        ms(100),
    ))
    .aggregate(
        || 0,
        |_, v, a| a + v,
        |_, a, b| a.max(b) * 1000,
        Materialized::with_value_serde(Serdes::i64()),
    )
    .to_stream()
    .to(
        "sessions",
        Produced::with(
            Serdes::windowed(Serdes::string()),
            Serdes::option(Serdes::i64()),
        ),
    );
    let (d, i) = driver(b);
    i.pipe_all([
        (s("k"), 1, 0),
        (s("k"), 2, 20),
        (s("k"), 4, 12),
        (s("k"), 8, 16),
    ])
    .unwrap();
    let sums: Vec<(i64, Option<i64>)> = d
        .output_topic(
            "sums",
            Serdes::windowed(Serdes::string()),
            Serdes::option(Serdes::i64()),
        )
        .read_key_values_to_vec()
        .into_iter()
        .map(|(w, v)| (w.start, v))
        .collect();
    // [0,10): 100+1; [20,30): 100+2; 12 and 16 fall in [10,20), closed once
    // stream time reached 20 (no grace): dropped.
    assert_eq!(sums, vec![(0, Some(101)), (20, Some(102))]);
    let sessions: Vec<(i64, i64, Option<i64>)> = d
        .output_topic(
            "sessions",
            Serdes::windowed(Serdes::string()),
            Serdes::option(Serdes::i64()),
        )
        .read_key_values_to_vec()
        .into_iter()
        .map(|(w, v)| (w.start, w.end, v))
        .collect();
    assert_eq!(
        sessions,
        vec![
            (0, 0, Some(1)),
            (20, 20, Some(2)),
            (12, 12, Some(4)),
            // 16 bridges [12,12] and [20,20]: merged with the merger, then 8 added.
            (12, 12, None),
            (20, 20, None),
            (12, 20, Some(4 * 1000 + 8)),
        ]
    );
}

#[test]
fn a_store_without_logging_writes_no_changelog() {
    let b = StreamsBuilder::new();
    grouped(&b)
        .count_with(Materialized::named("quiet").without_logging())
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::with_config(b.build().unwrap(), "app", 0).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::i64())
        .pipe_input(s("a"), 1)
        .unwrap();
    assert_eq!(d.written_topics(), vec![s("out")]);
    let store = d
        .key_value_store("quiet", Serdes::string(), Serdes::i64())
        .unwrap();
    assert_eq!(store.get(&s("a")).unwrap(), Some(1));
}
