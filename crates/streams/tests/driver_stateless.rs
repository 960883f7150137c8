//! Test-driver tests of the stateless operators, naming, time and
//! punctuation.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use strom_streams::*;

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn filter_map_flat_map_select_key_peek() {
    let b = StreamsBuilder::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .filter(|_, v| *v >= 0)
        .filter_not(|k, _| k == "skip")
        .map(|k, v| (k.to_uppercase(), v * 10))
        .map_values(|v| v + 1)
        .map_values_with_key(|k, v| format!("{k}={v}"))
        .flat_map_values(|v: String| vec![v.clone(), v])
        .flat_map(|k: String, v: String| vec![(k.clone(), v.len() as i64), (format!("{k}!"), 0)])
        .select_key(|k, v| format!("{k}/{v}"))
        .peek(move |k, _| seen2.lock().unwrap().push(k.clone()))
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let input = d.input_topic("in", Serdes::string(), Serdes::i64());
    let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    input.pipe_input(s("a"), 1).unwrap();
    input.pipe_input(s("b"), -1).unwrap();
    input.pipe_input(s("skip"), 5).unwrap();
    let got = out.read_key_values_to_vec();
    // "A=11" is 4 bytes; each value was doubled by flat_map_values.
    assert_eq!(
        got,
        vec![(s("A/4"), 4), (s("A!/0"), 0), (s("A/4"), 4), (s("A!/0"), 0)]
    );
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert!(out.is_empty());
}

#[test]
fn branch_sends_each_record_to_the_first_match_and_merge_joins_streams() {
    let b = StreamsBuilder::new();
    let input = b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()));
    let branches = input.branch(vec![
        Arc::new(|_, v: &i64| *v < 0),
        Arc::new(|_, v: &i64| *v < 100),
        Arc::new(|_, _| true),
    ]);
    branches[0].to("negative", Produced::with(Serdes::string(), Serdes::i64()));
    branches[1].to("small", Produced::with(Serdes::string(), Serdes::i64()));
    branches[2].merge(&branches[0]).to(
        "big-or-negative",
        Produced::with(Serdes::string(), Serdes::i64()),
    );
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    for (k, v) in [("a", -5), ("b", 5), ("c", 500), ("d", 99)] {
        i.pipe_input(s(k), v).unwrap();
    }
    let read = |t: &str| {
        d.output_topic(t, Serdes::string(), Serdes::i64())
            .read_values_to_vec()
    };
    assert_eq!(read("negative"), vec![-5]);
    assert_eq!(read("small"), vec![5, 99]);
    assert_eq!(read("big-or-negative"), vec![-5, 500]);
}

#[test]
fn repartition_goes_through_an_internal_topic_named_after_the_application() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::string()))
        .select_key(|_, v| v.clone())
        .repartition(Repartitioned::with(Serdes::string(), Serdes::string()).named("by-value"))
        .to("out", Produced::with(Serdes::string(), Serdes::string()));
    let topology = b.build().unwrap();
    assert!(
        topology.describe().contains("Sub-topology: 1"),
        "{}",
        topology.describe()
    );
    let d = TopologyTestDriver::with_config(topology, "app", 0).unwrap();
    d.input_topic("in", Serdes::string(), Serdes::string())
        .pipe_input(s("k"), s("v"))
        .unwrap();
    assert_eq!(
        d.output_topic("out", Serdes::string(), Serdes::string())
            .read_key_value(),
        Some((s("v"), s("v")))
    );
    assert!(d.written_topics().contains(&s("app-by-value-repartition")));
}

#[test]
fn generated_names_follow_kafka_streams() {
    let b = StreamsBuilder::new();
    b.stream("text", Consumed::with(Serdes::unit(), Serdes::string()))
        .flat_map_values(|l: String| l.split(' ').map(String::from).collect::<Vec<_>>())
        .group_by(
            |_, w: &String| w.clone(),
            Grouped::with(Serdes::string(), Serdes::string()),
        )
        .count()
        .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
    let topology = b.build().unwrap();
    assert_eq!(
        topology.store_names(),
        vec![s("KSTREAM-AGGREGATE-STATE-STORE-0000000003")]
    );
    let d = TopologyTestDriver::with_config(topology, "streams-wordcount", 0).unwrap();
    d.input_topic("text", Serdes::unit(), Serdes::string())
        .pipe_input((), s("a b"))
        .unwrap();
    let topics = d.written_topics();
    assert!(
        topics.contains(&s(
            "streams-wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition"
        )),
        "{topics:?}"
    );
    assert!(
        topics.contains(&s(
            "streams-wordcount-KSTREAM-AGGREGATE-STATE-STORE-0000000003-changelog"
        )),
        "{topics:?}"
    );
}

