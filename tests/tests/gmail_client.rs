//! The Gmail mailbox over real HTTP against the fake Gmail API.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bionicbb_core::config::GmailConfig;
use bionicbb_core::error::{ApiError, ErrorKind};
use bionicbb_core::retry::RetryPolicy;
use bionicbb_tests::fakes::gmail::GmailFake;
use gmail_listener::gmail::{Download, Mailbox, Oversize, answer_bound, classify};
use google_gmail1::api::Scope;
use serde_json::Value;

const TOKEN: &str = "t0k";

struct Setup {
    fake: GmailFake,
    mailbox: Mailbox,
    token_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        attempt_timeout: Duration::from_secs(5),
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

/// A fake requiring `t0k`, and a mailbox whose token file holds `token`.
async fn setup_with_token(token: &str) -> Setup {
    bionicbb_core::tls::install_crypto_provider();
    let fake = GmailFake::start().await;
    fake.require_token(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("bearer");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let config = GmailConfig {
        api_base_url: Some(url::Url::parse(&fake.base_url()).unwrap()),
        bearer_token_file: Some(token_file.clone()),
        ..GmailConfig::default()
    };
    let mailbox = Mailbox::from_config(&config)
        .await
        .unwrap()
        .with_policy(fast());
    Setup {
        fake,
        mailbox,
        token_file,
        _dir: dir,
    }
}

async fn setup() -> Setup {
    setup_with_token(TOKEN).await
}

fn mail(n: usize) -> Vec<u8> {
    format!(
        "From: Gerrit Code Review <gerrit@example.org>\r\nTo: bot@example.org\r\n\
         Subject: Change in p[master]: change {n}\r\nX-Gerrit-MessageType: newchange\r\n\r\n\
         Body of mail {n}.\r\n"
    )
    .into_bytes()
}

/// The fake's answer to a GET, read as JSON (for wire-format assertions).
async fn wire_get(fake: &GmailFake, path_and_query: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path_and_query}", fake.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Requests seen whose line contains `needle`.
fn seen(fake: &GmailFake, needle: &str) -> Vec<String> {
    fake.faults()
        .requests()
        .into_iter()
        .filter(|r| r.contains(needle))
        .collect()
}

/// The id of the label `name`, from one listing of the labels.
async fn label_id(mailbox: &Mailbox, name: &str) -> Result<String, ApiError> {
    mailbox.labels().await?.require(name)
}

/// The id of the label `name`, created when missing, as the daemon's start
/// does.
async fn ensure_label(mailbox: &Mailbox, name: &str) -> Result<String, ApiError> {
    let labels = mailbox.labels().await?;
    mailbox.ensure_label_in(&labels, name).await
}

#[tokio::test]
async fn label_id_found_and_missing() {
    let s = setup().await;
    let id = s.fake.add_label("gerrit");
    assert!(id.starts_with("Label_"), "{id}");
    assert_eq!(label_id(&s.mailbox, "gerrit").await.unwrap(), id);
    assert_eq!(label_id(&s.mailbox, "INBOX").await.unwrap(), "INBOX");
    let err = label_id(&s.mailbox, "no-such-label").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("no-such-label"), "{err}");
}

#[tokio::test]
async fn ensure_label_creates_the_label_once() {
    let s = setup().await;
    let id = ensure_label(&s.mailbox, "bionicbb-quarantine")
        .await
        .unwrap();
    assert_eq!(
        label_id(&s.mailbox, "bionicbb-quarantine").await.unwrap(),
        id
    );
    assert_eq!(
        ensure_label(&s.mailbox, "bionicbb-quarantine")
            .await
            .unwrap(),
        id
    );
    assert_eq!(seen(&s.fake, "POST /gmail/v1/users/me/labels").len(), 1);
    let existing = s.fake.add_label("gerrit");
    assert_eq!(ensure_label(&s.mailbox, "gerrit").await.unwrap(), existing);
}

#[tokio::test]
async fn list_all_pages_keep_the_label_filter_and_come_oldest_first() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    let mut expected = Vec::new();
    for n in 0..7 {
        expected.push(s.fake.deliver(&mail(n), &["INBOX", "gerrit"]));
        s.fake.deliver(&mail(100 + n), &["INBOX"]);
    }
    s.fake.set_page_size_cap(2);
    let ids = s.mailbox.list_all(&label).await.unwrap();
    assert_eq!(ids, expected, "only labelled mail, oldest first");

