//! A node refuses a protocol configuration that makes no sense (issue 13,
//! fault 4) instead of clamping it: zero durations used to become 1 ms,
//! and a zero ping interval made the node PING every idle peer ~470 times
//! a second.

use std::time::Duration;

use peernet_tokio::{Config, ConfigError, Identity, Node, NodeConfig, StartError};

/// Changes one field of the default protocol configuration.
type Setter = fn(&mut Config);

fn node_config(f: impl FnOnce(&mut Config)) -> NodeConfig {
    let mut protocol = Config::default();
    f(&mut protocol);
    NodeConfig::new(Identity::from_seed(&[5; 32])).protocol(protocol)
}

#[tokio::test]
async fn bind_refuses_invalid_configurations() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let cases: [(Setter, ConfigError); 3] = [
        (
            |c| c.ping_interval = Duration::ZERO,
            ConfigError::Zero("ping_interval"),
        ),
        (
            |c| c.handshake_timeout = Duration::ZERO,
            ConfigError::Zero("handshake_timeout"),
        ),
        (|c| c.max_frame_len = 0, ConfigError::FrameTooSmall(0)),
    ];
    for (set, want) in cases {
        match Node::bind(node_config(set), addr).await {
            Err(StartError::Config(got)) => assert_eq!(got, want),
            Err(other) => panic!("{want:?}: wrong error {other}"),
            Ok(_) => panic!("{want:?}: accepted"),
        }
    }
    let idle = node_config(|c| {
        c.ping_interval = Duration::from_secs(2);
        c.idle_timeout = Duration::from_secs(1);
    });
    assert!(matches!(
        Node::try_new_with(Default::default(), idle),
        Err(StartError::Config(ConfigError::IdleNotAbovePing { .. }))
    ));
    let node = Node::bind(node_config(|_| {}), addr).await.unwrap();
    node.shutdown().await;
}
