//! The default of every optional key (`config.example.toml` shows them).

use super::*;

pub fn state_dir() -> PathBuf {
    PathBuf::from("/var/lib/bionicbb")
}
pub fn http_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn reconcile_interval() -> Duration {
    Duration::from_secs(10 * 60)
}
pub fn reconcile_full_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}
pub fn reconcile_limit() -> usize {
    1000
}
pub fn label() -> String {
    "gerrit".into()
}
pub fn quarantine_label() -> String {
    "gerrit-unparsed".into()
}
pub fn poll_interval() -> Duration {
    Duration::from_secs(15)
}
pub fn concurrency() -> usize {
    8
}
pub fn client_secret_file() -> PathBuf {
    PathBuf::from("/etc/bionicbb/client_secret.json")
}
pub fn token_cache_file() -> PathBuf {
    PathBuf::from("/var/lib/bionicbb/gmail-token.json")
}
pub fn listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
pub fn public_url() -> url::Url {
    url::Url::parse("http://127.0.0.1:8080/").expect("valid default URL")
}
pub fn body_limit() -> usize {
    4 * 1024 * 1024
}
pub fn catch_up_interval() -> Duration {
    Duration::from_secs(60)
}
pub fn catch_up_after() -> Duration {
    Duration::from_secs(120)
}
pub fn catch_up_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
pub fn outbox_concurrency() -> usize {
    8
}
pub fn max_mail_size() -> u64 {
    1024 * 1024
}
pub fn label_name() -> String {
    "Verified".into()
}
pub fn votes() -> BTreeMap<String, i32> {
    BTreeMap::from([("SUCCESS".into(), 1), ("FAILURE".into(), -1)])
}
pub fn notify() -> String {
    "OWNER_REVIEWERS".into()
}
pub fn targets() -> BTreeMap<String, String> {
    [
        ("arm", "aosp_arm-eng"),
        ("aarch64", "aosp_arm64-eng"),
        ("mips", "aosp_mips-eng"),
        ("mips64", "aosp_mips64-eng"),
        ("x86", "aosp_x86-eng"),
        ("x86_64", "aosp_x86_64-eng"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}
pub fn trusted_domains() -> Vec<String> {
    vec!["google.com".into(), "android.com".into()]
}
pub fn skip_file_names() -> Vec<String> {
    vec!["CleanSpec.mk".into()]
}
pub fn skip_path_prefixes() -> Vec<String> {
    vec!["tools/bionicbb".into()]
}
pub fn skip_kinds() -> Vec<String> {
    vec!["NO_CHANGE".into(), "NO_CODE_CHANGE".into()]
}
pub fn build_wip() -> bool {
    true
}
pub fn build_private() -> bool {
    true
}
pub fn cancel_superseded() -> bool {
    true
}
pub fn superseded_message() -> bool {
    true
}
pub fn explain_skips() -> bool {
    true
}
pub fn acknowledge_commands() -> bool {
    true
}
