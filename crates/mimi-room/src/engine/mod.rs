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
use openmls::prelude::{Ciphersuite, ExternalSender};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::crypto::OpenMlsCrypto as _;

use crate::external_senders::ExternalSendersViolation;
use crate::keys::{FrankingKey, HubKey};
use crate::{HubRoom, RoomError};

pub use create::CreatedRoom;
pub use group_info::{group_info_failure, requesting_device};
pub use report::VerifiedReport;
pub use submit::{SubmitDecision, SubmitView, sending_user, submit_response};
pub use update::{
    AcceptedUpdate, HubProposals, UpdateDecision, is_external_commit, update_response,
    wrong_epoch_response,
};

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
///
/// The hub has a signature key and a franking key per signature scheme
/// (`keys::supported_signature_schemes`); a room's cipher suite picks the
/// pair its external sender, groupInfo signatures and franks use.
pub struct HubEngine {
    domain: String,
    crypto: RustCrypto,
    hub_keys: Vec<HubKey>,
    franking_keys: Vec<FrankingKey>,
}

impl HubEngine {
    /// The hub of `domain` with its keys, at most one of each per
    /// signature scheme (the first of a scheme is used). A suite whose
    /// scheme has no key is not offered: rooms on it cannot list the hub
    /// and are not franked.
    pub fn new(domain: &str, hub_keys: Vec<HubKey>, franking_keys: Vec<FrankingKey>) -> Self {
        Self {
            domain: domain.to_ascii_lowercase(),
            crypto: RustCrypto::default(),
            hub_keys,
            franking_keys,
        }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The cipher suites rooms hosted here may use: those the crypto
    /// provider supports for which the hub has a signature and a franking
    /// key.
    pub fn supported_ciphersuites(&self) -> Vec<Ciphersuite> {
        self.crypto
            .supported_ciphersuites()
            .into_iter()
            .filter(|cs| self.hub_key(*cs).is_some() && self.franking_key(*cs).is_some())
            .collect()
    }

    /// The hub's `ExternalSender` (-06 §7.4) for rooms on `ciphersuite`:
    /// its key of the suite's signature scheme. `None` for a suite the
    /// hub does not support.
    pub fn external_sender(&self, ciphersuite: Ciphersuite) -> Option<ExternalSender> {
        self.hub_key(ciphersuite).map(HubKey::external_sender)
    }

    /// -06 §7.4 on `room`'s current state, with this hub's entry for the
    /// room's ciphersuite (at creation and after every commit).
    pub(crate) fn check_external_senders(
        &self,
        room: &HubRoom,
    ) -> Result<(), ExternalSendersViolation> {
        room.check_external_senders(
            self.external_sender(room.public_group().ciphersuite())
                .as_ref(),
            self.domain(),
        )
    }

    /// What rooms on `ciphersuite` put in their `franking_signature_key`
    /// component for this hub to frank their messages (-06 §5.4.1: the
    /// key's algorithm is the room suite's signature algorithm).
    pub fn franking_agent(&self, ciphersuite: Ciphersuite) -> Option<FrankingAgentData> {
        self.franking_key(ciphersuite).map(FrankingKey::agent_data)
    }

    /// The hub key of `ciphersuite`'s signature scheme, if the crypto
    /// provider supports the suite.
    pub(crate) fn hub_key(&self, ciphersuite: Ciphersuite) -> Option<&HubKey> {
        if self.crypto.supports(ciphersuite).is_err() {
            return None;
        }
        let scheme = ciphersuite.signature_algorithm();
        self.hub_keys
            .iter()
            .find(|k| k.signature_scheme() == scheme)
    }

    /// The franking key of `ciphersuite`'s signature scheme, if the
    /// crypto provider supports the suite.
    pub(crate) fn franking_key(&self, ciphersuite: Ciphersuite) -> Option<&FrankingKey> {
        if self.crypto.supports(ciphersuite).is_err() {
            return None;
        }
        let scheme = ciphersuite.signature_algorithm();
        self.franking_keys
            .iter()
            .find(|k| k.signature_scheme() == scheme)
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

impl HubEngine {
    /// The parent room of a parent-dependent room stored as `state`
    /// (room-policy §Base Room policy), if it is one.
    pub fn parent_room(&self, state: &[u8]) -> Result<Option<String>, RoomError> {
        let policy = crate::stored::StoredRoom::decode(state)?
            .hub
            .policy_state()?;
        Ok(policy
            .base
            .parent_dependant
            .then(|| policy.base.parent_room.first())
            .flatten()
            .and_then(|uri| uri.as_str().map(str::to_owned)))
    }

    /// Whether the room stored as `child` holds only participants of the
    /// room stored as `parent` (its parent, hosted here).
    pub fn check_parent(
        &self,
        child: &[u8],
        parent: &[u8],
    ) -> Result<(), crate::rejection::PolicyViolation> {
        let read = |state: &[u8]| {
            crate::stored::StoredRoom::decode(state)
                .and_then(|room| room.hub.policy_state())
                .map_err(|e| crate::rejection::PolicyViolation::BasePolicy(e.to_string()))
        };
        crate::policy::base::check_parent_membership(&read(child)?, &read(parent)?)
    }
}
