//! The shared scenarios (`peernet-conformance`) on async-std, protocol
//! version 1 (the opt-in), over real loopback TCP.

use std::future::Future;
use std::io;

use async_std::os::unix::net::UnixStream;
use peernet_async_std::AsyncStdRuntime;
use peernet_conformance::Harness;

struct AsyncStd;

impl Harness for AsyncStd {
    type Rt = AsyncStdRuntime;
    type Stream = UnixStream;

    fn block_on<F: Future<Output = ()> + Send + 'static>(future: F) {
        async_std::task::block_on(future);
    }

    fn stream_pair() -> io::Result<(UnixStream, UnixStream)> {
        UnixStream::pair()
    }
}

peernet_conformance::scenario_tests!(AsyncStd, v1);
