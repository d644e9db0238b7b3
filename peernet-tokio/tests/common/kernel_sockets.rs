//! This host's TCP sockets as the kernel lists them (Linux), for the
//! tests of what a closed connection leaves behind there. Taken with
//! `#[path = "common/kernel_sockets.rs"] mod kernel_sockets;`.

/// The sockets on local port `port` other than a listener, as (state,
/// bytes queued to send), from `/proc/net/tcp` (IPv4).
pub(crate) fn sockets_on(port: u16) -> Vec<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let mut found = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local_port = fields[1].rsplit(':').next().unwrap();
        let (state, queues) = (fields[3], fields[4]);
        // (0A: listening)
        if u16::from_str_radix(local_port, 16) != Ok(port) || state == "0A" {
            continue;
        }
        let tx_queue = queues.split(':').next().unwrap();
        found.push((state.to_owned(), u64::from_str_radix(tx_queue, 16).unwrap()));
    }
    found
}

/// Bytes the kernel queues to send on the sockets of local port `port`.
pub(crate) fn queued_on(port: u16) -> u64 {
    sockets_on(port).iter().map(|(_, queued)| queued).sum()
}

/// Waits until no socket is left on local port `port` but a listener,
/// within `limit`; `Err` with what is left then.
pub(crate) async fn gone_from(
    port: u16,
    limit: std::time::Duration,
) -> Result<(), Vec<(String, u64)>> {
    let gone = async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
        while !sockets_on(port).is_empty() {
            tick.tick().await;
        }
    };
    tokio::time::timeout(limit, gone)
        .await
        .map_err(|_| sockets_on(port))
}
