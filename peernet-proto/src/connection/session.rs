//! An established connection (PROTOCOL.md section 3): its calls in both
//! directions and request ids (3.1), the envelopes that arrive, and the
//! commands that queue envelopes.

use alloc::format;
use core::time::Duration;

use bytes::Bytes;

use crate::codes::{GoodbyeCode, ReplyStatus};
use crate::config::fault;
use crate::ending::Ending;
use crate::envelope::{Envelope, EnvelopeRef, Handle, Slicing};
use crate::error::{CallError, SendError};
use crate::event::{Event, InboundCall, InboundSend, Response};
use crate::handshake;
use crate::identity::PeerId;
use crate::ids::{CallId, ConnId, Direction, InboundCallId};
use crate::registry::Established;
use crate::text::{Layout, escaped};
use crate::timers::Timer;

use super::in_flight::InFlight;
use super::pin::Pin;
use super::{Connection, Ctx, Node, State, Transition};

/// A panic note longer than this is cut, ours and a peer's: the spec asks
/// for a short note.
const MAX_PANIC_NOTE: usize = 256;

/// An established connection's bookkeeping.
pub(super) struct Session {
    /// The proven peer.
    pub(super) peer: PeerId,
    /// What the rule of section 4 needs to know.
    pub(super) established: Established,
    /// Whether the peer has sent an envelope yet. Until it has, an
    /// initiator still accepts the responder's REJECT of its PROOF.
    heard_envelope: bool,
    /// Whether the endpoint announced this connection with `Connected`.
    pub(super) announced: bool,
    next_id: u64,
    /// Our calls in flight.
    pub(super) outbound: InFlight,
    /// Calls we serve in flight, with the size of their arguments and
    /// their serial.
    pub(super) inbound: InFlight<Served>,
    /// The serial of the next call we serve (see [`Served::serial`]).
    next_serial: u32,
    /// Bytes held against `max_inbound_bytes_per_conn`: arguments of
    /// `inbound` and of SENDs still running, bodies of replies waiting
    /// (`replies.rs`).
    pub(super) held: usize,
}

impl Session {
    /// `first_id` and `seed` come from the endpoint's RNG: the first is
    /// where our request ids start, the second keys the in-flight tables.
    pub(super) fn new(
        conn: ConnId,
        peer: PeerId,
        established: Established,
        first_id: u64,
        seed: u64,
    ) -> Session {
        Session {
            peer,
            established,
            heard_envelope: false,
            announced: false,
            next_id: first_id,
            outbound: InFlight::new(seed, Timer::Outbound(conn)),
            inbound: InFlight::new(seed.rotate_left(32), Timer::Inbound(conn)),
            next_serial: 0,
            held: 0,
        }
    }

    /// The next request id: non-zero and not in flight. Counting up from
    /// a random start means ids are not reused on a connection in
    /// practice; the loop only guards the wrap.
    fn next_request_id(&mut self) -> u64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && !self.outbound.contains(id) {
                return id;
            }
        }
    }

    /// A REPLY to one of our calls: resolves it, or drops a late reply to
    /// a call that timed out or was cancelled, or any unknown id (3.1).
    pub(super) fn resolve_reply(
        &mut self,
        conn: ConnId,
        id: u64,
        status: u64,
        body: Bytes,
        ctx: &mut Ctx,
    ) {
        if !self.outbound.remove(id, &mut ctx.timers) && !fault!(ctx.config, LateReplyDelivered) {
            return;
        }
        let status = ReplyStatus::from_code(status);
        ctx.counters.calls_out.by_status.add(status);
        let result = match status {
            ReplyStatus::Ok => Ok(body),
            ReplyStatus::NoSuchHandle => Err(CallError::NoSuchHandle),
            ReplyStatus::Forbidden => Err(CallError::Forbidden),
            // (the spec's "short UTF-8 note", as we send one: a peer's
            // frame of anything is cut, and copied so as to pin nothing)
            ReplyStatus::HandlerPanicked => Err(CallError::HandlerPanicked(
                Bytes::copy_from_slice(&utf8_prefix(body, MAX_PANIC_NOTE)),
            )),
            ReplyStatus::Overloaded => Err(CallError::Overloaded),
            ReplyStatus::ShuttingDown => Err(CallError::ShuttingDown),
            ReplyStatus::TooLarge => Err(CallError::ResultTooLarge),
            _ => Err(CallError::HandlerError(body)),
        };
        ctx.emit(Event::CallResult {
            id: CallId { conn, id },
            result,
        });
    }
}

