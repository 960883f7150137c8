//! Windowed aggregations: tumbling/hopping, sliding and session windows,
//! with grace periods and optional emit-final (results only when a window
//! closes, from a changelogged suppression buffer).

use super::grouped::{AddFn, KGroupedStream, MergeFn};
use super::join::record_seq;
use super::windows::{SessionWindows, SlidingWindows, TimeWindows, DEFAULT_RETENTION_MS};
use super::{de_store, ser_key, ser_value, Data, KTable, Materialized};
use crate::error::Result;
use crate::record::{Change, Windowed};
use crate::serdes::{SerdeRef, Serdes};
use crate::store::{dec_time, enc_time, Store, StoreKind, WindowKey};
use crate::task::{Fanout, Inst, TaskCtx};
use crate::topology::{QueryAdapter, StoreSpec};
use std::sync::Arc;

#[derive(Clone, Copy)]
enum Kind {
    Time(TimeWindows),
    Sliding(SlidingWindows),
    Session(SessionWindows),
}

impl Kind {
    fn grace(&self) -> i64 {
        match self {
            Kind::Time(w) => w.grace,
            Kind::Sliding(w) => w.grace,
            Kind::Session(w) => w.grace,
        }
    }
    /// How long a window is kept in its store after it starts.
    fn retention(&self) -> i64 {
        let span = match self {
            Kind::Time(w) => w.size + w.grace,
            Kind::Sliding(w) => w.difference + w.grace + 1,
            Kind::Session(w) => w.gap + w.grace + 1,
        };
        span.max(DEFAULT_RETENTION_MS)
    }
    /// Stream time at which a window ending at `end` closes. Time windows'
    /// ends are exclusive, session and sliding windows' inclusive.
    fn close_time(&self, end: i64) -> i64 {
        match self {
            Kind::Time(w) => end.saturating_add(w.grace),
            _ => end.saturating_add(self.grace()).saturating_add(1),
        }
    }
}

macro_rules! windowed_stream {
    ($name:ident, $windows:ty, $kind:ident, $doc:literal) => {
        #[doc = $doc]
        pub struct $name<K, V> {
            grouped: KGroupedStream<K, V>,
            windows: $windows,
            emit_final: bool,
        }

        impl<K: Data, V: Data> $name<K, V> {
            pub(crate) fn new(grouped: KGroupedStream<K, V>, windows: $windows) -> Self {
                $name {
                    grouped,
                    windows,
                    emit_final: false,
                }
            }

            /// Emit one result per window, when it closes (window end plus
            /// grace reached by stream time), instead of every update
            /// (Kafka Streams' `EmitStrategy.onWindowClose()`, or
            /// `suppress(untilWindowCloses)`).
            pub fn emit_final(mut self) -> Self {
                self.emit_final = true;
                self
            }

            pub fn count(&self) -> KTable<Windowed<K>, i64> {
                self.count_with(Materialized::default())
            }

            pub fn count_with(&self, m: Materialized<i64>) -> KTable<Windowed<K>, i64> {
                let m = Materialized {
                    value: Some(Serdes::i64()),
                    ..m
                };
                build(
                    &self.grouped,
                    Kind::$kind(self.windows),
                    self.emit_final,
                    Arc::new(|_, _, n: Option<i64>| n.unwrap_or(0) + 1),
                    Arc::new(|_, a, b| a + b),
                    m,
                )
            }

            pub fn reduce(
                &self,
                f: impl Fn(V, V) -> V + Send + Sync + 'static,
            ) -> KTable<Windowed<K>, V> {
                let f = Arc::new(f);
                let f2 = f.clone();
                let m = Materialized::with_value_serde(self.grouped.value.clone());
                build(
                    &self.grouped,
                    Kind::$kind(self.windows),
                    self.emit_final,
                    Arc::new(move |_, v, acc: Option<V>| match acc {
                        Some(a) => f(a, v),
                        None => v,
                    }),
                    Arc::new(move |_, a, b| f2(a, b)),
                    m,
                )
            }
        }
    };
}

windowed_stream!(
    TimeWindowedStream,
    TimeWindows,
    Time,
    "A grouped stream in tumbling or hopping windows."
);
windowed_stream!(
    SlidingWindowedStream,
    SlidingWindows,
    Sliding,
    "A grouped stream in sliding windows."
);
windowed_stream!(
    SessionWindowedStream,
    SessionWindows,
    Session,
    "A grouped stream in session windows."
);

