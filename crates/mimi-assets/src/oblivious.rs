//! Asset downloads by Oblivious HTTP (-06 §5.10 "Download using Oblivious
//! HTTP"; RFC 9458 with Binary HTTP, RFC 9292).
//!
//! The client encapsulates a Binary HTTP `GET` of the asset URL to the
//! hub's Gateway key; its own provider, the Relay, forwards the opaque
//! bytes to the hub's Gateway and the answer back. The Relay sees neither
//! the URL nor the content; the Gateway sees the URL but only the Relay's
//! address. The hub then fetches the target as `proxyDownload` does,
//! under the same target checks (-06: "The hub MUST only accept OHTTP
//! requests to Targets which are configured as asset storage locations
//! for one of its peer providers").
//!
//! This module is the cryptography and message format only: who relays
//! and who fetches is the server's. One suite is offered: X25519 with
//! HKDF-SHA256 and AES-128-GCM, which every RFC 9458 client supports.

use std::io::Cursor;

use bhttp::{Message, Mode, StatusCode};
use ohttp::hpke::{Aead, Kdf, Kem};
use ohttp::{ClientRequest, ClientResponse, KeyConfig, Server, ServerResponse, SymmetricSuite};

/// Media type of an encapsulated request (RFC 9458 §9.2).
pub const REQUEST_MEDIA_TYPE: &str = "message/ohttp-req";
/// Media type of an encapsulated response (RFC 9458 §9.3).
pub const RESPONSE_MEDIA_TYPE: &str = "message/ohttp-res";
/// Media type of a Gateway's key configurations (RFC 9458 §9.1).
pub const KEYS_MEDIA_TYPE: &str = "application/ohttp-keys";
/// Bytes of key material a Gateway key is derived from.
pub const GATEWAY_SECRET_LEN: usize = 32;

/// Why an Oblivious HTTP message could not be made or read. The messages
/// never include the request's content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObliviousError {
    /// The stored Gateway key material has the wrong length.
    #[error("the Gateway key material must be {GATEWAY_SECRET_LEN} bytes, not {0}")]
    SecretLength(usize),
    /// The key configuration could not be made, encoded or read.
    #[error("no usable Gateway key configuration: {0}")]
    KeyConfig(String),
    /// The request is not for this Gateway's key, or was altered.
    #[error("the encapsulated request does not open with this Gateway's key: {0}")]
    Decapsulate(String),
    /// The response is not for this request, or was altered.
    #[error("the encapsulated response does not open: {0}")]
    ResponseOpen(String),
    /// Encapsulation itself failed.
    #[error("cannot encapsulate: {0}")]
    Encapsulate(String),
    /// The Binary HTTP message inside is malformed.
    #[error("malformed Binary HTTP message: {0}")]
    BinaryHttp(String),
    /// The request is not a `GET` of an `https` URL.
    #[error("only GET of an https URL is relayed, not {method} {scheme}")]
    NotAGet {
        /// The request's method.
        method: String,
        /// The request's scheme.
        scheme: String,
    },
    /// The request names no host.
    #[error("the request names no target authority")]
    NoAuthority,
    /// A status code outside 100–999.
    #[error("status {0} is not an HTTP status")]
    Status(u16),
}

fn suites() -> Vec<SymmetricSuite> {
    vec![SymmetricSuite::new(Kdf::HkdfSha256, Aead::Aes128Gcm)]
}

/// The hub's OHTTP Gateway key: derived from stored key material, so
/// that it survives restarts and every process of one hub shares it.
pub struct Gateway {
    server: Server,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// The Gateway of `key_id` derived from `secret`
    /// ([`GATEWAY_SECRET_LEN`] random bytes the server keeps).
    pub fn from_secret(key_id: u8, secret: &[u8]) -> Result<Self, ObliviousError> {
        if secret.len() != GATEWAY_SECRET_LEN {
            return Err(ObliviousError::SecretLength(secret.len()));
        }
        let config = KeyConfig::derive(key_id, Kem::X25519Sha256, suites(), secret)
            .map_err(|e| ObliviousError::KeyConfig(e.to_string()))?;
        let server = Server::new(config).map_err(|e| ObliviousError::KeyConfig(e.to_string()))?;
        Ok(Self { server })
    }

