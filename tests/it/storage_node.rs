//! The storage node process: the conformance suite through gRPC, the
//! protocol's error mapping, backend outages and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use zaqar_proto::model::{Namespace, Scope};
use zaqar_proto::pb::storage_client::StorageClient;
use zaqar_proto::pb::{self};
use zaqar_proto::{ERROR_KIND_METADATA, ErrorKind};
use zaqar_storage::conformance::Fixture;
use zaqar_storage::{Backend, GrpcBackend};
use zaqar_tests::{RedisServer, StorageNode, test_redis_url};

/// A storage node on a runtime of one worker thread (the smallest an
/// operator may choose), so the whole suite also runs without parallelism.
async fn grpc_fixture() -> Fixture {
    let node = StorageNode::start_env(
        &test_redis_url(),
        "127.0.0.1:0",
        &[("ZAQAR_WORKER_THREADS", "1")],
    )
    .expect("storage node");
    let backend = GrpcBackend::connect_lazy(&node.url()).expect("client");
    Fixture {
        backend: Arc::new(backend),
        guard: Some(Box::new(node)),
    }
}

/// The whole backend conformance suite, through a real storage node.
mod conformance_over_grpc {
    use super::grpc_fixture;

    zaqar_storage::backend_conformance_suite!(grpc_fixture);
}

fn scope(project: &str, name: &str) -> pb::Scope {
    pb::Scope::from(&Scope::new(project, Namespace::Queue, name).unwrap())
}

async fn raw_client(node: &StorageNode) -> StorageClient<zaqar_proto::tonic::transport::Channel> {
    StorageClient::connect(node.url()).await.expect("connect")
}

fn kind_of(status: &zaqar_proto::tonic::Status) -> Option<String> {
    status
        .metadata()
        .get(ERROR_KIND_METADATA)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// On a queue that does not exist: deleting one message and deleting by ids
/// succeed, and get-by-ids answers NOT_FOUND with the `not_found` kind.
#[tokio::test]
async fn seed_behaviours_on_a_missing_queue() {
    let node = StorageNode::start(&test_redis_url()).unwrap();
    let mut client = raw_client(&node).await;
    let project = format!("seed-{}", uuid::Uuid::new_v4().simple());
    client
        .delete_message(pb::DeleteMessageRequest {
            scope: Some(scope(&project, "nonexistent")),
            id: "5f1e0c2a9d3e4b0001a1b2c3".into(),
            claim: None,
        })
        .await
        .expect("delete one on a missing queue succeeds");
    client
        .delete_messages(pb::DeleteMessagesRequest {
            scope: Some(scope(&project, "nonexistent")),
            ids: vec!["a".into(), "b".into()],
            claim_ids: vec![],
            require_claim: false,
        })
        .await
        .expect("delete by ids on a missing queue succeeds");
    let status = client
        .get_messages(pb::GetMessagesRequest {
            scope: Some(scope(&project, "nonexistent")),
            ids: vec!["a".into(), "b".into()],
        })
        .await
        .expect_err("get by ids on a missing queue fails");
    assert_eq!(status.code(), zaqar_proto::tonic::Code::NotFound);
    assert_eq!(kind_of(&status).as_deref(), Some("not_found"));
    assert_eq!(ErrorKind::from_status(&status).http_status(), 404);
    let exists = client
        .queue_exists(pb::QueueExistsRequest {
            scope: Some(scope(&project, "nonexistent")),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!exists.exists, "none of these calls creates the queue");
}

/// Invalid wire input is INVALID_ARGUMENT with the `invalid` kind.
#[tokio::test]
async fn bad_requests_are_invalid_arguments() {
    let node = StorageNode::start(&test_redis_url()).unwrap();
    let mut client = raw_client(&node).await;
    let cases = vec![
        pb::GetQueueRequest { scope: None },
        pb::GetQueueRequest {
            scope: Some(pb::Scope {
                project: "p".into(),
                namespace: 0,
                name: "Nice-Bo@t".into(),
            }),
        },
        pb::GetQueueRequest {
            scope: Some(pb::Scope {
                project: "p".repeat(257),
                namespace: 0,
                name: "q".into(),
            }),
        },
        pb::GetQueueRequest {
            scope: Some(pb::Scope {
                project: "p".into(),
                namespace: 9,
                name: "q".into(),
            }),
        },
    ];
    for request in cases {
        let status = client.get_queue(request).await.unwrap_err();
        assert_eq!(status.code(), zaqar_proto::tonic::Code::InvalidArgument);
        assert_eq!(kind_of(&status).as_deref(), Some("invalid"));
    }
    let status = client
        .list_messages(pb::ListMessagesRequest {
            scope: Some(scope("p", "q")),
            limit: 0,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), zaqar_proto::tonic::Code::InvalidArgument);
}

/// With its Redis down the node answers UNAVAILABLE (HTTP 503), and it
/// recovers by itself once Redis is back, without losing written data.
#[tokio::test]
async fn backend_outage_is_unavailable_then_recovers() {
    let mut redis = RedisServer::start().unwrap();
    let node = StorageNode::start(&redis.url()).unwrap();
    let backend = GrpcBackend::connect_lazy(&node.url()).unwrap();
    let queue = Scope::queue("outage", "q").unwrap();
    backend
        .create_queue(&queue, r#"{"kept":true}"#)
        .await
        .unwrap();

    redis.guard.terminate(Duration::from_secs(10));
    let error = backend.queue_exists(&queue).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
    assert_eq!(error.kind().http_status(), 503);
    let health = backend.health().await.unwrap();
    assert!(!health.reachable);

    redis.restart().unwrap();
    let mut recovered = None;
    for _ in 0..100 {
        if let Ok(record) = backend.get_queue(&queue).await {
            recovered = record;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = recovered.expect("the node reconnects and the queue survived");
    assert!(record.metadata.contains("kept"));
}

/// A node that is gone answers UNAVAILABLE to its clients.
#[tokio::test]
async fn a_stopped_node_is_unavailable() {
    let mut node = StorageNode::start(&test_redis_url()).unwrap();
    let backend = GrpcBackend::connect_lazy(&node.url()).unwrap();
    assert!(backend.health().await.unwrap().reachable);
    let status = node.guard.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|status| status.success()),
        "SIGTERM stops the node cleanly"
    );
    let error = backend.health().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
}