impl<K: Data, V: Data> TimeWindowedStream<K, V> {
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        m: Materialized<A>,
    ) -> KTable<Windowed<K>, A> {
        build(
            &self.grouped,
            Kind::Time(self.windows),
            self.emit_final,
            Arc::new(move |k, v, acc: Option<A>| f(k, v, acc.unwrap_or_else(&init))),
            Arc::new(|_, _, b| b),
            m,
        )
    }
}

impl<K: Data, V: Data> SlidingWindowedStream<K, V> {
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        m: Materialized<A>,
    ) -> KTable<Windowed<K>, A> {
        build(
            &self.grouped,
            Kind::Sliding(self.windows),
            self.emit_final,
            Arc::new(move |k, v, acc: Option<A>| f(k, v, acc.unwrap_or_else(&init))),
            Arc::new(|_, _, b| b),
            m,
        )
    }
}

impl<K: Data, V: Data> SessionWindowedStream<K, V> {
    /// Session aggregation needs a merger for sessions that a record joins.
    pub fn aggregate<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        f: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        m: Materialized<A>,
    ) -> KTable<Windowed<K>, A> {
        build(
            &self.grouped,
            Kind::Session(self.windows),
            self.emit_final,
            Arc::new(move |k, v, acc: Option<A>| f(k, v, acc.unwrap_or_else(&init))),
            Arc::new(merger),
            m,
        )
    }
}

fn build<K: Data, V: Data, A: Data>(
    grouped: &KGroupedStream<K, V>,
    kind: Kind,
    emit_final: bool,
    add: AddFn<K, V, A>,
    merge: MergeFn<K, A>,
    m: Materialized<A>,
) -> KTable<Windowed<K>, A> {
    let store = grouped.store_name(&m.name);
    let input = grouped.input(&store);
    let wks = Serdes::windowed(grouped.key.clone());
    let Some(vs) = m.value.clone() else {
        input.graph.lock().errors.push(format!(
            "windowed aggregate into {store} needs a value serde"
        ));
        return KTable::from_changes(
            input.flat_map(|_, _| Vec::<(Windowed<K>, Change<A>)>::new()),
            None,
        );
    };
    let retention_ms = kind.retention();
    let mut stores = vec![store.clone()];
    let (suppress, records) = {
        let mut g = input.graph.lock();
        g.add_store(StoreSpec {
            name: store.clone(),
            kind: StoreKind::Window { retention_ms },
            logged: m.logging,
            query: Some(QueryAdapter::new(wks, vs.clone())),
        });
        let suppress = emit_final.then(|| {
            let name = g.next_name("KTABLE-SUPPRESS-STATE-STORE");
            g.add_store(StoreSpec {
                name: name.clone(),
                kind: StoreKind::KeyValue,
                logged: m.logging,
                query: None,
            });
            name
        });
        let records = matches!(kind, Kind::Sliding(_)).then(|| {
            let name = format!("{store}-records");
            g.add_store(StoreSpec {
                name: name.clone(),
                kind: StoreKind::Window { retention_ms },
                logged: m.logging,
                query: None,
            });
            name
        });
        (suppress, records)
    };
    stores.extend(suppress.clone());
    stores.extend(records.clone());
    let (ks, value_in) = (grouped.key.clone(), grouped.value.clone());
    let changes = input.stateful(
        "KSTREAM-WINDOWED-AGGREGATE",
        stores,
        false,
        move |inst: &mut Inst<'_>| {
            let proc = WindowProc {
                kind,
                store: inst.ctx.store(&store)?,
                suppress: match &suppress {
                    Some(n) => Some(inst.ctx.store(n)?),
                    None => None,
                },
                records: match &records {
                    Some(n) => Some(inst.ctx.store(n)?),
                    None => None,
                },
                key: ks.clone(),
                value_in: value_in.clone(),
                agg: vs.clone(),
                add: add.clone(),
                merge: merge.clone(),
                next_cleanup: i64::MIN,
            };
            let mut proc = proc;
            Ok(
                move |ctx: &mut TaskCtx, out: &mut Fanout<Windowed<K>, Change<A>>, k: K, v: V| {
                    proc.process(ctx, out, k, v)
                },
            )
        },
    );
    KTable::from_changes(changes, None)
}

struct WindowProc<K, V, A> {
    kind: Kind,
    store: Arc<Store>,
    suppress: Option<Arc<Store>>,
    records: Option<Arc<Store>>,
    key: SerdeRef<K>,
    value_in: SerdeRef<V>,
    agg: SerdeRef<A>,
    add: AddFn<K, V, A>,
    merge: MergeFn<K, A>,
    next_cleanup: i64,
}

type Out<K, A> = Fanout<Windowed<K>, Change<A>>;

