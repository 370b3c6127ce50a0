//! Requests per mail: the real `gmail-listener` against the fakes, each
//! server's log checked request by request. A mail that builds costs one
//! Gmail read, one Gerrit query and one Jenkins trigger; a comment whose
//! change message shows its command costs the same; a merged mail costs the
//! Gmail read alone. Each run also lists the labels once, lists the label
//! once and takes the handled mail out of it.

use bionicbb_tests::fault::Faults;
use bionicbb_tests::world::{KEY, World, fixture};

/// The one change query of a mail that needs the patch set's committer
/// and files, and the votes on it for the upload policy (a 2.x mail names
/// the change by its triplet).
fn change_query() -> String {
    format!(
        "GET /a/changes/platform%2Fbionic~master~{KEY}\
         ?o=ALL_REVISIONS&o=ALL_COMMITS&o=ALL_FILES&o=DETAILED_LABELS&o=MESSAGES\
         &o=DETAILED_ACCOUNTS"
    )
}

const TRIGGER: &str = "POST /job/bionic-presubmit/buildWithParameters";

/// The requests a fake saw since `*from`, which moves to the end.
fn since(faults: &Faults, from: &mut usize) -> Vec<String> {
    let all = faults.requests();
    let new = all[*from..].to_vec();
    *from = all.len();
    new
}