#[test]
fn timestamp_extractor_sets_event_time_and_negative_timestamps_are_skipped() {
    let b = StreamsBuilder::new();
    b.stream(
        "in",
        Consumed::with(Serdes::string(), Serdes::i64()).with_timestamp_extractor(|_, v, _| *v),
    )
    .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    i.pipe_input_at(s("a"), 1234, 1).unwrap();
    i.pipe_input_at(s("b"), -7, 1).unwrap();
    let out = d
        .output_topic("out", Serdes::string(), Serdes::i64())
        .read_records_to_vec();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].timestamp, 1234);
    assert_eq!(d.dropped_records(), 1);
}

#[test]
fn undecodable_input_is_an_error() {
    let b = StreamsBuilder::new();
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let d = TopologyTestDriver::new(b.build().unwrap()).unwrap();
    let err = d
        .input_topic("in", Serdes::string(), Serdes::string())
        .pipe_input(s("a"), s("not eight bytes"))
        .unwrap_err();
    assert!(err.to_string().contains("deserializing"), "{err}");
}

/// Emits, per key, how many records it saw since the last punctuation.
struct Counter {
    every: Duration,
    kind: PunctuationType,
}

impl Processor<String, i64, String, i64> for Counter {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<()> {
        ctx.schedule(self.every, self.kind);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        key: String,
        _: i64,
    ) -> Result<()> {
        let store = ctx.key_value_store("pending", Serdes::string(), Serdes::i64())?;
        let n = store.get(&key)?.unwrap_or(0);
        store.put(&key, &(n + 1))
    }
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        _: PunctuationType,
        _: i64,
    ) -> Result<()> {
        let store = ctx.key_value_store("pending", Serdes::string(), Serdes::i64())?;
        for (k, n) in store.all()? {
            store.delete(&k)?;
            ctx.forward(k, n)?;
        }
        Ok(())
    }
}

fn punctuating(kind: PunctuationType) -> TopologyTestDriver {
    let b = StreamsBuilder::new();
    b.add_key_value_store("pending", Serdes::string(), Serdes::i64());
    b.stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .process(
            move || Counter {
                every: Duration::from_secs(10),
                kind,
            },
            &["pending"],
        )
        .to("out", Produced::with(Serdes::string(), Serdes::i64()));
    TopologyTestDriver::new(b.build().unwrap()).unwrap()
}

#[test]
fn stream_time_punctuation_follows_record_timestamps() {
    let d = punctuating(PunctuationType::StreamTime);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    // The first record starts stream time: the first punctuation fires then
    // (with nothing pending but this record's count).
    i.pipe_input_at(s("a"), 0, 0).unwrap();
    assert_eq!(out.read_key_values_to_vec(), vec![(s("a"), 1)]);
    i.pipe_input_at(s("a"), 0, 3_000).unwrap();
    i.pipe_input_at(s("b"), 0, 9_999).unwrap();
    assert!(out.is_empty(), "no punctuation before 10 s of stream time");
    // Wall-clock time does not move stream time.
    d.advance_wall_clock_time(Duration::from_secs(60)).unwrap();
    assert!(out.is_empty());
    i.pipe_input_at(s("b"), 0, 10_000).unwrap();
    assert_eq!(out.read_key_values_to_vec(), vec![(s("a"), 1), (s("b"), 2)]);
    // An older record does not move stream time back.
    i.pipe_input_at(s("c"), 0, 1).unwrap();
    assert!(out.is_empty());
}

#[test]
fn wall_clock_punctuation_follows_the_driver_clock() {
    let d = punctuating(PunctuationType::WallClockTime);
    let i = d.input_topic("in", Serdes::string(), Serdes::i64());
    let out = d.output_topic("out", Serdes::string(), Serdes::i64());
    i.pipe_input_at(s("a"), 0, 1_000_000).unwrap();
    i.pipe_input_at(s("a"), 0, 2_000_000).unwrap();
    assert!(
        out.is_empty(),
        "stream time does not fire wall-clock punctuations"
    );
    d.advance_wall_clock_time(Duration::from_secs(9)).unwrap();
    assert!(out.is_empty());
    d.advance_wall_clock_time(Duration::from_secs(1)).unwrap();
    assert_eq!(out.read_key_values_to_vec(), vec![(s("a"), 2)]);
}

#[test]
fn a_topology_with_mistakes_does_not_build() {
    let b = StreamsBuilder::new();
    let t = b
        .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
        .group_by_key(Grouped::with(Serdes::string(), Serdes::i64()))
        .aggregate(|| 0i64, |_, v, a| a + v, Materialized::named("x"));
    t.to("out", Produced::with(Serdes::string(), Serdes::i64()));
    let err = b.build().err().expect("no value serde: an error");
    assert!(err.to_string().contains("value serde"), "{err}");
}
