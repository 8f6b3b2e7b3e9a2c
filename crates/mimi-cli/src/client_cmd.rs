//! `mimi client …`: one device talking to its provider's client API
//! (docs/client-api.md). The device's MLS state lives in `--state`; where
//! its provider is, in a small JSON file beside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use mimi_client::http::{Client, ClientError, ProviderConnection};
use mimi_client::{Ciphersuite, Device, Event, FrankStatus, content};
use mimi_content::MessageId;
use mimi_protocol::msgs::AbuseType;
use mimi_protocol::{MimiUri, MimiUriKind};
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct ClientArgs {
    /// The device's state file (created by `register`, owner-only): its
    /// MLS keys and rooms. Beside it, `<state>.session.json` holds its
    /// token and `<state>.provider.json` where its provider is.
    #[arg(long, short)]
    state: PathBuf,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a new device with its provider and publish KeyPackages.
    Register {
        /// Device URI, mimi://<domain>/d/<user>/<device>.
        #[arg(long, value_parser = device_uri)]
        device: String,
        #[command(flatten)]
        endpoint: Endpoint,
        /// Overwrite an existing state file at --state: the device it
        /// holds, with its keys and rooms, is lost.
        #[arg(long)]
        replace_state: bool,
        /// Re-register a device id the provider already has: it gets a
        /// new token and the state file that had the old one stops
        /// working. Authorised by the token in --state when that file
        /// holds this device, else by the admin token (--token-file or
        /// MIMI_ADMIN_TOKEN).
        #[arg(long)]
        replace_device: bool,
        /// File holding the provider's admin token, for --replace-device
        /// (default: the MIMI_ADMIN_TOKEN environment variable).
        #[arg(long, requires = "replace_device")]
        token_file: Option<PathBuf>,
        /// KeyPackages to publish.
        #[arg(long, default_value_t = 5)]
        key_packages: usize,
        /// The device's MLS cipher suite, for its KeyPackages, the rooms
        /// it creates and its requests: 0x0001, 0x0002 (P-256), 0x0003, or
        /// the suite's RFC 9420 name. Kept in the state file.
        #[arg(long, default_value = "0x0001", value_parser = parse_ciphersuite)]
        ciphersuite: Ciphersuite,
    },
    /// Publish more KeyPackages.
    Publish {
        /// How many (one last-resort KeyPackage is added).
        #[arg(default_value_t = 5)]
        count: usize,
    },
    /// List the rooms this device is in.
    Rooms,
    /// Create a room hosted by this device's provider, with the default
    /// roles, a template of room-policy §Role examples, or a policy file.
    Create {
        /// Room URI, mimi://<this provider's domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// One of `mimi templates`: cooperative, strict, moderated,
        /// multi-org.
        #[arg(long, conflicts_with = "policy")]
        template: Option<mimi_room::policy::templates::Template>,
        /// A TOML policy file (docs/walkthrough.md "Room policy"): a
        /// template, participants listed from the start, preauthorized
        /// users and the base room policy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// A direct message with this user: a fixed-membership room for
        /// the two of you (only one per pair on a hub).
        #[arg(long, value_parser = user_uri, conflicts_with_all = ["template", "policy"])]
        dm: Option<String>,
        /// Let holders of a join link in (`link create`): users not in
        /// the room may use join codes (docs/divergences.md C27).
        #[arg(long, conflicts_with = "dm")]
        join_links: bool,
        /// With --join-links: each link admits one user only.
        #[arg(long, requires = "join_links")]
        single_use_links: bool,
        /// With --join-links: links expire at most this many seconds
        /// after their creation (0: links need not expire).
        #[arg(long, requires = "join_links", default_value_t = 0)]
        link_expiration: u32,
    },
    /// Add a user (all their devices) to a room.
    Add {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// User URI, mimi://<domain>/u/<name>.
        #[arg(value_parser = user_uri)]
        user: String,
        /// Role index (default roles: 2 member, 3 moderator, 4 admin).
        #[arg(long, default_value_t = 2)]
        role: u32,
    },
    /// Remove a user from a room.
    Remove {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// User URI, mimi://<domain>/u/<name>.
        #[arg(value_parser = user_uri)]
        user: String,
    },
    /// Leave a room (another member commits the departure).
    Leave {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
    },
    /// Commit proposals queued by others (e.g. somebody's leave).
    Commit {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
    },
    /// Change a participant's role (room-policy §Role Changes): to 1 to
    /// ban (their clients are removed in the same commit), from 1 to
    /// unban; your own role only to the one your preauthorization gives.
    Role {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// User URI, mimi://<domain>/u/<name>.
        #[arg(value_parser = user_uri)]
        user: String,
        /// The new role index (`policy` lists the room's roles).
        role: u32,
    },
    /// Change the room's metadata (-06 §7.6); only the fields given
    /// change, and each needs its capability (canChangeRoomName, …).
    Metadata {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The room's name.
        #[arg(long)]
        name: Option<String>,
        /// The room's subject.
        #[arg(long)]
        subject: Option<String>,
        /// The room's mood.
        #[arg(long)]
        mood: Option<String>,
    },
    /// Show the room's policy in words: each role and what it may do,
    /// the participants and their roles, the membership rules and the
    /// other policy components (draft-ietf-mimi-room-policy).
    Policy {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
    },
    /// List, add or remove preauthorized users (room-policy
    /// §Preauthorized Users): users matching an entry may join by
    /// themselves with its role (`join`).
    Preauth {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        #[command(subcommand)]
        action: PreauthAction,
    },
    /// Join a room by external commit: a new device of a participant, a
    /// user the room preauthorizes or lets in (open join), or the holder
    /// of a join link (--link).
    Join {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri, required_unless_present = "link")]
        room: Option<String>,
        /// A join link (`link create` prints one).
        #[arg(long, conflicts_with = "room")]
        link: Option<String>,
        /// Ask to be added instead (an external proposal): the next
        /// commit of any member adds you, and `sync` then joins.
        #[arg(long, requires = "room", conflicts_with = "link")]
        ask: bool,
    },
    /// List, create or remove a room's join links (room-policy §Join Link
    /// policies component): whoever holds one may `join --link` with its
    /// role.
    Link {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        #[command(subcommand)]
        action: LinkAction,
    },
    /// Send a text message, or a file with `--file` (the text is then its
    /// caption): the file is encrypted with a fresh key, uploaded to this
    /// device's provider, and sent as an ExternalPart
    /// (draft-ietf-mimi-content §Attachments).
    Send {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The message text (plain text); with `--file`, the caption.
        #[arg(required_unless_present = "file", default_value = "")]
        text: String,
        /// Attach this file.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The file's media type (default: guessed from its extension).
        #[arg(long, value_name = "TYPE", requires = "file")]
        media_type: Option<String>,
        /// Send it as a reply to this message (hex ID, as `read` prints it).
        #[arg(long, value_parser = message_id)]
        reply_to: Option<MessageId>,
        /// Receivers drop the message this many seconds after reading it
        /// (draft-ietf-mimi-content "expires", relative).
        #[arg(long, value_name = "SECONDS")]
        expires_in: Option<u32>,
    },
    /// Download and decrypt the attachment(s) of a message, through this
    /// device's provider and the room's hub (-06 §5.10 proxyDownload):
    /// the asset provider never sees this device.
    Download {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The message (hex ID, as `read` prints it).
        #[arg(value_parser = message_id)]
        message: MessageId,
        /// Where to write it: a file (one attachment) or a directory
        /// (default: the current directory, under the sender's file name).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// How: `proxy` (the provider asks the hub's proxyDownload), `ohttp`
        /// (Oblivious HTTP: the provider relays to the hub's Gateway and
        /// sees neither URL nor content) or `direct` (from the asset
        /// provider itself; it learns this device's address, -06 §5.10
        /// NOT RECOMMENDED).
        #[arg(long, default_value = "proxy", value_name = "PATH")]
        via: mimi_client::http::DownloadPath,
    },
    /// React to a message (a reaction part, draft-ietf-mimi-content).
    React {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The message reacted to (hex ID, as `read` prints it).
        #[arg(value_parser = message_id)]
        message: MessageId,
        /// The reaction, e.g. an emoji.
        reaction: String,
    },
    /// Take back an own reaction ("unlike", draft-ietf-mimi-content).
    Unreact {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The message that was reacted to (hex ID).
        #[arg(value_parser = message_id)]
        message: MessageId,
        /// The own reaction to take back (hex ID, as `read --raw` prints it).
        #[arg(value_parser = message_id)]
        reaction: MessageId,
    },
    /// Replace the text of an own message (receivers apply edits only from
    /// the original sender).
    Edit {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The own message to edit (hex ID).
        #[arg(value_parser = message_id)]
        message: MessageId,
        /// The new text.
        text: String,
    },
    /// Delete an own message (receivers show a tombstone; deletes apply
    /// only from the original sender).
    Delete {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The own message to delete (hex ID).
        #[arg(value_parser = message_id)]
        message: MessageId,
    },
    /// Fetch queued events and print the room's conversation: messages
    /// with their IDs and frank status, edits applied ("edited"), deletes
    /// and expired messages as placeholders, reply quotes, reaction counts,
    /// and edits or deletes that were not applied (draft-ietf-mimi-content).
    Read {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// Print the raw history instead: every message received or sent,
        /// edits, deletes and reactions as they arrived.
        #[arg(long)]
        raw: bool,
    },
    /// Report a message to the room's hub (-06 §5.9); the report carries
    /// the message and its verified frank.
    Report {
        /// Room URI, mimi://<hub domain>/r/<name>.
        #[arg(value_parser = room_uri)]
        room: String,
        /// The message ID (hex, as `read` prints it).
        #[arg(long)]
        message: String,
        /// AbuseType code (-06 §5.9 defines only 0).
        #[arg(long, default_value_t = 0)]
        reason: u8,
        /// A free-text note for the hub's operator.
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// `mimi admin …`: operator requests to a provider's client API.
#[derive(clap::Args)]
pub struct AdminArgs {
    #[command(flatten)]
    endpoint: Endpoint,
    /// File holding the admin token (`client_api.admin_token`); default:
    /// the MIMI_ADMIN_TOKEN environment variable.
    #[arg(long)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

/// `mimi client preauth …`.
#[derive(Subcommand)]
pub enum PreauthAction {
    /// Print the entries, numbered.
    List,
    /// Append an entry: users whose credential matches every claim given
    /// get `role` (the first matching entry wins).
    Add {
        /// Users of this provider domain.
        #[arg(long)]
        domain: Option<String>,
        /// This user (mimi://<domain>/u/<name>).
        #[arg(long, value_parser = user_uri)]
        user: Option<String>,
        /// The role index they get.
        #[arg(long)]
        role: u32,
    },
    /// Remove entry `index` (as `list` numbers them).
    Remove {
        /// The entry's number.
        index: usize,
    },
}

/// `mimi client link …`.
#[derive(Subcommand)]
pub enum LinkAction {
    /// Print the room's links.
    List,
    /// Create a link and print it. Only who may add a user with the role
    /// may create a link for it.
    Create {
        /// The role index its holders get (default roles: 2 member).
        #[arg(long, default_value_t = 2)]
        role: u32,
        /// Seconds the link stays valid (default: as long as the room's
        /// policy allows).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// Remove a link: nobody joins with it any more.
    Remove {
        /// The link, as `list` prints it.
        link: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// List the abuse reports the hub verified and stored (-06 §5.9).
    Reports {
        /// Print the JSON the provider returns.
        #[arg(long)]
        json: bool,
    },
    /// Fanout events a follower refused permanently (-06 §5.5), kept
    /// aside so the rest of their room's events are delivered.
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// List them, oldest first.
    List {
        /// At most this many (the provider caps it).
        #[arg(long)]
        limit: Option<u32>,
        /// Print the JSON the provider returns.
        #[arg(long)]
        json: bool,
    },
    /// Put one back into the outbox, due now (once the follower accepts it).
    Retry {
        /// The dead letter's id, as listed.
        id: u64,
    },
    /// Drop one: the event is never delivered to that follower.
    Drop {
        /// The dead letter's id, as listed.
        id: u64,
    },
}

/// The admin token from `file`, else from MIMI_ADMIN_TOKEN.
fn admin_token(file: Option<&Path>) -> anyhow::Result<String> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the admin token file {}", path.display()))?,
        None => std::env::var("MIMI_ADMIN_TOKEN").map_err(|_| {
            anyhow::anyhow!("no admin token: pass --token-file or set MIMI_ADMIN_TOKEN")
        })?,
    };
    let token = token.trim();
    if token.is_empty() {
        match file {
            Some(path) => bail!("the admin token file {} is empty", path.display()),
            None => bail!("MIMI_ADMIN_TOKEN is empty"),
        }
    }
    Ok(token.to_owned())
}

pub async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let endpoint = args.endpoint;
    admin_inner(&endpoint, args.token_file.as_deref(), args.command)
        .await
        .map_err(|e| explain(e, |dns| endpoint_hint(&endpoint, None, dns)))
}

async fn admin_inner(
    endpoint: &Endpoint,
    token_file: Option<&Path>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let token = admin_token(token_file)?;
    let connection = connect(endpoint)?.with_token(token);
    match command {
        AdminCommand::Reports { json } => {
            let reports = connection.admin_reports().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
                return Ok(());
            }
            if reports.is_empty() {
                println!("no abuse reports");
            }
            for r in reports {
                println!(
                    "#{} [{}] {}: {} reports {} (via {}), reason {}, {} message(s), franks {}: {}",
                    r.id,
                    r.received_at_ms,
                    r.room_id,
                    if r.reporting_user.is_empty() {
                        "anonymous"
                    } else {
                        &r.reporting_user
                    },
                    r.alleged_abuser,
                    r.source_provider,
                    r.reason_code,
                    r.messages,
                    if r.franks_verified {
                        "verified"
                    } else {
                        "not verified"
                    },
                    r.note
                );
            }
        }
        AdminCommand::DeadLetters(DeadLetterCommand::List { limit, json }) => {
            let dead = connection.admin_dead_letters(limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&dead)?);
                return Ok(());
            }
            if dead.is_empty() {
                println!("no dead letters");
            }
            for d in dead {
                let status = d
                    .status
                    .map_or_else(|| "refused by this hub".to_owned(), |s| s.to_string());
                println!(
                    "#{} [{}] {} seq {} to {}: {} {:?}",
                    d.id, d.dead_at_ms, d.room_id, d.seq, d.destination, status, d.answer
                );
            }
        }
        AdminCommand::DeadLetters(DeadLetterCommand::Retry { id }) => {
            let outbox_id = connection.admin_retry_dead_letter(id).await?;
            println!("dead letter #{id} is back in the outbox as row {outbox_id}");
        }
        AdminCommand::DeadLetters(DeadLetterCommand::Drop { id }) => {
            connection.admin_drop_dead_letter(id).await?;
            println!("dead letter #{id} dropped");
        }
    }
    Ok(())
}

