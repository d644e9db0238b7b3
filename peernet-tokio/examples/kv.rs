//! A small key-value store between two nodes, as an application would
//! write it: each node keeps its identity, trust list and address book in
//! a data directory of its own, the two pair by exchanging tickets, one
//! serves typed `kv.get` and `kv.put` services, the other calls them with
//! timeouts and handles each way a call can fail, then both shut down.
//! Needs the `serde` feature (`cargo run -p peernet-tokio --example kv`;
//! the examples have it on). It exits non-zero on anything unexpected:
//! CI runs it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use peernet_tokio::{
    AddrSource, CallError, ConnectError, ErrorChain, Label, Node, NodeConfig, PeerId, Service,
    ServiceError, StartError, Ticket,
};
use serde::{Deserialize, Serialize};

/// The longest value the store takes, in bytes.
const MAX_VALUE_LEN: usize = 64;

/// `kv.get`: the value of a key, `None` if it has none.
pub struct Get;

impl Service for Get {
    const HANDLE: &'static str = "kv.get";
    type Request = String;
    type Response = Option<String>;
    type Error = KvError;
}

/// What `kv.put` stores.
#[derive(Debug, Serialize, Deserialize)]
pub struct Put {
    pub key: String,
    pub value: String,
}

/// `kv.put`: stores a value, answering the one it replaced.
pub struct PutService;

impl Service for PutService {
    const HANDLE: &'static str = "kv.put";
    type Request = Put;
    type Response = Option<String>;
    type Error = KvError;
}

/// `kv.delete`: a service this server does not expose (an older server,
/// as a client meets one).
pub struct Delete;

impl Service for Delete {
    const HANDLE: &'static str = "kv.delete";
    type Request = String;
    type Response = Option<String>;
    type Error = KvError;
}

/// Why the store refused a request: the service's own errors, which
/// cross the wire typed.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub enum KvError {
    /// The value is longer than the store takes.
    TooLarge { len: usize, max: usize },
    /// The key is empty.
    EmptyKey,
}

/// Ends the example with an error (a non-zero exit: CI runs it) when
/// what it shows did not happen.
fn check(held: bool, claim: &str) -> Result<(), Box<dyn std::error::Error>> {
    match held {
        true => Ok(()),
        false => Err(format!("the kv example went wrong: {claim}").into()),
    }
}

/// A node on the data directory `dir` (made if missing, its parent must
/// exist). Starting fails, typed, when the directory cannot be used.
fn config_in(dir: &Path) -> Result<NodeConfig, Box<dyn std::error::Error>> {
    match NodeConfig::from_data_dir(dir) {
        Ok(config) => Ok(config),
        // Another process runs a node on it: an operator must stop it
        // first, retrying does not help.
        Err(StartError::Lock(error)) => Err(format!(
            "{} is in use by another node: {}",
            dir.display(),
            ErrorChain(&error)
        )
        .into()),
        // Damaged files or permissions: the message names the file.
        Err(error) => {
            Err(format!("cannot start on {}: {}", dir.display(), ErrorChain(&error)).into())
        }
    }
}

/// This node's ticket: its PeerId and the addresses it listens on (on
/// 0.0.0.0, its host's), as text to hand to the other side (a chat, a QR
/// code, a config file).
fn ticket_of(node: &Node) -> Result<String, Box<dyn std::error::Error>> {
    Ok(node.ticket()?.to_string())
}

/// Trusts the peer a ticket names, under `label`, and records its
/// addresses: what pairing by ticket is.
async fn pair_with(
    node: &Node,
    ticket: &str,
    label: &str,
) -> Result<PeerId, Box<dyn std::error::Error>> {
    // A mistyped or truncated paste is refused here, saying where.
    let ticket: Ticket = ticket.parse()?;
    match node.pair_ticket(&ticket, Some(Label::new(label)?)).await {
        Ok(_) => {}
        // The peer is trusted, but a crash may undo it, or an address was
        // not recorded: worth a warning, not a failure.
        Err(error) if error.is_paired() => {
            eprintln!("warning: pairing with {label}: {}", ErrorChain(&error))
        }
        Err(error) => return Err(format!("pairing with {label}: {}", ErrorChain(&error)).into()),
    }
    Ok(ticket.peer())
}

