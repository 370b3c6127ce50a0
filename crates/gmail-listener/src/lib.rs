//! gmail-listener: polls the Gmail label Gerrit mails land in and acts on each mail.

pub mod gmail;