impl Session {
    /// Takes `bytes` of inbound arguments, or of a waiting reply's body
    /// (`replies.rs`), against the connection's and the node's budgets;
    /// false (nothing taken) if either would overflow.
    pub(super) fn hold(&mut self, bytes: usize, ctx: &mut Ctx) -> bool {
        // (the peer's SENDs that outlived its earlier connections count
        // too: `orphans.rs`)
        let orphans = ctx.orphans.of(&self.peer);
        let conn = self.held.saturating_add(bytes).saturating_add(orphans);
        let node = ctx.held.saturating_add(bytes);
        if conn > ctx.config.max_inbound_bytes_per_conn || node > ctx.config.max_inbound_bytes {
            return false;
        }
        self.held += bytes;
        ctx.held = node;
        true
    }

    /// Gives back what [`Session::hold`] took.
    pub(super) fn release(&mut self, bytes: usize, ctx: &mut Ctx) {
        self.held = self.held.saturating_sub(bytes);
        ctx.held = ctx.held.saturating_sub(bytes);
    }
}

impl Connection {
    /// The connection ends: the arguments of the calls it served go with
    /// them; its SENDs still running keep theirs in the node's total until
    /// the driver reports them done, counted against its peer.
    pub(super) fn release_calls_at_close(&mut self, inbound: &[(u64, Served)], ctx: &mut Ctx) {
        let call_bytes: usize = inbound.iter().map(|(_, s)| s.size as usize).sum();
        ctx.held = ctx.held.saturating_sub(call_bytes);
        if let State::Established(s) = &self.state {
            ctx.orphans
                .adopt(self.id, s.peer, s.held.saturating_sub(call_bytes));
        }
    }

    /// One version-1 envelope frame's body, `data[..len]` (version 2's
    /// records come in through `Connection::on_record`); `own`: `data` is
    /// the frame alone, in a buffer of its own.
    pub(super) fn on_envelope(
        &mut self,
        data: &Bytes,
        len: usize,
        own: bool,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        let State::Established(s) = &mut self.state else {
            return None;
        };
        if !s.heard_envelope && self.direction == Direction::Outbound {
            // The responder's verdict on our PROOF can arrive after we
            // started using the connection.
            if let Some(code) = handshake::parse_reject(&data[..len]) {
                return Some(Transition::End(Ending::RejectedAfterProof(code)));
            }
        }
        ctx.counters.records_in += 1;
        // (its small payloads share a buffer with the chunk's other frames')
        let arena = Some((&mut self.arena, data.len() - len));
        let slices = Slicing::on_connection(own);
        let envelope = match Envelope::decode_prefix(data, len, arena, slices) {
            Ok(envelope) => envelope,
            Err(error) => return Some(Transition::End(Ending::ProtocolError(format!("{error}")))),
        };
        let pin = own.then(|| Pin::new(data, data.len()));
        self.on_decoded(envelope, pin, node, ctx)
    }

