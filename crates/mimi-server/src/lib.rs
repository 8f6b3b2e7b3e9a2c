//! The MIMI provider server (draft-ietf-mimi-protocol-06).

pub mod tls;
pub mod transport;
