//! A real S3 API for tests: `moto_server` (PyPI `moto[server]`, installed into the test venv by
//! `scripts/python.sh`) on a loopback port, its state in memory, killed when dropped. Shared by
//! path with the binary's tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port()
}

/// A `moto_server` on a loopback port, its state in memory; killed when dropped.
pub struct Moto {
    pub port: u16,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Moto {
    /// On a free port (another, if a process took it first).
    pub async fn start() -> Moto {
        let mut attempt = 1;
        loop {
            match Moto::spawn(free_port()).await {
                Ok(moto) => return moto,
                Err(log) if attempt < 3 && log.contains("in use") => attempt += 1,
                Err(log) => panic!("moto_server did not start; its log:\n{log}"),
            }
        }
    }

    /// On `port` (where an earlier one served, or nothing listened yet).
    pub async fn start_on(port: u16) -> Moto {
        Moto::spawn(port)
            .await
            .unwrap_or_else(|log| panic!("moto_server did not start on {port}; its log:\n{log}"))
    }

    /// Starts it and waits until it answers; its log if it exits or does not answer in time.
    async fn spawn(port: u16) -> Result<Moto, String> {
        let binary = moto_server();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let output = std::fs::File::create(&log).unwrap();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", binary.display()));
        let mut moto = Moto {
            port,
            child,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = reqwest::Client::new();
        loop {
            if moto.child.try_wait().unwrap().is_some() {
                return Err(moto.log_text());
            }
            // Any S3 answer (the bucket list) from this process, not another on the port.
            if client.get(moto.url("")).send().await.is_ok()
                && moto.log_text().contains("Running on")
            {
                return Ok(moto);
            }
            if Instant::now() >= deadline {
                return Err(moto.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// object_store cannot create buckets; moto takes an unsigned `PUT /BUCKET`.
    pub async fn create_bucket(&self, bucket: &str) {
        let response = reqwest::Client::new()
            .put(self.url(bucket))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "create bucket {bucket}: {}",
            response.status()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `$MUNINN_MOTO_SERVER`, else the one in the test venv (next to `$MUNINN_PYTHON`, which
/// `scripts/python.sh` installs with `moto[server]`), else `moto_server` on `PATH`.
fn moto_server() -> PathBuf {
    let executable = |path: &Path| {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if let Some(path) = std::env::var_os("MUNINN_MOTO_SERVER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            executable(&path),
            "MUNINN_MOTO_SERVER={} is not an executable file",
            path.display()
        );
        return path;
    }
    let in_venv = std::env::var_os("MUNINN_PYTHON")
        .filter(|p| !p.is_empty())
        .map(|python| PathBuf::from(python).with_file_name("moto_server"));
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("moto_server"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_venv
        .into_iter()
        .chain(on_path)
        .find(|path| executable(path))
        .unwrap_or_else(|| {
            panic!(
                "moto_server not found (MUNINN_MOTO_SERVER is unset, none next to \
                 $MUNINN_PYTHON, none on PATH): run the tests with `bash scripts/test.sh -p \
                 muninn-archive`, which installs moto[server] into the test venv \
                 (scripts/python-requirements.txt), or set MUNINN_MOTO_SERVER to its path"
            )
        })
}
