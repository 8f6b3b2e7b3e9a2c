//! A fault-injecting proxy for the federation traffic of one provider
//! towards another.
//!
//! The proxy terminates the requester's TLS with the target's certificate
//! and opens its own mutual-TLS connection to the target with the
//! requester's identity (both from the test CA). It therefore sees HTTP/1.1
//! message boundaries and can cut a connection at an exact point: in the
//! middle of a request body, or after the target answered but before the
//! answer reaches the requester. It can also accept TCP connections and
//! never answer them, or answer itself, with a refusal, every request
//! whose body holds given bytes (a target that cannot process one event).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mimi_server::tls::{self, ProviderIdentity};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::common::Federation;

/// Where a connection is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request head and half its body reach the target, then both
    /// connections drop.
    CutMidRequest,
    /// The whole request reaches the target and its whole answer reaches
    /// the proxy; then both connections drop without a byte of the answer
    /// sent to the requester.
    CutBeforeResponse,
    /// The TLS handshake completes and the request is read, but it is
    /// neither relayed nor answered; the connection stays open.
    NoAnswer,
}

#[derive(Default)]
struct Shared {
    blackhole: AtomicBool,
    /// (path substring, fault) for the next matching requests, in order.
    armed: Mutex<Vec<(String, Fault)>>,
    accepted: AtomicUsize,
    blackholed: AtomicUsize,
    cuts: AtomicUsize,
    /// Black-holed connections, kept open so only the requester can give up.
    held: Mutex<Vec<TcpStream>>,
    /// (bytes, status, answer): a request whose body holds the bytes is
    /// answered with the status and answer instead of being relayed.
    refused: Mutex<Vec<(Vec<u8>, u16, String)>>,
    refusals: AtomicUsize,
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Accepted connections are held open and never answered while `on`.
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }

    /// Applies `fault` to the next request whose path contains `path`.
    pub fn arm(&self, path: &str, fault: Fault) {
        self.shared
            .armed
            .lock()
            .unwrap()
            .push((path.to_owned(), fault));
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and never answered.
    pub fn blackholed(&self) -> usize {
        self.shared.blackholed.load(Ordering::SeqCst)
    }

    /// Armed faults that were carried out.
    pub fn cuts(&self) -> usize {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Answers every request whose body contains `bytes` with `status`
    /// and `answer` itself, until [`FaultProxy::stop_refusing`].
    pub fn refuse_containing(&self, bytes: &[u8], status: u16, answer: &str) {
        self.shared
            .refused
            .lock()
            .unwrap()
            .push((bytes.to_vec(), status, answer.to_owned()));
    }

    /// Relays every request again.
    pub fn stop_refusing(&self) {
        self.shared.refused.lock().unwrap().clear();
    }

    /// Requests answered with a refusal so far.
    pub fn refusals(&self) -> usize {
        self.shared.refusals.load(Ordering::SeqCst)
    }
}

/// Puts a proxy between `from` and `to`: `from` reaches `to` through it
/// (a `[peers]` override), and `to` publishes the proxy's port in its
/// directory so every URL `from` derives from it goes through the proxy
/// too. Both providers are restarted with the new configuration.
pub async fn interpose(fed: &mut Federation, from: &str, to: &str) -> FaultProxy {
    let ca = fed.ca.cert_pem().to_owned();
    let identity = |domain: &str| {
        let c = &fed.provider(domain).config;
        ProviderIdentity::from_files(domain, &c.tls.cert, &c.tls.key).unwrap()
    };
    let mut server = tls::server_config(tls::root_store(&ca).unwrap(), &identity(to)).unwrap();
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut client =
        tls::client_config(tls::root_store(&ca).unwrap(), Some(&identity(from))).unwrap();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let upstream = fed.provider(to).config.federation.listen;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared::default());
    let task = tokio::spawn(accept_loop(
        listener,
        shared.clone(),
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
        upstream,
        ServerName::try_from(to.to_owned()).unwrap(),
    ));

    let target = fed.provider_mut(to);
    target.config.federation.public_url = Some(format!("https://{to}:{}", addr.port()));
    target.restart().await;
    let source = fed.provider_mut(from);
    source.config.peers.insert(to.to_owned(), addr.to_string());
    source.restart().await;
    FaultProxy { addr, shared, task }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    upstream: SocketAddr,
    name: ServerName<'static>,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.blackhole.load(Ordering::SeqCst) {
            shared.blackholed.fetch_add(1, Ordering::SeqCst);
            shared.held.lock().unwrap().push(tcp);
            continue;
        }
        let (shared, acceptor, connector, name) = (
            shared.clone(),
            acceptor.clone(),
            connector.clone(),
            name.clone(),
        );
        tokio::spawn(async move {
            let _ = relay(tcp, &shared, acceptor, connector, upstream, name).await;
        });
    }
}

