//! A Jenkins trigger whose answer was lost builds once: the Jenkins client's
//! lookups against the fake Jenkins, then the real `gmail-listener` binary
//! (needs it built: `cargo build -p gmail-listener`, or `cargo test
//! --workspace`) against the fake Gerrit, Jenkins and Gmail.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::Method;
use bionicbb_core::config::Secret;
use bionicbb_core::jenkins::{JenkinsClient, JobPath, QueueItemId};
use bionicbb_core::retry::RetryPolicy;
use bionicbb_core::{ErrorKind, tls};
use bionicbb_tests::fakes::gerrit::format_timestamp;
use bionicbb_tests::fakes::jenkins::JenkinsFake;
use bionicbb_tests::fault::Fault;
use bionicbb_tests::harness::{JENKINS_TOKEN, JENKINS_USER, assert_ok};
use bionicbb_tests::mailgen::{self, MailChange, Person};
use bionicbb_tests::world::{self, KEY, fixture};

const JOB: &str = "bionic-presubmit";
const FOUND: &str = "found the build the lost answer had started";

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn client(fake: &JenkinsFake) -> JenkinsClient {
    JenkinsClient::new(
        url::Url::parse(&fake.url()).unwrap(),
        JENKINS_USER,
        Secret::new(JENKINS_TOKEN),
        Duration::from_secs(5),
        RetryPolicy::once(Duration::from_secs(5)),
    )
    .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------
// The client's lookups against the fake Jenkins.

#[tokio::test]
async fn a_lost_trigger_answer_is_a_502_but_the_item_is_queued_and_found() {
    tls::install_crypto_provider();
    let fake = JenkinsFake::start().await;
    fake.add_user(JENKINS_USER, JENKINS_TOKEN);
    fake.add_job("android/bionic presubmit", &[("REF", ""), ("LUNCH", "eng")]);
    fake.add_job(JOB, &[("REF", ""), ("LUNCH", "eng")]);
    let jenkins = client(&fake);
    let folder = JobPath::parse("android/bionic presubmit").unwrap();
    let top = JobPath::parse(JOB).unwrap();
    let ours = params(&[("REF", "refs/changes/56/123456/4")]);

    // The same parameters on the top-level job: not ours.
    jenkins.trigger(&top, &ours).await.unwrap();
    fake.lose_next_trigger_answer();
    let err = jenkins.trigger(&folder, &ours).await.unwrap_err();
    assert_eq!(err.status, Some(502), "{err}");
    assert_eq!(err.kind, ErrorKind::Transient);
    assert_eq!(fake.queue().len(), 2, "the build was queued all the same");
    let folder_item = fake
        .queue()
        .into_iter()
        .find(|q| q.job == "android/bionic presubmit")
        .unwrap();
    assert_eq!(folder_item.params["LUNCH"], "eng", "the job's default");

    // Only the parameters sent are compared (LUNCH is a default).
    assert_eq!(
        jenkins.find_queued(&folder, &ours).await.unwrap(),
        vec![QueueItemId(folder_item.id)]
    );
    let other = params(&[("REF", "refs/changes/56/123456/5")]);
    assert_eq!(jenkins.find_queued(&folder, &other).await.unwrap(), vec![]);
    assert_eq!(
        jenkins
            .find_builds(&folder, &ours, now_ms() - 1000)
            .await
            .unwrap(),
        vec![],
        "still waiting: no build yet"
    );

    // Once started, the item is a build, found only since its trigger.
    let number = fake.start_next("android/bionic presubmit").await.unwrap();
    assert_eq!(jenkins.find_queued(&folder, &ours).await.unwrap(), vec![]);
    let found = jenkins
        .find_builds(&folder, &ours, now_ms() - 1000)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "the build is found: {found:?}");
    assert_eq!(found[0].number, number);
    assert_eq!(
        found[0].queue_id,
        Some(folder_item.id),
        "with its queue item"
    );
    assert_eq!(
        found[0].url,
        format!("{}job/android/job/bionic%20presubmit/{number}/", fake.url())
    );
    assert_eq!(
        jenkins
            .find_builds(&folder, &ours, now_ms() + 120_000)
            .await
            .unwrap(),
        vec![],
        "a build older than the trigger (beyond the clock slack) is not ours"
    );
    assert_eq!(
        jenkins.find_builds(&folder, &other, 0).await.unwrap(),
        vec![]
    );
    let declared = jenkins.declared_parameters(&folder).await.unwrap();
    assert_eq!(
        declared.into_iter().collect::<Vec<_>>(),
        vec!["LUNCH".to_string(), "REF".to_string()]
    );
    let requests = fake.faults().requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("GET /queue/api/json?tree=")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_build_behind_many_newer_builds_of_a_busy_job_is_still_found() {
    tls::install_crypto_provider();
    let fake = JenkinsFake::start().await;
    fake.add_user(JENKINS_USER, JENKINS_TOKEN);
    fake.add_job(JOB, &[("REF", "")]);
    let jenkins = client(&fake);
    let job = JobPath::parse(JOB).unwrap();
    let sent_ms = now_ms() - 1000;
    let ours = params(&[("REF", "refs/changes/56/123456/4")]);
    jenkins.trigger(&job, &ours).await.unwrap();
    let number = fake.start_next(JOB).await.unwrap();
    // A busy Jenkins: many more builds of the job start before the bot
    // looks, more than one page of the job's build list.
    for i in 0..130 {
        let other = params(&[("REF", &format!("refs/changes/{i:02}/{}/1", 200_000 + i))]);
        jenkins.trigger(&job, &other).await.unwrap();
        fake.start_next(JOB).await.unwrap();
    }
    let found = jenkins.find_builds(&job, &ours, sent_ms).await.unwrap();
    assert_eq!(
        found.iter().map(|b| b.number).collect::<Vec<_>>(),
        vec![number],
        "the build is found however many builds came after it"
    );
    // Pages stop once they reach builds older than the trigger.
    let pages = |fake: &JenkinsFake| {
        fake.faults()
            .requests()
            .iter()
            .filter(|r| r.contains("/job/bionic-presubmit/api/json?tree=builds"))
            .count()
    };
    assert_eq!(pages(&fake), 3, "{:?}", fake.faults().requests());
}

// ---------------------------------------------------------------------------
// gmail-listener end to end.

/// The shared gmail-listener world with change 123456 at two patch sets,
/// as `02-newpatchset-2.x.eml` expects.
struct World {
    base: world::World,
}

impl std::ops::Deref for World {
    type Target = world::World;
    fn deref(&self) -> &world::World {
        &self.base
    }
}

impl World {
    async fn new() -> World {
        let base = world::World::new().await;
        assert_eq!(base.sample_change(2), 123456);
        World { base }
    }

    fn deliver_new_patch_set(&self) -> String {
        self.deliver(&fixture("02-newpatchset-2.x.eml"))
    }

    /// A trusted reviewer's `bionicbb:retry` on patch set 2, as Gerrit
    /// stores it (a change message dated now) and mails it.
    fn deliver_retry(&self) -> String {
        let date = now_ms() / 1000;
        self.gerrit.add_message(
            123456,
            2,
            self.sam,
            "Patch Set 2:\n\nbionicbb:retry",
            &format_timestamp(date, 0),
        );
        let change = MailChange::sample(123456);
        let sam = Person::new("Sam Reviewer", "sam@example.com");
        self.deliver(&mailgen::comment(
            &change,
            2,
            &sam,
            "",
            "bionicbb:retry",
            date,
        ))
    }

    /// Runs `gmail-listener --once` until mail `id` is trashed (a run that
    /// waits for an earlier trigger fails with the mail kept); at most
    /// `runs` runs, a second apart.
    async fn once_until_trashed(&self, id: &str, runs: usize) -> String {
        let mut all = String::new();
        for _ in 0..runs {
            let (_, output) = self.once().await;
            all.push_str(&output);
            if self.gmail.in_trash().iter().any(|t| t == id) {
                return all;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        panic!("mail {id} still not handled after {runs} runs:\n{all}");
    }

    /// Items waiting plus builds started.
    fn queued_or_built(&self) -> usize {
        self.jenkins.queue().len() + self.jenkins.builds().len()
    }
}

/// The first poll's trigger reaches Jenkins but its answer is lost: the poll
/// fails with the mail kept, and the build is queued.
async fn first_poll_loses_the_answer(w: &World) -> String {
    let id = w.deliver_new_patch_set();
    w.jenkins.lose_next_trigger_answer();
    let (status, output) = w.once().await;
    assert!(!status.success(), "a passing fault fails --once:\n{output}");
    assert_eq!(w.labelled(), vec![id.clone()], "{output}");
    assert!(w.gmail.in_trash().is_empty());
    assert_eq!(w.jenkins.triggers(), 1);
    assert_eq!(w.jenkins.queue().len(), 1, "{output}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_whose_build_already_started_is_not_built_again() {
    let w = World::new().await;
    let id = first_poll_loses_the_answer(&w).await;
    // The item leaves the queue: Jenkins would no longer merge a second
    // identical trigger into it.
    let number = w.jenkins.start_next(JOB).await.unwrap();
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "not triggered again:\n{output}");
    let builds = w.jenkins.builds();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert_eq!(builds[0].number, number);
    assert_eq!(builds[0].params["PATCHSET"], "2");
    assert!(w.jenkins.queue().is_empty());
    assert_eq!(w.gmail.in_trash(), vec![id]);

    // A third poll has nothing left to do.
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_whose_item_still_waits_is_found_in_the_queue() {
    let w = World::new().await;
    let id = first_poll_loses_the_answer(&w).await;
    let waiting = w.jenkins.queue()[0].id;
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "not triggered again:\n{output}");
    assert_eq!(w.queued_or_built(), 1);
    assert_eq!(w.jenkins.queue()[0].id, waiting);
    assert_eq!(w.gmail.in_trash(), vec![id]);
    // Started later, it is still the only build.
    w.jenkins.start_next(JOB).await.unwrap();
    assert_eq!(w.queued_or_built(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_jenkins_refused_with_503_is_sent_again() {
    let w = World::new().await;
    let id = w.deliver_new_patch_set();
    w.jenkins.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(503, "Service Unavailable"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "a passing fault fails --once:\n{output}");
    assert_eq!(w.queued_or_built(), 0, "nothing was queued");
    assert_eq!(w.labelled(), vec![id.clone()]);

    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(!output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "{output}");
    assert_eq!(w.queued_or_built(), 1);
    assert_eq!(
        w.jenkins.queue()[0].params["REF"],
        "refs/changes/56/123456/2"
    );
    assert_eq!(w.gmail.in_trash(), vec![id]);
    // The Gerrit fake saw no vote or message from these runs.
    assert!(w.gerrit.reviews_posted().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_retry_trigger_does_not_adopt_the_build_of_the_upload() {
    let w = World::new().await;
    // The upload builds patch set 2: its trigger answered with its item,
    // which has started as a build since.
    let upload = w.deliver_new_patch_set();
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.gmail.in_trash(), vec![upload]);
    let first = w.jenkins.start_next(JOB).await.unwrap();

    // A trusted retry on the same patch set: the trigger never reaches
    // Jenkins, and the gateway answers 502, so the outcome is unknown.
    let retry = w.deliver_retry();
    w.jenkins.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(502, "Bad Gateway"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "a lost answer fails --once:\n{output}");
    assert_eq!(w.queued_or_built(), 1, "{output}");

    // The only build with these parameters is the upload's: the retry must
    // not take it for its own, and builds again.
    let output = w.once_until_trashed(&retry, 20).await;
    assert!(!output.contains(FOUND), "{output}");
    let builds = w.builds();
    assert_eq!(
        builds.len(),
        2,
        "the upload and the retry:\n{builds:?}\n{output}"
    );
    assert!(
        builds.iter().all(|(_, p)| p["PATCHSET"] == "2"),
        "{builds:?}"
    );
    assert_eq!(w.jenkins.builds()[0].number, first);
}

/// The parameters the original bionicbb's jobs declare: the bot also sends
/// `CHANGE_NUMBER` and `PATCHSET`, which Jenkins drops.
const ORIGINAL_FOUR: [(&str, &str); 4] = [
    ("REF", ""),
    ("CHANGE_ID", ""),
    ("PROJECT", ""),
    ("LUNCH_TARGET", "aosp_arm64-eng"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_is_found_on_a_job_that_declares_only_the_original_parameters() {
    let w = World::new().await;
    w.jenkins.add_job(JOB, &ORIGINAL_FOUR);
    let id = first_poll_loses_the_answer(&w).await;
    let waiting = w.jenkins.queue()[0].clone();
    assert!(
        !waiting.params.contains_key("PATCHSET"),
        "Jenkins keeps only declared parameters: {waiting:?}"
    );
    // Found while it waits...
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "not triggered again:\n{output}");
    assert_eq!(w.gmail.in_trash(), vec![id]);

    // ...and once started.
    let w = World::new().await;
    w.jenkins.add_job(JOB, &ORIGINAL_FOUR);
    let id = first_poll_loses_the_answer(&w).await;
    w.jenkins.start_next(JOB).await.unwrap();
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert!(output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "not triggered again:\n{output}");
    assert_eq!(w.queued_or_built(), 1);
    assert_eq!(w.gmail.in_trash(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_that_reaches_jenkins_after_the_client_gave_up_builds_once() {
    let w = World::new().await;
    let id = w.deliver_new_patch_set();
    // The configured Jenkins timeout is 5 s: the client gives up on the
    // trigger, which has not reached Jenkins yet.
    let gate = w.jenkins.hold_next_trigger();
    let (status, output) = w.once().await;
    assert!(!status.success(), "a lost answer fails --once:\n{output}");
    assert_eq!(w.labelled(), vec![id.clone()], "{output}");

    // The next poll comes before the first trigger has landed: Jenkins shows
    // nothing yet, which does not mean that nothing will come.
    let (_, output) = w.once().await;
    // Whatever it queued leaves the queue, so that Jenkins cannot merge the
    // late trigger into it and hide a second build.
    if !w.jenkins.queue().is_empty() {
        w.jenkins.start_next(JOB).await.unwrap();
    }
    // The first trigger lands, after the client gave up on it.
    let landed = w.jenkins.triggers() + 1;
    gate.notify_one();
    while w.jenkins.triggers() < landed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later = w.once_until_trashed(&id, 20).await;
    assert_eq!(
        w.jenkins.triggers(),
        1,
        "one trigger reached Jenkins, the late one:\n{output}\n{later}"
    );
    assert_eq!(w.queued_or_built(), 1, "{output}\n{later}");
    assert!(later.contains(FOUND), "{later}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_lookup_builds_again_and_says_why() {
    let w = World::new().await;
    let upload = w.deliver_new_patch_set();
    let (status, output) = w.once().await;
    assert_ok(status, &output);
    assert_eq!(w.gmail.in_trash(), vec![upload]);
    w.jenkins.start_next(JOB).await.unwrap();
    // Two more builds with the same parameters that no trigger of the bot
    // asked for (someone used the job's "Build with Parameters" page).
    let same = w.jenkins.builds()[0].params.clone();
    let jenkins = client(&w.jenkins);
    let job = JobPath::parse(JOB).unwrap();
    for _ in 0..2 {
        jenkins.trigger(&job, &same).await.unwrap();
        w.jenkins.start_next(JOB).await.unwrap();
    }

    // A retry whose trigger never reaches Jenkins: two unowned builds could
    // be its own, and only one trigger is in doubt.
    let retry = w.deliver_retry();
    w.jenkins.faults().fail_next(
        Some(Method::POST),
        "buildWithParameters",
        1,
        Fault::status(502, "Bad Gateway"),
    );
    let (status, output) = w.once().await;
    assert!(!status.success(), "a lost answer fails --once:\n{output}");
    let output = w.once_until_trashed(&retry, 20).await;
    assert!(
        output.contains("which one is ours cannot be told"),
        "{output}"
    );
    assert!(!output.contains(FOUND), "{output}");
    assert_eq!(w.queued_or_built(), 4, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_trigger_in_doubt_is_waited_out_from_its_own_send() {
    let w = World::new().await;
    let id = w.deliver_new_patch_set();
    // The first trigger never reaches Jenkins, and its answer is lost.
    w.jenkins
        .faults()
        .fail_next(Some(Method::POST), "buildWithParameters", 1, Fault::Drop);
    let (status, output) = w.once().await;
    assert!(!status.success(), "a lost answer fails --once:\n{output}");
    // Once it can no longer land, the bot triggers again; that trigger is
    // held on its way past the client's timeout.
    let gate = w.jenkins.hold_next_trigger();
    let mut again = String::new();
    for _ in 0..40 {
        let (_, output) = w.once().await;
        if output.contains("triggering it again") {
            again = output;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!again.is_empty(), "the bot never triggered again");
    assert_eq!(
        w.jenkins.triggers(),
        0,
        "the second trigger is held:\n{again}"
    );

    // The next poll comes while the second trigger is still on its way: it
    // may still land, counted from its own send, not from the first one.
    let (_, output) = w.once().await;
    if !w.jenkins.queue().is_empty() {
        w.jenkins.start_next(JOB).await.unwrap();
    }
    let landed = w.jenkins.triggers() + 1;
    gate.notify_one();
    while w.jenkins.triggers() < landed {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let later = w.once_until_trashed(&id, 30).await;
    assert_eq!(
        w.queued_or_built(),
        1,
        "one build: the held trigger's\n{again}\n{output}\n{later}"
    );
    assert!(later.contains(FOUND), "{later}");
}

/// The build effect of patch set 2's upload, as gmail-listener keys it.
fn upload_payload() -> serde_json::Value {
    let params = params(&[
        ("CHANGE_ID", KEY),
        ("CHANGE_NUMBER", "123456"),
        ("PATCHSET", "2"),
        ("PROJECT", "bionic"),
        ("REF", "refs/changes/56/123456/2"),
    ]);
    serde_json::json!({ "job": JOB, "params": params })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_on_a_patch_set_superseded_before_the_next_poll_is_still_found() {
    let w = World::new().await;
    let id = first_poll_loses_the_answer(&w).await;
    let ledger = w.ledger();
    assert_eq!(ledger.unresolved_twins(&upload_payload()).unwrap(), 1);
    // Patch set 3 is uploaded before the next poll: the mail about patch
    // set 2 now decides nothing, but the build its first trigger queued is
    // real and must get its review.
    w.gerrit
        .add_patch_set(123456, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let output = w.once_until_trashed(&id, 20).await;
    assert!(output.contains(FOUND), "{output}");
    assert_eq!(w.jenkins.triggers(), 1, "not triggered again:\n{output}");
    assert_eq!(
        ledger.unresolved_twins(&upload_payload()).unwrap(),
        0,
        "the trigger is no longer in doubt:\n{output}"
    );
    // build-listener's catch-up asks Jenkins about it if its notifications
    // never arrive: the trigger owns the queue item it left.
    let unreported = ledger.unreported_builds(0, i64::MAX, 10).unwrap();
    assert_eq!(unreported.len(), 1, "{unreported:?}\n{output}");
    assert_eq!(unreported[0].params["PATCHSET"], "2");
    let queued = w.jenkins.queue();
    assert_eq!(
        unreported[0].items,
        vec![bionicbb_core::ledger::JenkinsItem::Queue(queued[0].id)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_trigger_of_a_superseded_patch_set_that_never_landed_is_settled_not_sent() {
    let w = World::new().await;
    let id = w.deliver_new_patch_set();
    // The trigger never reaches Jenkins, and its answer is lost.
    w.jenkins
        .faults()
        .fail_next(Some(Method::POST), "buildWithParameters", 1, Fault::Drop);
    let (status, output) = w.once().await;
    assert!(!status.success(), "a lost answer fails --once:\n{output}");
    let ledger = w.ledger();
    assert_eq!(ledger.unresolved_twins(&upload_payload()).unwrap(), 1);
    w.gerrit
        .add_patch_set(123456, "dana@example.com", &["libc/bionic/strtod.cpp"]);
    let output = w.once_until_trashed(&id, 30).await;
    assert_eq!(
        w.queued_or_built(),
        0,
        "a stale patch set is not built:\n{output}"
    );
    assert_eq!(
        ledger.unresolved_twins(&upload_payload()).unwrap(),
        0,
        "once it can no longer land, the trigger is recorded as never made:\n{output}"
    );
    assert!(
        output.contains("no longer calls for it"),
        "and the log says why:\n{output}"
    );
}
