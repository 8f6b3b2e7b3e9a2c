//! Preauthorized users (room-policy §Preauthorized Users): which role, if
//! any, a requester's credential claims give it.
//!
//! The draft leaves claims of a BasicCredential at "only identity". Our
//! reading (docs/divergences.md C20): a `ClaimId` of credential type
//! `basic` names one of three claims derived from the credential's
//! identity, the device URI `mimi://<domain>/d/<user>/<device>`:
//! `identity` (the device URI itself), `user` (the user URI
//! `mimi://<domain>/u/<user>`) and `domain` (the provider's domain). Claims
//! of other credential types never match a BasicCredential.

use mimi_protocol::components::room_policy::{Claim, PreAuthData};
use openmls::prelude::CredentialType;

use crate::identity::ClientIdentity;

/// The claim ids a BasicCredential carries (docs/divergences.md C20).
pub mod claim {
    pub const IDENTITY: &[u8] = b"identity";
    pub const USER: &[u8] = b"user";
    pub const DOMAIN: &[u8] = b"domain";
}

/// The claims of one client's BasicCredential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    identity: String,
    user: String,
    domain: String,
}

impl Claims {
    pub fn of(client: &ClientIdentity) -> Self {
        Self {
            identity: client.device.as_str().to_owned(),
            user: client.user.as_str().to_owned(),
            domain: client.user.domain().to_ascii_lowercase(),
        }
    }

    /// Whether the credential has a claim `claim.claim_id` whose value is
    /// exactly `claim.claim_value` (room-policy §Preauthorized Users).
    pub fn satisfies(&self, claim: &Claim) -> bool {
        if claim.claim_id.credential_type != CredentialType::Basic {
            return false;
        }
        let value = match claim.claim_id.id.as_slice() {
            claim::IDENTITY => &self.identity,
            claim::USER => &self.user,
            claim::DOMAIN => &self.domain,
            _ => return false,
        };
        value.as_bytes() == claim.claim_value.as_slice()
    }

    /// The role index of the first entry whose whole claimset these claims
    /// satisfy ("the requesting client receives the first role which
    /// matches its claims"); `None` when no entry matches. An entry with
    /// an empty claimset matches everyone.
    pub fn first_role(&self, preauth: &PreAuthData) -> Option<u32> {
        preauth
            .preauthorized_entries
            .iter()
            .find(|entry| entry.claimset.iter().all(|c| self.satisfies(c)))
            .map(|entry| entry.target_role.role_index)
    }
}

/// A claim for a preauthorization entry: `kind` is one of [`claim`].
pub fn basic_claim(kind: &[u8], value: &str) -> Claim {
    use mimi_protocol::components::room_policy::ClaimId;
    Claim {
        claim_id: ClaimId {
            credential_type: CredentialType::Basic,
            id: kind.to_vec().into(),
        },
        claim_value: value.as_bytes().to_vec().into(),
    }
}

#[cfg(test)]
mod tests {
    use mimi_protocol::MimiUri;
    use mimi_protocol::components::room_policy::PreAuthRoleEntry;

    use super::*;
    use crate::policy::{default_role, default_roles};

    fn claims(device: &str) -> Claims {
        let device = MimiUri::parse(device).unwrap();
        let user = crate::identity::user_of_device(&device).unwrap();
        Claims::of(&ClientIdentity { device, user })
    }

    fn entry(claimset: Vec<Claim>, role: u32) -> PreAuthRoleEntry {
        let target_role = default_roles()
            .roles
            .into_iter()
            .find(|r| r.role_index == role)
            .unwrap();
        PreAuthRoleEntry {
            claimset,
            target_role,
        }
    }

    #[test]
    fn the_first_entry_whose_claims_all_match_decides() {
        let preauth = PreAuthData {
            preauthorized_entries: vec![
                entry(
                    vec![
                        basic_claim(claim::DOMAIN, "b.example"),
                        basic_claim(claim::USER, "mimi://b.example/u/boss"),
                    ],
                    default_role::ADMIN,
                ),
                entry(
                    vec![basic_claim(claim::DOMAIN, "b.example")],
                    default_role::MEMBER,
                ),
            ],
        };
        assert_eq!(
            claims("mimi://b.example/d/boss/laptop").first_role(&preauth),
            Some(default_role::ADMIN)
        );
        assert_eq!(
            claims("mimi://b.example/d/bob/phone").first_role(&preauth),
            Some(default_role::MEMBER)
        );
        assert_eq!(
            claims("mimi://c.example/d/boss/laptop").first_role(&preauth),
            None
        );
        assert_eq!(
            claims("mimi://b.example/d/bob/phone").first_role(&PreAuthData::default()),
            None
        );
    }

    #[test]
    fn claims_match_exactly_and_only_for_basic_credentials() {
        let bob = claims("mimi://b.example/d/bob/phone");
        assert!(bob.satisfies(&basic_claim(
            claim::IDENTITY,
            "mimi://b.example/d/bob/phone"
        )));
        assert!(!bob.satisfies(&basic_claim(
            claim::IDENTITY,
            "mimi://b.example/d/bob/tablet"
        )));
        assert!(!bob.satisfies(&basic_claim(claim::DOMAIN, "B.example ")));
        assert!(!bob.satisfies(&basic_claim(b"email", "bob@b.example")));
        let mut x509 = basic_claim(claim::DOMAIN, "b.example");
        x509.claim_id.credential_type = CredentialType::X509;
        assert!(!bob.satisfies(&x509));
        let everyone = PreAuthData {
            preauthorized_entries: vec![entry(Vec::new(), default_role::MEMBER)],
        };
        assert_eq!(bob.first_role(&everyone), Some(default_role::MEMBER));
    }
}
