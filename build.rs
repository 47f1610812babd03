//! Generates the gRPC code from `proto/` with protox (a pure-Rust protobuf compiler: no protoc
//! binary needed) and tonic-prost-build, and writes the file descriptor set that server
//! reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/lethe/v1/lethe.proto"];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("lethe_descriptor.bin"), protox::prost::Message::encode_to_vec(&fds))?;
    tonic_prost_build::configure()
        // Images arrive as slices of the received message, not copies.
        .bytes(".lethe.v1.Read.image")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
