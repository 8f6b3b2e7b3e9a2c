//! Providers as real `mimi server` processes, configured by `mimi dev-ca`,
//! with devices driven in-process through `mimi-client`, and direct access
//! to a provider's database for checking stored state.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_client::http::{Client, ProviderConnection};
use mimi_server::config::ServerConfig;
use mimi_store::Store;

/// Fast retries and short leases (a killed server's leases expire), so a
/// test does not wait out production timings.
const FAST_FANOUT: &str =
    "\n[fanout]\ninitial_backoff_ms = 50\nmax_backoff_ms = 400\npoll_ms = 20\nlease_ms = 2000\n";

/// One provider's generated configuration.
pub struct ProviderFiles {
    pub domain: String,
    pub toml: PathBuf,
    pub federation: u16,
    pub client: u16,
}

/// The files `mimi dev-ca` wrote for `domains`, moved to free ports and
/// given [`FAST_FANOUT`].
pub struct DevSetup {
    pub dir: tempfile::TempDir,
    pub providers: Vec<ProviderFiles>,
}

impl DevSetup {
    pub fn new(domains: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // dev-ca numbers ports from a base; they are replaced below by
        // ports the OS handed out.
        let base: u16 = 40_000;
        let out = Command::new(env!("CARGO_BIN_EXE_mimi"))
            .current_dir(dir.path())
            .args(["dev-ca", "--out", "dev", "--domains", &domains.join(",")])
            .args(["--base-port", &base.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ports = free_ports(2 * domains.len());
        let providers = domains
            .iter()
            .enumerate()
            .map(|(i, domain)| {
                let toml = dir.path().join("dev").join(format!("{domain}.toml"));
                let mut text = std::fs::read_to_string(&toml).unwrap();
                for (k, port) in ports.iter().enumerate() {
                    let placeholder = format!("\"127.0.0.1:{}\"", base + k as u16);
                    text = text.replace(&placeholder, &format!("\"127.0.0.1:{port}\""));
                }
                text.push_str(FAST_FANOUT);
                std::fs::write(&toml, text).unwrap();
                ProviderFiles {
                    domain: domain.to_string(),
                    toml,
                    federation: ports[2 * i],
                    client: ports[2 * i + 1],
                }
            })
            .collect();
        Self { dir, providers }
    }

    pub fn provider(&self, domain: &str) -> &ProviderFiles {
        self.providers.iter().find(|p| p.domain == domain).unwrap()
    }

    /// Replaces the admin token `mimi dev-ca` put into `domain`'s config.
    pub fn set_admin_token(&self, domain: &str, token: &str) {
        let toml = &self.provider(domain).toml;
        let text: Vec<String> = std::fs::read_to_string(toml)
            .unwrap()
            .lines()
            .map(|line| match line.starts_with("admin_token = ") {
                true => format!("admin_token = \"{token}\""),
                false => line.to_owned(),
            })
            .collect();
        std::fs::write(toml, text.join("\n")).unwrap();
    }

    /// The admin token `mimi dev-ca` generated for `domain`.
    pub fn admin_token_file(&self, domain: &str) -> PathBuf {
        self.dir
            .path()
            .join("dev")
            .join(format!("{domain}.admin-token"))
    }

    /// Starts `mimi server` for `domain` with extra arguments (overrides).
    pub fn spawn(&self, domain: &str, extra: &[String]) -> ServerProcess {
        let p = self.provider(domain);
        let child = Command::new(env!("CARGO_BIN_EXE_mimi"))
            .current_dir(self.dir.path())
            .arg("server")
            .arg("-c")
            .arg(&p.toml)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ServerProcess(child)
    }

    /// The CA certificate of the dev setup.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("dev").join("ca.pem")).unwrap()
    }

    /// A client API connection to `domain` reached at `client_port`.
    pub fn connection(&self, domain: &str, client_port: u16) -> ProviderConnection {
        let addr: SocketAddr = ([127, 0, 0, 1], client_port).into();
        ProviderConnection::new(
            &format!("https://{domain}:{client_port}"),
            Some(&self.ca_pem()),
            Some(addr),
        )
        .unwrap()
    }

    /// Registers `device` at its provider's instance on `client_port`.
    pub async fn device(&self, device: &str, client_port: u16) -> Client {
        let domain = device
            .trim_start_matches("mimi://")
            .split('/')
            .next()
            .unwrap();
        Client::register(device, self.connection(domain, client_port))
            .await
            .unwrap()
    }

    /// `domain`'s database, opened beside (or instead of) its server.
    pub async fn store(&self, domain: &str, postgres: Option<&str>) -> Arc<dyn Store> {
        let mut config = ServerConfig::load(&self.provider(domain).toml).unwrap();
        config.storage.postgres = postgres.map(str::to_owned);
        mimi_server::open_store(&config).await.unwrap()
    }
}

/// A `mimi server` process; killed (SIGKILL) when dropped.
pub struct ServerProcess(Child);

impl ServerProcess {
    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` distinct free loopback ports outside the kernel's ephemeral range.
pub fn free_ports(n: usize) -> Vec<u16> {
    mimi_testkit::ports::free_loopback_addrs(n)
        .unwrap()
        .iter()
        .map(|a| a.port())
        .collect()
}

/// Waits until something accepts connections on each port.
pub async fn wait_listening(ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in ports {
        while tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nothing listens on {port}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A time limit for a polling loop: [`Deadline::tick`] sleeps 50 ms and
/// fails the test once the limit has passed.
pub struct Deadline {
    at: Instant,
    what: &'static str,
}

impl Deadline {
    pub fn new(within: Duration, what: &'static str) -> Self {
        Self {
            at: Instant::now() + within,
            what,
        }
    }

    pub async fn tick(&self) {
        assert!(Instant::now() < self.at, "timed out: {}", self.what);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Syncs `client` until it has joined a room from a Welcome.
pub async fn wait_joined(client: &mut Client, within: Duration) {
    let deadline = Deadline::new(within, "the device joins");
    while !client
        .sync()
        .await
        .unwrap()
        .iter()
        .any(|e| matches!(e, mimi_client::Event::Joined { .. }))
    {
        deadline.tick().await;
    }
}

pub fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// The stdout of a `mimi` run that must have succeeded (else its output
/// is the failure message).
pub fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Two fresh PostgreSQL databases (the hub's and the follower's); fails
/// loudly without `MIMI_TEST_POSTGRES_URL`.
pub async fn two_test_databases(labels: [&str; 2]) -> [String; 2] {
    [
        mimi_testkit::postgres::fresh_test_database(labels[0]).await,
        mimi_testkit::postgres::fresh_test_database(labels[1]).await,
    ]
}

/// `mimi server` arguments selecting provider `i`'s store: its database
/// in `postgres`, else its SQLite file.
pub fn store_args(postgres: &Option<[String; 2]>, i: usize) -> Vec<String> {
    match postgres {
        Some(urls) => vec!["--postgres".to_string(), urls[i].clone()],
        None => Vec::new(),
    }
}

/// The texts of `client`'s history of `room`, in order.
pub fn history_texts(client: &Client, room: &str) -> Vec<String> {
    client
        .device
        .history(room)
        .unwrap()
        .iter()
        .map(|m| match &m.content.nested_part.part {
            mimi_content::Part::Single(p) => String::from_utf8_lossy(&p.content).into_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}
