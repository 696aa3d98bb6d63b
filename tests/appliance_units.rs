//! The service files. `systemd-analyze verify` checks the template unit
//! with the test build's binary in place of /usr/bin/bridge. The udev
//! rules get a syntax check and a small evaluation on the properties udev
//! gives capture nodes, metadata nodes and M2M codecs. A table checks the
//! mapping from a device node (or a symlink to it) to its unit name.
//!
//! systemd 252's `udevadm` has no `verify`, so the rules are checked here
//! key by key; where `udevadm verify` exists, it runs as well.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "systemd/bridge@.service";
const RULES: &str = "udev/70-bridge.rules";

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_file(path)).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Returns the unit's value for `key`, from its last assignment.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let unit = read(UNIT);
    let binary = env!("CARGO_BIN_EXE_bridge");
    // The one substitution: the binary the package installs as
    // /usr/bin/bridge (in ExecStart and in the reload's check) is this
    // test build here. Every other line is verified as shipped.
    assert_eq!(unit.matches("/usr/bin/bridge").count(), 2, "{unit}");
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("bridge@.service"),
        unit.replace("/usr/bin/bridge", binary),
    )
    .unwrap();

    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(directory.path().join("bridge@video0.service"))
        .output()
        .expect("cannot run systemd-analyze; run scripts/install-deps.sh");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "verify failed: {stderr}");
    // Unknown keys and invalid values are only warnings for verify.
    assert_eq!(stderr.trim(), "", "verify printed warnings");
}

#[test]
fn unit_reload_checks_then_signals() {
    let unit = read(UNIT);
    let reload: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(
        reload,
        [
            "/usr/bin/bridge check --config /etc/bridge/bridge.toml --device /dev/%I",
            "/bin/kill -HUP $MAINPID",
        ]
    );

    // The check passes on the example config and fails (exit 2) on an
    // invalid one, which is what makes `systemctl reload` report it.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bridge.toml");
    let directory = tempfile::tempdir().unwrap();
    let invalid = directory.path().join("bridge.toml");
    std::fs::write(&invalid, "bitrate = \"fast\"\n").unwrap();
    for (config, expected) in [(example.as_path(), 0), (invalid.as_path(), 2)] {
        let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
            .args(["check", "--config"])
            .arg(config)
            .args(["--device", "test"])
            .env("BRIDGE_EXAMPLE_KEY", "example-stream-key")
            .output()
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{}: {}{}",
            config.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn unit_runs_shared_command_line() {
    let unit = read(UNIT);
    assert_eq!(
        unit_value(&unit, "ExecStart").as_deref(),
        Some("/usr/bin/bridge --config /etc/bridge/bridge.toml --device /dev/%I")
    );
    assert_eq!(unit_value(&unit, "Type").as_deref(), Some("notify"));
    assert_eq!(
        unit_value(&unit, "BindsTo").as_deref(),
        Some("dev-%i.device")
    );
    assert!(unit_value(&unit, "After")
        .unwrap()
        .split(' ')
        .any(|unit| unit == "dev-%i.device"));
    assert_eq!(unit_value(&unit, "Restart").as_deref(), Some("on-failure"));
    let prevented = unit_value(&unit, "RestartPreventExitStatus").unwrap();
    for code in ["2", "3", "5"] {
        assert!(prevented.split(' ').any(|c| c == code), "{prevented}");
    }
    assert!(unit_value(&unit, "WatchdogSec").is_some());
    assert_eq!(unit_value(&unit, "User").as_deref(), Some("bridge"));
    assert_eq!(
        unit_value(&unit, "StateDirectory").as_deref(),
        Some("bridge")
    );
    let groups = unit_value(&unit, "SupplementaryGroups").unwrap();
    assert!(
        groups.contains("video") && groups.contains("audio"),
        "{groups}"
    );
}

#[test]
fn unit_loads_every_credential() {
    let unit = read(UNIT);
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("LoadCredential="))
        .collect();
    // The names the bridge reads from $CREDENTIALS_DIRECTORY when the
    // config file names no source for a secret.
    use bridge::config::build::{
        API_KEY, SESSION_TOKEN, SRT_PASSPHRASE, STREAM_KEY, TURN_PASSWORD,
    };
    for default in [
        SESSION_TOKEN,
        STREAM_KEY,
        SRT_PASSPHRASE,
        TURN_PASSWORD,
        API_KEY,
    ] {
        let name = default.credential;
        assert!(loaded.contains(&name), "{name} missing: {loaded:?}");
    }
}

#[test]
fn unit_sandbox_reaches_devices_and_network() {
    let unit = read(UNIT);
    assert_eq!(
        unit_value(&unit, "ProtectSystem").as_deref(),
        Some("strict")
    );
    assert_eq!(unit_value(&unit, "NoNewPrivileges").as_deref(), Some("yes"));
    assert_eq!(unit_value(&unit, "DevicePolicy").as_deref(), Some("closed"));
    assert_ne!(unit_value(&unit, "PrivateDevices").as_deref(), Some("yes"));
    assert_ne!(unit_value(&unit, "PrivateNetwork").as_deref(), Some("yes"));
    let allowed: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("DeviceAllow="))
        .collect();
    assert!(allowed.contains(&"char-video4linux rw"), "{allowed:?}");
    assert!(allowed.contains(&"char-alsa rw"), "{allowed:?}");
    let families = unit_value(&unit, "RestrictAddressFamilies").unwrap();
    for family in ["AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"] {
        assert!(families.split(' ').any(|f| f == family), "{families}");
    }
}

