//! build-listener: turns Jenkins build notifications into Gerrit reviews.

pub mod metrics;
pub mod status;
