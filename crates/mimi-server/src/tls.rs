//! Mutual TLS between providers (-06 §4.1).
//!
//! Every federation connection is mutually authenticated: the server
//! certificate must authenticate the target provider's domain and the client
//! certificate the source provider's domain, "according to RFC 6125", which
//! for us means a DNS subject alternative name checked by webpki.
//!
//! For local runs and tests, [`DevCa`] is a throw-away certificate authority
//! that issues one certificate per provider domain, usable both as a server
//! and as a client certificate.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Why TLS material could not be produced or loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid PEM: {0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("no certificate found in PEM input")]
    NoCertificate,
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider every config is built with.
///
/// Built explicitly rather than taken from the process default so that a
/// second provider compiled in by some dependency can never make rustls
/// panic at run time.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A local certificate authority for development and tests.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl DevCa {
    /// Creates a fresh CA with a random key.
    pub fn generate(name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA previously written by [`DevCa::cert_pem`] / [`DevCa::key_pem`].
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            issuer,
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate for a provider domain, valid for TLS server and
    /// client authentication (a provider is both in federation).
    pub fn issue(&self, domain: &str) -> Result<ProviderIdentity, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![domain.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, domain);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ProviderIdentity {
            domain: domain.to_owned(),
            cert_chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A provider's certificate chain and private key, in PEM.
#[derive(Clone)]
pub struct ProviderIdentity {
    pub domain: String,
    pub cert_chain_pem: String,
    pub key_pem: String,
}

impl ProviderIdentity {
    /// Loads a certificate chain and key from PEM files.
    pub fn from_files(
        domain: &str,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> std::io::Result<Self> {
        Ok(Self {
            domain: domain.to_owned(),
            cert_chain_pem: std::fs::read_to_string(cert)?,
            key_pem: std::fs::read_to_string(key)?,
        })
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let chain = CertificateDer::pem_slice_iter(self.cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        Ok(chain)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        Ok(PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())?)
    }
}

/// Parses PEM trust anchors into a root store.
pub fn root_store(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(roots)
}

/// Server side of federation TLS.
///
/// Client certificates are verified against `roots` when presented but not
/// required at the handshake: a request without one is answered with an HTTP
/// 401 and logged (-06 §4.1), which is more useful to an operator than a
/// bare handshake failure.
pub fn server_config(
    roots: RootCertStore,
    identity: &ProviderIdentity,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = crypto_provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain()?, identity.key()?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS for the provider-internal client API: server authentication only;
/// clients authenticate with bearer tokens (docs/client-api.md).
pub fn client_api_server_config(
    identity: &ProviderIdentity,
) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.chain()?, identity.key()?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Client side of federation TLS: trusts `roots` and presents `identity`.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<&ProviderIdentity>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder.with_client_auth_cert(id.chain()?, id.key()?)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// True when the (already chain-verified) end-entity certificate
/// authenticates `domain` (RFC 6125 DNS-ID matching, via webpki).
pub fn certificate_authenticates(cert: &CertificateDer<'_>, domain: &str) -> bool {
    let Ok(name) = ServerName::try_from(domain) else {
        return false;
    };
    match webpki::EndEntityCert::try_from(cert) {
        Ok(ee) => ee.verify_is_valid_for_subject_name(&name).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_names_only_its_domain() {
        let ca = DevCa::generate("test CA").unwrap();
        let id = ca.issue("a.example").unwrap();
        let chain = id.chain().unwrap();
        assert!(certificate_authenticates(&chain[0], "a.example"));
        assert!(!certificate_authenticates(&chain[0], "b.example"));
        assert!(!certificate_authenticates(&chain[0], "sub.a.example"));
    }

    #[test]
    fn ca_survives_pem_round_trip_and_keeps_issuing() {
        let ca = DevCa::generate("test CA").unwrap();
        let again = DevCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let id = again.issue("c.example").unwrap();
        // A config built from the reloaded CA's certificate accepts the new leaf.
        let roots = root_store(ca.cert_pem()).unwrap();
        server_config(roots, &id).unwrap();
    }
}
