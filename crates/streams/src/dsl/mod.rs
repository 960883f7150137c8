//! The DSL: [`StreamsBuilder`], [`KStream`], [`KTable`], grouped and
//! windowed streams, and the small option types (`Consumed`, `Produced`,
//! `Grouped`, `Materialized`, `Repartitioned`) that carry serdes and names.

mod grouped;
mod join;
pub mod join_options {
    //! Options of stream–stream joins.
    pub use super::join::StreamJoined;
}
mod stream;
mod table;
mod windowed;
pub mod windows;

pub use grouped::KGroupedStream;
pub use stream::KStream;
pub use table::KTable;
pub use windowed::{SessionWindowedStream, SlidingWindowedStream, TimeWindowedStream};

use crate::error::{Result, StreamsError};
use crate::record::Change;
use crate::serdes::{de, SerdeRef};
use crate::store::StoreKind;
use crate::task::{instantiate, ChildList, Fanout, Inst, Node, RawSource, TaskCtx};
use crate::topology::{Graph, QueryAdapter, SourceSpec, StoreSpec, TopicRef, Topology};
use parking_lot::Mutex;
use std::marker::PhantomData;
use std::sync::Arc;

/// What keys and values must be: cheap enough to clone to several children,
/// and movable between threads.
pub trait Data: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Data for T {}

/// Event time from a record: `(key, value, record timestamp) -> timestamp`.
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

/// How a source topic is read.
pub struct Consumed<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) extractor: Option<TimestampExtractor<K, V>>,
}

impl<K, V> Consumed<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Consumed {
            key,
            value,
            extractor: None,
        }
    }
    /// A custom event-time extractor (default: the record's timestamp).
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(f));
        self
    }
}

/// How records are written to a topic.
pub struct Produced<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
}

impl<K, V> Produced<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Produced { key, value }
    }
}

/// Serdes (and optionally a name) for grouping: the repartition topic and
/// the aggregation's store key.
pub struct Grouped<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K, V> Grouped<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Grouped {
            key,
            value,
            name: None,
        }
    }
    /// Names the repartition topic `<application.id>-<name>-repartition`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

/// A store's name and value serde (and whether it has a changelog).
pub struct Materialized<V> {
    pub(crate) name: Option<String>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) logging: bool,
}

impl<V> Default for Materialized<V> {
    fn default() -> Self {
        Materialized {
            name: None,
            value: None,
            logging: true,
        }
    }
}

impl<V> Materialized<V> {
    /// A store named `name` (its changelog: `<application.id>-<name>-changelog`).
    pub fn named(name: &str) -> Self {
        Materialized {
            name: Some(name.to_string()),
            ..Default::default()
        }
    }
    pub fn with_value_serde(value: SerdeRef<V>) -> Self {
        Materialized {
            value: Some(value),
            ..Default::default()
        }
    }
    pub fn value_serde(mut self, value: SerdeRef<V>) -> Self {
        self.value = Some(value);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// No changelog topic: the store starts empty after a restart or a
    /// task move.
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }
}

/// Options of [`KStream::repartition`].
pub struct Repartitioned<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K, V> Repartitioned<K, V> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>) -> Self {
        Repartitioned {
            key,
            value,
            name: None,
            partitions: None,
        }
    }
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    pub fn partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}

/// Builds a topology.
///
/// ```
/// use strom_streams::{Consumed, Grouped, Produced, Serdes, StreamsBuilder};
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("text", Consumed::with(Serdes::unit(), Serdes::string()))
///     .flat_map_values(|line: String| {
///         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
///     })
///     .group_by(|_, word: &String| word.clone(), Grouped::with(Serdes::string(), Serdes::string()))
///     .count()
///     .to("counts", Produced::with(Serdes::string(), Serdes::i64()));
/// let topology = builder.build().unwrap();
/// assert!(topology.describe().contains("KSTREAM-AGGREGATE-STATE-STORE"));
/// ```
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) graph: Arc<Mutex<Graph>>,
}

