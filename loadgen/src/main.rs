//! `loadgen`: drives a chat server through its real protocol. See `RELIABILITY.md`.
//!
//! ```text
//! loadgen crash --server-bin target/debug/server --kills 5
//! loadgen soak --server-bin target/release/server --seconds 600
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::process::Stop;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Drives a chat server through its real protocol (loopback only).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Kill and restart the server under load; check that no acknowledged message is lost.
    Crash {
        /// The server binary to run (on a fresh data directory of our own).
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 8)]
        senders: usize,
        #[arg(long, default_value_t = 5)]
        kills: usize,
        #[arg(long, value_enum, default_value_t = StopArg::Kill)]
        stop: StopArg,
        /// Reproduce an earlier run (its seed is printed).
        #[arg(long)]
        seed: Option<u64>,
        /// Shortest and longest time the server runs before each kill, in ms.
        #[arg(long, default_value_t = 300)]
        min_up_ms: u64,
        #[arg(long, default_value_t = 1500)]
        max_up_ms: u64,
    },
    /// Mixed traffic with reconnects for a bounded time; memory, order, loss and log checks.
    Soak {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 20)]
        users: usize,
        /// How long to run (bounded: at most one hour).
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
        /// Messages per second per user.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StopArg {
    Kill,
    Term,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crash {
            server_bin,
            senders,
            kills,
            stop,
            seed,
            min_up_ms,
            max_up_ms,
        } => {
            let seed = seed.unwrap_or_else(loadgen::fresh_seed);
            println!("crash run: {senders} senders, {kills} kills, seed {seed}");
            let report = loadgen::crash::run(loadgen::crash::Options {
                server_bin,
                senders,
                kills,
                stop: match stop {
                    StopArg::Kill => Stop::Kill,
                    StopArg::Term => Stop::Term,
                },
                seed,
                up_ms: (min_up_ms, max_up_ms.max(min_up_ms + 1)),
            })
            .await?;
            println!("kill  up(ms)  acknowledged  recovered  lost  restart(ms)");
            for k in &report.kills {
                println!(
                    "{:>4}  {:>6}  {:>12}  {:>9}  {:>4}  {:>11}",
                    k.kill, k.up_ms, k.acknowledged, k.recovered, k.lost, k.restart_ms
                );
            }
            let l = &report.last;
            println!(
                "final: {} acknowledged, {} recovered, {} lost, {} stored, {} refused, no duplicates, no gaps, unread consistent",
                l.acked, l.recovered, l.lost.len(), l.stored, report.refused
            );
            println!(
                "sockets the server closed: {} with 1001 (going away), {} without a close frame",
                report.clean_closes, report.abrupt_closes
            );
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "crash",
                    "seed": report.seed,
                    "kills": report.kills.len(),
                    "acknowledged": l.acked,
                    "recovered": l.recovered,
                    "lost": l.lost.len(),
                    "stored": l.stored,
                    "refused": report.refused,
                    "clean_closes": report.clean_closes,
                    "abrupt_closes": report.abrupt_closes,
                    "restart_ms_max": report.kills.iter().map(|k| k.restart_ms).max(),
                })
            );
        }
        Command::Soak {
            server_bin,
            users,
            seconds,
            rate,
            seed,
        } => {
            let seed = seed.unwrap_or_else(loadgen::fresh_seed);
            println!("soak run: {users} users, {rate} msg/s each, {seconds} s, seed {seed}");
            let r = loadgen::soak::run(loadgen::soak::Options {
                server_bin,
                users,
                duration: std::time::Duration::from_secs(seconds),
                rate,
                seed,
            })
            .await?;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "{:.0} s: {} acknowledged ({:.0}/s), {} delivered, {} connections; \
                 server RSS start {:.1} MiB, peak {:.1} MiB, end {:.1} MiB; \
                 0 lost, no duplicates, in order, unread consistent, no errors logged",
                r.seconds,
                r.acked,
                r.acked as f64 / r.seconds,
                r.delivered,
                r.connections,
                mib(r.rss_start_kib),
                mib(r.rss_peak_kib),
                mib(r.rss_end_kib),
            );
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "soak",
                    "seed": r.seed,
                    "seconds": r.seconds,
                    "acknowledged": r.acked,
                    "delivered": r.delivered,
                    "connections": r.connections,
                    "lost": r.findings.lost.len(),
                    "rss_start_kib": r.rss_start_kib,
                    "rss_peak_kib": r.rss_peak_kib,
                    "rss_end_kib": r.rss_end_kib,
                    "log_problems": r.log_problems.len(),
                })
            );
        }
    }
    Ok(())
}
