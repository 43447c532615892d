//! The C ABI. Each function checks its pointers, catches panics, converts C
//! types to Rust ones, and calls the safe core; nothing else happens here.
//!
//! Handles are `Arc`s turned into raw pointers: `dgram_context *` is an
//! `Arc<Context>`, `dgram_socket *` an `Arc<Socket>`, each released by its
//! `_free` function.
//!
//! Every function here trusts its pointer arguments only as far as the
//! header's contract goes: a handle is NULL or live, a string NULL or
//! NUL-terminated, any other pointer NULL or valid for what it names. The
//! raw operations that rely on it are in the helpers of `handles.rs` and
//! `args.rs` (each `unsafe fn` states its contract under "Safety"); each
//! entry point says, where it calls them, which part of the header's
//! contract makes the call sound.
//!
//! One file per section of `include/dgram.h`, declared below in the header's
//! order: cbindgen reads the modules in the order they are declared and
//! emits their functions in that order (`[fn] sort_by = "None"` in
//! cbindgen.toml).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // The safety contract of each function is in the header.

// The machinery shared by the entry points.
mod args;
mod guard;
mod handles;

// The entry points, one module per section of the header, declared in the
// header's order. Each stands alone between blank lines, so that rustfmt
// (which sorts each run of adjacent `mod` lines) keeps this order.

// Contexts: new, fd, dispatch, run, active, free.
mod context;

// A socket's life: create, free, the handlers, close, ref and unref.
mod lifecycle;

// Bind and connect.
mod bind_connect;

// Sending.
mod send;

// Receiving and per-datagram metadata.
mod receive;

// Socket options.
mod options;

// Multicast.
mod multicast;

// Figures and offload: counters, buffer sizes, the send queue, offload.
mod figures;

// Error names and messages, and the version.
mod errors;

pub use bind_connect::*;
pub use context::*;
pub use errors::*;
pub use figures::*;
pub use lifecycle::*;
pub use multicast::*;
pub use options::*;
pub use receive::*;
pub use send::*;
