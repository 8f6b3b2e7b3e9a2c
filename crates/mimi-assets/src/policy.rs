//! The room's asset upload rules applied to an `ExternalPart` URL
//! (draft-ietf-mimi-room-policy §Asset policies, the `asset_policy`
//! component).
//!
//! The draft: "Unless `asset_upload_location` is `unspecified`, the
//! clients verify that assets in the host part of the `url` of any MIMI
//! content ExternalPart corresponds to an entry in `asset_upload_domains`.
//! If the `asset_upload_location` is `localProvider` the
//! `asset_upload_domains` list is from the `provider` domain name that
//! exactly matches the sender URI domain name."
//!
//! So "no restriction" is said by `asset_upload_location = unspecified`,
//! not by an empty list: with `localProvider` or `hub`, an empty list (or
//! no entry for the sender's provider) means no URL corresponds to an
//! entry, and every asset is refused. [`host_allowed`] therefore returns
//! `false` for an empty list, and [`check_upload_url`] is where
//! `unspecified` admits any host. This fails closed where the draft is
//! silent: a room that names a location but lists no domain cannot carry
//! assets until the policy lists one.

use url::{Host, Url};

/// `AssetUploadLocation` (room-policy §Asset policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UploadLocation {
    /// `unspecified(0)`: any location; URLs are not checked.
    Unspecified,
    /// `localProvider(1)`: each client uploads to its own provider; the
    /// sender's provider's entry applies.
    LocalProvider,
    /// `hub(2)`: all clients upload to the hub, the only provider listed.
    Hub,
}

impl UploadLocation {
    /// The location with the given wire value, `None` for values the
    /// draft does not define.
    pub const fn from_wire(value: u8) -> Option<Self> {
        match value {
            0 => Some(UploadLocation::Unspecified),
            1 => Some(UploadLocation::LocalProvider),
            2 => Some(UploadLocation::Hub),
            _ => None,
        }
    }
}

/// `ProviderAssetUploadDomains`: a provider and its asset upload hosts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderUploadDomains {
    /// The provider's domain name.
    pub provider: String,
    /// `asset_upload_destinations`: the hosts its clients upload to.
    pub destinations: Vec<String>,
}

/// Why an `ExternalPart` URL breaks the room's asset policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadPolicyRefusal {
    /// The URL has no DNS host name to compare (unparsable, no host, or an
    /// IP address).
    #[error("asset URL {url:?} has no host name to check against the room's upload domains")]
    NoHostName {
        /// The URL as sent.
        url: String,
    },
    /// With `localProvider`, the policy lists no upload domains for the
    /// sender's provider.
    #[error(
        "the room lists no asset upload domains for the sender's provider {sender_domain} (room-policy §Asset policies)"
    )]
    NoDomainsForSender {
        /// The sender URI's domain.
        sender_domain: String,
    },
    /// The URL's host is not one of the applicable upload domains.
    #[error("{host} is not an asset upload domain of the room (room-policy §Asset policies)")]
    NotAnUploadDomain {
        /// The URL's normalized host.
        host: String,
    },
}

/// Lowercase, without one trailing dot.
fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The normalized DNS host of `url`, `None` when it has none.
fn url_host(url: &str) -> Option<String> {
    match Url::parse(url).ok()?.host()? {
        Host::Domain(d) => Some(normalize(d)),
        Host::Ipv4(_) | Host::Ipv6(_) => None,
    }
}

/// Whether the host of `url` is one of `asset_upload_domains`: exact
/// match, case-insensitive, one trailing dot ignored on either side; no
/// subdomain or wildcard matching. An empty list matches nothing (see the
/// module documentation; room-policy §Asset policies), and a URL without a
/// DNS host name (unparsable, IP literal) matches nothing.
pub fn host_allowed(url: &str, asset_upload_domains: &[String]) -> bool {
    url_host(url).is_some_and(|host| asset_upload_domains.iter().any(|d| normalize(d) == host))
}

