//! Subcommands other than the main run.

pub mod login;

use crate::app::api_client;
use crate::capture::discovery::report::clean;
use crate::capture::discovery::{self, report, DiscoveryPaths};
use crate::cli::{ApiArgs, DevicesArgs, EncodersArgs, ListArgs, SourcesArgs};
use crate::config::build::api_settings;
use crate::config::{FrameRate, Size};
use crate::encode::{self, EncodeSettings, GstProber, Platform, Profile, TestEncode};
use crate::exit::{ExitStatus, Fatal};
use gstreamer as gst;
use std::io::Write;

/// Writes `text` to standard output. A reader that has gone (a broken pipe,
/// as with `| head`) wanted no more, so that ends the command without an
/// error. Any other write error exits 1.
pub fn write_stdout(text: &str) -> Result<(), Fatal> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(Fatal::new(
            ExitStatus::Other,
            anyhow::anyhow!("failed to write to standard output: {error}"),
        )),
    }
}

/// Returns `lines`, each ended by a line feed.
fn joined(lines: impl IntoIterator<Item = String>) -> String {
    lines.into_iter().map(|line| line + "\n").collect()
}

/// Prints the capture devices the device monitor finds, as a table or as
/// JSON. No device is no error: the table reports it and the JSON is `[]`.
pub fn devices(args: &DevicesArgs) -> Result<(), Fatal> {
    let paths = DiscoveryPaths::default();
    let devices = discovery::discover(&paths).map_err(|e| Fatal::new(ExitStatus::Device, e))?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&devices).map_err(|e| Fatal::new(ExitStatus::Other, e))?;
        write_stdout(&format!("{json}\n"))
    } else {
        let unlisted = discovery::unlisted_nodes(&paths, &devices);
        write_stdout(&joined(report::render(&devices, &unlisted)))
    }
}

/// Prints every encoder candidate for this platform: whether its element
/// is registered (and what provides it when not), and the outcome of its
/// test encode at the given size and rate. Exits with code 5 when none
/// passes.
pub fn encoders(args: &EncodersArgs) -> Result<(), Fatal> {
    let usage = |message: String| Fatal::new(ExitStatus::Usage, anyhow::anyhow!(message));
    let size: Size = args.size.parse().map_err(usage)?;
    let fps: FrameRate = args.fps.parse().map_err(usage)?;
    gst::init().map_err(|e| Fatal::new(ExitStatus::Other, e))?;

    let settings = EncodeSettings {
        size,
        fps,
        bitrate_kbps: encode::default_bitrate_kbps(size),
        gop_frames: encode::gop_frames(2.0, fps),
        profile: Profile::High,
    };
    let registered = |factory: &str| gst::ElementFactory::find(factory).is_some();
    let statuses = encode::survey(Platform::current(), &settings, &GstProber, &registered);
    if args.json {
        let json = serde_json::to_string_pretty(&statuses)
            .map_err(|e| Fatal::new(ExitStatus::Other, e))?;
        write_stdout(&format!("{json}\n"))?;
    } else {
        let heading = format!(
            "test encode: {size} at {} fps, High profile",
            crate::capture::modes::fps_text(&fps)
        );
        write_stdout(&joined(
            std::iter::once(heading).chain(encoder_table(&statuses)),
        ))?;
    }
    if statuses
        .iter()
        .all(|status| status.test_encode != TestEncode::Passed)
    {
        return Err(Fatal::new(
            ExitStatus::Encoder,
            anyhow::anyhow!(
                "no H.264 encoder passed its test encode at {size}; install \
                 gstreamer1.0-plugins-ugly for x264enc, or a hardware encoder's driver and plugin"
            ),
        ));
    }
    Ok(())
}

/// Lays out the encoder survey: one row per candidate, then the reason
/// and, for an unregistered element, what provides it, indented below.
fn encoder_table(statuses: &[encode::EncoderStatus]) -> Vec<String> {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            let yes_no = if status.registered { "yes" } else { "no" };
            let selected = if status.selected {
                "auto picks this"
            } else {
                ""
            };
            vec![
                status.family.to_string(),
                status.element.to_string(),
                yes_no.to_string(),
                status.test_encode.as_str().to_string(),
                selected.to_string(),
            ]
        })
        .collect();
    let header = ["FAMILY", "ELEMENT", "REGISTERED", "TEST ENCODE", ""];
    let table = format_table(&header, &rows);
    let mut lines = vec![table[0].clone()];
    for (status, row) in statuses.iter().zip(&table[1..]) {
        lines.push(row.clone());
        if status.registered {
            if let Some(reason) = &status.reason {
                lines.push(format!("    why: {}", clean(reason)));
            }
        } else {
            lines.push(format!("    provided by: {}", status.provided_by));
        }
    }
    lines
}

/// Prints the studios the API key can see.
pub fn studios(args: &ListArgs) -> Result<(), Fatal> {
    let client = list_client(args)?;
    let studios = client.studios().map_err(api_fatal)?;
    if args.json {
        let rows: Vec<_> = studios
            .iter()
            .map(|s| serde_json::json!({"id": s.id, "name": s.name}))
            .collect();
        print_json(&rows)?;
    } else {
        let rows: Vec<Vec<String>> = studios
            .iter()
            .map(|s| vec![s.id.clone(), s.name.clone()])
            .collect();
        print_table(&["ID", "NAME"], &rows)?;
    }
    Ok(())
}

