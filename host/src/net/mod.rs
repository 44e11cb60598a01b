//! What keeps a peer from holding a connection forever: connection limits, the watch over each
//! HTTP connection (head and idle timeouts), the request body's inactivity timeout, and the
//! process's file descriptor limit, which every connection spends.

pub mod activity;
pub mod body;
pub mod fd_limit;
pub mod limits;
