//! The async-std harness of the shared scenarios: how to run a future and
//! make a stream pair. Shared by `scenarios.rs` (version 2) and
//! `scenarios_v1.rs` (version 1), which run in separate processes because
//! the scenarios' protocol version is a process-wide switch.

use std::future::Future;
use std::io;

use async_std::os::unix::net::UnixStream;
use peernet_async_std::AsyncStdRuntime;
use peernet_conformance::Harness;

pub(crate) struct AsyncStd;

impl Harness for AsyncStd {
    type Rt = AsyncStdRuntime;
    type Stream = UnixStream;
    type Tcp = async_std::net::TcpStream;

    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F) {
        async_std::task::block_on(future);
    }

    fn stream_pair() -> io::Result<(UnixStream, UnixStream)> {
        UnixStream::pair()
    }

    fn tcp(stream: std::net::TcpStream) -> io::Result<async_std::net::TcpStream> {
        Ok(async_std::net::TcpStream::from(stream))
    }
}
