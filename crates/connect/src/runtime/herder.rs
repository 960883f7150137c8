//! The herder: makes what runs on this worker match the config state and
//! the assignment. Standalone, everything is assigned to the one worker;
//! distributed, the group leader's assignment says which connectors and
//! tasks are this worker's. One loop reacts to config changes, assignments,
//! revocations (before a rebalance), restart requests and connectors asking
//! for new task configs.

use crate::distributed::member::{signature, Assignment, Member, MemberEvent};
use crate::runtime::connector_config::ConnectorSettings;
use crate::runtime::store::{
    ConfigRecord, ConfigState, ConfigStore, ConnectorEntry, RestartRequest, State, StatusId,
    TargetState, TaskId,
};
use crate::runtime::task::{trace, TaskHandle, WorkerContext};
use crate::runtime::{sink_task, source_task};
use crate::sdk::config::ConfigMap;
use crate::sdk::{Connector, ConnectorContext, ConnectorType};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Shared by the loop and the REST API.
pub struct Herder {
    pub context: Arc<WorkerContext>,
    pub configs: Arc<dyn ConfigStore>,
    pub distributed: bool,
    /// The current assignment (distributed mode).
    pub assignment: Mutex<Option<Assignment>>,
    member: Mutex<Option<Member>>,
    reconfigure: mpsc::UnboundedSender<String>,
    shutdown: watch::Sender<bool>,
    loop_done: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) cluster_id: tokio::sync::OnceCell<String>,
}

struct RunningConnector {
    connector: Box<dyn Connector>,
    config: ConfigMap,
    target: TargetState,
}

struct Engine {
    herder: Arc<Herder>,
    connectors: HashMap<String, RunningConnector>,
    tasks: HashMap<TaskId, TaskHandle>,
    /// Connectors whose STOPPED status has been written.
    stopped: BTreeSet<String>,
    rejoin_requested: bool,
}

impl Herder {
    /// Starts the herder loop; `member_events` comes from the group member
    /// in distributed mode (then call [`Herder::set_member`]).
    pub fn start(
        context: Arc<WorkerContext>,
        configs: Arc<dyn ConfigStore>,
        member_events: Option<mpsc::Receiver<MemberEvent>>,
    ) -> Arc<Herder> {
        let (reconfigure, reconfigure_rx) = mpsc::unbounded_channel();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let herder = Arc::new(Herder {
            context,
            configs,
            distributed: member_events.is_some(),
            assignment: Mutex::new(None),
            member: Mutex::new(None),
            reconfigure,
            shutdown,
            loop_done: tokio::sync::Mutex::new(None),
            cluster_id: tokio::sync::OnceCell::new(),
        });
        let engine = Engine {
            herder: herder.clone(),
            connectors: HashMap::new(),
            tasks: HashMap::new(),
            stopped: BTreeSet::new(),
            rejoin_requested: false,
        };
        let handle = tokio::spawn(engine.run(member_events, reconfigure_rx, shutdown_rx));
        *herder.loop_done.try_lock().expect("fresh mutex") = Some(handle);
        herder
    }

    pub fn set_member(&self, member: Member) {
        *self.member.lock() = Some(member);
    }

    /// Leaves the group (distributed), stops every connector and task.
    pub async fn stop(&self) {
        let member = self.member.lock().take();
        if let Some(member) = member {
            member.stop().await;
        }
        let _ = self.shutdown.send(true);
        if let Some(handle) = self.loop_done.lock().await.take() {
            let _ = handle.await;
        }
    }

    /// Whether this worker runs `connector` (standalone: always).
    pub fn owns_connector(&self, connector: &str) -> bool {
        !self.distributed
            || self
                .assignment
                .lock()
                .as_ref()
                .is_some_and(|a| a.connectors.iter().any(|c| c == connector))
    }
}

