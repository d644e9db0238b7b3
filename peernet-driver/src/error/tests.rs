//! Tests of the errors' messages and chains.

use crate::TypedCallError;

/// Asserts that no error of `error`'s chain repeats its source's
/// message, and that the chain, as [`super::ErrorChain`] shows it,
/// says `cause` exactly once.
pub(crate) fn says_each_cause_once(error: &dyn std::error::Error, cause: &str) {
    let shown = super::ErrorChain(error).to_string();
    let mut at = Some(error);
    while let Some(e) = at {
        if let Some(source) = e.source() {
            let (outer, inner) = (e.to_string(), source.to_string());
            assert!(
                !outer.contains(&inner),
                "`{outer}` repeats `{inner}`: {shown}"
            );
        }
        at = e.source();
    }
    assert_eq!(shown.matches(cause).count(), 1, "`{cause}` in `{shown}`");
}

/// Every error of this crate that wraps another returns it from
/// `source` and leaves it out of its own message, so that a reporter
/// walking the chain (anyhow's `{:#}`, [`super::ErrorChain`]) says
/// each cause once: `ConnectError::Io` said `io: refused: refused`,
/// `TrustChangeError::File` its file's error twice.
#[test]
fn an_error_chain_says_each_cause_once() {
    use super::{ConnectError, StartError, TrustChangeError};
    use crate::book_file::{BookFileError, BookFileErrorKind, LoadBookError};
    use crate::persist::{DataFile, FileError, NotDurable};
    use crate::{LockError, TicketError};
    use peernet_proto::{HandshakeError, InvalidIdentity, InvalidPeerId, SourceRefusal};
    use std::io;
    let cause = || io::Error::other("the-cause");
    let core = peernet_proto::ConnectError::Handshake(HandshakeError::Timeout);
    let limited = peernet_proto::ConnectError::SourceLimited(SourceRefusal::Busy);
    let damaged = peernet_proto::TrustList::from_text("peernet-trust-list v1\nx\nend 1\n")
        .expect_err("a damaged list");
    let unsynced = || NotDurable {
        file: DataFile::TrustList,
        path: "trust".into(),
        source: cause(),
    };
    let no_entropy = getrandom::Error::UNSUPPORTED.to_string();
    fn in_file<E>(source: E) -> FileError<E> {
        let path = "/the-dir/file".into();
        FileError {
            file: DataFile::TrustList,
            path,
            source,
        }
    }
    let cases: Vec<(Box<dyn std::error::Error>, &str)> = vec![
        (Box::new(ConnectError::Io(cause())), "the-cause"),
        (
            Box::new(ConnectError::Dial {
                addr: ([127, 0, 0, 1], 7000).into(),
                source: cause(),
            }),
            "the-cause",
        ),
        (
            Box::new(StartError::Listen {
                addr: ([127, 0, 0, 1], 7000).into(),
                source: cause(),
            }),
            "the-cause",
        ),
        (
            Box::new(ConnectError::Handshake(HandshakeError::Timeout)),
            "handshake timed out",
        ),
        (Box::new(ConnectError::Start(core)), "handshake timed out"),
        (
            Box::new(ConnectError::Start(limited)),
            "too many handshakes",
        ),
        (Box::new(StartError::Io(cause())), "the-cause"),
        (
            Box::new(StartError::Identity(in_file(InvalidIdentity::Mismatch))),
            "does not match",
        ),
        (Box::new(StartError::TrustList(in_file(damaged))), "line 2"),
        (
            Box::new(StartError::Io(FileError::io(
                DataFile::TrustList,
                "/the-dir/trust",
                cause(),
            ))),
            "the-cause",
        ),
        (
            Box::new(StartError::Io(FileError::io(
                DataFile::TrustList,
                "/the-dir/trust",
                cause(),
            ))),
            "/the-dir/trust",
        ),
        (
            Box::new(StartError::TrustList(in_file(
                peernet_proto::TrustList::from_text("x").expect_err("damaged"),
            ))),
            "/the-dir/file",
        ),
        (
            Box::new(LoadBookError::Io(FileError::io(
                DataFile::Book,
                "/the-dir/book",
                cause(),
            ))),
            "/the-dir/book",
        ),
        (
            Box::new(LoadBookError::Damaged(in_file(BookFileError {
                line: 3,
                kind: BookFileErrorKind::Malformed,
            }))),
            "/the-dir/file",
        ),
        (
            Box::new(LockError::Io(FileError::io(
                DataFile::Lock,
                "/the-dir/lock",
                cause(),
            ))),
            "/the-dir/lock",
        ),
        (
            Box::new(StartError::Config(peernet_proto::ConfigError::Zero("x"))),
            "x must be above zero",
        ),
        (
            Box::new(StartError::Entropy(getrandom::Error::UNSUPPORTED)),
            &no_entropy,
        ),
        (
            Box::new(StartError::Book(LoadBookError::Io(cause()))),
            "the-cause",
        ),
        (
            Box::new(StartError::Lock(LockError::Io(cause()))),
            "the-cause",
        ),
        (Box::new(TrustChangeError::File(cause())), "the-cause"),
        (
            Box::new(TrustChangeError::RevokedNotSaved {
                changed: true,
                source: cause(),
            }),
            "the-cause",
        ),
        (
            Box::new(TrustChangeError::NotDurable {
                changed: true,
                source: unsynced(),
            }),
            "the-cause",
        ),
        (
            Box::new(io::Error::from(TrustChangeError::RevokedNotSaved {
                changed: true,
                source: cause(),
            })),
            "the-cause",
        ),
        (Box::new(io::Error::other(unsynced())), "the-cause"),
        (
            Box::new(TicketError::PeerId(InvalidPeerId::Weak)),
            "weak (small-order)",
        ),
    ];
    for (error, cause) in &cases {
        says_each_cause_once(error.as_ref(), cause);
    }
    #[cfg(feature = "mdns")]
    {
        use crate::discovery::DiscoveryError;
        let mdns = mdns_sd::Error::Msg("the-cause".into());
        says_each_cause_once(&DiscoveryError::Mdns(mdns), "the-cause");
        let entropy = DiscoveryError::Entropy(getrandom::Error::UNSUPPORTED);
        says_each_cause_once(&entropy, &no_entropy);
    }
}

