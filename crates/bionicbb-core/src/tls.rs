//! The TLS crypto provider.
//!
//! reqwest is built without a provider of its own and google-gmail1 brings
//! `ring`; with no provider installed, building a reqwest client panics. Every
//! `main` and every test helper calls [`install_crypto_provider`] first.

/// Installs `ring` as the process-wide rustls provider. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