// ---- udev rules: syntax ----

/// One `KEY{attribute}OP"value"` of a rule line.
#[derive(Clone, Debug, PartialEq)]
struct Pair {
    key: String,
    attribute: Option<String>,
    operator: String,
    value: String,
}

const OPERATORS: [&str; 6] = ["==", "!=", "+=", "-=", ":=", "="];

/// Keys that only match, keys that only assign, and keys that do both,
/// with whether they take `{attribute}`, as udev(7) of systemd 252 lists
/// them.
fn key_kind(key: &str) -> Option<(bool, bool, bool)> {
    // (matches, assigns, takes an attribute)
    Some(match key {
        "ACTION" | "DEVPATH" | "KERNEL" | "KERNELS" | "SUBSYSTEM" | "SUBSYSTEMS" | "DRIVER"
        | "DRIVERS" | "TAGS" | "RESULT" | "PROGRAM" => (true, false, false),
        "ATTRS" | "TEST" | "CONST" => (true, false, true),
        "NAME" | "SYMLINK" | "TAG" => (true, true, false),
        "ATTR" | "SYSCTL" | "ENV" => (true, true, true),
        "OWNER" | "GROUP" | "MODE" | "OPTIONS" | "LABEL" | "GOTO" => (false, true, false),
        "RUN" | "IMPORT" | "SECLABEL" => (false, true, true),
        _ => return None,
    })
}

/// Parses one rule line into its pairs, or returns what is wrong.
fn parse_rule(line: &str) -> Result<Vec<Pair>, String> {
    let mut pairs = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(format!("expected a key at '{rest}'"));
        }
        rest = &rest[key_end..];
        let mut attribute = None;
        if let Some(after) = rest.strip_prefix('{') {
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' after {key}"))?;
            attribute = Some(after[..close].to_string());
            rest = &after[close + 1..];
        }
        let operator = OPERATORS
            .iter()
            .find(|op| rest.starts_with(**op))
            .ok_or_else(|| format!("expected an operator after {key} at '{rest}'"))?;
        rest = &rest[operator.len()..];
        let body = rest
            .strip_prefix('"')
            .ok_or_else(|| format!("the value of {key} must be quoted"))?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let (_, escaped) = chars.next().ok_or("a trailing backslash")?;
                    value.push('\\');
                    value.push(escaped);
                }
                Some((index, '"')) => break index,
                Some((_, c)) => value.push(c),
                None => return Err(format!("unclosed quote in the value of {key}")),
            }
        };
        rest = &body[end + 1..];

        let (matches, assigns, takes_attribute) =
            key_kind(key).ok_or_else(|| format!("unknown key {key}"))?;
        let is_match = matches!(*operator, "==" | "!=");
        if is_match && !matches {
            return Err(format!("{key} cannot be matched with {operator}"));
        }
        if !is_match && !assigns {
            return Err(format!("{key} cannot be assigned with {operator}"));
        }
        if matches!(key, "LABEL" | "GOTO") && *operator != "=" {
            return Err(format!("{key} takes '=', not {operator}"));
        }
        if takes_attribute != attribute.is_some() && key != "IMPORT" && key != "RUN" {
            return Err(format!("{key} has a wrong {{attribute}} use"));
        }
        pairs.push(Pair {
            key: key.to_string(),
            attribute,
            operator: operator.to_string(),
            value,
        });

        let after = rest.trim_start();
        if after.is_empty() {
            break;
        }
        rest = after
            .strip_prefix(',')
            .ok_or_else(|| format!("expected ',' between pairs at '{after}'"))?
            .trim_start();
    }
    if pairs.is_empty() {
        return Err("an empty rule".into());
    }
    Ok(pairs)
}

