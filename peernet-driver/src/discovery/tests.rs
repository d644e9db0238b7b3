//! The discovery rooms' unit tests.

use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use mdns_sd::{InterfaceId, ScopedIp};

use super::announce::*;
use super::daemon::*;
use super::hints::*;
use super::*;
use crate::test_log::Captured;
use peernet_proto::Identity;

/// An announcement names a peer by its TXT record; one of a peer not
/// wanted (untrusted, or this node) is read no further: none of its
/// addresses costs a look at an interface.
#[test]
fn an_announcement_names_a_peer_and_its_addresses() {
    let peer = Identity::from_seed(&[1; 32]).peer_id();
    let id = peer.to_string();
    let heard = [
        ScopedIp::from(ip("192.0.2.1")),
        ScopedIp::from(ip("2001:db8::1")),
    ];
    let no_interface = |_: &InterfaceId| -> Vec<IpAddr> { panic!("an interface was listed") };
    let (got, read) = hints(Some(&id), 4000, &heard, |_| true, no_interface).unwrap();
    assert_eq!(got, peer);
    let mut read = read;
    read.sort();
    let want: Vec<SocketAddr> = vec![
        "192.0.2.1:4000".parse().unwrap(),
        "[2001:db8::1]:4000".parse().unwrap(),
    ];
    assert_eq!(read, want);
    assert!(hints(None, 4000, &heard, |_| true, no_interface).is_none());
    assert!(hints(Some("not a peer"), 4000, &heard, |_| true, no_interface).is_none());
    // (a loopback address heard on an interface would be looked at)
    let on_lan = mdns_sd::InterfaceId {
        name: "eth0".into(),
        index: 2,
    };
    let lo = [ScopedIp::V4(mdns_sd::ScopedIpV4::new(
        [127, 0, 0, 1].into(),
        on_lan,
    ))];
    assert!(hints(Some(&id), 4000, &lo, |p| *p != peer, no_interface).is_none());
    // (a fresh name each time, a DNS label of at most 63 bytes)
    let name = instance_name().unwrap();
    assert_eq!(name.len(), 32);
    assert_ne!(name, instance_name().unwrap());
    assert!(!name.contains(&id[..8]));
}

/// One announcement of a trusted peer can carry hundreds of
/// addresses (a LAN host chooses them): the OS is asked for an
/// interface's addresses once per interface heard on, not once per
/// address, and at most [`MAX_HINTS_PER_ANNOUNCEMENT`] addresses go to
/// the book. It was one interface listing (a netlink dump) per
/// announced loopback address, each announcement's, untrusted ones
/// too, on the node's runtime, and every address went to the book.
#[test]
fn a_huge_announcement_costs_one_look_per_interface() {
    let peer = Identity::from_seed(&[1; 32]).peer_id();
    let id = peer.to_string();
    let lan = |index| mdns_sd::InterfaceId {
        name: format!("eth{index}"),
        index,
    };
    let mut heard = Vec::new();
    for k in 0..500u32 {
        let [_, _, hi, lo] = k.to_be_bytes();
        let heard_on = lan(k % 2 + 2);
        heard.push(ScopedIp::V4(mdns_sd::ScopedIpV4::new(
            [127, 1, hi, lo].into(),
            heard_on.clone(),
        )));
        heard.push(ScopedIp::V4(mdns_sd::ScopedIpV4::new(
            [192, 0, hi, lo].into(),
            heard_on,
        )));
    }
    let mut looks = 0;
    let (_, addrs) = hints(
        Some(&id),
        4000,
        &heard,
        |_| true,
        |_| {
            looks += 1;
            vec![ip("192.0.2.99")]
        },
    )
    .unwrap();
    assert!(
        looks <= 2,
        "{looks} interface listings for one announcement"
    );
    assert_eq!(addrs.len(), MAX_HINTS_PER_ANNOUNCEMENT);
    assert!(addrs.iter().all(|a| !a.ip().is_loopback()), "{addrs:?}");
}

