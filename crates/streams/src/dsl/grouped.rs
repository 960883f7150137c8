//! `KGroupedStream`: `count`, `reduce`, `aggregate`, and windowing.

use super::table::TableStore;
use super::windowed::{SessionWindowedStream, SlidingWindowedStream, TimeWindowedStream};
use super::windows::{SessionWindows, SlidingWindows, TimeWindows};
use super::{de_store, ser_key, ser_value, Data, KStream, KTable, Materialized};
use crate::record::Change;
use crate::serdes::{SerdeRef, Serdes};
use crate::store::StoreKind;
use crate::task::{Fanout, Inst, TaskCtx};
use crate::topology::{QueryAdapter, StoreSpec};
use std::sync::Arc;

/// `(key, value, current aggregate or None) -> new aggregate`.
pub(crate) type AddFn<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;
/// Session merger: `(key, aggregate, aggregate) -> aggregate`.
pub(crate) type MergeFn<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) repartition: bool,
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            name: self.name.clone(),
            repartition: self.repartition,
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// The stream to aggregate: through `<name or store>-repartition` if
    /// the key changed.
    pub(crate) fn input(&self, store: &str) -> KStream<K, V> {
        if self.repartition {
            let name = self.name.clone().unwrap_or_else(|| store.to_string());
            self.stream
                .through_internal(&name, None, self.key.clone(), self.value.clone())
        } else {
            self.stream.clone()
        }
    }

    pub(crate) fn store_name(&self, m_name: &Option<String>) -> String {
        match m_name {
            Some(n) => n.clone(),
            None => self
                .stream
                .graph
                .lock()
                .next_name("KSTREAM-AGGREGATE-STATE-STORE"),
        }
    }

    /// Records per key.
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    pub fn count_with(&self, m: Materialized<i64>) -> KTable<K, i64> {
        let m = Materialized {
            value: Some(Serdes::i64()),
            ..m
        };
        self.aggregate_with(Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0) + 1), m)
    }

    /// Combines the values of a key: `f(aggregate, value)`.
    pub fn reduce(&self, f: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V> {
        self.reduce_with(f, Materialized::default())
    }

    pub fn reduce_with(
        &self,
        f: impl Fn(V, V) -> V + Send + Sync + 'static,
        m: Materialized<V>,
    ) -> KTable<K, V> {
        let m = Materialized {
            value: Some(m.value.unwrap_or_else(|| self.value.clone())),
            ..m
        };
        self.aggregate_with(
            Arc::new(move |_, v, acc: Option<V>| match acc {
                Some(a) => f(a, v),
                None => v,
            }),
            m,
        )
    }

    /// Folds the values of a key into an aggregate: `f(key, value,
    /// aggregate)`, starting from `init()`. The materialized value serde is
    /// required.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        m: Materialized<A>,
    ) -> KTable<K, A> {
        self.aggregate_with(
            Arc::new(move |k, v, acc: Option<A>| f(k, v, acc.unwrap_or_else(&init))),
            m,
        )
    }

    fn aggregate_with<A: Data>(&self, add: AddFn<K, V, A>, m: Materialized<A>) -> KTable<K, A> {
        let store = self.store_name(&m.name);
        let Some(value_serde) = m.value.clone() else {
            self.stream.graph.lock().errors.push(format!(
                "aggregate into store {store} needs a value serde (Materialized::with_value_serde)"
            ));
            return KTable::from_changes(
                self.input(&store).map_values(|_| Change {
                    new: None,
                    old: None,
                }),
                None,
            );
        };
        let input = self.input(&store);
        input.graph.lock().add_store(StoreSpec {
            name: store.clone(),
            kind: StoreKind::KeyValue,
            logged: m.logging,
            query: Some(QueryAdapter::new(self.key.clone(), value_serde.clone())),
        });
        let (ks, vs, name) = (self.key.clone(), value_serde.clone(), store.clone());
        let changes = input.stateful(
            "KSTREAM-AGGREGATE",
            vec![store.clone()],
            false,
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&name)?;
                let (ks, vs, add) = (ks.clone(), vs.clone(), add.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, Change<A>>, k: K, v: V| {
                        let kb = ser_key(&*ks, &k, &store.name)?;
                        let old = match store.get(&kb)? {
                            Some(b) => Some(de_store(&*vs, &b, &store.name)?),
                            None => None,
                        };
                        let new = add(&k, v, old.clone());
                        store.put(
                            &kb,
                            &ser_value(&*vs, &new, &store.name)?,
                            ctx.record.timestamp,
                        )?;
                        out.forward(
                            ctx,
                            k,
                            Change {
                                new: Some(new),
                                old,
                            },
                        )
                    },
                )
            },
        );
        KTable::from_changes(
            changes,
            Some(TableStore {
                name: store,
                key: self.key.clone(),
                value: value_serde,
            }),
        )
    }

    /// Tumbling or hopping windows.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedStream<K, V> {
        TimeWindowedStream::new(self.clone(), windows)
    }

    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedStream<K, V> {
        SlidingWindowedStream::new(self.clone(), windows)
    }

    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedStream<K, V> {
        SessionWindowedStream::new(self.clone(), windows)
    }
}
