//! `KTable`: a changelog stream seen as the latest value per key.

use super::{add_child, de_store, ser_key, Data, KStream, Materialized, Produced};
use crate::record::Change;
use crate::serdes::{SerdeRef, Serdes};
use crate::store::StoreKind;
use crate::task::{Fanout, Inst, TaskCtx};
use crate::topology::{QueryAdapter, StoreSpec};
use std::sync::Arc;

pub(crate) struct TableStore<K, V> {
    pub name: String,
    pub key: SerdeRef<K>,
    pub value: SerdeRef<V>,
}

impl<K, V> Clone for TableStore<K, V> {
    fn clone(&self) -> Self {
        TableStore {
            name: self.name.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
        }
    }
}

/// A table: updates flow downstream as changes `(key, new, old)`.
pub struct KTable<K, V> {
    pub(crate) changes: KStream<K, Change<V>>,
    /// The key-value store holding the table, if it is materialized (table
    /// sources and aggregations are).
    pub(crate) store: Option<TableStore<K, V>>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            changes: self.changes.clone(),
            store: self.store.clone(),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn from_changes(
        changes: KStream<K, Change<V>>,
        store: Option<TableStore<K, V>>,
    ) -> Self {
        KTable { changes, store }
    }

    /// The store's name (for interactive queries), if materialized.
    pub fn store_name(&self) -> Option<String> {
        self.store.as_ref().map(|s| s.name.clone())
    }

