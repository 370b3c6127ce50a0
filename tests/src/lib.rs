//! In-process fakes of Gerrit, Jenkins and Gmail that speak the real wire
//! formats, and the harness the end-to-end tests use to run the real
//! binaries against them.

pub mod bench;
pub mod chaos;
pub mod fakes;
pub mod fault;
pub mod harness;
pub mod mailgen;
pub mod notify;
pub mod world;
