//! Where files come from. Each source lists candidate files and says when one may be ready;
//! readiness itself is decided in [`crate::readiness`].

pub mod dir;
pub mod folder;
pub mod watch;