/// Returns every rule line of a rules file, parsed, with its line number.
fn parse_rules(text: &str) -> Result<Vec<(usize, Vec<Pair>)>, String> {
    let mut rules = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed.ends_with('\\') {
            return Err(format!(
                "line {}: continued lines are not checked",
                index + 1
            ));
        }
        let pairs = parse_rule(trimmed).map_err(|e| format!("line {}: {e}", index + 1))?;
        rules.push((index + 1, pairs));
    }
    let labels: Vec<&str> = rules
        .iter()
        .flat_map(|(_, pairs)| pairs)
        .filter(|pair| pair.key == "LABEL")
        .map(|pair| pair.value.as_str())
        .collect();
    for (line, pairs) in &rules {
        for pair in pairs.iter().filter(|pair| pair.key == "GOTO") {
            if !labels.contains(&pair.value.as_str()) {
                return Err(format!("line {line}: GOTO to missing LABEL {}", pair.value));
            }
        }
        let acts = pairs
            .iter()
            .any(|pair| !matches!(pair.operator.as_str(), "==" | "!="));
        if !acts {
            return Err(format!(
                "line {line}: a rule with matches only does nothing"
            ));
        }
    }
    Ok(rules)
}

#[test]
fn rules_checker_rejects_bad_lines() {
    let bad = [
        r#"SUBSYSTEM=="video4linux" GOTO="end""#,
        r#"SUBSYSTEM=="video4linux", GOTO="end"#,
        r#"SUBSYSTEMX=="video4linux", GOTO="end""#,
        r#"SUBSYSTEM="video4linux", GOTO="end""#,
        r#"LABEL=="end""#,
        r#"ENV="x""#,
        r#"KERNEL==video0, GOTO="end""#,
        r#"KERNEL=="video0""#,
        r#"GOTO="nowhere""#,
        r#"OWNER=="root", GOTO="end""#,
    ];
    for line in bad {
        let text = format!("{line}\nLABEL=\"end\"\n");
        assert!(parse_rules(&text).is_err(), "accepted: {line}");
    }
    let good = "ACTION==\"remove\", GOTO=\"end\"\nTAG+=\"systemd\"\nLABEL=\"end\"\n";
    assert_eq!(parse_rules(good).unwrap().len(), 3);
}

#[test]
fn rules_pass_syntax_check() {
    let text = read(RULES);
    let rules = parse_rules(&text).unwrap_or_else(|e| panic!("{RULES}: {e}"));
    assert!(rules.len() >= 5);

    let version = Command::new("udevadm")
        .arg("--version")
        .output()
        .expect("cannot run udevadm; run scripts/install-deps.sh");
    assert!(version.status.success());
    let verify = Command::new("udevadm")
        .arg("verify")
        .arg(repo_file(RULES))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    // systemd 252's udevadm has no verify verb; newer ones check the file.
    if !stderr.contains("Unknown command verb") {
        assert!(verify.status.success(), "udevadm verify: {stderr}");
    }
}

// ---- udev rules: what they do for each kind of node ----

/// Matches `text` against a udev glob: `*`, `?`, `[...]` with ranges, and
/// `|` between alternatives.
fn glob_matches(pattern: &str, text: &str) -> bool {
    pattern
        .split('|')
        .any(|alternative| glob_one(alternative.as_bytes(), text.as_bytes()))
}

fn glob_one(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some(b'*') => (0..=text.len()).any(|skip| glob_one(&pattern[1..], &text[skip..])),
        Some(b'?') => !text.is_empty() && glob_one(&pattern[1..], &text[1..]),
        Some(b'[') => {
            let Some(close) = pattern.iter().position(|&c| c == b']') else {
                return false;
            };
            let Some(&c) = text.first() else { return false };
            let class = &pattern[1..close];
            let mut index = 0;
            let mut found = false;
            while index < class.len() {
                if index + 2 < class.len() && class[index + 1] == b'-' {
                    found |= (class[index]..=class[index + 2]).contains(&c);
                    index += 3;
                } else {
                    found |= class[index] == c;
                    index += 1;
                }
            }
            found && glob_one(&pattern[close + 1..], &text[1..])
        }
        Some(&c) => text.first() == Some(&c) && glob_one(&pattern[1..], &text[1..]),
    }
}

