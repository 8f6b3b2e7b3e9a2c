//! Three real providers on loopback for the benchmark: a dev CA, mutual
//! TLS between them, and the chosen store (SQLite files or one fresh
//! PostgreSQL database per provider).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, ensure};
use mimi_server::RunningServer;
use mimi_server::config::{
    ClientApiConfig, FanoutConfig, FederationConfig, ServerConfig, StorageConfig, TlsConfig,
};
use mimi_server::tls::{self, DevCa, ProviderIdentity};

/// The providers: `a.example` hosts every benchmark room (the hub).
pub const DOMAINS: [&str; 3] = ["a.example", "b.example", "c.example"];
pub const HUB: &str = "a.example";

/// Which database the providers use.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    Sqlite,
    Postgres { admin_url: String },
}

impl StoreChoice {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres { .. } => "PostgreSQL",
        }
    }
}

pub struct Net {
    pub ca: DevCa,
    pub servers: Vec<RunningServer>,
    pub identities: Vec<ProviderIdentity>,
    /// The configuration each provider was started with.
    pub configs: Vec<ServerConfig>,
    pub store: StoreChoice,
    databases: Vec<String>,
}

/// One free loopback address outside the kernel's ephemeral range.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(mimi_server::ports::free_loopback_addrs(1)?[0])
}

impl Net {
    /// Starts a.example, b.example and c.example in this process.
    pub async fn start(
        dir: &Path,
        store: &StoreChoice,
        fanout: FanoutConfig,
    ) -> anyhow::Result<Self> {
        let ca = DevCa::generate("mimi bench CA")?;
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem())?;
        let federation: Vec<SocketAddr> = DOMAINS
            .iter()
            .map(|_| free_port())
            .collect::<Result<_, _>>()?;
        let mut net = Self {
            ca,
            servers: Vec::new(),
            identities: Vec::new(),
            configs: Vec::new(),
            store: store.clone(),
            databases: Vec::new(),
        };
        for (i, domain) in DOMAINS.iter().enumerate() {
            let id = net.ca.issue(domain)?;
            let cert = dir.join(format!("{domain}.pem"));
            let key = dir.join(format!("{domain}.key"));
            std::fs::write(&cert, &id.cert_chain_pem)?;
            std::fs::write(&key, &id.key_pem)?;
            let storage = match store {
                StoreChoice::Sqlite => StorageConfig::default(),
                StoreChoice::Postgres { admin_url } => {
                    let url = mimi_store::testing::fresh_postgres_database(admin_url, domain)
                        .await
                        .with_context(|| {
                            format!("creating a PostgreSQL database at {admin_url}")
                        })?;
                    net.databases.push(url.clone());
                    StorageConfig {
                        sqlite: None,
                        postgres: Some(url),
                        ..StorageConfig::default()
                    }
                }
            };
            let peers: BTreeMap<String, String> = DOMAINS
                .iter()
                .zip(&federation)
                .filter(|(d, _)| *d != domain)
                .map(|(d, addr)| (d.to_string(), addr.to_string()))
                .collect();
            let config = ServerConfig {
                domain: domain.to_string(),
                data_dir: dir.join(format!("{domain}-data")),
                federation: FederationConfig {
                    listen: federation[i],
                    public_url: None,
                },
                client_api: ClientApiConfig {
                    listen: free_port()?,
                    open_registration: true,
                    admin_token: None,
                },
                storage,
                tls: TlsConfig {
                    ca: ca_path.clone(),
                    cert: cert.clone(),
                    key: key.clone(),
                },
                peers,
                limits: Default::default(),
                fanout: fanout.clone(),
            };
            net.identities
                .push(ProviderIdentity::from_files(domain, &cert, &key)?);
            net.configs.push(config.clone());
            net.servers.push(
                mimi_server::start(config)
                    .await
                    .with_context(|| format!("starting {domain}"))?,
            );
        }
        Ok(net)
    }

    fn index(domain: &str) -> usize {
        DOMAINS.iter().position(|d| *d == domain).unwrap_or(0)
    }

    pub fn server(&self, domain: &str) -> &RunningServer {
        &self.servers[Self::index(domain)]
    }

    /// An HTTP/2 mTLS client presenting `domain`'s certificate, resolving
    /// every provider to its loopback listener.
    pub fn client_as(&self, domain: &str) -> anyhow::Result<reqwest::Client> {
        federation_client(
            self.ca.cert_pem(),
            &self.identities[Self::index(domain)],
            self.servers
                .iter()
                .zip(DOMAINS)
                .map(|(s, d)| (d, s.federation_addr)),
        )
    }

    /// `https://<domain>:<port>` of a provider's federation listener.
    pub fn url(&self, domain: &str) -> String {
        format!(
            "https://{domain}:{}",
            self.server(domain).federation_addr.port()
        )
    }

    /// Installs (or removes) one delivery observer on every provider.
    pub fn set_delivery_observer(
        &self,
        f: Option<std::sync::Arc<mimi_server::delivery::DeliveryObserver>>,
    ) {
        for server in &self.servers {
            server.state.set_delivery_observer(f.clone());
        }
    }

    pub fn store_name(&self) -> &'static str {
        self.store.name()
    }

    /// Stops the servers and drops the PostgreSQL databases.
    pub async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
        if let StoreChoice::Postgres { admin_url } = &self.store {
            for url in &self.databases {
                if let Err(e) = mimi_store::testing::drop_postgres_database(admin_url, url).await {
                    eprintln!("dropping {url}: {e}");
                }
            }
        }
    }
}

/// The federation client stack used for every measured request.
pub fn federation_client<'a>(
    ca_pem: &str,
    identity: &ProviderIdentity,
    resolve: impl IntoIterator<Item = (&'a str, SocketAddr)>,
) -> anyhow::Result<reqwest::Client> {
    let config = tls::client_config(tls::root_store(ca_pem)?, Some(identity))?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .pool_max_idle_per_host(64);
    for (domain, addr) in resolve {
        builder = builder.resolve(domain, addr);
    }
    Ok(builder.build()?)
}

/// POSTs a TLS-PL body as `source` and returns the status and body.
pub async fn post(
    client: &reqwest::Client,
    source: &str,
    url: &str,
    body: Vec<u8>,
) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
    let response = client
        .post(url)
        .header("from", format!("mimi@{source}"))
        .header("content-type", "application/mimi-protocol")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    ensure!(
        response.version() == reqwest::Version::HTTP_2,
        "expected HTTP/2, got {:?}",
        response.version()
    );
    Ok((status, response.bytes().await?.to_vec()))
}

/// Percent-encodes a room URI for a path segment (divergence T5).
pub fn room_path(room: &str) -> String {
    room.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
