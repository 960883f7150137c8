//! One MQTT client over rumqttc for both protocol versions (3.1.1 and 5):
//! the event loop runs in its own task, reconnects with exponential backoff,
//! and hands the connector what arrives (publishes with their ack handles,
//! connection changes, publish acknowledgements).

use super::settings::{MqttSettings, MqttVersion};
use crate::error::{ConnectError, Result};
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::mpsc;

/// A received message's handle for the (manual) acknowledgement.
pub enum AckHandle {
    V4(rumqttc::Publish),
    V5(rumqttc::v5::mqttbytes::v5::Publish),
}

/// What the event loop reports.
pub enum MqttEvent {
    Publish {
        topic: String,
        payload: Bytes,
        qos: u8,
        retain: bool,
        ack: Box<AckHandle>,
    },
    Connected {
        session_present: bool,
    },
    /// A QoS 1 publish of ours was acknowledged by the broker.
    PubAck,
    /// The connection broke (the loop reconnects by itself).
    Disconnected(String),
    /// The broker refused the connection (bad credentials, not authorized):
    /// retrying will not help.
    Refused(String),
}

#[derive(Clone)]
pub enum MqttClient {
    V4(rumqttc::AsyncClient),
    V5(rumqttc::v5::AsyncClient),
}

/// Room for acknowledgements: never less than the packet id space, so that
/// acking never waits for the event loop (which may be waiting for us).
const REQUEST_CAPACITY: usize = 65_536;

/// Connects (in the background) and returns the client and its events.
pub fn connect(
    settings: &MqttSettings,
    client_id: &str,
) -> Result<(
    MqttClient,
    mpsc::Receiver<MqttEvent>,
    tokio::task::JoinHandle<()>,
)> {
    crate::install_crypto_provider();
    let (tx, rx) = mpsc::channel(4096);
    let transport = settings.transport()?;
    let initial = settings.reconnect_backoff_initial;
    let max = settings.reconnect_backoff_max;
    match settings.version {
        MqttVersion::V311 => {
            let mut options = rumqttc::MqttOptions::new(client_id, &settings.host, settings.port);
            options
                .set_keep_alive(settings.keep_alive)
                .set_clean_session(settings.clean_session)
                .set_manual_acks(true)
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_max_packet_size(settings.max_packet_size, settings.max_packet_size)
                .set_transport(transport);
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user, password);
            }
            let (client, mut eventloop) = rumqttc::AsyncClient::new(options, REQUEST_CAPACITY);
            let mut network = rumqttc::NetworkOptions::new();
            network.set_connection_timeout(settings.connect_timeout.as_secs().max(1));
            eventloop.set_network_options(network);
            let handle = tokio::spawn(async move {
                let mut backoff = initial;
                loop {
                    use rumqttc::{Event, Packet};
                    let event = match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => Some(MqttEvent::Publish {
                            topic: p.topic.clone(),
                            payload: p.payload.clone(),
                            qos: p.qos as u8,
                            retain: p.retain,
                            ack: Box::new(AckHandle::V4(p)),
                        }),
                        Ok(Event::Incoming(Packet::ConnAck(c))) => {
                            backoff = initial;
                            Some(MqttEvent::Connected {
                                session_present: c.session_present,
                            })
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => Some(MqttEvent::PubAck),
                        Ok(_) => None,
                        Err(e) => {
                            let message = e.to_string();
                            let event = match e {
                                rumqttc::ConnectionError::ConnectionRefused(_) => {
                                    MqttEvent::Refused(message)
                                }
                                _ => MqttEvent::Disconnected(message),
                            };
                            if tx.send(event).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(max);
                            None
                        }
                    };
                    if let Some(event) = event {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok((MqttClient::V4(client), rx, handle))
        }
        MqttVersion::V5 => {
            let mut options =
                rumqttc::v5::MqttOptions::new(client_id, &settings.host, settings.port);
            options
                .set_keep_alive(settings.keep_alive)
                .set_clean_start(settings.clean_session)
                .set_manual_acks(true)
                .set_request_channel_capacity(REQUEST_CAPACITY)
                .set_max_packet_size(Some(settings.max_packet_size as u32))
                .set_connection_timeout(settings.connect_timeout.as_secs().max(1))
                .set_transport(transport);
            if !settings.clean_session {
                options.set_session_expiry_interval(Some(settings.session_expiry));
            }
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user, password);
            }
            let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(options, REQUEST_CAPACITY);
            let handle = tokio::spawn(async move {
                let mut backoff = initial;
                loop {
                    use rumqttc::v5::mqttbytes::v5::Packet;
                    use rumqttc::v5::Event;
                    let event = match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::Publish(p))) => Some(MqttEvent::Publish {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload.clone(),
                            qos: p.qos as u8,
                            retain: p.retain,
                            ack: Box::new(AckHandle::V5(p)),
                        }),
                        Ok(Event::Incoming(Packet::ConnAck(c))) => {
                            backoff = initial;
                            Some(MqttEvent::Connected {
                                session_present: c.session_present,
                            })
                        }
                        Ok(Event::Incoming(Packet::PubAck(_))) => Some(MqttEvent::PubAck),
                        Ok(_) => None,
                        Err(e) => {
                            if tx
                                .send(MqttEvent::Disconnected(e.to_string()))
                                .await
                                .is_err()
                            {
                                return;
                            }
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(max);
                            None
                        }
                    };
                    if let Some(event) = event {
                        if tx.send(event).await.is_err() {
                            return;
                        }
                    }
                }
            });
            Ok((MqttClient::V5(client), rx, handle))
        }
    }
}

