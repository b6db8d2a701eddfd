//! `loadgen`: drives a chat server through its real protocol. See `RELIABILITY.md`.
//!
//! ```text
//! loadgen crash --server-bin target/debug/server --kills 5
//! loadgen soak --server-bin target/release/server --seconds 600
//! loadgen bench --server-bin target/release/server --users 200 --window 8 --seconds 20
//! ```

use clap::{Parser, Subcommand, ValueEnum};
use loadgen::process::Stop;
use std::{path::PathBuf, time::Duration};

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
    /// Nodes on the SurrealDB server CHAT_DB_URL names, with NATS and nginx, all started
    /// here: delivery across nodes, then nodes killed (SIGKILL) and NATS killed once under
    /// load; checks that nothing acknowledged is lost and no socket sees a repeat or gap.
    Cluster {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value = "nats-server")]
        nats_bin: PathBuf,
        #[arg(long, default_value = "nginx")]
        nginx_bin: PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 12)]
        senders: usize,
        #[arg(long, default_value_t = 5)]
        kills: usize,
        /// Seconds of sending with every node up, before the kills and after NATS is back.
        #[arg(long, default_value_t = 2)]
        steady_secs: u64,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Back up the running server (its binary's `backup`) while senders write, restore the
    /// backup into a new directory, and check that every message acknowledged before the
    /// backup began is there.
    Backup {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 16)]
        senders: usize,
        /// Seconds of load before the backup starts (and again after it ends); bounded.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Run on this data directory (e.g. from `generate-db`) instead of a new one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Throughput and latency of the server, then of the relay baselines (durable,
    /// then plain), in the same run: closed loop (a window per user), or open loop with `--rate`.
    Bench {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 200)]
        users: usize,
        /// Closed loop: messages each user keeps in flight.
        #[arg(long, default_value_t = 8)]
        window: usize,
        /// Open loop: messages per second, all users together (instead of a window).
        #[arg(long)]
        rate: Option<f64>,
        /// A mixed load: every n-th operation of a user is a change to its own last message
        /// (an edit, a reaction, the reaction taken back, in turn) instead of a message.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
        mix: Option<u64>,
        /// Seconds per target (bounded: at most ten minutes).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
        /// Also run the store-only ceiling (`server`'s `store_ceiling` example binary) for
        /// as long, and report the server against it.
        #[arg(long)]
        store_ceiling: Option<PathBuf>,
        /// Uploads of this many MB one after another for the whole server run, beside the
        /// messages (the baselines get none).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=256))]
        upload_mb: Option<u64>,
        /// Also run this many nodes on the SurrealDB server CHAT_DB_URL names, with NATS
        /// between them (each pair's users on different nodes), beside the single server.
        #[arg(long)]
        cluster_nodes: Option<usize>,
        #[arg(long, default_value = "nats-server")]
        nats_bin: PathBuf,
        #[arg(long, default_value = "nginx")]
        nginx_bin: PathBuf,
        /// Those uploads' pace in MB/s, as a client on a link of that speed (default: as
        /// fast as the server takes them).
        #[arg(long)]
        upload_mb_per_s: Option<f64>,
    },
    /// Upload throughput, and what an image's inspection and thumbnail add to its upload.
    Files {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        /// Size of the large uploads, in MB (bounded).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=256))]
        large_mb: u64,
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=50))]
        rounds: u64,
        /// Uploads of the ~5 MB JPEG (and of as many plain bytes).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=500))]
        samples: u64,
    },
    /// One room of many members, each on a socket of their own, and one of them posting at
    /// `--rate` posts a second, or as fast as the room takes it (`--window` posts not yet
    /// received by everyone); then the plain relay, the same room and load.
    Fanout {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        /// People in the room, the poster included (bounded by the open-file limit: each is
        /// a socket here and one in the target).
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(2..=20_000))]
        members: u64,
        /// Posts per second (instead of the window).
        #[arg(long)]
        rate: Option<f64>,
        /// Saturation: posts not yet received by every member.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1_000))]
        window: u64,
        /// Seconds of posting per target (bounded).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
        seconds: u64,
    },
    /// What permessage-deflate would make of the frames a room's members receive: real
    /// frames captured at a member's socket, compressed once per post (no context takeover)
    /// and per socket (context takeover); bytes on the wire and CPU per compression.
    Deflate {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        /// Messages posted and captured (bounded).
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        messages: u64,
        /// zlib's compression level.
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
        level: u32,
        /// The LZ77 window in bits (what `server_max_window_bits` would allow).
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15))]
        window_bits: u8,
    },
    /// Holds many authenticated idle sockets; memory per connection, beside the plain relay's.
    Idle {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        /// Sockets to hold (bounded; above ~20,000 the open-file limit must allow twice as
        /// many: `ulimit -n`, see BENCHMARKS.md).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=200_000))]
        connections: u64,
        /// Seconds to hold them before measuring and pinging each (bounded).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
        seconds: u64,
    },
    /// The relay baseline in a process of its own, until killed (the benchmarks start it, so
    /// that the relay never shares a runtime with the load and its CPU and memory are its own).
    #[command(hide = true)]
    Relay {
        /// A loopback address to listen on.
        #[arg(long)]
        addr: std::net::SocketAddr,
        /// Durable: append every message to this file (created) and sync it before the ack.
        #[arg(long)]
        journal: Option<PathBuf>,
    },
    /// Reconnect storms: half the users drop and resume at once, repeatedly, under traffic.
    Storm {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long, default_value_t = 200)]
        users: usize,
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        storms: u64,
        /// Seconds between storms.
        #[arg(long, default_value_t = 2.0)]
        every: f64,
        /// Messages per second each sender sends.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
    },
    /// Builds the storage benchmark's database through the protocol (see `storage`).
    GenerateDb {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        /// A new directory: the database goes to `DIR/data`, its layout to `DIR/layout.json`.
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        users: usize,
        #[arg(long, default_value_t = 10_000)]
        conversations: usize,
        #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
        messages: u64,
    },
    /// Start-up time, history pages and recent-conversations lists on a generated database.
    Storage {
        #[arg(long, env = "LOADGEN_SERVER_BIN")]
        server_bin: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        /// Requests of each kind (bounded).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        samples: u64,
        /// Times the server is started (start-up time is taken each time).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=20))]
        starts: u64,
        #[arg(long)]
        seed: Option<u64>,
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

/// Prints the machine's load before a run (`before`) and now, and the share of CPU time the
/// hypervisor took since `cpu`; returns that share.
fn print_machine(before: Option<&str>, cpu: Option<loadgen::CpuTimes>) -> Option<f64> {
    let steal = cpu.and_then(|c| c.steal_since());
    println!(
        "machine load (1/5/15 min) before: {}, after: {}; CPU time stolen by the hypervisor: {}",
        before.unwrap_or("-"),
        loadgen::machine_load().as_deref().unwrap_or("-"),
        steal.map_or("-".into(), |s| format!("{s:.1}%"))
    );
    steal
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Backup {
            server_bin,
            senders,
            seconds,
            data_dir,
        } => {
            let load = Duration::from_secs(seconds.clamp(1, 600));
            println!("backup under load: {senders} senders, {seconds} s before and after");
            let r = loadgen::backup::run(loadgen::backup::Options {
                server_bin,
                senders,
                before: load,
                after: load,
                data_dir,
            })
            .await?;
            println!("server said: {}", r.backup_said);
            println!(
                "acknowledged: {} before the backup began, {} while it ran, {} in all",
                r.acked_before, r.acked_during, r.acked_total
            );
            println!(
                "acknowledged per second: {:.0} before the backup, {:.0} while it ran; data directory {:.1} MB, backup {:.1} MB",
                r.rate_before,
                r.rate_during,
                r.data_bytes as f64 / 1e6,
                r.backup_bytes as f64 / 1e6
            );
            println!(
                "backup {} ms, restore {} ms; restored copy: {} of {} found at their seq, {} lost, {} stored, no duplicates, no gaps",
                r.backup_ms,
                r.restore_ms,
                r.restored.recovered,
                r.restored.acked,
                r.restored.lost.len(),
                r.restored.stored
            );
        }
        Command::Cluster {
            server_bin,
            nats_bin,
            nginx_bin,
            nodes,
            senders,
            kills,
            steady_secs,
            seed,
        } => {
            let seed = seed.unwrap_or_else(loadgen::fresh_seed);
            println!(
                "cluster run: {nodes} nodes, {senders} senders, {kills} node kills and one of NATS, seed {seed}"
            );
            let report = loadgen::cluster::run(loadgen::cluster::Options {
                server_bin,
                nats_bin,
                nginx_bin,
                nodes,
                senders,
                kills,
                seed,
                steady_secs,
            })
            .await?;
            println!(
                "steady: {} acknowledged with every node up",
                report.steady_acked
            );
            for (why, n) in &report.refusals {
                println!("refused {n} times: {why}");
            }
            for k in &report.kills {
                println!(
                    "killed node {} ({} acknowledged by then), back in {} ms",
                    k.node, k.acknowledged, k.restart_ms
                );
            }
            for (i, received, reconnects) in &report.watched {
                println!(
                    "watcher on node {i}: {received} messages live, in order, none twice; {reconnects} reconnections"
                );
            }
            let l = &report.last;
            print_final(l, report.refused);
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "cluster",
                    "seed": report.seed,
                    "kills": report.kills.len(),
                    "acknowledged": l.acked,
                    "lost": l.lost.len(),
                    "stored": l.stored,
                    "refused": report.refused,
                })
            );
        }
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
            print_final(l, report.refused);
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
            rate,
            mix,
            seconds,
            store_ceiling,
            upload_mb,
            upload_mb_per_s,
            cluster_nodes,
            nats_bin,
            nginx_bin,
        } => {
            let load = match rate {
                Some(per_second) => loadgen::bench::Load::Open { per_second },
                None => loadgen::bench::Load::Closed { window },
            };
            let machine = loadgen::machine_load();
            let cpu = loadgen::CpuTimes::now();
            let mut reports = Vec::new();
            let mut targets = vec![
                loadgen::bench::Target::Server(server_bin.clone()),
                loadgen::bench::Target::DurableRelay,
                loadgen::bench::Target::Relay,
            ];
            if let Some(nodes) = cluster_nodes {
                targets.push(loadgen::bench::Target::Cluster {
                    server_bin,
                    nats_bin,
                    nginx_bin,
                    nodes,
                });
            }
            for target in targets {
                reports.push(
                    loadgen::bench::run(loadgen::bench::Options {
                        target,
                        users,
                        load,
                        duration: std::time::Duration::from_secs(seconds),
                        changes_every: mix.map(|m| m as usize),
                        upload_mb,
                        upload_mb_per_s,
                    })
                    .await?,
                );
            }
            let (server, durable, relay) = (&reports[0], &reports[1], &reports[2]);
            let relay_per_s = relay.throughput.max(1.0);
            // Latency beside the baselines': how many times theirs.
            let times = |a: u64, b: u64| a as f64 / b.max(1) as f64;
            let ceiling = match &store_ceiling {
                Some(bin) => Some(loadgen::process::store_ceiling(bin, seconds).await?),
                None => None,
            };
            match load {
                loadgen::bench::Load::Closed { window } => println!(
                    "closed loop: {users} users in pairs, window {window}, {seconds} s each{}",
                    mix.map_or(String::new(), |m| format!(
                        "; the server's load mixed: every {m}th operation an edit or a reaction"
                    ))
                ),
                loadgen::bench::Load::Open { per_second } => println!(
                    "open loop: {users} users in pairs, {per_second} msg/s in all, {seconds} s each"
                ),
            }
            println!("target       delivered/s   vs relay   ack p50/p99 (us)   delivery p50/p99 (us)   CPU (cores)   server RSS");
            for r in &reports {
                println!(
                    "{:<10}  {:>11.0}   {:>7.1}%   {:>7} / {:<7}   {:>9} / {:<9}   {:>11}   {}",
                    r.target,
                    r.throughput,
                    100.0 * r.throughput / relay_per_s,
                    r.ack_us.p50,
                    r.ack_us.p99,
                    r.delivery_us.p50,
                    r.delivery_us.p99,
                    r.cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
                    r.rss_kib
                        .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                );
            }
            for r in &reports {
                if let Some(c) = r.commits {
                    println!(
                        "{}: {:.0} commits on all nodes, {:.0} of them met positions or ids already stored (mostly another node's batch) and went again ({:.1} %)",
                        r.target,
                        c.commits,
                        c.raced,
                        100.0 * c.raced / c.commits.max(1.0)
                    );
                }
            }
            println!(
                "server delivery p99: {:.1}x the durable relay's, {:.1}x the relay's (relay+sync: the relay with an fsync before each ack, shared by whatever arrived meanwhile)",
                times(server.delivery_us.p99, durable.delivery_us.p99),
                times(server.delivery_us.p99, relay.delivery_us.p99),
            );
            if let loadgen::bench::Load::Open { .. } = load {
                println!(
                    "the generator's own lateness (due time to frame written, in every latency above), p50/p99 us: {}",
                    reports
                        .iter()
                        .map(|r| format!("{} {} / {}", r.target, r.send_late_us.p50, r.send_late_us.p99))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if let Some(mb) = upload_mb {
                let rates = &server.uploads_mb_s;
                let mean = rates.iter().sum::<f64>() / rates.len().max(1) as f64;
                println!(
                    "beside the server's messages: {} uploads of {mb} MB one after another, {mean:.0} MB/s on average",
                    rates.len()
                );
            }
            if let Some(c) = ceiling {
                println!(
                    "store only  {c:>8.0}/s   (the server delivered {:.1}% of what the store alone makes durable)",
                    100.0 * server.throughput / c.max(1.0)
                );
            }
            let steal = print_machine(machine.as_deref(), cpu);
            let line: Vec<_> = reports
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "target": r.target,
                        "delivered_per_s": r.throughput,
                        "acked": r.acked,
                        "delivered": r.delivered,
                        "acked_per_s": r.acked as f64 / r.seconds,
                        "ack_p50_us": r.ack_us.p50,
                        "ack_p99_us": r.ack_us.p99,
                        "delivery_p50_us": r.delivery_us.p50,
                        "delivery_p99_us": r.delivery_us.p99,
                        "delivery_max_us": r.delivery_us.max,
                        "send_late_p50_us": r.send_late_us.p50,
                        "send_late_p99_us": r.send_late_us.p99,
                        "cpu_cores": r.cpu_cores,
                        "rss_kib": r.rss_kib,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "scenario": match load {
                        loadgen::bench::Load::Closed { .. } => "bench-closed-loop",
                        loadgen::bench::Load::Open { .. } => "bench-open-loop",
                    },
                    "users": users,
                    "window": matches!(load, loadgen::bench::Load::Closed { .. }).then_some(window),
                    "rate": rate,
                    "mix": mix,
                    "load_before": machine,
                    "load_after": loadgen::machine_load(),
                    "steal_percent": steal,
                    "seconds": seconds,
                    "ratio_to_relay": server.throughput / relay_per_s,
                    "ratio_to_durable_relay": server.throughput / durable.throughput.max(1.0),
                    "delivery_p99_vs_relay": times(server.delivery_us.p99, relay.delivery_us.p99),
                    "delivery_p99_vs_durable_relay": times(server.delivery_us.p99, durable.delivery_us.p99),
                    "store_ceiling_per_s": ceiling,
                    "ratio_to_store_ceiling": ceiling.map(|c| server.throughput / c.max(1.0)),
                    "results": line,
                })
            );
        }
        Command::Deflate {
            server_bin,
            messages,
            level,
            window_bits,
        } => {
            let r = loadgen::deflate::run(loadgen::deflate::Options {
                server_bin,
                messages: messages as usize,
                level,
                window_bits,
            })
            .await?;
            println!(
                "permessage-deflate on {} message frames captured at a member's socket (zlib level {}, window {} bits)",
                r.frames, r.level, r.window_bits
            );
            println!("way                                   bytes/frame on the wire   of plain   CPU per compression (us)");
            let pct = |b: f64| 100.0 * b / r.plain_bytes;
            println!("{:<37} {:>20.1} {:>10}", "plain", r.plain_bytes, "100.0%");
            println!(
                "{:<37} {:>20.1} {:>9.1}% {:>12.2} per post",
                "once per post (no context takeover)",
                r.once_bytes,
                pct(r.once_bytes),
                r.once_us
            );
            println!(
                "{:<37} {:>20.1} {:>9.1}% {:>12.2} per member and post",
                "per socket (context takeover)",
                r.per_socket_bytes,
                pct(r.per_socket_bytes),
                r.per_socket_us
            );
            println!(
                "a socket's compressor (context takeover) holds {:.0} bytes; every compressed message inflated back to the frame sent",
                r.per_socket_state_bytes
            );
            println!(
                "{}",
                serde_json::json!({ "scenario": "deflate", "report": r })
            );
        }
        Command::Fanout {
            server_bin,
            members,
            rate,
            window,
            seconds,
        } => {
            let machine = loadgen::machine_load();
            let cpu = loadgen::CpuTimes::now();
            let pace = match rate {
                Some(r) if r > 0.0 && r <= 100_000.0 => loadgen::fanout::Pace::Rate(r),
                Some(r) => anyhow::bail!("--rate {r}: between 0 and 100,000 posts a second"),
                None => loadgen::fanout::Pace::Window(window as usize),
            };
            println!(
                "fan-out: one room of {members} members, {}, {seconds} s per target",
                match pace {
                    loadgen::fanout::Pace::Rate(r) => format!("{r} posts/s"),
                    loadgen::fanout::Pace::Window(w) => format!("saturation (window {w})"),
                }
            );
            let reports = loadgen::fanout::run(loadgen::fanout::Options {
                server_bin,
                members: members as usize,
                pace,
                duration: Duration::from_secs(seconds),
            })
            .await?;
            let relay_per_s = reports[1].deliveries_per_second.max(1.0);
            println!("target   posts  deliveries/s  vs relay  all reached p50/p99 (ms)  delivery p50/p99 (ms)  CPU (cores)  loadgen CPU  RSS (MiB)  connect (s)");
            let ms = |us: u64| us as f64 / 1000.0;
            for r in &reports {
                println!(
                    "{:<7} {:>6} {:>13.0} {:>8.1}% {:>12.1} / {:<10.1} {:>9.1} / {:<10.1} {:>8.2} {:>12.2} {:>10.1} {:>11.1}",
                    r.target,
                    r.posts,
                    r.deliveries_per_second,
                    100.0 * r.deliveries_per_second / relay_per_s,
                    ms(r.all_reached_us.p50),
                    ms(r.all_reached_us.p99),
                    ms(r.delivery_us.p50),
                    ms(r.delivery_us.p99),
                    r.cpu_cores,
                    r.loadgen_cpu_cores,
                    r.rss_kib as f64 / 1024.0,
                    r.connect_seconds,
                );
            }
            println!(
                "every member received every acknowledged post once, in seq order (both targets)"
            );
            let steal = print_machine(machine.as_deref(), cpu);
            let line: Vec<_> = reports
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "target": r.target,
                        "posts": r.posts,
                        "deliveries": r.deliveries,
                        "seconds": r.seconds,
                        "deliveries_per_s": r.deliveries_per_second,
                        "all_reached_p50_us": r.all_reached_us.p50,
                        "all_reached_p99_us": r.all_reached_us.p99,
                        "delivery_p50_us": r.delivery_us.p50,
                        "delivery_p99_us": r.delivery_us.p99,
                        "cpu_cores": r.cpu_cores,
                        "loadgen_cpu_cores": r.loadgen_cpu_cores,
                        "rss_kib": r.rss_kib,
                        "connect_seconds": r.connect_seconds,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "fanout",
                    "members": members,
                    "rate": rate,
                    "window": rate.is_none().then_some(window),
                    "load_before": machine,
                    "load_after": loadgen::machine_load(),
                    "steal_percent": steal,
                    "ratio_to_relay": reports[0].deliveries_per_second / relay_per_s,
                    "results": line,
                })
            );
        }
        Command::Idle {
            server_bin,
            connections,
            seconds,
        } => {
            let machine = loadgen::machine_load();
            let r = loadgen::idle::run(loadgen::idle::Options {
                server_bin,
                connections: connections as usize,
                hold: std::time::Duration::from_secs(seconds),
            })
            .await?;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "{} idle authenticated sockets ({} users) opened in {:.1} s, all {} answered a ping after {seconds} s",
                r.connections, r.users, r.server.open_seconds, r.server.alive
            );
            println!(
                "server RSS before {:.1} MiB (runtime, database and its caches), with the sockets {:.1} MiB: {:.0} bytes per connection",
                mib(r.server.rss_before_kib),
                mib(r.server.rss_after_kib),
                r.bytes_per_connection()
            );
            println!(
                "plain relay (own process), same sockets: RSS before {:.1} MiB, with them {:.1} MiB: {:.0} bytes per connection; the server uses {:.2}x the relay's",
                mib(r.relay.rss_before_kib),
                mib(r.relay.rss_after_kib),
                r.relay_bytes_per_connection(),
                r.ratio_to_relay()
            );
            println!(
                "machine load before {}, after {}",
                machine.as_deref().unwrap_or("-"),
                loadgen::machine_load().as_deref().unwrap_or("-")
            );
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "idle",
                    "connections": r.connections,
                    "alive": r.server.alive,
                    "rss_before_kib": r.server.rss_before_kib,
                    "rss_after_kib": r.server.rss_after_kib,
                    "bytes_per_connection": r.bytes_per_connection(),
                    "open_seconds": r.server.open_seconds,
                    "relay_rss_before_kib": r.relay.rss_before_kib,
                    "relay_rss_after_kib": r.relay.rss_after_kib,
                    "relay_bytes_per_connection": r.relay_bytes_per_connection(),
                    "ratio_to_relay": r.ratio_to_relay(),
                })
            );
        }
        Command::Relay { addr, journal } => {
            let relay = loadgen::relay::Relay::start_on(addr, journal.as_deref()).await?;
            println!("relay listening on {}", relay.addr);
            // Until killed: the sockets are served by the runtime's tasks.
            std::future::pending::<()>().await;
        }
        Command::Storm {
            server_bin,
            users,
            storms,
            every,
            rate,
        } => {
            let r = loadgen::storm::run(loadgen::storm::Options {
                server_bin,
                users,
                storms: storms as usize,
                every: std::time::Duration::from_secs_f64(every.clamp(0.5, 60.0)),
                rate,
            })
            .await?;
            println!(
                "{} storms of {} sockets: {} reconnects, resume p50 {} us, p99 {} us, max {} us; \
                 {} messages delivered, each once, in order, no gaps",
                r.storms,
                r.pairs,
                r.reconnects,
                r.resume_us.p50,
                r.resume_us.p99,
                r.resume_us.max,
                r.delivered
            );
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "storm",
                    "storms": r.storms,
                    "sockets": r.pairs,
                    "reconnects": r.reconnects,
                    "resume_p50_us": r.resume_us.p50,
                    "resume_p99_us": r.resume_us.p99,
                    "resume_max_us": r.resume_us.max,
                    "delivered": r.delivered,
                    "lost": 0,
                })
            );
        }
        Command::GenerateDb {
            server_bin,
            dir,
            users,
            conversations,
            messages,
        } => {
            let g = loadgen::storage::generate(loadgen::storage::Generate {
                server_bin,
                dir,
                users,
                conversations,
                messages,
            })
            .await?;
            println!(
                "generated {} messages in {} conversations in {:.0} s",
                g.messages, g.conversations, g.seconds
            );
        }
        Command::Files {
            server_bin,
            large_mb,
            rounds,
            samples,
        } => {
            let r = loadgen::files::run(
                &server_bin,
                large_mb as usize,
                rounds as usize,
                samples as usize,
            )
            .await?;
            let mut rates = r.large_mb_s.clone();
            rates.sort_by(f64::total_cmp);
            println!(
                "uploads of {} MB: {} MB/s (median of {}; each {})",
                r.large_mb,
                rates.get(rates.len() / 2).map_or(0.0, |m| m.round()),
                rates.len(),
                rates
                    .iter()
                    .map(|m| format!("{m:.0}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let ms = |us: u64| us as f64 / 1000.0;
            println!(
                "a {:.1} MB JPEG of {}x{} px, upload to answer p50/p99: {:.1} / {:.1} ms; the same number of bytes that are no image: {:.1} / {:.1} ms; the image's inspection and thumbnail add {:.1} ms at the median; its thumbnail read back: {:.1} / {:.1} ms",
                r.jpeg_bytes as f64 / 1e6,
                r.jpeg_pixels.0,
                r.jpeg_pixels.1,
                ms(r.jpeg_us.p50),
                ms(r.jpeg_us.p99),
                ms(r.plain_us.p50),
                ms(r.plain_us.p99),
                ms(r.jpeg_us.p50.saturating_sub(r.plain_us.p50)),
                ms(r.thumbnail_get_us.p50),
                ms(r.thumbnail_get_us.p99),
            );
        }
        Command::Storage {
            server_bin,
            dir,
            samples,
            starts,
            seed,
        } => {
            let seed = seed.unwrap_or_else(loadgen::fresh_seed);
            let machine = loadgen::machine_load();
            let cpu = loadgen::CpuTimes::now();
            let m = loadgen::storage::measure(loadgen::storage::Measure {
                server_bin,
                dir,
                samples: samples as usize,
                starts: starts as usize,
                seed,
            })
            .await?;
            println!(
                "{} messages, {} conversations, {} users; {:.0} MiB on disk; seed {seed}",
                m.messages,
                m.conversations,
                m.users,
                m.disk_bytes as f64 / (1024.0 * 1024.0)
            );
            println!("start-up (spawn to /healthz), ms: {:?}", m.startup_ms);
            println!("request ({samples} each)             p50 (us)   p99 (us)   max (us)");
            for (name, p) in [
                ("newest history page (50)", m.latest_us),
                ("deep history page (50)", m.deep_us),
                ("recent conversations", m.recent_us),
                ("search \"数据\"", m.search_us[0]),
                ("search \"the\"", m.search_us[1]),
            ] {
                println!("{name:<32} {:>9}  {:>9}  {:>9}", p.p50, p.p99, p.max);
            }
            let steal = cpu.and_then(|c| c.steal_since());
            println!(
                "search index caught up {:.1} s after the last start; searches found {}..{} messages",
                m.index_catch_up_s, m.search_hits.0, m.search_hits.1
            );
            println!(
                "recent-conversations lists held {}..{} rows; server RSS {}; machine load before {}, after {}; CPU time stolen by the hypervisor: {}",
                m.recent_rows.0,
                m.recent_rows.1,
                m.rss_kib
                    .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                machine.as_deref().unwrap_or("-"),
                loadgen::machine_load().as_deref().unwrap_or("-"),
                steal.map_or("-".into(), |s| format!("{s:.1}%")),
            );
            println!(
                "{}",
                serde_json::json!({
                    "scenario": "storage",
                    "messages": m.messages,
                    "conversations": m.conversations,
                    "disk_bytes": m.disk_bytes,
                    "startup_ms": m.startup_ms,
                    "history_latest_p50_us": m.latest_us.p50,
                    "history_latest_p99_us": m.latest_us.p99,
                    "history_deep_p50_us": m.deep_us.p50,
                    "history_deep_p99_us": m.deep_us.p99,
                    "recent_p50_us": m.recent_us.p50,
                    "recent_p99_us": m.recent_us.p99,
                    "recent_rows": [m.recent_rows.0, m.recent_rows.1],
                    "index_catch_up_s": m.index_catch_up_s,
                    "search_chinese_p50_us": m.search_us[0].p50,
                    "search_chinese_p99_us": m.search_us[0].p99,
                    "search_english_p50_us": m.search_us[1].p50,
                    "search_english_p99_us": m.search_us[1].p99,
                    "search_hits": [m.search_hits.0, m.search_hits.1],
                    "rss_kib": m.rss_kib,
                    "steal_percent": steal,
                    "seed": seed,
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

/// The last line of a run that killed servers: what the read-back found.
fn print_final(l: &loadgen::check::Findings, refused: u64) {
    println!(
        "final: {} acknowledged, {} recovered, {} lost, {} stored, {refused} refused, no duplicates, no gaps, unread consistent",
        l.acked,
        l.recovered,
        l.lost.len(),
        l.stored
    );
}
