//! Outbound federation requests: peer discovery and the mTLS HTTP client
//! (-06 §4.1, §5.1).
//!
//! A peer is found through its directory document at
//! `https://<domain>/.well-known/mimi-protocol-directory`, cached for
//! [`DIRECTORY_TTL`]. The `peers` config maps a domain to a `host:port` for
//! local runs; the TLS name checked is always the peer's domain.
//!
//! Requests go through the endpoint table ([`FederationEndpoint`]): the
//! URL comes from the peer's directory for the endpoint and its target, the
//! method and the message types from the table.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mimi_protocol::DecodeError;
use mimi_protocol::directory::{Directory, NotOffered, WELL_KNOWN_PATH};
use mimi_protocol::endpoints::{Endpoint, FederationEndpoint, MessageBody, Method};
use reqwest::StatusCode;
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
    #[error("{domain} does not offer `{endpoint}`")]
    NotOffered { domain: String, endpoint: Endpoint },
    #[error("encoding the `{endpoint}` request: {source}")]
    Encode {
        endpoint: Endpoint,
        source: tls_codec::Error,
    },
    #[error("{domain} answered {status} to `{endpoint}`: {reason}")]
    Refused {
        domain: String,
        endpoint: Endpoint,
        status: StatusCode,
        reason: String,
    },
    #[error("{domain} sent a malformed `{endpoint}` answer: {source}")]
    Malformed {
        domain: String,
        endpoint: Endpoint,
        source: DecodeError,
    },
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
            Some(port) => format!("https://{domain}:{port}{WELL_KNOWN_PATH}"),
            None => format!("https://{domain}{WELL_KNOWN_PATH}"),
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

    /// Sends `request` to endpoint `E` of `peer` for `target` and decodes
    /// the answer; a non-2xx answer is [`OutboundError::Refused`].
    pub async fn send<E: FederationEndpoint>(
        &self,
        peer: &str,
        target: &E::Target,
        request: &E::Request,
    ) -> Result<E::Response, OutboundError> {
        let body = request.to_body().map_err(|source| OutboundError::Encode {
            endpoint: E::ENDPOINT,
            source,
        })?;
        self.send_bytes::<E>(peer, target, body).await
    }

    /// As [`Self::send`], with the request already encoded (relayed as a
    /// client sent it, e.g. signed bytes).
    pub async fn send_bytes<E: FederationEndpoint>(
        &self,
        peer: &str,
        target: &E::Target,
        body: Vec<u8>,
    ) -> Result<E::Response, OutboundError> {
        let response = self.send_raw::<E>(peer, target, body).await?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| OutboundError::Http {
                domain: peer.into(),
                source,
            })?;
        if !status.is_success() {
            return Err(OutboundError::Refused {
                domain: peer.into(),
                endpoint: E::ENDPOINT,
                status,
                reason: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        E::Response::from_body(&bytes).map_err(|source| OutboundError::Malformed {
            domain: peer.into(),
            endpoint: E::ENDPOINT,
            source,
        })
    }

    /// Sends an encoded request to endpoint `E` of `peer` for `target`,
    /// naming us in `From`, and returns the answer as it came (status,
    /// headers and body are the caller's to read).
    pub async fn send_raw<E: FederationEndpoint>(
        &self,
        peer: &str,
        target: &E::Target,
        body: Vec<u8>,
    ) -> Result<reqwest::Response, OutboundError> {
        let directory = self.directory(peer).await?;
        let url = directory.url::<E>(target).map_err(|NotOffered(endpoint)| {
            OutboundError::NotOffered {
                domain: peer.into(),
                endpoint,
            }
        })?;
        let request = match E::METHOD {
            Method::Get => self.http.get(url),
            Method::Post => self
                .http
                .post(url)
                .header(CONTENT_TYPE, MIMI_CONTENT_TYPE)
                .body(body),
        };
        request
            .header(FROM, format!("mimi@{}", self.local_domain))
            .send()
            .await
            .map_err(|source| OutboundError::Http {
                domain: peer.into(),
                source,
            })
    }
}
