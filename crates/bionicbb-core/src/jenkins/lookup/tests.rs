//! The lookup's matching, on documents as Jenkins renders them.

use super::*;

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sent() -> BTreeMap<String, String> {
    params(&[
        ("REF", "refs/changes/56/123456/4"),
        ("CHANGE_ID", "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"),
    ])
}

/// A queue as Jenkins renders it under the lookup's `tree`: the
/// presubmit item (with a default the bot did not send), the same job
/// for another patch set, and a job in a folder with equal parameters.
const QUEUE: &str = r#"{
  "_class": "hudson.model.Queue",
  "items": [
    {"_class": "hudson.model.Queue$WaitingItem",
     "actions": [
       {"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"},
         {"_class": "hudson.model.BooleanParameterValue", "name": "CLEAN", "value": false}
       ]},
       {"_class": "hudson.model.CauseAction"},
       {}
     ],
     "id": 90211,
     "params": "\nREF=refs/changes/56/123456/4\nCHANGE_ID=I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c\nCLEAN=false",
     "task": {"_class": "hudson.model.FreeStyleProject", "name": "bionic-presubmit",
              "url": "https://jenkins.example.org/job/bionic-presubmit/"}},
    {"_class": "hudson.model.Queue$BlockedItem",
     "actions": [{"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/3"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
     ]}],
     "id": 90210,
     "params": "\nREF=refs/changes/56/123456/3\nCHANGE_ID=I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c",
     "task": {"_class": "hudson.model.FreeStyleProject", "name": "bionic-presubmit",
              "url": "https://jenkins.example.org/job/bionic-presubmit/"}},
    {"_class": "hudson.model.Queue$BuildableItem",
     "actions": [{"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
     ]}],
     "id": 90199,
     "params": "\nREF=refs/changes/56/123456/4",
     "task": {"_class": "org.jenkinsci.plugins.workflow.job.WorkflowJob", "name": "bionic presubmit",
              "url": "https://jenkins.example.org/job/android/job/bionic%20presubmit/"}}
  ]
}"#;

fn queue() -> QueueJson {
    serde_json::from_str(QUEUE).unwrap()
}

fn base() -> Url {
    Url::parse("https://jenkins.example.org/").unwrap()
}

fn job(name: &str) -> JobPath {
    JobPath::parse(name).unwrap()
}

#[test]
fn the_queued_item_of_the_job_with_our_parameters_is_found() {
    let found = match_queued(&queue(), &base(), &job("bionic-presubmit"), &sent());
    assert_eq!(found, vec![QueueItemId(90211)]);
}

#[test]
fn a_job_in_a_folder_is_matched_by_its_full_path() {
    let folder = job("android/bionic presubmit");
    assert_eq!(
        match_queued(&queue(), &base(), &folder, &sent()),
        vec![QueueItemId(90199)]
    );
    // The same short name at the top level is another job.
    let top = job("bionic presubmit");
    assert_eq!(match_queued(&queue(), &base(), &top, &sent()), vec![]);
}

#[test]
fn other_parameters_or_another_job_do_not_match() {
    let other_ps = params(&[
        ("REF", "refs/changes/56/123456/5"),
        ("CHANGE_ID", "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"),
    ]);
    let presubmit = job("bionic-presubmit");
    assert_eq!(
        match_queued(&queue(), &base(), &presubmit, &other_ps),
        vec![]
    );
    assert_eq!(
        match_queued(&queue(), &base(), &job("bionic-lint"), &sent()),
        vec![]
    );
    // A parameter the item does not carry is not "equal".
    let mut extra = sent();
    extra.insert("LUNCH".into(), "aosp_arm64-eng".into());
    assert_eq!(match_queued(&queue(), &base(), &presubmit, &extra), vec![]);
}

#[test]
fn non_string_parameters_compare_by_their_json_text() {
    let mut with_clean = sent();
    with_clean.insert("CLEAN".into(), "false".into());
    let presubmit = job("bionic-presubmit");
    assert_eq!(
        match_queued(&queue(), &base(), &presubmit, &with_clean),
        vec![QueueItemId(90211)]
    );
    with_clean.insert("CLEAN".into(), "true".into());
    assert_eq!(
        match_queued(&queue(), &base(), &presubmit, &with_clean),
        vec![]
    );
}

#[test]
fn a_jenkins_under_a_path_and_relative_task_urls() {
    let base = Url::parse("http://10.0.0.5:8080/jenkins/").unwrap();
    assert_eq!(
        job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/job/a/job/b%2Fc/"),
        Some(vec!["a".to_string(), "b/c".to_string()])
    );
    assert_eq!(
        job_of_task_url(&base, "job/x/"),
        Some(vec!["x".to_string()])
    );
    // Jenkins' configured root URL is another host and path.
    assert_eq!(
        job_of_task_url(&base, "https://ci.example.org/ci/job/x/job/y/"),
        Some(vec!["x".to_string(), "y".to_string()])
    );
    let bare = Url::parse("http://10.0.0.5:8080/").unwrap();
    assert_eq!(
        job_of_task_url(&bare, "https://ci.example.org/ci/job/x/"),
        Some(vec!["x".to_string()])
    );
    assert_eq!(
        job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/"),
        None
    );
    assert_eq!(
        job_of_task_url(&base, "http://10.0.0.5:8080/jenkins/view/all/"),
        None
    );
}

