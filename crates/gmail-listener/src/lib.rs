//! gmail-listener: polls the Gmail label Gerrit mails land in and acts on each mail.

pub mod cli;
pub mod effects;
pub mod facts;
pub mod gmail;
pub mod health;
pub mod lost_trigger;
pub mod poll;
pub mod reconcile;
#[cfg(test)]
mod test_config;