/// Where a provider's client API is; kept beside a device's state.
#[derive(clap::Args, Serialize, Deserialize)]
struct Endpoint {
    /// The provider's client API URL, e.g. https://a.example:18444: its
    /// host names the provider (TLS server name and Host header).
    #[arg(long)]
    provider: String,
    /// CA certificate (PEM) of the provider (default: the system's roots).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// IP:port to connect to instead of resolving the provider URL's host;
    /// when given, it alone decides the address and port.
    #[arg(long)]
    connect: Option<SocketAddr>,
}

fn endpoint_path(state: &Path) -> PathBuf {
    let mut name = state
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".provider.json");
    state.with_file_name(name)
}

fn connect(endpoint: &Endpoint) -> anyhow::Result<ProviderConnection> {
    let ca = endpoint
        .ca
        .as_ref()
        .map(std::fs::read)
        .transpose()
        .context("reading the CA certificate")?;
    Ok(ProviderConnection::new(
        &endpoint.provider,
        ca.as_deref(),
        endpoint.connect,
    )?)
}

fn load_endpoint(state: &Path) -> anyhow::Result<Endpoint> {
    let path = endpoint_path(state);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no device at {} (run `mimi client register` first)",
            state.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// What to tell a user whose provider could not be reached: where the
/// address came from and how to set it.
fn endpoint_hint(endpoint: &Endpoint, state: Option<&Path>, name_unresolved: bool) -> String {
    let host = url_host(&endpoint.provider);
    let set_connect = match state {
        None => "give its address with --connect IP:port".to_owned(),
        Some(state) => format!(
            "set its address (\"IP:port\") as `connect` in {}",
            endpoint_path(state).display()
        ),
    };
    match &endpoint.connect {
        Some(addr) => {
            format!("nothing answered at {addr} (`connect`); is the provider running there?")
        }
        None if name_unresolved => {
            format!("`{host}` does not resolve; if the provider runs elsewhere, {set_connect}")
        }
        None => format!(
            "is the provider running at {}? if `{host}` does not lead to it, {set_connect}",
            endpoint.provider
        ),
    }
}

/// The host of a URL, for messages.
fn url_host(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Adds a hint (given whether the name did not resolve) to an error that
/// means the provider was not reached.
fn explain(e: anyhow::Error, hint: impl Fn(bool) -> String) -> anyhow::Error {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Unreachable {
            name_unresolved, ..
        }) => {
            let hint = hint(*name_unresolved);
            anyhow::anyhow!("{e}\nhint: {hint}")
        }
        _ => e,
    }
}

