//! The tokio harness of the shared scenarios: how to run a future and
//! make a stream pair. Shared by `scenarios.rs` (version 2) and
//! `scenarios_v1.rs` (version 1), which run in separate processes because
//! the scenarios' protocol version is a process-wide switch.

use std::future::Future;
use std::io;

use peernet_conformance::Harness;
use peernet_tokio::TokioRuntime;
use tokio::net::UnixStream;

pub(crate) struct Tokio;

impl Harness for Tokio {
    type Rt = TokioRuntime;
    type Stream = UnixStream;
    type Tcp = tokio::net::TcpStream;

    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future);
    }

    fn stream_pair() -> io::Result<(UnixStream, UnixStream)> {
        UnixStream::pair()
    }

    fn tcp(stream: std::net::TcpStream) -> io::Result<tokio::net::TcpStream> {
        tokio::net::TcpStream::from_std(stream)
    }
}
