//! The page: what the template `templates/status.html` shows, assembled
//! from a [`Snapshot`].

use askama::Template;
use bionicbb_core::config::Config;
use bionicbb_core::ledger::EventRecord;

use super::changes::{self, ChangeRow};
use super::filter::Filter;
use super::health::{self, Health};
use super::snapshot::Snapshot;
use super::text::{Href, Text, When};
use super::waiting::{self, ITEM_LIMIT, WorkRow};
use super::words::{self, EVENT_LIMIT, EventLine};

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage<'a> {
    pub generated: When,
    pub gerrit: Option<Href>,
    pub gerrit_host: Text,
    pub jenkins: Option<Href>,
    pub jenkins_host: Text,
    pub filter: &'a Filter,
    pub filter_project: Option<Text>,
    pub health: Health,
    pub changes: Vec<ChangeRow>,
    pub pending_count: u64,
    pub pending: Vec<WorkRow>,
    /// Pending items not listed.
    pub pending_more: u64,
    pub failed: Vec<WorkRow>,
    pub events: Vec<EventLine>,
}

impl<'a> StatusPage<'a> {
    pub fn new(s: &Snapshot, config: &Config, filter: &'a Filter) -> StatusPage<'a> {
        let now = s.now;
        let gerrit = &config.gerrit.url;
        let poll = config.gmail.poll_interval.as_secs();
        let health = health::health(&health::Inputs {
            now,
            components: &s.components,
            poll_interval: i64::try_from(poll).unwrap_or(i64::MAX),
            label: &config.gmail.label,
            pending_count: s.pending_count,
            oldest_pending_age: s.oldest_pending_age,
            failed: &s.failed,
            reconcile_every: seconds(config.gerrit.reconcile_interval),
            reconcile_full_every: seconds(config.gerrit.reconcile_full_interval),
        });
        let changes = changes::changes(&change_inputs(s, config, filter));
        let events = shown_events(s, filter, &changes)
            .take(EVENT_LIMIT)
            .map(|e| words::line(now, gerrit, e))
            .collect();
        let work = |items: &[bionicbb_core::ledger::OutboxItem]| -> Vec<WorkRow> {
            items
                .iter()
                .filter(|item| admits_item(filter, &changes, item))
                .take(ITEM_LIMIT)
                .map(|item| waiting::row(now, gerrit, item))
                .collect()
        };
        let pending = work(&s.pending);
        let failed = work(&s.failed);
        let shown = if filter.is_active() {
            pending.len() as u64
        } else {
            s.pending_count
        };
        StatusPage {
            generated: When::new(now, now),
            gerrit: Href::new(gerrit.as_str()),
            gerrit_host: host(gerrit),
            jenkins: Href::new(config.jenkins.url.as_str()),
            jenkins_host: host(&config.jenkins.url),
            filter,
            filter_project: filter.project.as_deref().map(Text::new),
            health,
            changes,
            pending_count: shown,
            pending_more: shown.saturating_sub(pending.len() as u64),
            pending,
            failed,
            events,
        }
    }
}

/// What the change rows are made from.
pub fn change_inputs<'a>(
    s: &'a Snapshot,
    config: &'a Config,
    filter: &'a Filter,
) -> changes::Inputs<'a> {
    changes::Inputs {
        now: s.now,
        gerrit: &config.gerrit.url,
        jenkins: &config.jenkins.url,
        filter,
        events: &s.events,
        triggers: &s.triggers,
        builds: &s.builds,
        vouches: &s.vouches,
    }
}

/// The events the filter lets through: of its change, or of a change of
/// its project (a project is known from the changes shown).
pub fn shown_events<'a>(
    s: &'a Snapshot,
    filter: &'a Filter,
    changes: &'a [ChangeRow],
) -> impl Iterator<Item = &'a EventRecord> + 'a {
    s.events.iter().filter(move |e| {
        !filter.is_active()
            || e.change_number
                .is_some_and(|n| changes.iter().any(|c| c.number == n))
    })
}

/// Whether an outbox item is about a change the filter lets through.
fn admits_item(
    filter: &Filter,
    changes: &[ChangeRow],
    item: &bionicbb_core::ledger::OutboxItem,
) -> bool {
    if !filter.is_active() {
        return true;
    }
    let (change, _) = waiting::change_of(item);
    match (filter.change, change) {
        (Some(wanted), Some(n)) => wanted == n,
        (_, Some(n)) => changes.iter().any(|c| c.number == n),
        (_, None) => false,
    }
}

/// The host of a configured URL, with its port when not the default.
fn host(url: &url::Url) -> Text {
    let host = url.host_str().unwrap_or("?");
    Text::new(&match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

fn seconds(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