/// A URI argument of `kind`, validated and normalised by
/// [`MimiUri::parse`] so every command names things the same way.
fn uri_of_kind(text: &str, kind: MimiUriKind, shape: &str) -> Result<String, String> {
    let uri = MimiUri::parse(text).map_err(|e| format!("{e} (expected {shape})"))?;
    if uri.kind() != kind {
        return Err(format!(
            "{text} is a {:?} URI, expected {shape}",
            uri.kind()
        ));
    }
    Ok(uri.as_str().to_owned())
}

/// A message ID as `read` prints it (64 hex digits).
/// A media type for a file by its extension; `application/octet-stream`
/// when unknown.
fn guess_media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Where `download` writes attachment `index`: `out` itself for a single
/// attachment unless it is a directory; else the sender's file name
/// (its last path component only, so a name cannot climb out of the
/// directory) or `attachment-N`.
fn attachment_path(out: Option<&Path>, filename: &str, index: usize, single: bool) -> PathBuf {
    if let Some(out) = out
        && single
        && !out.is_dir()
    {
        return out.to_owned();
    }
    let name = Path::new(filename)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| format!("attachment-{index}"));
    out.unwrap_or(Path::new(".")).join(name)
}

fn message_id(text: &str) -> Result<MessageId, String> {
    MessageId::from_hex(text).ok_or_else(|| format!("`{text}` is not a hex message ID"))
}

