//! calgate-graph against the in-process simulator, over real HTTP: one test binary.
#![allow(clippy::unwrap_used)]

mod common;

mod errors;
mod props;
mod sync;
mod throttling;
mod tokens;