/// Prints the sources the API key can see, optionally of one studio.
pub fn sources(args: &SourcesArgs) -> Result<(), Fatal> {
    if args
        .studio
        .as_deref()
        .is_some_and(|studio| studio.trim().is_empty())
    {
        return Err(Fatal::new(
            ExitStatus::Usage,
            anyhow::anyhow!("--studio is empty: give a studio id (bridge studios lists them)"),
        ));
    }
    let client = list_client(&args.list)?;
    let sources = client.sources(args.studio.as_deref()).map_err(api_fatal)?;
    if args.list.json {
        let rows: Vec<_> = sources
            .iter()
            .map(|s| {
                serde_json::json!({"id": s.id, "name": s.name, "type": s.kind, "studioId": s.studio_id})
            })
            .collect();
        print_json(&rows)?;
    } else {
        let rows: Vec<Vec<String>> = sources
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.name.clone(),
                    s.kind.clone().unwrap_or_default(),
                    s.studio_id.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(&["ID", "NAME", "TYPE", "STUDIO"], &rows)?;
    }
    Ok(())
}

/// Reads the API's openapi.json and reports the operations the bridge needs.
pub fn api_check(args: &ApiArgs) -> Result<(), Fatal> {
    let settings = api_settings(args, &|name| std::env::var(name).ok())
        .map_err(|e| Fatal::new(ExitStatus::Usage, e))?;
    let client = api_client(&settings)?;
    let report = client.check_operations().map_err(api_fatal)?;
    let mut lines = vec![format!(
        "{}/v1/openapi.json (spec version {})",
        settings.origin.trim_end_matches('/'),
        report.spec_version.as_deref().unwrap_or("unknown")
    )];
    for operation in &report.found {
        lines.push(format!(
            "  found    {} {}",
            operation.method, operation.path
        ));
    }
    for operation in &report.missing {
        lines.push(format!(
            "  MISSING  {} {}",
            operation.method, operation.path
        ));
    }
    if report.missing.is_empty() {
        lines.push("every operation the bridge relies on is there".into());
        return write_stdout(&joined(lines));
    }
    write_stdout(&joined(lines))?;
    let missing: Vec<String> = report
        .missing
        .iter()
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    Err(Fatal::new(
        ExitStatus::Other,
        anyhow::anyhow!(
            "the API lacks {} operation(s) the bridge relies on: {}; see docs/v1-api.md",
            missing.len(),
            missing.join(", ")
        ),
    ))
}

fn list_client(args: &ListArgs) -> Result<crate::trax::api::ApiClient, Fatal> {
    let settings = api_settings(&args.api, &|name| std::env::var(name).ok())
        .map_err(|e| Fatal::new(ExitStatus::Usage, e))?;
    if settings.key.is_none() && !settings.login_store.has_login() {
        return Err(Fatal::new(
            ExitStatus::Usage,
            anyhow::anyhow!(
                "listing needs an API key or a login: set TRAX_API_KEY or --api-key-file, or \
                 run `bridge login`"
            ),
        ));
    }
    api_client(&settings)
}

fn api_fatal(error: crate::trax::api::ApiError) -> Fatal {
    Fatal::new(error.exit_status(), error)
}

fn print_json(rows: &[serde_json::Value]) -> Result<(), Fatal> {
    let json = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".into());
    write_stdout(&format!("{json}\n"))
}

/// Prints rows under a header, each column as wide as its widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) -> Result<(), Fatal> {
    write_stdout(&joined(format_table(header, rows)))
}

/// Lays out rows under a header, each column as wide as its widest cell.
/// Cells come from the API, so control characters are escaped: a newline
/// in a name must not forge a row, nor an escape sequence drive the terminal.
fn format_table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| clean(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut lines = vec![line(header.to_vec())];
    lines.extend(
        rows.iter()
            .map(|row| line(row.iter().map(String::as_str).collect())),
    );
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_escape_control_characters() {
        let cases = [
            ("Camera 1", "Camera 1"),
            ("two\nlines", "two\\nlines"),
            ("a\tb", "a\\tb"),
            ("\u{1b}[31mred\u{1b}[0m", "\\u{1b}[31mred\\u{1b}[0m"),
            ("Caméra", "Caméra"),
        ];
        for (cell, expected) in cases {
            assert_eq!(clean(cell), expected, "{cell:?}");
        }
    }

    #[test]
    fn table_keeps_one_line_per_row() {
        let rows = vec![
            vec!["std_a".to_string(), "fake\nstd_b  Forged".to_string()],
            vec!["std_c".to_string(), "Plain".to_string()],
        ];
        let lines = format_table(&["ID", "NAME"], &rows);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[1], "std_a  fake\\nstd_b  Forged");
        assert_eq!(lines[2], "std_c  Plain");
    }
}
