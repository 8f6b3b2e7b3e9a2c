//! The `external_senders` extension of a room's group (-06 §7.4
//! "Authenticating proposals").
//!
//! -06 §7.4: every MIMI group MUST carry `external_senders`, listing at
//! least the hub; a follower server's certificate MAY be added when one of
//! its users becomes a participant and MUST be removed when its last
//! participant leaves. The hub checks this on the room's state when it is
//! created and after every commit ([`check_external_senders`]), and lets a
//! GroupContextExtensions proposal change nothing but this list
//! ([`check_group_context_extensions`]). Pure: the caller gives the hub's
//! own entry and the domains that still have participants.

use std::collections::BTreeSet;

use mimi_protocol::MimiUri;
use openmls::prelude::{
    BasicCredential, Extension, ExtensionType, Extensions, ExternalSender, GroupContext,
};

/// Why a room's `external_senders` breaks -06 §7.4.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalSendersViolation {
    #[error("the group has no external_senders extension; -06 §7.4 requires one listing the hub")]
    Missing,
    #[error("the room state does not decode: {0}")]
    RoomState(String),
    #[error(
        "external_senders does not list this hub's key and credential for the room's ciphersuite (GET /client/v1/hub)"
    )]
    HubMissing,
    #[error("external_senders entry {index} names this hub's domain with another key")]
    OtherHubKey { index: usize },
    #[error("external_senders entry {index} is not a provider (mimi://<domain>): {detail}")]
    NotAProvider { index: usize, detail: String },
    #[error("external_senders lists {domain} more than once")]
    Duplicate { domain: String },
    #[error(
        "external_senders lists {domain}, which has no participant in the room (-06 §7.4: removed when its last participant leaves)"
    )]
    NoParticipant { domain: String },
}

/// Why a GroupContextExtensions proposal is refused: in a MIMI room it may
/// only change `external_senders` (-06 §7.4). The `app_data_dictionary`
/// changes through AppDataUpdate only (mls-extensions §"Updating
/// Application Data"), the other extensions fix what the room is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupContextExtensionsViolation {
    #[error("GroupContextExtensions may only change external_senders, not extension {0:?}")]
    Changes(ExtensionType),
}

/// The `mimi://` URI an external sender's BasicCredential names (M27:
/// openmls keeps the credential private, so it is re-decoded).
pub fn sender_uri(sender: &ExternalSender) -> Result<MimiUri, String> {
    let (_, credential) = mimi_protocol::msgs::group_info::external_sender_parts(sender)
        .map_err(|e| e.to_string())?;
    let basic = BasicCredential::try_from(credential)
        .map_err(|_| "external sender without a basic credential".to_owned())?;
    std::str::from_utf8(basic.identity())
        .ok()
        .and_then(|text| MimiUri::parse(text).ok())
        .ok_or_else(|| "external sender credential is not a mimi URI".to_owned())
}

/// The provider domain an external sender's credential names: a
/// BasicCredential whose identity is `mimi://<domain>` (-06 §3.1, as the
/// hub's own, see `keys::provider_credential`).
pub fn provider_domain(sender: &ExternalSender) -> Result<String, String> {
    let uri = sender_uri(sender)?;
    if uri.as_str() != format!("mimi://{}", uri.domain()) {
        return Err(format!("{} names more than a provider", uri.as_str()));
    }
    Ok(uri.domain().to_ascii_lowercase())
}

/// Checks a room's `external_senders` (-06 §7.4): present; the hub's own
/// entry `hub` in it; every other entry one follower provider
/// (`mimi://<domain>`), listed once, that still has a participant
/// (`participant_domains`).
///
/// The key of a follower's entry cannot be checked: -06 names no way to
/// learn another provider's signature key. The hub relies on the member
/// who proposed it; a wrong key only lets nobody speak for that provider.
pub fn check_external_senders(
    senders: Option<&[ExternalSender]>,
    hub: &ExternalSender,
    hub_domain: &str,
    participant_domains: &BTreeSet<String>,
) -> Result<(), ExternalSendersViolation> {
    let senders = senders.ok_or(ExternalSendersViolation::Missing)?;
    let mut listed = BTreeSet::new();
    let mut hub_listed = false;
    for (index, sender) in senders.iter().enumerate() {
        let domain = if sender == hub {
            hub_listed = true;
            hub_domain.to_ascii_lowercase()
        } else {
            let domain = provider_domain(sender)
                .map_err(|detail| ExternalSendersViolation::NotAProvider { index, detail })?;
            if domain.eq_ignore_ascii_case(hub_domain) {
                return Err(ExternalSendersViolation::OtherHubKey { index });
            }
            if !participant_domains.contains(&domain) {
                return Err(ExternalSendersViolation::NoParticipant { domain });
            }
            domain
        };
        if !listed.insert(domain.clone()) {
            return Err(ExternalSendersViolation::Duplicate { domain });
        }
    }
    if hub_listed {
        Ok(())
    } else {
        Err(ExternalSendersViolation::HubMissing)
    }
}