#[test]
fn an_empty_queue_and_items_without_task_or_actions() {
    let empty: QueueJson =
        serde_json::from_str(r#"{"_class":"hudson.model.Queue","items":[]}"#).unwrap();
    assert_eq!(
        match_queued(&empty, &base(), &job("bionic-presubmit"), &sent()),
        vec![]
    );
    let odd: QueueJson = serde_json::from_str(
        r#"{"items":[{"id":1},{"id":2,"task":{"name":"bionic-presubmit"},"actions":[null]}]}"#,
    )
    .unwrap();
    assert_eq!(
        match_queued(&odd, &base(), &job("bionic-presubmit"), &sent()),
        vec![]
    );
}

/// The job's last builds under the lookup's `tree`, newest first: a
/// build of another patch set, our build (with a default the bot did not
/// send), and an old build of the same parameters (an earlier `retry`).
const BUILDS: &str = r#"{
  "_class": "hudson.model.FreeStyleProject",
  "builds": [
    {"_class": "hudson.model.FreeStyleBuild",
     "actions": [
       {"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/99/123499/1"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "Iffff"}
       ]},
       {"_class": "hudson.model.CauseAction"}, {}, {}
     ],
     "number": 1843, "timestamp": 1678813990000,
     "url": "https://jenkins.example.org/job/bionic-presubmit/1843/"},
    {"_class": "hudson.model.FreeStyleBuild",
     "actions": [
       {"_class": "hudson.model.CauseAction"},
       {"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"},
         {"_class": "hudson.model.StringParameterValue", "name": "LUNCH", "value": "aosp_arm64-eng"}
       ]},
       {}
     ],
     "number": 1842, "timestamp": 1678813905123, "queueId": 90211,
     "url": "https://jenkins.example.org/job/bionic-presubmit/1842/"},
    {"_class": "hudson.model.FreeStyleBuild",
     "actions": [
       {"_class": "hudson.model.ParametersAction", "parameters": [
         {"_class": "hudson.model.StringParameterValue", "name": "REF", "value": "refs/changes/56/123456/4"},
         {"_class": "hudson.model.StringParameterValue", "name": "CHANGE_ID", "value": "I4c1b7d2e9f0a3b5c6d7e8f9a0b1c2d3e4f5a6b7c"}
       ]}
     ],
     "number": 1801, "timestamp": 1678700000000,
     "url": "https://jenkins.example.org/job/bionic-presubmit/1801/"}
  ]
}"#;

fn numbers(found: Vec<FoundBuild>) -> Vec<u64> {
    found.into_iter().map(|b| b.number).collect()
}

fn builds() -> JobBuildsJson {
    serde_json::from_str(BUILDS).unwrap()
}

#[test]
fn the_build_with_our_parameters_since_we_triggered_is_found() {
    // Triggered at ..900000: the build started 5 s later.
    assert_eq!(
        match_builds(&builds(), &sent(), 1_678_813_900_000),
        vec![FoundBuild {
            number: 1842,
            url: "https://jenkins.example.org/job/bionic-presubmit/1842/".to_string(),
            queue_id: Some(90211),
        }]
    );
}

#[test]
fn a_build_is_allowed_a_minute_of_clock_skew_and_no_more() {
    let started = 1_678_813_905_123;
    assert_eq!(
        numbers(match_builds(&builds(), &sent(), started + CLOCK_SLACK_MS)),
        vec![1842]
    );
    assert_eq!(
        numbers(match_builds(
            &builds(),
            &sent(),
            started + CLOCK_SLACK_MS + 1
        )),
        Vec::<u64>::new()
    );
}

#[test]
fn an_older_build_with_the_same_parameters_is_found_only_when_recent_enough() {
    // Long ago: both builds qualify, oldest first.
    assert_eq!(
        numbers(match_builds(&builds(), &sent(), 1_678_000_000_000)),
        vec![1801, 1842]
    );
    let other = params(&[("REF", "refs/changes/56/123456/5")]);
    assert_eq!(match_builds(&builds(), &other, 0), vec![]);
}

#[test]
fn builds_without_timestamp_or_url_are_skipped() {
    let odd: JobBuildsJson = serde_json::from_str(
        r#"{"builds":[{"number":3,"actions":[{"parameters":[{"name":"REF","value":"r"}]}]},
                      {"number":2,"timestamp":5,"actions":[{"parameters":[{"name":"REF","value":"r"}]}]}]}"#,
    )
    .unwrap();
    assert_eq!(match_builds(&odd, &params(&[("REF", "r")]), 0), vec![]);
    let none: JobBuildsJson = serde_json::from_str(r#"{"_class":"x"}"#).unwrap();
    assert_eq!(match_builds(&none, &sent(), 0), vec![]);
}

#[test]
fn a_build_that_came_from_a_queued_item_is_one_candidate() {
    let build = |number, queue_id| FoundBuild {
        number,
        url: format!("u/{number}/"),
        queue_id,
    };
    let all = candidates(
        vec![QueueItemId(12), QueueItemId(9)],
        vec![build(101, Some(12)), build(100, Some(7)), build(99, None)],
    );
    let shape: Vec<(Option<u64>, Option<u64>)> = all
        .iter()
        .map(|c| (c.queue_id.map(|q| q.0), c.build.as_ref().map(|b| b.number)))
        .collect();
    assert_eq!(
        shape,
        vec![
            (None, Some(99)),
            (Some(7), Some(100)),
            (Some(9), None),
            (Some(12), Some(101))
        ]
    );
}