    let pages = seen(&s.fake, "GET /gmail/v1/users/me/messages?");
    assert_eq!(pages.len(), 4, "{pages:#?}");
    for page in &pages {
        assert!(page.contains(&format!("labelIds={label}")), "{page}");
        assert!(page.contains("maxResults=500"), "{page}");
    }
    assert!(!pages[0].contains("pageToken"));
    assert!(pages[1..].iter().all(|p| p.contains("pageToken=")));
}

#[tokio::test]
async fn a_page_token_without_its_label_filter_is_refused() {
    // What a client that drops the filter on page 2 would run into.
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    for n in 0..3 {
        s.fake.deliver(&mail(n), &["gerrit"]);
    }
    s.fake.set_page_size_cap(1);
    let users = s.mailbox.hub().users();
    let (_, first) = users
        .messages_list("me")
        .add_label_ids(&label)
        .add_scope(Scope::Modify)
        .doit()
        .await
        .unwrap();
    let token = first.next_page_token.unwrap();
    let err = users
        .messages_list("me")
        .page_token(&token)
        .add_scope(Scope::Modify)
        .doit()
        .await
        .unwrap_err();
    let err = classify("messages.list", err, None);
    assert_eq!(err.kind, ErrorKind::Rejected);
    assert!(err.message.contains("Invalid pageToken"), "{err}");
}

#[tokio::test]
async fn an_empty_label_lists_nothing() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    s.fake.deliver(&mail(1), &["INBOX"]);
    let wire = wire_get(
        &s.fake,
        &format!("gmail/v1/users/me/messages?labelIds={label}"),
    )
    .await;
    assert!(wire.get("messages").is_none(), "{wire}");
    assert_eq!(wire["resultSizeEstimate"], 0);
    assert!(s.mailbox.list_all(&label).await.unwrap().is_empty());
}

/// The default `gmail.max_mail_size`.
const MAX: u64 = 1024 * 1024;

/// The mail `download` read, or a panic naming what it got instead.
async fn read(s: &Setup, id: &str, max: u64) -> Vec<u8> {
    match s.mailbox.download(id, max).await.unwrap() {
        Download::Mail(raw) => raw,
        other => panic!("{id}: {other:?}"),
    }
}

async fn refused(s: &Setup, id: &str, max: u64) -> Oversize {
    match s.mailbox.download(id, max).await.unwrap() {
        Download::TooLarge(over) => over,
        other => panic!("{id}: read although over {max} bytes: {other:?}"),
    }
}

#[tokio::test]
async fn download_returns_the_exact_bytes_with_one_request() {
    let s = setup().await;
    // Lengths 0, 1 and 2 modulo 3: no padding, `==` and `=`; and bytes
    // that use the URL-safe alphabet's `-` and `_`.
    let mut mails = Vec::new();
    for rest in 0..3 {
        let mut raw = mail(rest);
        while raw.len() % 3 != rest {
            raw.extend_from_slice(b"x");
        }
        mails.push(raw);
    }
    let mut with_binary = mail(7);
    with_binary.extend_from_slice(&[0xff, 0xfe, 0xfb, 0x3e, 0x3f]);
    mails.push(with_binary);
    for raw in &mails {
        let id = s.fake.deliver(raw, &["INBOX"]);
        assert_eq!(&read(&s, &id, MAX).await, raw);
        assert_eq!(
            seen(&s.fake, &id),
            [format!(
                "GET /gmail/v1/users/me/messages/{id}?format=raw&prettyPrint=false"
            )],
            "one request per mail"
        );
        let wire = wire_get(
            &s.fake,
            &format!("gmail/v1/users/me/messages/{id}?format=raw"),
        )
        .await;
        let encoded = wire["raw"].as_str().unwrap();
        assert_eq!(encoded.len() % 4, 0, "raw is padded on the wire");
        assert!(wire["historyId"].is_string() && wire["internalDate"].is_string());
    }
}

