//! libdgram: UDP datagram sockets with the semantics of the IoT.js (and
//! Node) `dgram` module, for C and C++ hosts.
//!
//! The C API lives in [`ffi`] and is described for C users in
//! `include/dgram.h`, generated from these sources by cbindgen. The modules
//! behind it:
//! - [`context`]: the I/O thread, the event queue and dispatch;
//! - [`socket`]: the socket state machine and its send queue;
//! - [`event`]: events and the calls into host callbacks;
//! - [`addr`]: address parsing and formatting;
//! - `resolve`: host name lookups on their own thread;
//! - [`error`]: the `DGRAM_E*` codes;
//! - [`types`]: the C-visible types;
//! - [`sys`]: the few raw system calls socket2 does not cover.

pub mod addr;
mod batch;
pub mod context;
pub mod error;
pub mod event;
pub mod ffi;
mod pool;
mod resolve;
pub mod socket;
mod sys;
pub mod types;

pub use error::*;
pub use ffi::*;
pub use types::*;
