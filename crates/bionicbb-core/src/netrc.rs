//! Credentials for a host from a netrc file.

use crate::config::Secret;

/// A login and password for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub login: String,
    pub password: Secret,
}
