//! No task of the node is woken under its lock: the tasks are the
//! runtime's, an application's `Runtime` may be its own, and a waker of
//! its that calls back into the node took the lock its own thread held
//! (the timer woken for an earlier deadline, a handler task stopped, the
//! shutdown told the handlers are done: the node froze for good).
//!
//! Here a runtime over tokio gives every task it runs wakers that call
//! the node (`stats()`) as they wake, and the node lives a whole life on
//! it: a connection, calls both ways, a handler still running at the
//! shutdown (stopped at the end of the grace), the shutdown. The
//! scenario runs on a thread and a runtime of its own, and the test fails
//! once it has not ended within 20 s.

#[path = "common/own_thread.rs"]
mod own_thread;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use peernet_driver::{BoxFuture, Runtime, Transport};
use peernet_tokio::{Identity, NodeConfig, TokioRuntime};

/// What the runtime's wakers call as they wake (the node, once it is up).
type Hook = Arc<dyn Fn() + Send + Sync>;
static HOOK: Mutex<Option<Hook>> = Mutex::new(None);

/// A waker that calls [`HOOK`], then wakes the task it wraps.
struct CallsBack(Waker);

impl Wake for CallsBack {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let hook = HOOK.lock().unwrap().clone();
        if let Some(hook) = hook {
            hook();
        }
        self.0.wake_by_ref();
    }
}

/// A task whose every poll gets a [`CallsBack`] waker.
struct Task(BoxFuture<()>);

impl Future for Task {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let waker = Waker::from(Arc::new(CallsBack(cx.waker().clone())));
        self.0.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

/// tokio, whose tasks' wakers call back into the node.
#[derive(Clone, Default)]
struct CallingBack(TokioRuntime);

impl Runtime for CallingBack {
    type Listener = <TokioRuntime as Runtime>::Listener;

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(Task(Box::pin(future)));
    }

    fn spawn_blocking<F, T>(&self, work: F) -> impl Future<Output = T> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.spawn_blocking(work)
    }

    fn sleep_until(&self, at: Instant) -> BoxFuture<()> {
        self.0.sleep_until(at)
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Transport>> + Send {
        self.0.connect(addr)
    }

    fn bind(
        &self,
        addr: SocketAddr,
        backlog: u32,
    ) -> impl Future<Output = io::Result<Self::Listener>> + Send {
        self.0.bind(addr, backlog)
    }

    fn local_addr(listener: &Self::Listener) -> io::Result<SocketAddr> {
        TokioRuntime::local_addr(listener)
    }

    fn accept(
        &self,
        listener: &Self::Listener,
    ) -> impl Future<Output = io::Result<Transport>> + Send {
        self.0.accept(listener)
    }
}

type Node = peernet_driver::Node<CallingBack>;

async fn a_life() {
    let (a_id, b_id) = (
        Identity::from_seed(&[81; 32]),
        Identity::from_seed(&[82; 32]),
    );
    let (a_peer, b_peer) = (a_id.peer_id(), b_id.peer_id());
    let any = "127.0.0.1:0".parse().unwrap();
    let config = NodeConfig::new(a_id)
        .trusting(b_peer)
        .shutdown_grace(Duration::from_millis(200));
    let alice = Node::bind(config, any).await.unwrap();
    let bob = peernet_tokio::Node::bind(NodeConfig::new(b_id).trusting(a_peer), any)
        .await
        .unwrap();
    let node = alice.clone();
    *HOOK.lock().unwrap() = Some(Arc::new(move || {
        let _ = node.stats();
    }));
    let entered = Arc::new(tokio::sync::Notify::new());
    let held = entered.clone();
    alice
        .expose("forever", move |_, _| {
            let held = held.clone();
            async move {
                held.notify_one();
                std::future::pending::<()>().await;
                Ok(Bytes::new())
            }
        })
        .unwrap();
    bob.expose("echo", |_, args| async move { Ok(args) })
        .unwrap();
    alice
        .connect(b_peer, bob.local_addr().unwrap())
        .await
        .unwrap();
    let timeout = Duration::from_secs(30);
    let echoed = alice.call(&b_peer, "echo", b"e", timeout).await.unwrap();
    assert_eq!(&echoed[..], b"e");
    // a handler of alice's still runs at her shutdown
    let stuck = tokio::spawn({
        let bob = bob.clone();
        async move { bob.call(&a_peer, "forever", b"", timeout).await }
    });
    entered.notified().await;
    alice.shutdown().await;
    assert!(stuck.await.unwrap().is_err());
    // (the hook's node handle goes: nothing holds the node any more)
    *HOOK.lock().unwrap() = None;
}

#[test]
fn a_node_whose_tasks_wakers_call_back_lives_and_shuts_down() {
    own_thread::ends(
        "a node whose tasks' wakers call back",
        "a task woken under the node's lock?",
        a_life,
    );
}
