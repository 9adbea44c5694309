//! The examples, run as built (`cargo test` builds them) against a real collector: what the
//! guide tells users to copy must work.

mod collector;

use std::process::Command;

use collector::{Collector, example};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_custom_broker_example_shows_up_in_the_lineage() {
    let mut collector = Collector::start().await;
    let url = collector.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(example("custom_broker")).arg(url).output()
    })
    .await
    .expect("join")
    .expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("shop: 10 spans exported, 0 dropped"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mailer: 10 spans exported, 0 dropped"),
        "{stdout}"
    );
    assert_eq!(
        collector.edges().await,
        vec![
            (
                "mailer".into(),
                "consumed".into(),
                "receipts".into(),
                "receipt.issued".into(),
                10
            ),
            (
                "shop".into(),
                "produced".into(),
                "receipts".into(),
                "receipt.issued".into(),
                10
            ),
        ]
    );
    collector.stop().await;
}
