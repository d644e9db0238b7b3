//! `Config::validate` and `workable`: each rule checked, a valid
//! configuration kept as it is.

use super::*;

/// `workable` changes only what `validate` refuses: a valid
/// configuration, the defaults or one at the edges, is kept as it is.
#[test]
fn a_valid_configuration_is_workable_as_it_is() {
    let mut edges = Config::default();
    edges.ping_interval = Duration::MAX - Duration::from_nanos(1);
    edges.idle_timeout = Duration::MAX;
    edges.first_frame_timeout = edges.handshake_timeout;
    edges.max_handshakes = 1;
    edges.send_buffer = usize::MAX;
    for valid in [Config::default(), edges] {
        assert_eq!(valid.validate(), Ok(()));
        assert_eq!(valid.clone().workable(), valid);
    }
    let zero = Config {
        ping_interval: Duration::ZERO,
        idle_timeout: Duration::ZERO,
        send_buffer: 0,
        ..Config::default()
    };
    let workable = zero.workable();
    assert_eq!(workable.validate(), Ok(()));
    assert_eq!(workable.idle_timeout, Duration::from_millis(2));
}

#[test]
fn the_defaults_are_valid_and_each_rule_is_checked() {
    assert_eq!(Config::default().validate(), Ok(()));
    let with = |f: fn(&mut Config)| {
        let mut c = Config::default();
        f(&mut c);
        c.validate()
    };
    assert_eq!(
        with(|c| c.ping_interval = Duration::ZERO),
        Err(ConfigError::Zero("ping_interval"))
    );
    assert_eq!(
        with(|c| c.idle_timeout = Duration::ZERO),
        Err(ConfigError::Zero("idle_timeout"))
    );
    assert_eq!(
        with(|c| c.handshake_timeout = Duration::ZERO),
        Err(ConfigError::Zero("handshake_timeout"))
    );
    assert_eq!(
        with(|c| c.max_inbound_calls = 0),
        Err(ConfigError::Zero("max_inbound_calls"))
    );
    assert_eq!(
        with(|c| c.first_frame_timeout = Duration::ZERO),
        Err(ConfigError::Zero("first_frame_timeout"))
    );
    assert!(matches!(
        with(|c| c.first_frame_timeout = c.handshake_timeout + Duration::from_millis(1)),
        Err(ConfigError::FirstFrameAboveHandshake { .. })
    ));
    assert_eq!(
        with(|c| c.first_frame_timeout = c.handshake_timeout),
        Ok(())
    );
    assert_eq!(
        with(|c| c.max_inbound_bytes_per_conn = 0),
        Err(ConfigError::Zero("max_inbound_bytes_per_conn"))
    );
    assert_eq!(
        with(|c| c.max_inbound_bytes = 0),
        Err(ConfigError::Zero("max_inbound_bytes"))
    );
    assert!(matches!(
        with(|c| c.idle_timeout = c.ping_interval),
        Err(ConfigError::IdleNotAbovePing { .. })
    ));
    assert_eq!(
        with(|c| c.max_frame_len = 149),
        Err(ConfigError::FrameTooSmall(149))
    );
    assert_eq!(with(|c| c.max_frame_len = 150), Ok(()));
}

#[test]
fn dial_settings_are_checked() {
    let with = |f: fn(&mut DialConfig)| {
        let mut c = Config::default();
        f(&mut c.dial);
        c.validate()
    };
    assert_eq!(
        with(|d| d.first_min = Duration::ZERO),
        Err(ConfigError::Zero("dial.first_min"))
    );
    assert_eq!(
        with(|d| d.max_delay = Duration::ZERO),
        Err(ConfigError::Zero("dial.max_delay"))
    );
    assert_eq!(
        with(|d| d.reset_after = Duration::ZERO),
        Err(ConfigError::Zero("dial.reset_after"))
    );
    assert_eq!(
        with(|d| d.first_min = Duration::from_secs(2)),
        Err(ConfigError::Inverted {
            low: "dial.first_min",
            high: "dial.first_max"
        })
    );
    assert_eq!(
        with(|d| d.max_delay = Duration::from_millis(500)),
        Err(ConfigError::Inverted {
            low: "dial.first_max",
            high: "dial.max_delay"
        })
    );
    assert_eq!(
        with(|d| d.growth_max_percent = 120),
        Err(ConfigError::Inverted {
            low: "dial.growth_min_percent",
            high: "dial.growth_max_percent"
        })
    );
    assert_eq!(
        with(|d| d.growth_min_percent = 99),
        Err(ConfigError::BackoffShrinks(99))
    );
    let c = Config {
        max_addresses_per_peer: 0,
        ..Config::default()
    };
    assert_eq!(
        c.validate(),
        Err(ConfigError::Zero("max_addresses_per_peer"))
    );
}
