//! Jenkins remote-API client and Notification-plugin payloads.
pub mod client;
pub mod job;
pub mod job_url;
pub mod lookup;
pub mod notification;
pub mod probe;
pub mod report;

pub use client::{BuildInfo, JenkinsClient, QueueState};
pub use job::{JobPath, QueueItemId};
pub use probe::JobDeclaration;
pub use report::BuildReport;
