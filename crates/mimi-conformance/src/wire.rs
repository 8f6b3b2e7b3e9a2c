//! The tester's side of the -06 §4.1 transport binding: HTTPS with mutual
//! TLS, `Host` naming the target and `From: mimi@<tester domain>`, and a
//! way to break each of these on purpose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, FROM, HOST};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The media type of TLS-PL bodies; -06 names none, so the target may
/// ignore it.
pub const CONTENT_TYPE_MIMI: &str = "application/mimi-protocol";

/// How long one request may take before it counts as no answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// Why the tester's HTTPS clients could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    #[error("invalid PEM in {what}: {error}")]
    Pem {
        what: &'static str,
        error: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCertificate(&'static str),
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

/// The tester's TLS material, in PEM.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// Certificate chain authenticating the tester's domain.
    pub cert_pem: String,
    pub key_pem: String,
    /// Trust anchors for the target's server certificate.
    pub ca_pem: String,
}

/// What goes in the `From` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromHeader {
    /// `mimi@<tester domain>`, as -06 §4.1 requires.
    Tester,
    /// No `From` header.
    Missing,
    /// This exact value.
    Value(String),
}

/// Whether the connection presents the tester's client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    Present,
    Absent,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub get: bool,
    pub url: String,
    pub body: Vec<u8>,
    pub from: FromHeader,
    /// A `Host` header other than the URL's (sent over HTTP/1.1, where
    /// `Host` is a header rather than the HTTP/2 `:authority`).
    pub host: Option<String>,
    pub cert: ClientCert,
}

impl Request {
    pub fn post(url: String, body: Vec<u8>) -> Self {
        Self {
            get: false,
            url,
            body,
            from: FromHeader::Tester,
            host: None,
            cert: ClientCert::Present,
        }
    }
}

/// What came back: a status and body, or no HTTP answer at all.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub status: Option<u16>,
    pub body: Vec<u8>,
    /// Why there was no answer (TLS handshake refused, timeout, ...).
    pub error: Option<String>,
}

impl Exchange {
    pub fn is(&self, status: u16) -> bool {
        self.status == Some(status)
    }

    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    pub fn is_client_error(&self) -> bool {
        matches!(self.status, Some(400..=499))
    }

    /// `HTTP 400 "reason"` or `no answer: why`.
    pub fn describe(&self) -> String {
        match self.status {
            Some(status) => {
                let text = String::from_utf8_lossy(&self.body);
                let text = text.trim();
                let printable = !text.is_empty()
                    && self.body.len() <= 200
                    && !text.chars().any(|c| c.is_control());
                if printable {
                    format!("HTTP {status} {text:?}")
                } else if self.body.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status} ({} octets)", self.body.len())
                }
            }
            None => format!(
                "no answer: {}",
                self.error.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

/// The tester's HTTPS clients towards one target.
pub struct Wire {
    tester_domain: String,
    with_cert: reqwest::Client,
    without_cert: reqwest::Client,
    /// HTTP/1.1 only, so that a `Host` header is sent as given.
    http1: reqwest::Client,
}

impl Wire {
    /// Clients trusting `tls.ca_pem`; `connect` resolves `target_domain` to
    /// that address (the TLS server name and `Host` stay the domain).
    pub fn new(
        tester_domain: &str,
        target_domain: &str,
        connect: Option<SocketAddr>,
        tls: &TlsMaterial,
    ) -> Result<Self, ClientSetupError> {
        let roots = root_store(&tls.ca_pem)?;
        let chain = CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ClientSetupError::Pem {
                what: "the client certificate",
                error,
            })?;
        if chain.is_empty() {
            return Err(ClientSetupError::NoCertificate("the client certificate"));
        }
        let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|error| {
            ClientSetupError::Pem {
                what: "the client key",
                error,
            }
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots.clone()))
        };
        let mut with_cert = builder()?.with_client_auth_cert(chain.clone(), key.clone_key())?;
        with_cert.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut without_cert = builder()?.with_no_client_auth();
        without_cert.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut http1 = builder()?.with_client_auth_cert(chain, key)?;
        http1.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = |config: rustls::ClientConfig, http1_only: bool| {
            let mut b = reqwest::Client::builder()
                .tls_backend_preconfigured(config)
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none());
            if http1_only {
                b = b.http1_only();
            }
            if let Some(addr) = connect {
                b = b.resolve(target_domain, addr);
            }
            b.build()
        };
        Ok(Self {
            tester_domain: tester_domain.to_owned(),
            with_cert: client(with_cert, false)?,
            without_cert: client(without_cert, false)?,
            http1: client(http1, true)?,
        })
    }

    pub fn tester_domain(&self) -> &str {
        &self.tester_domain
    }

    /// Sends `request`; never fails: a transport error is an [`Exchange`]
    /// without a status.
    pub async fn send(&self, request: &Request) -> Exchange {
        let client = match (request.cert, &request.host) {
            (ClientCert::Absent, _) => &self.without_cert,
            (ClientCert::Present, Some(_)) => &self.http1,
            (ClientCert::Present, None) => &self.with_cert,
        };
        let mut builder = if request.get {
            client.get(&request.url)
        } else {
            client
                .post(&request.url)
                .header(CONTENT_TYPE, CONTENT_TYPE_MIMI)
                .body(request.body.clone())
        };
        match &request.from {
            FromHeader::Tester => {
                builder = builder.header(FROM, format!("mimi@{}", self.tester_domain));
            }
            FromHeader::Missing => {}
            FromHeader::Value(v) => builder = builder.header(FROM, v),
        }
        if let Some(host) = &request.host {
            builder = builder.header(HOST, host);
        }
        match builder.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.bytes().await {
                    Ok(body) => Exchange {
                        status: Some(status),
                        body: body.to_vec(),
                        error: None,
                    },
                    Err(e) => Exchange {
                        status: Some(status),
                        body: Vec::new(),
                        error: Some(format!("reading the body: {}", error_chain(&e))),
                    },
                }
            }
            Err(e) => Exchange {
                status: None,
                body: Vec::new(),
                error: Some(error_chain(&e)),
            },
        }
    }
}

fn root_store(ca_pem: &str) -> Result<RootCertStore, ClientSetupError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|error| ClientSetupError::Pem {
            what: "the CA file",
            error,
        })?;
        roots.add(cert)?;
    }
    if roots.is_empty() {
        return Err(ClientSetupError::NoCertificate("the CA file"));
    }
    Ok(roots)
}

/// An error with its sources, which is where reqwest keeps the TLS reason.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