impl Engine {
    async fn run(
        mut self,
        mut member_events: Option<mpsc::Receiver<MemberEvent>>,
        mut reconfigure: mpsc::UnboundedReceiver<String>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut changes = self.herder.configs.changes();
        let mut restarts = self.herder.configs.restarts();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        self.reconcile().await;
        loop {
            let member_event = async {
                match member_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changes.changed() => self.reconcile().await,
                request = restarts.recv() => {
                    if let Ok(request) = request {
                        self.restart(request).await;
                    }
                }
                event = member_event => match event {
                    Some(MemberEvent::Revoke(ack)) => {
                        self.stop_everything(true).await;
                        *self.herder.assignment.lock() = None;
                        let _ = ack.send(());
                    }
                    Some(MemberEvent::Assigned(assignment)) => {
                        self.herder.context.generation.store(assignment.generation, std::sync::atomic::Ordering::Release);
                        *self.herder.assignment.lock() = Some(assignment);
                        self.rejoin_requested = false;
                        self.reconcile().await;
                    }
                    None => member_events = None,
                },
                Some(name) = reconfigure.recv() => self.regenerate_tasks(&name).await,
                _ = tick.tick() => self.check_rebalance(),
                _ = shutdown.changed() => {
                    self.stop_everything(false).await;
                    return;
                }
            }
        }
    }

    /// What this worker should run now.
    fn mine(&self, snapshot: &ConfigState) -> (BTreeSet<String>, BTreeSet<TaskId>) {
        if !self.herder.distributed {
            return (
                snapshot.connectors.keys().cloned().collect(),
                snapshot.task_ids().into_iter().collect(),
            );
        }
        match self.herder.assignment.lock().as_ref() {
            None => (BTreeSet::new(), BTreeSet::new()),
            Some(a) => (
                a.connectors.iter().cloned().collect(),
                a.tasks.iter().cloned().collect(),
            ),
        }
    }

    /// The leader asks for a rebalance when the configs no longer match
    /// what was assigned (a connector or task was added or removed).
    fn check_rebalance(&mut self) {
        if !self.herder.distributed || self.rejoin_requested {
            return;
        }
        let needed = {
            let assignment = self.herder.assignment.lock();
            match assignment.as_ref() {
                Some(a) if a.is_leader() => {
                    signature(&self.herder.configs.snapshot()) != a.signature
                }
                _ => false,
            }
        };
        if needed {
            if let Some(member) = self.herder.member.lock().as_ref() {
                member.request_rejoin();
                self.rejoin_requested = true;
            }
        }
    }

    async fn reconcile(&mut self) {
        let snapshot = self.herder.configs.snapshot();
        let (my_connectors, my_tasks) = self.mine(&snapshot);
        let context = self.herder.context.clone();

        // Connectors no longer ours, deleted, or changed.
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            let keep = my_connectors.contains(&name)
                && snapshot.connectors.get(&name).is_some_and(|e| {
                    e.target != TargetState::Stopped && e.config == self.connectors[&name].config
                });
            if !keep {
                self.stop_connector(&name).await;
            }
        }
        let mut newly_stopped = Vec::new();
        for name in &my_connectors {
            let Some(entry) = snapshot.connectors.get(name) else {
                continue;
            };
            if entry.target == TargetState::Stopped {
                if !self.stopped.contains(name) {
                    newly_stopped.push(name.clone());
                }
                if entry.tasks.as_ref().is_none_or(|t| !t.is_empty()) {
                    self.write(ConfigRecord::Tasks(name.clone(), Vec::new()))
                        .await;
                }
                continue;
            }
            self.stopped.remove(name);
            match self.connectors.get_mut(name) {
                Some(running) => {
                    if running.target != entry.target {
                        running.target = entry.target;
                        let state = if entry.target == TargetState::Paused {
                            State::Paused
                        } else {
                            State::Running
                        };
                        context
                            .set_status(StatusId::Connector(name.clone()), state, None)
                            .await;
                    }
                    if entry.tasks.as_ref().is_none_or(Vec::is_empty) {
                        self.regenerate_tasks(name).await;
                    }
                }
                None => self.start_connector(name, entry).await,
            }
        }

