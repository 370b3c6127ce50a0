//! What the status page reads about vouches: the `bionicbb:ok-to-test`
//! recorded for a patch set ([`EffectKey::vouch`]) whose build was
//! decided on it. Read-only.

use rusqlite::params;
use serde_json::Value;

use super::effects::EffectKey;
use super::{Ledger, Result, from_json, sql, to_i64};

/// A trusted commenter's vouch for a patch set, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VouchRecord {
    pub change_number: u64,
    pub patch_set: u32,
    pub by_name: Option<String>,
    pub by_email: String,
    /// When it was recorded, unix seconds.
    pub at: i64,
}

impl VouchRecord {
    /// Who vouched, for people: the name, else the e-mail.
    pub fn who(&self) -> &str {
        self.by_name.as_deref().unwrap_or(&self.by_email)
    }
}

impl Ledger {
    /// The newest `limit` vouches recorded, newest first; only those of
    /// change `change` when given. A row whose payload is not a vouch's
    /// (which the ledger never writes) is left out.
    pub fn recent_vouches(&self, change: Option<u64>, limit: usize) -> Result<Vec<VouchRecord>> {
        const OP: &str = "list recent vouches";
        let limit = to_i64(OP, "limit", limit as u64)?;
        let (from, to) = vouch_range(change);
        let rows: Vec<(String, i64)> = self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT payload, started_at FROM effects
                     WHERE kind = 'vouch' AND state = 'done' AND key >= ?1 AND key < ?2
                     ORDER BY started_at DESC, key DESC LIMIT ?3",
                )
                .map_err(sql(OP))?;
            let rows = stmt
                .query_map(params![from, to, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(sql(OP))?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql(OP))?;
            Ok(rows)
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for (payload, at) in rows {
            let payload = from_json(OP, &payload)?;
            let text = |key: &str| payload.get(key).and_then(Value::as_str).map(str::to_string);
            let number = |key: &str| payload.get(key).and_then(Value::as_u64);
            let (Some(change_number), Some(patch_set), Some(by_email)) = (
                number("change_number"),
                number("patch_set").and_then(|p| u32::try_from(p).ok()),
                text("by_email"),
            ) else {
                continue;
            };
            out.push(VouchRecord {
                change_number,
                patch_set,
                by_name: text("by_name"),
                by_email,
                at,
            });
        }
        Ok(out)
    }
}

/// The range of the keys [`EffectKey::vouch`] gives: all of them, or those
/// of one change (`vouch:[<n>,` up to the same prefix with its last
/// character raised by one).
fn vouch_range(change: Option<u64>) -> (String, String) {
    let example = EffectKey::vouch(0, 0);
    let namespace = example.as_str().split(':').next().unwrap_or("vouch");
    let from = match change {
        None => format!("{namespace}:"),
        Some(n) => format!("{namespace}:[{n},"),
    };
    let mut to = from.clone();
    let last = to.pop().map_or(0, |c| c as u8);
    to.push(char::from(last + 1));
    (from, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_of_a_change_holds_its_keys_only() {
        let (from, to) = vouch_range(Some(12));
        for (n, inside) in [(12, true), (1, false), (120, false), (123, false)] {
            let key = EffectKey::vouch(n, 3);
            let k = key.as_str();
            assert_eq!(k >= from.as_str() && k < to.as_str(), inside, "{k}");
        }
        let (from, to) = vouch_range(None);
        let k = EffectKey::vouch(7, 1);
        assert!(k.as_str() >= from.as_str() && k.as_str() < to.as_str());
        let other = EffectKey::explain(7, 1);
        assert!(!(other.as_str() >= from.as_str() && other.as_str() < to.as_str()));
    }
}
