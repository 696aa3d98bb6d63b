//! SIGHUP with `--config`: re-read the file and apply what changed in the
//! outputs without touching the others. Outputs are matched by their
//! `name` key, else their URL. Run-wide changes (source, encode, audio,
//! status server, reconnect delays) would need a new media pipeline or
//! were taken at start, so they are only logged.

use crate::app::{self, Launcher, OutputHandle, Role};
use crate::config::file::{self, keys::Layer, DeviceDirs, Loaded, OutputEntry, Request};
use crate::config::Config;
use crate::encode::Profile;
use crate::exit::Fatal;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tracing::{error, info, warn};

/// A config file as loaded for a run, with what a reload needs.
pub struct ConfigSource {
    pub path: PathBuf,
    pub request: Request,
    pub loaded: Loaded,
}

impl ConfigSource {
    /// Splits off the configuration to run.
    pub fn split(self) -> (Config, Reloader) {
        let Loaded {
            config,
            global,
            outputs,
            ..
        } = self.loaded;
        // Outputs the file does not list, such as the one /v1 names with
        // `source` and no [[output]], cannot be matched on a reload.
        let matched = outputs.len() == config.outputs.len();
        let reloader = Reloader {
            path: self.path,
            request: self.request,
            global,
            profile: config.profile,
            entries: if matched { outputs } else { Vec::new() },
        };
        (config, reloader)
    }
}

/// The file's place and the settings the run started with, before its
/// outputs run.
pub struct Reloader {
    path: PathBuf,
    request: Request,
    global: Layer,
    profile: Profile,
    entries: Vec<OutputEntry>,
}

impl Reloader {
    /// Takes the handles of the running outputs, in the order of the
    /// file's outputs.
    pub(crate) fn start(self, handles: Vec<OutputHandle>, has_opus: bool) -> Reload {
        if self.entries.len() != handles.len() {
            return Reload {
                path: self.path,
                request: self.request,
                global: self.global,
                profile: self.profile,
                has_opus,
                running: Vec::new(),
                unmatched: handles,
            };
        }
        let running = self
            .entries
            .into_iter()
            .zip(handles)
            .map(|(entry, handle)| Running { entry, handle })
            .collect();
        Reload {
            unmatched: Vec::new(),
            path: self.path,
            request: self.request,
            global: self.global,
            profile: self.profile,
            has_opus,
            running,
        }
    }
}

struct Running {
    entry: OutputEntry,
    handle: OutputHandle,
}

/// The counts of live outputs a reload started and stopped.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Changes {
    /// Outputs started.
    pub(crate) started: usize,
    /// Outputs stopped before they had ended on their own; their outcomes
    /// never arrive.
    pub(crate) withdrawn: usize,
}

/// The running outputs and the settings they run with.
pub(crate) struct Reload {
    path: PathBuf,
    request: Request,
    global: Layer,
    profile: Profile,
    /// Whether the media pipeline encodes Opus, which WHIP outputs take.
    has_opus: bool,
    running: Vec<Running>,
    /// Outputs the file does not list, kept running as they are.
    unmatched: Vec<OutputHandle>,
}

impl Reload {
    /// Re-reads the file and applies its output changes.
    pub(crate) fn reload(&mut self, launcher: &Launcher) -> Changes {
        info!(file = %self.path.display(), "SIGHUP: reloading the config file");
        let env = |name: &str| std::env::var(name).ok();
        let loaded = match file::load(&self.path, &self.request, &env, &DeviceDirs::default()) {
            Ok(loaded) => loaded,
            Err(error) => {
                error!("the config file is invalid; the bridge runs on unchanged: {error}");
                return Changes::default();
            }
        };
        self.log_restart_needed(&loaded);
        let Loaded {
            mut config,
            outputs: entries,
            ..
        } = loaded;
        if entries.len() != config.outputs.len() || !self.unmatched.is_empty() {
            warn!("outputs the file does not list cannot be reloaded; restart to apply");
            return Changes::default();
        }
        let mut changes = Changes {
            started: 0,
            withdrawn: self.stop_changed(launcher, &entries),
        };

        // What is left to start: new outputs and changed ones.
        let mut to_start = Vec::new();
        let mut configs = Vec::new();
        for (entry, output) in entries.into_iter().zip(std::mem::take(&mut config.outputs)) {
            if self.running.iter().any(|running| running.entry == entry) {
                continue;
            }
            if output.is_whip() && !self.has_opus {
                warn!(
                    output = %entry.id,
                    "a new WHIP output needs Opus audio, which the running media pipeline \
                     does not encode; it needs a restart to apply"
                );
                continue;
            }
            to_start.push(entry);
            configs.push(output);
        }
        config.outputs = configs;
        let built = match app::build_outputs(&config) {
            Ok(built) => built,
            Err(fatal) => {
                error!("cannot start the new outputs: {fatal}");
                return changes;
            }
        };
        for source in &built.acquired {
            source.spawn_renewal(launcher.stop.clone());
        }
        for (entry, output) in to_start.into_iter().zip(built.outputs) {
            match self.start_output(launcher, output) {
                Ok(handle) => {
                    info!(output = %entry.id, "started the output");
                    self.running.push(Running { entry, handle });
                    changes.started += 1;
                }
                Err(fatal) => error!(output = %entry.id, "cannot start the output: {fatal}"),
            }
        }
        if self.running.is_empty() {
            warn!("no live output runs after the reload; add an [[output]] to the config file and reload");
        }
        changes
    }

    /// Stops the running outputs that the file removed or changed, all at
    /// once; returns how many of them had not ended on their own.
    fn stop_changed(&mut self, launcher: &Launcher, entries: &[OutputEntry]) -> usize {
        let mut kept = Vec::new();
        let mut stopping = Vec::new();
        for running in std::mem::take(&mut self.running) {
            if entries.contains(&running.entry) {
                kept.push(running);
                continue;
            }
            let changed = entries.iter().any(|entry| entry.id == running.entry.id);
            let why = if changed {
                "its settings changed"
            } else {
                "it was removed"
            };
            info!(output = %running.entry.id, "stopping the output: {why}");
            stopping.push(running.handle);
        }
        self.running = kept;
        launcher.stop(stopping)
    }

    fn start_output(
        &self,
        launcher: &Launcher,
        output: Box<dyn crate::output::Output>,
    ) -> Result<OutputHandle, Fatal> {
        app::preflight_one(output.as_ref())?;
        launcher.launch(Role::Live, output)
    }

    /// Logs each run-wide setting that changed: it applies at the next start.
    fn log_restart_needed(&self, loaded: &Loaded) {
        let values = |layer: &Layer| -> BTreeMap<String, toml::Value> {
            layer
                .iter()
                .map(|(key, entry)| (key.clone(), entry.value.clone()))
                .collect()
        };
        let (old, new) = (values(&self.global), values(&loaded.global));
        let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
        for key in keys {
            if old.get(key) != new.get(key) {
                warn!(setting = %key, "changed in the config file; needs a restart to apply");
            }
        }
        if loaded.config.profile != self.profile {
            warn!("the H.264 profile the outputs call for changed; needs a restart to apply");
        }
    }
}
