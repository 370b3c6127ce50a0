//! Gmail API access: the mailbox the daemon polls.
//!
//! One concrete hub type serves production and tests; only the
//! authenticator and the base URL differ. Every call asks for the
//! `gmail.modify` scope explicitly (the generated builders otherwise pick a
//! different default scope per method, which a cached token does not
//! cover), runs under a per-attempt timeout, and is retried only for passing
//! faults. Mail is fetched with `format=raw` because the hub cannot decode
//! the unpadded base64url Gmail sends in `format=full` part bodies, and
//! read as a stream within the size limit (see [`download`]).

mod auth;
mod batch;
pub mod download;
mod errors;

use std::collections::HashSet;

use bionicbb_core::config::GmailConfig;
use bionicbb_core::error::{ApiError, ErrorKind, Service};
use bionicbb_core::retry::{RetryPolicy, retry};
use google_gmail1::api::{Label, ModifyMessageRequest, Scope};
use google_gmail1::common::{self, GetToken};
use google_gmail1::hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use google_gmail1::hyper_util::client::legacy::Client;
use google_gmail1::hyper_util::client::legacy::connect::HttpConnector;
use google_gmail1::hyper_util::rt::TokioExecutor;

pub use auth::{MODIFY_SCOPE, REDIRECT_URI, TokenFile, authorize, check_token_cache, extract_code};
pub use batch::BATCH_MODIFY_MAX;
pub use download::{Download, Oversize, answer_bound};
pub use errors::{
    AUTH_HINT, DAILY_LIMIT_WAIT, MailboxError, RetryAfterProbe, classify, classify_answer,
    parse_retry_after,
};

/// The labels of a mailbox: (name, id) pairs, system labels included.
#[derive(Debug, Clone, Default)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// The id of the label `name`, if it exists.
    pub fn id(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
    }

    /// The id of the label `name`; an error when it does not exist.
    pub fn require(&self, name: &str) -> Result<String, ApiError> {
        self.id(name).map(str::to_string).ok_or_else(|| {
            ApiError::new(
                Service::Gmail,
                ErrorKind::NotFound,
                format!("the Gmail label `{name}` does not exist (create it, or fix gmail.label)"),
            )
        })
    }
}

/// The connector of every hub: TLS with the system's roots, plain HTTP
/// allowed (for a local fake or proxy).
pub type Connector = HttpsConnector<HttpConnector>;
/// The Gmail hub type used everywhere.
pub type GmailHub = google_gmail1::Gmail<Connector>;

/// Gmail's alias for the authorized account.
const ME: &str = "me";
/// The largest page `messages.list` serves.
const PAGE_SIZE: u32 = 500;
/// Where the Gmail API lives unless the configuration says otherwise.
const GOOGLE_BASE_URL: &str = "https://gmail.googleapis.com/";

/// `base_url` with a final `/` (the hub appends `gmail/v1/users/...` by
/// concatenation), or Google's.
fn base_url_of(base_url: Option<&str>) -> String {
    match base_url {
        Some(url) if url.ends_with('/') => url.to_string(),
        Some(url) => format!("{url}/"),
        None => GOOGLE_BASE_URL.to_string(),
    }
}

