//! A fault injector in front of a real server: a TCP proxy on a loopback port that forwards
//! every connection to the target while healthy, and while "failing" drops the connections it
//! holds and answers each new request with S3's throttling error (HTTP 503 `SlowDown`), so a
//! client sees an object store that is there but refuses work, as during an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
    <Message>Please reduce your request rate.</Message></Error>";

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    pub port: u16,
    failing: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Forwards a free loopback port to `target_port` on loopback.
    pub async fn start(target_port: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (failing, watching) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut watching = watching.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    if *watching.borrow_and_update() {
                        counter.fetch_add(1, Ordering::Relaxed);
                        refuse(client).await;
                        return;
                    }
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)).await else {
                        return;
                    };
                    forward(client, server, &mut watching).await;
                });
            }
        });
        FaultProxy {
            port,
            failing,
            refused,
            task,
        }
    }

    /// From now on, refuses (true) or forwards (false).
    pub fn set_failing(&self, failing: bool) {
        self.failing.send_replace(failing);
    }

    /// Requests answered with 503 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the proxy starts failing (then both are
/// dropped, as a broken connection is).
async fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    failing: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = failing.wait_for(|failing| *failing) => {}
    }
}

/// Reads the request's head and answers 503 SlowDown, then closes.
async fn refuse(mut client: TcpStream) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 65_536 {
        match client.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let answer = format!(
        "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{SLOW_DOWN}",
        SLOW_DOWN.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}