    /// The table's updates as a stream; `None` is a deletion.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        self.changes
            .stateful("KTABLE-TOSTREAM", Vec::new(), false, |_| {
                Ok(
                    |ctx: &mut TaskCtx, out: &mut Fanout<K, Option<V>>, k: K, c: Change<V>| {
                        out.forward(ctx, k, c.new)
                    },
                )
            })
    }

    /// Writes the updates to `topic`; deletions become tombstones.
    pub fn to(&self, topic: &str, produced: Produced<K, V>) {
        self.to_stream().to(
            topic,
            Produced::with(produced.key, Serdes::option(produced.value)),
        );
    }

    /// Rows not matching become deletions downstream.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let pred = Arc::new(pred);
        let changes = self
            .changes
            .stateful("KTABLE-FILTER", Vec::new(), false, move |_| {
                let pred = pred.clone();
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, Change<V>>, k: K, c: Change<V>| {
                        let new = c.new.filter(|v| pred(&k, v));
                        let old = c.old.filter(|v| pred(&k, v));
                        if new.is_none() && old.is_none() {
                            return Ok(());
                        }
                        out.forward(ctx, k, Change { new, old })
                    },
                )
            });
        KTable::from_changes(changes, None)
    }

    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        let changes = self
            .changes
            .stateful("KTABLE-MAPVALUES", Vec::new(), false, move |_| {
                let f = f.clone();
                Ok(
                    move |ctx: &mut TaskCtx,
                          out: &mut Fanout<K, Change<V2>>,
                          k: K,
                          c: Change<V>| {
                        let new = c.new.map(|v| f(&k, v));
                        let old = c.old.map(|v| f(&k, v));
                        out.forward(ctx, k, Change { new, old })
                    },
                )
            });
        KTable::from_changes(changes, None)
    }

    /// Materializes a derived table in a store of its own (needed to join
    /// it or query it).
    pub fn materialize(&self, key: SerdeRef<K>, m: Materialized<V>) -> KTable<K, V> {
        let mut g = self.changes.graph.lock();
        let name = m
            .name
            .clone()
            .unwrap_or_else(|| g.next_name("KTABLE-STATE-STORE"));
        let Some(value) = m.value.clone() else {
            g.errors
                .push(format!("materializing {name} needs a value serde"));
            drop(g);
            return self.clone();
        };
        g.add_store(StoreSpec {
            name: name.clone(),
            kind: StoreKind::KeyValue,
            logged: m.logging,
            query: Some(QueryAdapter::new(key.clone(), value.clone())),
        });
        drop(g);
        let (ks, vs, n2) = (key.clone(), value.clone(), name.clone());
        let changes = self.changes.stateful(
            "KTABLE-MATERIALIZE",
            vec![name.clone()],
            false,
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&n2)?;
                let (ks, vs) = (ks.clone(), vs.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, Change<V>>, k: K, c: Change<V>| {
                        let kb = ser_key(&*ks, &k, &store.name)?;
                        match &c.new {
                            Some(v) => store.put(
                                &kb,
                                &super::ser_value(&*vs, v, &store.name)?,
                                ctx.record.timestamp,
                            )?,
                            None => store.delete(&kb, ctx.record.timestamp)?,
                        }
                        out.forward(ctx, k, c)
                    },
                )
            },
        );
        KTable::from_changes(changes, Some(TableStore { name, key, value }))
    }

    pub(crate) fn require_store(&self, what: &str) -> Option<TableStore<K, V>> {
        if self.store.is_none() {
            self.changes.graph.lock().errors.push(format!(
                "{what} needs a materialized table (KTable::materialize)"
            ));
        }
        self.store.clone()
    }

    /// Inner table–table join: a row exists where both tables have the key.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_general(other, "KTABLE-JOINTHIS", move |l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        })
    }

    /// Left table–table join: every row of this table, with the other's
    /// value if any.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_general(other, "KTABLE-LEFTTHIS", move |l, r| {
            l.map(|l| joiner(l, r))
        })
    }

    /// Outer table–table join: a row wherever either table has the key.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.join_general(other, "KTABLE-OUTERTHIS", move |l, r| {
            if l.is_none() && r.is_none() {
                None
            } else {
                Some(joiner(l, r))
            }
        })
    }

    fn join_general<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        prefix: &str,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let (Some(left_store), Some(right_store)) = (
            self.require_store("a table-table join"),
            other.require_store("a table-table join"),
        ) else {
            return KTable::from_changes(
                self.changes.map_values(|_| Change {
                    new: None,
                    old: None,
                }),
                None,
            );
        };
        let joiner = Arc::new(joiner);
        // This side's changes look up the other table, and the other way round.
        let j1 = joiner.clone();
        let rs = right_store.clone();
        let left = self.changes.stateful(
            prefix,
            vec![right_store.name.clone()],
            false,
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&rs.name)?;
                let (rs, j) = (rs.clone(), j1.clone());
                Ok(
                    move |ctx: &mut TaskCtx,
                          out: &mut Fanout<K, Change<VR>>,
                          k: K,
                          c: Change<V>| {
                        let kb = ser_key(&*rs.key, &k, &store.name)?;
                        let r = match store.get(&kb)? {
                            Some(b) => Some(de_store(&*rs.value, &b, &store.name)?),
                            None => None,
                        };
                        let new = j(c.new.as_ref(), r.as_ref());
                        let old = j(c.old.as_ref(), r.as_ref());
                        if new.is_none() && old.is_none() {
                            return Ok(());
                        }
                        out.forward(ctx, k, Change { new, old })
                    },
                )
            },
        );
        let ls = left_store.clone();
        let (_, right_children) = add_child(
            &other.changes.graph,
            other.changes.node,
            &other.changes.children,
            &prefix.replace("THIS", "OTHER"),
            vec![left_store.name.clone()],
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&ls.name)?;
                let (ls, j) = (ls.clone(), joiner.clone());
                Ok(
                    move |ctx: &mut TaskCtx,
                          out: &mut Fanout<K, Change<VR>>,
                          k: K,
                          c: Change<V2>| {
                        let kb = ser_key(&*ls.key, &k, &store.name)?;
                        let l = match store.get(&kb)? {
                            Some(b) => Some(de_store(&*ls.value, &b, &store.name)?),
                            None => None,
                        };
                        let new = j(l.as_ref(), c.new.as_ref());
                        let old = j(l.as_ref(), c.old.as_ref());
                        if new.is_none() && old.is_none() {
                            return Ok(());
                        }
                        out.forward(ctx, k, Change { new, old })
                    },
                )
            },
        );
        let right_node = other.changes.graph.lock().nodes.len() - 1;
        let right = KStream::new(
            other.changes.graph.clone(),
            right_node,
            right_children,
            false,
        );
        KTable::from_changes(left.merge(&right), None)
    }
}
