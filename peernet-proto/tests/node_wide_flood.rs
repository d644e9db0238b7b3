//! A flood of failing version-2 handshakes from many sources, each
//! within its own limits (`SourceLimits::node_failures`): with the
//! node-wide limit on, the INITs that reach the X25519 work are the
//! burst and the rate, the rest are refused at accept before a byte is
//! read, and a source that completed a handshake before the flood is
//! still admitted; with it off (the default), every INIT is worked
//! through as before.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use bytes::Bytes;
use peernet_proto::{
    Config, ConnectError, NodeFailureLimit, RejectCode, Source, SourceLimits, SourceRefusal,
};
use peernet_testkit::{Node, test_config_v2};

const MS: Duration = Duration::from_millis(1);

/// Handshakes in the flood: one every 5 ms, a second in all.
const FLOOD: u32 = 200;

/// Source number `n` of the flood: an IPv6 /64 of its own (a /48 holds
/// 65,536 of them).
fn flood_source(n: u32) -> Source {
    let [hi, lo] = [(n >> 16) as u16, n as u16];
    Source::from(IpAddr::V6(Ipv6Addr::new(
        0x2001, 0xdb8, 0xf1, lo, hi, 0, 0, 1,
    )))
}

fn source(s: &str) -> Source {
    Source::from(s.parse::<IpAddr>().unwrap())
}

/// The trusted peer `a` (identity 1), the node `b` (identity 2) with
/// `node_failures`, and an untrusted `c` (identity 3) that knows `b`'s
/// PeerId.
fn nodes(config: Config, node_failures: Option<NodeFailureLimit>) -> (Node, Node, Node) {
    let mut cb = config.clone();
    let mut limits = SourceLimits::default();
    limits.node_failures = node_failures;
    cb.source_limits = limits;
    let (a, b) = Node::checked_pair(config.clone(), cb);
    let c = Node::checked(config, &[3; 32], &[b.me()], 3);
    (a, b, c)
}

/// `a` dials `b`, accepted from `source`; the handshake runs to the end.
/// Whether `b` then holds it as its connection to `a`, or why `b` refused
/// it at accept.
fn connect_from(a: &mut Node, b: &mut Node, source: Source) -> Result<bool, SourceRefusal> {
    let conn = match b.accept_from(source) {
        Ok(conn) => conn,
        Err(ConnectError::SourceLimited(refusal)) => return Err(refusal),
        Err(e) => panic!("{e}"),
    };
    let dial = a.connect(Some(b.me())).expect("dial");
    Ok(a.shake(dial, b, conn))
}

/// `c`'s INIT to `b` (built once: a flood resends it, as one costs its
/// sender an X25519 of its own).
fn untrusted_init(c: &mut Node, b: &Node) -> Bytes {
    let dial = c.connect(Some(b.me())).expect("dial");
    c.pump();
    c.take(dial).expect("INIT")
}

/// What the flood cost `b`.
#[derive(Debug, PartialEq, Eq)]
struct Cost {
    /// INITs that reached the trust check (X25519 `es` and `ss`, two
    /// AEAD opens) and were refused `untrusted`.
    worked: u64,
    /// Transports refused at accept by the node-wide limit, unread.
    refused_at_accept: u64,
}

/// `FLOOD` transports to `b`, one every 5 ms, each from a source of its
/// own, each sending `init` and closing at its REJECT.
fn flood(b: &mut Node, init: &Bytes) -> Cost {
    let before = b.ep.counters();
    for n in 0..FLOOD {
        b.advance(5 * MS);
        let Ok(conn) = b.accept_from(flood_source(n)) else {
            continue;
        };
        b.receive(conn, init.clone());
        // (the REJECT goes out as the transport's last bytes)
        b.pump();
        b.transport_closed(conn);
        b.pump();
    }
    let after = b.ep.counters();
    let untrusted =
        |c: &peernet_proto::Counters| c.handshakes_in.refused.get(RejectCode::Untrusted);
    Cost {
        worked: untrusted(&after) - untrusted(&before),
        refused_at_accept: after.refused_node_wide - before.refused_node_wide,
    }
}

/// Every INIT of the flood worked through, none refused at accept.
const ALL_WORKED: Cost = Cost {
    worked: FLOOD as u64,
    refused_at_accept: 0,
};

