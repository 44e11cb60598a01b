//! The process's limit on open file descriptors: every connection spends one, and so does every
//! file ingest writes. At start the soft limit is raised to the hard one (often 1,024 against
//! 524,288 on Linux), and a configuration that could open more connections than it allows is
//! reported.

/// Descriptors kept for files, the database and the rest, beyond connections.
const RESERVE: u64 = 1024;

/// Raises the soft limit on open files to the hard one; warns when `connections` (all
/// listeners' maxima) plus a reserve for files exceed it. Returns the soft limit in effect.
pub fn raise(connections: u64) -> Option<u64> {
    let limit = raise_soft_limit()?;
    if connections + RESERVE > limit {
        tracing::warn!(
            limit,
            connections,
            "the open-file limit leaves too little room for the configured connection limits and ingest's files: lower [http] max_connections or raise the limit (ulimit -n, LimitNOFILE)"
        );
    }
    Some(limit)
}

#[cfg(unix)]
fn raise_soft_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!(from = limit.rlim_cur, to = limit.rlim_max, "open-file limit raised");
                limit = raised;
            }
        }
    }
    // rlim_t is u64 on Linux, another width elsewhere.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_soft_limit() -> Option<u64> {
    None
}
