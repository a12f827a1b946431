//! Remote sources and destinations (see docs/mail.md): mail protocol parts.

pub mod imap;
pub mod mail_config;
pub mod mail_output;
pub mod mail_source;
pub mod mail_store;
pub mod mime;
pub mod smtp;
