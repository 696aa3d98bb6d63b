use bridge::cli::{ApiCommand, Cli, Command};
use bridge::config::file::command as config_file;
use bridge::exit::{ExitStatus, Fatal};
use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

fn main() -> ExitCode {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code() as u8
            } else {
                0
            });
        }
    };
    bridge::telemetry::init(&config_file::log_level(&cli.run, &matches));

    let result = match &cli.command {
        Some(Command::Devices(args)) => bridge::commands::devices(args),
        Some(Command::Encoders(args)) => bridge::commands::encoders(args),
        Some(Command::Check(args)) => config_file::check(args),
        Some(Command::Studios(args)) => bridge::commands::studios(args),
        Some(Command::Sources(args)) => bridge::commands::sources(args),
        Some(Command::Login(args)) => bridge::commands::login::login(args),
        Some(Command::Logout(args)) => bridge::commands::login::logout(args),
        Some(Command::Api {
            command: ApiCommand::Check(args),
        }) => bridge::commands::api_check(args),
        None if cli.run.config.is_some() => {
            config_file::load_for_run(&cli.run, &matches).and_then(bridge::app::run_loaded)
        }
        None => bridge::config::build(&cli.run, &|name| std::env::var(name).ok())
            .map_err(|error| Fatal::new(ExitStatus::Usage, error))
            .and_then(|config| {
                if cli.run.print_pipeline {
                    bridge::pipeline::print::print(&config)
                } else {
                    bridge::app::run(config)
                }
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            eprintln!("error: {fatal}");
            ExitCode::from(fatal.status.code() as u8)
        }
    }
}
