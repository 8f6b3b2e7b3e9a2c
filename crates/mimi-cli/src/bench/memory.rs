//! (d) Memory of the hub per room and per member.
//!
//! Two measures per group size: the room state the hub stores (the row
//! written at creation, read back from the store), and the in-memory
//! footprint of a restored room (`HubRoom`, i.e. the openmls PublicGroup
//! with its tree), as the RSS growth while holding `copies` of it. The
//! per-member cost and the fixed per-room cost come from a straight-line
//! fit over the sizes.

use anyhow::Context;
use mimi_room::HubRoom;

use super::net::{HUB, Net};
use super::rooms;
use super::stats::{line, rss_bytes, section};

/// Least-squares line `y = a + b·x`; returns `(a, b)`.
fn fit(points: &[(f64, f64)]) -> (f64, f64) {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    let b = if den == 0.0 { 0.0 } else { num / den };
    (my - b * mx, b)
}

pub async fn run(net: &Net, sizes: &[usize], copies: usize) -> anyhow::Result<()> {
    section(&format!(
        "(d) Hub memory per room and per member ({})",
        net.store_name()
    ));
    let store = &net.server(HUB).state.store;
    let mut points = Vec::new();
    for &size in sizes {
        let tag = format!("mem{size}m");
        let group = rooms::build_group(&tag, size, 0, rooms::hub_sender(net))?;
        let room = rooms::host(net, &group, &tag).await?;
        let record = store.load_room(&room).await?.context("room not stored")?;
        let hub_bytes = HubRoom::create(
            &openmls_rust_crypto::RustCrypto::default(),
            group.tree.clone(),
            group.group_info.clone(),
        )?
        .to_bytes()?;
        drop(group);
        let before = rss_bytes().unwrap_or(0);
        let held: Vec<HubRoom> = (0..copies.max(1))
            .map(|_| HubRoom::from_bytes(&hub_bytes))
            .collect::<Result<_, _>>()?;
        let after = rss_bytes().unwrap_or(0);
        let resident = after.saturating_sub(before) as f64 / held.len() as f64;
        drop(held);
        line(&format!(
            "{size} members: stored room state {} bytes ({:.0} per member); restored in memory ≈ {:.0} bytes ({:.0} per member)",
            record.group_state.len(),
            record.group_state.len() as f64 / size as f64,
            resident,
            resident / size as f64
        ));
        points.push((size as f64, record.group_state.len() as f64, resident));
    }
    let stored: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.1)).collect();
    let resident: Vec<(f64, f64)> = points.iter().map(|p| (p.0, p.2)).collect();
    let (stored_per_room, stored_per_member) = fit(&stored);
    let (resident_per_room, resident_per_member) = fit(&resident);
    line(&format!(
        "fit: stored ≈ {stored_per_room:.0} bytes per room + {stored_per_member:.0} per member; in memory ≈ {resident_per_room:.0} bytes per room + {resident_per_member:.0} per member"
    ));
    if let Some(rss) = rss_bytes() {
        line(&format!(
            "process RSS now (three providers, bench clients): {:.1} MiB",
            rss as f64 / (1024.0 * 1024.0)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fit_recovers_a_line() {
        let (a, b) = super::fit(&[(10.0, 1100.0), (100.0, 10100.0), (1000.0, 100100.0)]);
        assert!((a - 100.0).abs() < 1e-6 && (b - 100.0).abs() < 1e-6);
    }
}
