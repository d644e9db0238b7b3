//! A future that counts its polls: how often a waiting caller was woken.
//! Test files take it with `#[path = "common/counted.rs"] mod counted;`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

/// `fut`, counting its polls in `polls`.
pub(crate) struct Counted<F> {
    pub(crate) fut: Pin<Box<F>>,
    pub(crate) polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.fut.as_mut().poll(cx)
    }
}
