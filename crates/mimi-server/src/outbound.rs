//! Outbound federation requests: peer discovery and the mTLS HTTP client
//! (-06 §4.1, §5.1).
//!
//! A peer is found through its directory document at
//! `https://<domain>/.well-known/mimi-protocol-directory`, cached for
//! [`DIRECTORY_TTL`]. The `peers` config maps a domain to a `host:port` for
//! local runs; the TLS name checked is always the peer's domain.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mimi_protocol::directory::Directory;
use reqwest::header::{CONTENT_TYPE, FROM};

use crate::tls::{self, ProviderIdentity, TlsError};

/// How long a fetched directory is trusted.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(600);

/// Media type of TLS-PL encoded MIMI bodies.
pub const MIMI_CONTENT_TYPE: &str = "application/mimi-protocol";

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("TLS setup: {0}")]
    Tls(#[from] TlsError),
    #[error("peer override for {domain} is not host:port ({value})")]
    BadOverride { domain: String, value: String },
    #[error("request to {domain} failed: {source}")]
    Http {
        domain: String,
        source: reqwest::Error,
    },
    #[error("{domain} answered {status} to the directory request")]
    DirectoryStatus {
        domain: String,
        status: reqwest::StatusCode,
    },
    #[error("{domain} published an invalid directory: {reason}")]
    BadDirectory { domain: String, reason: String },
    #[error("client construction: {0}")]
    Client(reqwest::Error),
}

/// The HTTP client this provider uses towards its peers.
pub struct PeerClient {
    local_domain: String,
    http: reqwest::Client,
    /// Port to use for discovery per overridden domain.
    override_ports: BTreeMap<String, u16>,
    directories: Mutex<HashMap<String, (Directory, Instant)>>,
}

impl PeerClient {
    pub fn new(
        local_domain: &str,
        ca_pem: &str,
        identity: &ProviderIdentity,
        overrides: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Self, OutboundError> {
        let config = tls::client_config(tls::root_store(ca_pem)?, Some(identity))?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_idle_timeout(Duration::from_secs(90));
        let mut override_ports = BTreeMap::new();
        for (domain, value) in overrides {
            let bad = || OutboundError::BadOverride {
                domain: domain.clone(),
                value: value.clone(),
            };
            let addrs: Vec<SocketAddr> = value.to_socket_addrs().map_err(|_| bad())?.collect();
            let port = addrs.first().ok_or_else(bad)?.port();
            builder = builder.resolve_to_addrs(domain, &addrs);
            override_ports.insert(domain.clone(), port);
        }
        Ok(Self {
            local_domain: local_domain.to_owned(),
            http: builder.build().map_err(OutboundError::Client)?,
            override_ports,
            directories: Mutex::new(HashMap::new()),
        })
    }

    /// The peer's directory, from cache or freshly fetched.
    pub async fn directory(&self, domain: &str) -> Result<Directory, OutboundError> {
        if let Some((dir, fetched)) = self
            .directories
            .lock()
            .ok()
            .and_then(|m| m.get(domain).cloned())
            && fetched.elapsed() < DIRECTORY_TTL
        {
            return Ok(dir);
        }
        let url = match self.override_ports.get(domain) {
            Some(port) => format!("https://{domain}:{port}/.well-known/mimi-protocol-directory"),
            None => format!("https://{domain}/.well-known/mimi-protocol-directory"),
        };
        let response = self
            .http
            .get(url)
            .header(FROM, format!("mimi@{}", self.local_domain))
            .send()
            .await
            .map_err(|source| OutboundError::Http {
                domain: domain.into(),
                source,
            })?;
        if !response.status().is_success() {
            return Err(OutboundError::DirectoryStatus {
                domain: domain.into(),
                status: response.status(),
            });
        }
        let text = response
            .text()
            .await
            .map_err(|source| OutboundError::Http {
                domain: domain.into(),
                source,
            })?;
        let dir = Directory::from_json(&text).map_err(|e| OutboundError::BadDirectory {
            domain: domain.into(),
            reason: e.to_string(),
        })?;
        if let Ok(mut cache) = self.directories.lock() {
            cache.insert(domain.to_owned(), (dir.clone(), Instant::now()));
        }
        Ok(dir)
    }

    /// POSTs a TLS-PL body to `url` at `domain`, naming us in `From`.
    pub async fn post(
        &self,
        domain: &str,
        url: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, OutboundError> {
        self.http
            .post(url)
            .header(FROM, format!("mimi@{}", self.local_domain))
            .header(CONTENT_TYPE, MIMI_CONTENT_TYPE)
            .body(body)
            .send()
            .await
            .map_err(|source| OutboundError::Http {
                domain: domain.into(),
                source,
            })
    }
}
