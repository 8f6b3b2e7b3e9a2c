//! The federation listener: TLS accept loop and provider authentication
//! (-06 §4.1).
//!
//! axum's own `serve` does not do TLS, so connections are accepted here,
//! the TLS handshake is completed with rustls, the peer's end-entity
//! certificate is attached to every request of the connection, and the
//! [`authenticate_provider`] middleware then ties the HTTP-level claims
//! (`Host`, `From`) to the TLS-level identity.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::tls::certificate_authenticates;

/// How long a peer may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified end-entity certificate the peer presented, if any.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Option<Arc<CertificateDer<'static>>>);

/// The source provider of a federation request, authenticated by its
/// client certificate and named by its `From` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceProvider(pub String);

/// Serves `app` over TLS on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Usually EMFILE or a reset during accept; keep serving.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(serve_connection(acceptor, tcp, remote, app));
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    app: Router,
) {
    // HTTP/2 writes many small frames; with Nagle's algorithm a response
    // could wait for the peer's delayed ACK (40 ms on Linux).
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(%err, "TCP_NODELAY not set");
    }
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            tracing::info!(%remote, %err, "TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::info!(%remote, "TLS handshake timed out");
            return;
        }
    };
    let peer = PeerCertificate(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|cert| Arc::new(cert.clone().into_owned())),
    );
    let service = app.map_request(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let result = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .await;
    if let Err(err) = result {
        tracing::debug!(%remote, %err, "connection closed with error");
    }
}

/// The provider domains this server answers for (the `Host` of -06 §4.1).
#[derive(Clone, Debug)]
pub struct LocalDomain(pub Arc<str>);

/// Middleware enforcing -06 §4.1 on every federation request:
/// `Host` names this provider, a client certificate was presented, and the
/// `From: mimi@<domain>` header names a domain that certificate
/// authenticates. Refusals are logged and answered with a one-line reason.
pub async fn authenticate_provider(
    State(local): State<LocalDomain>,
    mut req: Request,
    next: Next,
) -> Response {
    let authority = req.uri().authority().map(|a| a.host().to_owned());
    let peer = req.extensions().get::<PeerCertificate>();
    match check_provider(&local, req.headers(), authority.as_deref(), peer) {
        Ok(source) => {
            req.extensions_mut().insert(source);
            next.run(req).await
        }
        Err((status, reason)) => {
            tracing::warn!(path = %req.uri().path(), %status, reason, "federation request refused");
            (status, reason).into_response()
        }
    }
}

fn check_provider(
    local: &LocalDomain,
    headers: &HeaderMap,
    authority: Option<&str>,
    peer: Option<&PeerCertificate>,
) -> Result<SourceProvider, (StatusCode, &'static str)> {
    // -06 §4.1: the port component of Host is ignored. HTTP/2 carries the
    // target in the :authority pseudo-header, which hyper exposes in the URI.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(strip_port)
        .or(authority)
        .ok_or((StatusCode::BAD_REQUEST, "missing Host header"))?;
    if !host.eq_ignore_ascii_case(&local.0) {
        return Err((
            StatusCode::MISDIRECTED_REQUEST,
            "Host does not name this provider",
        ));
    }
    let cert = peer
        .and_then(|p| p.0.as_ref())
        .ok_or((StatusCode::UNAUTHORIZED, "client certificate required"))?;
    let from = headers
        .get(header::FROM)
        .and_then(|h| h.to_str().ok())
        .ok_or((StatusCode::BAD_REQUEST, "missing From header"))?;
    let domain = source_domain(from)
        .ok_or((StatusCode::BAD_REQUEST, "From must be mimi@<source-domain>"))?;
    if !certificate_authenticates(cert, domain) {
        return Err((
            StatusCode::FORBIDDEN,
            "client certificate does not authenticate the From domain",
        ));
    }
    Ok(SourceProvider(domain.to_ascii_lowercase()))
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The domain of a `From: mimi@<domain>` header (-06 §4.1: addr-spec form,
/// local-part fixed to `mimi`).
pub fn source_domain(from: &str) -> Option<&str> {
    let domain = from.trim().strip_prefix("mimi@")?;
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    valid.then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_header_must_be_mimi_at_domain() {
        assert_eq!(source_domain("mimi@a.example"), Some("a.example"));
        assert_eq!(source_domain(" mimi@a.example "), Some("a.example"));
        assert_eq!(source_domain("alice@a.example"), None);
        assert_eq!(source_domain("mimi@"), None);
        assert_eq!(source_domain("Mimi <mimi@a.example>"), None);
        assert_eq!(source_domain("mimi@a.example/x"), None);
    }

    #[test]
    fn host_port_is_ignored() {
        assert_eq!(strip_port("b.example:8443"), "b.example");
        assert_eq!(strip_port("b.example"), "b.example");
    }
}