#[tokio::test]
async fn a_mail_at_the_limit_is_read_and_one_byte_more_is_too_large() {
    let s = setup().await;
    let max = 100_000;
    let mut at_limit = mail(1);
    at_limit.resize(max as usize, b'y');
    let id = s.fake.deliver(&at_limit, &["INBOX"]);
    assert_eq!(read(&s, &id, max).await, at_limit);

    let mut over = at_limit.clone();
    over.push(b'z');
    let id = s.fake.deliver(&over, &["INBOX"]);
    let oversize = refused(&s, &id, max).await;
    assert_eq!(oversize.mail_size, Some(max + 1), "{oversize:?}");
    assert_eq!(oversize.to_string(), format!("{} bytes", max + 1));
    assert_eq!(seen(&s.fake, &id).len(), 1, "not retried");
}

#[tokio::test]
async fn an_answer_announced_longer_than_the_bound_is_not_read() {
    let s = setup().await;
    let max = 100_000;
    let mut big = mail(2);
    big.resize(3 * max as usize, b'y');
    let id = s.fake.deliver(&big, &["INBOX"]);
    let oversize = refused(&s, &id, max).await;
    assert_eq!(oversize.mail_size, None);
    assert_eq!(oversize.received, 0, "refused on its Content-Length");
    assert!(
        oversize.announced.unwrap() > answer_bound(max),
        "{oversize:?}"
    );
}

/// A mail of 64 MiB (85 MiB of base64) against the 1 MiB limit: the client
/// stops after the bound, so the fake hands out only a fraction of it (the
/// bound plus what the sockets' buffers took) and the mailbox keeps nothing.
#[tokio::test]
async fn a_huge_streamed_mail_is_refused_after_reading_at_most_the_bound() {
    let s = setup().await;
    let size = 64 * 1024 * 1024;
    let id = s.fake.deliver_huge(&mail(3), size, &["INBOX"]);
    let oversize = refused(&s, &id, MAX).await;
    let bound = answer_bound(MAX);
    assert_eq!(oversize.mail_size, None);
    assert_eq!(oversize.announced, None, "streamed without a length");
    assert!(oversize.received > bound, "{oversize:?}");
    // At most one more chunk than the bound was held (hyper's largest read).
    assert!(oversize.received <= bound + 512 * 1024, "{oversize:?}");
    let whole = 4 * size.div_ceil(3);
    let sent = s.fake.huge_bytes_sent(&id);
    assert!(sent > bound, "{sent}");
    assert!(
        sent < whole / 4,
        "the fake sent {sent} of {whole} bytes: the client read on"
    );
    assert_eq!(seen(&s.fake, &id).len(), 1, "not retried");
    // The limit holds for a huge mail under a larger limit too.
    let id = s.fake.deliver_huge(&mail(4), 3 * MAX, &["INBOX"]);
    let raw = read(&s, &id, 3 * MAX).await;
    assert_eq!(raw.len() as u64, 3 * MAX);
    assert!(raw.starts_with(&mail(4)));
}

#[tokio::test]
async fn download_rate_limits_are_retried_then_reported() {
    let s = setup().await;
    let id = s.fake.deliver(&mail(3), &["INBOX"]);
    s.fake.rate_limit_next(2, 429);
    assert_eq!(read(&s, &id, MAX).await, mail(3));
    s.fake.rate_limit_next(10, 403);
    let err = s.mailbox.download(&id, MAX).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.message.contains("userRateLimitExceeded"), "{err}");
}

