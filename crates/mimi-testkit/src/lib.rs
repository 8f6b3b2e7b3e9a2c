//! Development-only test kit for mimi-rs, shared by the server and CLI
//! tests, `mimi demo` and `mimi bench`:
//!
//! - [`federation`]: three providers on loopback with a dev CA, real mutual
//!   TLS and real stores (SQLite, or PostgreSQL when asked), and device
//!   registration through a provider's client API;
//! - [`clients`]: real openmls clients that drive a hub directly;
//! - [`postgres`]: a fresh database per test on the server named by
//!   `MIMI_TEST_POSTGRES_URL`, failing loudly when it is unset;
//! - [`ports`]: loopback ports for servers started by tests.
//!
//! No production code path depends on this crate: the `mimi` binary has it
//! only with its `dev-tools` feature.

pub mod clients;
pub mod error;
pub mod federation;
pub mod ports;
pub mod postgres;

pub use error::KitError;
pub use federation::{Backend, DOMAINS, Federation, Options, Provider, start_federation};