/// Runs the store on `node`: `kv.get` and `kv.put`, on one map.
fn serve(node: &Node) -> Result<(), Box<dyn std::error::Error>> {
    let store = Arc::new(Mutex::new(HashMap::<String, String>::new()));
    let map = store.clone();
    node.expose_service(Get, move |_ctx, key: String| {
        let value = map.lock().unwrap().get(&key).cloned();
        async move { Ok(value) }
    })?;
    node.expose_service(PutService, move |ctx, put: Put| {
        let store = store.clone();
        async move {
            if put.key.is_empty() {
                return Err(KvError::EmptyKey);
            }
            if put.value.len() > MAX_VALUE_LEN {
                return Err(KvError::TooLarge {
                    len: put.value.len(),
                    max: MAX_VALUE_LEN,
                });
            }
            println!("server: {} puts {:?}", short(&ctx.peer()), put.key);
            Ok(store.lock().unwrap().insert(put.key, put.value))
        }
    })?;
    Ok(())
}

fn short(peer: &PeerId) -> String {
    peer.to_string()[..12].to_string()
}

/// What a client makes of a call's outcome: the value, or why not, in the
/// terms its user needs.
#[derive(Debug, PartialEq)]
enum Outcome<T> {
    Done(T),
    /// The store said no: the request must change.
    Refused(KvError),
    /// The server does not offer this (an older version, or not to us).
    Unsupported,
    /// Worth trying again later: the server is busy, slow or restarting.
    TryLater(String),
}

/// Sorts a typed call's error the way the client acts on it.
fn outcome<T>(result: Result<T, ServiceError<KvError>>) -> Result<Outcome<T>, String> {
    match result {
        Ok(value) => Ok(Outcome::Done(value)),
        Err(ServiceError::Handler(error)) => Ok(Outcome::Refused(error)),
        Err(ServiceError::Call(CallError::NoSuchHandle | CallError::Forbidden)) => {
            Ok(Outcome::Unsupported)
        }
        // Busy, slow, restarting, or not connected for now: the error
        // says it is of the moment (`CallError::is_transient`).
        Err(ServiceError::Call(error)) if error.is_transient() => {
            Ok(Outcome::TryLater(ErrorChain(&error).to_string()))
        }
        // The two sides disagree on the service's types (a version skew),
        // the server's handler panicked, our request is too large, or the
        // server unpaired us: retrying will not help, this is a bug or a
        // refusal to report. (Both error types are `#[non_exhaustive]`:
        // this arm also takes what a later peernet adds.)
        Err(error) => Err(ErrorChain(&error).to_string()),
    }
}

/// The client's view of the store: each call with its timeout, its
/// outcome sorted.
struct KvClient<'a> {
    node: &'a Node,
    server: PeerId,
    timeout: Duration,
}

