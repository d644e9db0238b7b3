//! A scenario on a thread and a multi-threaded runtime of its own, so
//! that a node it freezes (a deadlock under the node's lock) fails the
//! test instead of hanging it. Test files take it with
//! `#[path = "common/own_thread.rs"] mod own_thread;`.

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// A tokio runtime with two workers and every driver enabled.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `scenario` on a thread and a runtime of its own; fails the test
/// if it has not ended within 20 s (the node froze: `why` says how it
/// could have), or if it panicked.
#[allow(dead_code)] // (a test binary may take only `runtime`)
pub(crate) fn ends<F>(what: &str, why: &str, scenario: impl FnOnce() -> F + Send + 'static)
where
    F: Future<Output = ()>,
{
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        runtime().block_on(scenario());
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => {}
        // (the scenario panicked: its thread dropped the sender)
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what}: the scenario failed"),
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: not done in 20 s ({why})"),
    }
}
