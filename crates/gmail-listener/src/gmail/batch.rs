//! `messages.batchModify`: label changes on up to 1,000 messages in one
//! request (50 quota units, against 5 per message for `messages.modify` or
//! `messages.trash`). Gmail answers success with an empty body.

use bionicbb_core::error::{ApiError, ErrorKind, Service};
use bionicbb_core::retry::retry;
use google_gmail1::api::{BatchModifyMessagesRequest, Scope};

use super::{ME, Mailbox, RetryAfterProbe, classify};

/// The most ids one `messages.batchModify` takes.
pub const BATCH_MODIFY_MAX: usize = 1000;

impl Mailbox {
    /// Adds and removes label ids on every message of `ids` (at most
    /// [`BATCH_MODIFY_MAX`]) in one request. Adding `TRASH` moves the
    /// messages to the trash, as `messages.trash` does.
    pub async fn batch_modify(
        &self,
        ids: &[String],
        add: &[String],
        remove: &[String],
    ) -> Result<(), ApiError> {
        const WHAT: &str = "messages.batchModify";
        if ids.is_empty() || ids.len() > BATCH_MODIFY_MAX {
            return Err(ApiError::new(
                Service::Gmail,
                ErrorKind::InvalidInput,
                format!(
                    "{WHAT}: {} ids (1 to {BATCH_MODIFY_MAX} per request)",
                    ids.len()
                ),
            ));
        }
        let request = BatchModifyMessagesRequest {
            ids: Some(ids.to_vec()),
            add_label_ids: (!add.is_empty()).then(|| add.to_vec()),
            remove_label_ids: (!remove.is_empty()).then(|| remove.to_vec()),
        };
        retry(&self.policy, Service::Gmail, WHAT, || async {
            let mut probe = RetryAfterProbe::default();
            let result = self
                .hub
                .users()
                .messages_batch_modify(request.clone(), ME)
                .add_scope(Scope::Modify)
                .delegate(&mut probe)
                .doit()
                .await;
            result
                .map(drop)
                .map_err(|e| classify(WHAT, e, probe.retry_after))
        })
        .await
    }
}
