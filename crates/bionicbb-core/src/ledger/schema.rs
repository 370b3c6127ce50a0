//! The ledger's schema, as ordered migrations.
//!
//! Migration `i` (0-based) brings the file from version `i` to `i + 1`;
//! `PRAGMA user_version` holds the number applied. Each runs in its own
//! `IMMEDIATE` transaction together with the version bump, so a crash leaves
//! the file at a whole version, and two daemons starting at once do not both
//! apply it (the second re-reads the version under the write lock). To change
//! the schema, append a migration; never edit a released one.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::{LedgerError, Result};

/// The migrations, oldest first.
const MIGRATIONS: &[&str] = &[
    // 1: everything both daemons need.
    r#"
    -- One row per Gmail message seen. `note` is the summary once done or the
    -- reason once quarantined.
    CREATE TABLE mails (
        gmail_id   TEXT PRIMARY KEY,
        state      TEXT NOT NULL CHECK (state IN ('pending', 'done', 'quarantined')),
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        note       TEXT,
        updated_at INTEGER
    );

    -- Effects keyed once (builds triggered, replies posted...). The row is
    -- written as 'started' before the effect runs.
    CREATE TABLE effects (
        key         TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed')),
        started_at  INTEGER NOT NULL,
        runs        INTEGER NOT NULL DEFAULT 1,
        progress    TEXT,
        result      TEXT,
        error       TEXT,
        finished_at INTEGER
    );

    -- Gerrit work of build-listener, in order per `order_key`. AUTOINCREMENT:
    -- ids are never reused, so id order is enqueue order.
    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT NOT NULL,
        order_key       TEXT NOT NULL,
        payload         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        created_at      INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_attempt_at INTEGER,
        in_flight_since INTEGER,
        last_error      TEXT,
        finished_at     INTEGER
    );
    CREATE INDEX outbox_pending ON outbox (order_key, id) WHERE state = 'pending';
    CREATE INDEX outbox_failed ON outbox (finished_at) WHERE state = 'failed';

    -- Builds whose completion was seen: the first completion document wins.
    CREATE TABLE builds (
        build_key TEXT PRIMARY KEY,
        event     TEXT NOT NULL,
        seen_at   INTEGER NOT NULL,
        outbox_id INTEGER REFERENCES outbox (id) ON DELETE SET NULL
    );

    -- The status page's recent events, pruned to the newest few.
    CREATE TABLE events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        at            INTEGER NOT NULL,
        source        TEXT NOT NULL,
        summary       TEXT NOT NULL,
        change_number INTEGER,
        patch_set     INTEGER,
        decisions     TEXT NOT NULL
    );

    CREATE TABLE status (
        component  TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (component, key)
    ) WITHOUT ROWID;

    CREATE TABLE counters (
        name   TEXT NOT NULL,
        labels TEXT NOT NULL,
        value  INTEGER NOT NULL,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID;
    "#,
    // 2: duration histograms (see `histograms.rs`). `histogram_buckets`
    // holds, per finite upper bound `le`, the cumulative count of
    // observations at or below it; `histograms.count` is the `+Inf` bucket.
    r#"
    CREATE TABLE histograms (
        name   TEXT NOT NULL,
        labels TEXT NOT NULL,
        sum    REAL NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (name, labels)
    ) WITHOUT ROWID;

    CREATE TABLE histogram_buckets (
        name   TEXT NOT NULL,
        labels TEXT NOT NULL,
        le     REAL NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (name, labels, le)
    ) WITHOUT ROWID;
    "#,
    // 3: poison-mail protection (see `mails.rs`). `in_hand` counts the
    // times handling of a mail started and did not end (the process died
    // with the mail in hand); `in_hand_since` is when the last one started.
    r#"
    ALTER TABLE mails ADD COLUMN in_hand INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mails ADD COLUMN in_hand_since INTEGER;
    "#,
    // 4: which Jenkins queue items and builds each build effect owns (see
    // `owned.rs`), so that a lookup after a lost answer never adopts what
    // another effect holds. `item` is `queue:<id>` or `build:<job>#<number>`.
    // Effects recorded before this version own the queue item or build their
    // result (or progress) names.
    r#"
    CREATE TABLE jenkins_owned (
        item       TEXT NOT NULL,
        effect_key TEXT NOT NULL REFERENCES effects (key) ON DELETE CASCADE,
        PRIMARY KEY (item, effect_key)
    ) WITHOUT ROWID;
    CREATE INDEX jenkins_owned_effect ON jenkins_owned (effect_key);

    INSERT OR IGNORE INTO jenkins_owned (item, effect_key)
    SELECT 'queue:' || json_extract(known, '$.queue_id'), key
    FROM (SELECT key, coalesce(result, progress) AS known FROM effects
          WHERE kind = 'build')
    WHERE json_valid(known) AND json_type(known, '$.queue_id') = 'integer';

    INSERT OR IGNORE INTO jenkins_owned (item, effect_key)
    SELECT 'build:' || json_extract(payload, '$.job') || '#' || json_extract(known, '$.build'), key
    FROM (SELECT key, payload, coalesce(result, progress) AS known FROM effects
          WHERE kind = 'build')
    WHERE json_valid(known) AND json_valid(payload)
      AND json_type(known, '$.build') = 'integer'
      AND json_type(payload, '$.job') = 'text';
    "#,
    // 5: build effects build-listener asked Jenkins about and found without
    // a result for good (a cancelled queue item, a build that no longer
    // exists), so they are not asked about again (see `unreported.rs`).
    r#"
    CREATE TABLE unreported_closed (
        effect_key TEXT PRIMARY KEY REFERENCES effects (key) ON DELETE CASCADE,
        reason     TEXT NOT NULL,
        closed_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 6: what an event is about as its source knew it (the change's
    // subject, owner and project, who acted), as JSON (see
    // `EventDetails`); NULL in events recorded before.
    r#"
    ALTER TABLE events ADD COLUMN details TEXT;
    "#,
    // 7: the bot's cancels of its own superseded builds (see `cancel.rs`),
    // one per build effect: begun before Jenkins is asked, so a crash
    // leaves it 'started' and it is done again; `superseded_by` is the
    // patch set whose build superseded it, NULL when the change closed.
    // The index finds a completion by the queue item its build came from.
    // IF NOT EXISTS: a file whose version was set back by hand keeps them.
    r#"
    CREATE TABLE IF NOT EXISTS cancels (
        effect_key    TEXT PRIMARY KEY REFERENCES effects (key) ON DELETE CASCADE,
        change_number INTEGER NOT NULL,
        superseded_by INTEGER,
        state         TEXT NOT NULL CHECK (state IN ('started', 'done', 'failed')),
        started_at    INTEGER NOT NULL,
        outcome       TEXT,
        finished_at   INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS builds_queue_id ON builds (json_extract(event, '$.queue_id'));
    "#,
    // 8: indexes for the outbox worker's per-item queries, which otherwise
    // read every row kept (a month of done items): an item's siblings by
    // change, and the pending items in the order they are picked.
    r#"
    CREATE INDEX IF NOT EXISTS outbox_order ON outbox (order_key, id);
    CREATE INDEX IF NOT EXISTS outbox_pending_id ON outbox (id) WHERE state = 'pending';
    "#,
    // 9: the events of one patch set, for `bionicbb:why` (see
    // `history.rs`), without reading the whole table.
    r#"
    CREATE INDEX IF NOT EXISTS events_patch_set ON events (change_number, patch_set);
    "#,
];

/// The schema version this program writes.
pub(super) const CURRENT_VERSION: u32 = MIGRATIONS.len() as u32;

/// Applies the missing migrations; refuses a file from a newer version.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let open_err = |step: &'static str| {
        let path = path.to_path_buf();
        move |source: rusqlite::Error| LedgerError::Open { path, step, source }
    };
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err("start a schema migration"))?;
        let found: i64 = tx
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(open_err("read the schema version"))?;
        let found = u32::try_from(found).unwrap_or(u32::MAX);
        if found > CURRENT_VERSION {
            return Err(LedgerError::TooNew {
                path: path.to_path_buf(),
                found,
                supported: CURRENT_VERSION,
            });
        }
        let Some(migration) = MIGRATIONS.get(found as usize) else {
            return Ok(()); // up to date; the empty transaction rolls back
        };
        tx.execute_batch(migration)
            .map_err(open_err("apply a schema migration"))?;
        // PRAGMA takes no bound parameters; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", found + 1))
            .map_err(open_err("record the schema version"))?;
        tx.commit().map_err(open_err("commit a schema migration"))?;
        tracing::info!(path = %path.display(), version = found + 1, "ledger schema migrated");
    }
}
