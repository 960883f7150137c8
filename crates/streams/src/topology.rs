//! The processor graph as the builder records it, and the [`Topology`] it
//! becomes: sub-topologies (connected parts of the graph, split at
//! repartition topics), their source topics and state stores.

use crate::error::{Result, StreamsError};
use crate::store::StoreKind;
use crate::task::{Inst, RawSource};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

/// A topic named by the user, or an internal one named after the
/// application id (`<application.id>-<suffix>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicRef {
    External(String),
    Internal(String),
}

impl TopicRef {
    pub fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicRef::External(t) => t.clone(),
            TopicRef::Internal(suffix) => format!("{app_id}-{suffix}"),
        }
    }
}

pub(crate) struct NodeInfo {
    pub name: String,
    pub parents: Vec<usize>,
    pub stores: Vec<String>,
    /// Topics written (sinks), for `describe`.
    pub sink: Option<TopicRef>,
}

pub(crate) type SourceFactory =
    Arc<dyn Fn(&mut Inst<'_>) -> Result<Box<dyn RawSource>> + Send + Sync>;

pub(crate) struct SourceSpec {
    pub topic: TopicRef,
    pub node: usize,
    pub factory: SourceFactory,
}

type ParseFn = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;
type RenderFn = Arc<dyn Fn(&[u8]) -> Json + Send + Sync>;

/// How the interactive-query HTTP endpoint reads a store's bytes.
#[derive(Clone)]
pub(crate) struct QueryAdapter {
    pub key_parse_text: ParseFn,
    pub key_to_json: RenderFn,
    pub value_to_json: RenderFn,
}

impl QueryAdapter {
    pub fn new<K: 'static, V: 'static>(
        key: crate::serdes::SerdeRef<K>,
        value: crate::serdes::SerdeRef<V>,
    ) -> QueryAdapter {
        let k1 = key.clone();
        QueryAdapter {
            key_parse_text: Arc::new(move |text| {
                let k = k1.parse_text(text)?;
                k1.serialize(&k).ok()
            }),
            key_to_json: Arc::new(move |bytes| match key.deserialize(bytes) {
                Ok(k) => key.to_json(&k),
                Err(_) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
            }),
            value_to_json: Arc::new(move |bytes| match value.deserialize(bytes) {
                Ok(v) => value.to_json(&v),
                Err(e) => Json::String(format!("<{e}>")),
            }),
        }
    }
}

pub(crate) struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    pub logged: bool,
    /// Internal stores (join buffers, suppression buffers, sliding-window
    /// records) are not offered to interactive queries.
    pub query: Option<QueryAdapter>,
}

pub(crate) struct RepartitionSpec {
    /// `<name>-repartition`
    pub suffix: String,
    pub partitions: Option<i32>,
    /// The sink node that writes it.
    pub writer: usize,
}

/// Everything the builder recorded.
#[derive(Default)]
pub(crate) struct Graph {
    pub counter: usize,
    pub nodes: Vec<NodeInfo>,
    pub sources: Vec<SourceSpec>,
    pub stores: Vec<StoreSpec>,
    pub repartitions: Vec<RepartitionSpec>,
    /// Mistakes found while building, reported by `build`.
    pub errors: Vec<String>,
}

impl Graph {
    /// The next generated name, Kafka Streams style: `PREFIX-0000000007`.
    pub fn next_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        name
    }

    pub fn add_node(&mut self, name: String, parents: Vec<usize>, stores: Vec<String>) -> usize {
        self.nodes.push(NodeInfo {
            name,
            parents,
            stores,
            sink: None,
        });
        self.nodes.len() - 1
    }

    pub fn add_store(&mut self, spec: StoreSpec) {
        if self.stores.iter().any(|s| s.name == spec.name) {
            self.errors
                .push(format!("a store named {} exists already", spec.name));
            return;
        }
        self.stores.push(spec);
    }
}

pub(crate) struct SubTopology {
    pub sources: Vec<usize>,
    pub stores: Vec<usize>,
    pub nodes: Vec<usize>,
}