    /// The key configurations to publish (`application/ohttp-keys`,
    /// RFC 9458 §3.2).
    pub fn key_configs(&self) -> Result<Vec<u8>, ObliviousError> {
        KeyConfig::encode_list(&[self.server.config()])
            .map_err(|e| ObliviousError::KeyConfig(e.to_string()))
    }

    /// Opens an encapsulated request: the URL it asks for, and what seals
    /// the answer. Only a `GET` of an `https` URL is accepted; the caller
    /// still checks the target.
    pub fn open_request(
        &self,
        encapsulated: &[u8],
    ) -> Result<(String, GatewayResponder), ObliviousError> {
        let (plain, responder) = self
            .server
            .decapsulate(encapsulated)
            .map_err(|e| ObliviousError::Decapsulate(e.to_string()))?;
        let request = read_message(&plain)?;
        let control = request.control();
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        let (method, scheme) = (text(control.method()), text(control.scheme()));
        if method != "GET" || scheme != "https" {
            return Err(ObliviousError::NotAGet { method, scheme });
        }
        let authority = text(control.authority());
        if authority.is_empty() {
            return Err(ObliviousError::NoAuthority);
        }
        let path = text(control.path());
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        Ok((
            format!("https://{authority}{path}"),
            GatewayResponder { responder },
        ))
    }
}

/// Seals the Gateway's answer to one request.
pub struct GatewayResponder {
    responder: ServerResponse,
}

impl std::fmt::Debug for GatewayResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayResponder").finish_non_exhaustive()
    }
}

impl GatewayResponder {
    /// The encapsulated response (`message/ohttp-res`): `status` with
    /// `body` (the asset's bytes, or a reason for a refusal).
    pub fn seal(self, status: u16, body: &[u8]) -> Result<Vec<u8>, ObliviousError> {
        let status = StatusCode::try_from(status).map_err(|_| ObliviousError::Status(status))?;
        let mut response = Message::response(status);
        response.put_header("content-type", "application/octet-stream");
        response.write_content(body);
        let mut plain = Vec::with_capacity(body.len() + 64);
        response
            .write_bhttp(Mode::KnownLength, &mut plain)
            .map_err(|e| ObliviousError::BinaryHttp(e.to_string()))?;
        self.responder
            .encapsulate(&plain)
            .map_err(|e| ObliviousError::Encapsulate(e.to_string()))
    }
}

/// The client's half: an encapsulated `GET` of `url` to the Gateway whose
/// key configurations are `key_configs`, and what opens its answer.
pub fn seal_request(
    key_configs: &[u8],
    url: &url::Url,
) -> Result<(Vec<u8>, ResponseOpener), ObliviousError> {
    let authority = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => return Err(ObliviousError::NoAuthority),
    };
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let mut request = Message::request(
        b"GET".to_vec(),
        url.scheme().as_bytes().to_vec(),
        authority.into_bytes(),
        path.into_bytes(),
    );
    request.put_header("accept", "application/octet-stream");
    let mut plain = Vec::new();
    request
        .write_bhttp(Mode::KnownLength, &mut plain)
        .map_err(|e| ObliviousError::BinaryHttp(e.to_string()))?;
    let client = ClientRequest::from_encoded_config_list(key_configs)
        .map_err(|e| ObliviousError::KeyConfig(e.to_string()))?;
    let (encapsulated, response) = client
        .encapsulate(&plain)
        .map_err(|e| ObliviousError::Encapsulate(e.to_string()))?;
    Ok((encapsulated, ResponseOpener { response }))
}

/// Opens the Gateway's answer to one [`seal_request`].
pub struct ResponseOpener {
    response: ClientResponse,
}

impl std::fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseOpener").finish_non_exhaustive()
    }
}