/// Relays one requester connection, request by request. Returning drops
/// both connections (without a TLS close_notify: an abrupt cut).
async fn relay(
    tcp: TcpStream,
    shared: &Shared,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    upstream: SocketAddr,
    name: ServerName<'static>,
) -> std::io::Result<()> {
    let mut requester = acceptor.accept(tcp).await?;
    let mut target = None;
    let (mut from_requester, mut from_target) = (Vec::new(), Vec::new());
    loop {
        let Some((head, body)) = read_message(&mut requester, &mut from_requester).await? else {
            return Ok(());
        };
        if let Some(answer) = refusal_for(shared, &body) {
            shared.refusals.fetch_add(1, Ordering::SeqCst);
            requester.write_all(&answer).await?;
            requester.flush().await?;
            continue;
        }
        let fault = take_fault(shared, &head);
        if fault == Some(Fault::NoAnswer) {
            shared.cuts.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        let target = match &mut target {
            Some(t) => t,
            None => target.insert(
                connector
                    .connect(name.clone(), TcpStream::connect(upstream).await?)
                    .await?,
            ),
        };
        target.write_all(&head).await?;
        if fault == Some(Fault::CutMidRequest) {
            target.write_all(&body[..body.len() / 2]).await?;
            target.flush().await?;
            shared.cuts.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        target.write_all(&body).await?;
        target.flush().await?;
        let Some((answer_head, answer_body)) = read_message(target, &mut from_target).await? else {
            return Ok(());
        };
        if fault == Some(Fault::CutBeforeResponse) {
            shared.cuts.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        requester.write_all(&answer_head).await?;
        requester.write_all(&answer_body).await?;
        requester.flush().await?;
    }
}

/// The whole HTTP answer refusing a request with `body`, if it holds
/// refused bytes.
fn refusal_for(shared: &Shared, body: &[u8]) -> Option<Vec<u8>> {
    let refused = shared.refused.lock().unwrap();
    let (_, status, answer) = refused.iter().find(|(bytes, _, _)| {
        !bytes.is_empty() && body.windows(bytes.len()).any(|w| w == bytes.as_slice())
    })?;
    Some(
        format!(
            "HTTP/1.1 {status} Refused\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        )
        .into_bytes(),
    )
}

fn take_fault(shared: &Shared, head: &[u8]) -> Option<Fault> {
    let line = String::from_utf8_lossy(head.split(|b| *b == b'\n').next()?).into_owned();
    let path = line.split(' ').nth(1)?;
    let mut armed = shared.armed.lock().unwrap();
    let i = armed.iter().position(|(p, _)| path.contains(p.as_str()))?;
    Some(armed.remove(i).1)
}

/// Reads one HTTP/1.1 message (head and `Content-Length` body; our peers
/// never send chunked bodies) from `stream`, buffering in `buf`. `None` on
/// a clean end of stream between messages.
async fn read_message<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    };
    let head_text = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
    assert!(
        !head_text.contains("transfer-encoding: chunked"),
        "chunked bodies are not relayed"
    );
    let body_len: usize = head_text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_len + body_len {
        if !fill(stream, buf).await? {
            return Ok(None);
        }
    }
    let head = buf[..head_len].to_vec();
    let body = buf[head_len..head_len + body_len].to_vec();
    buf.drain(..head_len + body_len);
    Ok(Some((head, body)))
}

async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 16 * 1024];
    let n = match stream.read(&mut chunk).await {
        Ok(n) => n,
        // A peer closing without close_notify ends the stream too.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
        Err(e) => return Err(e),
    };
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}