impl<K: Data, V: Data, A: Data> WindowProc<K, V, A> {
    fn process(&mut self, ctx: &mut TaskCtx, out: &mut Out<K, A>, k: K, v: V) -> Result<()> {
        let kb = ser_key(&*self.key, &k, &self.store.name)?;
        match self.kind {
            Kind::Time(w) => self.time(ctx, out, &k, &kb, v, w)?,
            Kind::Session(w) => self.session(ctx, out, &k, &kb, v, w)?,
            Kind::Sliding(w) => self.sliding(ctx, out, &k, &kb, v, w)?,
        }
        self.flush_closed(ctx, out)?;
        self.cleanup(ctx)
    }

    fn get(&self, wk: &[u8]) -> Result<Option<A>> {
        match self.store.get(wk)? {
            Some(b) => Ok(Some(de_store(&*self.agg, &b, &self.store.name)?)),
            None => Ok(None),
        }
    }

    fn time(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Out<K, A>,
        k: &K,
        kb: &[u8],
        v: V,
        w: TimeWindows,
    ) -> Result<()> {
        let ts = ctx.record.timestamp;
        let mut accepted = false;
        for (start, end) in w.windows_for(ts) {
            if self.kind.close_time(end) <= ctx.stream_time {
                continue;
            }
            accepted = true;
            let wk = WindowKey::encode(kb, start, end);
            let old = self.get(&wk)?;
            let new = (self.add)(k, v.clone(), old.clone());
            self.store
                .put(&wk, &ser_value(&*self.agg, &new, &self.store.name)?, ts)?;
            self.emit(ctx, out, k, &wk, start, end, Some(new), old)?;
        }
        if !accepted {
            ctx.dropped_records += 1;
        }
        Ok(())
    }

    fn session(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Out<K, A>,
        k: &K,
        kb: &[u8],
        v: V,
        w: SessionWindows,
    ) -> Result<()> {
        let ts = ctx.record.timestamp;
        let overlapping: Vec<(WindowKey, Vec<u8>)> = self
            .store
            .fetch_windows(kb, i64::MIN, ts.saturating_add(w.gap))?
            .into_iter()
            .filter(|(wk, _)| wk.end >= ts.saturating_sub(w.gap))
            .collect();
        let start = overlapping
            .iter()
            .map(|(wk, _)| wk.start)
            .min()
            .unwrap_or(ts)
            .min(ts);
        let end = overlapping
            .iter()
            .map(|(wk, _)| wk.end)
            .max()
            .unwrap_or(ts)
            .max(ts);
        if self.kind.close_time(end) <= ctx.stream_time {
            ctx.dropped_records += 1;
            return Ok(());
        }
        let mut acc: Option<A> = None;
        for (wk, bytes) in &overlapping {
            let a = de_store(&*self.agg, bytes, &self.store.name)?;
            acc = Some(match acc {
                Some(prev) => (self.merge)(k, prev, a),
                None => a,
            });
            let old_key = WindowKey::encode(kb, wk.start, wk.end);
            if wk.start != start || wk.end != end {
                self.store.delete(&old_key, ts)?;
                self.retract(
                    ctx,
                    out,
                    k,
                    &old_key,
                    wk.start,
                    wk.end,
                    a_clone(&acc, &*self.agg, bytes, &self.store.name)?,
                )?;
            }
        }
        let new = (self.add)(k, v, acc);
        let wk = WindowKey::encode(kb, start, end);
        let old = self.get(&wk)?;
        self.store
            .put(&wk, &ser_value(&*self.agg, &new, &self.store.name)?, ts)?;
        self.emit(ctx, out, k, &wk, start, end, Some(new), old)
    }

