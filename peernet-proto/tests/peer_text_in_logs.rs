//! A handle name a peer sends is its own text: the core's log lines show
//! it through the one escaper (`peernet_proto::text`, a log field:
//! `Layout::Field`), as the driver's errors and the `peernet` tool show
//! a peer's words, not through `Debug`, which shows quotes as `\"` and
//! prints the characters that render blank (in which text could hide)
//! as they are.

mod support;

use std::fmt::{self, Write};
use std::sync::{Arc, Mutex};

use peernet_proto::text::{Layout, escape};
use support::{Pair, Who};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

/// Every event's message and fields, one line each: `message k=v ...`.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<String>>>);

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        }
        .unwrap();
    }
}

impl Subscriber for Captured {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        self.0.lock().unwrap().push(line);
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// A SEND and a CALL to a handle B does not expose, named with a quote, a
/// space, a right-to-left override and two Hangul fillers: B's "SEND
/// refused" and "call refused" lines show the name as the escaper does.
#[test]
fn a_refused_handle_is_logged_as_the_escaper_shows_it() {
    let name = "say \"hi\"\u{202e}\u{3164}\u{3164}x";
    let shown = format!("handle={}", escape(name.as_bytes(), Layout::Field));
    assert_eq!(shown, r#"handle=say\u{20}"hi"\u{202e}\u{3164}\u{3164}x"#);
    let captured = Captured::default();
    tracing::subscriber::with_default(captured.clone(), || {
        let mut p = Pair::new();
        p.dial(Who::A);
        p.drive();
        let (peer, now) = (p.id(Who::B), p.now);
        let a = &mut p.node(Who::A).ep;
        a.send(now, &peer, name, b"s").unwrap();
        a.call(now, &peer, name, b"c", None).unwrap();
        p.drive();
    });
    let lines = captured.0.lock().unwrap();
    for what in ["SEND refused", "call refused"] {
        let line = lines
            .iter()
            .find(|line| line.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} line in {lines:#?}"));
        assert!(line.contains(&format!(" {shown} ")), "{line}");
    }
}
