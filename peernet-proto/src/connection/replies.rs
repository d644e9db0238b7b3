//! Replies that wait for room in the send queue.
//!
//! A reply is encoded into the send queue while the queue holds less than
//! `Config::send_buffer`; past it, the reply waits here as the handler
//! gave it (its body is not copied) and goes into the queue, in order, as
//! the driver takes the queue ([`Connection::take_transmit`]). So a peer
//! that pipelines calls for large results and reads them is served at the
//! pace it reads, instead of being cut off at the hard send cap as if it
//! did not read (64 calls for 1 MB each used to end the connection), and
//! the send queue, and the batch a driver takes from it, stay within
//! `send_buffer` plus one frame.
//!
//! A waiting reply's body is charged to the byte budgets that bound what
//! a peer makes us hold, beside its calls' arguments
//! (`Config::max_inbound_bytes_per_conn`, `Config::max_inbound_bytes`:
//! `Session::hold`), and given back once, as it leaves: moved into the
//! send queue, dropped by the peer's CANCEL, or dropped with the
//! connection. A reply whose body would pass either budget does not wait:
//! the body is dropped at once and the call answered `overloaded`
//! (counted in `Counters::replies_refused`), as a CALL past the budget
//! is. So a peer that stops reading makes us hold at most its budget in
//! waiting results and arguments together, whatever `max_inbound_calls`
//! is; before, it held up to `max_inbound_calls` results of a frame each
//! (1,019 MiB measured for 1,024 calls for 1 MB results, 1 GiB per
//! connection and 16 GiB for 16 such peers). The small replies that wait
//! without a body (`overloaded`, `too_large`, an empty result) are
//! charged nothing: each keeps its call's `max_inbound_calls` slot, so
//! they are at most that many entries of a few dozen bytes (about 64 KiB
//! at the defaults).
//!
//! A call whose reply waits keeps its `max_inbound_calls` slot, and what
//! the peer calls beyond is refused (`overloaded`) straight into the
//! queue, whose hard send cap cuts it off. Otherwise the driver reports
//! its transport stalled after `idle_timeout` (`Input::Stalled`) and the
//! replies go with the connection.
//!
//! When the connection ends, however it ends, the replies still waiting
//! go with it, and so does what is queued unless it fits with the
//! farewell in a short last write (`closing.rs`): their calls fail on the
//! caller's side with the close, and count as ended by it here. (A long
//! last write passes what the driver lets closing connections write, its
//! linger budget, and the peer would get nothing, GOODBYE included.) A
//! CANCEL of a call whose reply waits drops the reply and frees the slot;
//! a CALL reusing its request id is a protocol error, as for a call in
//! flight (PROTOCOL.md 3.1).

use alloc::boxed::Box;
use alloc::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use crate::codes::ReplyStatus;
use crate::config::{Config, fault};
use crate::counters::CallCounts;
use crate::envelope::EnvelopeRef;

use super::{Connection, Ctx, State};

/// The replies of one connection waiting for room, oldest first;
/// allocated when the first one waits (most connections never need it).
#[derive(Default)]
pub(super) struct Waiting(Option<Box<Queue>>);

/// The replies in order, and their request ids as a set: a peer that
/// stops reading while its replies wait can send CANCELs and CALLs for
/// ids not among them as fast as it likes, and each is looked up here.
/// A scan of up to `max_inbound_calls` replies per envelope made a
/// record of CANCELs cost about 14 times its decoding.
#[derive(Default)]
struct Queue {
    replies: VecDeque<(u64, ReplyStatus, Bytes)>,
    ids: BTreeSet<u64>,
    /// Their bodies' bytes.
    bytes: usize,
}

/// What a waiting reply's body of `len` bytes is charged to the byte
/// budgets (given back as it leaves, whichever way).
/// (`config` is read only by the fault's check, which a build without
/// `fault-injection` leaves out)
#[cfg_attr(not(feature = "fault-injection"), allow(unused_variables))]
fn charge(len: usize, config: &Config) -> usize {
    match fault!(config, UnchargedReplies) {
        true => 0,
        false => len,
    }
}

