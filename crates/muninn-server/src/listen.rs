//! The listeners' connection handling, shared by HTTP and OTLP/gRPC: at most `max_connections`
//! open at once (past it the server stops accepting, and the kernel's backlog holds the rest),
//! the TLS handshake within a time limit, and HTTP/1 served with hyper so that a client that
//! does not send its request headers in time is disconnected.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a TLS handshake may take before the connection is closed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits on connections, set by `ServerConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once on each listener (HTTP, OTLP/gRPC).
    pub max_connections: usize,
    /// How long a client has to send a request's headers, counted from the connection's start
    /// or the end of its previous request; past it the connection is closed.
    pub header_read_timeout: Duration,
    /// How long a client has to send a whole ingest request body; past it, `408`.
    pub body_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// An accepted connection, plain or TLS, that holds its place among `max_connections` until it
/// is dropped.
pub(crate) struct Connection {
    stream: Stream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    /// Counts it open until it is dropped.
    metrics: crate::metrics::ConnectionMetrics,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Accepts connections while fewer than `places` are open and hands each, after its TLS
/// handshake, to `serve` in a task of its own; returns when `stop` resolves.
pub(crate) async fn accept_loop<S, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    places: Arc<Semaphore>,
    metrics: crate::metrics::ConnectionMetrics,
    serve: S,
    stop: impl Future<Output = ()>,
) where
    S: Fn(Connection) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let serve = Arc::new(serve);
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = places.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = &mut stop => return,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stop => return,
        };
        let _ = tcp.set_nodelay(true);
        let serve = serve.clone();
        let tls = tls.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let stream = match tls {
                None => Stream::Plain(tcp),
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => Stream::Tls(Box::new(stream)),
                        Ok(Err(error)) => {
                            metrics.handshake_failures.inc();
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            metrics.handshake_failures.inc();
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            metrics.open.inc();
            serve(Connection {
                stream,
                peer,
                _permit: permit,
                metrics,
            })
            .await;
        });
    }
}

/// Serves HTTP/1 on `listener` with `app` until `stop`; then idle connections close, and those
/// with a request in flight close after its answer (or after `grace`).
pub(crate) async fn serve_http(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnectionLimits,
    metrics: crate::metrics::ConnectionMetrics,
    app: axum::Router,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let max_connections = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let places = Arc::new(Semaphore::new(max_connections));
    let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
    let header_read_timeout = limits.header_read_timeout;
    let serve = move |connection: Connection| {
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        let served = builder.serve_connection(hyper_util::rt::TokioIo::new(connection), service);
        let mut stopping = stopping_rx.clone();
        async move {
            tokio::pin!(served);
            let result = tokio::select! {
                result = served.as_mut() => result,
                () = async {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                } => {
                    served.as_mut().graceful_shutdown();
                    served.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "http connection ended with an error");
            }
        }
    };
    accept_loop(listener, tls, places.clone(), metrics, serve, stop).await;
    let _ = stopping_tx.send(true);
    // Every connection gives its place back when it closes.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, places.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "http connections still open {grace:?} after stop; no longer waiting for them"
        );
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(stream) => stream.is_write_vectored(),
            Stream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Stream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What tonic learns of a connection: its peer.
impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = SocketAddr;

    fn connect_info(&self) -> SocketAddr {
        self.peer
    }
}
