//! Strom's group coordinator, as an I/O-free state machine.
//!
//! Handlers take a request (the `kafka-protocol` types) and the current
//! time, and return an [`Outcome`]: the records to append to
//! `__consumer_offsets`, the response — or none, when the request waits for a
//! rebalance and will be answered by a later [`Completion`] — and the parked
//! responses this call completed. The broker does the I/O: it appends the
//! records, answers the requests, calls [`GroupCoordinator::tick`] for
//! timeouts, and at start-up rebuilds the state with
//! [`GroupCoordinator::replay`] from the records it wrote (Kafka's
//! `CoordinatorShard` idea).
//!
//! ```
//! use kafka_protocol::messages::{GroupId, JoinGroupRequest};
//! use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
//! use kafka_protocol::protocol::StrBytes;
//! use strom_coordinator::{ClientInfo, GroupConfig, GroupCoordinator};
//!
//! let mut coordinator = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, ..Default::default() });
//! let join = JoinGroupRequest::default()
//!     .with_group_id(GroupId(StrBytes::from_static_str("g")))
//!     .with_session_timeout_ms(10_000)
//!     .with_rebalance_timeout_ms(10_000)
//!     .with_protocol_type(StrBytes::from_static_str("consumer"))
//!     .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(StrBytes::from_static_str("range"))]);
//! let client = || ClientInfo { client_id: "c", client_host: "/127.0.0.1" };
//! // v4+: the first join only hands out a member id (KIP-394).
//! let first = coordinator.join_group(0, 1, 5, client(), join.clone());
//! let member_id = first.response.unwrap().member_id;
//! // Joining with it completes the (single-member) rebalance at once.
//! let second = coordinator.join_group(1, 2, 5, client(), join.with_member_id(member_id.clone()));
//! let response = second.response.expect("answered immediately");
//! assert_eq!((response.generation_id, response.leader), (1, member_id));
//! ```

pub mod assignor;
mod classic;
pub mod consumer;
pub mod consumer_protocol;
mod coordinator;
pub mod group;
pub mod records;
pub mod txn;
mod txn_offsets;

pub use classic::ClientInfo;
pub use consumer::TopicsView;
pub use coordinator::{Completion, GroupConfig, GroupCoordinator, Outcome};
pub use group::{GroupState, Token};
pub use records::{partition_for, CoordinatorRecord};
