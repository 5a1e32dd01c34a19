//! Compiles the upstream remote-write protobuf definitions (see proto/README.md).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        [
            "remote.proto",
            "types.proto",
            "io/prometheus/write/v2/types.proto",
        ],
        ["proto/prompb"],
    )?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
