//! `server`: runs the chat. Settings come from flags, `CHAT_*` environment variables and an
//! optional TOML file (see the README); Ctrl-C or SIGTERM shuts it down gracefully.
//! Subcommands administer the data directory (`server --help`, and the README).

use clap::Parser;
use server::{
    no_transparent_huge_pages,
    settings::{Cli, Settings},
    shutdown_signal, Application,
};
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

/// mimalloc rather than glibc's malloc: allocation was ~17 % of the server's CPU in the
/// closed-loop profile, and with it the server delivers 12-20 % more and holds less memory
/// per socket (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let huge_pages = no_transparent_huge_pages();
    let open_files = server::listen::raise_open_file_limit();
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let settings = Settings::load(cli)?;
    if let Some(command) = command.filter(|c| !matches!(c, server::admin::cli::Command::Serve)) {
        // Quiet unless something goes wrong: the command prints its own answer, or why it
        // could not (one line, not an error chain: the reason is the message).
        tracing_subscriber::registry()
            .with(EnvFilter::try_new("warn")?)
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .with(server::db::ClosedEngineNoise)
            .init();
        match server::admin::cli::run(command, &settings).await {
            Ok(answer) => {
                println!("{answer}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    tracing_subscriber::registry()
        .with(EnvFilter::try_new(&settings.log)?)
        .with(tracing_subscriber::fmt::layer())
        .with(server::db::ClosedEngineNoise)
        .init();
    if let Err(e) = huge_pages {
        tracing::warn!(error = %e, "cannot turn transparent huge pages off: latency will suffer");
    }
    server::listen::log_open_file_limit(open_files);
    let app = Application::build(settings).await?;
    app.run(shutdown_signal()).await?;
    // Everything is closed and the database has finished its shutdown. Exit now rather than
    // tear the runtime down: the storage engine's leftover handles would be dropped outside
    // it and log a spurious warning about not being able to close (they already have).
    std::process::exit(0)
}
