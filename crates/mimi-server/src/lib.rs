//! The MIMI provider server (draft-ietf-mimi-protocol-06).
//!
//! Two listeners: the federation endpoints (-06 §5) behind mutual TLS, and
//! the provider-internal client API (docs/client-api.md) with `/health`
//! and `/metrics`. Accepted room events go to a durable outbox in the same
//! transaction that accepts them; [`fanout`] workers deliver them.

pub mod assets;
pub mod batch;
pub mod client_api;
pub mod config;
pub mod delivery;
pub mod error;
pub mod fanout;
pub mod federation;
pub mod hub;
pub mod metrics;
pub mod outbound;
pub mod rate_limit;
pub mod runtime;
pub mod state;
pub mod tls;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use mimi_store::{PgStore, SqliteOptions, SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::ServerConfig;
use crate::outbound::PeerClient;
use crate::runtime::ServerRuntime;
pub use crate::runtime::StartOptions;
use crate::state::AppState;
use crate::tls::ProviderIdentity;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] mimi_store::StoreError),
    #[error("TLS material: {0}")]
    TlsFiles(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("outbound client: {0}")]
    Outbound(#[from] outbound::OutboundError),
    #[error("hub key: {0}")]
    HubKey(std::io::Error),
    #[error("assets: {0}")]
    Assets(#[from] assets::AssetSetupError),
    #[error("binding {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
}

/// A started server; dropping it does not stop it, [`RunningServer::shutdown`] does.
pub struct RunningServer {
    pub federation_addr: std::net::SocketAddr,
    pub client_addr: std::net::SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl RunningServer {
    /// Stops accepting, stops the workers and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Opens the configured store: PostgreSQL if a URL is set, else SQLite.
pub async fn open_store(config: &ServerConfig) -> Result<Arc<dyn Store>, StartError> {
    Ok(match &config.storage.postgres {
        Some(url) => Arc::new(PgStore::connect(url).await?),
        None => {
            let path = config.sqlite_path();
            let options = SqliteOptions {
                synchronous: config.storage.sqlite_synchronous.into(),
            };
            Arc::new(SqliteStore::open_with(&path.to_string_lossy(), options).await?)
        }
    })
}

/// Starts a provider server with the default [`StartOptions`].
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    start_with(config, StartOptions::default()).await
}

/// Starts a provider server; everything it owns besides the store lives in
/// its own [`ServerRuntime`], so servers in one process share nothing.
pub async fn start_with(
    config: ServerConfig,
    options: StartOptions,
) -> Result<RunningServer, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::DataDir(config.data_dir.display().to_string(), e))?;
    let store = open_store(&config).await?;
    let identity = ProviderIdentity::from_files(&config.domain, &config.tls.cert, &config.tls.key)
        .map_err(StartError::TlsFiles)?;
    let ca_pem = std::fs::read_to_string(&config.tls.ca).map_err(StartError::TlsFiles)?;
    let hub =
        state::load_or_create_hub(&config.data_dir, &config.domain).map_err(StartError::HubKey)?;
    let peers = PeerClient::new(
        &config.domain,
        &ca_pem,
        &identity,
        &config.peers,
        Duration::from_millis(config.limits.outbound_timeout_ms),
    )?;

    let federation_tls = tls::server_config(tls::root_store(&ca_pem)?, &identity)?;
    // The download proxy presents our certificate to asset providers and
    // trusts the peers' roots, as the federation client does (-06 §4.1).
    let asset_tls = tls::client_config(tls::root_store(&ca_pem)?, Some(&identity))?;
    let client_tls = tls::client_api_server_config(&identity)?;
    let federation_listener = TcpListener::bind(config.federation.listen)
        .await
        .map_err(|e| StartError::Bind(config.federation.listen, e))?;
    let client_listener = TcpListener::bind(config.client_api.listen)
        .await
        .map_err(|e| StartError::Bind(config.client_api.listen, e))?;
    let federation_addr = federation_listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.federation.listen, e))?;
    let client_addr = client_listener
        .local_addr()
        .map_err(|e| StartError::Bind(config.client_api.listen, e))?;

    let mut config = config;
    if config.federation.public_url.is_none() {
        config.federation.public_url = Some(format!(
            "https://{}:{}",
            config.domain,
            federation_addr.port()
        ));
    }
    let runtime = ServerRuntime::new(&config, options);
    let assets = assets::AssetService::new(&config, asset_tls)?;
    let state = AppState {
        config: Arc::new(config),
        store,
        hub: Arc::new(hub),
        peers: Arc::new(peers),
        runtime: Arc::new(runtime),
        assets: Arc::new(assets),
    };

    let (shutdown, shutdown_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = JoinSet::new();
    tasks.spawn(transport::serve(
        federation_listener,
        Arc::new(federation_tls),
        federation::router(state.clone()),
        stopped(shutdown_rx.clone()),
    ));
    tasks.spawn(transport::serve(
        client_listener,
        Arc::new(client_tls),
        client_api::router(state.clone()),
        stopped(shutdown_rx.clone()),
    ));
    assets::spawn_retention(&mut tasks, state.clone(), shutdown_rx.clone());
    fanout::spawn_workers(&mut tasks, state.clone(), shutdown_rx);
    tracing::info!(domain = %state.domain(), %federation_addr, %client_addr, "MIMI server started");
    Ok(RunningServer {
        federation_addr,
        client_addr,
        state,
        shutdown,
        tasks,
    })
}
