//! Compiles the wire contract in `proto/` with protox, so no `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../proto";
    let files = [
        "rigger/v1/enrollment.proto",
        "rigger/v1/catalog.proto",
        "rigger/v1/content.proto",
        "rigger/v1/admin.proto",
        "rigger/v1/agent_control.proto",
    ];
    let fds = protox::compile(files, [proto_dir])?;
    // Small per-call buffers: see src/codec.rs.
    tonic_prost_build::configure()
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={proto_dir}");
    Ok(())
}
