//! The tarpc baseline: what a Rust user would pick instead for RPC. tarpc
//! (newest), tokio, its serde transport (length-delimited frames + bincode)
//! over TCP with TCP_NODELAY on both sides, default client and server
//! configuration, each request executed as its own task (tarpc's documented
//! server pattern). Payloads are `serde_bytes::ByteBuf`, so bincode copies
//! them as one slice rather than byte by byte.

use std::io;
use std::net::SocketAddr;

use futures::StreamExt;
use serde_bytes::ByteBuf;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::tokio_util::codec::{Framed, LengthDelimitedCodec};
use tarpc::{client, context, serde_transport};
use tokio::net::{TcpListener, TcpStream};

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

pub async fn start_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let framed = Framed::new(stream, LengthDelimitedCodec::new());
            let transport = serde_transport::new(framed, Bincode::default());
            tokio::spawn(
                BaseChannel::with_defaults(transport)
                    .execute(EchoServer.serve())
                    .for_each(|req| async {
                        tokio::spawn(req);
                    }),
            );
        }
    });
    Ok(addr)
}

pub async fn connect(addr: SocketAddr) -> io::Result<EchoClient> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let framed = Framed::new(stream, LengthDelimitedCodec::new());
    let transport = serde_transport::new(framed, Bincode::default());
    Ok(EchoClient::new(client::Config::default(), transport).spawn())
}

pub async fn call(c: &EchoClient, payload: &[u8]) -> ByteBuf {
    c.echo(context::current(), ByteBuf::from(payload.to_vec()))
        .await
        .expect("tarpc call")
}
