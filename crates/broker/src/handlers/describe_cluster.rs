//! DescribeCluster: this single node is the whole cluster and its controller.

use super::{str_bytes, RequestContext};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

pub fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let b = ctx.broker;
    let node = BrokerId(b.config.node_id);
    DescribeClusterResponse::default()
        .with_error_code(0)
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(b.cluster_id.clone()))
        .with_controller_id(node)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            super::metadata::ALL_CLUSTER_OPERATIONS
        } else {
            i32::MIN
        })
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node)
            .with_host(str_bytes(b.advertised_host.clone()))
            .with_port(b.advertised_port)])
}
