//! Default deny: which handles are exposed, and to whom.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use crate::codes::ReplyStatus;
use crate::identity::PeerId;

/// Who may call an exposed handle. Only trusted peers ever reach this
/// check: the rule narrows the trust list, never widens it.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Access {
    /// Every trusted peer.
    #[default]
    Anyone,
    /// Only these peers.
    Only(BTreeSet<PeerId>),
    /// Peers for which the rule returns `true`.
    Rule(Arc<dyn Fn(&PeerId) -> bool + Send + Sync>),
}

impl Access {
    /// Only the given peers.
    pub fn only(peers: impl IntoIterator<Item = PeerId>) -> Access {
        Access::Only(peers.into_iter().collect())
    }

    /// Peers accepted by `rule`, which the endpoint runs as each call
    /// arrives (a driver runs it under its lock: keep it quick and
    /// self-contained).
    pub fn rule(rule: impl Fn(&PeerId) -> bool + Send + Sync + 'static) -> Access {
        Access::Rule(Arc::new(rule))
    }

    /// Whether `peer` may call.
    pub fn allows(&self, peer: &PeerId) -> bool {
        match self {
            Access::Anyone => true,
            Access::Only(set) => set.contains(peer),
            Access::Rule(rule) => rule(peer),
        }
    }
}

impl fmt::Debug for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Anyone => f.write_str("Anyone"),
            Access::Only(set) => f.debug_tuple("Only").field(set).finish(),
            Access::Rule(_) => f.write_str("Rule(..)"),
        }
    }
}

/// The exposed handles. Everything absent is closed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Exposure {
    handles: BTreeMap<String, Access>,
}

impl Exposure {
    pub(crate) fn expose(&mut self, handle: &str, access: Access) {
        self.handles.insert(handle.into(), access);
    }

    pub(crate) fn unexpose(&mut self, handle: &str) -> bool {
        self.handles.remove(handle).is_some()
    }

    /// Closes every handle; their rules go to the caller.
    pub(crate) fn take_all(&mut self) -> Vec<Access> {
        core::mem::take(&mut self.handles).into_values().collect()
    }

    /// `Ok` if `peer` may use `handle`; else the status to answer with.
    /// An unexposed handle gets `no_such_handle` whether or not it ever
    /// existed, so a caller learns nothing about what is hidden.
    pub(crate) fn check(&self, handle: &str, peer: &PeerId) -> Result<(), ReplyStatus> {
        match self.handles.get(handle) {
            None => Err(ReplyStatus::NoSuchHandle),
            Some(access) if access.allows(peer) => Ok(()),
            Some(_) => Err(ReplyStatus::Forbidden),
        }
    }
}
