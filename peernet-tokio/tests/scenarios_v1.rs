//! The shared scenarios (`peernet-conformance`) on tokio, protocol
//! version 1 (the opt-in), over real loopback TCP.

use std::future::Future;
use std::io;

use peernet_conformance::Harness;
use peernet_tokio::TokioRuntime;
use tokio::net::UnixStream;

struct Tokio;

impl Harness for Tokio {
    type Rt = TokioRuntime;
    type Stream = UnixStream;

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
}

peernet_conformance::scenario_tests!(Tokio, v1);