/// Review s48: addresses no dial can reach (multicast, broadcast,
/// unspecified; port 0) were hints until the book refused them, and took
/// the places of an announcement's first
/// [`MAX_HINTS_PER_ANNOUNCEMENT`]: a LAN host that added them to a
/// peer's host name (mDNS takes address records from anyone) left the
/// peer's own address out. They are no hints now.
#[test]
fn undialable_addresses_take_no_place_of_a_hint() {
    let peer = Identity::from_seed(&[1; 32]).peer_id();
    let id = peer.to_string();
    let mut heard: Vec<ScopedIp> = (1..=20u8)
        .map(|k| ScopedIp::from(IpAddr::from([224, 0, 0, k])))
        .collect();
    for undialable in ["0.0.0.0", "255.255.255.255", "::", "ff02::1"] {
        heard.push(ScopedIp::from(ip(undialable)));
    }
    heard.push(ScopedIp::from(ip("192.0.2.7")));
    let no_interface = |_: &InterfaceId| -> Vec<IpAddr> { Vec::new() };
    let (_, addrs) = hints(Some(&id), 4000, &heard, |_| true, no_interface).unwrap();
    assert_eq!(addrs, ["192.0.2.7:4000".parse::<SocketAddr>().unwrap()]);
    // port 0 (an SRV record's): no address of it is a hint
    let (_, addrs) = hints(Some(&id), 0, &heard, |_| true, no_interface).unwrap();
    assert!(addrs.is_empty(), "{addrs:?}");
    assert_eq!(dialable_hint(ip("224.0.0.251"), 4000, 0, false), None);
    assert_eq!(dialable_hint(ip("192.0.2.7"), 0, 0, false), None);
    assert_eq!(dialable_hint(ip("::"), 4000, 0, true), None);
}

/// A LAN host cannot make this node dial its own loopback services:
/// a loopback address counts only when heard on a loopback interface.
/// A link-local IPv6 address keeps the scope it was heard on, or is
/// dropped when there is none (no dial could reach it).
#[test]
fn only_addresses_dialable_from_here_are_hints() {
    let at = |s: &str| s.parse::<SocketAddr>().unwrap();
    // heard from the network
    assert_eq!(dialable_hint(ip("127.0.0.1"), 22, 0, false), None);
    assert_eq!(dialable_hint(ip("127.8.9.1"), 22, 2, false), None);
    assert_eq!(dialable_hint(ip("::1"), 22, 2, false), None);
    assert_eq!(dialable_hint(ip("::ffff:127.0.0.1"), 22, 2, false), None);
    assert_eq!(
        dialable_hint(ip("::ffff:127.0.0.1"), 4000, 0, true),
        Some(at("127.0.0.1:4000"))
    );
    assert_eq!(
        dialable_hint(ip("192.0.2.7"), 4000, 0, false),
        Some(at("192.0.2.7:4000"))
    );
    // heard on loopback: this host's own announcement
    assert_eq!(
        dialable_hint(ip("127.0.0.1"), 4000, 0, true),
        Some(at("127.0.0.1:4000"))
    );
    // link-local IPv6
    assert_eq!(dialable_hint(ip("fe80::1"), 4000, 0, false), None);
    assert_eq!(
        dialable_hint(ip("fe80::1"), 4000, 3, false),
        Some(SocketAddr::V6(SocketAddrV6::new(
            "fe80::1".parse().unwrap(),
            4000,
            0,
            3
        )))
    );
    // an address of the machine's loopback interface, as mDNS reports
    // it: heard there, it is kept; heard on no interface, dropped
    let lo = if_addrs_loopback();
    let os = &mut |interface: &InterfaceId| {
        let addrs = interface.get_addrs();
        !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
    };
    if let Some(lo) = lo {
        let heard = ScopedIp::V4(mdns_sd::ScopedIpV4::new("127.0.0.1".parse().unwrap(), lo));
        assert_eq!(heard_addr(&heard, 4000, os), Some(at("127.0.0.1:4000")));
    }
    let nowhere = ScopedIp::from(ip("127.0.0.1"));
    assert_eq!(heard_addr(&nowhere, 4000, os), None);
}

