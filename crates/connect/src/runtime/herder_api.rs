//! What the REST API asks of a herder: reads come from the local view of
//! the config and status stores; writes are records in the config store,
//! which every worker (this one included) then acts on.

use crate::error::{ConnectError, Result};
use crate::runtime::connector_config::validate;
use crate::runtime::herder::Herder;
use crate::runtime::store::{
    ConfigRecord, RestartRequest, State, Status, StatusId, TargetState, TaskId,
};
use crate::sdk::config::{ConfigInfos, ConfigMap};
use crate::sdk::ConnectorType;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct TaskIdInfo {
    pub connector: String,
    pub task: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectorInfo {
    pub name: String,
    pub config: ConfigMap,
    pub tasks: Vec<TaskIdInfo>,
    #[serde(rename = "type")]
    pub ty: Option<ConnectorType>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StateInfo {
    pub state: State,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskState {
    pub id: u32,
    pub state: State,
    pub worker_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    pub connector: StateInfo,
    pub tasks: Vec<TaskState>,
    #[serde(rename = "type")]
    pub ty: Option<ConnectorType>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TaskInfo {
    pub id: TaskIdInfo,
    pub config: ConfigMap,
}

fn unassigned() -> Status {
    Status {
        state: State::Unassigned,
        trace: None,
        worker_id: String::new(),
        generation: -1,
    }
}

impl Herder {
    /// The Kafka cluster's id (Metadata v2+), for `GET /`.
    pub async fn kafka_cluster_id(&self) -> Option<String> {
        let bootstrap = self.context.config.bootstrap_servers.clone();
        self.cluster_id
            .get_or_try_init(|| async move {
                let mut connection =
                    crate::distributed::wire::Connection::connect_any(&bootstrap).await?;
                let request = kafka_protocol::messages::MetadataRequest::default()
                    .with_topics(Some(Vec::new()));
                let (_, response) = connection
                    .send(&request, 12, std::time::Duration::from_secs(10))
                    .await?;
                Ok::<String, ConnectError>(
                    response
                        .cluster_id
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                )
            })
            .await
            .ok()
            .cloned()
    }

    pub fn connector_names(&self) -> Vec<String> {
        self.configs.snapshot().connectors.keys().cloned().collect()
    }

    fn connector_type(&self, config: &ConfigMap) -> Option<ConnectorType> {
        let class = config.get("connector.class")?;
        Some(self.context.registry.find(class)?.connector_type())
    }

    pub fn connector_info(&self, name: &str) -> Result<ConnectorInfo> {
        let snapshot = self.configs.snapshot();
        let entry = snapshot
            .connectors
            .get(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        let tasks = (0..entry.tasks.as_ref().map_or(0, Vec::len) as u32)
            .map(|task| TaskIdInfo {
                connector: name.to_string(),
                task,
            })
            .collect();
        Ok(ConnectorInfo {
            name: name.to_string(),
            config: entry.config.clone(),
            tasks,
            ty: self.connector_type(&entry.config),
        })
    }

    pub fn connector_status(&self, name: &str) -> Result<ConnectorStatus> {
        let info = self.connector_info(name)?;
        let connector = self
            .context
            .statuses
            .get(&StatusId::Connector(name.to_string()))
            .unwrap_or_else(unassigned);
        let known: BTreeMap<u32, Status> = self.context.statuses.tasks(name).into_iter().collect();
        let tasks = info
            .tasks
            .iter()
            .map(|t| {
                let s = known.get(&t.task).cloned().unwrap_or_else(unassigned);
                TaskState {
                    id: t.task,
                    state: s.state,
                    worker_id: s.worker_id,
                    trace: s.trace,
                }
            })
            .collect();
        Ok(ConnectorStatus {
            name: name.to_string(),
            connector: StateInfo {
                state: connector.state,
                worker_id: connector.worker_id,
                trace: connector.trace,
            },
            tasks,
            ty: info.ty,
        })
    }

    pub fn task_status(&self, name: &str, task: u32) -> Result<TaskState> {
        let status = self.connector_status(name)?;
        status
            .tasks
            .into_iter()
            .find(|t| t.id == task)
            .ok_or_else(|| ConnectError::UnknownTask(format!("{name}-{task}")))
    }

    pub fn task_configs(&self, name: &str) -> Result<Vec<TaskInfo>> {
        let snapshot = self.configs.snapshot();
        let entry = snapshot
            .connectors
            .get(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        Ok(entry
            .tasks
            .clone()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(task, config)| TaskInfo {
                id: TaskIdInfo {
                    connector: name.to_string(),
                    task: task as u32,
                },
                config,
            })
            .collect())
    }

    pub fn validate_config(&self, plugin: &str, config: &ConfigMap) -> Result<ConfigInfos> {
        let registry = &self.context.registry;
        let found = registry.find(plugin).ok_or_else(|| {
            ConnectError::BadRequest(format!("unknown connector plugin {plugin}"))
        })?;
        let mut config = config.clone();
        if let Some(class) = config.get("connector.class") {
            if registry.find(class).map(|p| p.class()) != Some(found.class()) {
                return Err(ConnectError::BadRequest(format!(
                    "connector.class {class} does not match the plugin {plugin} in the URL"
                )));
            }
        } else {
            config.insert("connector.class".into(), found.class().to_string());
        }
        let validation = validate(registry, &self.context.config, &config);
        Ok(validation.infos(found.class(), &config))
    }

    /// Validates, with the name from the URL put into (or checked against) the config.
    fn checked_config(&self, name: &str, mut config: ConfigMap) -> Result<ConfigMap> {
        match config.get("name") {
            Some(n) if n != name => {
                return Err(ConnectError::BadRequest(format!(
                    "Connector name configuration ({n}) doesn't match connector name in the URL ({name})"
                )))
            }
            Some(_) => {}
            None => {
                config.insert("name".into(), name.to_string());
            }
        }
        let validation = validate(&self.context.registry, &self.context.config, &config);
        if !validation.errors.is_empty() {
            return Err(ConnectError::InvalidConfig(validation.errors));
        }
        Ok(config)
    }

    /// `POST /connectors`: fails with a conflict if it exists.
    pub async fn create_connector(
        &self,
        name: &str,
        config: ConfigMap,
        initial: TargetState,
    ) -> Result<ConnectorInfo> {
        let config = self.checked_config(name, config)?;
        self.configs.refresh().await?;
        if self.configs.snapshot().connectors.contains_key(name) {
            return Err(ConnectError::ConnectorExists(name.to_string()));
        }
        if initial != TargetState::Started {
            self.configs
                .write(ConfigRecord::TargetState(name.to_string(), initial))
                .await?;
        }
        self.configs
            .write(ConfigRecord::Connector(name.to_string(), Some(config)))
            .await?;
        self.connector_info(name)
    }

    /// `PUT /connectors/{name}/config`: creates or replaces; true if created.
    pub async fn put_connector_config(
        &self,
        name: &str,
        config: ConfigMap,
    ) -> Result<(bool, ConnectorInfo)> {
        let config = self.checked_config(name, config)?;
        self.configs.refresh().await?;
        let created = !self.configs.snapshot().connectors.contains_key(name);
        self.configs
            .write(ConfigRecord::Connector(name.to_string(), Some(config)))
            .await?;
        Ok((created, self.connector_info(name)?))
    }

    /// `PATCH /connectors/{name}/config` (KIP-477): null values remove keys.
    pub async fn patch_connector_config(
        &self,
        name: &str,
        patch: BTreeMap<String, Option<String>>,
    ) -> Result<ConnectorInfo> {
        self.configs.refresh().await?;
        let mut config = self.connector_info(name)?.config;
        for (key, value) in patch {
            match value {
                Some(v) => config.insert(key, v),
                None => config.remove(&key),
            };
        }
        let config = self.checked_config(name, config)?;
        self.configs
            .write(ConfigRecord::Connector(name.to_string(), Some(config)))
            .await?;
        self.connector_info(name)
    }

    pub async fn delete_connector(&self, name: &str) -> Result<()> {
        self.configs.refresh().await?;
        let info = self.connector_info(name)?;
        self.configs
            .write(ConfigRecord::Connector(name.to_string(), None))
            .await?;
        self.context
            .statuses
            .put(StatusId::Connector(name.to_string()), None)
            .await;
        let known = self.context.statuses.tasks(name);
        for task in info
            .tasks
            .iter()
            .map(|t| t.task)
            .chain(known.into_iter().map(|(t, _)| t))
        {
            self.context
                .statuses
                .put(StatusId::Task(TaskId::new(name, task)), None)
                .await;
        }
        Ok(())
    }

    pub async fn set_target_state(&self, name: &str, state: TargetState) -> Result<()> {
        self.configs.refresh().await?;
        self.connector_info(name)?;
        self.configs
            .write(ConfigRecord::TargetState(name.to_string(), state))
            .await
    }

    /// Asks the owner(s) to restart; returns the status with what will
    /// restart marked RESTARTING.
    pub async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<ConnectorStatus> {
        let mut status = self.connector_status(name)?;
        let planned = |state: State| !only_failed || state == State::Failed;
        if planned(status.connector.state) {
            status.connector.state = State::Restarting;
        }
        if include_tasks {
            for task in &mut status.tasks {
                if planned(task.state) {
                    task.state = State::Restarting;
                }
            }
        }
        self.configs
            .write(ConfigRecord::Restart(RestartRequest {
                connector: name.to_string(),
                task: None,
                include_tasks,
                only_failed,
                id: uuid::Uuid::new_v4().to_string(),
            }))
            .await?;
        Ok(status)
    }

    pub async fn restart_task(&self, name: &str, task: u32) -> Result<()> {
        self.task_status(name, task)?;
        self.configs
            .write(ConfigRecord::Restart(RestartRequest {
                connector: name.to_string(),
                task: Some(task),
                include_tasks: false,
                only_failed: false,
                id: uuid::Uuid::new_v4().to_string(),
            }))
            .await
    }

    /// Offsets may change only while the connector is stopped (KIP-875).
    pub fn require_stopped(&self, name: &str) -> Result<ConnectorType> {
        let snapshot = self.configs.snapshot();
        let entry = snapshot
            .connectors
            .get(name)
            .ok_or_else(|| ConnectError::UnknownConnector(name.to_string()))?;
        if entry.target != TargetState::Stopped {
            return Err(ConnectError::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )));
        }
        self.connector_type(&entry.config).ok_or_else(|| {
            ConnectError::BadRequest(format!("connector {name} has an unknown class"))
        })
    }
}