        // Tasks.
        let ids: Vec<TaskId> = self.tasks.keys().cloned().collect();
        let mut to_stop = Vec::new();
        for id in ids {
            let wanted = task_config(&snapshot, &id).filter(|_| my_tasks.contains(&id));
            let same = wanted.as_ref().is_some_and(|(config, entry)| {
                *config == self.tasks[&id].config
                    && entry.config == self.tasks[&id].connector_config
            });
            if !same {
                to_stop.push((id.clone(), self.tasks.remove(&id).expect("task")));
            }
        }
        self.stop_tasks(to_stop, &snapshot).await;
        for id in &my_tasks {
            let Some((config, entry)) = task_config(&snapshot, id) else {
                continue;
            };
            match self.tasks.get(id) {
                Some(handle) => handle.set_target(entry.target),
                None => self.start_task(id, &entry, config).await,
            }
        }
        // STOPPED only once the tasks are down (offsets may change then).
        for name in newly_stopped {
            self.stopped.insert(name.clone());
            context
                .set_status(StatusId::Connector(name), State::Stopped, None)
                .await;
        }
        self.check_rebalance();
    }

    async fn write(&self, record: ConfigRecord) {
        if let Err(e) = self.herder.configs.write(record).await {
            tracing::error!(error = %e, "writing to the config store");
        }
    }

    async fn start_connector(&mut self, name: &str, entry: &ConnectorEntry) {
        let context = self.herder.context.clone();
        let status = StatusId::Connector(name.to_string());
        let settings =
            match ConnectorSettings::parse(&context.registry, &context.config, &entry.config) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(connector = name, error = %e, "invalid connector config");
                    context
                        .set_status(status, State::Failed, Some(trace(&e)))
                        .await;
                    return;
                }
            };
        let mut connector = settings.plugin.connector();
        let sender = self.herder.reconfigure.clone();
        let connector_name = name.to_string();
        let ctx = ConnectorContext {
            reconfigure: Arc::new(move || {
                let _ = sender.send(connector_name.clone());
            }),
        };
        if let Err(e) = connector.start(&entry.config, ctx).await {
            tracing::error!(connector = name, error = %e, "connector failed to start");
            context
                .set_status(status, State::Failed, Some(trace(&e)))
                .await;
            return;
        }
        let state = if entry.target == TargetState::Paused {
            State::Paused
        } else {
            State::Running
        };
        context.set_status(status, state, None).await;
        tracing::info!(
            connector = name,
            class = settings.plugin.class(),
            "connector started"
        );
        self.connectors.insert(
            name.to_string(),
            RunningConnector {
                connector,
                config: entry.config.clone(),
                target: entry.target,
            },
        );
        self.regenerate_tasks(name).await;
    }

    /// Asks a running connector for its task configs and stores them if new.
    async fn regenerate_tasks(&mut self, name: &str) {
        let context = self.herder.context.clone();
        let Some(running) = self.connectors.get(name) else {
            return;
        };
        let max_tasks = running
            .config
            .get("tasks.max")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let configs = match running.connector.task_configs(max_tasks) {
            Ok(mut c) => {
                c.truncate(max_tasks);
                c
            }
            Err(e) => {
                context
                    .set_status(
                        StatusId::Connector(name.to_string()),
                        State::Failed,
                        Some(trace(&e)),
                    )
                    .await;
                return;
            }
        };
        let current = self
            .herder
            .configs
            .snapshot()
            .connectors
            .get(name)
            .and_then(|e| e.tasks.clone());
        if current.as_ref() != Some(&configs) {
            self.write(ConfigRecord::Tasks(name.to_string(), configs))
                .await;
        }
    }

    async fn stop_connector(&mut self, name: &str) {
        if let Some(mut running) = self.connectors.remove(name) {
            running.connector.stop().await;
            tracing::info!(connector = name, "connector stopped");
        }
    }

    async fn start_task(&mut self, id: &TaskId, entry: &ConnectorEntry, task_config: ConfigMap) {
        let context = self.herder.context.clone();
        let settings =
            match ConnectorSettings::parse(&context.registry, &context.config, &entry.config) {
                Ok(s) => s,
                Err(e) => {
                    context
                        .set_status(StatusId::Task(id.clone()), State::Failed, Some(trace(&e)))
                        .await;
                    return;
                }
            };
        let kind = settings.plugin.connector_type();
        let task_id = id.clone();
        let run_config = task_config.clone();
        let handle = TaskHandle::spawn(
            task_config,
            entry.config.clone(),
            entry.target,
            move |control| async move {
                match kind {
                    ConnectorType::Source => {
                        source_task::run(context, task_id, settings, run_config, control).await
                    }
                    ConnectorType::Sink => {
                        sink_task::run(context, task_id, settings, run_config, control).await
                    }
                }
            },
        );
        self.tasks.insert(id.clone(), handle);
    }

    /// Stops tasks in parallel; marks those whose connector still exists
    /// UNASSIGNED (they run elsewhere next).
    async fn stop_tasks(&mut self, tasks: Vec<(TaskId, TaskHandle)>, snapshot: &ConfigState) {
        if tasks.is_empty() {
            return;
        }
        let timeout = self.herder.context.config.task_shutdown_timeout;
        let ids: Vec<TaskId> = tasks.iter().map(|(id, _)| id.clone()).collect();
        futures::future::join_all(tasks.into_iter().map(|(_, handle)| handle.stop(timeout))).await;
        for id in ids {
            let exists = task_config(snapshot, &id).is_some();
            let failed = self
                .herder
                .context
                .statuses
                .get(&StatusId::Task(id.clone()))
                .is_some_and(|s| {
                    s.state == State::Failed && s.worker_id == self.herder.context.worker_id
                });
            if exists && !failed {
                self.herder
                    .context
                    .set_status(StatusId::Task(id.clone()), State::Unassigned, None)
                    .await;
            }
        }
    }

    async fn stop_everything(&mut self, revoked: bool) {
        let snapshot = self.herder.configs.snapshot();
        let tasks: Vec<(TaskId, TaskHandle)> = self.tasks.drain().collect();
        if revoked {
            self.stop_tasks(tasks, &snapshot).await;
        } else {
            let timeout = self.herder.context.config.task_shutdown_timeout;
            futures::future::join_all(tasks.into_iter().map(|(_, h)| h.stop(timeout))).await;
        }
        let names: Vec<String> = self.connectors.keys().cloned().collect();
        for name in names {
            self.stop_connector(&name).await;
            if revoked && snapshot.connectors.contains_key(&name) {
                self.herder
                    .context
                    .set_status(StatusId::Connector(name), State::Unassigned, None)
                    .await;
            }
        }
        self.stopped.clear();
    }

    async fn restart(&mut self, request: RestartRequest) {
        let snapshot = self.herder.configs.snapshot();
        let Some(entry) = snapshot.connectors.get(&request.connector).cloned() else {
            return;
        };
        let statuses = self.herder.context.statuses.clone();
        let failed = |id: &StatusId| statuses.get(id).is_some_and(|s| s.state == State::Failed);
        let (my_connectors, my_tasks) = self.mine(&snapshot);
        let mut restart_tasks = Vec::new();
        match request.task {
            Some(task) => restart_tasks.push(TaskId::new(&request.connector, task)),
            None => {
                let connector_id = StatusId::Connector(request.connector.clone());
                if my_connectors.contains(&request.connector)
                    && entry.target != TargetState::Stopped
                    && (!request.only_failed || failed(&connector_id))
                {
                    tracing::info!(connector = request.connector, "restarting the connector");
                    self.herder
                        .context
                        .set_status(connector_id, State::Restarting, None)
                        .await;
                    self.stop_connector(&request.connector).await;
                    self.start_connector(&request.connector, &entry).await;
                }
                if request.include_tasks {
                    for id in my_tasks.iter().filter(|t| t.connector == request.connector) {
                        if !request.only_failed || failed(&StatusId::Task(id.clone())) {
                            restart_tasks.push(id.clone());
                        }
                    }
                }
            }
        }
        for id in restart_tasks {
            if !my_tasks.contains(&id) {
                continue;
            }
            let Some((config, entry)) = task_config(&snapshot, &id) else {
                continue;
            };
            tracing::info!(task = %id, "restarting the task");
            self.herder
                .context
                .set_status(StatusId::Task(id.clone()), State::Restarting, None)
                .await;
            if let Some(handle) = self.tasks.remove(&id) {
                handle
                    .stop(self.herder.context.config.task_shutdown_timeout)
                    .await;
            }
            self.start_task(&id, &entry, config).await;
        }
    }
}

/// The task's config and its connector's entry, if the task should run.
fn task_config(snapshot: &ConfigState, id: &TaskId) -> Option<(ConfigMap, ConnectorEntry)> {
    let entry = snapshot.connectors.get(&id.connector)?;
    if entry.target == TargetState::Stopped {
        return None;
    }
    let config = entry.tasks.as_ref()?.get(id.task as usize)?.clone();
    Some((config, entry.clone()))
}
