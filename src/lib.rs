//! bridge: capture a camera or capture card, encode it once, and publish the
//! encode to several outputs at once over SRT, RTMP and WHIP.

pub mod app;
pub mod capture;
pub mod cli;
pub mod commands;
pub mod config;
pub mod encode;
pub mod exit;
pub mod output;
pub mod pipeline;
pub mod reload;
pub mod signals;
pub mod supervisor;
pub mod telemetry;
pub mod trax;
