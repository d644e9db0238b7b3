//! A peer that drives a core `Endpoint` by hand over a real transport, so a
//! test can make it misbehave on purpose: answer late, or go silent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::{AsyncReadExt, AsyncWriteExt};
use peernet_proto::{
    Access, Config, ConnId, DialFailure, Endpoint, Envelope, Event, Identity, InboundCallId, Input,
    Instant, Output, PeerId, Response, TrustList,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use peernet_driver::{BoxRead, BoxWrite, Runtime, Transport};

/// A CALL of `handle` with request id `id`, no arguments and no timeout,
/// for [`RawPeer::send_raw`].
pub fn call_envelope(id: u64, handle: &str) -> Envelope {
    Envelope::Call {
        id,
        handle: peernet_proto::Handle::new(handle).expect("a valid handle"),
        args: Bytes::new(),
        timeout_ms: 0,
    }
}

/// A hand-driven peer: nothing happens unless the test pumps it.
pub struct RawPeer {
    ep: Endpoint,
    peer: PeerId,
    conn: ConnId,
    read: BoxRead,
    write: BoxWrite,
    epoch: StdInstant,
    events: VecDeque<Event>,
    buf: Vec<u8>,
}

impl RawPeer {
    /// Dials `node` at `addr` and completes the handshake. `handles` are
    /// exposed on this peer (default deny applies to it too).
    pub async fn dial<R: Runtime>(
        rt: &R,
        identity: Identity,
        node: PeerId,
        addr: SocketAddr,
        handles: &[&str],
    ) -> RawPeer {
        let transport = rt.connect(addr).await.expect("raw dial");
        RawPeer::over(transport, identity, node, handles).await
    }

    /// [`RawPeer::dial`] over a transport the test opened itself.
    pub async fn over(
        transport: Transport,
        identity: Identity,
        node: PeerId,
        handles: &[&str],
    ) -> RawPeer {
        let (read, write) = transport.into_parts();
        let peer = identity.peer_id();
        let trust: TrustList = [node].into_iter().collect();
        // (deterministic, and one stream per identity: two raw peers with
        // one stream would send the same version-2 ephemeral key, and the
        // node would take the second INIT for a replay of the first)
        let rng = ChaCha20Rng::from_seed(*peer.as_bytes());
        let mut config = Config::default();
        config.version = crate::version();
        let mut ep = Endpoint::new(config, identity, trust, Box::new(rng));
        for handle in handles {
            ep.expose(handle, Access::Anyone).expect("handle");
        }
        let conn = ep.connect(Instant::ZERO, Some(node)).expect("raw connect");
        let mut raw = RawPeer {
            ep,
            peer,
            conn,
            read,
            write,
            epoch: StdInstant::now(),
            events: VecDeque::new(),
            buf: vec![0; 64 * 1024],
        };
        loop {
            match raw.next_event().await {
                Event::Connected { .. } => break,
                Event::HandshakeFailed { error, .. } => panic!("raw handshake failed: {error}"),
                _ => {}
            }
        }
        // PROOF must leave before the test moves on
        raw.flush().await;
        raw
    }

    /// This peer's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer
    }

    /// The next event of the core already in hand, reading nothing.
    pub async fn try_event(&mut self) -> Option<Event> {
        self.flush().await;
        self.events.pop_front()
    }

    fn now(&self) -> Instant {
        Instant::from_duration(self.epoch.elapsed())
    }

    /// Writes whatever the core queued.
    pub async fn flush(&mut self) {
        while let Some(output) = self.ep.poll_output() {
            match output {
                Output::Transmit(conn) => {
                    if let Some(bytes) = self.ep.poll_transmit(conn) {
                        let _ = self.write.write_all(&bytes).await;
                    }
                }
                Output::Close { last, .. } => {
                    let _ = self.write.write_all(&last).await;
                    let _ = self.write.close().await;
                }
                Output::Event(event) => self.events.push_back(event),
                // One transport, opened by the test: nothing to dial.
                Output::Dial { peer, addr } => {
                    let cause = DialFailure::transport("this harness dials nothing");
                    self.ep.dial_failed(self.now(), peer, addr, cause);
                }
            }
        }
    }

    /// The next event of the core, reading from the transport as needed.
    pub async fn next_event(&mut self) -> Event {
        loop {
            self.flush().await;
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            self.read_once().await;
        }
    }

    /// Reads once from the transport (as much as one read brings, up to
    /// 64 KiB) and feeds it to the core; false at EOF. Pacing these is
    /// how a test plays a slow reader.
    pub async fn read_once(&mut self) -> bool {
        let n = self.read.read(&mut self.buf).await.unwrap_or(0);
        let now = self.now();
        let input = match n {
            0 => Input::Closed { conn: self.conn },
            n => Input::Received {
                conn: self.conn,
                data: Bytes::copy_from_slice(&self.buf[..n]).into(),
            },
        };
        self.ep.handle_input(now, input);
        n > 0
    }

    /// Writes a PING and nothing else: it reads nothing, so a peer that
    /// only ever pings keeps the node from thinking it idle while taking
    /// none of its bytes.
    pub async fn ping(&mut self, nonce: u64) {
        let now = self.now();
        let ping = Envelope::Ping { nonce };
        assert!(self.ep.testkit_queue_envelope(now, self.conn, &ping));
        self.flush().await;
    }

    /// Writes `envelopes` as they are, whatever this peer's own calls (a
    /// CANCEL of a call it made up, say), in one write: in version 2
    /// sealed into as few records as hold them, so that the node reads
    /// them together.
    pub async fn send_raw(&mut self, envelopes: &[Envelope]) {
        let now = self.now();
        for envelope in envelopes {
            assert!(self.ep.testkit_queue_envelope(now, self.conn, envelope));
        }
        self.flush().await;
    }

    /// Writes `bytes` as they are, past the core (no record, no frame
    /// of its own): a test plays a peer that lies about a frame's length
    /// or drips a frame out slowly. The core's stream is broken after it.
    pub async fn write_bytes(&mut self, bytes: &[u8]) {
        let _ = self.write.write_all(bytes).await;
        let _ = self.write.flush().await;
    }

    /// Writes a GOODBYE (code normal) as a record like any other, and
    /// nothing else: the transport stays open and nothing is read, so a
    /// test can say GOODBYE right behind a call, leaving the node's reply
    /// unread.
    pub async fn goodbye(&mut self) {
        let now = self.now();
        let goodbye = Envelope::Goodbye {
            code: 0,
            reason: "bye".into(),
        };
        assert!(self.ep.testkit_queue_envelope(now, self.conn, &goodbye));
        self.flush().await;
    }

    /// Calls `handle` on the node with `timeout` carried on the wire, and
    /// writes the CALL. This peer's timers run only when a test pumps
    /// them, so it never sends the CANCEL its own timeout would: only the
    /// callee's deadline can end the call on the node.
    pub async fn call(&mut self, node: &PeerId, handle: &str, args: &[u8], timeout: Duration) {
        let now = self.now();
        self.ep
            .call(now, node, handle, args, Some(timeout))
            .expect("raw call");
        self.flush().await;
    }

    /// Answers a call through the core (and writes the reply).
    pub async fn reply(&mut self, id: InboundCallId, response: Response) {
        let now = self.now();
        assert!(self.ep.reply(now, id, response), "call no longer in flight");
        self.flush().await;
    }

    /// Writes a REPLY the core would never send (a late one), through the
    /// core so that version 2 seals it like any other.
    pub async fn reply_anyway(&mut self, request_id: u64, body: &[u8]) {
        let reply = Envelope::Reply {
            id: request_id,
            status: 0,
            body: Bytes::copy_from_slice(body),
        };
        let now = self.now();
        assert!(self.ep.testkit_queue_envelope(now, self.conn, &reply));
        self.flush().await;
    }
}
