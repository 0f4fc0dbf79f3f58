//! Helpers the calgate crate's test binaries share (each includes `mod common;`).

pub mod bookings;
