//! A run as frontends see it: its event stream and controls (`handle`), how one is
//! set up (`setup`) and recorded (`stored`), what a person asks of it (`steer`), and
//! the notifications it sends (`notify`).

pub mod handle;
pub(crate) mod notify;
pub mod setup;
pub(crate) mod steer;
pub mod stored;
