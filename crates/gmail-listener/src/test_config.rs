//! The configuration the unit tests share: the servers and the secret a
//! configuration needs, followed by the sections a test adds.

use bionicbb_core::config::Config;

/// A valid configuration: the common sections, then `extra` (TOML, e.g.
/// `[jobs]` and `[policy]`).
pub fn with(extra: &str) -> Config {
    let text = format!(
        r#"
        [gerrit]
        url = "https://gerrit.example.org/"
        bot_email = "bionicbb@example.com"
        [jenkins]
        url = "https://jenkins.example.org/"
        user = "bionicbb"
        api_token = "token"
        [build_listener]
        secret = "s3cret"
        {extra}
        "#
    );
    Config::parse(&text, std::path::Path::new("test.toml")).expect("test config")
}