#[tokio::test]
async fn download_with_a_wrong_token_is_unauthorized_and_not_retried() {
    let s = setup_with_token("wrong").await;
    let id = s.fake.deliver(&mail(5), &["INBOX"]);
    let err = s.mailbox.download(&id, MAX).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert_eq!(err.status, Some(401));
    assert!(err.message.contains("gmail-listener auth"), "{err}");
    assert_eq!(seen(&s.fake, &id).len(), 1, "not retried");
    std::fs::write(&s.token_file, "t0k").unwrap();
    assert_eq!(read(&s, &id, MAX).await, mail(5));
}

#[tokio::test]
async fn trash_moves_the_mail_out_of_the_listing() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    let a = s.fake.deliver(&mail(1), &["INBOX", "gerrit"]);
    let b = s.fake.deliver(&mail(2), &["INBOX", "gerrit"]);
    s.mailbox.trash(&a).await.unwrap();
    assert_eq!(s.fake.in_trash(), vec![a.clone()]);
    let labels = s.fake.message_labels(&a);
    assert!(labels.contains(&"TRASH".to_string()) && !labels.contains(&"INBOX".to_string()));
    assert_eq!(s.mailbox.list_all(&label).await.unwrap(), vec![b]);
}

#[tokio::test]
async fn modify_moves_labels() {
    let s = setup().await;
    let gerrit = s.fake.add_label("gerrit");
    let quarantine = ensure_label(&s.mailbox, "quarantine").await.unwrap();
    let id = s.fake.deliver(&mail(1), &["INBOX", "gerrit"]);
    s.mailbox
        .modify(
            &id,
            std::slice::from_ref(&quarantine),
            std::slice::from_ref(&gerrit),
        )
        .await
        .unwrap();
    assert_eq!(s.fake.messages_with_label("quarantine"), vec![id.clone()]);
    assert!(s.fake.messages_with_label("gerrit").is_empty());
    assert!(s.mailbox.list_all(&gerrit).await.unwrap().is_empty());
    let err = s
        .mailbox
        .modify(&id, &["Label_999".into()], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected);
}

#[tokio::test]
async fn rate_limits_are_retried_then_succeed() {
    for status in [403, 429] {
        let s = setup().await;
        s.fake.add_label("gerrit");
        s.fake.rate_limit_next(2, status);
        assert!(label_id(&s.mailbox, "gerrit").await.is_ok(), "{status}");
        assert_eq!(seen(&s.fake, "/labels").len(), 3, "{status}");
    }
}

#[tokio::test]
async fn rate_limits_that_last_give_up_as_rate_limited() {
    let s = setup().await;
    s.fake.rate_limit_next(10, 403);
    let err = label_id(&s.mailbox, "gerrit").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(err.message.contains("userRateLimitExceeded"), "{err}");
    assert_eq!(seen(&s.fake, "/labels").len(), 4);
}