impl StreamsBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(&self, topic: &str, consumed: Consumed<K, V>) -> KStream<K, V> {
        self.source(
            TopicRef::External(topic.to_string()),
            consumed,
            "KSTREAM-SOURCE",
        )
    }

    pub(crate) fn source<K: Data, V: Data>(
        &self,
        topic: TopicRef,
        consumed: Consumed<K, V>,
        prefix: &str,
    ) -> KStream<K, V> {
        source(&self.graph, topic, consumed, prefix)
    }

    /// A table: the latest value per key of `topic` (null values delete),
    /// materialized in a key-value store (default name
    /// `<topic>-STATE-STORE-<n>`).
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<V>,
    ) -> KTable<K, V> {
        let (key_serde, value_serde) = (consumed.key.clone(), consumed.value.clone());
        let consumed_nullable = Consumed {
            key: consumed.key,
            value: crate::serdes::Serdes::option(consumed.value),
            extractor: None,
        };
        let stream = self.source(
            TopicRef::External(topic.to_string()),
            consumed_nullable,
            "KTABLE-SOURCE",
        );
        let store = match materialized.name {
            Some(n) => n,
            None => format!("{topic}-STATE-STORE-{:010}", self.graph.lock().counter),
        };
        let value_serde = materialized.value.unwrap_or(value_serde);
        self.graph.lock().add_store(StoreSpec {
            name: store.clone(),
            kind: StoreKind::KeyValue,
            logged: materialized.logging,
            query: Some(QueryAdapter::new(key_serde.clone(), value_serde.clone())),
        });
        let (ks, vs) = (key_serde.clone(), value_serde.clone());
        let store_name = store.clone();
        let changes = stream.stateful(
            "KTABLE-SOURCE-PROCESSOR",
            vec![store.clone()],
            false,
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&store_name)?;
                let (ks, vs) = (ks.clone(), vs.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, Change<V>>, k: K, v: Option<V>| {
                        let kb = ser_key(&*ks, &k, &store.name)?;
                        let old = match store.get(&kb)? {
                            Some(b) => Some(de_store(&*vs, &b, &store.name)?),
                            None => None,
                        };
                        match &v {
                            Some(v) => store.put(
                                &kb,
                                &ser_value(&*vs, v, &store.name)?,
                                ctx.record.timestamp,
                            )?,
                            None => store.delete(&kb, ctx.record.timestamp)?,
                        }
                        if old.is_none() && v.is_none() {
                            return Ok(());
                        }
                        out.forward(ctx, k, Change { new: v, old })
                    },
                )
            },
        );
        KTable::from_changes(
            changes,
            Some(table::TableStore {
                name: store,
                key: key_serde,
                value: value_serde,
            }),
        )
    }

    pub fn build(self) -> Result<Topology> {
        let graph = std::mem::take(&mut *self.graph.lock());
        Topology::from_graph(graph)
    }
}

pub(crate) fn source<K: Data, V: Data>(
    graph: &Arc<Mutex<Graph>>,
    topic: TopicRef,
    consumed: Consumed<K, V>,
    prefix: &str,
) -> KStream<K, V> {
    let mut g = graph.lock();
    let name = g.next_name(prefix);
    let node = g.add_node(name, Vec::new(), Vec::new());
    let children: ChildList<K, V> = Default::default();
    let c2 = children.clone();
    let consumed = Arc::new(consumed);
    let topic_name = topic.clone();
    g.sources.push(SourceSpec {
        topic,
        node,
        factory: Arc::new(move |inst| {
            let out = instantiate(inst, &c2)?;
            Ok(Box::new(SourceNode {
                consumed: consumed.clone(),
                topic: topic_name.resolve(&inst.ctx.app_id),
                out,
            }) as Box<dyn RawSource>)
        }),
    });
    drop(g);
    KStream::new(graph.clone(), node, children, false)
}

struct SourceNode<K, V> {
    consumed: Arc<Consumed<K, V>>,
    topic: String,
    out: Fanout<K, V>,
}

