//! Which bundled provider would receive a credential for a URL?
//!
//! Run with:
//!     cargo run --example route_lookup -- https://gmail.googleapis.com/gmail/v1/users/me https://example.com/
//!
//! Expected output:
//!     https://gmail.googleapis.com/gmail/v1/users/me -> google-gmail (rule gmail.googleapis.com/gmail/v1), header Authorization: Bearer <access_token>
//!     https://example.com/ -> no provider: tunnelled untouched

use authsome::providers::Registry;
use authsome::routing::RouteTable;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::bundled()?;
    let table = RouteTable::build(registry.iter().map(|e| e.def.as_ref()));
    for url in std::env::args().skip(1) {
        let rest = url.strip_prefix("https://").unwrap_or(&url);
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().unwrap_or(443)),
            None => (authority, 443),
        };
        let path = if path.is_empty() { "/" } else { path };
        match table.resolve(host, port, path) {
            Some(route) => {
                let def = &registry.require(&route.provider)?.def;
                let inj = def.injection().ok_or("provider has no injection")?;
                eprintln!(
                    "{url} -> {} (rule {}), header {}: {}<{}>",
                    route.provider,
                    route.rule,
                    inj.name,
                    inj.prefix,
                    inj.source.as_string()
                );
            }
            None => eprintln!("{url} -> no provider: tunnelled untouched"),
        }
    }
    Ok(())
}