/// A GroupContextExtensions proposal may replace `external_senders` and
/// nothing else: every other extension of `current` must be in `proposed`
/// unchanged, and `proposed` may add none (-06 §7.4; mls-extensions
/// forbids it to touch `app_data_dictionary` in groups that require
/// AppDataUpdate). What the new list may contain is checked on the state
/// the commit produces ([`check_external_senders`]).
pub fn check_group_context_extensions(
    current: &Extensions<GroupContext>,
    proposed: &Extensions<GroupContext>,
) -> Result<(), GroupContextExtensionsViolation> {
    let others = |extensions: &Extensions<GroupContext>| -> Vec<Extension> {
        extensions
            .iter()
            .filter(|e| e.extension_type() != ExtensionType::ExternalSenders)
            .cloned()
            .collect()
    };
    let (current, proposed) = (others(current), others(proposed));
    for extension in current.iter().chain(proposed.iter()) {
        let same = |list: &[Extension]| list.iter().any(|e| e == extension);
        if !(same(&current) && same(&proposed)) {
            return Err(GroupContextExtensionsViolation::Changes(
                extension.extension_type(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use openmls::prelude::{Credential, SignaturePublicKey};

    fn sender(identity: &str, key: u8) -> ExternalSender {
        let credential: Credential = BasicCredential::new(identity.as_bytes().to_vec()).into();
        ExternalSender::new(SignaturePublicKey::from(vec![key; 32]), credential)
    }

    fn domains(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn the_hub_alone_or_with_participating_followers_is_allowed() {
        let hub = sender("mimi://a.example", 1);
        let b = sender("mimi://b.example", 2);
        let participating = domains(&["a.example", "b.example"]);
        assert_eq!(
            check_external_senders(
                Some(std::slice::from_ref(&hub)),
                &hub,
                "a.example",
                &participating
            ),
            Ok(())
        );
        assert_eq!(
            check_external_senders(Some(&[b, hub.clone()]), &hub, "a.example", &participating),
            Ok(())
        );
    }

    #[test]
    fn each_breach_of_section_7_4_is_named() {
        let hub = sender("mimi://a.example", 1);
        let participating = domains(&["a.example", "b.example"]);
        let check = |list: &[ExternalSender]| {
            check_external_senders(Some(list), &hub, "a.example", &participating)
        };
        assert_eq!(
            check_external_senders(None, &hub, "a.example", &participating),
            Err(ExternalSendersViolation::Missing)
        );
        assert_eq!(
            check(&[sender("mimi://b.example", 2)]),
            Err(ExternalSendersViolation::HubMissing)
        );
        assert_eq!(
            check(&[hub.clone(), sender("mimi://a.example", 9)]),
            Err(ExternalSendersViolation::OtherHubKey { index: 1 })
        );
        assert_eq!(
            check(&[hub.clone(), sender("mimi://c.example", 3)]),
            Err(ExternalSendersViolation::NoParticipant {
                domain: "c.example".into()
            })
        );
        assert_eq!(
            check(&[
                hub.clone(),
                sender("mimi://b.example", 2),
                sender("mimi://B.example", 4)
            ]),
            Err(ExternalSendersViolation::Duplicate {
                domain: "b.example".into()
            })
        );
        assert!(matches!(
            check(&[hub.clone(), sender("mimi://b.example/u/bob", 2)]),
            Err(ExternalSendersViolation::NotAProvider { index: 1, .. })
        ));
        assert!(matches!(
            check(&[hub.clone(), sender("not a uri", 2)]),
            Err(ExternalSendersViolation::NotAProvider { index: 1, .. })
        ));
    }

    #[test]
    fn group_context_extensions_may_change_only_external_senders() {
        let hub = sender("mimi://a.example", 1);
        let b = sender("mimi://b.example", 2);
        let required =
            Extension::RequiredCapabilities(openmls::prelude::RequiredCapabilitiesExtension::new(
                &[ExtensionType::AppDataDictionary],
                &[],
                &[],
            ));
        let with = |senders: Vec<ExternalSender>, mut more: Vec<Extension>| {
            more.push(Extension::ExternalSenders(senders));
            Extensions::from_vec(more).unwrap()
        };
        let current = with(vec![hub.clone()], vec![required.clone()]);
        assert_eq!(
            check_group_context_extensions(
                &current,
                &with(vec![hub.clone(), b.clone()], vec![required.clone()])
            ),
            Ok(())
        );
        assert_eq!(
            check_group_context_extensions(&current, &with(vec![hub.clone(), b.clone()], vec![])),
            Err(GroupContextExtensionsViolation::Changes(
                ExtensionType::RequiredCapabilities
            ))
        );
        let other_required = Extension::RequiredCapabilities(
            openmls::prelude::RequiredCapabilitiesExtension::new(&[], &[], &[]),
        );
        assert_eq!(
            check_group_context_extensions(&current, &with(vec![hub], vec![other_required])),
            Err(GroupContextExtensionsViolation::Changes(
                ExtensionType::RequiredCapabilities
            ))
        );
    }
}
