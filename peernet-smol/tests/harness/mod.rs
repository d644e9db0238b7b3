//! The smol harness of the shared scenarios: how to run a future and
//! make a stream pair. Shared by `scenarios.rs` (version 2) and
//! `scenarios_v1.rs` (version 1), which run in separate processes because
//! the scenarios' protocol version is a process-wide switch.

use std::future::Future;
use std::io;

use peernet_conformance::Harness;
use peernet_smol::SmolRuntime;
use smol::net::unix::UnixStream;

pub(crate) struct Smol;

impl Harness for Smol {
    type Rt = SmolRuntime;
    type Stream = UnixStream;
    type Tcp = smol::net::TcpStream;

    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F) {
        smol::block_on(future);
    }

    fn stream_pair() -> io::Result<(UnixStream, UnixStream)> {
        UnixStream::pair()
    }

    fn tcp(stream: std::net::TcpStream) -> io::Result<smol::net::TcpStream> {
        smol::net::TcpStream::try_from(stream)
    }
}