impl Waiting {
    /// Replies waiting.
    pub(super) fn count(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.replies.len())
    }

    /// Their bodies' bytes.
    pub(super) fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.bytes)
    }

    /// (the queue goes as its last reply leaves: `None` is empty)
    #[inline]
    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn push(&mut self, reply: (u64, ReplyStatus, Bytes)) {
        let q = self.0.get_or_insert_default();
        q.ids.insert(reply.0);
        q.bytes += reply.2.len();
        q.replies.push_back(reply);
    }

    /// Whether the reply to request `id` waits here.
    pub(super) fn contains(&self, id: u64) -> bool {
        self.0.as_ref().is_some_and(|q| q.ids.contains(&id))
    }

    /// CANCEL of request `id`, whose reply waits here: the caller no
    /// longer wants it, so it never goes out and the call's slot is
    /// free again. Counted as cancelled, not answered. Returns its
    /// body's bytes, to be given back to the budgets (`None`: it does
    /// not wait here). (Only a CANCEL of a waiting reply scans the
    /// replies, and each reply is cancelled once at most.)
    pub(super) fn cancel(&mut self, id: u64, counts: &mut CallCounts) -> Option<usize> {
        let q = self.0.as_mut()?;
        if !q.ids.remove(&id) {
            return None;
        }
        let mut len = 0;
        if let Some(at) = q.replies.iter().position(|r| r.0 == id) {
            if let Some((_, status, body)) = q.replies.remove(at) {
                counts.by_status.take_back(status);
                counts.cancelled += 1;
                len = body.len();
                q.bytes -= len;
            }
        }
        if q.replies.is_empty() {
            self.0 = None;
        }
        Some(len)
    }

    /// The connection ends: the replies still waiting never go out, and
    /// their calls count as ended with it, not answered. Returns their
    /// bodies' bytes, to be given back to the budgets.
    fn drop_all(&mut self, counts: &mut CallCounts) -> usize {
        let Some(q) = self.0.take() else {
            return 0;
        };
        for (_, status, _) in q.replies.iter() {
            counts.by_status.take_back(*status);
            counts.connection_closed += 1;
        }
        q.bytes
    }

    fn pop(&mut self) -> Option<(u64, ReplyStatus, Bytes)> {
        let q = self.0.as_mut()?;
        let next = q.replies.pop_front()?;
        q.ids.remove(&next.0);
        q.bytes -= next.2.len();
        if q.replies.is_empty() {
            self.0 = None;
        }
        Some(next)
    }
}

impl Connection {
    /// Queues the reply to request `id`, or lets it wait behind the others
    /// while the send queue is full, its body charged to the byte budgets.
    /// A reply that would not fit in a frame (a record, in version 2) is
    /// answered `too_large` instead, and one whose body would pass a
    /// budget `overloaded`: the caller learns why.
    pub(super) fn answer(&mut self, id: u64, status: ReplyStatus, body: Bytes, ctx: &mut Ctx) {
        if !matches!(self.state, State::Established(_)) {
            return;
        }
        if self.waiting.is_empty() && self.tx.len() < ctx.config.send_buffer {
            let answered = self.encode_reply(id, status, &body, ctx);
            ctx.counters.calls_in.by_status.add(answered);
            return;
        }
        // (counted as answered now, with the status it will go out with)
        let whole = EnvelopeRef::Reply {
            id,
            status: status.code(),
            body: &body,
        };
        let (status, body) = if whole.body_len() > self.tx.max_body(ctx.config.max_frame_len) {
            (ReplyStatus::TooLarge, Bytes::new())
        } else if !self.charge_waiting(body.len(), ctx) {
            ctx.counters.replies_refused += 1;
            let (conn, len, held) = (self.id, body.len(), self.held_bytes());
            tracing::debug!(conn = %conn, id, len, held, "reply refused: byte budget full");
            (ReplyStatus::Overloaded, Bytes::new())
        } else {
            (status, body)
        };
        ctx.counters.calls_in.by_status.add(status);
        self.waiting.push((id, status, body));
    }

    /// Takes a waiting body of `len` bytes against the byte budgets;
    /// false (nothing taken) if either would overflow. An empty body
    /// takes nothing and always waits.
    fn charge_waiting(&mut self, len: usize, ctx: &mut Ctx) -> bool {
        let bytes = charge(len, &ctx.config);
        match &mut self.state {
            State::Established(s) if bytes > 0 => s.hold(bytes, ctx),
            State::Established(_) | State::Handshake(_) => true,
        }
    }

    /// Gives back what [`Connection::charge_waiting`] took for bodies of
    /// `len` bytes that left the waiting queue.
    pub(super) fn release_waiting(&mut self, len: usize, ctx: &mut Ctx) {
        let bytes = charge(len, &ctx.config);
        if let State::Established(s) = &mut self.state {
            s.release(bytes, ctx);
        }
    }

    /// The connection ends: drops the replies still waiting, and gives
    /// their charge back.
    pub(super) fn drop_waiting(&mut self, ctx: &mut Ctx) {
        let len = self.waiting.drop_all(&mut ctx.counters.calls_in);
        self.release_waiting(len, ctx);
    }

    /// Moves waiting replies into the send queue while it has room.
    #[inline]
    pub(super) fn refill(&mut self, ctx: &mut Ctx) {
        if !self.waiting.is_empty() {
            self.refill_waiting(ctx);
        }
    }

    #[inline(never)]
    fn refill_waiting(&mut self, ctx: &mut Ctx) {
        while self.tx.len() < ctx.config.send_buffer {
            let Some((id, status, body)) = self.waiting.pop() else {
                return;
            };
            self.release_waiting(body.len(), ctx);
            self.encode_reply(id, status, &body, ctx);
        }
    }

    /// Encodes one reply; one that does not fit in a frame is answered
    /// `too_large` instead. Returns the status that went out.
    fn encode_reply(
        &mut self,
        id: u64,
        status: ReplyStatus,
        body: &[u8],
        ctx: &mut Ctx,
    ) -> ReplyStatus {
        if self.tx.push_reply(id, status, body, ctx).is_ok() {
            return status;
        }
        let _ = self.tx.push_reply(id, ReplyStatus::TooLarge, &[], ctx);
        ReplyStatus::TooLarge
    }
}
