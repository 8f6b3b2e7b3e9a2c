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
//!
//! -06 §4.1 binds a request to the target provider's domain: `Host` names
//! the domain and the server's certificate must authenticate it. A
//! directory may place endpoints on another host and port (its own example
//! uses `mimi.example.com`); such a request is sent to that host's address
//! and port, but with the domain as TLS server name and `Host`
//! ([`EndpointClients`]).

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
    #[error("{domain}: {reason}")]
    NotOffered {
        domain: String,
        endpoint: Endpoint,
        /// What the peer's directory lacks: the key, or a usable value.
        reason: NotOffered,
    },
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
    /// Clients for endpoints a directory places off the peer's domain.
    endpoint_clients: EndpointClients,
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
        let mut builder = client_builder(config.clone(), timeout);
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
            endpoint_clients: EndpointClients {
                tls: config,
                timeout,
                clients: Mutex::new(HashMap::new()),
            },
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

    /// Whether `peer` answers at all: a GET of its directory, bypassing
    /// the cache, that gets any HTTP answer within `timeout`. Used to see
    /// that an unreachable follower is back (fanout recovery).
    pub async fn answers(&self, peer: &str, timeout: Duration) -> bool {
        let url = match self.override_ports.get(peer) {
            Some(port) => format!("https://{peer}:{port}{WELL_KNOWN_PATH}"),
            None => format!("https://{peer}{WELL_KNOWN_PATH}"),
        };
        self.http
            .get(url)
            .header(FROM, format!("mimi@{}", self.local_domain))
            .timeout(timeout)
            .send()
            .await
            .is_ok()
    }

    /// A request to a well-known resource of `peer` outside the MIMI
    /// directory (the OHTTP Gateway, RFC 9540 §4): a `GET`, or a `POST`
    /// of `body` (media type, bytes); on the peer's domain like its
    /// directory, naming us in `From`. The answer comes as it came.
    pub async fn well_known(
        &self,
        peer: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, OutboundError> {
        let url = match self.override_ports.get(peer) {
            Some(port) => format!("https://{peer}:{port}{path}"),
            None => format!("https://{peer}{path}"),
        };
        let request = match body {
            None => self.http.get(url),
            Some((media_type, bytes)) => self
                .http
                .post(url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes),
        };
        self.dispatch(peer, request, timeout).await
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
        self.send_raw_with_timeout::<E>(peer, target, body, None)
            .await
    }

    /// As [`Self::send_raw`], with `timeout` instead of the client's
    /// `outbound_timeout_ms` for the whole request when given (a
    /// `proxyDownload` waits for the hub's own fetch, -06 §5.10).
    pub async fn send_raw_with_timeout<E: FederationEndpoint>(
        &self,
        peer: &str,
        target: &E::Target,
        body: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, OutboundError> {
        let directory = self.directory(peer).await?;
        let url = directory
            .url::<E>(target)
            .map_err(|reason| OutboundError::NotOffered {
                domain: peer.into(),
                endpoint: reason.endpoint(),
                reason,
            })?;
        let (http, url) = self.bound_to_domain(peer, url).await?;
        let request = match E::METHOD {
            Method::Get => http.get(url),
            Method::Post => http
                .post(url)
                .header(CONTENT_TYPE, MIMI_CONTENT_TYPE)
                .body(body),
        };
        self.dispatch(peer, request, timeout).await
    }

    /// Sends a request to `peer`, naming us in `From`, within `timeout`
    /// when given (else the client's `outbound_timeout_ms`).
    async fn dispatch(
        &self,
        peer: &str,
        request: reqwest::RequestBuilder,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, OutboundError> {
        let request = match timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
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

    /// The client and URL for a directory URL of `peer` (-06 §4.1): on the
    /// peer's domain, the shared client; elsewhere, the URL rewritten to
    /// the domain (TLS name and `Host`) at the endpoint's port, sent by a
    /// client that resolves the domain to the endpoint host's addresses.
    async fn bound_to_domain(
        &self,
        peer: &str,
        url: String,
    ) -> Result<(reqwest::Client, String), OutboundError> {
        let bad = |reason: String| OutboundError::BadDirectory {
            domain: peer.into(),
            reason,
        };
        let mut parsed =
            reqwest::Url::parse(&url).map_err(|e| bad(format!("endpoint URL {url}: {e}")))?;
        let host = parsed
            .host_str()
            .ok_or_else(|| bad(format!("endpoint URL {url} has no host")))?
            .to_owned();
        if parsed.scheme() != "https" {
            return Err(bad(format!("endpoint URL {url} is not https")));
        }
        if host.eq_ignore_ascii_case(peer) {
            return Ok((self.http.clone(), url));
        }
        let port = parsed.port_or_known_default().unwrap_or(443);
        let http = self.endpoint_clients.get(peer, &host, port).await?;
        parsed
            .set_host(Some(peer))
            .map_err(|e| bad(format!("domain {peer} as URL host: {e}")))?;
        Ok((http, parsed.into()))
    }
}

/// A reqwest client with our TLS configuration and timeouts.
fn client_builder(config: rustls::ClientConfig, timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .pool_idle_timeout(Duration::from_secs(90))
}

/// One client per (peer domain, endpoint host, port) whose directory
/// places endpoints off the domain: it resolves the domain to the endpoint
/// host's addresses, so the URL (and with it the TLS server name and
/// `Host`) can name the domain. Re-resolved after [`DIRECTORY_TTL`].
struct EndpointClients {
    tls: rustls::ClientConfig,
    timeout: Duration,
    clients: Mutex<HashMap<EndpointKey, (reqwest::Client, Instant)>>,
}

/// (peer domain, endpoint host, port), lower-cased.
type EndpointKey = (String, String, u16);

impl EndpointClients {
    async fn get(
        &self,
        peer: &str,
        host: &str,
        port: u16,
    ) -> Result<reqwest::Client, OutboundError> {
        let key = (peer.to_ascii_lowercase(), host.to_ascii_lowercase(), port);
        if let Some((client, made)) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned())
            && made.elapsed() < DIRECTORY_TTL
        {
            return Ok(client);
        }
        // An IPv6 literal comes bracketed from the URL.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| OutboundError::BadDirectory {
                domain: peer.into(),
                reason: format!("endpoint host {host}: {e}"),
            })?
            .collect();
        let client = client_builder(self.tls.clone(), self.timeout)
            .resolve_to_addrs(peer, &addrs)
            .build()
            .map_err(OutboundError::Client)?;
        if let Ok(mut clients) = self.clients.lock() {
            clients.insert(key, (client.clone(), Instant::now()));
        }
        Ok(client)
    }
}
