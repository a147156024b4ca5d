//! The `tollgate` command line: serve the API, migrate the database, manage API keys.

use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate::clock::SystemClock;
use tollgate::config::{Overrides, Settings};
use tollgate::domain::{Actor, ApiKeyId, AuditEntry, KeyName, Role, SyncOutcome};
use tollgate::services::keys::{KeyRequest, issue_key};
use tollgate::services::mirror::{Mirror, RetryPolicy};
use tollgate::services::reconcile::{LogLines, Reconcile, SyncProgress};
use tollgate::services::storage::Purger;
use tollgate::startup::Application;
use tollgate::store::{self, RevokeOutcome, Store};
use tollgate::stripe::client::StripeClient;
use tollgate::telemetry::progress::TerminalProgress;
use tollgate::tokens::Tokens;

/// Subscription billing and entitlement service for publishers with a metered paywall.
///
/// Settings come from defaults, then the TOML file given with --config, then TOLLGATE_*
/// environment variables (and DATABASE_URL), then flags. With none of them, tollgate uses a
/// SQLite file `tollgate.db` in the working directory and listens on 127.0.0.1:8080.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Database URL: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply migrations and serve the API until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on (port 0 picks a free port, and the log says which).
        #[arg(long, value_name = "HOST:PORT")]
        bind: Option<String>,
    },
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Create, list and revoke API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Rotate and list the keys that sign entitlement tokens.
    SigningKeys {
        #[command(subcommand)]
        command: SigningKeysCommand,
    },
    /// Work with Stripe's API.
    Stripe {
        #[command(subcommand)]
        command: StripeCommand,
    },
    /// Bound the database's storage.
    Storage {
        #[command(subcommand)]
        command: StorageCommand,
    },
    /// Print the effective configuration as TOML, secrets redacted.
    Config,
    /// Exit 0 when the service at the configured (or given) address answers /healthz with 200.
    Healthcheck {
        /// Address of the service; defaults to the configured bind address.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum StripeCommand {
    /// Reconcile: read every price and subscription and the invoices, refunds and disputes of the
    /// recent window (stripe_sync_window) from Stripe, listing by listing, and repair the mirror.
    /// Prints what each listing came to, as JSON, on standard output; on a terminal, shows its
    /// progress on standard error.
    ///
    /// Exits 0 when every listing was read, 3 when some failed (the others' repairs stay), 1
    /// when none could be read or the run failed.
    Sync,
}

/// `tollgate stripe sync`'s exit status when some listings were read and some failed.
const EXIT_PARTIAL: u8 = 3;

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Remove now, in small batches, what the storage purge of a running server removes every
    /// purge_interval: meter unlocks no meter window counts any more, the bodies of old applied
    /// and skipped Stripe events, old delivered and failed outbound deliveries, and expired
    /// idempotency keys and dashboard sessions. Prints what it removed, as JSON, on standard
    /// output.
    Purge,
}

#[derive(Debug, Subcommand)]
enum SigningKeysCommand {
    /// Make a new key sign from now on and print its id; the old key stays in the JWKS until
    /// every token it signed has expired. Running instances pick the new key up within 10 s.
    Rotate,
    /// List the keys in use or still published, one per line, tab-separated: kid, algorithm,
    /// current or retired, created, retired, published until.
    List,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it, and nothing else, on standard output. It is shown only once.
    Create {
        /// admin, service or finance.
        #[arg(long)]
        role: Role,
        /// A label that says who holds the key.
        #[arg(long)]
        name: String,
        /// Let the key tell tollgate the address a reader reads from (`ip` in access and
        /// token requests), which can admit them under an institutional licence.
        #[arg(long)]
        may_assert_ip: bool,
    },
    /// List keys (never their secrets), one per line, tab-separated.
    List,
    /// Revoke a key at once.
    Revoke {
        /// The key's id (key_...).
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tollgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let bind = match &cli.command {
        Command::Serve { bind } => bind.clone(),
        _ => None,
    };
    let settings = Settings::load(
        cli.config.as_deref(),
        Overrides {
            bind,
            database_url: cli.database_url,
        },
    )?;
    match cli.command {
        Command::Config => {
            print!("{}", settings.to_redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { address } => {
            healthcheck(address.as_deref().unwrap_or(&settings.bind)).map(|()| ExitCode::SUCCESS)
        }
        command => {
            tollgate::telemetry::init(settings.log_format, &settings.log_level)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run_async(command, settings))
        }
    }
}

async fn run_async(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    if let Command::Stripe {
        command: StripeCommand::Sync,
    } = command
    {
        let store = open_migrated(&settings).await?;
        let result = stripe_sync(&store, &settings).await;
        store.close().await;
        return result;
    }
    run_command(command, settings)
        .await
        .map(|()| ExitCode::SUCCESS)
}

async fn run_command(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => {
            tracing::info!(configuration = %settings.to_redacted_toml(), "starting");
            let app = Application::build(settings, Arc::new(SystemClock)).await?;
            app.run_until_stopped().await?;
            Ok(())
        }
        Command::Migrate => {
            open_migrated(&settings).await?.close().await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Keys { command } => {
            let store = open_migrated(&settings).await?;
            let result = keys(store.as_ref(), command).await;
            store.close().await;
            result
        }
        Command::SigningKeys { command } => {
            let store = open_migrated(&settings).await?;
            let result = signing_keys(&store, &settings, command).await;
            store.close().await;
            result
        }
        Command::Storage {
            command: StorageCommand::Purge,
        } => {
            let store = open_migrated(&settings).await?;
            let purger = Purger::new(
                Arc::clone(&store),
                Arc::new(SystemClock),
                settings.storage(),
            );
            let result = purger.run().await;
            store.close().await;
            let report = result?;
            tracing::info!(?report, "storage purged");
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&report)?
            )?;
            Ok(())
        }
        Command::Stripe { .. } | Command::Config | Command::Healthcheck { .. } => Ok(()),
    }
}

