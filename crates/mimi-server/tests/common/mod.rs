//! Three real providers on loopback: the test kit's federation
//! (crates/mimi-testkit), under the names these tests use.

#![allow(unused_imports)]

pub use mimi_testkit::postgres::postgres_url as postgres_admin_url;
pub use mimi_testkit::{Backend, Federation, Provider, start_federation};
