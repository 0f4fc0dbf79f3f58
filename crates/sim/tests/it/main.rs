//! The simulator's integration tests: one test binary, real HTTP against an in-process
//! simulator on 127.0.0.1:0. Each module covers one area.
#![allow(clippy::unwrap_used)]

mod common;

mod batch;
mod control;
mod delta;
mod events;
mod ews;
mod identity;
mod meetings;
mod places;
mod robustness;
mod schedule;
mod seed;
mod subscriptions;
mod throttle;
