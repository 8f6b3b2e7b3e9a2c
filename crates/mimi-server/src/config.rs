//! Server configuration: a TOML file, then `MIMI_*` environment variables,
//! then command-line overrides (applied by the caller).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}: {reason}")]
    Env { name: &'static str, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// One provider's server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The provider domain this server answers for (-06 §4.1 `Host`).
    pub domain: String,
    /// Where state lives: the SQLite database (unless `storage.postgres`
    /// is set) and the hub's signing key.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    pub federation: FederationConfig,
    pub client_api: ClientApiConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    pub tls: TlsConfig,
    /// Peer overrides: provider domain → `host:port`, bypassing discovery
    /// (local runs and tests).
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub fanout: FanoutConfig,
    /// Delivery to this provider's devices (the delivery log).
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Attachments: uploads, serving them to peers, the hub's download
    /// proxy (-06 §5.10).
    #[serde(default)]
    pub assets: AssetsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// Listen address of the provider-to-provider (mTLS) endpoints.
    pub listen: SocketAddr,
    /// Base URL peers use to reach us, published in our directory
    /// (default `https://<domain>:<listen port>`).
    #[serde(default)]
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientApiConfig {
    /// Listen address of the provider-internal client API (TLS).
    pub listen: SocketAddr,
    /// Whether any client may register a device (development); otherwise
    /// registration needs `admin_token`.
    #[serde(default)]
    pub open_registration: bool,
    /// Bearer token for registration and operator endpoints.
    #[serde(default)]
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// SQLite file (default `<data_dir>/mimi.db`).
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// PostgreSQL URL; when set, SQLite is not used.
    #[serde(default)]
    pub postgres: Option<String>,
    /// SQLite `synchronous` for durable commits: `full` (default, an
    /// fsync per commit) or `normal` (see docs/operations.md "Durability").
    #[serde(default)]
    pub sqlite_synchronous: SqliteSynchronous,
}

/// `[storage] sqlite_synchronous`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

impl SqliteSynchronous {
    /// `full` or `normal`, any case.
    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }
}

impl From<SqliteSynchronous> for mimi_store::SqliteSynchronousMode {
    fn from(mode: SqliteSynchronous) -> Self {
        match mode {
            SqliteSynchronous::Full => Self::Full,
            SqliteSynchronous::Normal => Self::Normal,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM trust anchors for peers' certificates.
    pub ca: PathBuf,
    /// PEM certificate chain for our domain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Resource limits (see docs/operations.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Timeout of one outbound federation request, in milliseconds.
    pub outbound_timeout_ms: u64,
    /// Timeout for handling one inbound request, in milliseconds.
    pub request_timeout_ms: u64,
    /// keyMaterial requests (-06 §5.2) per minute, and burst, from one
    /// requesting provider, whatever users it names.
    pub key_material_per_provider_per_minute: u32,
    /// keyMaterial requests per minute, and burst, for one requesting
    /// user of one provider.
    pub key_material_per_user_per_minute: u32,
    /// Most rate-limit buckets kept in memory (at least 2).
    pub rate_limit_buckets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 * 1024 * 1024,
            outbound_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            key_material_per_provider_per_minute: 1000,
            key_material_per_user_per_minute: 20,
            rate_limit_buckets: 100_000,
        }
    }
}

/// Outbox delivery settings (-06 §5.5, transport requirements bulk fanout).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FanoutConfig {
    /// Concurrent delivery workers.
    pub workers: usize,
    /// Most FanoutMessages concatenated into one `/notify` body.
    pub max_batch: u32,
    /// First retry delay; doubles per attempt up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long a worker holds a leased outbox lane.
    pub lease_ms: u64,
    /// Idle poll interval when nothing is due.
    pub poll_ms: u64,
    /// While a destination cannot be connected to, how often it is probed
    /// (a GET of its directory); when it answers, its lanes are retried at
    /// once instead of at their grown backoff. 0 turns probing off.
    pub recovery_probe_ms: u64,
}

