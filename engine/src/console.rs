//! The operations console on the engine's HTTP address: the page and its assets
//! ([`citybrain_console::router`]) merged with the incident API (`/api/…`, the ops crate's
//! router), served on one address, `127.0.0.1:8080` by default (`--console ADDR`, `off`).
//!
//! ```text
//!  --console ADDR ─▶ bind ─▶ serve(console page + assets  ∪  ops API /api/…) until shutdown
//! ```
//!
//! The default address is a convenience: when it is taken the run goes on without the console
//! (with a warning); an address given explicitly must bind or the run fails.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use citybrain_console::ConsoleConfig;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// The default console address: loopback only (operators reach it through the centre's proxy
/// or with `--console 0.0.0.0:8080`).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// `--console` and `--console-tiles` of `citybrain run`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Where the operations console and the incident API listen (IP:PORT), or `off`.
    #[arg(long = "console", env = "CITYBRAIN_CONSOLE", default_value = DEFAULT_ADDR, value_name = "ADDR|off")]
    pub addr: String,
    /// A map tile URL template for the console ({z}/{x}/{y}); default none: jurisdiction
    /// boundaries only, nothing fetched from outside.
    #[arg(
        long = "console-tiles",
        env = "CITYBRAIN_CONSOLE_TILES",
        value_name = "URL"
    )]
    pub tiles: Option<String>,
}

impl ConsoleArgs {
    /// The address to serve on; `None` for `off`.
    ///
    /// # Errors
    /// [`Error::Config`] when the value is neither `off` nor IP:PORT, or the tile URL is invalid.
    pub fn validated(&self) -> Result<(Option<SocketAddr>, ConsoleConfig)> {
        let mut problems = Vec::new();
        let addr = match self.addr.trim() {
            "off" | "" => None,
            a => match a.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    problems.push(format!("--console: `{a}` is neither IP:PORT nor `off`"));
                    None
                }
            },
        };
        let config = ConsoleConfig {
            tile_url: self.tiles.clone(),
            tile_attribution: None,
        };
        let config = match config.validated() {
            Ok(c) => c,
            Err(citybrain_console::Error::Invalid(p)) => {
                problems.extend(p.into_iter().map(|p| format!("--console-tiles: {p}")));
                ConsoleConfig::default()
            }
        };
        if problems.is_empty() {
            Ok((addr, config))
        } else {
            Err(Error::Config { problems })
        }
    }

    fn is_default(&self) -> bool {
        self.addr.trim() == DEFAULT_ADDR
    }
}

/// The console's page and assets merged with the incident API router (all its routes under
/// `/api/`; `None` while the run has no incident API).
pub fn app(config: ConsoleConfig, api: Option<Router>) -> Router {
    let console = citybrain_console::router_with(config);
    match api {
        Some(api) => console.merge(api),
        None => console,
    }
}

/// Binds the console's address and serves `app(config, api)` on it until `shutdown` resolves.
/// Returns the bound address (`None` when off, or when the default address is taken).
///
/// # Errors
/// [`Error::Config`] for a bad `--console` value, [`Error::Console`] when an address given
/// explicitly cannot be bound.
pub async fn start(
    args: &ConsoleArgs,
    api: Option<Router>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<SocketAddr>> {
    let (addr, config) = args.validated()?;
    let Some(addr) = addr else {
        info!("operations console off");
        return Ok(None);
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if args.is_default() => {
            warn!(%addr, error = %e, "operations console off: its default address is taken (--console ADDR to pick another)");
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Console {
                addr: addr.to_string(),
                source,
            });
        }
    };
    let bound = listener.local_addr().map_err(|source| Error::Console {
        addr: addr.to_string(),
        source,
    })?;
    if !citybrain_console::assets_embedded() {
        warn!(
            "this binary has no console assets (npm was unavailable at build time); the page says how to get them"
        );
    }
    let router = app(config, api);
    // The engine's HTTP server: request size and time limits, many connections (the
    // defaults of `[http]`; the service's file may set others once the console reads it).
    tokio::spawn(async move {
        crate::http::serve(
            listener,
            router,
            &crate::http::HttpLimits::default(),
            shutdown,
        )
        .await;
    });
    info!(url = %format!("http://{bound}/"), "operations console");
    Ok(Some(bound))
}
