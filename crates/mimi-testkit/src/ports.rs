//! Loopback ports for the test harnesses, the demo and the benchmark.
//!
//! A port found by binding port 0 and closing the socket again comes from
//! the kernel's ephemeral range, where any outgoing connection (a database
//! pool, an HTTP client) may take it before the server binds it. Ports below
//! that range are only ever taken by an explicit bind, so they are picked
//! there, each checked by binding it.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// The lowest port handed out.
const LOWEST: u16 = 10_000;

/// Ports handed out so far by this process.
static HANDED_OUT: AtomicU32 = AtomicU32::new(0);

/// `n` distinct loopback addresses whose ports are free now and outside the
/// kernel's ephemeral range.
pub fn free_loopback_addrs(n: usize) -> io::Result<Vec<SocketAddr>> {
    let ephemeral_low = ephemeral_range_start();
    if ephemeral_low < LOWEST + 1_000 {
        // No room below the ephemeral range: fall back to the kernel's choice.
        return kernel_chosen(n);
    }
    let span = u32::from(ephemeral_low - LOWEST);
    // Processes start at different offsets, so test binaries running side by
    // side rarely probe the same ports.
    let offset = *PROCESS_OFFSET.get_or_init(|| process_seed() % span);
    // Every listener is held until all are chosen.
    let mut held = Vec::with_capacity(n);
    let mut refused = 0u32;
    while held.len() < n {
        let k = HANDED_OUT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + ((offset + k) % span) as u16;
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(listener) => held.push(listener),
            Err(e) => {
                refused += 1;
                if refused >= span {
                    return Err(e);
                }
            }
        }
    }
    held.iter().map(TcpListener::local_addr).collect()
}

static PROCESS_OFFSET: OnceLock<u32> = OnceLock::new();

fn process_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}

/// The first port of the kernel's ephemeral range (Linux), or the IANA
/// dynamic range's start where it cannot be read.
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}

fn kernel_chosen(n: usize) -> io::Result<Vec<SocketAddr>> {
    let held = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    held.iter().map(TcpListener::local_addr).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let addrs = free_loopback_addrs(16).unwrap();
        let ports: std::collections::BTreeSet<u16> = addrs.iter().map(|a| a.port()).collect();
        assert_eq!(ports.len(), 16);
        let low = ephemeral_range_start();
        for addr in &addrs {
            assert!(addr.ip().is_loopback());
            if low >= LOWEST + 1_000 {
                assert!((LOWEST..low).contains(&addr.port()), "{addr}");
            }
            TcpListener::bind(addr).unwrap();
        }
        let more = free_loopback_addrs(4).unwrap();
        assert!(more.iter().all(|a| !ports.contains(&a.port())));
    }
}
