//! Generates the storage protocol code and its descriptor set into `OUT_DIR`.
//!
//! `protoc` comes from the `PROTOC` environment variable, else from `PATH`
//! (Debian `protobuf-compiler`, installed by `deploy/test.sh`). Nothing is
//! downloaded at build time.

use std::path::PathBuf;

fn find_protoc() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PROTOC") {
        return Ok(PathBuf::from(path));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join("protoc"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "protoc not found: install protobuf-compiler (deploy/test.sh does) or set PROTOC"
                .to_string()
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