#[tokio::test]
async fn backend_errors_are_retried() {
    let s = setup().await;
    let id = s.fake.deliver(&mail(3), &["INBOX"]);
    s.fake.backend_error_next(3);
    assert_eq!(read(&s, &id, MAX).await, mail(3));
    assert_eq!(seen(&s.fake, &format!("/messages/{id}")).len(), 4);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let s = setup().await;
    let err = s
        .mailbox
        .download("00000000deadbeef", MAX)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(err.status, Some(404));
    assert_eq!(seen(&s.fake, "deadbeef").len(), 1);
    let err = s.mailbox.trash("00000000deadbeef").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized_until_the_file_changes() {
    let s = setup_with_token("wrong").await;
    s.fake.add_label("gerrit");
    let err = label_id(&s.mailbox, "gerrit").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(err.message.contains("gmail-listener auth"), "{err}");
    assert_eq!(seen(&s.fake, "/labels").len(), 1, "not retried");
    // A token minted elsewhere replaces the file: picked up without a restart.
    std::fs::write(&s.token_file, "t0k-but-longer").unwrap();
    s.fake.require_token(Some("t0k-but-longer"));
    assert!(label_id(&s.mailbox, "gerrit").await.is_ok());
}

#[tokio::test]
async fn the_daemon_refuses_to_start_without_a_token_cache() {
    let dir = tempfile::tempdir().unwrap();
    let config = GmailConfig {
        token_cache_file: dir.path().join("missing-token.json"),
        client_secret_file: dir.path().join("client_secret.json"),
        ..GmailConfig::default()
    };
    let err = Mailbox::from_config(&config).await.unwrap_err().to_string();
    assert!(err.contains("gmail-listener auth"), "{err}");
    assert!(err.contains("missing-token.json"), "{err}");
}

const MULTIPART: &str = "From: gerrit@example.org\r\nSubject: multipart\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nPlain text, length not a multiple of three!\r\n\
--b1\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n<p>Html</p>\r\n--b1--\r\n";

#[tokio::test]
async fn format_full_part_data_is_unpadded_and_the_hub_cannot_decode_it() {
    let s = setup().await;
    let id = s.fake.deliver(MULTIPART.as_bytes(), &["INBOX"]);

    let wire = wire_get(
        &s.fake,
        &format!("gmail/v1/users/me/messages/{id}?format=full"),
    )
    .await;
    let payload = &wire["payload"];
    assert_eq!(payload["mimeType"], "multipart/alternative");
    assert_eq!(payload["body"]["size"], 0);
    assert!(
        payload["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "Subject" && h["value"] == "multipart")
    );
    let parts = payload["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["partId"], "0");
    assert_eq!(parts[0]["mimeType"], "text/plain");
    assert_eq!(parts[1]["mimeType"], "text/html");
    let data = parts[0]["body"]["data"].as_str().unwrap();
    assert!(!data.ends_with('='), "part data is unpadded: {data}");
    let text = URL_SAFE_NO_PAD.decode(data).unwrap();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .starts_with("Plain text, length")
    );

    // The trap: google-gmail1 requires padding, so the whole message fails.
    let err = s
        .mailbox
        .hub()
        .users()
        .messages_get("me", &id)
        .format("full")
        .add_scope(Scope::Modify)
        .doit()
        .await
        .unwrap_err();
    assert!(
        matches!(err, google_gmail1::Error::JsonDecodeError(..)),
        "{err:?}"
    );
    assert_eq!(
        classify("messages.get", err, None).kind,
        ErrorKind::Malformed
    );
    // Which is why the mailbox fetches `format=raw`.
    assert_eq!(read(&s, &id, MAX).await, MULTIPART.as_bytes());
}

#[tokio::test]
async fn an_expired_history_id_is_not_found() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    let id = s.fake.deliver(&mail(1), &["gerrit"]);
    let users = s.mailbox.hub().users();
    let (_, history) = users
        .history_list("me")
        .start_history_id(1000)
        .label_id(&label)
        .add_history_types("messageAdded")
        .add_scope(Scope::Modify)
        .doit()
        .await
        .unwrap();
    let added = history.history.unwrap()[0].messages_added.clone().unwrap();
    assert_eq!(
        added[0].message.as_ref().unwrap().id.as_deref(),
        Some(id.as_str())
    );

    s.fake.expire_history();
    let err = users
        .history_list("me")
        .start_history_id(1000)
        .add_scope(Scope::Modify)
        .doit()
        .await
        .unwrap_err();
    assert_eq!(
        classify("history.list", err, None).kind,
        ErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_fails_without_prompting() {
    bionicbb_core::tls::install_crypto_provider();
    let fake = GmailFake::start().await;
    fake.require_token(Some(TOKEN));
    // Google's token endpoint, refusing the refresh token.
    let oauth = axum::Router::new().route(
        "/token",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::BAD_REQUEST,
                [("content-type", "application/json")],
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let oauth_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, oauth).await });

    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("client_secret.json");
    std::fs::write(
        &secret,
        serde_json::json!({"installed": {
            "client_id": "id.apps.googleusercontent.com", "client_secret": "s",
            "auth_uri": format!("{oauth_base}/auth"), "token_uri": format!("{oauth_base}/token"),
            "redirect_uris": ["http://localhost"]}})
        .to_string(),
    )
    .unwrap();
    let cache = dir.path().join("token.json");
    std::fs::write(
        &cache,
        serde_json::json!([{"scopes": [gmail_listener::gmail::MODIFY_SCOPE],
            "token": {"access_token": "stale", "refresh_token": "revoked",
                      "expires_at": [2020, 1, 0, 0, 0, 0, 0, 0, 0], "id_token": null}}])
        .to_string(),
    )
    .unwrap();
    let config = GmailConfig {
        api_base_url: Some(url::Url::parse(&fake.base_url()).unwrap()),
        client_secret_file: secret,
        token_cache_file: cache,
        ..GmailConfig::default()
    };
    let mailbox = Mailbox::from_config(&config)
        .await
        .unwrap()
        .with_policy(fast());
    let err = tokio::time::timeout(Duration::from_secs(10), label_id(&mailbox, "gerrit"))
        .await
        .expect("no interactive prompt")
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthorized, "{err}");
    assert!(err.message.contains("gmail-listener auth"), "{err}");
    assert!(
        seen(&fake, "/labels").is_empty(),
        "no request without a token"
    );
}

