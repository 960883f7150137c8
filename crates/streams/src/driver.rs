//! [`TopologyTestDriver`]: runs a topology without a broker, as Kafka's
//! TopologyTestDriver does: every input topic has one partition, records
//! are processed one at a time to completion, records written to a topic
//! the topology reads (repartition topics) are processed right after, and
//! everything written (outputs and changelogs) can be read back.
//!
//! ```
//! use strom_streams::{Consumed, Produced, Serdes, StreamsBuilder, TopologyTestDriver};
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("in", Consumed::with(Serdes::string(), Serdes::i64()))
//!     .filter(|_, v| *v > 10)
//!     .to("out", Produced::with(Serdes::string(), Serdes::i64()));
//! let driver = TopologyTestDriver::new(builder.build().unwrap()).unwrap();
//! let input = driver.input_topic("in", Serdes::string(), Serdes::i64());
//! let output = driver.output_topic("out", Serdes::string(), Serdes::i64());
//! input.pipe_input("a".into(), 5).unwrap();
//! input.pipe_input("b".into(), 50).unwrap();
//! assert_eq!(output.read_key_values_to_vec(), vec![("b".to_string(), 50)]);
//! ```

use crate::error::{Result, StreamsError};
use crate::query::{
    kv_view, window_view, ReadOnlyKeyValueStore, ReadOnlyWindowStore, StoreRegistry,
};
use crate::record::TaskId;
use crate::serdes::{de, ser, SerdeRef};
use crate::store::backend::{MemoryProvider, StoreProvider};
use crate::store::Collector;
use crate::task::Task;
use crate::topology::Topology;
use parking_lot::Mutex;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// A record as written to a topic, bytes.
#[derive(Debug, Clone)]
struct RawRecord {
    topic: String,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    timestamp: i64,
}

#[derive(Default)]
struct CapturingCollector {
    sent: Mutex<Vec<RawRecord>>,
}

impl Collector for CapturingCollector {
    fn send(
        &self,
        topic: &str,
        _partition: Option<i32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<()> {
        self.sent.lock().push(RawRecord {
            topic: topic.to_string(),
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp,
        });
        Ok(())
    }
}

struct Inner {
    topology: Topology,
    app_id: Arc<str>,
    tasks: BTreeMap<usize, Task>,
    collector: Arc<CapturingCollector>,
    provider: MemoryProvider,
    registry: StoreRegistry,
    wall_clock: i64,
    outputs: HashMap<String, VecDeque<RawRecord>>,
    next_offset: HashMap<String, i64>,
    /// The sub-topology reading each topic.
    topic_sub: HashMap<String, usize>,
}

impl Inner {
    fn pipe(&mut self, record: RawRecord) -> Result<()> {
        let mut queue = VecDeque::from([record]);
        while let Some(r) = queue.pop_front() {
            let Some(sub) = self.topic_sub.get(&r.topic).copied() else {
                return Err(StreamsError::Topology(format!(
                    "the topology does not read topic {}",
                    r.topic
                )));
            };
            let offset = self.next_offset.entry(r.topic.clone()).or_insert(0);
            let this = *offset;
            *offset += 1;
            let task = self.tasks.get_mut(&sub).expect("a task per sub-topology");
            task.process(
                &r.topic,
                0,
                this,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
            )?;
            self.drain(&mut queue);
        }
        Ok(())
    }

    /// Moves what the topology wrote to the outputs, and queues records for
    /// topics it reads.
    fn drain(&mut self, queue: &mut VecDeque<RawRecord>) {
        let sent = std::mem::take(&mut *self.collector.sent.lock());
        for r in sent {
            if self
                .topology
                .subtopology_of_topic(&r.topic, &self.app_id)
                .is_some()
            {
                queue.push_back(r.clone());
            }
            self.outputs
                .entry(r.topic.clone())
                .or_default()
                .push_back(r);
        }
    }
}

/// Runs a topology on in-memory topics and stores. Not `Send`: one test,
/// one thread.
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl TopologyTestDriver {
    /// Application id `test-driver`, wall clock starting at 0.
    pub fn new(topology: Topology) -> Result<Self> {
        Self::with_config(topology, "test-driver", 0)
    }

    pub fn with_config(
        topology: Topology,
        application_id: &str,
        wall_clock_ms: i64,
    ) -> Result<Self> {
        let app_id: Arc<str> = Arc::from(application_id);
        let collector = Arc::new(CapturingCollector::default());
        let provider = MemoryProvider::default();
        let registry = StoreRegistry::default();
        for spec in &topology.stores {
            if let Some(adapter) = &spec.query {
                registry.adapters.write().insert(
                    spec.name.clone(),
                    (
                        adapter.clone(),
                        matches!(spec.kind, crate::store::StoreKind::Window { .. }),
                    ),
                );
            }
        }
        let mut tasks = BTreeMap::new();
        for sub in 0..topology.subtopologies.len() {
            let id = TaskId {
                subtopology: sub,
                partition: 0,
            };
            let task = Task::create(
                &topology,
                &app_id,
                id,
                &provider,
                collector.clone(),
                wall_clock_ms,
            )?;
            for (name, store) in &task.ctx.stores {
                registry.register(name, id, store.backend.clone());
            }
            tasks.insert(sub, task);
        }
        let topic_sub = (0..topology.subtopologies.len())
            .flat_map(|s| {
                topology
                    .source_topics(s, &app_id)
                    .into_iter()
                    .map(move |t| (t, s))
            })
            .collect();
        let mut inner = Inner {
            topic_sub,
            topology,
            app_id,
            tasks,
            collector,
            provider,
            registry,
            wall_clock: wall_clock_ms,
            outputs: HashMap::new(),
            next_offset: HashMap::new(),
        };
        // Whatever init() forwarded.
        let mut queue = VecDeque::new();
        inner.drain(&mut queue);
        for r in queue {
            inner.pipe(r)?;
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    pub fn input_topic<K, V>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key,
            value,
        }
    }

    pub fn output_topic<K, V>(
        &self,
        topic: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            key,
            value,
        }
    }