impl Default for FanoutConfig {
    fn default() -> Self {
        Self {
            workers: 4,
            max_batch: 256,
            initial_backoff_ms: 200,
            max_backoff_ms: 30_000,
            lease_ms: 30_000,
            poll_ms: 200,
            recovery_probe_ms: 500,
        }
    }
}

/// `[delivery]`: the delivery log this provider's devices read
/// (docs/operations.md "Delivery to devices").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// How long a logged event is kept for devices that have not read it;
    /// 0 keeps it until every device that may read it has. An event every
    /// such device has acknowledged is deleted sooner.
    pub event_retention_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            event_retention_secs: 30 * 24 * 3600,
        }
    }
}

impl DeliveryConfig {
    /// Events logged before this time (Unix ms) are past retention.
    pub fn expired_before_ms(&self, now_ms: i64) -> i64 {
        if self.event_retention_secs == 0 {
            return i64::MIN;
        }
        let retention_ms =
            i64::try_from(self.event_retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        now_ms.saturating_sub(retention_ms)
    }
}

/// `[assets]`: attachments (docs/operations.md "Assets").
///
/// This provider stores its users' uploads (ciphertext; the key travels in
/// the MLS message, draft-ietf-mimi-content §External content), serves
/// them to peers at `<federation public URL>/v1/assets/<id>`, and as a hub
/// proxies downloads for its peers (-06 §5.10 `proxyDownload`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssetsConfig {
    /// Where uploads are kept (default `<data_dir>/assets`).
    pub dir: Option<PathBuf>,
    /// Largest upload accepted, in bytes (413 beyond).
    pub max_upload_bytes: u64,
    /// Media types of the plaintext accepted for upload (header
    /// `mimi-asset-media-type`): `type/subtype`, `type/*` or `*/*`.
    pub media_types: Vec<String>,
    /// Seconds an upload is kept; a background task deletes older ones.
    /// 0 keeps them forever.
    pub retention_secs: u64,
    /// Uploads per minute, and burst, of one user.
    pub uploads_per_user_per_minute: u32,
    /// Downloads (through `/client/v1/assets/download` or the OHTTP
    /// relay) per minute, and burst, of one of our users.
    pub downloads_per_user_per_minute: u32,
    /// `proxyDownload` and OHTTP Gateway requests per minute, and burst,
    /// of one peer provider (this hub serves every provider in its rooms).
    pub downloads_per_provider_per_minute: u32,
    /// Time one upload may take, body included (408 after).
    pub upload_timeout_ms: u64,
    /// Bytes of proxied asset bodies the hub keeps in memory (LRU).
    pub proxy_cache_bytes: usize,
    /// Largest asset the hub proxies (default `max_upload_bytes`).
    pub proxy_max_bytes: Option<u64>,
    /// Time one proxied fetch may take, from resolving the host to the
    /// last byte (504 after).
    pub proxy_timeout_ms: u64,
    /// Peer domain → the asset hosts (`host` or `host:port`) the hub
    /// proxies to for it, besides `domain:port` of every `[peers]` entry.
    pub peer_hosts: BTreeMap<String, Vec<String>>,
    /// Lets the proxy connect to loopback and private addresses (lab and
    /// test networks only: in production a peer's DNS could aim the hub
    /// at its own network).
    pub allow_private_addresses: bool,
    /// Keep uploads in an S3-compatible bucket instead of `dir`.
    pub s3: Option<S3Config>,
}

