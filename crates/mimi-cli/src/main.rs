//! The `mimi` command.

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
    /// Inspect MIMI content messages (draft-ietf-mimi-content).
    #[command(subcommand)]
    Content(ContentCommand),
    /// Parse and normalise a mimi:// identifier.
    Uri {
        /// The URI, e.g. mimi://a.example/u/alice
        uri: String,
    },
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
