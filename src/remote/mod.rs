//! Remote sources and destinations (see docs/mail.md): mail protocol parts.

pub mod imap;
pub mod mime;
pub mod smtp;
pub mod mail_config;
