//! The `mimi` command.

// Built on the test kit; only with the `dev-tools` feature (README.md).
#[cfg(feature = "dev-tools")]
mod bench;
mod client_cmd;
mod conformance_cmd;
#[cfg(feature = "dev-tools")]
mod demo;
mod room_policy;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

/// MIMI provider server, client and tools.
#[derive(Parser)]
#[command(name = "mimi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start three providers on loopback (mutual TLS, SQLite) and play the
    /// example flow of draft-ietf-mimi-protocol-06 §3 with real clients.
    #[cfg(feature = "dev-tools")]
    Demo {
        /// Keep the providers' data, certificates and logs in this directory
        /// (default: a temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The MLS cipher suite of every device and of the room: 0x0001,
        /// 0x0002 (P-256), 0x0003, or the suite's RFC 9420 name.
        #[arg(long, default_value = "0x0001", value_parser = client_cmd::parse_ciphersuite)]
        ciphersuite: mimi_client::Ciphersuite,
    },
    /// Run a provider server (see docs/operations.md for the config file).
    Server(ServerArgs),
    /// Act as one client device against its provider.
    Client(client_cmd::ClientArgs),
    /// Operator requests to a provider's client API (admin token).
    Admin(client_cmd::AdminArgs),
    /// Create a development CA and one certificate per provider domain,
    /// plus a ready-to-run config file for each provider.
    DevCa(DevCaArgs),
    /// The room templates of draft-ietf-mimi-room-policy §Role examples
    /// (`mimi client create --template`), each with what its roles may do.
    Templates {
        /// Only this template.
        name: Option<mimi_room::policy::templates::Template>,
    },
    /// Inspect MIMI content messages (draft-ietf-mimi-content).
    #[command(subcommand)]
    Content(ContentCommand),
    /// Measure the hub: fanout throughput and latency, commit validation,
    /// keyMaterial claims, memory, and the raw mTLS HTTP/2 ceiling
    /// (docs/performance.md).
    #[cfg(feature = "dev-tools")]
    Bench(bench::BenchArgs),
    /// Test another provider against draft-ietf-mimi-protocol-06 over
    /// mutual TLS and print a table of checks (docs/conformance.md). Exits
    /// 1 when a MUST check fails.
    Conformance(conformance_cmd::ConformanceArgs),
    /// Parse and normalise a mimi:// identifier.
    Uri {
        /// The URI, e.g. mimi://a.example/u/alice
        uri: String,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, short)]
    config: PathBuf,
    /// Override the provider domain.
    #[arg(long)]
    domain: Option<String>,
    /// Override the federation listen address.
    #[arg(long)]
    federation_listen: Option<std::net::SocketAddr>,
    /// Override the client API listen address.
    #[arg(long)]
    client_listen: Option<std::net::SocketAddr>,
    /// Use PostgreSQL at this URL instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    json_logs: bool,
}

#[derive(clap::Args)]
struct DevCaArgs {
    /// Output directory.
    #[arg(long, default_value = "mimi-dev")]
    out: PathBuf,
    /// Provider domains to issue certificates for.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "a.example,b.example,c.example"
    )]
    domains: Vec<String>,
    /// First federation port; provider i listens on base+2i (federation)
    /// and base+2i+1 (client API) in the generated configs.
    #[arg(long, default_value_t = 18443)]
    base_port: u16,
    /// Write over a directory that already holds a dev CA: a new CA, new
    /// certificates, keys and admin tokens for every provider configured
    /// there (their data directories are kept).
    #[arg(long)]
    replace: bool,
}

#[derive(Subcommand)]
enum ContentCommand {
    /// Decode a CBOR content message, check that it re-encodes byte for
    /// byte, and print it with its message ID.
    Decode {
        /// File holding the CBOR message.
        file: PathBuf,
        /// Sender URI for the message ID (default: the senderUri extension).
        #[arg(long)]
        sender: Option<String>,
        /// Room URI for the message ID (default: the roomUri extension).
        #[arg(long)]
        room: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Server(args) => run_server(args),
        #[cfg(feature = "dev-tools")]
        Command::Demo { dir, ciphersuite } => run_demo(dir, ciphersuite),
        Command::Client(args) => tokio::runtime::Runtime::new()?.block_on(client_cmd::run(args)),
        Command::Admin(args) => tokio::runtime::Runtime::new()?.block_on(client_cmd::admin(args)),
        Command::DevCa(args) => dev_ca(args),
        Command::Templates { name } => {
            room_policy::print_templates(name);
            Ok(())
        }
        Command::Conformance(args) => {
            // 0: no MUST check failed, 1: one did, 2: the run could not start.
            match tokio::runtime::Runtime::new()?.block_on(conformance_cmd::run(args)) {
                Ok(code) => std::process::exit(code),
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    std::process::exit(2)
                }
            }
        }
        #[cfg(feature = "dev-tools")]
        Command::Bench(args) => bench::run(args),
        Command::Content(ContentCommand::Decode { file, sender, room }) => {
            decode_content(&file, sender.as_deref(), room.as_deref())
        }
        Command::Uri { uri } => {
            let parsed = mimi_protocol::MimiUri::parse(&uri)
                .with_context(|| format!("invalid URI `{uri}`"))?;
            println!("uri:    {}", parsed.as_str());
            println!("kind:   {:?}", parsed.kind());
            println!("domain: {}", parsed.domain());
            if let Some(id) = parsed.id_decoded() {
                println!("id:     {id}");
            }
            Ok(())
        }
    }
}

