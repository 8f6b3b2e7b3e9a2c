//! `mimi conformance`: runs the -06 conformance suite (crates/mimi-conformance)
//! against a provider and prints the report (docs/conformance.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use mimi_conformance::{Config, Fixtures, TlsMaterial};
use mimi_protocol::MimiUri;

#[derive(clap::Args)]
pub struct ConformanceArgs {
    /// The provider to test: its domain, or an https:// URL whose host is
    /// its domain (e.g. https://a.example:8443).
    #[arg(long)]
    target: String,
    /// The tester's provider domain; --cert must authenticate it.
    #[arg(long)]
    domain: String,
    /// PEM certificate chain presented as the tester's client certificate.
    #[arg(long)]
    cert: PathBuf,
    /// PEM private key of --cert.
    #[arg(long)]
    key: PathBuf,
    /// PEM trust anchors for the target's server certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Connect to this address instead of resolving the target's domain
    /// (the TLS server name and Host stay the domain).
    #[arg(long)]
    connect: Option<SocketAddr>,
    /// Fixture: a user at the target with at least two uploaded
    /// KeyPackages whose consent admits --requester.
    #[arg(long)]
    user: Option<String>,
    /// The tester's user (default mimi://<domain>/u/conformance).
    #[arg(long)]
    requester: Option<String>,
    /// Fixture: --user requires explicit consent and granted it only to
    /// --requester.
    #[arg(long)]
    consent_required: bool,
    /// Fixture: the exact handle under which --user is discoverable.
    #[arg(long)]
    handle: Option<String>,
    /// Fixture: a room the target hosts whose participant list has
    /// --requester with the right to add its own clients; the run joins
    /// it with two devices.
    #[arg(long)]
    room: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

fn uri(option: &str, value: Option<String>) -> anyhow::Result<Option<MimiUri>> {
    value
        .map(|v| MimiUri::parse(&v).with_context(|| format!("{option} {v:?}")))
        .transpose()
}

/// Runs the suite; the exit code is 0 when no MUST check failed, 1 when
/// one did (errors that stop the run exit 2 through `main`).
pub async fn run(args: ConformanceArgs) -> anyhow::Result<i32> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let config = Config {
        target: args.target,
        connect: args.connect,
        tester_domain: args.domain,
        tls: TlsMaterial {
            cert_pem: read(&args.cert)?,
            key_pem: read(&args.key)?,
            ca_pem: read(&args.ca)?,
        },
        fixtures: Fixtures {
            user: uri("--user", args.user)?,
            requester: uri("--requester", args.requester)?,
            consent_required: args.consent_required,
            handle: args.handle,
            room: uri("--room", args.room)?,
        },
    };
    let report = mimi_conformance::run(config).await?;
    match args.format {
        Format::Table => print!("{}", report.table()),
        Format::Json => println!("{}", report.to_json()),
    }
    Ok(if report.must_failures() > 0 { 1 } else { 0 })
}
