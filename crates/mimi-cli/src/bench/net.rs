//! Three real providers on loopback for the benchmark (the test kit's
//! federation): a dev CA, mutual TLS between them, and the chosen store
//! (SQLite files or one fresh PostgreSQL database per provider).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::ensure;
use mimi_server::batch::FanoutItem;
use mimi_server::config::{FanoutConfig, Limits};
use mimi_server::runtime::DeliveryObserver;
use mimi_server::tls::{self, ProviderIdentity};
use mimi_server::{RunningServer, StartOptions};
use mimi_testkit::{Backend, Federation, Options};

/// The providers: `a.example` hosts every benchmark room (the hub).
pub use mimi_testkit::DOMAINS;
pub const HUB: &str = "a.example";

/// Which database the providers use.
pub type StoreChoice = Backend;

/// The kit's federation, with each provider's identity loaded once.
pub struct Net {
    pub fed: Federation,
    pub identities: Vec<ProviderIdentity>,
    /// Given to every provider at start; passes deliveries on to the
    /// observer of the phase being measured.
    observer: Arc<ObserverSlot>,
}

/// A delivery observer that can be swapped while the servers run.
#[derive(Default)]
struct ObserverSlot(RwLock<Option<Arc<dyn DeliveryObserver>>>);

impl DeliveryObserver for ObserverSlot {
    fn observe(&self, provider: &str, room_id: &str, items: &[FanoutItem]) {
        let current = self.0.read().ok().and_then(|slot| slot.clone());
        if let Some(observer) = current {
            observer.observe(provider, room_id, items);
        }
    }
}

/// The federation's fields (`ca`, `providers`, `backend`) read through.
impl std::ops::Deref for Net {
    type Target = Federation;

    fn deref(&self) -> &Federation {
        &self.fed
    }
}

impl Net {
    /// Starts a.example, b.example and c.example in this process.
    pub async fn start(
        dir: &Path,
        store: &StoreChoice,
        fanout: FanoutConfig,
    ) -> anyhow::Result<Self> {
        let observer = Arc::new(ObserverSlot::default());
        let fed = Federation::start_in(
            dir,
            Options {
                backend: store.clone(),
                fanout,
                ca_name: "mimi bench CA".into(),
                start: StartOptions {
                    delivery_observer: Some(observer.clone()),
                },
                endpoints_off_domain: false,
                // The bench measures the hub and the store, not the
                // keyMaterial rate limiter (-06 §5.2), which would answer
                // 429 after the first thousand claims of a minute.
                limits: Limits {
                    key_material_per_provider_per_minute: u32::MAX,
                    key_material_per_user_per_minute: u32::MAX,
                    ..Limits::default()
                },
            },
        )
        .await?;
        let identities = fed
            .providers
            .iter()
            .map(|p| p.identity())
            .collect::<Result<_, _>>()?;
        Ok(Self {
            fed,
            identities,
            observer,
        })
    }

    fn index(domain: &str) -> usize {
        DOMAINS.iter().position(|d| *d == domain).unwrap_or(0)
    }

    pub fn server(&self, domain: &str) -> &RunningServer {
        self.fed.provider(domain).server()
    }

    /// An HTTP/2 mTLS client presenting `domain`'s certificate, resolving
    /// every provider to its loopback listener.
    pub fn client_as(&self, domain: &str) -> anyhow::Result<reqwest::Client> {
        federation_client(
            self.ca.cert_pem(),
            &self.identities[Self::index(domain)],
            self.fed
                .providers
                .iter()
                .map(|p| (p.domain.as_str(), p.config.federation.listen)),
        )
    }

    /// `https://<domain>:<port>` of a provider's federation listener.
    pub fn url(&self, domain: &str) -> String {
        self.fed.federation_url(domain)
    }

    /// Installs (or removes) one delivery observer on every provider.
    pub fn set_delivery_observer(&self, observer: Option<Arc<dyn DeliveryObserver>>) {
        if let Ok(mut slot) = self.observer.0.write() {
            *slot = observer;
        }
    }

    pub fn store_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Stops the servers and drops the PostgreSQL databases.
    pub async fn shutdown(self) {
        self.fed.shutdown().await;
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
