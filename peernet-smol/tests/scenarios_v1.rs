//! The shared scenarios (`peernet-conformance`) on smol, protocol
//! version 1 (the opt-in), over real loopback TCP.

use std::future::Future;
use std::io;

use peernet_conformance::Harness;
use peernet_smol::SmolRuntime;
use smol::net::unix::UnixStream;

struct Smol;

impl Harness for Smol {
    type Rt = SmolRuntime;
    type Stream = UnixStream;

    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F) {
        smol::block_on(future);
    }

    fn stream_pair() -> io::Result<(UnixStream, UnixStream)> {
        UnixStream::pair()
    }
}

peernet_conformance::scenario_tests!(Smol, v1);
