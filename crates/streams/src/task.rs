//! Tasks: the per-partition instances of a sub-topology's processors, with
//! their stores, stream time and punctuation schedules. The test driver and
//! the runtime drive the same `Task`.

use crate::error::{Result, StreamsError};
use crate::processor::PunctuationType;
use crate::record::{RecordMeta, TaskId};
use crate::store::backend::StoreProvider;
use crate::store::{Collector, Store};
use crate::topology::Topology;
use parking_lot::Mutex;
use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

/// What a processor sees of its task while it processes a record.
pub(crate) struct TaskCtx {
    pub app_id: Arc<str>,
    pub task: TaskId,
    pub record: RecordMeta,
    /// The largest timestamp processed by this task (-1 before the first).
    pub stream_time: i64,
    pub wall_clock: i64,
    pub collector: Arc<dyn Collector>,
    pub stores: HashMap<String, Arc<Store>>,
    pub schedules: Vec<Schedule>,
    /// Records skipped: late for their window, invalid timestamp, null key
    /// where one is needed (Kafka Streams' `dropped-records`).
    pub dropped_records: u64,
}

impl TaskCtx {
    pub fn store(&self, name: &str) -> Result<Arc<Store>> {
        self.stores.get(name).cloned().ok_or_else(|| {
            StreamsError::Topology(format!(
                "task {} has no store {name} (is it connected to this processor?)",
                self.task
            ))
        })
    }
}

pub(crate) trait Punctuate: Send {
    fn punctuate(&mut self, ctx: &mut TaskCtx, kind: PunctuationType, timestamp: i64)
        -> Result<()>;
}

pub(crate) struct Schedule {
    pub interval: i64,
    pub kind: PunctuationType,
    pub next: i64,
    pub target: Arc<Mutex<dyn Punctuate>>,
}

/// A processor of `(K, V)` records.
pub(crate) trait Node<K, V>: Send {
    fn process(&mut self, ctx: &mut TaskCtx, key: K, value: V) -> Result<()>;
}

/// A node's children: each gets every record (a clone for all but the last).
pub(crate) struct Fanout<K, V> {
    pub children: Vec<Box<dyn Node<K, V>>>,
}

impl<K: Clone, V: Clone> Fanout<K, V> {
    pub fn forward(&mut self, ctx: &mut TaskCtx, key: K, value: V) -> Result<()> {
        let n = self.children.len();
        if n == 0 {
            return Ok(());
        }
        for child in &mut self.children[..n - 1] {
            child.process(ctx, key.clone(), value.clone())?;
        }
        self.children[n - 1].process(ctx, key, value)
    }
}

/// The entry of a source topic into a task: deserializes and forwards.
pub(crate) trait RawSource: Send {
    fn process(
        &mut self,
        ctx: &mut TaskCtx,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<()>;
}

/// Instantiation state while a task's processors are built.
pub(crate) struct Inst<'a> {
    pub ctx: &'a mut TaskCtx,
    /// Shared instances (merged streams), by stream node id.
    pub shared: HashMap<usize, Box<dyn Any + Send>>,
}

pub(crate) type Factory<K, V> =
    Arc<dyn Fn(&mut Inst<'_>) -> Result<Box<dyn Node<K, V>>> + Send + Sync>;
pub(crate) type ChildList<K, V> = Arc<Mutex<Vec<Factory<K, V>>>>;

pub(crate) fn instantiate<K, V>(
    inst: &mut Inst<'_>,
    children: &ChildList<K, V>,
) -> Result<Fanout<K, V>> {
    let factories: Vec<Factory<K, V>> = children.lock().clone();
    let mut built = Vec::with_capacity(factories.len());
    for f in factories {
        built.push(f(inst)?);
    }
    Ok(Fanout { children: built })
}

/// One running task.
pub(crate) struct Task {
    pub id: TaskId,
    pub ctx: TaskCtx,
    /// By resolved source topic name.
    pub sources: HashMap<String, Box<dyn RawSource>>,
    /// Next offset to commit, by topic and partition.
    pub consumed: HashMap<Arc<str>, HashMap<i32, i64>>,
    /// Source topic names, shared by every record's metadata.
    topic_names: HashMap<String, Arc<str>>,
}

impl Task {
    /// Opens the task's stores and builds its processors.
    pub fn create(
        topology: &Topology,
        app_id: &Arc<str>,
        id: TaskId,
        provider: &dyn StoreProvider,
        collector: Arc<dyn Collector>,
        wall_clock: i64,
    ) -> Result<Task> {
        let sub = topology.subtopology(id.subtopology)?;
        let mut stores = HashMap::new();
        for spec in sub.stores.iter().map(|i| &topology.stores[*i]) {
            let backend = provider.open(id, &spec.name)?;
            let changelog = spec
                .logged
                .then(|| (topology.changelog_topic(app_id, &spec.name), id.partition));
            stores.insert(
                spec.name.clone(),
                Arc::new(Store {
                    name: spec.name.clone(),
                    backend,
                    changelog,
                    collector: collector.clone(),
                }),
            );
        }
        let mut ctx = TaskCtx {
            app_id: app_id.clone(),
            task: id,
            record: RecordMeta::default(),
            stream_time: -1,
            wall_clock,
            collector,
            stores,
            schedules: Vec::new(),
            dropped_records: 0,
        };
        let mut sources = HashMap::new();
        {
            let mut inst = Inst {
                ctx: &mut ctx,
                shared: HashMap::new(),
            };
            for spec in sub.sources.iter().map(|i| &topology.sources[*i]) {
                let topic = spec.topic.resolve(app_id);
                sources.insert(topic, (spec.factory)(&mut inst)?);
            }
        }
        let topic_names = sources
            .keys()
            .map(|t: &String| (t.clone(), Arc::from(t.as_str())))
            .collect();
        Ok(Task {
            id,
            ctx,
            sources,
            consumed: HashMap::new(),
            topic_names,
        })
    }

    pub fn process(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<()> {
        let source = self.sources.get_mut(topic).ok_or_else(|| {
            StreamsError::Topology(format!("task {} does not read topic {topic}", self.id))
        })?;
        let name = self.topic_names[topic].clone();
        self.ctx.record = RecordMeta {
            topic: name.clone(),
            partition,
            offset,
            timestamp,
        };
        source.process(&mut self.ctx, key, value)?;
        self.consumed
            .entry(name)
            .or_default()
            .insert(partition, offset + 1);
        self.punctuate(PunctuationType::StreamTime, self.ctx.stream_time)
    }

    pub fn advance_wall_clock(&mut self, now: i64) -> Result<()> {
        self.ctx.wall_clock = now;
        self.punctuate(PunctuationType::WallClockTime, now)
    }

    fn punctuate(&mut self, kind: PunctuationType, now: i64) -> Result<()> {
        for i in 0..self.ctx.schedules.len() {
            let (due, target) = {
                let s = &mut self.ctx.schedules[i];
                if s.kind != kind || now < s.next {
                    continue;
                }
                // The next punctuation is the first multiple of the interval
                // after now, counted from the first one.
                let missed = (now - s.next) / s.interval;
                s.next += (missed + 1) * s.interval;
                (now, s.target.clone())
            };
            let saved = self.ctx.record.clone();
            self.ctx.record.timestamp = due;
            let result = target.lock().punctuate(&mut self.ctx, kind, due);
            self.ctx.record = saved;
            result?;
        }
        Ok(())
    }
}
