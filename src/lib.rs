//! libdgram: UDP datagram sockets with the semantics of the IoT.js (and
//! Node) `dgram` module, for C and C++ hosts.
//!
//! The C API lives in [`ffi`] and is described for C users in
//! `include/dgram.h`, generated from these sources by cbindgen. The modules
//! behind it, from the top down (each uses only those below it, except that
//! a socket reaches its context through the context's own methods):
//! - [`ffi`]: the C functions: pointer checks, panics, conversions;
//! - [`context`]: the sockets of one context, the reader that reads and
//!   delivers their datagrams, the event queue, dispatch and the I/O thread;
//! - [`socket`]: the socket state machine and its send queue;
//! - `activity`: what keeps a host loop alive;
//! - `batch` and `pool`: receive buffers; `resolve`: host name lookups on
//!   their own thread; [`event`]: events and the calls into host callbacks;
//! - [`addr`]: address parsing and formatting; [`error`]: the `DGRAM_E*`
//!   codes; [`types`]: the C-visible types; `sys`: the few raw system
//!   calls socket2 does not cover.

mod activity;
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
