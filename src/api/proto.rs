//! Code generated from `proto/lethe/v1/lethe.proto` (build.rs: protox + tonic-prost-build).

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("lethe.v1");

/// The encoded file descriptor set of the API, served by gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("lethe_descriptor");