    /// Advances the wall clock, running due wall-clock punctuations.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        inner.wall_clock += i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let now = inner.wall_clock;
        let subs: Vec<usize> = inner.tasks.keys().copied().collect();
        for sub in subs {
            inner
                .tasks
                .get_mut(&sub)
                .expect("task")
                .advance_wall_clock(now)?;
            let mut queue = VecDeque::new();
            inner.drain(&mut queue);
            for r in queue {
                inner.pipe(r)?;
            }
        }
        Ok(())
    }

    pub fn key_value_store<K, V>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<ReadOnlyKeyValueStore<K, V>> {
        kv_view(&self.inner.borrow().registry, name, key, value)
    }

    pub fn window_store<K, V>(
        &self,
        name: &str,
        key: SerdeRef<K>,
        value: SerdeRef<V>,
    ) -> Result<ReadOnlyWindowStore<K, V>> {
        window_view(&self.inner.borrow().registry, name, key, value)
    }

    /// Records dropped by all tasks (late, invalid timestamps).
    pub fn dropped_records(&self) -> u64 {
        self.inner
            .borrow()
            .tasks
            .values()
            .map(|t| t.ctx.dropped_records)
            .sum()
    }

    /// Names of every topic written so far (outputs, repartition and
    /// changelog topics).
    pub fn written_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.inner.borrow().outputs.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// Closes and re-creates every task from its changelog only (the
    /// stores are wiped first): what a restart or a task move does.
    pub fn restart_from_changelogs(&self) -> Result<()> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        for (sub, task) in std::mem::take(&mut inner.tasks) {
            let id = task.id;
            let stores: Vec<(String, Option<(String, i32)>)> = task
                .ctx
                .stores
                .values()
                .map(|s| (s.name.clone(), s.changelog.clone()))
                .collect();
            drop(task);
            inner.registry.unregister_task(id);
            for (name, changelog) in &stores {
                inner.provider.wipe(id, name)?;
                let backend = inner.provider.open(id, name)?;
                if let Some((topic, _)) = changelog {
                    for r in inner.outputs.get(topic).into_iter().flatten() {
                        let key = r.key.as_deref().unwrap_or_default();
                        match &r.value {
                            Some(v) => backend.put(key, v)?,
                            None => backend.delete(key)?,
                        }
                    }
                }
            }
            let task = Task::create(
                &inner.topology,
                &inner.app_id,
                id,
                &inner.provider,
                inner.collector.clone(),
                inner.wall_clock,
            )?;
            for (name, store) in &task.ctx.stores {
                inner.registry.register(name, id, store.backend.clone());
            }
            inner.tasks.insert(sub, task);
        }
        Ok(())
    }
}

/// Typed input to one topic.
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// A record with the driver's wall-clock time as timestamp.
    pub fn pipe_input(&self, key: K, value: V) -> Result<()> {
        let ts = self.inner.borrow().wall_clock;
        self.pipe_input_at(key, value, ts)
    }

    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) -> Result<()> {
        let fail = |source| StreamsError::Serialize {
            what: format!("test input {}", self.topic),
            source,
        };
        let record = RawRecord {
            topic: self.topic.clone(),
            key: ser(&*self.key, &key).map_err(fail)?,
            value: ser(&*self.value, &value).map_err(fail)?,
            timestamp,
        };
        self.inner.borrow_mut().pipe(record)
    }

    /// Several `(key, value, timestamp)` records.
    pub fn pipe_all(&self, records: impl IntoIterator<Item = (K, V, i64)>) -> Result<()> {
        for (k, v, ts) in records {
            self.pipe_input_at(k, v, ts)?;
        }
        Ok(())
    }
}

/// A record read from an output topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    pub key: K,
    pub value: V,
    pub timestamp: i64,
}

/// Typed reader of one topic's captured records (each read once).
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: SerdeRef<K>,
    value: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next record; panics if it does not decode (a test failure).
    pub fn read_record(&self) -> Option<TestRecord<K, V>> {
        let r = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)?
            .pop_front()?;
        let key = de(&*self.key, r.key.as_deref())
            .unwrap_or_else(|e| panic!("key of a record in {}: {e}", self.topic));
        let value = de(&*self.value, r.value.as_deref())
            .unwrap_or_else(|e| panic!("value of a record in {}: {e}", self.topic));
        Some(TestRecord {
            key,
            value,
            timestamp: r.timestamp,
        })
    }

    pub fn read_key_value(&self) -> Option<(K, V)> {
        self.read_record().map(|r| (r.key, r.value))
    }

    pub fn read_value(&self) -> Option<V> {
        self.read_record().map(|r| r.value)
    }

    pub fn read_records_to_vec(&self) -> Vec<TestRecord<K, V>> {
        std::iter::from_fn(|| self.read_record()).collect()
    }

    pub fn read_key_values_to_vec(&self) -> Vec<(K, V)> {
        std::iter::from_fn(|| self.read_key_value()).collect()
    }

    pub fn read_values_to_vec(&self) -> Vec<V> {
        std::iter::from_fn(|| self.read_value()).collect()
    }

    /// The last value per key.
    pub fn read_key_values_to_map(&self) -> BTreeMap<K, V>
    where
        K: Ord,
    {
        self.read_key_values_to_vec().into_iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .is_none_or(VecDeque::is_empty)
    }

    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, VecDeque::len)
    }
}