/// A built topology: hand it to [`KafkaStreams`](crate::KafkaStreams) or
/// the [`TopologyTestDriver`](crate::TopologyTestDriver).
pub struct Topology {
    pub(crate) nodes: Vec<NodeInfo>,
    pub(crate) sources: Vec<SourceSpec>,
    pub(crate) stores: Vec<StoreSpec>,
    pub(crate) repartitions: Vec<RepartitionSpec>,
    pub(crate) subtopologies: Vec<SubTopology>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Topology {
    pub(crate) fn from_graph(graph: Graph) -> Result<Topology> {
        if !graph.errors.is_empty() {
            return Err(StreamsError::Topology(graph.errors.join("; ")));
        }
        if graph.sources.is_empty() {
            return Err(StreamsError::Topology("the topology has no source".into()));
        }
        let n = graph.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(parent, a), find(parent, b));
            if ra != rb {
                parent[ra.max(rb)] = ra.min(rb);
            }
        };
        let mut store_owner: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for p in &node.parents {
                union(&mut parent, i, *p);
            }
            for s in &node.stores {
                match store_owner.get(s.as_str()) {
                    Some(o) => union(&mut parent, i, *o),
                    None => {
                        store_owner.insert(s, i);
                    }
                }
            }
        }
        // Number sub-topologies by their first node.
        let mut ids: BTreeMap<usize, usize> = BTreeMap::new();
        let mut node_subtopology = vec![0; n];
        for (i, slot) in node_subtopology.iter_mut().enumerate() {
            let root = find(&mut parent, i);
            let next = ids.len();
            *slot = *ids.entry(root).or_insert(next);
        }
        let mut subtopologies: Vec<SubTopology> = (0..ids.len())
            .map(|_| SubTopology {
                sources: Vec::new(),
                stores: Vec::new(),
                nodes: Vec::new(),
            })
            .collect();
        for (i, s) in node_subtopology.iter().enumerate() {
            subtopologies[*s].nodes.push(i);
        }
        for (i, source) in graph.sources.iter().enumerate() {
            subtopologies[node_subtopology[source.node]].sources.push(i);
        }
        for (i, store) in graph.stores.iter().enumerate() {
            let owner = store_owner.get(store.name.as_str()).ok_or_else(|| {
                StreamsError::Topology(format!("store {} is used by no processor", store.name))
            })?;
            subtopologies[node_subtopology[*owner]].stores.push(i);
        }
        // A sub-topology without a source (a processor fed by nothing) has
        // nothing to run.
        subtopologies.retain(|s| !s.sources.is_empty());
        Ok(Topology {
            nodes: graph.nodes,
            sources: graph.sources,
            stores: graph.stores,
            repartitions: graph.repartitions,
            subtopologies,
        })
    }

    pub(crate) fn subtopology(&self, id: usize) -> Result<&SubTopology> {
        self.subtopologies
            .get(id)
            .ok_or_else(|| StreamsError::Topology(format!("no sub-topology {id}")))
    }

    pub(crate) fn changelog_topic(&self, app_id: &str, store: &str) -> String {
        format!("{app_id}-{store}-changelog")
    }

    /// Source topics of a sub-topology, resolved.
    pub(crate) fn source_topics(&self, sub: usize, app_id: &str) -> Vec<String> {
        self.subtopologies[sub]
            .sources
            .iter()
            .map(|i| self.sources[*i].topic.resolve(app_id))
            .collect()
    }

    /// The sub-topology reading a topic.
    pub(crate) fn subtopology_of_topic(&self, topic: &str, app_id: &str) -> Option<usize> {
        (0..self.subtopologies.len())
            .find(|s| self.source_topics(*s, app_id).iter().any(|t| t == topic))
    }

    /// The sub-topology (index into `subtopologies`) of a node.
    pub(crate) fn subtopology_of_node(&self, node: usize) -> Option<usize> {
        (0..self.subtopologies.len()).find(|s| self.subtopologies[*s].nodes.contains(&node))
    }

    /// Names of the state stores, in the order they were added.
    pub fn store_names(&self) -> Vec<String> {
        self.stores.iter().map(|s| s.name.clone()).collect()
    }

    /// A description in the spirit of Kafka Streams' `Topology#describe`.
    pub fn describe(&self) -> String {
        let mut out = String::from("Topologies:\n");
        for (id, sub) in self.subtopologies.iter().enumerate() {
            let _ = writeln!(out, "   Sub-topology: {id}");
            for i in &sub.nodes {
                let node = &self.nodes[*i];
                let topics: Vec<String> = self
                    .sources
                    .iter()
                    .filter(|s| s.node == *i)
                    .map(|s| s.topic.resolve("<application.id>"))
                    .collect();
                let _ = write!(out, "    {}", node.name);
                if !topics.is_empty() {
                    let _ = write!(out, " (topics: [{}])", topics.join(", "));
                }
                if let Some(sink) = &node.sink {
                    let _ = write!(out, " (topic: {})", sink.resolve("<application.id>"));
                }
                if !node.stores.is_empty() {
                    let _ = write!(out, " (stores: [{}])", node.stores.join(", "));
                }
                let children: Vec<&str> = self
                    .nodes
                    .iter()
                    .filter(|c| c.parents.contains(i))
                    .map(|c| c.name.as_str())
                    .collect();
                if !children.is_empty() {
                    let _ = write!(out, " --> {}", children.join(", "));
                }
                out.push('\n');
            }
        }
        out
    }
}
