//! `loadgen`: drives a chat server through its real protocol. See `RELIABILITY.md`.
//!
//! ```text
//! loadgen crash --server-bin target/debug/server --kills 5
//! loadgen soak --server-bin target/release/server --seconds 600
//! loadgen bench --server-bin target/release/server --users 200 --window 8 --seconds 20
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
    /// Closed-loop throughput and latency of the server, then of the in-process relay
    /// baseline, in the same run.
    Bench {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Messages each user keeps in flight.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Seconds per target (bounded: at most ten minutes).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
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
        Command::Bench {
            server_bin,
            users,
            window,
            seconds,
        } => {
            let mut reports = Vec::new();
            for target in [
                loadgen::bench::Target::Server(server_bin),
                loadgen::bench::Target::Relay,
            ] {
                reports.push(
                    loadgen::bench::run(loadgen::bench::Options {
                        target,
                        users,
                        window,
                        duration: std::time::Duration::from_secs(seconds),
                    })
                    .await?,
                );
            }
            let relay = reports[1].throughput.max(1.0);
            println!("closed loop: {users} users in pairs, window {window}, {seconds} s each");
            println!("target   delivered/s   vs relay   ack p50/p99 (us)   delivery p50/p99 (us)   server RSS");
            for r in &reports {
                println!(
                    "{:<7}  {:>11.0}   {:>7.1}%   {:>7} / {:<7}   {:>9} / {:<9}   {}",
                    r.target,
                    r.throughput,
                    100.0 * r.throughput / relay,
                    r.ack_us.p50,
                    r.ack_us.p99,
                    r.delivery_us.p50,
                    r.delivery_us.p99,
                    r.rss_kib
                        .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                );
            }
            let line: Vec<_> = reports
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "target": r.target,
                        "delivered_per_s": r.throughput,
                        "acked": r.acked,
                        "delivered": r.delivered,
                        "ack_p50_us": r.ack_us.p50,
                        "ack_p99_us": r.ack_us.p99,
                        "delivery_p50_us": r.delivery_us.p50,
                        "delivery_p99_us": r.delivery_us.p99,
                        "rss_kib": r.rss_kib,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "bench-closed-loop",
                    "users": users,
                    "window": window,
                    "seconds": seconds,
                    "ratio_to_relay": reports[0].throughput / relay,
                    "results": line,
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
