//! Guards the TLS feature set: in a fresh process where nothing installed a
//! rustls crypto provider beforehand, building every client must work (the
//! clients install `ring` themselves). A dependency that switched another
//! provider on, or a client built with reqwest's defaults, would panic here
//! with "No rustls crypto provider is configured" or pick a second provider.
//! This file holds one test so that it runs in a process of its own.

use std::time::Duration;

use bionicbb_core::config::Secret;
use bionicbb_core::gerrit::GerritClient;
use bionicbb_core::jenkins::JenkinsClient;
use bionicbb_core::retry::RetryPolicy;

#[tokio::test]
async fn clients_build_without_an_installed_provider() {
    let policy = RetryPolicy::default();
    let timeout = Duration::from_secs(5);
    GerritClient::new(
        "https://gerrit.example.org/".parse().unwrap(),
        None,
        timeout,
        policy.clone(),
    )
    .expect("Gerrit client");
    JenkinsClient::new(
        "https://jenkins.example.org/".parse().unwrap(),
        "bionicbb",
        Secret::new("token"),
        timeout,
        policy,
    )
    .expect("Jenkins client");
    bionicbb_core::http::client(bionicbb_core::Service::BuildListener, timeout, false)
        .expect("plain HTTP client");
    gmail_listener::gmail::hub_with(
        google_gmail1::common::NoToken,
        Some("https://gmail.googleapis.com/"),
    )
    .expect("Gmail hub");
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_some(),
        "a provider is installed once the clients exist"
    );
}
