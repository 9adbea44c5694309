//! One broker process: its binary located, started on a free loopback port with its output in a
//! log file in its own temp dir, waited on until it serves, and killed when dropped.
//!
//! The broker runs under a small `sh` watchdog that holds the read end of a pipe whose write end
//! only this process has. Dropping the handle closes the pipe, and so does this process's end by
//! any means (a panic, a `static` never dropped, SIGKILL): the watchdog then SIGKILLs the broker
//! and removes its temp dir.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker has to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `sh -c WATCHDOG NAME DIR BROKER ARGS..`: runs the broker with `/dev/null` as stdin; when this
/// shell's stdin (the pipe from the test process) reaches end of file, SIGKILLs the broker and
/// removes DIR. Exits with the broker's status; a broker that exits by itself leaves DIR (its log)
/// to the test process.
const WATCHDOG: &str = r#"
dir=$1
shift
exec 3<&0 </dev/null
"$@" 3<&- &
broker=$!
{ while read -r _; do :; done; kill -9 "$broker" 2>/dev/null; rm -rf "$dir"; } <&3 &
watchdog=$!
exec 3<&-
wait "$broker"
status=$?
if [ "$status" -eq 137 ]; then wait "$watchdog"; else kill "$watchdog" 2>/dev/null; fi
exit "$status"
"#;

/// How to find a broker binary and what to tell whoever has none.
pub struct Binary {
    /// What the panic messages call it.
    pub name: &'static str,
    /// The variable that names its path, set by `scripts/test.sh`.
    pub env: &'static str,
    /// Its file name on `PATH`.
    pub command: &'static str,
    /// Further places to look, relative to the tools dir unless absolute.
    pub fallbacks: &'static [&'static str],
}