impl<K: Data, V: Data> RawSource for SourceNode<K, V> {
    fn process(
        &mut self,
        ctx: &mut TaskCtx,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let fail = |ctx: &TaskCtx, source| StreamsError::Deserialize {
            topic: self.topic.clone(),
            partition: ctx.record.partition,
            offset: ctx.record.offset,
            source,
        };
        let k = de(&*self.consumed.key, key).map_err(|e| fail(ctx, e))?;
        let v = de(&*self.consumed.value, value).map_err(|e| fail(ctx, e))?;
        let ts = match &self.consumed.extractor {
            Some(f) => f(&k, &v, ctx.record.timestamp),
            None => ctx.record.timestamp,
        };
        if ts < 0 {
            // Kafka Streams' LogAndSkipOnInvalidTimestamp.
            tracing::warn!(topic = %self.topic, offset = ctx.record.offset, ts, "skipping a record with a negative timestamp");
            ctx.dropped_records += 1;
            return Ok(());
        }
        ctx.record.timestamp = ts;
        ctx.stream_time = ctx.stream_time.max(ts);
        self.out.forward(ctx, k, v)
    }
}

/// A node made of a closure: `(ctx, children, key, value)`.
pub(crate) struct FnNode<K, V, K2, V2, F> {
    f: F,
    out: Fanout<K2, V2>,
    _in: PhantomData<fn(K, V)>,
}

impl<K, V, K2, V2, F> Node<K, V> for FnNode<K, V, K2, V2, F>
where
    F: FnMut(&mut TaskCtx, &mut Fanout<K2, V2>, K, V) -> Result<()> + Send,
    K2: Send,
    V2: Send,
{
    fn process(&mut self, ctx: &mut TaskCtx, key: K, value: V) -> Result<()> {
        (self.f)(ctx, &mut self.out, key, value)
    }
}

/// Adds a child node of `(K, V)` records producing `(K2, V2)`: `make` runs
/// once per task and returns the per-record closure.
pub(crate) fn add_child<K, V, K2, V2, G, M>(
    graph: &Arc<Mutex<Graph>>,
    parent_node: usize,
    parent_children: &ChildList<K, V>,
    prefix: &str,
    stores: Vec<String>,
    make: M,
) -> (usize, ChildList<K2, V2>)
where
    K: Data,
    V: Data,
    K2: Data,
    V2: Data,
    G: FnMut(&mut TaskCtx, &mut Fanout<K2, V2>, K, V) -> Result<()> + Send + 'static,
    M: Fn(&mut Inst<'_>) -> Result<G> + Send + Sync + 'static,
{
    let mut g = graph.lock();
    let name = g.next_name(prefix);
    let node = g.add_node(name, vec![parent_node], stores);
    drop(g);
    let children: ChildList<K2, V2> = Default::default();
    let c2 = children.clone();
    parent_children
        .lock()
        .push(Arc::new(move |inst: &mut Inst<'_>| {
            let out = instantiate(inst, &c2)?;
            let f = make(inst)?;
            Ok(Box::new(FnNode {
                f,
                out,
                _in: PhantomData,
            }) as Box<dyn Node<K, V>>)
        }));
    (node, children)
}

pub(crate) fn ser_key<K: 'static>(
    serde: &dyn crate::Serde<K>,
    k: &K,
    store: &str,
) -> Result<Vec<u8>> {
    serde
        .serialize(k)
        .map_err(|source| StreamsError::Serialize {
            what: format!("store {store} (key)"),
            source,
        })
}

pub(crate) fn ser_value<V: 'static>(
    serde: &dyn crate::Serde<V>,
    v: &V,
    store: &str,
) -> Result<Vec<u8>> {
    serde
        .serialize(v)
        .map_err(|source| StreamsError::Serialize {
            what: format!("store {store} (value)"),
            source,
        })
}

pub(crate) fn de_store<V: 'static>(
    serde: &dyn crate::Serde<V>,
    b: &[u8],
    store: &str,
) -> Result<V> {
    serde
        .deserialize(b)
        .map_err(|e| StreamsError::store(store, format!("undecodable value: {e}")))
}