/// A node announces only the addresses it listens on: one listening
/// on the loopback names `127.0.0.1` alone (mDNS then sends it on the
/// loopback only). It used to name every address of the host, with
/// the loopback listener's port, on every interface: the LAN learned
/// its PeerId and addresses where nothing of it listened.
#[test]
fn a_node_announces_only_the_addresses_it_listens_on() {
    let me = Identity::from_seed(&[1; 32]).peer_id();
    let info = |listen: &str| service_info(&me, "name", listen.parse().unwrap()).unwrap();
    let only = |ip: &str| std::collections::HashSet::from([ip.parse::<IpAddr>().unwrap()]);
    for (listen, ip) in [
        ("127.0.0.1:4000", "127.0.0.1"),
        ("[::1]:4000", "::1"),
        ("192.0.2.5:4000", "192.0.2.5"),
        ("[::ffff:192.0.2.5]:4000", "192.0.2.5"),
        ("[2001:db8::5]:4000", "2001:db8::5"),
    ] {
        let info = info(listen);
        // (it follows the host's addresses, limited to this one: it is
        // announced once its interface comes up, however late)
        assert!(
            info.is_addr_auto(),
            "{listen}: not announced when its interface comes up"
        );
        assert_eq!(info.get_addresses(), &only(ip), "{listen}");
        assert_eq!(info.get_port(), 4000);
        assert_eq!(
            info.get_property_val_str(TXT_ID),
            Some(me.to_string().as_str())
        );
    }
    // any address: the host's, as the interfaces change
    for listen in ["0.0.0.0:4000", "[::]:4000"] {
        let info = info(listen);
        assert!(
            info.is_addr_auto() && info.get_addresses().is_empty(),
            "{listen}"
        );
    }
    assert_eq!(Announced::of(ip("0.0.0.0")), Announced::EveryV4);
    assert_eq!(Announced::of(ip("::ffff:0.0.0.0")), Announced::EveryV4);
    assert_eq!(Announced::of(ip("::")), Announced::Every);
}

/// A node announced on no interface discovery uses is warned about:
/// a loopback listener with only LAN interfaces named (it was told
/// "announced there only"), a LAN one with only the loopback, an
/// IPv6 one with only IPv4 interfaces (both were "announcing on the
/// local network"); and so is a link-local listener announced on
/// every link (its scope is lost: mDNS sends it on every interface
/// with a link-local address, and its PeerId goes there too).
#[test]
fn a_node_announced_nowhere_is_warned() {
    let only = |s: &str| Announced::Only(ip(s));
    let ips = |list: &[&str]| list.iter().map(|s| ip(s)).collect::<Vec<_>>();
    let nowhere = |a: Announced, on: &[&str]| {
        a.warning(&ips(on))
            .is_some_and(|why| why.contains("announced nowhere"))
    };
    assert!(nowhere(only("127.0.0.1"), &["192.0.2.1"]));
    assert!(nowhere(only("127.0.0.1"), &["::1"]));
    assert!(nowhere(only("192.0.2.5"), &["127.0.0.1"]));
    assert!(nowhere(only("2001:db8::5"), &["192.0.2.1"]));
    assert!(nowhere(Announced::EveryV4, &["2001:db8::1"]));
    // heard somewhere
    assert_eq!(only("192.0.2.5").warning(&[]), None);
    assert_eq!(only("192.0.2.5").warning(&ips(&["192.0.2.1"])), None);
    assert_eq!(only("127.0.0.1").warning(&ips(&["127.0.0.1"])), None);
    assert_eq!(Announced::Every.warning(&ips(&["127.0.0.1"])), None);
    assert_eq!(Announced::EveryV4.warning(&ips(&["192.0.2.1"])), None);
    // a link-local listener, on every link that has a link-local
    // address unless the listening one alone is named
    let overheard = |on: &[&str]| {
        only("fe80::1")
            .warning(&ips(on))
            .is_some_and(|why| why.contains("announced on every link"))
    };
    assert!(overheard(&[]));
    assert!(overheard(&["fe80::1", "fe80::2"]));
    assert!(!overheard(&["fe80::1"]));
    assert!(!overheard(&["fe80::1", "192.0.2.1"]));
    // on the loopback alone, other hosts asked for
    for on in [&[][..], &["127.0.0.1", "192.0.2.1"][..]] {
        let why = only("127.0.0.1").warning(&ips(on)).unwrap();
        assert!(why.contains("other hosts cannot find"), "{on:?}: {why}");
    }
}

