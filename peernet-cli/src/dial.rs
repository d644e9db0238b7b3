//! `peernet call` and `peernet send`: dial one peer, do one thing, exit.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use peernet_tokio::{
    CallError, ConnectError, HandshakeError, Node, NodeConfig, PeerId, ProtocolVersion, RejectCode,
};

use crate::serve::reason_name;
use crate::{Failure, load, parse_protocol};

#[derive(clap::Args)]
pub(crate) struct Dial {
    #[arg(long)]
    key: PathBuf,
    /// The peer to dial, as PEERID@IP:PORT.
    #[arg(long, value_parser = parse_target)]
    connect: (PeerId, SocketAddr),
    /// Give up on the call after this many milliseconds (at least 1).
    #[arg(long, value_name = "MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    /// The protocol version: 2 (encrypted, the default) or 1.
    #[arg(long, value_name = "1|2", default_value = "2", value_parser = parse_protocol)]
    protocol: ProtocolVersion,
    handle: String,
    args: String,
}

fn parse_target(s: &str) -> Result<(PeerId, SocketAddr), String> {
    let (peer, addr) = s.split_once('@').ok_or("expected PEERID@IP:PORT")?;
    let peer = peer.parse::<PeerId>().map_err(|e| e.to_string())?;
    let addr = addr.parse::<SocketAddr>().map_err(|e| e.to_string())?;
    Ok((peer, addr))
}

fn connect_cause(error: &ConnectError) -> String {
    match error {
        // Version 1: the dialer saw another PeerId. Version 2: the
        // responder refused an INIT keyed for another PeerId.
        ConnectError::Handshake(
            HandshakeError::UnexpectedPeer { .. }
            | HandshakeError::Rejected(RejectCode::UnexpectedPeer),
        ) => "unexpected_peer".into(),
        ConnectError::Handshake(HandshakeError::Rejected(code)) => {
            format!("rejected: {}", code.name())
        }
        ConnectError::Handshake(HandshakeError::Refused(code)) => {
            format!("refused: {}", code.name())
        }
        ConnectError::Handshake(HandshakeError::Timeout) => "timeout".into(),
        other => other.to_string(),
    }
}

pub(crate) async fn run_dial(dial: Dial, call: bool) -> Result<(), Failure> {
    let (peer, addr) = dial.connect;
    // trusting that PeerId for this dial only (nothing is saved)
    let config = NodeConfig::new(load(&dial.key)?)
        .protocol_version(dial.protocol)
        .trusting(peer);
    let node = Node::new(config);
    let timeout = Duration::from_millis(dial.timeout);
    let connected = tokio::time::timeout(timeout, node.connect(peer, addr)).await;
    match connected {
        Err(_) => return Err(Failure(1, "timeout".into())),
        Ok(Err(e)) => return Err(Failure(1, connect_cause(&e))),
        Ok(Ok(_)) => {}
    }
    let result = if call {
        match node
            .call(&peer, &dial.handle, dial.args.into_bytes(), timeout)
            .await
        {
            Ok(body) => {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&body);
                let _ = stdout.flush();
                Ok(())
            }
            Err(e) => Err(call_failure(&e)),
        }
    } else {
        node.send(&peer, &dial.handle, dial.args.into_bytes())
            .await
            .map_err(|e| Failure(1, e.to_string()))
    };
    // Flushes what is queued (the CALL's CANCEL after a timeout, a SEND)
    // and says goodbye before the process exits.
    node.shutdown().await;
    result
}

pub(crate) fn call_failure(error: &CallError) -> Failure {
    let status = match error {
        CallError::NoSuchHandle => "no_such_handle",
        CallError::Forbidden => "forbidden",
        CallError::HandlerError(_) => "handler_error",
        CallError::HandlerPanicked(_) => "handler_panicked",
        CallError::Overloaded => "overloaded",
        CallError::ShuttingDown => "shutting_down",
        CallError::ResultTooLarge => "too_large",
        CallError::Timeout => return Failure(1, "timeout".into()),
        CallError::ConnectionClosed(reason) => {
            return Failure(1, format!("closed: {}", reason_name(reason)));
        }
        other => return Failure(1, other.to_string()),
    };
    Failure(2, status.into())
}
