//! An application's [`Access::rule`] as the node runs it: contained.
//!
//! The core checks a rule when a call arrives, under the node's lock (so
//! the check and the handler's lookup are one step, and an unexpose or
//! unpair cannot slip between them). A rule is application code there:
//! - one that panics would unwind through the node's state half-updated
//!   and kill the connection's reader task; it is caught, and the call is
//!   denied (`forbidden`);
//! - one that calls back into the node (`node.trust()` to read a label,
//!   say) would wait for the lock its own thread holds, for ever; the
//!   node sees it and panics in the rule instead, which denies the call
//!   the same way.
//!
//! Both are logged at `error`, at most once a second per rule (a peer
//! may call as often as it likes). A rule must be quick and
//! self-contained (capture what it needs, e.g. a set of labels kept up
//! to date). Built with `panic = "abort"`, a rule that panics or calls
//! back into its node aborts the process: nothing can be caught then.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use peernet_proto::{Access, PeerId};

thread_local! {
    /// This thread runs an application's access rule (under the lock).
    static IN_RULE: Cell<bool> = const { Cell::new(false) };
}

/// `access` with its rule, if any, contained as the module docs say.
pub(crate) fn contained(handle: &str, access: Access) -> Access {
    let Access::Rule(rule) = access else {
        return access;
    };
    let handle: Arc<str> = Arc::from(handle);
    let since = Instant::now();
    // (ms since `since` of the last error logged, plus one; 0: none yet)
    let logged = AtomicU64::new(0);
    let denied = AtomicU64::new(0);
    Access::rule(move |peer: &PeerId| {
        IN_RULE.set(true);
        let verdict = catch_unwind(AssertUnwindSafe(|| rule(peer)));
        IN_RULE.set(false);
        verdict.unwrap_or_else(|_| {
            let denied = denied.fetch_add(1, Ordering::Relaxed) + 1;
            let now = since.elapsed().as_millis() as u64 + 1;
            let last = logged.load(Ordering::Relaxed);
            let due = last == 0 || now.saturating_sub(last) >= 1_000;
            if due
                && logged
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                tracing::error!(%peer, %handle, denied, "the access rule panicked: call denied");
            }
            false
        })
    })
}

/// Panics if this thread is running an access rule: the caller is about
/// to take the node's lock, which that thread already holds.
pub(crate) fn not_in_rule() {
    if IN_RULE.get() {
        panic!(
            "an Access rule called back into its node, which holds its lock while the rule \
             runs: a rule must not use the node"
        );
    }
}
