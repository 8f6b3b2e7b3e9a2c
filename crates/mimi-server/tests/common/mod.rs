//! Three real providers (a.example, b.example, c.example) on loopback, with
//! certificates from a fresh dev CA, mutual TLS between them and real
//! storage (SQLite files, or PostgreSQL databases when asked).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use mimi_server::RunningServer;
use mimi_server::config::{
    ClientApiConfig, FederationConfig, ServerConfig, StorageConfig, TlsConfig,
};
use mimi_server::tls::{self, DevCa, ProviderIdentity};

pub const DOMAINS: [&str; 3] = ["a.example", "b.example", "c.example"];

/// Which database each provider uses.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// One fresh database per provider on this PostgreSQL server.
    Postgres {
        admin_url: String,
    },
}

pub struct Provider {
    pub domain: String,
    pub server: Option<RunningServer>,
    pub config: ServerConfig,
    /// HTTPS client for this provider's client API (trusts the dev CA).
    pub client_api: reqwest::Client,
    pub client_base: String,
}

impl Provider {
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("provider is stopped")
    }

    /// Stops the server (its data stays), e.g. to simulate an outage.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again on the same addresses and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.server = Some(
            mimi_server::start(self.config.clone())
                .await
                .expect("restart"),
        );
    }
}

pub struct Federation {
    pub ca: DevCa,
    pub dir: tempfile::TempDir,
    pub providers: Vec<Provider>,
}

impl Federation {
    pub fn provider(&self, domain: &str) -> &Provider {
        self.providers
            .iter()
            .find(|p| p.domain == domain)
            .expect("no such provider")
    }

    pub fn provider_mut(&mut self, domain: &str) -> &mut Provider {
        self.providers
            .iter_mut()
            .find(|p| p.domain == domain)
            .expect("no such provider")
    }

    /// A federation client presenting `identity` (for raw endpoint tests).
    pub fn federation_client(&self, identity: Option<&ProviderIdentity>) -> reqwest::Client {
        let config =
            tls::client_config(tls::root_store(self.ca.cert_pem()).unwrap(), identity).unwrap();
        let mut builder = reqwest::Client::builder().tls_backend_preconfigured(config);
        for p in &self.providers {
            builder = builder.resolve(&p.domain, p.config.federation.listen);
        }
        builder.build().unwrap()
    }

    /// Base URL of a provider's federation listener.
    pub fn federation_url(&self, domain: &str) -> String {
        format!(
            "https://{domain}:{}",
            self.provider(domain).config.federation.listen.port()
        )
    }

    pub async fn shutdown(mut self) {
        for p in &mut self.providers {
            p.stop().await;
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Starts a.example, b.example and c.example.
pub async fn start_federation(backend: Backend) -> Federation {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("mimi test CA").unwrap();
    write(&dir.path().join("ca.pem"), ca.cert_pem());
    let ports = mimi_server::ports::free_loopback_addrs(2 * DOMAINS.len()).unwrap();
    let addrs: Vec<(SocketAddr, SocketAddr)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let mut providers = Vec::new();
    for (i, domain) in DOMAINS.iter().enumerate() {
        let id = ca.issue(domain).unwrap();
        let cert = dir.path().join(format!("{domain}.pem"));
        let key = dir.path().join(format!("{domain}.key"));
        write(&cert, &id.cert_chain_pem);
        write(&key, &id.key_pem);
        let peers: BTreeMap<String, String> = DOMAINS
            .iter()
            .zip(&addrs)
            .filter(|(d, _)| *d != domain)
            .map(|(d, (fed, _))| (d.to_string(), fed.to_string()))
            .collect();
        let storage = match &backend {
            Backend::Sqlite => StorageConfig::default(),
            Backend::Postgres { admin_url } => StorageConfig {
                sqlite: None,
                postgres: Some(fresh_postgres_database(admin_url, domain).await),
                ..StorageConfig::default()
            },
        };
        let config = ServerConfig {
            domain: domain.to_string(),
            data_dir: dir.path().join(format!("{domain}-data")),
            federation: FederationConfig {
                listen: addrs[i].0,
                public_url: None,
            },
            client_api: ClientApiConfig {
                listen: addrs[i].1,
                open_registration: true,
                admin_token: None,
            },
            storage,
            tls: TlsConfig {
                ca: dir.path().join("ca.pem"),
                cert,
                key,
            },
            peers,
            limits: Default::default(),
            fanout: mimi_server::config::FanoutConfig {
                initial_backoff_ms: 50,
                poll_ms: 20,
                ..Default::default()
            },
        };
        let server = mimi_server::start(config.clone())
            .await
            .expect("provider starts");
        let client_tls = tls::client_config(tls::root_store(ca.cert_pem()).unwrap(), None).unwrap();
        let client_api = reqwest::Client::builder()
            .tls_backend_preconfigured(client_tls)
            .resolve(domain, server.client_addr)
            .build()
            .unwrap();
        providers.push(Provider {
            domain: domain.to_string(),
            client_base: format!("https://{domain}:{}", server.client_addr.port()),
            server: Some(server),
            config,
            client_api,
        });
    }
    Federation { ca, dir, providers }
}

/// Creates a uniquely named database on the server at `admin_url` and
/// returns its URL.
pub async fn fresh_postgres_database(admin_url: &str, label: &str) -> String {
    mimi_store::testing::fresh_postgres_database(admin_url, label)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is required: {e}"))
}

/// The PostgreSQL server for tests (CI starts one).
pub fn postgres_admin_url() -> String {
    std::env::var("MIMI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}
