//! The runtime (placeholder until the next commit).
pub struct KafkaStreams;
pub struct StreamsConfig;
pub enum ProcessingGuarantee {
    AtLeastOnce,
    ExactlyOnce,
}
