//! The JSON of outbox items: what the routes enqueue and the worker reads
//! back, possibly after a restart by a newer version (fields are named, and
//! unknown ones are ignored).

use bionicbb_core::gerrit::ChangeRef;
use bionicbb_core::review::{DropRequest, PlannedReview};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Outbox kind of a review to post.
pub const KIND_REVIEW: &str = "review";
/// Outbox kind of a `/drop-rejection` request.
pub const KIND_DROP: &str = "drop_rejection";

/// The outbox order key of a change: its number when the id carries one
/// (`123456`, `project~123456`), else the id itself. Work on one change is
/// done in order only among items with the same key, so a drop-rejection
/// waits for a pending result of the same change when both name it by
/// number (the usual case: a build's `REF` carries the number). Items naming
/// a change only by its Change-Id cannot be matched with those without
/// asking Gerrit, which the request path never does.
pub fn order_key(change: &ChangeRef) -> String {
    match change {
        ChangeRef::Number(n) | ChangeRef::ProjectNumber { number: n, .. } => n.to_string(),
        other => other.to_string(),
    }
}

/// How far from the time a document was received its `build.timestamp`
/// may be and still be believed (a Jenkins clock off by more, or a bogus
/// value, would only distort the histogram).
const TIMESTAMP_TRUST: u64 = 7 * 24 * 3600 * 1000;

/// When a build completed, in unix milliseconds: the document's
/// `build.timestamp` (for COMPLETED it is start + duration, for FINALIZED
/// the time Jenkins sent it), unless it is missing or implausibly far from
/// `received_ms`, the time the document was received, which is used then.
pub fn completed_at_ms(timestamp_ms: Option<i64>, received_ms: i64) -> i64 {
    match timestamp_ms {
        Some(t) if t > 0 && t.abs_diff(received_ms) <= TIMESTAMP_TRUST => t,
        _ => received_ms,
    }
}

/// The current time in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A planned review as stored (see [`PlannedReview`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewPayload {
    pub key: String,
    /// The change in a form [`ChangeRef::parse`] accepts.
    pub change: String,
    pub patch_set: u32,
    pub message: String,
    pub label: Option<LabelVote>,
    pub tag: String,
    pub notify: String,
    /// For logs and events: `job #number`.
    pub build: String,
    /// When the build completed, in unix milliseconds (see
    /// [`completed_at_ms`]); the start of the build-to-review histogram.
    /// Absent in items written by older versions: nothing is observed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelVote {
    pub name: String,
    pub value: i32,
}

impl ReviewPayload {
    pub fn from_plan(
        plan: &PlannedReview,
        build: String,
        completed_at_ms: Option<i64>,
    ) -> ReviewPayload {
        ReviewPayload {
            key: plan.key.clone(),
            change: plan.change.to_string(),
            patch_set: plan.patch_set,
            message: plan.message.clone(),
            label: plan.label.as_ref().map(|(name, value)| LabelVote {
                name: name.clone(),
                value: *value,
            }),
            tag: plan.tag.clone(),
            notify: plan.notify.clone(),
            build,
            completed_at_ms,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads a stored payload back, re-validating the change id.
    pub fn from_value(value: &Value) -> Result<(ReviewPayload, PlannedReview), String> {
        let payload: ReviewPayload = serde_json::from_value(value.clone())
            .map_err(|e| format!("unreadable review payload: {e}"))?;
        let change = ChangeRef::parse(&payload.change)
            .map_err(|e| format!("review payload: invalid change: {}", e.reason))?;
        let plan = PlannedReview {
            key: payload.key.clone(),
            change,
            patch_set: payload.patch_set,
            message: payload.message.clone(),
            label: payload.label.as_ref().map(|l| (l.name.clone(), l.value)),
            tag: payload.tag.clone(),
            notify: payload.notify.clone(),
        };
        Ok((payload, plan))
    }
}

/// A `/drop-rejection` request as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropPayload {
    pub change: String,
    pub patch_set: u32,
}

impl DropPayload {
    pub fn from_request(request: &DropRequest) -> DropPayload {
        DropPayload {
            change: request.change.to_string(),
            patch_set: request.patch_set,
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    pub fn from_value(value: &Value) -> Result<DropRequest, String> {
        let payload: DropPayload = serde_json::from_value(value.clone())
            .map_err(|e| format!("unreadable drop-rejection payload: {e}"))?;
        let change = ChangeRef::parse(&payload.change)
            .map_err(|e| format!("drop-rejection payload: invalid change: {}", e.reason))?;
        Ok(DropRequest {
            change,
            patch_set: payload.patch_set,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_payload_round_trip() {
        let plan = PlannedReview {
            key: "job/j/#3".into(),
            change: ChangeRef::parse(
                "platform/bionic~master~I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b",
            )
            .unwrap(),
            patch_set: 4,
            message: "m".into(),
            label: Some(("Verified".into(), -1)),
            tag: "autogenerated:bionicbb".into(),
            notify: "OWNER".into(),
        };
        let value =
            ReviewPayload::from_plan(&plan, "j #3".into(), Some(1_700_000_000_123)).to_value();
        let (payload, back) = ReviewPayload::from_value(&value).unwrap();
        assert_eq!(back, plan);
        assert_eq!(payload.build, "j #3");
        assert_eq!(payload.completed_at_ms, Some(1_700_000_000_123));
        // An item written before the field existed still reads.
        let mut old = value.clone();
        old.as_object_mut().unwrap().remove("completed_at_ms");
        assert_eq!(
            ReviewPayload::from_value(&old).unwrap().0.completed_at_ms,
            None
        );
        let bad = serde_json::json!({"change": "../x"});
        assert!(ReviewPayload::from_value(&bad).is_err());
    }

    #[test]
    fn completion_time_is_the_build_timestamp_when_plausible() {
        let received = 1_700_000_000_000;
        assert_eq!(
            completed_at_ms(Some(received - 5_000), received),
            received - 5_000
        );
        assert_eq!(completed_at_ms(None, received), received);
        assert_eq!(completed_at_ms(Some(0), received), received);
        assert_eq!(completed_at_ms(Some(-1), received), received);
        assert_eq!(
            completed_at_ms(Some(received - 8 * 24 * 3600 * 1000), received),
            received
        );
        assert_eq!(completed_at_ms(Some(i64::MAX), received), received);
        assert!(now_ms() > received);
    }

    #[test]
    fn order_keys_use_the_number_when_there_is_one() {
        let key = "I4c1b0f7a2d9e8c3b5a6f7e8d9c0b1a2f3e4d5c6b";
        let parse = |s: &str| order_key(&ChangeRef::parse(s).unwrap());
        assert_eq!(parse("123456"), "123456");
        assert_eq!(parse("platform/bionic~123456"), "123456");
        assert_eq!(parse(key), key);
        assert_eq!(
            parse(&format!("platform/bionic~master~{key}")),
            format!("platform/bionic~master~{key}")
        );
    }

    #[test]
    fn drop_payload_round_trip() {
        let request = DropRequest {
            change: ChangeRef::Number(123456),
            patch_set: 2,
        };
        let value = DropPayload::from_request(&request).to_value();
        assert_eq!(DropPayload::from_value(&value).unwrap(), request);
        assert!(
            DropPayload::from_value(&serde_json::json!({"change": "a b", "patch_set": 1})).is_err()
        );
    }
}