impl ResponseOpener {
    /// The status and body the Gateway answered.
    pub fn open(self, encapsulated: &[u8]) -> Result<(u16, Vec<u8>), ObliviousError> {
        let plain = self
            .response
            .decapsulate(encapsulated)
            .map_err(|e| ObliviousError::ResponseOpen(e.to_string()))?;
        let response = read_message(&plain)?;
        let status = response
            .control()
            .status()
            .map(StatusCode::code)
            .ok_or_else(|| {
                ObliviousError::BinaryHttp("a request where a response was due".into())
            })?;
        Ok((status, response.content().to_vec()))
    }
}

fn read_message(bytes: &[u8]) -> Result<Message, ObliviousError> {
    let mut cursor = Cursor::new(bytes);
    Message::read_bhttp::<_, Cursor<&[u8]>>(&mut cursor)
        .map_err(|e| ObliviousError::BinaryHttp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway() -> Gateway {
        Gateway::from_secret(1, &[7; GATEWAY_SECRET_LEN]).unwrap()
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn a_get_travels_to_the_gateway_and_its_answer_back() {
        let gateway = gateway();
        let keys = gateway.key_configs().unwrap();
        let target = url("https://c.example:8443/v1/assets/abc?sig=1");
        let (request, opener) = seal_request(&keys, &target).unwrap();
        let (asked, responder) = gateway.open_request(&request).unwrap();
        assert_eq!(asked, target.as_str());
        let answer = responder.seal(200, b"ciphertext bytes").unwrap();
        assert_eq!(
            opener.open(&answer).unwrap(),
            (200, b"ciphertext bytes".to_vec())
        );
    }

    #[test]
    fn the_relay_sees_neither_url_nor_content() {
        let gateway = gateway();
        let keys = gateway.key_configs().unwrap();
        let secret_path = "/v1/assets/a-very-recognisable-asset-name";
        let (request, opener) =
            seal_request(&keys, &url(&format!("https://c.example{secret_path}"))).unwrap();
        let contains =
            |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(&request, secret_path.as_bytes()));
        assert!(!contains(&request, b"c.example"));
        let (_, responder) = gateway.open_request(&request).unwrap();
        let content = b"the recognisable content of the asset";
        let answer = responder.seal(200, content).unwrap();
        assert!(!contains(&answer, content));
        assert_eq!(opener.open(&answer).unwrap().1, content);
    }

    #[test]
    fn the_key_survives_a_restart_and_another_key_does_not_open() {
        let keys = gateway().key_configs().unwrap();
        assert_eq!(gateway().key_configs().unwrap(), keys, "derived, so stable");
        let (request, _) = seal_request(&keys, &url("https://c.example/x")).unwrap();
        let other = Gateway::from_secret(1, &[8; GATEWAY_SECRET_LEN]).unwrap();
        assert!(matches!(
            other.open_request(&request),
            Err(ObliviousError::Decapsulate(_))
        ));
        assert_eq!(
            Gateway::from_secret(1, &[0; 5]).unwrap_err(),
            ObliviousError::SecretLength(5)
        );
    }

    #[test]
    fn only_gets_of_https_urls_are_accepted_and_tampering_is_refused() {
        let gateway = gateway();
        let keys = gateway.key_configs().unwrap();
        let (request, _) = seal_request(&keys, &url("http://c.example/x")).unwrap();
        assert!(matches!(
            gateway.open_request(&request),
            Err(ObliviousError::NotAGet { scheme, .. }) if scheme == "http"
        ));
        let (request, opener) = seal_request(&keys, &url("https://c.example/x")).unwrap();
        for i in 0..request.len() {
            let mut bad = request.clone();
            bad[i] ^= 0x40;
            assert!(gateway.open_request(&bad).is_err(), "byte {i}");
        }
        assert!(gateway.open_request(&[]).is_err());
        let (_, responder) = gateway.open_request(&request).unwrap();
        let mut answer = responder.seal(404, b"no such asset").unwrap();
        let last = answer.len() - 1;
        answer[last] ^= 1;
        assert!(matches!(
            opener.open(&answer),
            Err(ObliviousError::ResponseOpen(_))
        ));
        assert!(seal_request(b"junk", &url("https://c.example/x")).is_err());
    }
}