fn room_uri(text: &str) -> Result<String, String> {
    uri_of_kind(text, MimiUriKind::Room, "mimi://<domain>/r/<room>")
}

fn user_uri(text: &str) -> Result<String, String> {
    uri_of_kind(text, MimiUriKind::User, "mimi://<domain>/u/<user>")
}

fn device_uri(text: &str) -> Result<String, String> {
    uri_of_kind(
        text,
        MimiUriKind::Device,
        "mimi://<domain>/d/<user>/<device>",
    )
}

/// A `--ciphersuite` value ([`mimi_client::parse_ciphersuite`]).
pub fn parse_ciphersuite(text: &str) -> Result<Ciphersuite, String> {
    mimi_client::parse_ciphersuite(text).map_err(|e| e.to_string())
}

/// `mimi client register`'s arguments.
struct Registration {
    device: String,
    replace_state: bool,
    replace_device: bool,
    token_file: Option<PathBuf>,
    key_packages: usize,
    ciphersuite: Ciphersuite,
}

/// What an existing state file holds.
struct ExistingState {
    /// Its device's URI and room count, when the file can be read.
    device: Option<(String, usize)>,
    /// The device's token, from the session file.
    token: Option<String>,
}

fn existing_state(state: &Path) -> Option<ExistingState> {
    let session = mimi_client::http::session_path(state);
    if ![state, &session, &endpoint_path(state)]
        .iter()
        .any(|f| f.exists())
    {
        return None;
    }
    // Read without the owner-only check: this only describes the files.
    let device = std::fs::read(state)
        .ok()
        .and_then(|b| Device::from_bytes(&b).ok())
        .map(|d| (d.device_uri().as_str().to_owned(), d.rooms().len()));
    let token = std::fs::read_to_string(&session)
        .ok()
        .and_then(|t| serde_json::from_str::<mimi_client::http::SessionState>(&t).ok())
        .map(|s| s.token);
    Some(ExistingState { device, token })
}

