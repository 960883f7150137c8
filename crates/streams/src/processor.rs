//! The Processor API: a custom [`Processor`] in the middle of a DSL
//! topology, with access to state stores, record metadata, stream time, and
//! punctuation (periodic callbacks in stream time or wall-clock time).

use crate::dsl::{Data, KStream};
use crate::error::Result;
use crate::record::TaskId;
use crate::serdes::SerdeRef;
use crate::store::{Store, StoreKind};
use crate::task::{instantiate, Fanout, Inst, Node, Punctuate, Schedule, TaskCtx};
use crate::topology::{QueryAdapter, StoreSpec};
use crate::StreamsBuilder;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// When a punctuation fires: as stream time (the largest record timestamp
/// the task has seen) passes each interval, or as the wall clock does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    StreamTime,
    WallClockTime,
}

/// A custom processor from `(K, V)` to `(K2, V2)` records.
pub trait Processor<K, V, K2, V2>: Send {
    /// Called once per task before the first record; schedule punctuations
    /// here.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, K2, V2>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, K2, V2>, key: K, value: V) -> Result<()>;
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, K2, V2>,
        _kind: PunctuationType,
        _timestamp: i64,
    ) -> Result<()> {
        Ok(())
    }
}

/// What a [`Processor`] can do.
pub struct ProcessorContext<'a, K2, V2> {
    task: &'a mut TaskCtx,
    out: &'a mut Fanout<K2, V2>,
    schedules: Option<&'a mut Vec<(i64, PunctuationType)>>,
}

impl<K2: Data, V2: Data> ProcessorContext<'_, K2, V2> {
    /// Sends a record to the processor's children (with the current
    /// record's timestamp, or the punctuation time in `punctuate`).
    pub fn forward(&mut self, key: K2, value: V2) -> Result<()> {
        self.out.forward(self.task, key, value)
    }
    /// Sends a record with a timestamp of its own.
    pub fn forward_at(&mut self, key: K2, value: V2, timestamp: i64) -> Result<()> {
        let saved = self.task.record.timestamp;
        self.task.record.timestamp = timestamp;
        let r = self.out.forward(self.task, key, value);
        self.task.record.timestamp = saved;
        r
    }
    pub fn timestamp(&self) -> i64 {
        self.task.record.timestamp
    }
    pub fn topic(&self) -> &str {
        &self.task.record.topic
    }
    pub fn partition(&self) -> i32 {
        self.task.record.partition
    }
    pub fn offset(&self) -> i64 {
        self.task.record.offset
    }
    pub fn stream_time(&self) -> i64 {
        self.task.stream_time
    }
    pub fn wall_clock_time(&self) -> i64 {
        self.task.wall_clock
    }
    pub fn task_id(&self) -> TaskId {
        self.task.task
    }
    pub fn application_id(&self) -> &str {
        &self.task.app_id
    }
    /// Schedules a punctuation (only from `init`).
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        let ms = i64::try_from(interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        match &mut self.schedules {
            Some(s) => s.push((ms, kind)),
            None => tracing::warn!("ProcessorContext::schedule outside init is ignored"),
        }
    }
    /// A key-value store connected to this processor.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<KeyValueStore<K, V>> {
        Ok(KeyValueStore {
            store: self.task.store(name)?,
            key,
            value,
            timestamp: self.task.record.timestamp,
        })
    }
}