impl Binary {
    /// The binary's path, or a panic that says how to install it.
    pub fn locate(&self) -> PathBuf {
        let how = format!(
            "run the tests with `bash scripts/test.sh`, which installs it (cached in \
             $MUNINN_TOOLS_DIR, default {DEFAULT_TOOLS_DIR}) and sets {env}; or set {env} to its path",
            env = self.env
        );
        if let Some(path) = std::env::var_os(self.env).filter(|path| !path.is_empty()) {
            let path = PathBuf::from(path);
            assert!(
                is_executable(&path),
                "{}: {}={} is not an executable file; {how}",
                self.name,
                self.env,
                path.display()
            );
            return path;
        }
        let tools = std::env::var_os("MUNINN_TOOLS_DIR")
            .filter(|dir| !dir.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_TOOLS_DIR), PathBuf::from);
        let on_path: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(self.command))
                    .collect()
            })
            .unwrap_or_default();
        let fallbacks: Vec<PathBuf> = self.fallbacks.iter().map(|path| tools.join(path)).collect();
        on_path
            .into_iter()
            .chain(fallbacks.iter().cloned())
            .find(|path| is_executable(path))
            .unwrap_or_else(|| {
                panic!(
                    "{} not found ({} is unset, and no `{}` on PATH nor at {}): {how}",
                    self.name,
                    self.env,
                    self.command,
                    fallbacks
                        .iter()
                        .map(|path| path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

const DEFAULT_TOOLS_DIR: &str = "/var/cache/muninn-tools";

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A free loopback port: bound, read and released. Another process could take it before the
/// broker binds it; [`Process::start`] then tries again on another port.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// A running broker. Killed (SIGKILL) when dropped; its temp dir goes after it.
pub struct Process {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    started: Duration,
    log: PathBuf,
    // Last, so that the directory is removed after the process is gone.
    dir: TempDir,
}

/// Why a probe says a broker is not serving yet.
pub type NotReady = String;

impl Process {
    /// Starts `binary` on a free loopback port in a new temp dir (its working directory), with the
    /// arguments and environment `configure(command, port, dir)` adds; then calls
    /// `ready(port, log)` until it returns `Ok` ([`START_TIMEOUT`] at most). `log` is its output so
    /// far, for `ready` to check that this broker (not another process that took the port first)
    /// is listening. Panics with the log's tail if the broker exits or does not serve in time.
    pub fn start(
        binary: &Binary,
        configure: impl Fn(&mut Command, u16, &Path),
        mut ready: impl FnMut(u16, &str) -> Result<(), NotReady>,
    ) -> Self {
        let path = binary.locate();
        let mut attempt = 1;
        loop {
            let dir = tempfile::Builder::new()
                .prefix(&format!("muninn-{}-", binary.command))
                .tempdir()
                .expect("create a temp dir for the broker");
            let port = free_port();
            let log = dir.path().join("broker.log");
            let output = File::create(&log).expect("create the broker's log file");
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(WATCHDOG)
                .arg(format!("muninn-{}", binary.command))
                .arg(dir.path())
                .arg(&path)
                .current_dir(dir.path())
                .stdin(Stdio::piped())
                .stdout(output.try_clone().expect("clone the log file handle"))
                .stderr(output);
            configure(&mut command, port, dir.path());
            let begun = Instant::now();
            let mut child = command
                .spawn()
                .unwrap_or_else(|err| panic!("start {} ({}): {err}", binary.name, path.display()));
            let stdin = child.stdin.take();
            let mut process = Process {
                name: binary.name,
                child,
                stdin,
                port,
                started: Duration::ZERO,
                log,
                dir,
            };
            match process.wait_ready(&mut ready) {
                Ok(()) => {
                    process.started = begun.elapsed();
                    eprintln!(
                        "{} serving on 127.0.0.1:{port} after {:?} (log: {})",
                        process.name,
                        process.started,
                        process.log.display()
                    );
                    return process;
                }
                Err(Failure::Exited(status))
                    if attempt < 3 && process.log_tail().contains("in use") =>
                {
                    eprintln!(
                        "{}: port {port} was taken ({status}); trying another",
                        binary.name
                    );
                    attempt += 1;
                }
                Err(Failure::Exited(status)) => panic!(
                    "{} ({}) exited before serving, {status}; its log:\n{}",
                    binary.name,
                    path.display(),
                    process.log_tail()
                ),
                Err(Failure::Timeout(why)) => panic!(
                    "{} ({}) not serving on 127.0.0.1:{port} after {START_TIMEOUT:?}: {why}; its log:\n{}",
                    binary.name,
                    path.display(),
                    process.log_tail()
                ),
            }
        }
    }

    fn wait_ready(
        &mut self,
        ready: &mut impl FnMut(u16, &str) -> Result<(), NotReady>,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the broker process") {
                return Err(Failure::Exited(status));
            }
            let log = fs::read(&self.log).unwrap_or_default();
            let why = match ready(self.port, &String::from_utf8_lossy(&log)) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(Failure::Timeout(why));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The loopback port it serves on.
    /// The broker's own process id (benchmarks read its CPU time): the watchdog shell's child
    /// that is not the watchdog.
    pub fn pid(&self) -> u32 {
        let shell = self.child.id();
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|pid| pid.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() != "sh")
            })
            .unwrap_or(shell)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How long it took from spawn to serving.
    pub fn started(&self) -> Duration {
        self.started
    }

    /// Its temp dir, removed when it is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last 40 lines of its stdout and stderr.
    pub fn log_tail(&self) -> String {
        match fs::read(&self.log) {
            Ok(bytes) if bytes.is_empty() => "(empty)".to_owned(),
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
            Err(err) if err.kind() == ErrorKind::NotFound => "(no log)".to_owned(),
            Err(err) => format!("(cannot read {}: {err})", self.log.display()),
        }
    }
}

enum Failure {
    Exited(ExitStatus),
    Timeout(NotReady),
}

impl Drop for Process {
    fn drop(&mut self) {
        // End of file on the watchdog's stdin: it SIGKILLs the broker and exits.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(5)),
            }
        }
        eprintln!(
            "{}: the watchdog did not stop within 10 s; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
