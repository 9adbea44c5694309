//! Helpers shared by the SDK's benchmarks: collector stand-ins (a discard sink and a closed
//! port), the process's memory figures, percentiles, and the "service" workload (an order
//! serialized to JSON per event).

// Each benchmark binary uses only part of this module.
#![allow(dead_code)]

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A collector that accepts everything and keeps nothing (like /dev/null): every request is
/// read whole and answered `200 {}`, so the SDK's export path (encoding, gzip, HTTP) runs as it
/// would against a real collector, without the collector's own cost.
pub struct DiscardSink {
    pub url: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl DiscardSink {
    /// Starts the sink on its own thread (with its own single-threaded runtime); it runs until
    /// the process exits.
    pub fn start() -> DiscardSink {
        let requests = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (requests_in, bytes_in) = (requests.clone(), bytes.clone());
        let (address_sender, address) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("discard-sink".to_string())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("sink runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("sink binds a loopback port");
                    address_sender
                        .send(listener.local_addr().expect("sink address"))
                        .expect("sink address is read");
                    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
                        requests_in.fetch_add(1, Ordering::Relaxed);
                        bytes_in.fetch_add(body.len() as u64, Ordering::Relaxed);
                        async { ([("content-type", "application/json")], "{}") }
                    });
                    axum::serve(listener, app).await.expect("sink serves");
                });
            })
            .expect("sink thread starts");
        let address = address
            .recv_timeout(Duration::from_secs(10))
            .expect("sink starts");
        DiscardSink {
            url: format!("http://{address}"),
            requests,
            bytes,
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Request body bytes (as sent, gzipped) received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// The URL of a loopback port nobody listens on (bound, then released): a collector that is
/// down, whose connections are refused at once.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

/// This process's resident memory now and its peak (`VmRSS`, `VmHWM`), in KiB.
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The `q`-quantile (0.0 to 1.0) of sorted values, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Whether the benchmark binary runs for measurement (`cargo bench`) rather than as a smoke
/// test (`cargo test --benches` passes no `--bench`, criterion's convention).
pub fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|arg| arg == "--bench") && !args.iter().any(|arg| arg == "--test")
}

/// Nanoseconds the calling thread has spent on a CPU (first field of
/// `/proc/thread-self/schedstat`), to tell a slow call from a thread that was not running.
pub fn thread_cpu_nanos() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time in milliseconds, `(this process, the whole machine)`, user plus system (counted
/// in clock ticks of 10 ms: `_SC_CLK_TCK` is 100 on Linux), from `/proc/self/stat` and the first line of
/// `/proc/stat`. The difference between two readings tells what the benchmark's own process
/// used from what everything else (a broker on loopback) used meanwhile.
pub fn cpu_millis() -> (u64, u64) {
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|text| {
            // The command name, in parentheses, may hold spaces: count fields after it.
            let rest = &text[text.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|text| {
            let fields: Vec<u64> = text
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            // user nice system (idle iowait skipped) irq softirq steal
            Some(fields.iter().take(3).sum::<u64>() + fields.iter().skip(5).take(3).sum::<u64>())
        })
        .unwrap_or(0);
    (own * 10, machine * 10)
}

/// The machine's load averages (`/proc/loadavg`: 1, 5 and 15 minutes), printed with the
/// figures: on a shared 2-core machine, a load above 2 means the benchmark shared its cores.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Order lines per event: sets the service's own work per event (a few microseconds).
pub const ITEMS_PER_ORDER: usize = 12;

#[derive(serde::Serialize)]
struct Item {
    sku: String,
    quantity: u32,
    price_cents: u64,
}

#[derive(serde::Serialize)]
struct Order<'a> {
    id: &'a str,
    customer: String,
    currency: &'static str,
    total_cents: u64,
    created_unix_ms: u64,
    items: Vec<Item>,
    shipping: &'static str,
}

/// The service's own work for event `n`: an order with its lines, serialized to JSON.
pub fn order_payload(id: &str, n: usize) -> Vec<u8> {
    let items = (0..ITEMS_PER_ORDER)
        .map(|line| Item {
            sku: format!("SKU-{:05}", (n * 7 + line) % 100_000),
            quantity: (line as u32) + 1,
            price_cents: 199 + (n as u64 % 1000) * 3,
        })
        .collect::<Vec<_>>();
    let order = Order {
        id,
        customer: format!("customer-{}", n % 5_000),
        currency: "EUR",
        total_cents: items
            .iter()
            .map(|item| item.price_cents * u64::from(item.quantity))
            .sum(),
        created_unix_ms: 1_700_000_000_000 + n as u64,
        items,
        shipping: "standard",
    };
    serde_json::to_vec(&order).expect("an order serializes")
}

/// The median of `values` (sorts them); 0 when empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The first quartile, the median and the third quartile of `values` (nearest rank).
pub fn quartiles(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |quarter: usize| {
        values
            .get((values.len().saturating_sub(1) * quarter + 2) / 4)
            .copied()
            .unwrap_or(0.0)
    };
    (at(1), at(2), at(3))
}

/// Each mode's run times in milliseconds, round by round, from its runs' total durations.
pub fn round_totals_ms<R>(runs: &[Vec<R>], total: impl Fn(&R) -> Duration) -> Vec<Vec<f64>> {
    runs.iter()
        .map(|runs| {
            runs.iter()
                .map(|run| total(run).as_secs_f64() * 1e3)
                .collect()
        })
        .collect()
}

/// How much longer each run took than the base run of the same round, in percent: the first
/// quartile, the median and the third quartile. Runs of one round ran back to back, so this
/// takes out what drifts between rounds (the host, a broker).
pub fn paired_excess(totals_ms: &[f64], base_ms: &[f64]) -> (f64, f64, f64) {
    let mut excess: Vec<f64> = totals_ms
        .iter()
        .zip(base_ms)
        .map(|(total, base)| (total / base - 1.0) * 100.0)
        .collect();
    quartiles(&mut excess)
}

/// "met" or "MISSED", as the benchmarks print a target.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Prints the memory and accounting checks of the collector-down runs: the queue stayed
/// under its configured bound, and every one of `events` spans was queued or counted as
/// dropped.
pub fn print_collector_down_checks<'a>(
    stats: impl IntoIterator<Item = Option<&'a muninn_sdk::Stats>> + Clone,
    events: usize,
) {
    let bound_ok = stats
        .clone()
        .into_iter()
        .all(|stats| stats.is_some_and(|stats| stats.queue_bytes_peak <= stats.max_queue_bytes));
    let drops_counted = stats.into_iter().all(|stats| {
        stats.is_some_and(|stats| {
            stats.spans_queued + stats.spans_dropped_queue_full + stats.spans_dropped_shutdown
                == events as u64
        })
    });
    println!(
        "  SDK queue under its configured bound in every (b) run: {}",
        verdict(bound_ok)
    );
    println!(
        "  every (b) span either queued or counted as dropped: {}",
        verdict(drops_counted)
    );
}
