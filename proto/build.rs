//! Generates the storage protocol code and its descriptor set into `OUT_DIR`.
//!
//! `protoc` comes from the `PROTOC` environment variable, else from `PATH`,
//! else from the `protoc-bin-vendored` crate (Google's binaries, fetched
//! with the other crates from crates.io), so a bare machine with only the
//! Rust toolchain builds. Nothing is downloaded at build time.

use std::path::PathBuf;

fn find_protoc() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PROTOC") {
        return Ok(PathBuf::from(path));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path_var)
        .map(|dir| dir.join("protoc"))
        .find(|candidate| candidate.is_file())
    {
        return Ok(found);
    }
    protoc_bin_vendored::protoc_bin_path().map_err(|error| {
        format!("protoc not found (no PROTOC, none on PATH, no vendored binary: {error})")
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=proto");
    let protoc = find_protoc()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("storage_descriptor.bin"))
        .compile_with_config(
            config,
            &["proto/zaqar/storage/v1/storage.proto"],
            &["proto"],
        )?;
    Ok(())
}
