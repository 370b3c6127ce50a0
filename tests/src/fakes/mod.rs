//! The fakes. Each is an axum server on `127.0.0.1:0` backed by an in-memory
//! model that tests seed and inspect.

pub mod gerrit;
pub mod gmail;
pub mod jenkins;