fn client_error(e: impl std::fmt::Display) -> ConnectError {
    ConnectError::retriable(format!("MQTT client: {e}"))
}

impl MqttClient {
    pub async fn subscribe(&self, filters: &[String], qos: u8) -> Result<()> {
        match self {
            MqttClient::V4(c) => {
                let qos = rumqttc::qos(qos).map_err(client_error)?;
                c.subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), qos)),
                )
                .await
                .map_err(client_error)
            }
            MqttClient::V5(c) => {
                let qos = rumqttc::v5::mqttbytes::qos(qos)
                    .ok_or_else(|| client_error(format!("bad QoS {qos}")))?;
                c.subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::v5::mqttbytes::v5::Filter::new(f.clone(), qos)),
                )
                .await
                .map_err(client_error)
            }
        }
    }

    pub async fn publish(
        &self,
        topic: String,
        qos: u8,
        retain: bool,
        payload: Bytes,
    ) -> Result<()> {
        match self {
            MqttClient::V4(c) => {
                let qos = rumqttc::qos(qos).map_err(client_error)?;
                c.publish_bytes(topic, qos, retain, payload)
                    .await
                    .map_err(client_error)
            }
            MqttClient::V5(c) => {
                let qos = rumqttc::v5::mqttbytes::qos(qos)
                    .ok_or_else(|| client_error(format!("bad QoS {qos}")))?;
                c.publish_bytes(topic, qos, retain, payload)
                    .await
                    .map_err(client_error)
            }
        }
    }

    pub async fn ack(&self, handle: &AckHandle) -> Result<()> {
        match (self, handle) {
            (MqttClient::V4(c), AckHandle::V4(p)) => c.ack(p).await.map_err(client_error),
            (MqttClient::V5(c), AckHandle::V5(p)) => c.ack(p).await.map_err(client_error),
            _ => Err(ConnectError::Failed(
                "MQTT ack handle of the other protocol version".into(),
            )),
        }
    }

    pub async fn disconnect(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            match self {
                MqttClient::V4(c) => c.disconnect().await.map_err(client_error),
                MqttClient::V5(c) => c.disconnect().await.map_err(client_error),
            }
        })
        .await;
    }
}
