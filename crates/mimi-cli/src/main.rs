//! The `mimi` command.

use clap::Parser;

/// MIMI provider server, client and tools.
#[derive(Parser)]
#[command(name = "mimi", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
