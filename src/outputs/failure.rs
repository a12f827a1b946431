//! Whether a failed delivery may pass: the one place that sorts failures of every output
//! kind (folder, FTP, SMTP) into those worth trying again later and those that will fail
//! the same way every time (docs/design.md, "The retry queue").
//!
//! A failure that **may pass** (the share is not mounted or was remounted read-only,
//! permission denied on a share, disk full, I/O error, connection refused, timeout, server
//! busy, FTP and SMTP 4xx replies) keeps the file queued for another try. One that **will
//! not** (a parse error, a bad record, a name taken under `exists = "fail"`, a 5xx reply
//! that refuses this file) sends it to the error folder at once, as before.

use std::io;

/// Whether a failure may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Worth another try later: the destination is away, full or busy.
    Transient,
    /// Fails the same way every time: the file goes to the error folder.
    Permanent,
}

impl Kind {
    pub fn is_transient(self) -> bool {
        self == Kind::Transient
    }
}

/// An I/O error while writing to a destination. The kinds are those a share that went away,
/// filled up or lost its rights gives; anything else (a name that is not valid, a path
/// through a file, a name taken) will fail again.
pub fn of_io(e: &io::Error) -> Kind {
    use io::ErrorKind as K;
    match e.kind() {
        K::PermissionDenied
        | K::ReadOnlyFilesystem
        | K::StorageFull
        | K::QuotaExceeded
        | K::NotFound
        | K::TimedOut
        | K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::StaleNetworkFileHandle
        | K::ResourceBusy
        | K::Interrupted
        | K::WouldBlock => Kind::Transient,
        _ => of_errno(e.raw_os_error()),
    }
}

/// Errors std has no kind for yet: EIO (a share whose server went away), ENODEV, ENXIO,
/// ENOTCONN's FUSE cousin ECONNABORTED, EAGAIN, and ESTALE.
fn of_errno(code: Option<i32>) -> Kind {
    #[cfg(unix)]
    {
        const TRANSIENT: &[i32] = &[
            5,   // EIO
            6,   // ENXIO
            11,  // EAGAIN
            16,  // EBUSY
            19,  // ENODEV
            28,  // ENOSPC
            30,  // EROFS
            103, // ECONNABORTED
            107, // ENOTCONN (a FUSE share whose daemon died)
            110, // ETIMEDOUT
            116, // ESTALE
            122, // EDQUOT
        ];
        if code.is_some_and(|c| TRANSIENT.contains(&c)) {
            return Kind::Transient;
        }
    }
    #[cfg(windows)]
    {
        // ERROR_NOT_READY, ERROR_BAD_NETPATH, ERROR_NETNAME_DELETED, ERROR_UNEXP_NET_ERR,
        // ERROR_BAD_NET_NAME, ERROR_DISK_FULL, ERROR_HANDLE_DISK_FULL, ERROR_SHARING_VIOLATION.
        const TRANSIENT: &[i32] = &[21, 53, 64, 59, 67, 112, 39, 32];
        if code.is_some_and(|c| TRANSIENT.contains(&c)) {
            return Kind::Transient;
        }
    }
    let _ = code;
    Kind::Permanent
}

/// An FTP reply to a transfer of one file (STOR, RNFR/RNTO). 4xx are transient by RFC 959
/// (421 closing, 425/426 data connection, 450 file busy, 451 local error, 452 no space);
/// of the 5xx, 552 ("exceeded storage allocation") is a full disk and 550 is what servers
/// answer for a folder without write permission: both may pass. Other 5xx (553 name not
/// allowed, 501/504 syntax) refuse this file for good.
pub fn of_ftp_reply(code: u32) -> Kind {
    match code {
        400..=499 | 550 | 552 => Kind::Transient,
        _ => Kind::Permanent,
    }
}

/// An SMTP reply to one message (RFC 5321): 4xx (421 service not available, 450/451/452
/// mailbox busy, local error, no space) may pass; 5xx (550 no such user, 552 too big, 554)
/// refuse this message for good.
pub fn of_smtp_reply(code: u32) -> Kind {
    match code {
        400..=499 => Kind::Transient,
        _ => Kind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_that_may_pass_and_those_that_will_not() {
        use io::ErrorKind as K;
        let cases = [
            (io::Error::from(K::PermissionDenied), Kind::Transient),
            (io::Error::from(K::NotFound), Kind::Transient),
            (io::Error::from(K::TimedOut), Kind::Transient),
            (io::Error::from(K::ConnectionRefused), Kind::Transient),
            (io::Error::from(K::AlreadyExists), Kind::Permanent),
            (io::Error::from(K::InvalidInput), Kind::Permanent),
            (io::Error::from(K::InvalidData), Kind::Permanent),
            (io::Error::other("a bad record"), Kind::Permanent),
        ];
        for (e, want) in cases {
            assert_eq!(of_io(&e), want, "{e:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn errno_values_of_shares_and_full_disks_may_pass() {
        let cases = [
            (5, Kind::Transient),   // EIO
            (13, Kind::Transient),  // EACCES
            (28, Kind::Transient),  // ENOSPC
            (30, Kind::Transient),  // EROFS
            (107, Kind::Transient), // ENOTCONN
            (116, Kind::Transient), // ESTALE
            (122, Kind::Transient), // EDQUOT
            (111, Kind::Transient), // ECONNREFUSED
            (17, Kind::Permanent),  // EEXIST
            (20, Kind::Permanent),  // ENOTDIR
            (21, Kind::Permanent),  // EISDIR
            (36, Kind::Permanent),  // ENAMETOOLONG
            (22, Kind::Permanent),  // EINVAL
        ];
        for (errno, want) in cases {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(of_io(&e), want, "errno {errno}: {e}");
        }
    }

    #[test]
    fn ftp_and_smtp_replies() {
        for (code, want) in [
            (421, Kind::Transient),
            (425, Kind::Transient),
            (450, Kind::Transient),
            (451, Kind::Transient),
            (452, Kind::Transient),
            (550, Kind::Transient),
            (552, Kind::Transient),
            (553, Kind::Permanent),
            (501, Kind::Permanent),
            (504, Kind::Permanent),
        ] {
            assert_eq!(of_ftp_reply(code), want, "FTP {code}");
        }
        for (code, want) in [
            (421, Kind::Transient),
            (450, Kind::Transient),
            (451, Kind::Transient),
            (452, Kind::Transient),
            (550, Kind::Permanent),
            (552, Kind::Permanent),
            (554, Kind::Permanent),
        ] {
            assert_eq!(of_smtp_reply(code), want, "SMTP {code}");
        }
    }
}
