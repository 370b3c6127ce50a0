//! Jenkins remote-API client and Notification-plugin payloads.
pub mod notification;
