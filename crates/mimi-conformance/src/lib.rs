//! A conformance suite for MIMI providers (draft-ietf-mimi-protocol-06).
//!
//! [`run`] connects to a target provider over mutual TLS as a tester
//! provider, runs a battery of checks that only use -06 on the wire, and
//! returns a [`Report`]: check, -06 section, MUST/SHOULD, pass/fail/skip
//! and the evidence (what was sent, what came back). Checks that need a
//! fixture at the target (a user with KeyPackages, a room) are skipped
//! when it is not given. docs/conformance.md explains how to run it.

mod checks;
pub mod mls;
pub mod report;
pub mod wire;

use std::net::SocketAddr;

use mimi_protocol::directory::{Directory, FederationEndpoint};
use mimi_protocol::{MimiUri, MimiUriError};

pub use report::{CheckResult, Level, Report, Verdict};
pub use wire::{ClientSetupError, TlsMaterial};

use crate::mls::{MlsError, SampleMessages, TesterClient};
use crate::wire::Wire;

/// What the operator set up at the target for the checks that need it.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    /// A user at the target with at least two uploaded KeyPackages (on one
    /// client or more) whose consent admits [`Fixtures::requester`].
    pub user: Option<MimiUri>,
    /// The tester's user that requests key material and joins rooms; of
    /// the tester's domain. Default `mimi://<tester domain>/u/conformance`.
    pub requester: Option<MimiUri>,
    /// `user` requires explicit consent and has granted it only to
    /// `requester`, so any other requester must be refused (-06 §5.2, §5.7).
    pub consent_required: bool,
    /// A handle under which `user` is discoverable by an exact `handle`
    /// query (-06 §5.8).
    pub handle: Option<String>,
    /// A room the target hosts whose participant list has `requester`
    /// with the right to add its own clients, so that the tester can join
    /// by external commit (-06 §5.6). The run adds two devices to it.
    pub room: Option<MimiUri>,
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The target provider's domain, or an `https://` URL whose host is it
    /// (the URL's port is used to reach it).
    pub target: String,
    /// Connect to this address instead of resolving the target's domain
    /// (the TLS server name and `Host` stay the domain).
    pub connect: Option<SocketAddr>,
    /// The tester's provider domain, which the client certificate must
    /// authenticate (-06 §4.1).
    pub tester_domain: String,
    pub tls: TlsMaterial,
    pub fixtures: Fixtures,
}

/// Why a run could not start (a run that starts always ends in a report).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--target {0:?}: not a domain or an https:// URL")]
    Target(String),
    #[error("{what} {value:?}: {error}")]
    Uri {
        what: &'static str,
        value: String,
        error: MimiUriError,
    },
    #[error("{0} must be a user URI of the tester's domain {1}")]
    Requester(String, String),
    #[error(transparent)]
    Client(#[from] ClientSetupError),
    #[error("building the tester's MLS client: {0}")]
    Mls(#[from] MlsError),
}

/// The target's domain and base URL.
fn parse_target(target: &str, connect: Option<SocketAddr>) -> Result<(String, String), RunError> {
    let bad = || RunError::Target(target.to_owned());
    let (domain, port) = if let Some(rest) = target.strip_prefix("https://") {
        let authority = rest.split('/').next().unwrap_or_default();
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port: u16 = port.parse().map_err(|_| bad())?;
                (host.to_owned(), Some(port))
            }
            None => (authority.to_owned(), None),
        }
    } else {
        (target.to_owned(), None)
    };
    // A domain as -06 uses it: the domain of mimi:// URIs (RFC 3986 host).
    MimiUri::provider(&domain).map_err(|_| bad())?;
    let port = port.or(connect.map(|a| a.port()));
    let base = match port {
        Some(p) if p != 443 => format!("https://{domain}:{p}"),
        _ => format!("https://{domain}"),
    };
    Ok((domain, base))
}

