//! Stream–table and windowed stream–stream joins.

use super::windows::JoinWindows;
use super::{add_child, de_store, ser_key, ser_value, Data, KStream, KTable};
use crate::serdes::SerdeRef;
use crate::store::{StoreKind, WindowKey};
use crate::task::{Fanout, Inst, TaskCtx};
use crate::topology::StoreSpec;
use std::sync::Arc;

/// Serdes of a stream–stream join's buffers.
pub struct StreamJoined<K, V, V2> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) other_value: SerdeRef<V2>,
}

impl<K, V, V2> StreamJoined<K, V, V2> {
    pub fn with(key: SerdeRef<K>, value: SerdeRef<V>, other_value: SerdeRef<V2>) -> Self {
        StreamJoined {
            key,
            value,
            other_value,
        }
    }
}

/// A sequence number unique per input record (topic, offset), so that
/// records of one key with one timestamp do not overwrite each other in a
/// join buffer.
pub(crate) fn record_seq(ctx: &TaskCtx) -> i64 {
    let mut h: u32 = 2166136261;
    for b in ctx.record.topic.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(16777619);
    }
    (i64::from(h & 0x7fffff) << 40) | (ctx.record.offset & ((1 << 40) - 1))
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Inner stream–table join: each record is joined with the table's
    /// current value for its key; records without one are dropped.
    pub fn join_table<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(table, "KSTREAM-JOIN", move |v, t| t.map(|t| joiner(v, t)))
    }

    /// Left stream–table join: every record, with the table's value if any.
    pub fn left_join_table<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(table, "KSTREAM-LEFTJOIN", move |v, t| Some(joiner(v, t)))
    }

    fn table_join<V2: Data, VR: Data>(
        &self,
        table: &KTable<K, V2>,
        prefix: &str,
        joiner: impl Fn(&V, Option<&V2>) -> Option<VR> + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let Some(ts) = table.require_store("a stream-table join") else {
            return self.flat_map_values(|_| None::<VR>);
        };
        let joiner = Arc::new(joiner);
        self.stateful(
            prefix,
            vec![ts.name.clone()],
            self.key_changed,
            move |inst: &mut Inst<'_>| {
                let store = inst.ctx.store(&ts.name)?;
                let (ts, joiner) = (ts.clone(), joiner.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, VR>, k: K, v: V| {
                        let kb = ser_key(&*ts.key, &k, &store.name)?;
                        let t = match store.get(&kb)? {
                            Some(b) => Some(de_store(&*ts.value, &b, &store.name)?),
                            None => None,
                        };
                        match joiner(&v, t.as_ref()) {
                            Some(r) => out.forward(ctx, k, r),
                            None => Ok(()),
                        }
                    },
                )
            },
        )
    }

    /// Windowed inner stream–stream join: records of both streams with the
    /// same key whose timestamps are within the join window. Each side is
    /// buffered in a window store (`KSTREAM-JOINTHIS-<n>-store`,
    /// `KSTREAM-JOINOTHER-<n>-store`); the result's timestamp is the later
    /// of the two.
    pub fn join_windowed<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        serdes: StreamJoined<K, V, V2>,
    ) -> KStream<K, VR> {
        let (this_name, other_name) = {
            let mut g = self.graph.lock();
            let this_name = format!("{}-store", g.next_name("KSTREAM-JOINTHIS"));
            let other_name = format!("{}-store", g.next_name("KSTREAM-JOINOTHER"));
            let retention = windows.before + windows.after + windows.grace + 1;
            for name in [&this_name, &other_name] {
                g.add_store(StoreSpec {
                    name: name.clone(),
                    kind: StoreKind::Window {
                        retention_ms: retention,
                    },
                    logged: true,
                    query: None,
                });
            }
            (this_name, other_name)
        };
        let joiner = Arc::new(joiner);
        let j = joiner.clone();
        let this_side = JoinSide {
            own: this_name.clone(),
            other: other_name.clone(),
            key: serdes.key.clone(),
            // Other-side records within [ts - before, ts + after].
            lo: windows.before,
            hi: windows.after,
            windows,
        };
        let other_side = JoinSide {
            own: other_name.clone(),
            other: this_name.clone(),
            key: serdes.key.clone(),
            lo: windows.after,
            hi: windows.before,
            windows,
        };
        let (vs, v2s) = (serdes.value.clone(), serdes.other_value.clone());
        let (vs_b, v2s_b) = (vs.clone(), v2s.clone());
        let left = self.stateful(
            "KSTREAM-JOINTHIS",
            vec![this_name.clone(), other_name.clone()],
            self.key_changed,
            move |inst: &mut Inst<'_>| {
                let side = this_side.open(inst)?;
                let (vs, v2s, j) = (vs.clone(), v2s.clone(), j.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, VR>, k: K, v: V| {
                        side.process(ctx, out, k, v, &*vs, &*v2s, |a, b| j(a, b))
                    },
                )
            },
        );
        let (_, right_children) = add_child(
            &other.graph,
            other.node,
            &other.children,
            "KSTREAM-JOINOTHER",
            vec![other_name, this_name],
            move |inst: &mut Inst<'_>| {
                let side = other_side.open(inst)?;
                let (vs, v2s, j) = (vs_b.clone(), v2s_b.clone(), joiner.clone());
                Ok(
                    move |ctx: &mut TaskCtx, out: &mut Fanout<K, VR>, k: K, v: V2| {
                        side.process(ctx, out, k, v, &*v2s, &*vs, |a, b| j(b, a))
                    },
                )
            },
        );
        let right_node = other.graph.lock().nodes.len() - 1;
        let right = KStream::new(
            other.graph.clone(),
            right_node,
            right_children,
            other.key_changed,
        );
        left.merge(&right)
    }
}

