//! The processes of the binary's end-to-end tests: `muninn` with a clean environment, a
//! command run to completion under a deadline, a `muninn serve` on a loopback port killed when
//! dropped, and one produced-and-consumed event sent to it.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const MUNINN: &str = env!("CARGO_BIN_EXE_muninn");

/// The binary with a clean environment: no `MUNINN_*` from the caller, quiet logs.
pub fn muninn(args: &[&str]) -> Command {
    let mut command = Command::new(MUNINN);
    command.args(args).env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("MUNINN_") {
            command.env_remove(key);
        }
    }
    command
}

pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Finished {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

pub fn read_all(stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stream).read_to_string(&mut text);
        text
    })
}

/// Runs a command to completion, killing it (and failing the test) after `timeout`.
pub fn run(mut command: Command, timeout: Duration) -> Finished {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the muninn binary starts");
    let stdout = read_all(child.stdout.take().expect("stdout is piped"));
    let stderr = read_all(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for muninn") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "muninn did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A `muninn serve` process, killed when dropped (also when a test fails).
pub struct Server {
    pub child: Child,
    pub base_url: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts `muninn serve --listen 127.0.0.1:0 --data-dir DIR ARGS` and waits for its
    /// `muninn listening on` line.
    pub fn start(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        // OTLP/gRPC on a free port too: tests run side by side.
        let mut command = muninn(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--otlp-grpc-listen",
            "127.0.0.1:0",
        ]);
        command
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra_args)
            .envs(env.iter().copied());
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the muninn binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = read_all(child.stderr.take().expect("stderr is piped"));
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("muninn listening on ") {
                    let _ = sender.send(url.trim().to_string());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(base_url) => Server {
                child,
                base_url,
                stderr: Some(stderr),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "muninn serve printed no listening line within 60 s; stderr:\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
        }
    }
}

impl Server {
    /// Kills the server and returns what it wrote to stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stderr
            .take()
            .and_then(|stderr| stderr.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Sends an order.placed event produced by checkout and consumed (and modified) by billing.
pub fn ingest_one_event(base_url: &str, event_id: &str) {
    let now = now_unix_nanos();
    let body = serde_json::json!([
        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "name": "publish orders",
         "kind": "producer", "service": "checkout", "start_time_unix_nano": now, "duration_nano": 1_000_000,
         "event_id": event_id, "event_type": "order.placed", "stream": "orders", "broker": "kafka"},
        {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b8", "parent_span_id": "00f067aa0ba902b7",
         "name": "process orders", "kind": "consumer", "service": "billing", "start_time_unix_nano": now + 5_000_000,
         "duration_nano": 2_000_000, "event_id": event_id, "event_type": "order.placed", "stream": "orders",
         "broker": "kafka", "modified": true}
    ]);
    post_json(base_url, "/api/v1/spans", &body);
}

/// POSTs `records` as JSON to `path` and fails the test unless the server accepts them.
pub fn post_json(base_url: &str, path: &str, records: &serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .post(format!("{base_url}{path}"))
            .json(records)
            .send()
            .await
            .expect("ingest answered");
        assert!(
            response.status().is_success(),
            "ingest refused: {}",
            response.text().await.unwrap_or_default()
        );
    });
}