/// Builds a hub with `auth`, pointed at `base_url` (which must end with `/`)
/// instead of `https://gmail.googleapis.com/` when given.
pub fn hub_with<A: GetToken + 'static>(
    auth: A,
    base_url: Option<&str>,
) -> Result<GmailHub, MailboxError> {
    bionicbb_core::tls::install_crypto_provider();
    let connector = HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| MailboxError::Config(format!("cannot load the system's TLS roots: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let client: common::Client<Connector> = Client::builder(TokioExecutor::new()).build(connector);
    let mut hub = google_gmail1::Gmail::new(client, auth);
    if base_url.is_some() {
        let url = base_url_of(base_url);
        hub.base_url(url.clone());
        hub.root_url(url);
    }
    Ok(hub)
}

/// The bot's mailbox.
#[derive(Clone)]
pub struct Mailbox {
    hub: GmailHub,
    /// The hub's base URL (ends with `/`), for the calls made without it.
    base_url: String,
    policy: RetryPolicy,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("base_url", &self.base_url)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Runs one hub call under the retry policy. `$build` is an expression
/// using `$hub` that yields a call builder; the macro adds the scope and the
/// `Retry-After` probe, sends it, and classifies a failure.
macro_rules! call {
    ($self:ident, $what:expr, |$hub:ident| $build:expr) => {
        retry(&$self.policy, Service::Gmail, $what, || async {
            let $hub = &$self.hub;
            let mut probe = RetryAfterProbe::default();
            let result = $build
                .add_scope(Scope::Modify)
                .delegate(&mut probe)
                .doit()
                .await;
            result
                .map(|(_, value)| value)
                .map_err(|e| classify($what, e, probe.retry_after))
        })
    };
}

impl Mailbox {
    /// A mailbox over an existing hub, built by [`hub_with`] with the same
    /// `base_url`.
    pub fn new(hub: GmailHub, base_url: Option<&str>, policy: RetryPolicy) -> Mailbox {
        Mailbox {
            hub,
            base_url: base_url_of(base_url),
            policy,
        }
    }

    /// The daemon's mailbox: a bearer token from `bearer_token_file` when
    /// configured, else the OAuth token cache written by `gmail-listener
    /// auth`. Never starts an interactive flow: without a usable cache it
    /// fails with a message telling the operator what to run.
    pub async fn from_config(config: &GmailConfig) -> Result<Mailbox, MailboxError> {
        bionicbb_core::tls::install_crypto_provider();
        let base = config.api_base_url.as_ref().map(|u| u.as_str());
        let hub = match &config.bearer_token_file {
            Some(path) => hub_with(TokenFile::open(path).await?, base)?,
            None => hub_with(
                auth::daemon_authenticator(&config.client_secret_file, &config.token_cache_file)
                    .await?,
                base,
            )?,
        };
        let policy = RetryPolicy {
            attempt_timeout: config.timeout,
            ..RetryPolicy::default()
        };
        Ok(Mailbox::new(hub, base, policy))
    }

    /// The same mailbox with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Mailbox {
        self.policy = policy;
        self
    }

    /// The underlying hub, for calls this type does not wrap.
    pub fn hub(&self) -> &GmailHub {
        &self.hub
    }

    /// The mailbox's labels, from one `labels.list`.
    pub async fn labels(&self) -> Result<Labels, ApiError> {
        let list = call!(self, "labels.list", |hub| hub.users().labels_list(ME)).await?;
        Ok(Labels(
            list.labels
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| Some((l.name?, l.id?)))
                .collect(),
        ))
    }

    /// The id of the user label `name` among `labels` (filters take ids,
    /// not names), created when missing (the quarantine label): no request
    /// when it is there.
    pub async fn ensure_label_in(&self, labels: &Labels, name: &str) -> Result<String, ApiError> {
        if let Some(id) = labels.id(name) {
            return Ok(id.to_string());
        }
        let label = Label {
            name: Some(name.to_string()),
            label_list_visibility: Some("labelShow".into()),
            message_list_visibility: Some("show".into()),
            ..Label::default()
        };
        let created = call!(self, "labels.create", |hub| hub
            .users()
            .labels_create(label.clone(), ME))
        .await;
        match created {
            Ok(Label { id: Some(id), .. }) => Ok(id),
            Ok(_) => Err(ApiError::new(
                Service::Gmail,
                ErrorKind::Malformed,
                format!("labels.create: answer without the id of label `{name}`"),
            )),
            // A retried create whose first attempt did land is refused as a
            // duplicate: the label is there, which is all we wanted.
            Err(err) if matches!(err.kind, ErrorKind::Conflict | ErrorKind::Rejected) => {
                match self.labels().await?.id(name) {
                    Some(id) => Ok(id.to_string()),
                    None => Err(err),
                }
            }
            Err(err) => Err(err),
        }
    }

    /// Every message id carrying `label_id`, over all pages, oldest first.
    /// Each page request repeats the label filter (a page token is only
    /// valid with the query it was issued for). Ids that shift from one page
    /// to the next while mail arrives are listed once.
    pub async fn list_all(&self, label_id: &str) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let mut seen = HashSet::new();
        let mut page_token: Option<String> = None;
        loop {
            let page = call!(self, "messages.list", |hub| {
                let mut list = hub
                    .users()
                    .messages_list(ME)
                    .add_label_ids(label_id)
                    .max_results(PAGE_SIZE);
                if let Some(token) = &page_token {
                    list = list.page_token(token);
                }
                list
            })
            .await?;
            for message in page.messages.unwrap_or_default() {
                if let Some(id) = message.id
                    && seen.insert(id.clone())
                {
                    ids.push(id);
                }
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if page_token.as_deref() == Some(next.as_str()) => {
                    return Err(ApiError::new(
                        Service::Gmail,
                        ErrorKind::Malformed,
                        "messages.list: the next page token repeats the current one",
                    ));
                }
                Some(next) => page_token = Some(next),
                None => break,
            }
        }
        // Gmail lists newest first; mail is handled in arrival order.
        ids.reverse();
        Ok(ids)
    }

    /// Moves message `id` to the trash (it leaves every label listing).
    pub async fn trash(&self, id: &str) -> Result<(), ApiError> {
        call!(self, "messages.trash", |hub| hub
            .users()
            .messages_trash(ME, id))
        .await
        .map(drop)
    }

    /// Adds and removes label ids on message `id`.
    pub async fn modify(
        &self,
        id: &str,
        add: &[String],
        remove: &[String],
    ) -> Result<(), ApiError> {
        let request = ModifyMessageRequest {
            add_label_ids: (!add.is_empty()).then(|| add.to_vec()),
            remove_label_ids: (!remove.is_empty()).then(|| remove.to_vec()),
        };
        call!(self, "messages.modify", |hub| hub.users().messages_modify(
            request.clone(),
            ME,
            id
        ))
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests;