/// Everything the checks share.
pub(crate) struct Context {
    pub wire: Wire,
    pub target_domain: String,
    pub base_url: String,
    pub tester_domain: String,
    pub directory: Option<Directory>,
    pub fixtures: Fixtures,
    /// The tester's requesting user.
    pub requester: MimiUri,
    pub client: TesterClient,
    pub samples: SampleMessages,
    /// Random, so that repeated runs do not collide.
    pub run_id: String,
}

impl Context {
    /// The URL of `E` for `target` from the target's directory, or why
    /// there is none.
    pub fn url<E: FederationEndpoint>(&self, target: &E::Target) -> Result<String, String> {
        let Some(directory) = &self.directory else {
            return Err("no usable directory".into());
        };
        directory
            .url::<E>(target)
            .map_err(|e| format!("the directory offers no usable `{}`: {e}", E::KEY))
    }

    /// A fresh user of the tester's domain.
    pub fn fresh_tester_user(&self, label: &str) -> String {
        format!(
            "mimi://{}/u/conformance-{label}-{}",
            self.tester_domain, self.run_id
        )
    }

    /// A user of the target's domain that nobody has.
    pub fn unknown_target_user(&self) -> String {
        format!(
            "mimi://{}/u/conformance-nobody-{}",
            self.target_domain, self.run_id
        )
    }
}

/// Runs every check against the target.
pub async fn run(config: Config) -> Result<Report, RunError> {
    let (target_domain, base_url) = parse_target(&config.target, config.connect)?;
    MimiUri::provider(&config.tester_domain).map_err(|error| RunError::Uri {
        what: "tester domain",
        value: config.tester_domain.clone(),
        error,
    })?;
    let requester = match &config.fixtures.requester {
        Some(r) => r.clone(),
        None => {
            MimiUri::user(&config.tester_domain, "conformance").map_err(|error| RunError::Uri {
                what: "tester user",
                value: config.tester_domain.clone(),
                error,
            })?
        }
    };
    if requester.domain() != config.tester_domain
        || requester.kind() != mimi_protocol::MimiUriKind::User
    {
        return Err(RunError::Requester(
            requester.as_str().to_owned(),
            config.tester_domain.clone(),
        ));
    }
    let wire = Wire::new(
        &config.tester_domain,
        &target_domain,
        config.connect,
        &config.tls,
    )?;
    let user_id = requester.id_decoded().unwrap_or_default().into_owned();
    let probe = TesterClient::new("mimi://conformance.invalid/d/conformance/probe")?;
    let run_id = probe.random_hex(6);
    let device = format!(
        "mimi://{}/d/{user_id}/conformance-{run_id}",
        config.tester_domain
    );
    let client = TesterClient::new(&device)?;
    let samples = client.sample_messages()?;
    let mut ctx = Context {
        wire,
        target_domain: target_domain.clone(),
        base_url,
        tester_domain: config.tester_domain.clone(),
        directory: None,
        fixtures: config.fixtures,
        requester,
        client,
        samples,
        run_id,
    };
    let checks = checks::run_all(&mut ctx).await;
    Ok(Report {
        target: target_domain,
        tester: config.tester_domain,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let addr: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let t = |s: &str, c| parse_target(s, c).map_err(|e| e.to_string());
        assert_eq!(
            t("a.example", None).unwrap(),
            ("a.example".into(), "https://a.example".into())
        );
        assert_eq!(
            t("a.example", Some(addr)).unwrap(),
            ("a.example".into(), "https://a.example:8443".into())
        );
        assert_eq!(
            t("https://a.example:9000/", Some(addr)).unwrap(),
            ("a.example".into(), "https://a.example:9000".into())
        );
        assert_eq!(
            t("https://a.example:443", None).unwrap(),
            ("a.example".into(), "https://a.example".into())
        );
        for bad in [
            "http://a.example",
            "https://a.example:x",
            "127.0.0.1",
            "",
            "a b",
        ] {
            assert!(t(bad, None).is_err(), "{bad}");
        }
    }
}
