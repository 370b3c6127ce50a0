//! Gerrit REST client and types.

pub mod id;

pub use id::{ChangeKey, ChangeRef, InvalidId};
