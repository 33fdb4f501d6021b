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