/// `[assets.s3]`: uploads in an S3-compatible object store
/// (docs/operations.md "Assets"). Credentials not given here come from
/// the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`) or the instance's metadata service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// The service's URL, for S3-compatible stores other than AWS
    /// (MinIO, Ceph, Garage…); AWS's own endpoint when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Key prefix of the assets (`<prefix>/<id>`).
    #[serde(default = "default_s3_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// A file holding the secret access key (kept out of the
    /// configuration file).
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Allows an `http://` endpoint (a store on the same host or network
    /// only: the credentials' signatures and the ciphertext travel in
    /// the clear).
    #[serde(default)]
    pub allow_http: bool,
    /// `https://<bucket>.<endpoint>` requests instead of path style.
    #[serde(default)]
    pub virtual_hosted_style: bool,
}

fn default_s3_region() -> String {
    "us-east-1".into()
}

fn default_s3_prefix() -> String {
    "assets".into()
}

/// 25 MiB.
const DEFAULT_MAX_UPLOAD_BYTES: u64 = 25 * 1024 * 1024;

impl Default for AssetsConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            media_types: [
                "image/*",
                "audio/*",
                "video/*",
                "text/plain",
                "application/pdf",
                "application/octet-stream",
            ]
            .map(String::from)
            .to_vec(),
            retention_secs: 30 * 24 * 3600,
            uploads_per_user_per_minute: 30,
            downloads_per_user_per_minute: 300,
            downloads_per_provider_per_minute: 6000,
            upload_timeout_ms: 300_000,
            proxy_cache_bytes: 64 * 1024 * 1024,
            proxy_max_bytes: None,
            proxy_timeout_ms: 30_000,
            peer_hosts: BTreeMap::new(),
            allow_private_addresses: false,
            s3: None,
        }
    }
}

impl AssetsConfig {
    /// The largest asset the hub proxies.
    pub fn proxy_max_bytes(&self) -> u64 {
        self.proxy_max_bytes.unwrap_or(self.max_upload_bytes)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(format!("[assets] {what}")));
        if self.max_upload_bytes == 0 || self.proxy_max_bytes() == 0 {
            return invalid("max_upload_bytes and proxy_max_bytes must be positive".into());
        }
        if self.proxy_timeout_ms == 0 || self.upload_timeout_ms == 0 {
            return invalid("proxy_timeout_ms and upload_timeout_ms must be positive".into());
        }
        if self.uploads_per_user_per_minute == 0
            || self.downloads_per_user_per_minute == 0
            || self.downloads_per_provider_per_minute == 0
        {
            return invalid(
                "uploads_per_user_per_minute, downloads_per_user_per_minute and downloads_per_provider_per_minute must be positive".into(),
            );
        }
        if let Err(e) = crate::assets::media::MediaTypes::new(&self.media_types) {
            return invalid(format!("media_types: {e}"));
        }
        for (domain, hosts) in &self.peer_hosts {
            if let Err(e) = mimi_assets::DownloadTargets::new(hosts) {
                return invalid(format!("peer_hosts.\"{domain}\": {e}"));
            }
        }
        if let Some(s3) = &self.s3
            && s3.bucket.is_empty()
        {
            return invalid("s3.bucket must not be empty".into());
        }
        Ok(())
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("mimi-data")
}

