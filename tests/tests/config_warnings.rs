//! End-to-end: what the configuration load warns about reaches each real
//! daemon's log. A secret file that group or others can read is accepted,
//! with a warning that names the key and the file, never the secret.

use std::path::Path;
use std::time::Duration;

use bionicbb_tests::fakes::gerrit::GerritFake;
use bionicbb_tests::harness::{
    BOT_EMAIL, BOT_HTTP_PASSWORD, BOT_USER, Daemon, JENKINS_TOKEN, Setup, free_port,
};
use bionicbb_tests::world::{SECRET, World};

const WAIT: Duration = Duration::from_secs(15);
const WARNING: &str = "secret file is accessible by group or others";

fn make_world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

/// The daemon's output has one warning line for `file`, naming `key`.
fn assert_warned(output: &str, key: &str, file: &Path) {
    let file = file.display().to_string();
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| l.contains(WARNING) && l.contains(&file))
        .collect();
    assert_eq!(lines.len(), 1, "one warning for {file}; output:\n{output}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
    assert!(lines[0].contains(key), "{}", lines[0]);
    assert!(lines[0].contains("644"), "{}", lines[0]);
}

#[tokio::test]
async fn gmail_listener_logs_the_warning_for_a_world_readable_secret_file() {
    let world = World::new().await;
    let dir = world.config.parent().unwrap().to_path_buf();
    let token = dir.join("jenkins-token");
    make_world_readable(&token);

    let (status, output) = world.once().await;

    assert!(status.success(), "{output}");
    assert_warned(&output, "[jenkins] api_token_file", &token);
    // The other secret file is private: no warning for it.
    let private = dir.join("listener-secret").display().to_string();
    assert!(
        !output
            .lines()
            .any(|l| l.contains(WARNING) && l.contains(&private)),
        "{output}"
    );
    assert!(!output.contains(JENKINS_TOKEN), "{output}");
    assert!(!output.contains(SECRET), "{output}");
}

#[tokio::test]
async fn build_listener_logs_the_warning_for_a_world_readable_secret_file() {
    bionicbb_core::tls::install_crypto_provider();
    let gerrit = GerritFake::start().await;
    gerrit.add_account("bionicbb", BOT_EMAIL, BOT_USER, BOT_HTTP_PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let secret = "build-listener-secret-5678";
    let config = Setup::build_listener(dir.path(), gerrit.url().as_str(), free_port(), secret)
        .write_config();
    let secret_file = dir.path().join("listener-secret");
    make_world_readable(&secret_file);
    let token = dir.path().join("jenkins-token");
    make_world_readable(&token);

    let daemon = Daemon::spawn(
        "build-listener",
        &["--config", &config.display().to_string()],
    );
    daemon.wait_for_output("listening on", WAIT).await;
    let (status, output) = daemon.terminate(WAIT).await;

    assert!(status.success(), "{output}");
    assert_warned(&output, "[build_listener] secret_file", &secret_file);
    assert_warned(&output, "[jenkins] api_token_file", &token);
    assert!(!output.contains(secret), "{output}");
    assert!(!output.contains(JENKINS_TOKEN), "{output}");
}
