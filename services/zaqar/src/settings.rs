//! Loading a role's configuration: defaults, then a TOML file, then
//! `ZAQAR_<ROLE>__*` environment variables, then command-line flags.

use std::path::Path;

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Builds a role's configuration. `overrides` holds the flags given on the
/// command line (absent flags are left out so they do not mask the file).
pub fn load<T: DeserializeOwned>(
    role: &str,
    file: Option<&Path>,
    overrides: impl Serialize,
) -> anyhow::Result<T> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.is_file() {
            anyhow::bail!("configuration file {} does not exist", file.display());
        }
        figment = figment.merge(Toml::file(file));
    }
    figment
        .merge(Env::prefixed(&format!("ZAQAR_{}__", role.to_uppercase())).split("__"))
        .merge(Serialized::defaults(overrides))
        .extract()
        .with_context(|| format!("invalid {role} configuration"))
}

/// Prints the bound address on stdout, the line scripts and tests wait for.
pub fn announce(address: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}")?;
    stdout.flush()?;
    Ok(())
}

/// Hides a password in a backend URI before it is logged.
pub fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &uri[..scheme_end], &uri[at + 1..])
        }
        _ => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_logged() {
        assert_eq!(redact("redis://:secret@host:1/0"), "redis://***@host:1/0");
        assert_eq!(redact("redis://host:1"), "redis://host:1");
    }
}
