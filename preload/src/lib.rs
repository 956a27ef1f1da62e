//! `libfiletrail.so`: loaded with `LD_PRELOAD` into human sessions, it reports
//! every change to a tracked file to the collector, and changes nothing the
//! host program can observe.
//!
//! Layout (see docs/architecture.md):
//! - [`hooks`] — the only place with exported symbols and raw pointers: each
//!   hook checks cheaply whether the call can matter, then calls into
//!   [`tracker`] inside a re-entrancy [`guard`] and `catch_unwind`.
//! - [`tracker`] — decides what a call means (a tracked write begins, the last
//!   descriptor closes, a rename, a delete) and keeps per-process state.
//! - [`fdtable`] — which descriptors belong to which tracked open.
//! - [`snapshot`] — reads what a path holds, bounded and consistent.
//! - [`client`] — the connection to the collector, with a time budget.
//! - [`sys`] — raw system calls the library makes for itself, never through
//!   the hooked libc entry points.
#![deny(unsafe_op_in_unsafe_fn)]

mod client;
mod config;
mod fdtable;
mod guard;
mod hooks;
mod lock;
mod snapshot;
mod sys;
mod tracker;
