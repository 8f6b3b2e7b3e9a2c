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
