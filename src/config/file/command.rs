//! `bridge --config FILE` and `bridge check --config FILE`.

use super::{DeviceDirs, Request};
use crate::cli::{CheckArgs, RunArgs};
use crate::config::ConfigError;
use crate::exit::{ExitStatus, Fatal};
use crate::reload::ConfigSource;
use clap::parser::ValueSource;
use clap::ArgMatches;

/// The flags that may be given with `--config`: which device, how long,
/// and the log level, which apply to one run rather than to the appliance.
const RUN_FLAGS: &[&str] = &["config", "device", "duration", "log_level"];

/// Checks the file and prints "ok" with a summary, or returns every error.
pub fn check(args: &CheckArgs) -> Result<(), Fatal> {
    let env = |name: &str| std::env::var(name).ok();
    let summary = super::check(
        &args.config,
        args.device.as_deref(),
        &env,
        &DeviceDirs::default(),
    )
    .map_err(|error| Fatal::new(ExitStatus::Usage, error))?;
    println!("ok");
    for line in summary {
        println!("  {line}");
    }
    Ok(())
}

/// Loads the file named by `--config` for a run.
pub fn load_for_run(args: &RunArgs, matches: &ArgMatches) -> Result<ConfigSource, Fatal> {
    let usage = |error: ConfigError| Fatal::new(ExitStatus::Usage, error);
    reject_flags(matches).map_err(usage)?;
    let path = args.config.clone().expect("called with --config");
    let env = |name: &str| std::env::var(name).ok();
    let request = request(args, matches);
    let loaded = super::load(&path, &request, &env, &DeviceDirs::default()).map_err(usage)?;
    Ok(ConfigSource {
        path,
        request,
        loaded,
    })
}

/// What the command line gives next to `--config`.
pub fn request(args: &RunArgs, matches: &ArgMatches) -> Request {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    Request {
        device: args.device.clone(),
        duration: given("duration").then_some(args.duration),
        log_level: given("log_level").then(|| args.log_level.clone()),
    }
}

/// The log level for the logger: the flag, else the file's, else the
/// default.
pub fn log_level(args: &RunArgs, matches: &ArgMatches) -> String {
    let from_file = args
        .config
        .as_deref()
        .and_then(|path| super::log_level(path, args.device.as_deref()));
    match (matches.value_source("log_level"), from_file) {
        (Some(ValueSource::CommandLine), _) | (_, None) => args.log_level.clone(),
        (_, Some(level)) => level,
    }
}

/// Rejects every run flag but `RUN_FLAGS` next to `--config`, so the file
/// is the one place settings come from.
fn reject_flags(matches: &ArgMatches) -> Result<(), ConfigError> {
    let command = <crate::cli::Cli as clap::CommandFactory>::command();
    let given: Vec<String> = matches
        .ids()
        .map(|id| id.as_str())
        .filter(|id| !RUN_FLAGS.contains(id))
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|id| {
            let flag = command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .and_then(|arg| arg.get_long())
                .unwrap_or(id);
            format!("--{flag}")
        })
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(ConfigError::Invalid(format!(
        "{} cannot be given with --config, so that the file is the one place settings come \
         from: set the key in the file instead (the flag's name in snake_case, such as \
         bitrate = 4000, or an [[output]] table for --output); only --device, --duration \
         and --log-level go with --config",
        given.join(", ")
    )))
}