/// A node's properties when the rules run.
struct Node {
    action: &'static str,
    subsystem: &'static str,
    kernel: &'static str,
    env: HashMap<&'static str, &'static str>,
    index: &'static str,
    /// The subsystems of the node's parent devices, nearest first.
    parents: Vec<&'static str>,
}

/// What the rules did to a node.
#[derive(Debug, Default, PartialEq)]
struct Effect {
    tags: Vec<String>,
    wants: Vec<String>,
    symlinks: Vec<String>,
}

/// Replaces the substitutions this file uses: `%k`, `$env{NAME}` and
/// `$attr{index}`.
fn substitute(value: &str, node: &Node) -> String {
    let mut text = value.replace("%k", node.kernel);
    text = text.replace("$attr{index}", node.index);
    while let Some(start) = text.find("$env{") {
        let end = start + text[start..].find('}').unwrap();
        let name = &text[start + 5..end];
        let replacement = node.env.get(name).copied().unwrap_or("");
        text.replace_range(start..=end, replacement);
    }
    text
}

/// Runs the rules on `node`, supporting the keys this file uses.
fn evaluate(rules: &[(usize, Vec<Pair>)], node: &Node) -> Effect {
    let mut effect = Effect::default();
    let mut index = 0;
    'rules: while index < rules.len() {
        let pairs = &rules[index].1;
        index += 1;
        for pair in pairs
            .iter()
            .filter(|p| p.operator == "==" || p.operator == "!=")
        {
            // SUBSYSTEMS== matches the node or any parent; this file uses
            // it only with ==.
            if pair.key == "SUBSYSTEMS" {
                assert_eq!(
                    pair.operator, "==",
                    "the evaluation supports SUBSYSTEMS== only"
                );
                let found = std::iter::once(node.subsystem)
                    .chain(node.parents.iter().copied())
                    .any(|subsystem| glob_matches(&pair.value, subsystem));
                if !found {
                    continue 'rules;
                }
                continue;
            }
            let actual = match (pair.key.as_str(), pair.attribute.as_deref()) {
                ("ACTION", None) => node.action,
                ("SUBSYSTEM", None) => node.subsystem,
                ("KERNEL", None) => node.kernel,
                ("ENV", Some(name)) => node.env.get(name).copied().unwrap_or(""),
                (key, _) => panic!("the evaluation does not support matching {key}"),
            };
            if glob_matches(&pair.value, actual) != (pair.operator == "==") {
                continue 'rules;
            }
        }
        for pair in pairs
            .iter()
            .filter(|p| p.operator != "==" && p.operator != "!=")
        {
            let value = substitute(&pair.value, node);
            match (pair.key.as_str(), pair.attribute.as_deref()) {
                ("GOTO", None) => {
                    index = rules
                        .iter()
                        .position(|(_, pairs)| {
                            pairs
                                .iter()
                                .any(|p| p.key == "LABEL" && p.value == pair.value)
                        })
                        .unwrap();
                    continue 'rules;
                }
                ("LABEL", None) => {}
                ("TAG", None) => effect.tags.push(value),
                ("SYMLINK", None) => effect.symlinks.push(value),
                ("ENV", Some("SYSTEMD_WANTS")) => effect.wants.push(value),
                (key, _) => panic!("the evaluation does not support assigning {key}"),
            }
        }
    }
    effect
}

fn v4l_node(action: &'static str, kernel: &'static str, capabilities: &'static str) -> Node {
    Node {
        action,
        subsystem: "video4linux",
        kernel,
        env: HashMap::from([
            ("ID_V4L_CAPABILITIES", capabilities),
            ("ID_SERIAL", "046d_HD_Pro_Webcam_C920_1234ABCD"),
            ("ID_PATH", "pci-0000:00:14.0-usb-0:2:1.0"),
        ]),
        index: "0",
        parents: vec!["usb", "usb", "pci"],
    }
}