/// A trust change's error converts to the `io::Error` `pair` and
/// `unpair` returned before `TrustChangeError`, so that code written
/// for `io::Result` keeps its `?` and its checks: the kinds, and a
/// `NotDurable` that `NotDurable::is` finds.
#[test]
fn a_trust_change_error_converts_to_the_io_error_it_was() {
    use super::TrustChangeError;
    use crate::persist::NotDurable;
    use std::io;
    let own = peernet_proto::Identity::from_seed(&[3; 32]).peer_id();
    let io_of = |e: TrustChangeError| -> io::Error { e.into() };
    let e = io_of(TrustChangeError::OwnPeerId(own));
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains(&own.to_string()), "{e}");
    let e = io_of(TrustChangeError::File(io::Error::new(
        io::ErrorKind::InvalidData,
        "line 3",
    )));
    assert_eq!(
        (e.kind(), e.to_string()),
        (io::ErrorKind::InvalidData, "line 3".into())
    );
    let e = io_of(TrustChangeError::RevokedNotSaved {
        changed: true,
        source: io::ErrorKind::StorageFull.into(),
    });
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert!(e.to_string().starts_with("revoked in this run"), "{e}");
    let unsynced = NotDurable {
        file: crate::persist::DataFile::TrustList,
        path: "trust".into(),
        source: io::ErrorKind::PermissionDenied.into(),
    };
    let e = io_of(TrustChangeError::NotDurable {
        changed: false,
        source: unsynced,
    });
    assert!(NotDurable::is(&e), "{e}");
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    // (the file named as a `FileError` names it: kind, then path)
    assert!(
        e.to_string().starts_with("trust list trust was replaced"),
        "{e}"
    );
    for closed in [TrustChangeError::Closed, TrustChangeError::Dropped] {
        let text = closed.to_string();
        let e = io_of(closed);
        assert_eq!((e.kind(), e.to_string()), (io::ErrorKind::Other, text));
    }
}

/// A handler's error value is in the message (it used to say only
/// "handler error"), escaped, and cut after 256 bytes on a character
/// boundary, however long the peer made it.
#[test]
fn a_handler_error_says_its_value_escaped_and_cut() {
    let shown = |value: &str| TypedCallError::Handler(value.to_owned()).to_string();
    assert_eq!(
        shown("no such user"),
        "the handler answered with an error: \"no such user\""
    );
    assert_eq!(
        shown("x\n\u{1b}[31m"),
        "the handler answered with an error: \"x\\n\\u{1b}[31m\""
    );
    let long = shown(&"é".repeat(10_000));
    let value = long
        .strip_prefix("the handler answered with an error: ")
        .unwrap();
    let kept = value.strip_suffix('…').unwrap();
    assert_eq!(kept.len(), 255, "{kept}");
    assert_eq!(kept, format!("\"{}", "é".repeat(127)));
    #[cfg(feature = "serde")]
    assert_eq!(
        crate::ServiceError::Handler(7u8).to_string(),
        "the handler answered with an error: 7"
    );
}

