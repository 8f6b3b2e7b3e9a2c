//! `mimi client …`: one device talking to its provider's client API
//! (docs/client-api.md). The device's MLS state lives in `--state`; where
//! its provider is, in a small JSON file beside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use mimi_client::http::{Client, ProviderConnection};
use mimi_client::{Ciphersuite, Event, FrankStatus, content};
use mimi_content::MessageId;
use mimi_protocol::msgs::AbuseType;
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct ClientArgs {
    /// The device's state file (created by `register`).
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
        #[arg(long)]
        device: String,
        #[command(flatten)]
        endpoint: Endpoint,
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
        #[arg(default_value_t = 5)]
        count: usize,
    },
    /// List the rooms this device is in.
    Rooms,
    /// Create a room hosted by this device's provider.
    Create { room: String },
    /// Add a user (all their devices) to a room.
    Add {
        room: String,
        user: String,
        /// Role index (default roles: 2 member, 3 moderator, 4 admin).
        #[arg(long, default_value_t = 2)]
        role: u32,
    },
    /// Remove a user from a room.
    Remove { room: String, user: String },
    /// Leave a room (another member commits the departure).
    Leave { room: String },
    /// Commit proposals queued by others (e.g. somebody's leave).
    Commit { room: String },
    /// Join a room of this device's user by external commit.
    Join { room: String },
    /// Send a text message.
    Send { room: String, text: String },
    /// Fetch queued events and print the room's conversation: messages
    /// with their IDs and frank status, edits applied ("edited"), deletes
    /// and expired messages as placeholders, reply quotes, reaction counts,
    /// and edits or deletes that were not applied (draft-ietf-mimi-content).
    Read {
        room: String,
        /// Print the raw history instead: every message received or sent,
        /// edits, deletes and reactions as they arrived.
        #[arg(long)]
        raw: bool,
    },
    /// Report a message to the room's hub (-06 §5.9); the report carries
    /// the message and its verified frank.
    Report {
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

pub async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("MIMI_ADMIN_TOKEN")
            .context("no admin token: pass --token-file or set MIMI_ADMIN_TOKEN")?,
    };
    let connection = connect(&args.endpoint)?.with_token(token);
    match args.command {
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
    /// The provider's client API URL, e.g. https://a.example:18444.
    #[arg(long)]
    provider: String,
    /// CA certificate (PEM) of the provider.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Address to connect to instead of resolving the URL's host.
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

fn load(state: &Path) -> anyhow::Result<Client> {
    let text = std::fs::read_to_string(endpoint_path(state)).with_context(|| {
        format!(
            "no device at {} (run `mimi client register` first)",
            state.display()
        )
    })?;
    let endpoint: Endpoint = serde_json::from_str(&text)?;
    Ok(Client::load(state, connect(&endpoint)?)?)
}

/// A `--ciphersuite` value ([`mimi_client::parse_ciphersuite`]).
pub fn parse_ciphersuite(text: &str) -> Result<Ciphersuite, String> {
    mimi_client::parse_ciphersuite(text).map_err(|e| e.to_string())
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let state = args.state;
    if let ClientCommand::Register {
        device,
        endpoint,
        key_packages,
        ciphersuite,
    } = args.command
    {
        let mut client =
            Client::register_with_ciphersuite(&device, connect(&endpoint)?, ciphersuite).await?;
        client.save(&state)?;
        std::fs::write(
            endpoint_path(&state),
            serde_json::to_string_pretty(&endpoint)?,
        )?;
        let n = client.publish_key_packages(key_packages).await?;
        println!(
            "registered {device} on cipher suite {:#06x}; published {n} KeyPackages",
            ciphersuite as u16
        );
        return Ok(());
    }
    let mut client = load(&state)?;
    print_events(&client.sync().await?);
    match args.command {
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
        ClientCommand::Create { room } => {
            client.create_room(&room).await?;
            println!("created {room}");
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
        ClientCommand::Join { room } => {
            client.join(&room).await?;
            println!("joined {room} at epoch {}", client.device.epoch(&room)?);
        }
        ClientCommand::Send { room, text } => {
            let id = client.send(&room, content::text(&text)).await?;
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
    client.save(&state)?;
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

/// What `read` shows of a body: the text, or a placeholder.
fn body_text(body: &mimi_client::conversation::Body) -> String {
    use mimi_client::conversation::{Body, display_text};
    match body {
        Body::Shown { content, .. } => display_text(content),
        Body::Deleted { .. } => "[deleted]".to_owned(),
        Body::Expired => "[expired]".to_owned(),
    }
}

/// One line per message (`[time] id sender: text (edited) (frank)`), with
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
        println!(
            "[{}] {} {}: {}{edited} ({})",
            m.timestamp,
            m.id.to_hex(),
            m.sender_user,
            body_text(&m.body),
            frank_text(&m.frank_status)
        );
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