impl ServerConfig {
    /// Reads a TOML file and applies `MIMI_*` environment overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration as a TOML file for `mimi server -c` (used to start
    /// further processes of a provider, e.g. by `mimi bench scale`).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Environment overrides: `MIMI_DOMAIN`, `MIMI_DATA_DIR`,
    /// `MIMI_FEDERATION_LISTEN`, `MIMI_CLIENT_LISTEN`, `MIMI_POSTGRES_URL`,
    /// `MIMI_SQLITE_PATH`, `MIMI_SQLITE_SYNCHRONOUS` (`full` or `normal`),
    /// `MIMI_ASSETS_DIR`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let addr = |name: &'static str, v: String| {
            v.parse::<SocketAddr>().map_err(|e| ConfigError::Env {
                name,
                reason: e.to_string(),
            })
        };
        if let Some(v) = var("MIMI_DOMAIN") {
            self.domain = v;
        }
        if let Some(v) = var("MIMI_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = var("MIMI_FEDERATION_LISTEN") {
            self.federation.listen = addr("MIMI_FEDERATION_LISTEN", v)?;
        }
        if let Some(v) = var("MIMI_CLIENT_LISTEN") {
            self.client_api.listen = addr("MIMI_CLIENT_LISTEN", v)?;
        }
        if let Some(v) = var("MIMI_POSTGRES_URL") {
            self.storage.postgres = Some(v);
        }
        if let Some(v) = var("MIMI_SQLITE_PATH") {
            self.storage.sqlite = Some(v.into());
        }
        if let Some(v) = var("MIMI_ASSETS_DIR") {
            self.assets.dir = Some(v.into());
        }
        if let Some(v) = var("MIMI_SQLITE_SYNCHRONOUS") {
            self.storage.sqlite_synchronous =
                SqliteSynchronous::parse(&v).ok_or_else(|| ConfigError::Env {
                    name: "MIMI_SQLITE_SYNCHRONOUS",
                    reason: format!("`{v}` is neither full nor normal"),
                })?;
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        mimi_protocol::uri::validate_domain(&self.domain)
            .map_err(|e| ConfigError::Invalid(format!("domain `{}`: {e}", self.domain)))?;
        if self.limits.max_body_bytes == 0 || self.fanout.workers == 0 || self.fanout.max_batch == 0
        {
            return Err(ConfigError::Invalid(
                "limits and fanout sizes must be positive".into(),
            ));
        }
        let limits = &self.limits;
        if limits.key_material_per_provider_per_minute == 0
            || limits.key_material_per_user_per_minute == 0
            || limits.rate_limit_buckets < 2
        {
            return Err(ConfigError::Invalid(
                "keyMaterial rates must be positive and rate_limit_buckets at least 2".into(),
            ));
        }
        self.assets.validate()
    }

    /// Where uploaded assets are kept.
    pub fn assets_dir(&self) -> PathBuf {
        self.assets
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("assets"))
    }

    /// The SQLite file in use when PostgreSQL is not configured.
    pub fn sqlite_path(&self) -> PathBuf {
        self.storage
            .sqlite
            .clone()
            .unwrap_or_else(|| self.data_dir.join("mimi.db"))
    }

    /// Our federation base URL as published in the directory.
    pub fn public_url(&self) -> String {
        self.federation
            .public_url
            .clone()
            .unwrap_or_else(|| format!("https://{}:{}", self.domain, self.federation.listen.port()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
domain = "a.example"
data_dir = "/tmp/a"
[federation]
listen = "127.0.0.1:8443"
[client_api]
listen = "127.0.0.1:9443"
open_registration = true
[tls]
ca = "ca.pem"
cert = "a.pem"
key = "a.key"
[peers]
"b.example" = "127.0.0.1:8444"
"#;

    #[test]
    fn parses_and_applies_env_overrides() {
        let mut config: ServerConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(config.peers["b.example"], "127.0.0.1:8444");
        assert_eq!(config.sqlite_path(), PathBuf::from("/tmp/a/mimi.db"));
        config
            .apply_env(|n| match n {
                "MIMI_POSTGRES_URL" => Some("postgres://x@127.0.0.1/test".into()),
                "MIMI_FEDERATION_LISTEN" => Some("127.0.0.1:1".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            config.storage.postgres.as_deref(),
            Some("postgres://x@127.0.0.1/test")
        );
        assert_eq!(config.federation.listen.port(), 1);
        assert!(
            config
                .apply_env(|n| (n == "MIMI_CLIENT_LISTEN").then(|| "nope".into()))
                .is_err()
        );
        config.validate().unwrap();
    }

    #[test]
    fn sqlite_synchronous_defaults_to_full_and_is_overridable() {
        let mut config: ServerConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(config.storage.sqlite_synchronous, SqliteSynchronous::Full);
        let normal: ServerConfig = toml::from_str(&format!(
            "{EXAMPLE}\n[storage]\nsqlite_synchronous = \"normal\""
        ))
        .unwrap();
        assert_eq!(normal.storage.sqlite_synchronous, SqliteSynchronous::Normal);
        config
            .apply_env(|n| (n == "MIMI_SQLITE_SYNCHRONOUS").then(|| "NORMAL".into()))
            .unwrap();
        assert_eq!(config.storage.sqlite_synchronous, SqliteSynchronous::Normal);
        assert!(
            config
                .apply_env(|n| (n == "MIMI_SQLITE_SYNCHRONOUS").then(|| "off".into()))
                .is_err()
        );
    }

    #[test]
    fn unknown_keys_and_bad_domains_are_refused() {
        assert!(toml::from_str::<ServerConfig>(&format!("{EXAMPLE}\nbogus = 1")).is_err());
        let mut config: ServerConfig = toml::from_str(EXAMPLE).unwrap();
        config.domain = "not a domain".into();
        assert!(config.validate().is_err());
    }

    #[test]
    fn assets_defaults_parse_and_are_checked() {
        let config: ServerConfig = toml::from_str(EXAMPLE).unwrap();
        assert_eq!(config.assets_dir(), PathBuf::from("/tmp/a/assets"));
        assert_eq!(config.assets.max_upload_bytes, 25 * 1024 * 1024);
        assert_eq!(config.assets.proxy_max_bytes(), 25 * 1024 * 1024);
        assert!(!config.assets.allow_private_addresses);
        assert!(config.assets.media_types.iter().any(|t| t == "image/*"));
        let custom: ServerConfig = toml::from_str(&format!(
            "{EXAMPLE}\n[assets]\ndir = \"/srv/assets\"\nmax_upload_bytes = 10\nmedia_types = [\"image/png\"]\nallow_private_addresses = true\n[assets.peer_hosts]\n\"b.example\" = [\"files.b.example\", \"b.example:8443\"]\n"
        ))
        .unwrap();
        custom.validate().unwrap();
        assert_eq!(custom.assets_dir(), PathBuf::from("/srv/assets"));
        assert_eq!(custom.assets.proxy_max_bytes(), 10);
        assert_eq!(custom.assets.peer_hosts["b.example"].len(), 2);
        assert!(
            toml::from_str::<ServerConfig>(&format!("{EXAMPLE}\n[assets]\nbogus = 1\n")).is_err()
        );
        for bad in [
            "media_types = [\"image\"]",
            "max_upload_bytes = 0",
            "proxy_timeout_ms = 0",
            "[assets.peer_hosts]\n\"b.example\" = [\"127.0.0.1\"]",
        ] {
            let config: ServerConfig =
                toml::from_str(&format!("{EXAMPLE}\n[assets]\n{bad}\n")).unwrap();
            assert!(config.validate().is_err(), "{bad}");
        }
        let mut env = config;
        env.apply_env(|n| (n == "MIMI_ASSETS_DIR").then(|| "/x".into()))
            .unwrap();
        assert_eq!(env.assets_dir(), PathBuf::from("/x"));
    }

    #[test]
    fn key_material_limits_parse_and_are_checked() {
        let config: ServerConfig = toml::from_str(&format!(
            "{EXAMPLE}\n[limits]\nkey_material_per_provider_per_minute = 50\nrate_limit_buckets = 10\n"
        ))
        .unwrap();
        assert_eq!(config.limits.key_material_per_provider_per_minute, 50);
        assert_eq!(config.limits.key_material_per_user_per_minute, 20);
        assert_eq!(config.limits.rate_limit_buckets, 10);
        config.validate().unwrap();
        let mut bad = config.clone();
        bad.limits.rate_limit_buckets = 1;
        assert!(bad.validate().is_err());
        let mut bad = config;
        bad.limits.key_material_per_user_per_minute = 0;
        assert!(bad.validate().is_err());
    }
}