/// The cache's bound counts every kind of record `mdns-sd` keeps,
/// and its timers apart; the other metrics do not count.
#[test]
fn the_mdns_cache_bound_counts_every_kind_of_record() {
    let metrics = |pairs: &[(&str, usize)]| -> mdns_sd::Metrics {
        pairs
            .iter()
            .map(|(k, n)| (k.to_string(), i64::try_from(*n).unwrap()))
            .collect()
    };
    let a_sixth = MAX_MDNS_CACHED_RECORDS / 6 + 1;
    let kinds = CACHED_KINDS;
    let each: Vec<(&str, usize)> = kinds.iter().map(|k| (*k, a_sixth)).collect();
    assert!(matches!(
        over_bounds(&metrics(&each)),
        Some(Restart::Cache { records, .. }) if records == 6 * a_sixth
    ));
    let within: Vec<(&str, usize)> = kinds.iter().map(|k| (*k, a_sixth - 2)).collect();
    assert!(over_bounds(&metrics(&within)).is_none());
    assert!(over_bounds(&metrics(&[("timer", MAX_MDNS_TIMERS + 1)])).is_some());
    assert!(
        over_bounds(&metrics(&[
            ("timer", MAX_MDNS_TIMERS),
            ("respond", 1 << 40)
        ]))
        .is_none()
    );
    assert!(over_bounds(&metrics(&[("cached-ptr", MAX_MDNS_CACHED_RECORDS)])).is_none());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The machine's loopback interface as mDNS names it, if it has one.
fn if_addrs_loopback() -> Option<mdns_sd::InterfaceId> {
    (1..64).find_map(|index| {
        let id = mdns_sd::InterfaceId {
            name: String::new(),
            index,
        };
        let addrs = id.get_addrs();
        (!addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)).then_some(id)
    })
}

/// The instances a daemon tells of are counted by name, each once: one
/// told of again and again (a peer's updates) counts once; past
/// [`MAX_MDNS_INSTANCES`] names, the bound holds until mDNS starts afresh.
#[test]
fn instances_told_of_are_counted_once_each() {
    let mut told = Told::default();
    for _ in 0..2 {
        for i in 0..MAX_MDNS_INSTANCES {
            assert!(!told.over_bound(&format!("i-{i}._peernet._tcp.local.")));
        }
    }
    assert!(told.over_bound("one more._peernet._tcp.local."));
    assert!(told.over_bound("i-0._peernet._tcp.local."));
}

/// The name of an announcement ignored is any LAN host's text: its log
/// line shows it as the one escaper does for a log field (it was logged
/// as a `&str`, whose `Debug` passes a character that renders blank as
/// it is).
#[test]
fn an_ignored_announcement_is_logged_escaped() {
    let name = "x\u{1b}[2J \u{3164}\u{202e}._peernet._tcp.local.";
    let captured = Captured::default();
    tracing::subscriber::with_default(captured.clone(), || ignored(name));
    let shown = crate::text::escape(name.as_bytes(), crate::text::Layout::Field);
    assert_eq!(
        shown,
        r"x\u{1b}[2J\u{20}\u{3164}\u{202e}._peernet._tcp.local."
    );
    assert_eq!(*captured.0.lock().unwrap(), [format!("name={shown}")]);
}
