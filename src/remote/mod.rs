//! Remote sources and destinations (see docs/mail.md): mail protocol parts.

pub mod mime;
pub mod imap;