    /// One envelope, from a frame (version 1) or a record (version 2);
    /// `pin`: the buffer of its own it was decoded from, if it was.
    pub(super) fn on_decoded(
        &mut self,
        envelope: Envelope,
        pin: Option<Pin>,
        node: &mut Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        let State::Established(s) = &mut self.state else {
            return None;
        };
        s.heard_envelope = true;
        let conn = self.id;
        match envelope {
            Envelope::Call {
                id,
                handle,
                args,
                timeout_ms,
            } => return self.on_call(id, handle, args, timeout_ms, pin, node, ctx),
            Envelope::Reply { id, status, body } => {
                if fault!(ctx.config, ReplyAnyConnection) {
                    return Some(Transition::MisroutedReply { id, status, body });
                }
                s.resolve_reply(conn, id, status, body, ctx);
            }
            Envelope::Send { handle, args } => {
                // (never a slice: the driver gives back `args.len()`,
                // `Endpoint::send_done`, which must be all it keeps alive;
                // the decoder copied it, `Slicing::NotSends`)
                debug_assert!(
                    !Pin::slices(pin, &args),
                    "a SEND's arguments must be a copy"
                );
                let peer = s.peer;
                let open = !node.shutting_down || fault!(ctx.config, HandlersWhileShuttingDown);
                let allowed = node.exposure.check(handle.as_str(), &peer);
                if allowed.is_ok() && open {
                    if s.hold(args.len(), ctx) {
                        ctx.counters.sends_in += 1;
                        ctx.emit(Event::Send(InboundSend {
                            conn,
                            peer,
                            handle,
                            args,
                        }));
                    } else {
                        ctx.counters.sends_dropped += 1;
                        tracing::debug!(conn = %conn, peer = %peer, handle = %escaped(handle.as_bytes(), Layout::Field), "SEND dropped: byte budget full");
                    }
                } else {
                    ctx.counters.sends_refused += 1;
                    tracing::debug!(conn = %conn, peer = %peer, handle = %escaped(handle.as_bytes(), Layout::Field), shutting_down = !open, "SEND refused");
                }
            }
            Envelope::Ping { nonce } => {
                if !fault!(ctx.config, NoPong) {
                    let _ = self.tx.push(EnvelopeRef::Pong { nonce }, ctx);
                }
                return self.enforce_send_cap(ctx).map(Transition::End);
            }
            Envelope::Pong { nonce } => self.liveness.on_pong(nonce),
            Envelope::Goodbye { code, reason } => {
                // (a copy: the cut must not keep the long one's buffer)
                let max = crate::error::CloseReason::MAX_PEER_REASON;
                let reason = alloc::string::String::from(crate::error::cut(&reason, max));
                return Some(Transition::End(Ending::Goodbye {
                    code: GoodbyeCode::from_code(code),
                    reason,
                }));
            }
            Envelope::Cancel { id } => {
                let taken = match fault!(ctx.config, CancelIgnored) {
                    true => None,
                    false => s.inbound.take(id, &mut ctx.timers),
                };
                if let Some(served) = taken {
                    ctx.counters.calls_in.cancelled += 1;
                    s.release(served.size as usize, ctx);
                    ctx.emit(Event::CallCancelled(served.id(conn, id)));
                } else if let Some(len) = self.waiting.cancel(id, &mut ctx.counters.calls_in) {
                    // (answered, its reply waiting: dropped, slot freed)
                    self.release_waiting(len, ctx);
                } else if fault!(ctx.config, CancelUnknownIsError) {
                    let reason = format!("CANCEL of request id {id}, not in flight");
                    return Some(Transition::End(Ending::ProtocolError(reason)));
                }
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn on_call(
        &mut self,
        id: u64,
        handle: Handle,
        args: Bytes,
        timeout_ms: u64,
        pin: Option<Pin>,
        node: &Node<'_>,
        ctx: &mut Ctx,
    ) -> Option<Transition> {
        let State::Established(s) = &mut self.state else {
            return None;
        };
        if id == 0 {
            return Some(Transition::End(Ending::ProtocolError(
                "CALL with request id 0".into(),
            )));
        }
        // (a call whose reply waits is still in flight for its caller)
        if s.inbound.contains(id) || self.waiting.contains(id) {
            let reason = format!("CALL reuses request id {id}, still in flight");
            return Some(Transition::End(Ending::ProtocolError(reason)));
        }
        let peer = s.peer;
        ctx.counters.calls_in.started += 1;
        // (Ok: the bytes `hold` took for its arguments)
        let verdict = if node.shutting_down && !fault!(ctx.config, HandlersWhileShuttingDown) {
            Err(ReplyStatus::ShuttingDown)
        } else {
            // (a call whose reply waits for room keeps its slot: a peer
            // that reads nothing cannot make replies wait without bound;
            // what it calls beyond is refused into the queue, which the
            // hard send cap bounds)
            let waiting = self.waiting.count();
            let full = s.inbound.len() + waiting >= ctx.config.max_inbound_calls
                && !fault!(ctx.config, IgnoreInboundLimit);
            let exposed = node.exposure.check(handle.as_str(), &peer);
            let exposed = exposed.or_else(|e| match fault!(ctx.config, SkipExposureCheck) {
                true => Ok(()),
                false => Err(e),
            });
            // Lazily: the byte budgets are taken only for a call that
            // runs, for what its arguments keep alive.
            exposed.and_then(|()| {
                let kept = Pin::kept(pin, &args);
                if full || !s.hold(kept, ctx) {
                    Err(ReplyStatus::Overloaded)
                } else {
                    Ok(kept)
                }
            })
        };
        match verdict {
            Err(status) => {
                ctx.counters.calls_in.by_status.add(status);
                tracing::debug!(conn = %self.id, peer = %peer, handle = %escaped(handle.as_bytes(), Layout::Field), %status, "call refused");
                let _ = self.tx.push_reply(id, status, &[], ctx);
                self.enforce_send_cap(ctx).map(Transition::End)
            }
            Ok(kept) => {
                let deadline =
                    (timeout_ms > 0).then(|| ctx.now + Duration::from_millis(timeout_ms));
                // `hold` took this, at most a frame (`max_frame_len`): a u32.
                let size = u32::try_from(kept).unwrap_or(u32::MAX);
                let served = Served {
                    size,
                    serial: s.next_serial,
                };
                s.next_serial = s.next_serial.wrapping_add(1);
                s.inbound.insert_with(id, deadline, served, &mut ctx.timers);
                ctx.emit(Event::Call(InboundCall {
                    id: served.id(self.id, id),
                    peer,
                    handle,
                    args,
                    deadline,
                }));
                None
            }
        }
    }

    /// A peer that makes us queue replies and pongs it never reads would
    /// grow our memory without bound: past the hard cap it is cut off.
    pub(super) fn enforce_send_cap(&mut self, ctx: &mut Ctx) -> Option<Ending> {
        let cap = ctx.config.hard_send_cap();
        if self.tx.len() <= cap {
            return None;
        }
        self.drop_queue(ctx);
        let reason = format!("peer does not read: over {cap} bytes queued");
        Some(Ending::ProtocolError(reason))
    }

    /// Queues a CALL (see [`crate::Endpoint::call`]).
    pub(crate) fn call(
        &mut self,
        handle: &str,
        args: &[u8],
        timeout: Option<Duration>,
        ctx: &mut Ctx,
    ) -> Result<CallId, SendError> {
        let queued = self.tx.len();
        let State::Established(s) = &mut self.state else {
            return Err(SendError::NotConnected);
        };
        if s.outbound.len() >= ctx.config.max_outbound_calls || queued >= ctx.config.send_buffer {
            return Err(SendError::WouldBlock);
        }
        let timeout_ms = timeout.map_or(0, |t| {
            u64::try_from(t.as_nanos().div_ceil(1_000_000))
                .unwrap_or(u64::MAX)
                .max(1)
        });
        let id = s.next_request_id();
        let call = EnvelopeRef::Call {
            id,
            handle,
            args,
            timeout_ms,
        };
        if timeout.is_some_and(|t| t.is_zero()) {
            // No budget: the wire cannot say so (0 is no limit), and a
            // CALL with 1 ms would start a handler nobody waits for. It
            // times out unsent, refused where any call would be.
            if call.body_len() > self.tx.max_body(ctx.config.max_frame_len) {
                return Err(SendError::MessageTooLarge);
            }
            ctx.counters.calls_out.started += 1;
            ctx.counters.calls_out.timed_out += 1;
            let id = CallId { conn: self.id, id };
            let result = Err(CallError::Timeout);
            ctx.emit(Event::CallResult { id, result });
            return Ok(id);
        }
        self.tx
            .push(call, ctx)
            .map_err(|_| SendError::MessageTooLarge)?;
        let deadline = timeout.map(|t| ctx.now + t);
        s.outbound.insert(id, deadline, &mut ctx.timers);
        ctx.counters.calls_out.started += 1;
        Ok(CallId { conn: self.id, id })
    }

    /// Queues any envelope as it is (testkit only).
    #[cfg(feature = "testkit")]
    pub(crate) fn queue_raw(&mut self, envelope: &Envelope, ctx: &mut Ctx) -> bool {
        matches!(self.state, State::Established(_)) && self.tx.push(envelope.as_ref(), ctx).is_ok()
    }

    /// Queues a SEND (see [`crate::Endpoint::send`]).
    pub(crate) fn send(
        &mut self,
        handle: &str,
        args: &[u8],
        ctx: &mut Ctx,
    ) -> Result<(), SendError> {
        if !matches!(self.state, State::Established(_)) {
            return Err(SendError::NotConnected);
        }
        if self.tx.len() >= ctx.config.send_buffer && !fault!(ctx.config, SendIgnoresSendBuffer) {
            return Err(SendError::WouldBlock);
        }
        self.tx
            .push(EnvelopeRef::Send { handle, args }, ctx)
            .map_err(|_| SendError::MessageTooLarge)?;
        ctx.counters.sends_out += 1;
        Ok(())
    }

    /// Gives up on one of our calls (see [`crate::Endpoint::cancel`]).
    pub(crate) fn cancel(&mut self, id: u64, ctx: &mut Ctx) -> bool {
        let State::Established(s) = &mut self.state else {
            return false;
        };
        if !s.outbound.remove(id, &mut ctx.timers) {
            return false;
        }
        let _ = self.tx.push(EnvelopeRef::Cancel { id }, ctx);
        ctx.counters.calls_out.cancelled += 1;
        ctx.emit(Event::CallResult {
            id: CallId { conn: self.id, id },
            result: Err(CallError::Cancelled),
        });
        true
    }

    /// Answers a call we serve (see [`crate::Endpoint::reply`]). `Err` if
    /// it is no longer in flight (nothing sent); `Ok(Some(_))` if the
    /// reply pushed the queue past the hard cap and the connection must
    /// end.
    pub(crate) fn reply(
        &mut self,
        call: InboundCallId,
        response: Response,
        ctx: &mut Ctx,
    ) -> Result<Option<Ending>, NotInFlight> {
        let State::Established(s) = &mut self.state else {
            return Err(NotInFlight);
        };
        // (the request id may have been reused since: answer only the
        // call this id was given for)
        let id = call.id;
        let meant = |v: &Served| v.serial == call.serial;
        let Some(served) = s.inbound.take_if(id, meant, &mut ctx.timers) else {
            return Err(NotInFlight);
        };
        s.release(served.size as usize, ctx);
        let (status, body) = match response {
            Response::Ok(body) => (ReplyStatus::Ok, body),
            Response::Error(body) => (ReplyStatus::HandlerError, body),
            Response::Panicked(note) => (
                ReplyStatus::HandlerPanicked,
                utf8_prefix(note, MAX_PANIC_NOTE),
            ),
        };
        self.answer(id, status, body, ctx);
        Ok(self.enforce_send_cap(ctx))
    }

    /// The deadline timer of our calls fired: the calls due time out, and
    /// CANCEL is sent for each.
    pub(super) fn on_call_deadlines(&mut self, ctx: &mut Ctx) {
        let State::Established(s) = &mut self.state else {
            return;
        };
        let due = s.outbound.take_due(ctx.now, &mut ctx.timers);
        ctx.counters.calls_out.timed_out += due.len() as u64;
        for &id in &due {
            let _ = self.tx.push(EnvelopeRef::Cancel { id }, ctx);
        }
        for id in due {
            ctx.emit(Event::CallResult {
                id: CallId { conn: self.id, id },
                result: Err(CallError::Timeout),
            });
        }
    }

    /// The deadline timer of the calls we serve fired: their callers
    /// stopped waiting.
    pub(super) fn on_served_deadlines(&mut self, ctx: &mut Ctx) {
        let State::Established(s) = &mut self.state else {
            return;
        };
        for (id, served) in s.inbound.take_due_with(ctx.now, &mut ctx.timers) {
            ctx.counters.calls_in.timed_out += 1;
            s.release(served.size as usize, ctx);
            ctx.emit(Event::CallCancelled(served.id(self.id, id)));
        }
    }
}

/// What the table of calls we serve keeps beside a call's deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Served {
    /// What its arguments keep alive (their size, or the frame they are
    /// a slice of: [`Pin`]), held against the byte budgets.
    pub(crate) size: u32,
    /// Which call this connection served it as: the peer may reuse a
    /// request id once its call ended, the serial tells the two calls
    /// apart, so that an answer (or a cancellation) meant for the first
    /// never reaches the second. It wraps after 2^32 calls on one
    /// connection, far beyond any call's life.
    pub(crate) serial: u32,
}

impl Served {
    /// The call's id as the endpoint's user sees it.
    pub(crate) fn id(self, conn: ConnId, id: u64) -> InboundCallId {
        InboundCallId {
            conn,
            id,
            serial: self.serial,
        }
    }
}

/// [`Connection::reply`] for a call no longer in flight.
#[derive(Debug)]
pub(crate) struct NotInFlight;

/// At most `max` bytes of `note`, cut on a UTF-8 boundary (the note must
/// stay valid UTF-8); anything that is not UTF-8 is dropped.
fn utf8_prefix(note: Bytes, max: usize) -> Bytes {
    let valid = match core::str::from_utf8(&note) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let mut end = valid.min(max);
    while end > 0 && core::str::from_utf8(&note[..end]).is_err() {
        end -= 1;
    }
    note.slice(..end)
}
