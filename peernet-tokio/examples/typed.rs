//! A typed service: the handle name, the request, the response and the
//! error type are defined once (`impl Service`), then the callee exposes
//! it and the caller calls it, both checked by the compiler; a second
//! service is exposed to one peer only (`expose_service_to` with an
//! `Access`), and the others are answered `forbidden`. Needs the
//! `serde` feature (`cargo run -p peernet-tokio --example typed`; the
//! examples have it on).

use std::time::Duration;

use peernet_tokio::{Access, CallError, Identity, Node, NodeConfig, Service, ServiceError};
use serde::{Deserialize, Serialize};

/// What a caller asks `inventory.reserve` for.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reserve {
    pub item: String,
    pub count: u32,
}

/// What it gets back.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reserved {
    pub item: String,
    pub left: u32,
}

/// Why a reservation failed.
#[derive(Debug, Serialize, Deserialize)]
pub enum ReserveError {
    UnknownItem,
    NotEnough { left: u32 },
}

/// The service, defined once for both sides.
pub struct Inventory;

impl Service for Inventory {
    const HANDLE: &'static str = "inventory.reserve";
    type Request = Reserve;
    type Response = Reserved;
    type Error = ReserveError;
}

/// `inventory.restock`: adds stock; for the shop's owner only.
pub struct Restock;

impl Service for Restock {
    const HANDLE: &'static str = "inventory.restock";
    type Request = u32;
    type Response = u32;
    type Error = String;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port = "127.0.0.1:0".parse()?;
    let (shop_id, client_id) = (Identity::from_seed(&[1; 32]), Identity::from_seed(&[2; 32]));
    let (shop_peer, client_peer) = (shop_id.peer_id(), client_id.peer_id());
    let shop = Node::bind(NodeConfig::new(shop_id).trusting(client_peer), any_port).await?;
    let client = Node::bind(NodeConfig::new(client_id).trusting(shop_peer), any_port).await?;

    let stock = std::sync::Arc::new(std::sync::Mutex::new(5u32));
    shop.expose_service(Inventory, move |ctx, request: Reserve| {
        let stock = stock.clone();
        async move {
            println!(
                "shop: {} wants {} {}",
                ctx.peer(),
                request.count,
                request.item
            );
            if request.item != "widget" {
                return Err(ReserveError::UnknownItem);
            }
            let mut left = stock.lock().unwrap();
            if *left < request.count {
                return Err(ReserveError::NotEnough { left: *left });
            }
            *left -= request.count;
            Ok(Reserved {
                item: request.item,
                left: *left,
            })
        }
    })?;

    // Restocking is for the owner alone (a set of PeerIds here;
    // `Access::rule` takes a closure over the caller's PeerId instead):
    // every other trusted peer, the client too, is answered `forbidden`.
    let owner = Identity::from_seed(&[3; 32]).peer_id();
    shop.expose_service_to(
        Restock,
        Access::only([owner]),
        |_ctx, count: u32| async move { Ok(count) },
    )?;

    client
        .connect(shop_peer, shop.local_addr().unwrap())
        .await?;
    let timeout = Duration::from_secs(5);
    for (item, count) in [("widget", 3), ("widget", 3), ("gadget", 1)] {
        let request = Reserve {
            item: item.into(),
            count,
        };
        match client
            .call_service(Inventory, &shop_peer, &request, timeout)
            .await
        {
            Ok(reserved) => println!("client: reserved, {} left", reserved.left),
            Err(ServiceError::Handler(error)) => println!("client: refused: {error:?}"),
            Err(error) => return Err(error.into()),
        }
    }
    match client.call_service(Restock, &shop_peer, &10, timeout).await {
        Err(ServiceError::Call(CallError::Forbidden)) => {
            println!("client: restocking is not for us (forbidden)")
        }
        other => return Err(format!("restock by the client answered {other:?}").into()),
    }
    client.shutdown().await;
    shop.shutdown().await;
    Ok(())
}