    fn sliding(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Out<K, A>,
        k: &K,
        kb: &[u8],
        v: V,
        w: SlidingWindows,
    ) -> Result<()> {
        let ts = ctx.record.timestamp;
        let d = w.difference;
        if ts
            .saturating_add(d)
            .saturating_add(1)
            .saturating_add(w.grace)
            <= ctx.stream_time
        {
            ctx.dropped_records += 1;
            return Ok(());
        }
        let records = self
            .records
            .as_ref()
            .expect("sliding windows keep their records");
        records.put(
            &WindowKey::encode(kb, ts, record_seq(ctx)),
            &ser_value(&*self.value_in, &v, &records.name)?,
            ts,
        )?;
        let near: Vec<(i64, Vec<u8>)> = records
            .fetch_windows(
                kb,
                ts.saturating_sub(2 * d + 1),
                ts.saturating_add(2 * d + 1),
            )?
            .into_iter()
            .map(|(wk, b)| (wk.start, b))
            .collect();
        let mut starts = std::collections::BTreeSet::new();
        starts.insert(ts - d);
        if near.iter().any(|(t, _)| *t > ts && *t <= ts + 1 + d) {
            starts.insert(ts + 1);
        }
        for (t, _) in &near {
            if *t >= ts && *t <= ts + d {
                starts.insert(t - d);
            }
            if *t < ts && *t + 1 + d >= ts {
                starts.insert(t + 1);
            }
        }
        for start in starts {
            let end = start + d;
            if self.kind.close_time(end) <= ctx.stream_time || start < 0 && end < 0 {
                continue;
            }
            let mut acc: Option<A> = None;
            for (t, bytes) in &near {
                if *t >= start && *t <= end {
                    let value = de_store(&*self.value_in, bytes, &records.name)?;
                    acc = Some((self.add)(k, value, acc));
                }
            }
            let Some(new) = acc else { continue };
            let wk = WindowKey::encode(kb, start, end);
            let old = self.get(&wk)?;
            self.store
                .put(&wk, &ser_value(&*self.agg, &new, &self.store.name)?, ts)?;
            self.emit(ctx, out, k, &wk, start, end, Some(new), old)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Out<K, A>,
        k: &K,
        wk: &[u8],
        start: i64,
        end: i64,
        new: Option<A>,
        old: Option<A>,
    ) -> Result<()> {
        match &self.suppress {
            None => out.forward(
                ctx,
                Windowed {
                    key: k.clone(),
                    start,
                    end,
                },
                Change { new, old },
            ),
            Some(buffer) => {
                let mut key = enc_time(self.kind.close_time(end)).to_vec();
                key.extend_from_slice(wk);
                match new {
                    Some(new) => {
                        let mut value = ctx.record.timestamp.to_be_bytes().to_vec();
                        value.extend_from_slice(&ser_value(&*self.agg, &new, &buffer.name)?);
                        buffer.put(&key, &value, ctx.record.timestamp)
                    }
                    None => buffer.delete(&key, ctx.record.timestamp),
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn retract(
        &self,
        ctx: &mut TaskCtx,
        out: &mut Out<K, A>,
        k: &K,
        wk: &[u8],
        start: i64,
        end: i64,
        old: A,
    ) -> Result<()> {
        if self.suppress.is_some() {
            // Never emitted: just forget it.
            self.emit(ctx, out, k, wk, start, end, None, None)
        } else {
            self.emit(ctx, out, k, wk, start, end, None, Some(old))
        }
    }

    /// Emit-final: forwards (and forgets) every buffered window that closed.
    fn flush_closed(&self, ctx: &mut TaskCtx, out: &mut Out<K, A>) -> Result<()> {
        let Some(buffer) = &self.suppress else {
            return Ok(());
        };
        let closed = buffer.range(&[], Some(&enc_time(ctx.stream_time.saturating_add(1))))?;
        for (key, value) in closed {
            let _close = dec_time(&key[..8]);
            let wk = WindowKey::decode(&key[8..])
                .ok_or_else(|| crate::StreamsError::store(&buffer.name, "bad buffer key"))?;
            let k = de_store(&*self.key, &wk.key, &buffer.name)?;
            let ts = i64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
            let agg = de_store(&*self.agg, &value[8..], &buffer.name)?;
            buffer.delete(&key, ts)?;
            let saved = ctx.record.timestamp;
            ctx.record.timestamp = ts;
            let r = out.forward(
                ctx,
                Windowed {
                    key: k,
                    start: wk.start,
                    end: wk.end,
                },
                Change {
                    new: Some(agg),
                    old: None,
                },
            );
            ctx.record.timestamp = saved;
            r?;
        }
        Ok(())
    }

    /// Deletes windows (and sliding-window records) past retention, at most
    /// once per retention period of stream time.
    fn cleanup(&mut self, ctx: &TaskCtx) -> Result<()> {
        let retention = self.kind.retention();
        let horizon = ctx.stream_time.saturating_sub(retention);
        if horizon <= self.next_cleanup {
            return Ok(());
        }
        if self.next_cleanup == i64::MIN {
            self.next_cleanup = horizon + retention / 2;
            return Ok(());
        }
        self.next_cleanup = horizon + retention / 2;
        for store in std::iter::once(&self.store).chain(self.records.as_ref()) {
            for (key, _) in store.range(&[], None)? {
                if WindowKey::decode(&key).is_some_and(|wk| wk.start < horizon) {
                    store.delete(&key, ctx.record.timestamp)?;
                }
            }
        }
        Ok(())
    }
}

fn a_clone<A: 'static>(
    _acc: &Option<A>,
    serde: &dyn crate::Serde<A>,
    bytes: &[u8],
    store: &str,
) -> Result<A> {
    de_store(serde, bytes, store)
}