async fn register(state: &Path, endpoint: &Endpoint, r: Registration) -> anyhow::Result<()> {
    let mut own_token = None;
    if let Some(existing) = existing_state(state) {
        if !r.replace_state {
            let what = match &existing.device {
                Some((uri, rooms)) => format!("the device {uri} ({rooms} room(s))"),
                None => "a device".to_owned(),
            };
            bail!(
                "{} already holds {what}; registering would overwrite it and its rooms would be \
                 lost. Pass --replace-state to overwrite it, or choose another --state file",
                state.display()
            );
        }
        // The old file's token may replace its own device only.
        if existing.device.is_some_and(|(uri, _)| uri == r.device) {
            own_token = existing.token;
        }
    }
    // Before registering: a device registered without its state saved
    // could only be recovered with --replace-device.
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        mimi_client::create_private_dir(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut connection = connect(endpoint)?;
    if r.replace_device {
        // An admin token file given explicitly wins over the old token.
        let token = match own_token.filter(|_| r.token_file.is_none()) {
            Some(token) => token,
            None => admin_token(r.token_file.as_deref()).context(
                "--replace-device needs the device's current token (a state file of this \
                 device at --state, with --replace-state) or the admin token",
            )?,
        };
        connection = connection.with_token(token);
    }
    let mut client =
        match Client::register_device(&r.device, connection, r.ciphersuite, r.replace_device).await
        {
            Err(ClientError::DeviceExists { device, .. }) => bail!(
                "the provider already has the device {device}; registering it again gives it a \
                 new token and the state file that has the old one stops working. Pass \
                 --replace-device to do that (or choose another device id)"
            ),
            other => other?,
        };
    client.save(state)?;
    mimi_client::write_private(
        &endpoint_path(state),
        serde_json::to_string_pretty(endpoint)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", endpoint_path(state).display()))?;
    let n = client.publish_key_packages(r.key_packages).await?;
    println!(
        "registered {} on cipher suite {:#06x}; published {n} KeyPackages",
        r.device, r.ciphersuite as u16
    );
    Ok(())
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let state = args.state;
    if let ClientCommand::Register {
        device,
        endpoint,
        replace_state,
        replace_device,
        token_file,
        key_packages,
        ciphersuite,
    } = args.command
    {
        let hint = |dns| endpoint_hint(&endpoint, None, dns);
        let registration = Registration {
            device,
            replace_state,
            replace_device,
            token_file,
            key_packages,
            ciphersuite,
        };
        return register(&state, &endpoint, registration)
            .await
            .map_err(|e| explain(e, hint));
    }
    let endpoint = load_endpoint(&state)?;
    let hint = |dns| endpoint_hint(&endpoint, Some(&state), dns);
    run_device(&state, &endpoint, args.command)
        .await
        .map_err(|e| match e.downcast_ref::<ClientError>() {
            // The device's token was replaced (or the provider lost it).
            Some(ClientError::Refused { status: 401, .. }) => anyhow::anyhow!(
                "{e}\nhint: the provider no longer accepts the token in {}; if the device was \
                 registered again elsewhere (--replace-device), use that state file, or register \
                 it anew here with --replace-state --replace-device",
                mimi_client::http::session_path(&state).display()
            ),
            _ => explain(e, hint),
        })
}

async fn run_device(
    state: &Path,
    endpoint: &Endpoint,
    command: ClientCommand,
) -> anyhow::Result<()> {
    let mut client = Client::load(state, connect(endpoint)?)?;
    print_events(&client.sync().await?);
    match command {
        ClientCommand::Register { .. } => unreachable!("handled above"),
        ClientCommand::Publish { count } => {
            println!("published {}", client.publish_key_packages(count).await?)
        }
        ClientCommand::Rooms => {
            for (room, status) in client.device.rooms() {
                let epoch = client
                    .device
                    .epoch(&room)
                    .map(|e| e.to_string())
                    .unwrap_or_else(|_| "-".into());
                println!("{room}\t{status:?}\tepoch {epoch}");
            }
        }
        ClientCommand::Create {
            room,
            template,
            policy,
            dm,
            join_links,
            single_use_links,
            link_expiration,
        } => {
            let mut options = match (template, policy, dm) {
                (Some(t), _, _) => crate::room_policy::from_template(t, &room)?,
                (_, Some(file), _) => crate::room_policy::from_file(&file, &room)?,
                (_, _, Some(user)) => crate::room_policy::direct_message(&user),
                _ => mimi_client::RoomOptions::default(),
            };
            if join_links {
                options = options.with_join_links(mimi_protocol::components::JoinLinkPolicy {
                    on_request: false,
                    join_link: Default::default(),
                    multiuser: !single_use_links,
                    expiration: link_expiration,
                });
            }
            client.create_room_with(&room, options).await?;
            println!("created {room}");
        }
        ClientCommand::Role { room, user, role } => {
            client.set_role(&room, &user, role).await?;
            println!("{user} has role {role} in {room}");
        }
        ClientCommand::Metadata {
            room,
            name,
            subject,
            mood,
        } => {
            use mimi_protocol::components::{RoomMetaData, UTF8String, Uri};
            client.sync().await?;
            let mut metadata = client.device.room_metadata(&room)?.unwrap_or(RoomMetaData {
                room_uri: Uri::new(&room),
                ..RoomMetaData::default()
            });
            let text = |t: String| UTF8String::new(t).map_err(|e| anyhow::anyhow!("{e}"));
            if let Some(name) = name {
                metadata.room_name = text(name)?;
            }
            if let Some(subject) = subject {
                metadata.room_subject = text(subject)?;
            }
            if let Some(mood) = mood {
                metadata.room_mood = text(mood)?;
            }
            client.set_room_metadata(&room, &metadata).await?;
            println!("metadata of {room} changed");
        }
        ClientCommand::Policy { room } => {
            client.sync().await?;
            print_policy(&client.device, &room)?;
        }
        ClientCommand::Preauth { room, action } => {
            client.sync().await?;
            preauth(&mut client, &room, action).await?;
        }
        ClientCommand::Add { room, user, role } => {
            client.add_user(&room, &user, role).await?;
            println!("added {user} to {room}");
        }
        ClientCommand::Remove { room, user } => {
            client.remove_user(&room, &user).await?;
            println!("removed {user} from {room}");
        }
        ClientCommand::Leave { room } => {
            client.leave(&room).await?;
            println!("leaving {room}: proposals sent, the next commit completes it");
        }
        ClientCommand::Commit { room } => {
            client.commit_pending(&room).await?;
            println!("committed pending proposals in {room}");
        }
        ClientCommand::Join {
            room: Some(room),
            ask: true,
            ..
        } => {
            client.ask_to_join(&room).await?;
            println!("asked to join {room}; a member's next commit adds you");
        }
        ClientCommand::Join { room, link, .. } => {
            let room = match (room, link) {
                (_, Some(link)) => client.join_by_link(&link).await?,
                (Some(room), None) => {
                    client.join(&room).await?;
                    room
                }
                (None, None) => bail!("give a room or --link"),
            };
            println!("joined {room} at epoch {}", client.device.epoch(&room)?);
        }
        ClientCommand::Link { room, action } => {
            client.sync().await?;
            match action {
                LinkAction::List => {
                    let links = client.device.join_links(&room)?;
                    if links.is_empty() {
                        println!("no join links in {room}");
                    }
                    for link in links {
                        println!("{link}");
                    }
                }
                LinkAction::Create { role, expires_in } => {
                    let link = client
                        .create_join_link(
                            &room,
                            role,
                            expires_in.map(std::time::Duration::from_secs),
                        )
                        .await?;
                    println!("{link}");
                }
                LinkAction::Remove { link } => {
                    client.remove_join_link(&room, &link).await?;
                    println!("removed the link from {room}");
                }
            }
        }
        ClientCommand::Send {
            room,
            text,
            file: Some(path),
            media_type,
            ..
        } => {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let media_type = media_type.unwrap_or_else(|| guess_media_type(&path).to_owned());
            let filename = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Progress on stderr for files of a megabyte or more.
            let progress: Option<mimi_client::http::Progress> =
                (bytes.len() >= 1 << 20).then(|| -> mimi_client::http::Progress {
                    std::sync::Arc::new(|sent, total| {
                        eprint!("\ruploading {} / {} KiB", sent / 1024, total / 1024);
                        if sent == total {
                            eprintln!();
                        }
                    })
                });
            let id = client
                .send_file(&room, &bytes, &media_type, &filename, &text, progress)
                .await?;
            println!(
                "sent {} ({filename}, {media_type}, {} bytes)",
                id.to_hex(),
                bytes.len()
            );
        }
        ClientCommand::Download {
            room,
            message,
            out,
            via,
        } => {
            client.download_path = via;
            let parts = client.download_attachments(&room, &message).await?;
            let single = parts.len() == 1;
            for (i, (part, bytes)) in parts.into_iter().enumerate() {
                let path = attachment_path(out.as_deref(), &part.filename, i, single);
                std::fs::write(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!(
                    "{} ({}, {} bytes, hash and tag verified)",
                    path.display(),
                    part.content_type,
                    bytes.len()
                );
            }
        }
        ClientCommand::Send {
            room,
            text,
            reply_to,
            expires_in,
            ..
        } => {
            let mut message = match reply_to {
                Some(to) => content::reply(to, &text),
                None => content::text(&text),
            };
            message.expires = expires_in.map(|time| mimi_content::Expiration {
                relative: true,
                time,
            });
            let id = client.send(&room, message).await?;
            println!("sent {}", id.to_hex());
        }
        ClientCommand::React {
            room,
            message,
            reaction,
        } => {
            let id = client
                .send(&room, content::reaction(message, &reaction))
                .await?;
            println!("sent {}", id.to_hex());
        }
        ClientCommand::Unreact {
            room,
            message,
            reaction,
        } => {
            let id = client
                .send(&room, content::unlike(reaction, message))
                .await?;
            println!("sent {}", id.to_hex());
        }
        ClientCommand::Edit {
            room,
            message,
            text,
        } => {
            let id = client.send(&room, content::edit(message, &text)).await?;
            println!("sent {}", id.to_hex());
        }
        ClientCommand::Delete { room, message } => {
            let id = client.send(&room, content::delete(message)).await?;
            println!("sent {}", id.to_hex());
        }
        ClientCommand::Read { room, raw: true } => {
            for m in client.device.history(&room)? {
                let text = match &m.content.nested_part.part {
                    mimi_content::Part::Single(p) => {
                        String::from_utf8_lossy(&p.content).into_owned()
                    }
                    other => format!("{other:?}"),
                };
                println!(
                    "[{}] {} {}: {} ({})",
                    m.timestamp,
                    m.id.to_hex(),
                    m.sender_user,
                    text,
                    frank_text(&m.frank_status)
                );
            }
        }
        ClientCommand::Read { room, raw: false } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            print_conversation(&client.device.conversation(&room, now)?);
        }
        ClientCommand::Report {
            room,
            message,
            reason,
            note,
        } => {
            let id = MessageId::from_hex(&message)
                .with_context(|| format!("`{message}` is not a hex message ID"))?;
            client
                .report(&room, id, AbuseType { code: reason }, &note)
                .await?;
            println!("reported {message} in {room}");
        }
    }
    client.save(state)?;
    Ok(())
}

fn print_events(events: &[Event]) {
    for e in events {
        match e {
            Event::Joined { room, epoch } => println!("* joined {room} (epoch {epoch})"),
            Event::CommitApplied {
                room,
                epoch,
                added,
                removed,
                ..
            } => {
                println!("* {room}: epoch {epoch}, added {added:?}, removed {removed:?}")
            }
            Event::RemovedFromRoom { room, .. } => println!("* removed from {room}"),
            Event::ProposalQueued { room, proposer, .. } => {
                println!(
                    "* {room}: proposal queued by {}",
                    proposer.as_deref().unwrap_or("a server")
                )
            }
            Event::InvalidMessage { room, reason, .. } => {
                println!("* {room}: ignored an invalid message: {reason}")
            }
            _ => {}
        }
    }
}

fn frank_text(status: &FrankStatus) -> String {
    match status {
        FrankStatus::Verified => "franked".to_owned(),
        FrankStatus::Unfranked => "unfranked".to_owned(),
        FrankStatus::Invalid(reason) => format!("INVALID FRANK: {reason}"),
    }
}

/// `mimi client policy`: the room's policy in words.
fn print_policy(device: &Device, room: &str) -> anyhow::Result<()> {
    let policy = device.room_policy(room)?;
    println!("what each role of {room} may do:");
    print!(
        "{}",
        mimi_room::policy::templates::render_table(
            &mimi_room::policy::templates::capability_table(&policy.state.roles)
        )
    );
    println!("participants:");
    for p in &policy.state.participants.participants {
        let role = policy
            .state
            .roles
            .role(p.role_index)
            .map(|r| String::from_utf8_lossy(r.role_name.as_slice()).into_owned())
            .unwrap_or_else(|| "undefined".into());
        println!(
            "  {} {} ({role})",
            String::from_utf8_lossy(p.user.as_slice()),
            p.role_index
        );
    }
    for line in policy.describe() {
        println!("{line}");
    }
    Ok(())
}

/// `mimi client preauth`.
async fn preauth(client: &mut Client, room: &str, action: PreauthAction) -> anyhow::Result<()> {
    use mimi_protocol::components::PREAUTH_LIST;
    use mimi_protocol::components::room_policy::PreAuthRoleEntry;
    use tls_codec::Serialize as _;
    let policy = client.device.room_policy(room)?;
    let mut preauth = policy.state.preauth.clone();
    match action {
        PreauthAction::List => {
            if preauth.preauthorized_entries.is_empty() {
                println!("no preauthorized users in {room}");
            }
            for (i, entry) in preauth.preauthorized_entries.iter().enumerate() {
                let claims: Vec<String> = entry
                    .claimset
                    .iter()
                    .map(|c| {
                        format!(
                            "{}={}",
                            String::from_utf8_lossy(c.claim_id.id.as_slice()),
                            String::from_utf8_lossy(c.claim_value.as_slice())
                        )
                    })
                    .collect();
                println!(
                    "{i}: {} -> role {}",
                    if claims.is_empty() {
                        "everyone".to_owned()
                    } else {
                        claims.join(" and ")
                    },
                    entry.target_role.role_index
                );
            }
            return Ok(());
        }
        PreauthAction::Add { domain, user, role } => {
            let claimset = crate::room_policy::claimset(domain.as_deref(), user.as_deref());
            if claimset.is_empty() {
                bail!("give --domain, --user or both: an entry without claims lets everyone in");
            }
            let target_role = policy
                .state
                .roles
                .role(role)
                .cloned()
                .with_context(|| format!("{room} has no role {role} (see `policy`)"))?;
            preauth.preauthorized_entries.push(PreAuthRoleEntry {
                claimset,
                target_role,
            });
        }
        PreauthAction::Remove { index } => {
            if index >= preauth.preauthorized_entries.len() {
                bail!("{room} has no preauthorized entry {index} (see `preauth list`)");
            }
            preauth.preauthorized_entries.remove(index);
        }
    }
    client
        .update_component(room, PREAUTH_LIST, preauth.tls_serialize_detached()?)
        .await?;
    let n = preauth.preauthorized_entries.len();
    println!(
        "{room} now has {n} preauthorized entr{}",
        if n == 1 { "y" } else { "ies" }
    );
    Ok(())
}

/// What `read` shows of a body: the text, or a placeholder.
fn body_text(body: &mimi_client::conversation::Body) -> String {
    use mimi_client::conversation::{Body, display_text};
    match body {
        Body::Shown { content, .. } => display_text(content),
        Body::Deleted { .. } => "[deleted]".to_owned(),
        Body::Expired => "[expired]".to_owned(),
    }
}

/// One line per message (`[time] id sender: text (edited) (pending) (frank)`), with
/// its reply quote and reactions indented below it; then what was ignored.
fn print_conversation(conversation: &mimi_client::Conversation) {
    use mimi_client::conversation::Body;
    for m in &conversation.messages {
        let edited = match &m.body {
            Body::Shown {
                edited: Some(_), ..
            } => " (edited)",
            _ => "",
        };
        // Not yet echoed by the hub: its place may still move.
        let pending = if m.pending { " (pending)" } else { "" };
        println!(
            "[{}] {} {}: {}{edited}{pending} ({})",
            m.timestamp,
            m.id.to_hex(),
            m.sender_user,
            body_text(&m.body),
            frank_text(&m.frank_status)
        );
        if !m.policy_breaches.is_empty() {
            println!(
                "    breaks the room's policy: {}",
                m.policy_breaches.join("; ")
            );
        }
        if let Some(quote) = &m.in_reply_to {
            match &quote.target {
                Some(q) => println!(
                    "    in reply to {}: {}{}",
                    q.sender_user,
                    body_text(&q.body),
                    if q.newer_version {
                        " (edited since)"
                    } else {
                        ""
                    }
                ),
                None => println!(
                    "    in reply to {}: message not available",
                    quote.id.to_hex()
                ),
            }
        }
        if !m.reactions.is_empty() {
            let reactions: Vec<String> = m
                .reactions
                .iter()
                .map(|r| format!("{} {} ({})", r.reaction, r.count(), r.users.join(", ")))
                .collect();
            println!("    reactions: {}", reactions.join(", "));
        }
    }
    for i in &conversation.ignored {
        println!(
            "ignored {} from {}: {}",
            i.id.to_hex(),
            i.sender_user,
            i.reason
        );
    }
}
