//! Credentials for a host from a netrc file.
