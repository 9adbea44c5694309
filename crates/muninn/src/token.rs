//! `muninn token new --scope …`: prints a new API token (once; Muninn keeps only its hash) and
//! the `[[auth.tokens]]` entry that makes a server accept it (docs/security.md).

use std::process::ExitCode;

use anyhow::{Result, anyhow};
use muninn_server::TenantId;
use muninn_server::auth::{Scope, TokenHash, new_token};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Print a new token and the configuration entry with its hash.
    New {
        /// What the token may do: ingest, read, admin, or several separated by commas.
        #[arg(long, value_name = "SCOPES", required = true)]
        scope: String,
        /// Who holds it, as errors and logs name it [default: the scopes, like `ingest-read`].
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// The tenant whose data the token writes and reads (docs/security.md#tenants)
        /// [default: none, the default tenant].
        #[arg(long, value_name = "TENANT")]
        tenant: Option<String>,
    },
}

pub fn run(args: TokenArgs) -> Result<ExitCode> {
    let TokenCommand::New {
        scope,
        name,
        tenant,
    } = args.command;
    let scopes = parse_scopes(&scope)?;
    let tenant = tenant
        .map(|tenant| TenantId::parse(tenant.trim()))
        .transpose()
        .map_err(|problem| anyhow!("--tenant: {problem}"))?;
    let names: Vec<&str> = scopes.iter().map(|scope| scope.name()).collect();
    let name = match name {
        Some(name) if name.trim().is_empty() || name.contains(['"', '\\', '\n']) => {
            return Err(anyhow!(
                "--name: {name:?} is not valid; use a short label without quotes, like checkout"
            ));
        }
        Some(name) => name.trim().to_string(),
        None => names.join("-"),
    };
    let token = new_token();
    println!("token: {token}");
    println!();
    println!("# Shown once: Muninn keeps only its hash. Clients send it as");
    println!("# `Authorization: Bearer <token>` (MUNINN_TOKEN for the CLI and the SDK,");
    println!("# OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token> for OpenTelemetry).");
    println!("# Add this to the server's configuration file:");
    println!("[[auth.tokens]]");
    println!("name = \"{name}\"");
    println!("hash = \"{}\"", TokenHash::of(&token));
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    println!("scopes = [{}]", quoted.join(", "));
    if let Some(tenant) = tenant {
        println!("tenant = \"{tenant}\"");
    }
    Ok(ExitCode::SUCCESS)
}

/// `ingest,read` → the scopes, each once, in their order; an error names what is valid.
fn parse_scopes(text: &str) -> Result<Vec<Scope>> {
    let mut scopes = Vec::new();
    for part in text.split(',') {
        let scope = Scope::parse(part.trim()).ok_or_else(|| {
            anyhow!("--scope: {:?} is not a scope; use ingest, read, admin, or several separated by commas, like ingest,read", part.trim())
        })?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.sort();
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_a_list_and_bad_ones_say_what_is_valid() {
        assert_eq!(
            parse_scopes("read, ingest,read").unwrap(),
            [Scope::Ingest, Scope::Read]
        );
        let error = parse_scopes("ingest,write").unwrap_err().to_string();
        assert!(error.contains("\"write\" is not a scope"), "{error}");
        assert!(parse_scopes("").is_err());
    }
}
