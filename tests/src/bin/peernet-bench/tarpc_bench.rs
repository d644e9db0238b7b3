//! The tarpc baseline: what a Rust user would pick instead for RPC. tarpc
//! (newest), tokio, its serde transport (length-delimited frames + bincode)
//! over TCP with TCP_NODELAY on both sides, default client and server
//! configuration, each request executed as its own task (tarpc's documented
//! server pattern). Payloads are `serde_bytes::ByteBuf`, so bincode copies
//! them as one slice rather than byte by byte.
//!
//! The same service also runs over tokio-rustls (`tarpc_tls`: TLS 1.3 on
//! ring, `tls.rs`), the encrypted setup a tarpc user would pick.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context, serde_transport};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::tls::Tls;

#[tarpc::service]
pub trait Echo {
    async fn echo(data: ByteBuf) -> ByteBuf;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, data: ByteBuf) -> ByteBuf {
        data
    }
}

/// Starts the plaintext server.
pub async fn start_server() -> io::Result<SocketAddr> {
    serve(|stream| async move { Ok(stream) }).await
}

/// Starts the same server behind TLS (`tls.rs`: TLS 1.3, ring).
pub async fn start_server_tls(tls: &Tls) -> io::Result<SocketAddr> {
    let acceptor = TlsAcceptor::from(tls.server.clone());
    serve(move |stream| acceptor.accept(stream)).await
}

/// Accepts connections, turns each into a stream with `wrap` (in the
/// connection's own task) and serves the echo service on it.
async fn serve<W, Fut, S>(wrap: W) -> io::Result<SocketAddr>
where
    W: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let wrapped = wrap(stream);
            tokio::spawn(async move {
                let Ok(stream) = wrapped.await else { return };
                BaseChannel::with_defaults(transport(stream))
                    .execute(EchoServer.serve())
                    .for_each(|req| async {
                        tokio::spawn(req);
                    })
                    .await;
            });
        }
    });
    Ok(addr)
}

/// tarpc's serde transport (length-delimited frames, bincode) over `stream`.
fn transport<S, In, Out>(stream: S) -> serde_transport::Transport<S, In, Out, Bincode<In, Out>>
where
    S: AsyncRead + AsyncWrite,
    In: for<'de> serde::Deserialize<'de>,
    Out: serde::Serialize,
{
    serde_transport::new(
        Framed::new(stream, LengthDelimitedCodec::new()),
        Bincode::default(),
    )
}

async fn dial(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A plaintext client.
pub async fn connect(addr: SocketAddr) -> io::Result<EchoClient> {
    Ok(EchoClient::new(client::Config::default(), transport(dial(addr).await?)).spawn())
}

/// A client over TLS, trusting the server's self-signed certificate.
pub async fn connect_tls(addr: SocketAddr, tls: &Tls) -> io::Result<EchoClient> {
    let connector = TlsConnector::from(tls.client.clone());
    let stream = connector
        .connect(Tls::server_name(), dial(addr).await?)
        .await?;
    Ok(EchoClient::new(client::Config::default(), transport(stream)).spawn())
}

pub async fn call(c: &EchoClient, payload: &[u8]) -> ByteBuf {
    c.echo(context::current(), ByteBuf::from(payload.to_vec()))
        .await
        .expect("tarpc call")
}
