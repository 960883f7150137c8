//! `KStream`: a record stream and its stateless operations.

use super::{add_child, source, Consumed, Data, Grouped, KGroupedStream, Produced, Repartitioned};
use crate::error::{Result, StreamsError};
use crate::serdes::{ser, SerdeRef};
use crate::task::{ChildList, Fanout, Inst, TaskCtx};
use crate::topology::{Graph, RepartitionSpec, TopicRef};
use parking_lot::Mutex;
use std::sync::Arc;

/// A stream of key-value records.
pub struct KStream<K, V> {
    pub(crate) graph: Arc<Mutex<Graph>>,
    pub(crate) node: usize,
    pub(crate) children: ChildList<K, V>,
    /// The key was changed since the source: grouping must repartition.
    pub(crate) key_changed: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            graph: self.graph.clone(),
            node: self.node,
            children: self.children.clone(),
            key_changed: self.key_changed,
        }
    }
}

type Pred<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(
        graph: Arc<Mutex<Graph>>,
        node: usize,
        children: ChildList<K, V>,
        key_changed: bool,
    ) -> Self {
        KStream {
            graph,
            node,
            children,
            key_changed,
        }
    }

    /// A child node with state stores; `make` runs once per task.
    pub(crate) fn stateful<K2: Data, V2: Data, G, M>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        key_changed: bool,
        make: M,
    ) -> KStream<K2, V2>
    where
        G: FnMut(&mut TaskCtx, &mut Fanout<K2, V2>, K, V) -> Result<()> + Send + 'static,
        M: Fn(&mut Inst<'_>) -> Result<G> + Send + Sync + 'static,
    {
        let (node, children) =
            add_child(&self.graph, self.node, &self.children, prefix, stores, make);
        KStream::new(self.graph.clone(), node, children, key_changed)
    }

    fn stateless<K2: Data, V2: Data, G>(
        &self,
        prefix: &str,
        key_changed: bool,
        make: impl Fn() -> G + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        G: FnMut(&mut TaskCtx, &mut Fanout<K2, V2>, K, V) -> Result<()> + Send + 'static,
    {
        self.stateful(prefix, Vec::new(), key_changed, move |_| Ok(make()))
    }

    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let pred = Arc::new(pred);
        self.stateless("KSTREAM-FILTER", self.key_changed, move || {
            let pred = pred.clone();
            move |ctx, out, k, v| {
                if pred(&k, &v) {
                    out.forward(ctx, k, v)
                } else {
                    Ok(())
                }
            }
        })
    }

    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !pred(k, v))
    }

    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        self.stateless("KSTREAM-MAP", true, move || {
            let f = f.clone();
            move |ctx, out, k, v| {
                let (k, v) = f(k, v);
                out.forward(ctx, k, v)
            }
        })
    }

    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        self.stateless("KSTREAM-MAPVALUES", self.key_changed, move || {
            let f = f.clone();
            move |ctx, out, k, v| {
                let v = f(&k, v);
                out.forward(ctx, k, v)
            }
        })
    }

    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f = Arc::new(f);
        self.stateless("KSTREAM-FLATMAP", true, move || {
            let f = f.clone();
            move |ctx, out, k, v| {
                for (k, v) in f(k, v) {
                    out.forward(ctx, k, v)?;
                }
                Ok(())
            }
        })
    }

    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let f = Arc::new(f);
        self.stateless("KSTREAM-FLATMAPVALUES", self.key_changed, move || {
            let f = f.clone();
            move |ctx, out, k: K, v| {
                for v in f(v) {
                    out.forward(ctx, k.clone(), v)?;
                }
                Ok(())
            }
        })
    }

    /// A new key for every record (marks the stream for repartitioning
    /// before grouping or joining).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let f = Arc::new(f);
        self.stateless("KSTREAM-KEY-SELECT", true, move || {
            let f = f.clone();
            move |ctx, out, k, v| {
                let k2 = f(&k, &v);
                out.forward(ctx, k2, v)
            }
        })
    }

    /// Calls `f` for every record and passes it on.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f = Arc::new(f);
        self.stateless("KSTREAM-PEEK", self.key_changed, move || {
            let f = f.clone();
            move |ctx, out, k, v| {
                f(&k, &v);
                out.forward(ctx, k, v)
            }
        })
    }

    /// Calls `f` for every record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _ = self.peek(f);
    }

    /// Splits the stream: each record goes to the first branch whose
    /// predicate it matches (Kafka Streams' `split().branch(...)`); records
    /// matching none are dropped (add `|_, _| true` last for a default
    /// branch).
    pub fn branch(&self, predicates: Vec<Pred<K, V>>) -> Vec<KStream<K, V>> {
        let mut g = self.graph.lock();
        let name = g.next_name("KSTREAM-BRANCH");
        let node = g.add_node(name, vec![self.node], Vec::new());
        let mut branches = Vec::new();
        let mut lists = Vec::new();
        for _ in &predicates {
            let bname = g.next_name("KSTREAM-BRANCHCHILD");
            let bnode = g.add_node(bname, vec![node], Vec::new());
            let list: ChildList<K, V> = Default::default();
            lists.push(list.clone());
            branches.push(KStream::new(
                self.graph.clone(),
                bnode,
                list,
                self.key_changed,
            ));
        }
        drop(g);
        let predicates = Arc::new(predicates);
        let lists = Arc::new(lists);
        self.children
            .lock()
            .push(Arc::new(move |inst: &mut Inst<'_>| {
                let mut outs = Vec::new();
                for list in lists.iter() {
                    outs.push(crate::task::instantiate(inst, list)?);
                }
                Ok(Box::new(BranchNode {
                    predicates: predicates.clone(),
                    outs,
                }) as Box<dyn crate::task::Node<K, V>>)
            }));
        branches
    }

    /// One stream of the records of both.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut g = self.graph.lock();
        let name = g.next_name("KSTREAM-MERGE");
        let node = g.add_node(name, vec![self.node, other.node], Vec::new());
        drop(g);
        let children: ChildList<K, V> = Default::default();
        for parent in [&self.children, &other.children] {
            let c2 = children.clone();
            parent.lock().push(Arc::new(move |inst: &mut Inst<'_>| {
                // Both parents feed one instance of the merged stream's children.
                let shared = match inst.shared.get(&node) {
                    Some(s) => s
                        .downcast_ref::<Arc<Mutex<Fanout<K, V>>>>()
                        .expect("merge instance")
                        .clone(),
                    None => {
                        let fan = Arc::new(Mutex::new(crate::task::instantiate(inst, &c2)?));
                        inst.shared.insert(node, Box::new(fan.clone()));
                        fan
                    }
                };
                Ok(Box::new(crate::dsl::FnNode {
                    f: move |ctx: &mut TaskCtx, _: &mut Fanout<(), ()>, k: K, v: V| {
                        shared.lock().forward(ctx, k, v)
                    },
                    out: Fanout {
                        children: Vec::new(),
                    },
                    _in: std::marker::PhantomData,
                }) as Box<dyn crate::task::Node<K, V>>)
            }));
        }
        KStream::new(
            self.graph.clone(),
            node,
            children,
            self.key_changed || other.key_changed,
        )
    }

    /// Writes every record to `topic` (partitioned by the producer's
    /// murmur2 partitioner on the serialized key, as Kafka's Java client).
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        self.sink(
            TopicRef::External(topic.to_string()),
            produced.key,
            produced.value,
        );
    }

    pub(crate) fn sink(&self, topic: TopicRef, ks: SerdeRef<K>, vs: SerdeRef<V>) -> usize {
        let t2 = topic.clone();
        let (node, _) = add_child::<K, V, (), (), _, _>(
            &self.graph,
            self.node,
            &self.children,
            "KSTREAM-SINK",
            Vec::new(),
            move |inst: &mut Inst<'_>| {
                let name = t2.resolve(&inst.ctx.app_id);
                let (ks, vs) = (ks.clone(), vs.clone());
                Ok(
                    move |ctx: &mut TaskCtx, _: &mut Fanout<(), ()>, k: K, v: V| {
                        let fail = |source| StreamsError::Serialize {
                            what: format!("topic {name}"),
                            source,
                        };
                        let kb = ser(&*ks, &k).map_err(fail)?;
                        let vb = ser(&*vs, &v).map_err(fail)?;
                        ctx.collector.send(
                            &name,
                            None,
                            kb.as_deref(),
                            vb.as_deref(),
                            ctx.record.timestamp,
                        )
                    },
                )
            },
        );
        self.graph.lock().nodes[node].sink = Some(topic);
        node
    }

    /// Writes the stream through an internal topic
    /// `<application.id>-<name>-repartition` and reads it back, so that
    /// records are partitioned by their current key.
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> KStream<K, V> {
        let name = match repartitioned.name {
            Some(n) => n,
            None => self.graph.lock().next_name("KSTREAM-REPARTITION"),
        };
        self.through_internal(
            &name,
            repartitioned.partitions,
            repartitioned.key,
            repartitioned.value,
        )
    }

    pub(crate) fn through_internal(
        &self,
        name: &str,
        partitions: Option<i32>,
        ks: SerdeRef<K>,
        vs: SerdeRef<V>,
    ) -> KStream<K, V> {
        let suffix = format!("{name}-repartition");
        let topic = TopicRef::Internal(suffix.clone());
        let writer = self.sink(topic.clone(), ks.clone(), vs.clone());
        self.graph.lock().repartitions.push(RepartitionSpec {
            suffix,
            partitions,
            writer,
        });
        source(&self.graph, topic, Consumed::with(ks, vs), "KSTREAM-SOURCE")
    }

    /// Groups by the current key (repartitioning first if the key changed).
    pub fn group_by_key(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.clone(),
            key: grouped.key,
            value: grouped.value,
            name: grouped.name,
            repartition: self.key_changed,
        }
    }

    /// Groups by a new key (always repartitions).
    pub fn group_by<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(f).group_by_key(grouped)
    }
}

struct BranchNode<K, V> {
    predicates: Arc<Vec<Pred<K, V>>>,
    outs: Vec<Fanout<K, V>>,
}

impl<K: Data, V: Data> crate::task::Node<K, V> for BranchNode<K, V> {
    fn process(&mut self, ctx: &mut TaskCtx, key: K, value: V) -> Result<()> {
        for (pred, out) in self.predicates.iter().zip(self.outs.iter_mut()) {
            if pred(&key, &value) {
                return out.forward(ctx, key, value);
            }
        }
        Ok(())
    }
}
