use bridge::cli::{ApiCommand, Cli, Command};
use bridge::exit::{ExitStatus, Fatal};
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                ExitStatus::Usage.code() as u8
            } else {
                0
            });
        }
    };
    bridge::telemetry::init(&cli.run.log_level);

    let result = match &cli.command {
        Some(Command::Devices(args)) => bridge::commands::devices(args),
        Some(Command::Encoders(args)) => bridge::commands::encoders(args),
        Some(Command::Studios(args)) => bridge::commands::studios(args),
        Some(Command::Sources(args)) => bridge::commands::sources(args),
        Some(Command::Api {
            command: ApiCommand::Check(args),
        }) => bridge::commands::api_check(args),
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