/// Checks an `ExternalPart` URL sent by a user of `sender_domain` against
/// the room's `asset_upload_location` and `upload_domains`
/// (room-policy §Asset policies):
///
/// * `unspecified`: any URL;
/// * `localProvider`: a host of the entry whose `provider` is exactly the
///   sender's domain (case-insensitive, trailing dot ignored);
/// * `hub`: a host of any entry (the draft lists only the hub's).
pub fn check_upload_url(
    location: UploadLocation,
    upload_domains: &[ProviderUploadDomains],
    sender_domain: &str,
    url: &str,
) -> Result<(), UploadPolicyRefusal> {
    let destinations: Vec<String> = match location {
        UploadLocation::Unspecified => return Ok(()),
        UploadLocation::LocalProvider => {
            let sender = normalize(sender_domain);
            upload_domains
                .iter()
                .filter(|p| normalize(&p.provider) == sender)
                .flat_map(|p| p.destinations.iter().cloned())
                .collect()
        }
        UploadLocation::Hub => upload_domains
            .iter()
            .flat_map(|p| p.destinations.iter().cloned())
            .collect(),
    };
    let Some(host) = url_host(url) else {
        return Err(UploadPolicyRefusal::NoHostName {
            url: url.to_owned(),
        });
    };
    if destinations.is_empty() && location == UploadLocation::LocalProvider {
        return Err(UploadPolicyRefusal::NoDomainsForSender {
            sender_domain: normalize(sender_domain),
        });
    }
    if destinations.iter().any(|d| normalize(d) == host) {
        Ok(())
    } else {
        Err(UploadPolicyRefusal::NotAnUploadDomain { host })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn host_match_is_exact_case_insensitive_and_ignores_a_trailing_dot() {
        let allowed = domains(&["files.a.example", "Assets.B.Example."]);
        assert!(host_allowed("https://files.a.example/x.mp4", &allowed));
        assert!(host_allowed("https://FILES.A.example./x.mp4", &allowed));
        assert!(host_allowed("https://assets.b.example:8443/y", &allowed));
        assert!(!host_allowed("https://sub.files.a.example/x", &allowed));
        assert!(!host_allowed("https://a.example/x", &allowed));
        assert!(!host_allowed(
            "https://files.a.example.evil.example/x",
            &allowed
        ));
        // Userinfo does not change the host that is compared.
        assert!(!host_allowed(
            "https://files.a.example@evil.example/x",
            &allowed
        ));
    }

    #[test]
    fn an_empty_list_or_a_url_without_a_host_name_matches_nothing() {
        assert!(!host_allowed("https://files.a.example/x", &[]));
        let allowed = domains(&["files.a.example", "127.0.0.1"]);
        assert!(!host_allowed("not a url", &allowed));
        assert!(!host_allowed("https://127.0.0.1/x", &allowed));
        assert!(!host_allowed("", &allowed));
    }

    fn room() -> Vec<ProviderUploadDomains> {
        vec![
            ProviderUploadDomains {
                provider: "a.example".into(),
                destinations: domains(&["files.a.example"]),
            },
            ProviderUploadDomains {
                provider: "B.example".into(),
                destinations: domains(&["assets.b.example", "cdn.b.example"]),
            },
        ]
    }

    #[test]
    fn unspecified_admits_any_url() {
        for url in ["https://anything.example/x", "not even a url"] {
            assert_eq!(
                check_upload_url(UploadLocation::Unspecified, &[], "a.example", url),
                Ok(())
            );
        }
    }

    #[test]
    fn local_provider_uses_only_the_senders_entry() {
        let r = room();
        let check = |sender, url| check_upload_url(UploadLocation::LocalProvider, &r, sender, url);
        assert_eq!(check("a.example", "https://files.a.example/x"), Ok(()));
        assert_eq!(check("b.example.", "https://cdn.b.example/x"), Ok(()));
        assert_eq!(
            check("a.example", "https://assets.b.example/x"),
            Err(UploadPolicyRefusal::NotAnUploadDomain {
                host: "assets.b.example".into()
            })
        );
        assert_eq!(
            check("c.example", "https://files.a.example/x"),
            Err(UploadPolicyRefusal::NoDomainsForSender {
                sender_domain: "c.example".into()
            })
        );
        assert_eq!(
            check("a.example", "https://10.0.0.1/x"),
            Err(UploadPolicyRefusal::NoHostName {
                url: "https://10.0.0.1/x".into()
            })
        );
    }

    #[test]
    fn hub_uses_the_listed_entries_and_an_empty_list_refuses() {
        let hub = vec![ProviderUploadDomains {
            provider: "hub.example".into(),
            destinations: domains(&["media.hub.example"]),
        }];
        let check = |list: &[ProviderUploadDomains], url| {
            check_upload_url(UploadLocation::Hub, list, "a.example", url)
        };
        assert_eq!(check(&hub, "https://media.hub.example/x"), Ok(()));
        assert_eq!(
            check(&hub, "https://files.a.example/x"),
            Err(UploadPolicyRefusal::NotAnUploadDomain {
                host: "files.a.example".into()
            })
        );
        assert_eq!(
            check(&[], "https://media.hub.example/x"),
            Err(UploadPolicyRefusal::NotAnUploadDomain {
                host: "media.hub.example".into()
            })
        );
    }

    #[test]
    fn wire_values_map_to_locations() {
        assert_eq!(
            UploadLocation::from_wire(0),
            Some(UploadLocation::Unspecified)
        );
        assert_eq!(
            UploadLocation::from_wire(1),
            Some(UploadLocation::LocalProvider)
        );
        assert_eq!(UploadLocation::from_wire(2), Some(UploadLocation::Hub));
        assert_eq!(UploadLocation::from_wire(3), None);
    }

    #[test]
    fn refusals_name_the_draft_section() {
        let r = UploadPolicyRefusal::NotAnUploadDomain {
            host: "x.example".into(),
        };
        assert_eq!(
            r.to_string(),
            "x.example is not an asset upload domain of the room (room-policy §Asset policies)"
        );
    }
}