/// `with_value_display` shows a handler's value by its own `Display`
/// (a type with no `Debug` too), escaped, and cut after 256 bytes
/// between two escapes: a typed error's message had only the value's
/// `Debug` form (`"no such user"`, quotes and all; `NotEnough { left:
/// 2 }`), however well the type said itself.
#[test]
fn a_handler_value_is_shown_by_its_display_escaped_and_cut() {
    struct Words(String);
    impl std::fmt::Display for Words {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    let shown = |value: &str| {
        let error = TypedCallError::Handler(Words(value.to_owned()));
        error.with_value_display().to_string()
    };
    let lead = "the handler answered with an error: ";
    assert_eq!(shown("needs 500 ms"), format!("{lead}needs 500 ms"));
    assert_eq!(shown("x\n\u{1b}[31m"), format!("{lead}x\\n\\u{{1b}}[31m"));
    let long = shown(&"\u{1b}".repeat(10_000));
    let kept = long.strip_prefix(lead).unwrap().strip_suffix('…').unwrap();
    assert_eq!(kept, "\\u{1b}".repeat(256 / 6), "whole escapes only");
    // every other variant reads as the error's `Display`
    let call = TypedCallError::<Words>::Call(peernet_proto::CallError::Timeout);
    assert_eq!(call.with_value_display().to_string(), "timed out");
    #[cfg(feature = "serde")]
    assert_eq!(
        crate::ServiceError::Handler(Words("no".into()))
            .with_value_display()
            .to_string(),
        format!("{lead}no")
    );
}

/// Review s51 (revd): a callee's reason for a bad request, or a
/// decoder's message that quotes the reply, was shown whole in the
/// error's message, escaped: a callee could make every message of a
/// failed typed call (a log line each) as long as a frame, 1 MiB, or
/// several times that once escaped. It is cut after 256 bytes, as a
/// handler's error value is, before it is escaped, so that no escape
/// is cut in two.
#[test]
fn a_peers_words_in_a_typed_error_are_cut() {
    let long = "\u{1b}".repeat(1 << 20);
    let decode = || minicbor::decode::Error::message(format!("unknown variant `{long}`"));
    let messages = [
        TypedCallError::<()>::BadRequest(long.clone()).to_string(),
        TypedCallError::<()>::Decode(decode()).to_string(),
        #[cfg(feature = "serde")]
        crate::ServiceError::<()>::BadRequest(long.clone()).to_string(),
        #[cfg(feature = "serde")]
        crate::ServiceError::<()>::BadResponse(long.clone()).to_string(),
    ];
    for message in messages {
        assert!(message.len() < 2_000, "{} bytes", message.len());
        let (_, words) = message.split_once(": ").unwrap();
        // (every escape whole, `\u{1b}` 6 bytes each)
        let kept = words.strip_suffix('…').expect("cut");
        let kept = kept.split_once('`').map_or(kept, |(_, quoted)| quoted);
        assert!(
            kept.len() % 6 == 0 && kept.chars().all(|c| c != '\u{1b}'),
            "{kept}"
        );
    }
    // short words are shown whole, escaped
    assert_eq!(
        TypedCallError::<()>::BadRequest("a\nb".into()).to_string(),
        "the callee could not decode the arguments: a\\nb"
    );
}

/// Brief s55 (msg): a dial round one of whose addresses answered REJECT
/// said `peer … rejected the handshake (untrusted)`. A REJECT comes
/// before the node answering proves who it is and is not authenticated
/// (PROTOCOL.md 2.1 and 6): on version 1 another node at that address
/// answers `untrusted` too. The message says the node at that address
/// refused, for the peer dialed, and never that the peer did.
#[test]
fn a_rejected_round_names_the_address_that_refused_not_the_peer() {
    use super::ConnectError;
    use peernet_proto::{DialFailure, HandshakeError, Identity, RejectCode};
    let peer = Identity::from_seed(&[2; 32]).peer_id();
    let refused: std::net::SocketAddr = "192.0.2.7:7000".parse().unwrap();
    let busy: std::net::SocketAddr = "192.0.2.8:7000".parse().unwrap();
    let dead: std::net::SocketAddr = "192.0.2.9:7000".parse().unwrap();
    let rejected = |code| DialFailure::Handshake(HandshakeError::Rejected(code));
    let err = ConnectError::Unreachable {
        peer,
        tried: vec![
            (busy, rejected(RejectCode::Busy)),
            (refused, rejected(RejectCode::Untrusted)),
            (dead, DialFailure::transport("connection refused")),
        ],
    };
    assert_eq!(err.rejection(), Some(RejectCode::Untrusted));
    let said = err.to_string();
    let lead = format!(
        "the node at {refused} rejected the handshake for peer {peer} (untrusted); \
         no address tried gave a connection: {busy}: "
    );
    assert!(said.starts_with(&lead), "{said}");
    assert!(!said.contains(&format!("peer {peer} rejected")), "{said}");
    // `unexpected_peer` (the node there said it is not the peer) is not
    // a refusal: the round reads as unreachable
    let err = ConnectError::Unreachable {
        peer,
        tried: vec![(refused, rejected(RejectCode::UnexpectedPeer))],
    };
    assert_eq!(err.rejection(), None);
    assert!(
        err.to_string().starts_with(&format!(
            "peer {peer} is unreachable at every address tried: "
        )),
        "{err}"
    );
}

/// Brief s57 (api): `ConnectError` had no `is_transient`, so a loop
/// retrying `connect_peer` matched every variant itself. Each variant is
/// sorted as its documentation says: the transport's failures by their
/// kind, the core's and the handshake's as the core sorts them (REJECT
/// `busy` transient, `untrusted` not), a round by any address's cause.
#[test]
fn every_connect_error_is_sorted_as_documented() {
    use super::ConnectError;
    use peernet_proto::{DialFailure, HandshakeError, Identity, RejectCode};
    use std::io::{Error, ErrorKind};
    let peer = Identity::from_seed(&[2; 32]).peer_id();
    let addr: std::net::SocketAddr = "192.0.2.7:7000".parse().unwrap();
    let dial = |kind| ConnectError::Dial {
        addr,
        source: Error::new(kind, "words"),
    };
    let rejected = |code| DialFailure::Handshake(HandshakeError::Rejected(code));
    let round = |tried: Vec<DialFailure>| ConnectError::Unreachable {
        peer,
        tried: tried.into_iter().map(|f| (addr, f)).collect(),
    };
    let cases = [
        (ConnectError::Io(Error::other("no such host")), true),
        (
            ConnectError::Io(Error::new(ErrorKind::InvalidInput, "x")),
            false,
        ),
        (dial(ErrorKind::ConnectionRefused), true),
        (dial(ErrorKind::HostUnreachable), true),
        (dial(ErrorKind::TimedOut), true),
        (dial(ErrorKind::InvalidInput), false),
        (dial(ErrorKind::Unsupported), false),
        (dial(ErrorKind::PermissionDenied), false),
        (
            ConnectError::Start(peernet_proto::ConnectError::ShuttingDown),
            false,
        ),
        (
            ConnectError::Start(peernet_proto::ConnectError::Untrusted(peer)),
            false,
        ),
        (
            ConnectError::Start(peernet_proto::ConnectError::NoAddress(peer)),
            false,
        ),
        (
            ConnectError::Start(peernet_proto::ConnectError::DialInFlight { peer, addr }),
            true,
        ),
        (
            ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Busy)),
            true,
        ),
        (
            ConnectError::Handshake(HandshakeError::Rejected(RejectCode::Untrusted)),
            false,
        ),
        (ConnectError::Handshake(HandshakeError::Timeout), true),
        (ConnectError::Handshake(HandshakeError::Abandoned), false),
        (round(vec![]), false),
        (round(vec![rejected(RejectCode::Untrusted)]), false),
        (
            round(vec![
                rejected(RejectCode::Untrusted),
                DialFailure::transport("refused"),
            ]),
            true,
        ),
        (round(vec![rejected(RejectCode::Busy)]), true),
        (
            ConnectError::Timeout(std::time::Duration::from_secs(1)),
            true,
        ),
    ];
    for (error, transient) in cases {
        assert_eq!(error.is_transient(), transient, "{error:?}");
    }
}
