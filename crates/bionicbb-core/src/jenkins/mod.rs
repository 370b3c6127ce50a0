//! Jenkins remote-API client and Notification-plugin payloads.
pub mod client;
pub mod notification;

pub use client::{BuildInfo, JenkinsClient, JobPath, QueueItemId, QueueState};
