//! Command-line arguments shared by the commands that talk to a running server: the server
//! URL, the time range and the lineage/throughput filters. Values are passed through as text;
//! the server validates them and its error names the parameter.

/// `--server`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArg {
    /// Base URL of the Muninn server, or several separated by commas (tried in turn while one
    /// cannot be reached).
    #[arg(
        long,
        env = "MUNINN_SERVER",
        value_name = "URL",
        default_value = "http://127.0.0.1:4320",
        global = true
    )]
    pub server: String,
    /// The API token to send (`muninn token new`), when the server asks for one.
    #[arg(
        long,
        env = "MUNINN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// A PEM file of the CA (or certificate) to trust for an `https://` server, besides the
    /// system's (which `SSL_CERT_FILE` can also name).
    #[arg(long, env = "MUNINN_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// `--from` and `--to`: RFC 3339, unix seconds, `now`, or relative like `-1h`, `now-15m`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RangeArgs {
    /// Start of the time range (RFC 3339, unix seconds, now, -1h, now-15m) [default: all data;
    /// the last hour for throughput].
    #[arg(long, value_name = "TIME", global = true, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the time range [default: now, or an hour ahead to cover clock skew].
    #[arg(long, value_name = "TIME", global = true, allow_hyphen_values = true)]
    pub to: Option<String>,
}

impl RangeArgs {
    pub fn query(&self) -> Vec<(&'static str, Option<&str>)> {
        vec![("from", self.from.as_deref()), ("to", self.to.as_deref())]
    }
}

/// Filters of the lineage, throughput and compare questions. Each is a name or a pattern with
/// `*` (any characters) and `?` (one), like `order.*`, so that one filter selects a domain.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only this event type, or the types a pattern matches (`order.*`).
    #[arg(long, value_name = "TYPE")]
    pub event_type: Option<String>,
    /// Only this service, or the services a pattern matches (`billing-*`); for lineage, with
    /// their streams' other producers and consumers.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only this stream, or the streams a pattern matches.
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
}

impl FilterArgs {
    pub fn query(&self) -> Vec<(&'static str, Option<&str>)> {
        vec![
            ("event_type", self.event_type.as_deref()),
            ("service", self.service.as_deref()),
            ("stream", self.stream.as_deref()),
        ]
    }
}
