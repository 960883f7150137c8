//! Strom Streams: stateful, exactly-once stream processing on any
//! Kafka-compatible cluster, in the spirit of Kafka Streams.
//!
//! Build a topology with the DSL ([`StreamsBuilder`], [`KStream`],
//! [`KTable`]), then run it with [`KafkaStreams`] against a cluster, or
//! with the [`TopologyTestDriver`] in a unit test:
//!
//! ```
//! use strom_streams::*;
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("text", Consumed::with(Serdes::unit(), Serdes::string()))
//!     .flat_map_values(|line: String| line.split_whitespace().map(String::from).collect::<Vec<_>>())
//!     .group_by(|_, w: &String| w.clone(), Grouped::with(Serdes::string(), Serdes::string()))
//!     .count_with(Materialized::named("counts"))
//!     .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
//! let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
//! driver.input_topic("text", Serdes::unit(), Serdes::string())
//!     .pipe_input((), "a b a".into()).unwrap();
//! let out = driver.output_topic("counts", Serdes::string(), Serdes::i64());
//! assert_eq!(out.read_key_values_to_map()["a"], 2);
//! let store = driver.key_value_store("counts", Serdes::string(), Serdes::i64()).unwrap();
//! assert_eq!(store.get(&"b".to_string()).unwrap(), Some(1));
//! ```
//!
//! Against a cluster, `KafkaStreams::new(topology, StreamsConfig::new(app_id,
//! bootstrap))` joins the consumer group `app_id`, creates the internal
//! (repartition and changelog) topics, restores state stores from their
//! changelogs and processes with at-least-once or exactly-once guarantees;
//! see `docs/streams.md`.

pub mod driver;
pub mod dsl;
mod error;
mod http;
pub mod processor;
pub mod query;
mod record;
pub mod runtime;
pub mod serdes;
pub mod store;
mod task;
mod topology;

pub use driver::{TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use dsl::join_options::StreamJoined;
pub use dsl::windows::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows};
pub use dsl::{
    Consumed, Data, Grouped, KGroupedStream, KStream, KTable, Materialized, Produced,
    Repartitioned, SessionWindowedStream, SlidingWindowedStream, StreamsBuilder,
    TimeWindowedStream,
};
pub use error::{Result, SerdeError, StreamsError};
pub use processor::{KeyValueStore, Processor, ProcessorContext, PunctuationType};
pub use query::{ReadOnlyKeyValueStore, ReadOnlyWindowStore, WindowEntry};
pub use record::{Change, RecordMeta, TaskId, Windowed};
pub use runtime::{KafkaStreams, ProcessingGuarantee, State, StreamsConfig, StreamsMetrics};
pub use serdes::{Serde, SerdeRef, Serdes};
pub use topology::Topology;