#[test]
fn rules_start_unit_for_capture_nodes_only() {
    let rules = parse_rules(&read(RULES)).unwrap();

    let camera = evaluate(&rules, &v4l_node("add", "video0", ":capture:"));
    assert_eq!(camera.wants, ["bridge@video0.service"]);
    assert_eq!(camera.tags, ["systemd"]);
    assert_eq!(
        camera.symlinks,
        [
            "bridge/by-id/046d_HD_Pro_Webcam_C920_1234ABCD-index0",
            "bridge/by-path/pci-0000:00:14.0-usb-0:2:1.0-index0"
        ]
    );
    let change = evaluate(&rules, &v4l_node("change", "video2", ":capture:"));
    assert_eq!(
        change.wants,
        ["bridge@video2.service"],
        "tags stay on change"
    );

    let cases = [
        ("metadata node", v4l_node("add", "video1", ":")),
        (
            "M2M codec with capture and output",
            v4l_node("add", "video11", ":capture:video_output:"),
        ),
        ("M2M codec with neither", v4l_node("add", "video10", ":")),
        ("removal", v4l_node("remove", "video0", ":capture:")),
        ("radio node", v4l_node("add", "radio0", ":capture:")),
        ("no capabilities", {
            let mut node = v4l_node("add", "video3", "");
            node.env.remove("ID_V4L_CAPABILITIES");
            node
        }),
        ("sound card", {
            let mut node = v4l_node("add", "card1", ":capture:");
            node.subsystem = "sound";
            node
        }),
    ];
    for (name, node) in cases {
        assert_eq!(evaluate(&rules, &node), Effect::default(), "{name}");
    }

    // Capture nodes that are not on USB get their stable name and the
    // systemd tag (for a local rule's unit to bind to), but start nothing.
    let card = {
        let mut node = v4l_node("add", "video4", ":capture:");
        node.parents = vec!["pci"];
        node.env.insert("ID_PATH", "pci-0000:03:00.0");
        node
    };
    let soc_block = {
        let mut node = v4l_node("add", "video20", ":capture:");
        node.parents = vec!["platform"];
        node.env.remove("ID_SERIAL");
        node.env.insert("ID_PATH", "platform-1f00128000.csi");
        node
    };
    for (name, node, link) in [
        (
            "PCIe capture card",
            card,
            "bridge/by-path/pci-0000:03:00.0-index0",
        ),
        (
            "system-on-chip block",
            soc_block,
            "bridge/by-path/platform-1f00128000.csi-index0",
        ),
    ] {
        let effect = evaluate(&rules, &node);
        assert!(effect.wants.is_empty(), "{name}: {effect:?}");
        assert_eq!(effect.tags, ["systemd"], "{name}");
        assert!(
            effect.symlinks.iter().any(|l| l == link),
            "{name}: {effect:?}"
        );
    }
}

// ---- device node to unit name ----

/// Escapes `name` as `systemd-escape` does for a unit instance: ASCII
/// letters, digits, ':', '_' and '.' (not first) stay, '/' becomes '-',
/// every other byte becomes `\xNN`.
fn systemd_escape(name: &str) -> String {
    let mut escaped = String::new();
    for (index, byte) in name.bytes().enumerate() {
        match byte {
            b'/' => escaped.push('-'),
            b'.' if index > 0 => escaped.push('.'),
            b if b.is_ascii_alphanumeric() || b == b':' || b == b'_' => escaped.push(b as char),
            b => escaped.push_str(&format!("\\x{b:02x}")),
        }
    }
    escaped
}

/// Returns the unit udev starts for the node `device` names: the kernel
/// name (`%k`) is the real node's file name after every symlink.
fn unit_for_device(device: &Path) -> String {
    let node = std::fs::canonicalize(device).unwrap();
    let kernel = node.file_name().unwrap().to_str().unwrap();
    format!("bridge@{}.service", systemd_escape(kernel))
}

#[test]
fn device_maps_to_unit_name() {
    let dev = tempfile::tempdir().unwrap();
    let by_id = dev.path().join("v4l/by-id");
    std::fs::create_dir_all(&by_id).unwrap();
    for node in ["video0", "video12"] {
        std::fs::write(dev.path().join(node), b"").unwrap();
    }
    let link = by_id.join("usb-046d_HD_Pro_Webcam_C920_1234ABCD-video-index0");
    std::os::unix::fs::symlink("../../video12", &link).unwrap();

    let cases = [
        (dev.path().join("video0"), "bridge@video0.service"),
        (dev.path().join("video12"), "bridge@video12.service"),
        (link, "bridge@video12.service"),
    ];
    for (device, expected) in cases {
        assert_eq!(unit_for_device(&device), expected, "{}", device.display());
    }
}

#[test]
fn escape_matches_systemd_escape() {
    for name in [
        "video0", "video12", "cam-1", "a b", ".hidden", "a.b", "x:y_z",
    ] {
        let output = Command::new("systemd-escape")
            .args(["--template=bridge@.service", name])
            .output()
            .expect("cannot run systemd-escape; run scripts/install-deps.sh");
        assert!(output.status.success(), "{name}");
        let expected = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            format!("bridge@{}.service", systemd_escape(name)),
            expected.trim(),
            "{name}"
        );
    }
}