fn decode_content(file: &PathBuf, sender: Option<&str>, room: Option<&str>) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let content =
        mimi_content::MimiContent::from_cbor(&bytes).context("not a valid MIMI content message")?;
    let again = content.to_cbor()?;
    if again != bytes {
        bail!("message does not re-encode to the same bytes");
    }
    println!("{content:#?}");
    let sender = sender
        .map(str::to_owned)
        .or_else(|| content.extensions.sender_uri().map(str::to_owned));
    let room = room
        .map(str::to_owned)
        .or_else(|| content.extensions.room_uri().map(str::to_owned));
    match (sender, room) {
        (Some(sender), Some(room)) => {
            let id = content.message_id(&sender, &room)?;
            println!("message id: {}", id.to_hex());
        }
        _ => println!("message id: unknown (give --sender and --room)"),
    }
    Ok(())
}

fn run_server(args: ServerArgs) -> anyhow::Result<()> {
    init_logs(args.json_logs);
    let mut config = mimi_server::config::ServerConfig::load(&args.config)?;
    if let Some(domain) = args.domain {
        config.domain = domain;
    }
    if let Some(addr) = args.federation_listen {
        config.federation.listen = addr;
    }
    if let Some(addr) = args.client_listen {
        config.client_api.listen = addr;
    }
    if let Some(url) = args.postgres {
        config.storage.postgres = Some(url);
    }
    config.validate()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let server = mimi_server::start(config).await?;
        println!(
            "mimi server for {} listening: federation {} client API {}",
            server.state.domain(),
            server.federation_addr,
            server.client_addr
        );
        tokio::signal::ctrl_c().await?;
        tracing::info!("shutting down");
        server.shutdown().await;
        Ok(())
    })
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn dev_ca(args: DevCaArgs) -> anyhow::Result<()> {
    use mimi_server::tls::DevCa;
    // It holds private keys and admin tokens.
    mimi_client::create_private_dir(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let out = std::fs::canonicalize(&args.out)?;
    if out.join("ca.pem").exists() && !args.replace {
        anyhow::bail!(
            "{} already holds a dev CA: running again would replace the CA and every \
             certificate, key, config and admin token there. Pass --replace to do that, \
             or choose another --out",
            out.display()
        );
    }
    let ca = DevCa::generate("mimi-rs development CA")?;
    std::fs::write(out.join("ca.pem"), ca.cert_pem())?;
    write_secret(&out.join("ca.key"), ca.key_pem())?;
    let ports: Vec<(String, u16, u16)> = args
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let federation = args.base_port + 2 * i as u16;
            (d.clone(), federation, federation + 1)
        })
        .collect();
    for (domain, federation, client) in &ports {
        mimi_protocol::uri::validate_domain(domain)
            .map_err(|e| anyhow::anyhow!("{domain}: {e}"))?;
        let id = ca.issue(domain)?;
        std::fs::write(out.join(format!("{domain}.pem")), &id.cert_chain_pem)?;
        write_secret(&out.join(format!("{domain}.key")), &id.key_pem)?;
        let mut peers = String::new();
        for (other, other_port, _) in &ports {
            if other != domain {
                peers.push_str(&format!("\"{other}\" = \"127.0.0.1:{other_port}\"\n"));
            }
        }
        let admin_token = random_token()?;
        let token_path = out.join(format!("{domain}.admin-token"));
        write_secret(&token_path, &format!("{admin_token}\n"))?;
        let config = format!(
            "domain = \"{domain}\"\ndata_dir = \"{data}\"\n\n[federation]\nlisten = \"127.0.0.1:{federation}\"\n\n[client_api]\nlisten = \"127.0.0.1:{client}\"\nopen_registration = true\n# Also in {token}: `mimi admin --token-file {token}`.\nadmin_token = \"{admin_token}\"\n\n[tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n\n# Every provider is on loopback: the hub's download proxy may connect there.\n[assets]\nallow_private_addresses = true\n\n[peers]\n{peers}",
            data = out.join(format!("{domain}-data")).display(),
            ca = out.join("ca.pem").display(),
            cert = out.join(format!("{domain}.pem")).display(),
            key = out.join(format!("{domain}.key")).display(),
            token = token_path.display(),
        );
        // The config holds the admin token.
        write_secret(&out.join(format!("{domain}.toml")), &config)?;
        println!(
            "{domain}: {}/{domain}.toml (federation 127.0.0.1:{federation}, client API 127.0.0.1:{client}), admin token in {}",
            out.display(),
            token_path.display()
        );
    }
    println!("CA: {}/ca.pem", out.display());
    Ok(())
}

/// 32 random bytes, hex: a dev provider's admin token.
fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    mimi_server::tls::crypto_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no secure random numbers"))?;
    Ok(hex::encode(bytes))
}

/// Owner-only and atomic ([`mimi_client::write_private`]); a rerun
/// tightens a file of looser mode.
fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    mimi_client::write_private(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(feature = "dev-tools")]
fn run_demo(dir: Option<PathBuf>, ciphersuite: mimi_client::Ciphersuite) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => tmp.path().to_owned(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    match runtime.block_on(demo::run(&dir, ciphersuite)) {
        Ok(()) => {
            println!("\nDemo finished: all checks passed.");
            Ok(())
        }
        Err(e) => {
            println!("\nDemo FAILED: {e:#}");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand and argument explains itself in `--help`.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "mimi", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:?}");
    }
}
