//! Three real providers (a.example, b.example, c.example) on loopback, with
//! certificates from a fresh dev CA, mutual TLS between them and real
//! storage: SQLite files, or one fresh PostgreSQL database per provider.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mimi_client::http::ProviderConnection;
use mimi_server::config::{
    AssetsConfig, ClientApiConfig, DeliveryConfig, FanoutConfig, FederationConfig, Limits,
    ServerConfig, StorageConfig, TlsConfig,
};
use mimi_server::tls::{self, DevCa, ProviderIdentity};
use mimi_server::{RunningServer, StartOptions};

use crate::error::KitError;
use crate::postgres::{drop_postgres_database, fresh_postgres_database, postgres_url};

/// The providers, in start order.
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

impl Backend {
    /// PostgreSQL at [`postgres_url`] (panics when it is not configured).
    pub fn postgres() -> Self {
        Self::Postgres {
            admin_url: postgres_url(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }
}

/// How a federation is started.
#[derive(Clone, Debug)]
pub struct Options {
    pub backend: Backend,
    pub fanout: FanoutConfig,
    /// The dev CA's common name.
    pub ca_name: String,
    /// What every server is given at start (and at a restart).
    pub start: StartOptions,
    /// Each provider's directory places its endpoints at its loopback IP
    /// address (`https://127.0.0.1:<port>`) rather than under its domain,
    /// as -06 §5.1 allows (the endpoint host differs from the domain).
    pub endpoints_off_domain: bool,
    /// `[limits]` of every provider.
    pub limits: Limits,
}

impl Options {
    /// `backend`, with fanout retries fast enough that tests do not wait
    /// out production back-off.
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            fanout: FanoutConfig {
                initial_backoff_ms: 50,
                poll_ms: 20,
                ..Default::default()
            },
            ca_name: "mimi test CA".into(),
            start: StartOptions::default(),
            endpoints_off_domain: false,
            limits: Limits::default(),
        }
    }
}

pub struct Provider {
    pub domain: String,
    pub server: Option<RunningServer>,
    pub config: ServerConfig,
    /// HTTPS client for this provider's client API (trusts the dev CA).
    pub client_api: reqwest::Client,
    /// `https://<domain>:<port>` of the client API.
    pub client_base: String,
    ca_pem: String,
    start: StartOptions,
}

impl Provider {
    /// The running server; panics when it is stopped.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("provider is stopped")
    }

    /// Stops the server (its data stays), e.g. to simulate an outage.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Starts the server again on the same addresses and data; panics when
    /// it does not start.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.server = Some(
            mimi_server::start_with(self.config.clone(), self.start.clone())
                .await
                .expect("restart"),
        );
    }

    /// The provider's certificate and key, as a federation client presents
    /// them.
    pub fn identity(&self) -> Result<ProviderIdentity, KitError> {
        Ok(ProviderIdentity::from_files(
            &self.domain,
            &self.config.tls.cert,
            &self.config.tls.key,
        )?)
    }

    /// A `mimi-client` connection to this provider's client API.
    pub fn connection(&self) -> Result<ProviderConnection, KitError> {
        Ok(ProviderConnection::new(
            &self.client_base,
            Some(self.ca_pem.as_bytes()),
            Some(self.config.client_api.listen),
        )?)
    }

    /// Registers `device` (a `mimi://<domain>/d/<user>/<device>` URI) for
    /// its user through the client API; returns its bearer token. Panics on
    /// failure, as test code should.
    pub async fn register(&self, device: &str) -> String {
        let resp = self
            .client_api
            .post(format!("{}/client/v1/devices", self.client_base))
            .json(&serde_json::json!({
                "user": crate::clients::user_of(device),
                "device": device,
            }))
            .send()
            .await
            .expect("registration request");
        assert_eq!(
            resp.status(),
            reqwest::StatusCode::CREATED,
            "registering {device}"
        );
        let body: serde_json::Value = resp.json().await.expect("registration answer");
        body["token"]
            .as_str()
            .expect("registration answer has a token")
            .to_owned()
    }
}

pub struct Federation {
    pub ca: DevCa,
    /// Certificates, keys and the providers' data directories.
    pub dir: PathBuf,
    pub providers: Vec<Provider>,
    pub backend: Backend,
    /// PostgreSQL databases made for the providers, dropped at shutdown.
    databases: Vec<String>,
    /// Removed with the federation when it made the directory itself.
    _temp: Option<tempfile::TempDir>,
}

impl Federation {
    /// Starts the three providers in a temporary directory with test
    /// fanout timings.
    pub async fn start(backend: Backend) -> Result<Self, KitError> {
        let temp = tempfile::tempdir()?;
        let mut fed = Self::start_in(temp.path(), Options::new(backend)).await?;
        fed._temp = Some(temp);
        Ok(fed)
    }

