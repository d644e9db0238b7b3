//! Performs the core's `Output::Dial { peer, addr }`: opens a TCP
//! connection to `addr` within `DialConfig::dial_timeout`, then hands it
//! to the core (`connect_to`) and runs it like any dialed connection, or
//! reports the failure (`dial_failed`) so the schedule moves on to the
//! next address or backs off. Which address, when, and how often is the
//! core's to decide; this task only does the I/O. It ends as soon as the
//! node stops accepting (its shutdown starts, or it closes at once): the
//! core would refuse the transport then, and a connect that hangs must
//! not keep the node's state alive for its whole `dial_timeout`.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;

use futures_util::future::{Either, select};
use peernet_proto::{DialFailure, Direction, PeerId};

use crate::error::ErrorChain;
use crate::runtime::Runtime;
use crate::shared::{Phase, Shared};
use crate::tasks;

/// One dial, as a task of its own.
pub(crate) async fn dial<R: Runtime>(shared: Arc<Shared<R>>, peer: PeerId, addr: SocketAddr) {
    // (listened to before the phase is read: a shutdown from then on is seen)
    let stopping = shared.stopping.listen();
    let (timeout, running) = shared.read(|inner| {
        let timeout = inner.ep.config().dial.dial_timeout;
        (timeout, inner.phase == Phase::Running)
    });
    if !running {
        return;
    }
    let deadline = shared.after(timeout);
    let connecting = pin!(shared.rt.connect(addr));
    let ends = select(shared.rt.sleep_until(deadline), stopping);
    let opened = match select(connecting, ends).await {
        Either::Left((Ok(transport), _)) => Ok(transport),
        Either::Left((Err(error), _)) => {
            Err(DialFailure::transport(&ErrorChain(&error).to_string()))
        }
        Either::Right((Either::Left(_), _)) => Err(DialFailure::TimedOut(timeout)),
        // The node stops: nothing to report, nobody to hand a transport to.
        Either::Right((Either::Right(_), _)) => {
            tracing::debug!(%peer, %addr, "dial stopped: the node stops");
            return;
        }
    };
    let transport = match opened {
        Ok(transport) => transport,
        Err(cause) => {
            tracing::debug!(%peer, %addr, %cause, "dial failed");
            shared.with_core(|inner, now| inner.ep.dial_failed(now, peer, addr, cause));
            return;
        }
    };
    let started = shared.with_core(|inner, now| {
        let conn = inner.ep.connect_to(now, peer, addr)?;
        // Nobody waits on this handshake's outcome but the core's
        // schedule: the receiver is dropped.
        let (signals, _done) = tasks::register(inner, conn, Direction::Outbound, Some(addr));
        Ok::<_, peernet_proto::ConnectError>((conn, signals))
    });
    match started {
        Ok((conn, signals)) => {
            tracing::debug!(%peer, %addr, %conn, "dialed");
            tasks::attach(&shared, conn, Direction::Outbound, signals, transport);
        }
        // Connected meanwhile (the other side dialed us), unpaired, or
        // shutting down: the transport is dropped, closing it.
        Err(error) => {
            let error = ErrorChain(&error);
            tracing::debug!(%peer, %addr, %error, "dial not needed any more");
        }
    }
}
