//! Name resolution for the outbound guard, behind a trait so tests can make a name
//! "resolve" to any address (10.0.0.1, 169.254.169.254) without traffic to it.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

/// The future a [`Resolver`] returns.
pub type Resolving<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>>;

/// Resolves a host name to socket addresses (the guard uses the addresses, not the port).
pub trait Resolver: Send + Sync + std::fmt::Debug + 'static {
    /// The addresses of `host` (a name, never an IP literal), with `port`.
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a>;
}

/// The system resolver (tokio's `lookup_host`, i.e. getaddrinfo).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A fixed table of names, for tests and fixed setups; unknown names do not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    names: BTreeMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// Adds (or replaces) the addresses of `host`.
    pub fn with(mut self, host: &str, addresses: &[IpAddr]) -> Self {
        self.names
            .insert(host.to_ascii_lowercase(), addresses.to_vec());
        self
    }
}

impl Resolver for StaticResolver {
    fn resolve<'a>(&'a self, host: &'a str, port: u16) -> Resolving<'a> {
        let found = self.names.get(&host.to_ascii_lowercase()).map(|ips| {
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        });
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{host}: not in the static resolver's table"),
                )
            })
        })
    }
}