/// Runs a reconcile and prints its report; its exit status says what it came to.
async fn stripe_sync(store: &Arc<dyn Store>, settings: &Settings) -> anyhow::Result<ExitCode> {
    let client = StripeClient::from_settings(settings)?.ok_or_else(|| {
        anyhow::anyhow!("no Stripe secret key is configured (TOLLGATE_STRIPE_SECRET_KEY)")
    })?;
    let mirror = Mirror::new(
        Arc::clone(store),
        Arc::new(SystemClock),
        RetryPolicy::from_settings(settings),
        &prometheus::Registry::new(),
    )?;
    let progress: Box<dyn SyncProgress> = if std::io::stderr().is_terminal() {
        Box::new(TerminalProgress::new())
    } else {
        Box::new(LogLines)
    };
    let reconcile = Reconcile {
        client: &client,
        store: store.as_ref(),
        mirror: &mirror,
        window: settings.stripe().sync_window,
        progress: progress.as_ref(),
    };
    let report = reconcile.run(chrono::Utc::now(), &Actor::cli()).await?;
    tracing::info!(outcome = %report.outcome, "reconcile finished");
    writeln!(
        std::io::stdout().lock(),
        "{}",
        serde_json::to_string_pretty(&report)?
    )?;
    let failures = report.failures().unwrap_or_default();
    Ok(match report.outcome {
        SyncOutcome::Succeeded => ExitCode::SUCCESS,
        SyncOutcome::Partial => {
            eprintln!("tollgate: the reconcile was partial: {failures}");
            ExitCode::from(EXIT_PARTIAL)
        }
        SyncOutcome::Failed => {
            eprintln!("tollgate: the reconcile failed: {failures}");
            ExitCode::FAILURE
        }
    })
}

async fn signing_keys(
    store: &Arc<dyn Store>,
    settings: &Settings,
    command: SigningKeysCommand,
) -> anyhow::Result<()> {
    let tokens = Tokens::start(Arc::clone(store), Arc::new(SystemClock), settings).await?;
    let mut out = std::io::stdout().lock();
    match command {
        SigningKeysCommand::Rotate => {
            let (kid, _) = tokens.rotate(&Actor::cli()).await?;
            writeln!(out, "{kid}")?;
        }
        SigningKeysCommand::List => {
            let shown = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
            };
            for key in tokens.keys() {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    key.kid,
                    key.algorithm,
                    if key.current { "current" } else { "retired" },
                    shown(key.created_at),
                    shown(key.retired_at),
                    shown(key.published_until),
                )?;
            }
        }
    }
    Ok(())
}

async fn open_migrated(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = store::open(settings).await?;
    store.migrate().await?;
    Ok(store)
}

async fn keys(store: &dyn Store, command: KeysCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        KeysCommand::Create {
            role,
            name,
            may_assert_ip,
        } => {
            let name = KeyName::parse(&name)?;
            let request = KeyRequest {
                role,
                name,
                may_assert_ip,
            };
            let issued = issue_key(store, &SystemClock, request, None, &Actor::cli()).await?;
            tracing::info!(key_id = %issued.key.id, %role, "API key created");
            writeln!(out, "{}", issued.secret.expose())?;
        }
        KeysCommand::List => {
            let mut after: Option<ApiKeyId> = None;
            loop {
                let page = store.list_api_keys(after.as_ref(), 500).await?;
                for key in &page {
                    let revoked = key
                        .revoked_at
                        .map(|t| format!("revoked {}", t.to_rfc3339()))
                        .unwrap_or_else(|| "active".into());
                    writeln!(
                        out,
                        "{}\t{}\t{}\t…{}\t{}\t{}",
                        key.id,
                        key.role,
                        key.name.as_str(),
                        key.hint,
                        key.created_at.to_rfc3339(),
                        revoked
                    )?;
                }
                match page.last() {
                    Some(last) if page.len() == 500 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let key_id =
                ApiKeyId::parse(&id).ok_or_else(|| anyhow::anyhow!("`{id}` is not a key id"))?;
            let now = chrono::Utc::now();
            let audit = AuditEntry::new(
                &Actor::cli(),
                "key.revoke",
                format!("key:{key_id}"),
                serde_json::json!({}),
                now,
            );
            match store.revoke_api_key(&key_id, now, &audit).await? {
                RevokeOutcome::Revoked => tracing::info!(%key_id, "API key revoked"),
                RevokeOutcome::AlreadyRevoked => {
                    tracing::info!(%key_id, "API key was already revoked")
                }
                RevokeOutcome::NotFound => anyhow::bail!("no API key has the id {id}"),
            }
        }
    }
    Ok(())
}

/// A dependency-free probe for container health checks: the runtime image has no curl.
fn healthcheck(address: &str) -> anyhow::Result<()> {
    let mut target: SocketAddr = address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{address} resolves to no address"))?;
    if target.ip().is_unspecified() {
        target.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    )?;
    let mut status_line = [0u8; 12];
    stream.read_exact(&mut status_line)?;
    if status_line.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        anyhow::bail!(
            "{target} answered {}",
            String::from_utf8_lossy(&status_line)
        )
    }
}
