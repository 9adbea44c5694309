//! Test support of the archive's tests: a real S3 API (moto).

pub mod moto;