#[derive(Clone)]
struct JoinSide<K> {
    own: String,
    other: String,
    key: SerdeRef<K>,
    lo: i64,
    hi: i64,
    windows: JoinWindows,
}

struct OpenSide<K> {
    spec: JoinSide<K>,
    own: Arc<crate::store::Store>,
    other: Arc<crate::store::Store>,
    next_cleanup: std::cell::Cell<i64>,
}

impl<K: Data> JoinSide<K> {
    fn open(&self, inst: &mut Inst<'_>) -> crate::Result<OpenSide<K>> {
        Ok(OpenSide {
            spec: self.clone(),
            own: inst.ctx.store(&self.own)?,
            other: inst.ctx.store(&self.other)?,
            next_cleanup: std::cell::Cell::new(i64::MIN),
        })
    }
}

impl<K: Data> OpenSide<K> {
    #[allow(clippy::too_many_arguments)]
    fn process<A: 'static, B: 'static, R: Data>(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Fanout<K, R>,
        k: K,
        v: A,
        own_serde: &dyn crate::Serde<A>,
        other_serde: &dyn crate::Serde<B>,
        join: impl Fn(&A, &B) -> R,
    ) -> crate::Result<()> {
        let ts = ctx.record.timestamp;
        let w = &self.spec.windows;
        let retention = w.before + w.after + w.grace;
        if ts + w.before.max(w.after) + w.grace < ctx.stream_time {
            ctx.dropped_records += 1;
            return Ok(());
        }
        let kb = ser_key(&*self.spec.key, &k, &self.own.name)?;
        self.own.put(
            &WindowKey::encode(&kb, ts, record_seq(ctx)),
            &ser_value(own_serde, &v, &self.own.name)?,
            ts,
        )?;
        let matches = self.other.fetch_windows(
            &kb,
            ts.saturating_sub(self.spec.lo),
            ts.saturating_add(self.spec.hi),
        )?;
        for (wk, bytes) in matches {
            let o = de_store(other_serde, &bytes, &self.other.name)?;
            let saved = ctx.record.timestamp;
            ctx.record.timestamp = ts.max(wk.start);
            let r = out.forward(ctx, k.clone(), join(&v, &o));
            ctx.record.timestamp = saved;
            r?;
        }
        // Drop buffered records that can no longer join.
        let horizon = ctx.stream_time - retention - 1;
        if horizon > self.next_cleanup.get() {
            self.next_cleanup.set(horizon + retention.max(1));
            for (key, _) in self.own.range(&[], None)? {
                if WindowKey::decode(&key).is_some_and(|wk| wk.start < horizon) {
                    self.own.delete(&key, ts)?;
                }
            }
        }
        Ok(())
    }
}