/// Runs the listener once with `mail` in the label, checks what Gmail saw
/// during the run, and returns what Gerrit and Jenkins saw.
async fn one_mail(w: &World, seen: &mut [usize; 3], mail: &[u8]) -> [Vec<String>; 2] {
    let id = w.deliver(mail);
    let (status, output) = w.once().await;
    assert!(status.success(), "exit {status:?}; output:\n{output}");
    assert!(w.labelled().is_empty(), "{output}");
    let gmail = since(w.gmail.faults(), &mut seen[0]);
    let gerrit = since(w.gerrit.faults(), &mut seen[1]);
    let jenkins = since(w.jenkins.faults(), &mut seen[2]);
    let (mine, poll): (Vec<String>, Vec<String>) = gmail.into_iter().partition(|r| r.contains(&id));
    // Per mail: one read, and at most one request taking it out of the
    // label (its own trash, unless the run batches removals).
    let read = format!("GET /gmail/v1/users/me/messages/{id}?format=raw&prettyPrint=false");
    assert_eq!(mine.first(), Some(&read), "{mine:#?}");
    let removal: Vec<&String> = mine[1..]
        .iter()
        .chain(poll.iter().filter(|r| r.contains("/batchModify")))
        .collect();
    assert_eq!(removal.len(), 1, "{mine:#?}\n{poll:#?}");
    assert!(
        removal[0].starts_with("POST /gmail/v1/users/me/messages/"),
        "{removal:?}"
    );
    // Per run: one listing page and one listing of the labels, which
    // gives the ids of both the watched and the quarantine label.
    let lists = poll.iter().filter(|r| r.contains("/messages?")).count();
    assert_eq!(lists, 1, "{poll:#?}");
    let label_lists = poll
        .iter()
        .filter(|r| r.starts_with("GET /gmail/v1/users/me/labels?"))
        .count();
    assert_eq!(label_lists, 1, "{poll:#?}");
    assert!(
        poll.iter().all(|r| r.contains("/messages?")
            || r.contains("/labels?")
            || r.contains("/batchModify")),
        "{poll:#?}"
    );
    [gerrit, jenkins]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_a_confirmed_comment_and_a_merge_cost_only_the_needed_requests() {
    let w = World::new().await;
    let n = w.sample_change(2);
    let mut seen = [0; 3];

    // An upload: one Gerrit query with the commits and files, one trigger.
    let [gerrit, jenkins] = one_mail(&w, &mut seen, &fixture("02-newpatchset-2.x.eml")).await;
    assert_eq!(gerrit, [change_query()]);
    assert_eq!(
        jenkins,
        [TRIGGER],
        "no crumb, no job check with an API token"
    );
    assert_eq!(w.jenkins.triggers(), 1);

    // A `bionicbb:retry` comment whose change message shows the command:
    // the same query confirms it (no `/comments`), then the trigger, then
    // the one acknowledgement of the command.
    w.gerrit.add_message(
        n,
        2,
        w.dana,
        "Patch Set 2:\n\nbionicbb:retry",
        &bionicbb_tests::fakes::gerrit::format_timestamp(1_456_224_069, 0),
    );
    let comment = fixture("04-comment-retry-2.x.eml");
    let [gerrit, jenkins] = one_mail(&w, &mut seen, &comment).await;
    assert_eq!(
        gerrit,
        [
            change_query(),
            "POST /a/changes/platform%2Fbionic~123456/revisions/2/review".to_string()
        ]
    );
    assert_eq!(jenkins, [TRIGGER]);
    assert_eq!(w.jenkins.triggers(), 2);

    // A merged mail is "nothing to do" whatever Gerrit says: no query.
    let [gerrit, jenkins] = one_mail(&w, &mut seen, &fixture("07-merged-2.x.eml")).await;
    assert_eq!(gerrit, Vec::<String>::new());
    assert_eq!(jenkins, Vec::<String>::new());
    assert_eq!(w.jenkins.triggers(), 2);
}

/// `facts::gather` over real HTTP: one query gives the patch set's ref,
/// committer and files; a server that could not put the commit or the files
/// in its answer is asked for them on their own, with the same facts; an
/// unknown change is one 404 and no facts.
#[tokio::test]
async fn gathering_facts_is_one_query_and_falls_back_when_details_are_missing() {
    use bionicbb_core::event::{GerritEvent, MessageType};
    use bionicbb_core::gerrit::GerritClient;
    use bionicbb_core::retry::RetryPolicy;
    use bionicbb_tests::fakes::gerrit::GerritFake;
    use gmail_listener::facts::gather;

    let fake = GerritFake::start().await;
    let dana = fake.add_account("Dana Dev", "dana@example.com", "dana", "pw");
    let n = fake.create_change("platform/bionic", "master", KEY, dana, "Fix");
    fake.add_patch_set(n, "dana@example.com", &["libc/a.cpp"]);
    fake.add_patch_set(n, "robot@example.com", &["libc/b.cpp", "libc/c.cpp"]);
    let policy = RetryPolicy::once(std::time::Duration::from_secs(5));
    let client = GerritClient::new(fake.url(), None, policy.attempt_timeout, policy).unwrap();
    let config = bionicbb_core::config::Config::parse(
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
        [jobs]
        "#,
        std::path::Path::new("test.toml"),
    )
    .unwrap();
    let event = GerritEvent {
        message_type: MessageType::NewPatchSet,
        change_id: KEY.into(),
        change_number: Some(n),
        patch_set: 1,
        project: "platform/bionic".into(),
        branch: "master".into(),
        owner: None,
        author: None,
        comment_date: None,
        date: None,
        votes: vec![],
        commands: vec![],
    };

    let facts = gather(&client, &event, &config)
        .await
        .unwrap()
        .expect("facts");
    assert_eq!(
        facts.patch_set_ref.as_deref(),
        Some("refs/changes/56/123456/1")
    );
    assert_eq!(facts.committer_email.as_deref(), Some("dana@example.com"));
    assert_eq!(facts.files, ["libc/a.cpp"]);
    assert_eq!(facts.current_patch_set, 2);
    let mut seen = 0;
    assert_eq!(
        since(fake.faults(), &mut seen),
        [format!(
            "GET /changes/platform%2Fbionic~{n}\
             ?o=ALL_REVISIONS&o=ALL_COMMITS&o=ALL_FILES&o=DETAILED_LABELS&o=MESSAGES\
             &o=DETAILED_ACCOUNTS"
        )]
    );

    fake.set_revision_details_unavailable(true);
    let fallback = gather(&client, &event, &config)
        .await
        .unwrap()
        .expect("facts");
    assert_eq!(fallback, facts);
    let asked = since(fake.faults(), &mut seen);
    assert_eq!(asked.len(), 3, "{asked:#?}");
    assert!(asked[1].ends_with("/revisions/1/commit"), "{asked:#?}");
    assert!(asked[2].ends_with("/revisions/1/files"), "{asked:#?}");

    let missing = GerritEvent {
        change_number: Some(999_999),
        ..event
    };
    assert_eq!(gather(&client, &missing, &config).await.unwrap(), None);
    assert_eq!(since(fake.faults(), &mut seen).len(), 1);
}