#[tokio::test]
async fn batch_modify_trashes_many_mails_in_one_request() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    let ids: Vec<String> = (0..3)
        .map(|n| s.fake.deliver(&mail(n), &["gerrit", "INBOX"]))
        .collect();
    s.mailbox
        .batch_modify(&ids[..2], &["TRASH".into()], std::slice::from_ref(&label))
        .await
        .unwrap();
    assert_eq!(
        seen(&s.fake, "POST /gmail/v1/users/me/messages/batchModify").len(),
        1
    );
    assert_eq!(s.fake.in_trash(), ids[..2].to_vec());
    // In the trash like `messages.trash` puts it: out of the inbox too.
    assert_eq!(s.fake.message_labels(&ids[0]), vec!["TRASH".to_string()]);
    assert_eq!(
        s.mailbox.list_all(&label).await.unwrap(),
        vec![ids[2].clone()]
    );

    // More than 1,000 ids is refused before anything is sent.
    let many: Vec<String> = (0..1001).map(|n| format!("{n:016x}")).collect();
    let err = s
        .mailbox
        .batch_modify(&many, &["TRASH".into()], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert_eq!(seen(&s.fake, "batchModify").len(), 1);

    // A label Gmail does not know: 400, not retried.
    let err = s
        .mailbox
        .batch_modify(&ids[2..], &["Label_999".into()], &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Rejected, "{err}");
    assert_eq!(seen(&s.fake, "batchModify").len(), 2);
    assert!(!s.fake.in_trash().contains(&ids[2]));
}

#[tokio::test]
async fn the_fake_batch_modify_speaks_gmails_wire_format() {
    let s = setup().await;
    let label = s.fake.add_label("gerrit");
    let id = s.fake.deliver(&mail(0), &["gerrit"]);
    let post = |body: Value| {
        let url = format!(
            "{}gmail/v1/users/me/messages/batchModify",
            s.fake.base_url()
        );
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            (code, response.text().await.unwrap())
        }
    };
    let too_many: Vec<String> = (0..1001).map(|_| id.clone()).collect();
    let (code, body) = post(serde_json::json!({"ids": too_many, "removeLabelIds": [label]})).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("invalidArgument"), "{body}");
    let (code, body) = post(serde_json::json!({"ids": [id]})).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(serde_json::json!({"ids": [], "removeLabelIds": [label]})).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) =
        post(serde_json::json!({"ids": [id, "ffffffffffffffff"], "removeLabelIds": [label]})).await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        s.fake.message_labels(&id),
        vec!["gerrit".to_string()],
        "all or nothing"
    );
    let (code, body) = post(serde_json::json!({"ids": [id], "removeLabelIds": [label]})).await;
    assert!((200..300).contains(&code), "{code} {body}");
    assert!(body.is_empty(), "{body}");
    assert!(s.fake.message_labels(&id).is_empty());
}
