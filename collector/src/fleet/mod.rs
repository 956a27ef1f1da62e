//! The fleet: every host's versions in one central PostgreSQL (issue 13).
//! This module owns the connection (a libpq URL with libpq's meaning of
//! `sslmode`, `sslrootcert`, `PGPASSFILE`/`~/.pgpass`), the central schema
//! and its migrations ([`schema`], SQL in `collector/migrations-pg/`), and
//! the shipper that `collector serve` runs ([`ship`]).

pub mod key;
pub mod schema;
pub mod ship;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Connects to the fleet store at `url` (a libpq URL or key=value string);
/// the password, when the URL has none, comes from `PGPASSFILE` or
/// `~/.pgpass` as libpq reads them.
pub fn connect(url: &str) -> Result<postgres::Client> {
    connect_with(url, None)
}

/// [`connect`], with the password read from `password_file` when given.
pub fn connect_with(url: &str, password_file: Option<&Path>) -> Result<postgres::Client> {
    let (url, tls) = split_tls(url)?;
    let mut config = postgres::Config::from_str(&url).map_err(|e| Error::FleetSetup(format!("the URL: {e}")))?;
    if config.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .ok()
            .or_else(|| uzers::get_current_username().map(|u| u.to_string_lossy().into_owned()));
        config.user(&user.unwrap_or_else(|| "postgres".into()));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_password().is_none() {
        let password = match password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| Error::FleetSetup(format!("password_file {}: {e}", f.display())))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
            None => pgpass(&config),
        };
        if let Some(p) = password {
            config.password(p);
        }
    }
    let connector = tls.connector()?;
    Ok(config.connect(postgres_native_tls::MakeTlsConnector::new(connector))?)
}

/// What TLS verification `sslmode` asks for (libpq: `require` encrypts but
/// checks no certificate unless `sslrootcert` is given; `verify-ca` checks
/// the chain; `verify-full` the chain and the host name).
#[derive(Debug, Default)]
struct Tls {
    verify_chain: bool,
    verify_name: bool,
    root: Option<PathBuf>,
}

impl Tls {
    fn connector(&self) -> Result<native_tls::TlsConnector> {
        let mut b = native_tls::TlsConnector::builder();
        let chain = self.verify_chain || self.root.is_some();
        b.danger_accept_invalid_certs(!chain).danger_accept_invalid_hostnames(!self.verify_name);
        if let Some(root) = &self.root {
            let pem =
                std::fs::read(root).map_err(|e| Error::FleetSetup(format!("sslrootcert {}: {e}", root.display())))?;
            let cert = native_tls::Certificate::from_pem(&pem)
                .map_err(|e| Error::FleetSetup(format!("sslrootcert {}: {e}", root.display())))?;
            b.add_root_certificate(cert);
        }
        b.build().map_err(|e| Error::FleetSetup(format!("TLS: {e}")))
    }
}

/// Takes the TLS parameters the driver does not know (`verify-ca`,
/// `verify-full`, `sslrootcert`) out of a URL's query.
fn split_tls(url: &str) -> Result<(String, Tls)> {
    let mut tls = Tls::default();
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_owned(), tls)) };
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("sslmode", "verify-ca")) => {
                tls.verify_chain = true;
                kept.push("sslmode=require".to_owned());
            }
            Some(("sslmode", "verify-full")) => {
                (tls.verify_chain, tls.verify_name) = (true, true);
                kept.push("sslmode=require".to_owned());
            }
            Some(("sslmode", "allow")) => kept.push("sslmode=prefer".to_owned()),
            Some(("sslrootcert", path)) => tls.root = Some(PathBuf::from(path)),
            _ => kept.push(param.to_owned()),
        }
    }
    Ok((if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }, tls))
}

/// The password for `config` in `PGPASSFILE` (else `~/.pgpass`): lines of
/// `host:port:database:user:password`, `*` matching anything, `\` quoting
/// `:` and `\`; ignored, as libpq does, when group or others may read it.
fn pgpass(config: &postgres::Config) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    let md = std::fs::metadata(&file).ok()?;
    if md.mode() & 0o077 != 0 {
        tracing::warn!(file = %file.display(), "password file has group or world access; ignored (as libpq does)");
        return None;
    }
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = config.get_user().unwrap_or_default().to_owned();
    let db = config.get_dbname().map_or(user.clone(), str::to_owned);
    let text = std::fs::read_to_string(&file).ok()?;
    pgpass_lookup(&text, [&host, &port, &db, &user])
}

fn pgpass_lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = vec![String::new()];
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => fields.last_mut()?.extend(chars.next()),
                ':' if fields.len() < 5 => fields.push(String::new()),
                c => fields.last_mut()?.push(c),
            }
        }
        if fields.len() == 5 && fields[..4].iter().zip(want).all(|(f, w)| f == "*" || f == w) {
            return fields.pop();
        }
    }
    None
}

/// `url` without its password, for logs and `stats`.
pub fn display_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:no\n*:5433:fleet:ft:se\\:cret\n";
        assert_eq!(pgpass_lookup(text, ["db1", "5433", "fleet", "ft"]).as_deref(), Some("se:cret"));
        assert_eq!(pgpass_lookup(text, ["db1", "5432", "fleet", "ft"]), None);
    }

    #[test]
    fn tls_modes_the_driver_lacks_are_mapped_and_passwords_hidden() {
        let (url, tls) = split_tls("postgresql://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem").unwrap();
        assert_eq!(url, "postgresql://u@h/db?sslmode=require");
        assert!(tls.verify_chain && tls.verify_name && tls.root.is_some());
        assert_eq!(display_url("postgresql://u:pw@h:5/db"), "postgresql://u@h:5/db");
    }
}
