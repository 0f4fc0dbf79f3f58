//! calgate-sync's tests, one binary: the pure planner and page applier, then the engine against
//! the in-process simulator over real HTTP with a real SQLite file.

mod common;
mod engine;
mod ews;
mod faults;
mod page;
mod planner;