/// A flood from `c` at `b` under `config` and `node_failures`: the
/// trusted peer `a` (it never connected), `b`, and what it cost `b`.
fn flooded(config: Config, node_failures: Option<NodeFailureLimit>) -> (Node, Node, Cost) {
    let (a, mut b, mut c) = nodes(config, node_failures);
    let init = untrusted_init(&mut c, &b);
    let cost = flood(&mut b, &init);
    (a, b, cost)
}

/// 4 a second after a burst of 8.
const LIMIT: NodeFailureLimit = NodeFailureLimit::new(4, 8);

/// The most a second of flood may get worked through under [`LIMIT`]:
/// the burst, and one more each 250 ms.
const ALLOWED: u64 = 8 + 4;

#[test]
fn a_flood_from_many_sources_stops_costing_crypto_after_the_burst() {
    let (_, _, cost) = flooded(test_config_v2(), Some(LIMIT));
    assert!(
        (8..=ALLOWED).contains(&cost.worked),
        "{cost:?}: at most {ALLOWED} INITs worked through"
    );
    assert_eq!(
        cost.worked + cost.refused_at_accept,
        u64::from(FLOOD),
        "{cost:?}: the rest refused at accept"
    );
}

/// The fault `NodeWideUnlimited` (the node-wide limit never refuses) is
/// what the flood test exists to catch: every INIT is worked through.
#[cfg(feature = "fault-injection")]
#[test]
fn the_flood_test_catches_an_unenforced_node_wide_limit() {
    let mut config = test_config_v2();
    config.fault = Some(peernet_proto::testkit::Fault::NodeWideUnlimited);
    let (_, _, cost) = flooded(config, Some(LIMIT));
    assert_eq!(cost, ALL_WORKED);
}

#[test]
fn a_source_known_before_the_flood_still_connects_during_it() {
    let (mut a, mut b, mut c) = nodes(test_config_v2(), Some(LIMIT));
    let home = source("192.0.2.7");
    assert_eq!(connect_from(&mut a, &mut b, home), Ok(true));
    let init = untrusted_init(&mut c, &b);
    let cost = flood(&mut b, &init);
    assert!(cost.refused_at_accept > 0, "{cost:?}: the limit is spent");
    // the flood goes on: the next stranger is refused, and so is the
    // trusted peer from an address it never completed a handshake from
    assert!(matches!(
        b.accept_from(flood_source(FLOOD)),
        Err(ConnectError::SourceLimited(SourceRefusal::NodeFailing))
    ));
    let elsewhere = source("198.51.100.9");
    assert_eq!(
        connect_from(&mut a, &mut b, elsewhere),
        Err(SourceRefusal::NodeFailing)
    );
    // from its known address it connects, again and again
    for n in 0..3 {
        assert_eq!(connect_from(&mut a, &mut b, home), Ok(true), "{n}");
    }
    // once the flood's rate falls (burst / rate: 2 s with no failure),
    // the new address connects too, and is known from then on
    b.advance(Duration::from_secs(2));
    assert_eq!(connect_from(&mut a, &mut b, elsewhere), Ok(true));
    flood(&mut b, &init);
    assert_eq!(connect_from(&mut a, &mut b, elsewhere), Ok(true));
}

#[test]
fn without_the_limit_a_flood_is_worked_through_as_before() {
    assert_eq!(
        SourceLimits::default().node_failures,
        None,
        "off by default"
    );
    let (mut a, mut b, cost) = flooded(test_config_v2(), None);
    assert_eq!(cost, ALL_WORKED);
    assert_eq!(b.ep.counters().refused_at_accept, 0);
    assert_eq!(
        connect_from(&mut a, &mut b, source("198.51.100.9")),
        Ok(true)
    );
}

/// 0 counts as 1, in the rate and in the burst: the strictest limit,
/// not "off" (`None` is off).
#[test]
fn a_limit_of_zero_counts_as_one() {
    let (_, _, cost) = flooded(test_config_v2(), Some(NodeFailureLimit::new(0, 0)));
    // one at once, then one a second: the first, and one more after 1 s
    // (the flood lasts 1 s, its first handshake at 5 ms)
    assert!((1..=2).contains(&cost.worked), "{cost:?}");
    assert_eq!(cost.worked + cost.refused_at_accept, u64::from(FLOOD));
}