/// Read-write access to a key-value store from a processor; writes go to
/// the changelog too.
pub struct KeyValueStore<K, V> {
    store: Arc<Store>,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
    timestamp: i64,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    pub fn get(&self, key: &K) -> Result<Option<V>> {
        let kb = crate::dsl::ser_key(&*self.key, key, &self.store.name)?;
        match self.store.get(&kb)? {
            Some(b) => Ok(Some(crate::dsl::de_store(
                &*self.value,
                &b,
                &self.store.name,
            )?)),
            None => Ok(None),
        }
    }
    pub fn put(&self, key: &K, value: &V) -> Result<()> {
        let kb = crate::dsl::ser_key(&*self.key, key, &self.store.name)?;
        let vb = crate::dsl::ser_value(&*self.value, value, &self.store.name)?;
        self.store.put(&kb, &vb, self.timestamp)
    }
    pub fn delete(&self, key: &K) -> Result<()> {
        let kb = crate::dsl::ser_key(&*self.key, key, &self.store.name)?;
        self.store.delete(&kb, self.timestamp)
    }
    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>> {
        self.store
            .range(&[], None)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    crate::dsl::de_store(&*self.key, &k, &self.store.name)?,
                    crate::dsl::de_store(&*self.value, &v, &self.store.name)?,
                ))
            })
            .collect()
    }
}

impl StreamsBuilder {
    /// Adds a key-value store for processors (connect it by naming it in
    /// [`KStream::process`]). Logged to `<application.id>-<name>-changelog`.
    pub fn add_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) {
        self.graph.lock().add_store(StoreSpec {
            name: name.to_string(),
            kind: StoreKind::KeyValue,
            logged: true,
            query: Some(QueryAdapter::new(key, value)),
        });
    }
}

struct ProcInner<K, V, K2, V2> {
    user: Box<dyn Processor<K, V, K2, V2>>,
    out: Fanout<K2, V2>,
}

impl<K: Data, V: Data, K2: Data, V2: Data> Punctuate for ProcInner<K, V, K2, V2> {
    fn punctuate(
        &mut self,
        ctx: &mut TaskCtx,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<()> {
        let ProcInner { user, out } = self;
        let mut pctx = ProcessorContext {
            task: ctx,
            out,
            schedules: None,
        };
        user.punctuate(&mut pctx, kind, timestamp)
    }
}

struct ProcNode<K, V, K2, V2> {
    inner: Arc<Mutex<ProcInner<K, V, K2, V2>>>,
}

impl<K: Data, V: Data, K2: Data, V2: Data> Node<K, V> for ProcNode<K, V, K2, V2> {
    fn process(&mut self, ctx: &mut TaskCtx, key: K, value: V) -> Result<()> {
        let mut guard = self.inner.lock();
        let ProcInner { user, out } = &mut *guard;
        let mut pctx = ProcessorContext {
            task: ctx,
            out,
            schedules: None,
        };
        user.process(&mut pctx, key, value)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Runs a custom processor (a new instance per task, from `supplier`)
    /// connected to the named stores.
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2> + 'static,
    {
        let mut g = self.graph.lock();
        let name = g.next_name("KSTREAM-PROCESSOR");
        let node = g.add_node(
            name,
            vec![self.node],
            stores.iter().map(|s| s.to_string()).collect(),
        );
        drop(g);
        let children: crate::task::ChildList<K2, V2> = Default::default();
        let c2 = children.clone();
        self.children
            .lock()
            .push(Arc::new(move |inst: &mut Inst<'_>| {
                let mut out = instantiate(inst, &c2)?;
                let mut user: Box<dyn Processor<K, V, K2, V2>> = Box::new(supplier());
                let mut requested = Vec::new();
                {
                    let mut pctx = ProcessorContext {
                        task: inst.ctx,
                        out: &mut out,
                        schedules: Some(&mut requested),
                    };
                    user.init(&mut pctx)?;
                }
                let inner = Arc::new(Mutex::new(ProcInner { user, out }));
                for (interval, kind) in requested {
                    let next = match kind {
                        PunctuationType::StreamTime => 0,
                        PunctuationType::WallClockTime => inst.ctx.wall_clock + interval,
                    };
                    inst.ctx.schedules.push(Schedule {
                        interval,
                        kind,
                        next,
                        target: inner.clone(),
                    });
                }
                Ok(Box::new(ProcNode { inner }) as Box<dyn Node<K, V>>)
            }));
        KStream::new(self.graph.clone(), node, children, true)
    }
}
