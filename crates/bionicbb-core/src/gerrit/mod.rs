//! Gerrit REST client and types.
//!
//! - [`id`]: change identifiers, validated before they reach a URL;
//! - [`types`]: the REST entities (`ChangeInfo`, `ReviewInput`, ...);
//! - [`client`]: [`GerritClient`], one method per endpoint bionicbb uses.

pub mod client;
pub mod id;
pub mod types;

pub use client::{GerritClient, QueryOption, Revision};
pub use id::{ChangeKey, ChangeRef, InvalidId};
pub use types::{
    AccountInfo, ApprovalInfo, ChangeInfo, ChangeMessageInfo, ChangeStatus, CommentInfo,
    CommitInfo, FileInfo, GitPerson, LabelInfo, Notify, ReviewInput, ReviewResult, RevisionInfo,
    current_patch_set, parse_timestamp, patch_set_ref,
};