    /// Starts the three providers with their files in `dir`.
    pub async fn start_in(dir: &Path, options: Options) -> Result<Self, KitError> {
        let ca = DevCa::generate(&options.ca_name)?;
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem())?;
        let ports = crate::ports::free_loopback_addrs(2 * DOMAINS.len())?;
        let addrs: Vec<(SocketAddr, SocketAddr)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
        let mut fed = Self {
            ca,
            dir: dir.to_owned(),
            providers: Vec::new(),
            backend: options.backend.clone(),
            databases: Vec::new(),
            _temp: None,
        };
        for (i, domain) in DOMAINS.iter().enumerate() {
            let id = fed.ca.issue(domain)?;
            let cert = dir.join(format!("{domain}.pem"));
            let key = dir.join(format!("{domain}.key"));
            std::fs::write(&cert, &id.cert_chain_pem)?;
            std::fs::write(&key, &id.key_pem)?;
            let peers: BTreeMap<String, String> = DOMAINS
                .iter()
                .zip(&addrs)
                .filter(|(d, _)| *d != domain)
                .map(|(d, (federation, _))| (d.to_string(), federation.to_string()))
                .collect();
            let storage = match &options.backend {
                Backend::Sqlite => StorageConfig::default(),
                Backend::Postgres { admin_url } => {
                    let url = fresh_postgres_database(admin_url, domain).await?;
                    fed.databases.push(url.clone());
                    StorageConfig {
                        sqlite: None,
                        postgres: Some(url),
                        ..StorageConfig::default()
                    }
                }
            };
            let config = ServerConfig {
                domain: domain.to_string(),
                data_dir: dir.join(format!("{domain}-data")),
                federation: FederationConfig {
                    listen: addrs[i].0,
                    public_url: options
                        .endpoints_off_domain
                        .then(|| format!("https://{}", addrs[i].0)),
                },
                client_api: ClientApiConfig {
                    listen: addrs[i].1,
                    open_registration: true,
                    admin_token: None,
                },
                storage,
                tls: TlsConfig {
                    ca: ca_path.clone(),
                    cert,
                    key,
                },
                peers,
                limits: options.limits.clone(),
                fanout: options.fanout.clone(),
                delivery: DeliveryConfig::default(),
                // Every asset host is on loopback here: the download proxy
                // must be let to connect to it (-06 §5.10).
                assets: AssetsConfig {
                    allow_private_addresses: true,
                    ..AssetsConfig::default()
                },
            };
            let server = mimi_server::start_with(config.clone(), options.start.clone())
                .await
                .map_err(|source| KitError::Start {
                    domain: domain.to_string(),
                    source,
                })?;
            let client_tls = tls::client_config(tls::root_store(fed.ca.cert_pem())?, None)?;
            let client_api = reqwest::Client::builder()
                .tls_backend_preconfigured(client_tls)
                .resolve(domain, server.client_addr)
                .build()?;
            fed.providers.push(Provider {
                domain: domain.to_string(),
                client_base: format!("https://{domain}:{}", server.client_addr.port()),
                server: Some(server),
                config,
                client_api,
                ca_pem: fed.ca.cert_pem().to_owned(),
                start: options.start.clone(),
            });
        }
        Ok(fed)
    }

    /// The provider of `domain`; panics when there is none.
    pub fn provider(&self, domain: &str) -> &Provider {
        self.providers
            .iter()
            .find(|p| p.domain == domain)
            .expect("no such provider")
    }

    /// The provider of `domain`; panics when there is none.
    pub fn provider_mut(&mut self, domain: &str) -> &mut Provider {
        self.providers
            .iter_mut()
            .find(|p| p.domain == domain)
            .expect("no such provider")
    }

    /// The provider hosting `device` (a `mimi://` URI).
    pub fn provider_of(&self, device: &str) -> &Provider {
        let domain = device
            .trim_start_matches("mimi://")
            .split('/')
            .next()
            .unwrap_or_default();
        self.provider(domain)
    }

    /// Registers `device` at its provider ([`Provider::register`]); returns
    /// its bearer token.
    pub async fn register(&self, device: &str) -> String {
        self.provider_of(device).register(device).await
    }

    /// A `mimi-client` connection to `domain`'s client API.
    pub fn connection(&self, domain: &str) -> Result<ProviderConnection, KitError> {
        self.provider(domain).connection()
    }

    /// A federation client presenting `identity` (none: anonymous), which
    /// resolves every provider to its loopback listener. Panics when the
    /// dev CA's certificates do not load.
    pub fn federation_client(&self, identity: Option<&ProviderIdentity>) -> reqwest::Client {
        let config = tls::client_config(
            tls::root_store(self.ca.cert_pem()).expect("dev CA"),
            identity,
        )
        .expect("client TLS configuration");
        let mut builder = reqwest::Client::builder().tls_backend_preconfigured(config);
        for p in &self.providers {
            builder = builder.resolve(&p.domain, p.config.federation.listen);
        }
        builder.build().expect("federation client")
    }

    /// A federation client authenticated as `domain`.
    pub fn federation_client_as(&self, domain: &str) -> reqwest::Client {
        let identity = self.provider(domain).identity().expect("provider identity");
        self.federation_client(Some(&identity))
    }

    /// `https://<domain>:<port>` of a provider's federation listener.
    pub fn federation_url(&self, domain: &str) -> String {
        format!(
            "https://{domain}:{}",
            self.provider(domain).config.federation.listen.port()
        )
    }

    /// Stops the servers and drops the PostgreSQL databases made for them.
    pub async fn shutdown(mut self) {
        for p in &mut self.providers {
            p.stop().await;
        }
        if let Backend::Postgres { admin_url } = &self.backend {
            for url in &self.databases {
                if let Err(e) = drop_postgres_database(admin_url, url).await {
                    eprintln!("dropping {url}: {e}");
                }
            }
        }
    }
}

/// [`Federation::start`] for tests: panics when the providers do not start.
pub async fn start_federation(backend: Backend) -> Federation {
    Federation::start(backend)
        .await
        .unwrap_or_else(|e| panic!("starting the federation: {e}"))
}
