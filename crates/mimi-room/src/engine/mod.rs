//! The hub as a decision engine (-06 §5.3–§5.6, §5.9).
//!
//! Every hub operation is one call that takes the stored room (its bytes,
//! as the store keeps them), the decoded request and the authenticated
//! requester, and returns a typed decision: accepted (the new stored state,
//! the event for the room log, its fanout, KeyPackageRef routes and the
//! response) or rejected (a typed reason that maps to the -06 response
//! code). The server loads, asks, stores with a compare-and-set and
//! answers; nothing here does IO, so every decision is unit-tested without
//! sockets or a database.

mod create;
mod group_info;
mod report;
mod submit;
mod update;

use std::collections::BTreeSet;

use mimi_protocol::MimiUri;
use mimi_protocol::components::FrankingAgentData;
use openmls::prelude::ExternalSender;
use openmls_rust_crypto::RustCrypto;

use crate::keys::{FrankingKey, HubKey};

pub use create::CreatedRoom;
pub use group_info::{group_info_failure, requesting_device};
pub use report::VerifiedReport;
pub use submit::{SubmitDecision, SubmitView, sending_user, submit_response};
pub use update::{UpdateDecision, is_external_commit, update_response, wrong_epoch_response};

/// Who asks the hub: a peer provider, authenticated by mutual TLS and its
/// `From` header (-06 §4.1), or one of the hub provider's own devices
/// (client API bearer token).
#[derive(Debug, Clone)]
pub enum Requester {
    Provider(String),
    Device { user: MimiUri, device: MimiUri },
}

impl Requester {
    /// May this requester speak for a client of `user`? A provider speaks
    /// for the users of its domain; a device only for its own user.
    pub fn speaks_for_user(&self, user: &MimiUri) -> bool {
        match self {
            Self::Provider(domain) => user.domain().eq_ignore_ascii_case(domain),
            Self::Device { user: me, .. } => me.as_str() == user.as_str(),
        }
    }

    /// May this requester speak for the client `device`?
    pub fn speaks_for_device(&self, device: &MimiUri) -> bool {
        match self {
            Self::Provider(domain) => device.domain().eq_ignore_ascii_case(domain),
            Self::Device { device: me, .. } => me.as_str() == device.as_str(),
        }
    }
}

/// One accepted event's copies: the same payload (a TLS-encoded
/// `FanoutMessage`) to every destination provider (-06 §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    pub destinations: BTreeSet<String>,
    pub payload: Vec<u8>,
}

/// A KeyPackageRef and the provider a Welcome naming it goes to (-06 §5.2,
/// §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPackageRoute {
    pub key_package_ref: Vec<u8>,
    pub provider: String,
}

/// The hub: its domain, keys and crypto provider. One per server.
pub struct HubEngine {
    domain: String,
    crypto: RustCrypto,
    hub_key: HubKey,
    franking: FrankingKey,
}

impl HubEngine {
    pub fn new(domain: &str, hub_key: HubKey, franking: FrankingKey) -> Self {
        Self {
            domain: domain.to_ascii_lowercase(),
            crypto: RustCrypto::default(),
            hub_key,
            franking,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The hub's `ExternalSender` (-06 §7.4), which rooms hosted here list.
    pub fn external_sender(&self) -> ExternalSender {
        self.hub_key.external_sender()
    }

    /// What rooms put in their `franking_signature_key` component for this
    /// hub to frank their messages (-06 §5.4.1).
    pub fn franking_agent(&self) -> FrankingAgentData {
        self.franking.agent_data()
    }

    pub(crate) fn crypto(&self) -> &RustCrypto {
        &self.crypto
    }

    fn is_own_domain(&self, domain: &str) -> bool {
        domain.eq_ignore_ascii_case(&self.domain)
    }
}

/// Milliseconds as the `uint64` timestamps of -06.
pub(crate) fn timestamp(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
