//! Accepting connections, with the limits a server on the open internet needs: how many
//! connections one client address may hold, how long a connection may take to send a
//! request's headers (also how long it may sit idle between requests), how long a request
//! body may take, and a pause rather than a busy loop when `accept` fails (out of file
//! descriptors). The connection itself is hyper's HTTP/1, with upgrades for `/ws`.
//!
//! An upgraded connection (a WebSocket) keeps its place in its address's count until the
//! socket is closed: the count is held by the connection's I/O object, which the WebSocket
//! takes over.

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{
    collections::HashMap,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::locks::lock;

/// The connection limits (see `settings` for each one's setting).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Most connections (HTTP and WebSocket together) one client address may hold open.
    pub per_address: usize,
    /// How long a connection may take to send a request's headers, counted from when it
    /// opened or from the end of its previous response: also the keep-alive idle timeout.
    pub header_timeout: Duration,
}

/// The first pause after `accept` fails for want of a resource; it doubles up to
/// [`ACCEPT_BACKOFF_MAX`] while the failures go on.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Raises this process's limit on open files as far as it may: every socket is a file, and
/// the usual soft limit (1,024) is far below what a chat server holds. A process allowed to
/// (root, or `CAP_SYS_RESOURCE`) first lifts its hard limit to the kernel's most
/// (`/proc/sys/fs/nr_open`), so 100,000 sockets need no `ulimit` beforehand; any other
/// raises its soft limit to the hard one its service manager gave it (`LimitNOFILE=`).
/// Returns the limit now in force.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let kernel_most = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(most) = kernel_most {
        if rlimit::Resource::NOFILE
            .get()
            .is_ok_and(|(_, hard)| hard < most)
        {
            // Refused without the privilege: the hard limit stays as it was.
            let _ = rlimit::Resource::NOFILE.set(most, most);
        }
    }
    rlimit::increase_nofile_limit(u64::MAX)
}

/// Open connections per client address, capped. Cheap to clone.
#[derive(Clone)]
pub struct AddressCounts {
    inner: Arc<Counts>,
}

struct Counts {
    max: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count; freed when dropped.
pub struct Place {
    counts: Arc<Counts>,
    address: IpAddr,
}

impl AddressCounts {
    pub fn new(max: usize) -> Self {
        AddressCounts {
            inner: Arc::new(Counts {
                max,
                by_address: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A place for one more connection from `address`, unless it holds its maximum.
    pub fn take(&self, address: IpAddr) -> Option<Place> {
        let mut by_address = lock(&self.inner.by_address);
        let n = by_address.entry(address).or_insert(0);
        if *n >= self.inner.max {
            return None;
        }
        *n += 1;
        Some(Place {
            counts: self.inner.clone(),
            address,
        })
    }

    /// Connections open from `address`.
    pub fn open(&self, address: IpAddr) -> usize {
        lock(&self.inner.by_address)
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut by_address = lock(&self.counts.by_address);
        if let Some(n) = by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.address);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's stream together with its place in the count: whoever owns the stream
    /// (hyper, then a WebSocket) keeps the place until the stream is dropped.
    pub struct Counted {
        #[pin]
        stream: TcpStream,
        place: Place,
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().stream.poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Whether an `accept` error is about the one connection (go on at once) rather than the
/// process running out of something (pause before the next try).
fn only_this_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
    )
}

/// Serves `router` on `listener` until `shutdown` is cancelled; then stops accepting and
/// lets requests in flight finish for up to `drain_grace`, and closes the connections still
/// open then (a client that sent half a request): once this returns, no connection holds
/// anything of the server's.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drain_grace: Duration,
) {
    let counts = AddressCounts::new(limits.per_address);
    let connections = TaskTracker::new();
    // Cancelled at the drain deadline: the connections still open drop theirs.
    let abandon = CancellationToken::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                backoff = ACCEPT_BACKOFF_MIN;
                pair
            }
            Err(e) if only_this_connection(&e) => continue,
            Err(e) => {
                // Most likely out of file descriptors: trying again at once would only spin.
                // Connections that close meanwhile free some.
                warn!(error = %e, pause = ?backoff, "cannot accept connections; pausing");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Some(place) = counts.take(peer.ip()) else {
            debug!(peer = %peer.ip(), "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        // No Nagle: every frame is written as soon as it is ready, and a small frame held
        // back for the peer's delayed ACK would add up to 40 ms to a delivery.
        if let Err(e) = stream.set_nodelay(true) {
            warn!(error = %e, "cannot set TCP_NODELAY");
        }
        let io = TokioIo::new(Counted { stream, place });
        let router = router.clone();
        // The peer address is what sign-in and sign-up limits count per client.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower::Service::call(&mut router.clone(), request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let (shutdown, abandon) = (shutdown.clone(), abandon.clone());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = shutdown.cancelled() => {
                    // Finish the request in flight (if any), then close; at the deadline,
                    // close anyway.
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        ended = connection.as_mut() => ended,
                        () = abandon.cancelled() => return,
                    }
                }
            };
            if let Err(e) = ended {
                debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain_grace, connections.wait())
        .await
        .is_err()
    {
        info!(
            connections = connections.len(),
            "closing connections still mid-request {drain_grace:?} after shutdown began"
        );
        abandon.cancel();
        connections.wait().await;
    }
}

/// Logs where the process's open-file limit stands (called once at start).
pub fn log_open_file_limit(raised: io::Result<u64>) {
    match raised {
        Ok(limit) => info!(limit, "open-file limit"),
        Err(e) => warn!(error = %e, "cannot raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_maximum_and_its_places_come_back_when_dropped() {
        let counts = AddressCounts::new(2);
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let first = counts.take(a).expect("first");
        let _second = counts.take(a).expect("second");
        assert!(counts.take(a).is_none(), "third from the same address");
        assert!(counts.take(b).is_some(), "another address is not affected");
        drop(first);
        assert_eq!(counts.open(a), 1);
        assert!(counts.take(a).is_some(), "a freed place is taken again");
    }

    #[test]
    fn an_address_with_nothing_open_takes_no_memory() {
        let counts = AddressCounts::new(4);
        let a = IpAddr::from([10, 0, 0, 1]);
        drop(counts.take(a));
        assert!(lock(&counts.inner.by_address).is_empty());
    }

    #[test]
    fn running_out_of_files_pauses_but_an_aborted_handshake_does_not() {
        assert!(only_this_connection(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
        // EMFILE
        assert!(!only_this_connection(&io::Error::from_raw_os_error(24)));
    }
}
