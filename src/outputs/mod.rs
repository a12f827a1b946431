//! Where results go. Every output is delivered atomically: written under a temporary name,
//! made durable, then renamed (see [`folder`]).

pub mod folder;
