//! Three real providers on loopback: the test kit's federation
//! (crates/mimi-testkit), under the names these tests use.

#![allow(unused_imports)]

pub use mimi_testkit::postgres::postgres_url as postgres_admin_url;
pub use mimi_testkit::{Backend, Federation, Provider, start_federation};

/// Polls `$check` (a block that may `.await`) until it holds, for at
/// most 30 s: asynchronous fanout is waited for, never assumed.
#[allow(unused_macros)]
macro_rules! until {
    ($what:expr, $check:block) => {{
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !$check {
            assert!(std::time::Instant::now() < deadline, "timed out: {}", $what);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }};
}

/// `mimi-client` clients for `devices`, each registered with the provider
/// of its domain in `fed`.
#[allow(dead_code)]
pub async fn clients<const N: usize>(
    fed: &Federation,
    devices: [&str; N],
) -> [mimi_client::http::Client; N] {
    let mut out = Vec::with_capacity(N);
    for device in devices {
        let domain = mimi_protocol::MimiUri::parse(device)
            .expect("a device URI")
            .domain()
            .to_owned();
        let connection = fed
            .connection(&domain)
            .expect("a provider of the federation");
        out.push(
            mimi_client::http::Client::register(device, connection)
                .await
                .expect("registration"),
        );
    }
    match out.try_into() {
        Ok(clients) => clients,
        Err(_) => unreachable!("one client per device"),
    }
}
