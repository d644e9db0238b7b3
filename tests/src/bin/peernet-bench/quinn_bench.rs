//! The QUIC baseline: what a Rust user would pick for encrypted
//! request/response instead. quinn (newest) on tokio with rustls on ring
//! (`tls.rs`), one connection over 127.0.0.1, a bidirectional stream per
//! call: the client writes the payload and finishes the stream, the server
//! reads it to the end in a task per stream and writes it back. Default
//! transport settings except the server's concurrent-stream limit (100 by
//! default), raised so that 256 calls in flight do not wait for stream
//! credit.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Connection, Endpoint, ServerConfig, TransportConfig, VarInt};

use crate::tls::{SERVER_NAME, Tls};

/// The largest echo: a call's request and response are read to their end.
const MAX_MESSAGE: usize = 1 << 20;

/// Streams the client may have open at once.
const MAX_STREAMS: u32 = 1024;

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// Starts the echo server; it runs until the endpoint is dropped.
pub async fn start_server(tls: &Tls) -> io::Result<Endpoint> {
    let crypto = QuicServerConfig::try_from(tls.server.clone()).map_err(other)?;
    let mut cfg = ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = TransportConfig::default();
    transport.max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS));
    cfg.transport_config(Arc::new(transport));
    let endpoint = Endpoint::server(cfg, "127.0.0.1:0".parse().expect("address"))?;
    let ep = endpoint.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(data) = recv.read_to_end(MAX_MESSAGE).await else {
                            return;
                        };
                        if send.write_all(&data).await.is_ok() {
                            let _ = send.finish();
                        }
                    });
                }
            });
        }
    });
    Ok(endpoint)
}

/// A client endpoint and its one connection to the server.
#[derive(Clone)]
pub struct Client {
    // The endpoint drives the connection's socket: keep it alive.
    _endpoint: Endpoint,
    conn: Connection,
}

pub async fn connect(addr: SocketAddr, tls: &Tls) -> io::Result<Client> {
    let crypto = QuicClientConfig::try_from(tls.client.clone()).map_err(other)?;
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse().expect("address"))?;
    endpoint.set_default_client_config(ClientConfig::new(Arc::new(crypto)));
    let conn = endpoint
        .connect(addr, SERVER_NAME)
        .map_err(other)?
        .await
        .map_err(other)?;
    Ok(Client {
        _endpoint: endpoint,
        conn,
    })
}

/// One call: a new stream, the payload out, the echo back.
pub async fn call(c: &Client, payload: &[u8]) -> Vec<u8> {
    let (mut send, mut recv) = c.conn.open_bi().await.expect("quinn open_bi");
    send.write_all(payload).await.expect("quinn write");
    send.finish().expect("quinn finish");
    recv.read_to_end(MAX_MESSAGE).await.expect("quinn read")
}
