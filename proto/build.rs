//! Generates the Rust code for every .proto under proto/ with tonic's codegen.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/vectron/v1/common.proto",
        "proto/vectron/v1/vectron.proto",
        "proto/vectron/v1/auth.proto",
        "proto/vectron/v1/admin.proto",
        "proto/vectron/v1/rerank.proto",
        "proto/vectron/internal/v1/raft.proto",
        "proto/vectron/internal/v1/placement.proto",
        "proto/vectron/internal/v1/worker.proto",
    ];
    let descriptors = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("vectron_descriptor.bin");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .file_descriptor_set_path(descriptors)
        // Payload text is shared, not copied, from the request buffer to the Raft entry.
        .bytes(".vectron.internal.v1.ShardPoint.payload_json")
        // Ordered, so one JSON object always encodes to the same bytes (the gateway's
        // search cache keys requests by their encoding).
        .btree_map(".vectron.v1.Struct.fields")
        .compile_protos(&protos, &["proto"])?;
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
