//! Distributed mode: the group member and the topic-backed stores.

pub mod member;
pub mod stores;
pub mod wire;
