//! Tokens end to end through the binary: `muninn token new` prints a token and the
//! `[[auth.tokens]]` entry; a server configured with that entry refuses `muninn query` without
//! the token and answers it with `--token` or `MUNINN_TOKEN`; without tokens, `muninn serve`
//! refuses a non-loopback address unless `--insecure`; `--tenant` gives a token a store of its
//! own.

use std::time::Duration;

use crate::process::{Server, muninn, run};

/// `muninn token new`'s token and the configuration lines it printed.
fn new_token(scopes: &str) -> (String, String) {
    let finished = run(
        muninn(&["token", "new", "--scope", scopes, "--name", "cli-test"]),
        Duration::from_secs(60),
    );
    assert!(finished.status.success(), "{finished:?}");
    let token = finished
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .expect("a token line")
        .to_string();
    let entry: Vec<&str> = finished
        .stdout
        .lines()
        .skip_while(|line| *line != "[[auth.tokens]]")
        .collect();
    assert!(!entry.is_empty(), "{finished:?}");
    (token, entry.join("\n"))
}

#[test]
fn a_new_token_opens_the_server_to_the_cli_and_nothing_else_does() {
    let (token, entry) = new_token("read,ingest");
    assert!(entry.contains("scopes = [\"ingest\", \"read\"]"), "{entry}");
    assert!(
        !entry.contains(&token),
        "the configuration holds the hash only: {entry}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("muninn.toml");
    std::fs::write(&config, format!("{entry}\n")).unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let url = server.base_url.as_str();

    let refused = run(
        muninn(&["query", "--server", url, "services"]),
        Duration::from_secs(60),
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stderr.contains("needs a token"), "{refused:?}");
    let wrong = run(
        muninn(&["query", "--server", url, "--token", "mnn_00", "services"]),
        Duration::from_secs(60),
    );
    assert!(!wrong.status.success(), "{wrong:?}");
    assert!(
        wrong.stderr.contains("not one this server accepts"),
        "{wrong:?}"
    );
    let answered = run(
        muninn(&[
            "query", "--server", url, "--token", &token, "services", "--json",
        ]),
        Duration::from_secs(60),
    );
    assert!(answered.status.success(), "{answered:?}");
    let mut from_environment = muninn(&["query", "--server", url, "services", "--json"]);
    from_environment.env("MUNINN_TOKEN", &token);
    let answered = run(from_environment, Duration::from_secs(60));
    assert!(answered.status.success(), "{answered:?}");
    server.stop();
}

#[test]
fn serve_without_tokens_stays_on_loopback_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = muninn(&["serve", "--listen", "0.0.0.0:0", "--data-dir"]);
    serve.arg(dir.path().join("data"));
    let refused = run(serve, Duration::from_secs(60));
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused.stderr.contains("--insecure") && refused.stderr.contains("muninn token new"),
        "{refused:?}"
    );
    let bad = run(
        muninn(&["token", "new", "--scope", "write"]),
        Duration::from_secs(60),
    );
    assert!(!bad.status.success());
    assert!(
        bad.stderr
            .contains("\"write\" is not a scope; use ingest, read, admin"),
        "{bad:?}"
    );
    let bad = run(
        muninn(&["token", "new", "--scope", "read", "--tenant", "../a"]),
        Duration::from_secs(60),
    );
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("--tenant"), "{bad:?}");
}

/// A token of a tenant, from `muninn token new --tenant`: the server takes the entry and opens
/// the tenant's own store for it (under the data directory's `tenants/`); the default tenant's
/// token is served beside it. (Isolation itself: the server's `tests/api/tenants.rs`.)
#[test]
fn a_tenants_token_gets_a_store_of_its_own() {
    let tenant = run(
        muninn(&[
            "token",
            "new",
            "--scope",
            "read,admin",
            "--name",
            "team-a",
            "--tenant",
            "team-a",
        ]),
        Duration::from_secs(60),
    );
    assert!(tenant.status.success(), "{tenant:?}");
    assert!(tenant.stdout.contains("tenant = \"team-a\""), "{tenant:?}");
    let tenant_token = tenant
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .unwrap()
        .to_string();
    let tenant_entry: Vec<&str> = tenant
        .stdout
        .lines()
        .skip_while(|line| *line != "[[auth.tokens]]")
        .collect();
    let (token, entry) = new_token("read");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("muninn.toml");
    std::fs::write(&config, format!("{entry}\n{}\n", tenant_entry.join("\n"))).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()], &[]);
    let url = server.base_url.as_str();
    for token in [&tenant_token, &token] {
        let answered = run(
            muninn(&[
                "query", "--server", url, "--token", token, "services", "--json",
            ]),
            Duration::from_secs(60),
        );
        assert!(answered.status.success(), "{answered:?}");
    }
    assert!(data.join("tenants").join("team-a").join("wal").is_dir());
    server.stop();
}
