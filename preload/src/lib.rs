//! `libfiletrail_core.so`: the Rust core of the preload library. The object
//! sessions actually preload is the small C shim `preload/shim/filetrail.c`
//! (`libfiletrail.so`); it interposes libc's file calls and loads this core
//! with `dlopen` the first time a process makes a call that may change a
//! file. The core reports every change to a tracked file to the collector
//! and changes nothing the host program can observe.
//!
//! Layout (see docs/architecture.md):
//! - [`api`] — the C entry points the shim calls: the only place that takes
//!   raw pointers; each runs [`tracker`] under `catch_unwind` and keeps errno.
//! - [`tracker`] — decides what a call means (a tracked write begins, the last
//!   descriptor closes, a rename, a delete) and keeps per-process state.
//! - [`fdtable`] — which descriptors belong to which tracked open.
//! - [`snapshot`] — reads what a path holds, bounded and consistent.
//! - [`client`] — the connection to the collector, with a time budget.
//! - [`spool`] — where events go when no collector answers.
//! - [`unacked`] — events the collector has not acknowledged, kept to be
//!   sent again after a reconnect (bounded).
//! - [`sys`] — raw system calls the library makes for itself, never through
//!   the hooked libc entry points.
#![deny(unsafe_op_in_unsafe_fn)]

mod api;
mod client;
mod config;
mod fdtable;
mod lock;
mod snapshot;
mod spool;
mod sys;
mod tracker;
mod unacked;
