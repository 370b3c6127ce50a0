//! The Gerrit work build-listener has yet to do (reviews to post, votes to
//! drop) and the work it gave up on, in words. Pure.

use bionicbb_core::ledger::OutboxItem;
use serde::Serialize;
use serde_json::Value;

use super::changes::gerrit_link;
use super::text::{Href, Text, When, vote};

/// How many items of each list the page shows.
pub const ITEM_LIMIT: usize = 20;

/// One item of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkRow {
    pub id: i64,
    /// `123456/2`.
    pub change: Text,
    pub link: Option<Href>,
    /// "Verified -1 from bionic-presubmit #12", "drop the bot's vote".
    pub what: Text,
    pub attempts: u32,
    /// The next attempt (pending) or when it was given up (failed).
    pub when: When,
    /// Since when an attempt is under way, if one is.
    pub in_flight: Option<When>,
    pub error: Option<Text>,
}

/// The change and patch set an item is about, when its payload says.
pub fn change_of(item: &OutboxItem) -> (Option<u64>, Option<u32>) {
    let change = find_u64(&item.payload, &["change_number", "change"])
        .or_else(|| item.order_key.rsplit('~').next()?.parse().ok());
    let patch_set = find_u64(&item.payload, &["patch_set"]).and_then(|n| u32::try_from(n).ok());
    (change, patch_set)
}

pub fn row(now: i64, gerrit: &url::Url, item: &OutboxItem) -> WorkRow {
    let (change, patch_set) = change_of(item);
    let p = &item.payload;
    let build = p.get("build").and_then(Value::as_str);
    let label = p
        .get("label")
        .filter(|l| l.is_object())
        .and_then(|l| Some(vote(l.get("name")?.as_str()?, l.get("value")?.as_i64()?)));
    let what = match (item.kind.as_str(), label, build) {
        ("review", Some(v), Some(b)) => format!("{v} from {b}"),
        ("review", None, Some(b)) => format!("the result of {b}"),
        ("review", _, None) => "a review".to_string(),
        ("drop_rejection", ..) => "drop the bot's vote".to_string(),
        (other, ..) => other.replace('_', " "),
    };
    let at = item.finished_at.unwrap_or(item.next_attempt_at);
    WorkRow {
        id: item.id,
        change: Text::new(&match (change, patch_set) {
            (Some(c), Some(ps)) => format!("{c}/{ps}"),
            (Some(c), None) => c.to_string(),
            (None, _) => item.order_key.clone(),
        }),
        link: change.and_then(|c| gerrit_link(gerrit, c, patch_set)),
        what: Text::new(&what),
        attempts: item.attempts,
        when: When::new(now, at),
        in_flight: item.in_flight_since.map(|t| When::new(now, t)),
        error: item.last_error.as_deref().map(Text::new),
    }
}

/// The first of `keys` holding a number (or numeric string), searched in
/// the object and the objects inside it (a few levels deep).
fn find_u64(value: &Value, keys: &[&str]) -> Option<u64> {
    fn walk(value: &Value, keys: &[&str], depth: u8) -> Option<u64> {
        let map = value.as_object()?;
        for key in keys {
            match map.get(*key) {
                Some(Value::Number(n)) => return n.as_u64(),
                Some(Value::String(s)) => {
                    if let Some(n) = s.rsplit('~').next().and_then(|n| n.parse().ok()) {
                        return Some(n);
                    }
                }
                _ => {}
            }
        }
        if depth == 0 {
            return None;
        }
        map.values().find_map(|v| walk(v, keys, depth - 1))
    }
    walk(value, keys, 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_change_numbers_in_nested_payloads() {
        let payload = json!({ "target": { "change": "1234", "patch_set": 3 } });
        assert_eq!(find_u64(&payload, &["change_number", "change"]), Some(1234));
        assert_eq!(find_u64(&payload, &["patch_set"]), Some(3));
        assert_eq!(
            find_u64(&json!({ "change": "platform/bionic~77" }), &["change"]),
            Some(77)
        );
        assert_eq!(find_u64(&json!([1]), &["change"]), None);
    }
}