impl KvClient<'_> {
    async fn call<S: Service<Error = KvError>>(
        &self,
        service: S,
        request: &S::Request,
    ) -> Result<Outcome<S::Response>, String> {
        let result = (self.node)
            .call_service(service, &self.server, request, self.timeout)
            .await;
        outcome(result)
    }

    async fn get(&self, key: &str) -> Result<Outcome<Option<String>>, String> {
        self.call(Get, &key.to_string()).await
    }

    async fn put(&self, key: &str, value: &str) -> Result<Outcome<Option<String>>, String> {
        let (key, value) = (key.into(), value.into());
        self.call(PutService, &Put { key, value }).await
    }

    async fn delete(&self, key: &str) -> Result<Outcome<Option<String>>, String> {
        self.call(Delete, &key.to_string()).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Two data directories in a temporary one, removed at the end.
    let root = tempfile::tempdir()?;
    let (server_dir, client_dir) = (root.path().join("server"), root.path().join("client"));
    let any_port = "127.0.0.1:0".parse()?;

    // The server exposes its services before it listens, so that no
    // call finds them missing.
    let server = Node::try_new(config_in(&server_dir)?)?;
    serve(&server)?;
    server.listen(any_port).await?;
    let client = Node::bind(config_in(&client_dir)?, any_port).await?;
    println!(
        "server {} and client {} started",
        short(&server.peer_id()),
        short(&client.peer_id())
    );

    // Pairing: each side hands the other its ticket, and each trusts the
    // ticket it was given. Nothing else crosses until both have.
    let (server_ticket, client_ticket) = (ticket_of(&server)?, ticket_of(&client)?);
    println!("server's ticket: {server_ticket}");
    let server_peer = pair_with(&client, &server_ticket, "kv-server").await?;
    pair_with(&server, &client_ticket, "kv-client").await?;

    // Dial by PeerId: the address comes from the ticket, in the book.
    match client
        .connect_peer(server_peer, Duration::from_secs(5))
        .await
    {
        Ok(_) => println!("client: connected to the server"),
        // Every address failed (each with its reason in the message): the
        // server is down or moved, and a fresh ticket would tell where.
        Err(error @ ConnectError::Unreachable { .. }) => {
            return Err(format!("the server is down or moved: {}", ErrorChain(&error)).into());
        }
        Err(ConnectError::Timeout(waited)) => {
            return Err(format!("no connection within {waited:?}").into());
        }
        Err(error) => return Err(format!("connecting: {}", ErrorChain(&error)).into()),
    }

    let kv = KvClient {
        node: &client,
        server: server_peer,
        timeout: Duration::from_secs(2),
    };
    let first = kv.put("colour", "blue").await?;
    check(first == Outcome::Done(None), "a first put replaces nothing")?;
    let second = kv.put("colour", "green").await?;
    check(
        second == Outcome::Done(Some("blue".into())),
        "a second put answers the value it replaced",
    )?;
    let colour = kv.get("colour").await?;
    check(
        colour == Outcome::Done(Some("green".into())),
        "get reads the last put",
    )?;
    let size = kv.get("size").await?;
    check(size == Outcome::Done(None), "a key never put has no value")?;
    println!("client: put, put, get and get answered as expected");

    // The store's own refusal crosses the wire as the service's error type.
    match kv.put("colour", &"x".repeat(MAX_VALUE_LEN + 1)).await? {
        Outcome::Refused(KvError::TooLarge { len, max }) => {
            println!("client: refused as expected: {len} bytes, over the limit of {max}")
        }
        other => return Err(format!("a value too long was not refused: {other:?}").into()),
    }

    // A service the server does not expose: default deny, the same answer
    // whether it exists or not.
    check(
        kv.delete("colour").await? == Outcome::Unsupported,
        "an unexposed service is refused",
    )?;
    println!("client: kv.delete is not offered, as expected");

    let server_addr = server.local_addr().ok_or("the server does not listen")?;

    // Graceful shutdown: goodbyes sent, books saved, locks let go. The
    // server goes first: a call to it then is worth retrying later.
    server.shutdown().await;
    match kv.get("colour").await? {
        Outcome::TryLater(why) => println!("client: the server is gone ({why}), try later"),
        other => return Err(format!("a call to a server shut down answered {other:?}").into()),
    }
    client.shutdown().await;

    // The pairing outlived the run: the client's data directory trusts
    // the server and remembers the ticket's address.
    let again = config_in(&client_dir)?;
    check(
        again.trust_list().contains(&server_peer),
        "the client's trust file has the server",
    )?;
    check(
        again.saved_book().get(&server_peer) == [(server_addr, AddrSource::Ticket)],
        "the client's address book has the server's ticket address",
    )?;
    println!("client's data directory still trusts the server, at {server_addr}");
    Ok(())
}
