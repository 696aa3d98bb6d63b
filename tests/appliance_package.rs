//! The Debian package. `cargo deb` packs the binary this test run built:
//! the dev profile with fast compression, since a release build takes far
//! longer on two cores. `dpkg-deb` shows what the package installs, its
//! dependencies and its maintainer scripts. Releases use `make deb`, which
//! builds with the release profile.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}; run make setup"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Serializes `cargo deb` runs: two at once in one target directory strip
/// the binary into the same file (`<target>/bridge/bridge.stripped-0.tmp`
/// with cargo-deb 3.8.0), and one of them can pack a binary that the other
/// is still writing ("Exec format error" when it runs).
static CARGO_DEB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds the package from the binary Cargo built for this test run and
/// returns its path.
fn build_package(directory: &Path) -> PathBuf {
    let _one_at_a_time = CARGO_DEB.lock().unwrap_or_else(|p| p.into_inner());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    // CARGO_BIN_EXE_bridge is <target dir>/debug/bridge.
    let binary = Path::new(env!("CARGO_BIN_EXE_bridge"));
    let target_dir = binary.parent().unwrap().parent().unwrap();
    // --no-build packs that binary: a nested cargo build would wait for
    // the build directory lock that this test run may hold.
    // NOTE: cargo-deb 3.8.0 warns that the dev profile will be rejected
    // in a later version; scripts/install-deb-tools.sh pins 3.8.0.
    run(Command::new("cargo")
        .args([
            "deb",
            "--no-build",
            "--profile",
            "dev",
            "--fast",
            "--locked",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--output")
        .arg(directory)
        .env("CARGO_TARGET_DIR", target_dir));
    let package = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "deb"))
        .expect("cargo deb wrote a .deb");
    package
}

#[test]
fn package_installs_service_files() {
    let directory = tempfile::tempdir().unwrap();
    let package = build_package(directory.path());

    let listing = text(&run(Command::new("dpkg-deb").arg("-c").arg(&package)));
    let installed: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .collect();
    for path in [
        "./usr/bin/bridge",
        "./lib/systemd/system/bridge@.service",
        "./lib/udev/rules.d/70-bridge.rules",
        "./etc/bridge/bridge.toml",
        "./usr/share/doc/bridge/examples/bridge.toml",
        // The unit's Documentation= names this file.
        "./usr/share/doc/bridge/README.md",
    ] {
        assert!(installed.contains(&path), "{path} missing: {listing}");
    }
    let binary_line = listing
        .lines()
        .find(|line| line.ends_with("./usr/bin/bridge"))
        .unwrap();
    assert!(binary_line.starts_with("-rwxr-xr-x"), "{binary_line}");

    // The packed files are the repository's, and the binary runs.
    let root = directory.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&package).arg(&root));
    for (packed, source) in [
        (
            "lib/systemd/system/bridge@.service",
            "systemd/bridge@.service",
        ),
        ("lib/udev/rules.d/70-bridge.rules", "udev/70-bridge.rules"),
        ("etc/bridge/bridge.toml", "examples/bridge.toml"),
    ] {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        assert_eq!(
            std::fs::read(root.join(packed)).unwrap(),
            std::fs::read(&source).unwrap(),
            "{packed}"
        );
    }
    let help = run(Command::new(root.join("usr/bin/bridge")).arg("--help"));
    assert!(text(&help).contains("--device"));
}

#[test]
fn package_control_and_maintainer_scripts() {
    let directory = tempfile::tempdir().unwrap();
    let package = build_package(directory.path());

    let info = text(&run(Command::new("dpkg-deb").arg("-I").arg(&package)));
    let depends = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends: {info}"));
    for dependency in [
        "adduser",
        "libgstreamer1.0-0",
        "gstreamer1.0-plugins-base",
        "gstreamer1.0-plugins-good",
        "gstreamer1.0-plugins-bad",
        "gstreamer1.0-plugins-ugly",
        "gstreamer1.0-libav",
        "libsrt1.5-gnutls",
    ] {
        assert!(
            depends.split(", ").any(|d| d.starts_with(dependency)),
            "{dependency} missing: {depends}"
        );
    }

    let control = directory.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&package)
        .arg(&control));
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles.lines().any(|l| l == "/etc/bridge/bridge.toml"),
        "{conffiles}"
    );

    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    for expected in [
        "adduser --system --group",
        "for group in video audio render",
        "adduser --quiet bridge \"$group\"",
        "udevadm control --reload-rules",
        "systemctl daemon-reload",
    ] {
        assert!(
            postinst.contains(expected),
            "postinst lacks {expected}: {postinst}"
        );
    }
    let postrm = std::fs::read_to_string(control.join("postrm")).unwrap();
    for expected in ["\"$1\" = purge", "deluser --system", "delgroup --system"] {
        assert!(
            postrm.contains(expected),
            "postrm lacks {expected}: {postrm}"
        );
    }
    for script in ["postinst", "postrm", "prerm"] {
        let path = control.join(script);
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        // The scripts run under /bin/sh: check their syntax there.
        run(Command::new("sh").arg("-n").arg(&path));
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(
            !body.contains("#DEBHELPER#"),
            "{script} kept the placeholder"
        );
    }
}

/// Runs `debian/postinst configure` under /bin/sh with every command it
/// calls replaced by a script that logs its arguments, on a machine
/// without the bridge user, and returns the log, one call a line.
fn run_postinst_with_stubs(directory: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;

    let stubs = directory.join("stubs");
    std::fs::create_dir(&stubs).unwrap();
    let log = directory.join("calls.log");
    for command in ["adduser", "install", "chown", "udevadm", "systemctl"] {
        let stub = stubs.join(command);
        std::fs::write(
            &stub,
            format!("#!/bin/sh\necho \"{command} $*\" >> '{}'\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // getent finds the groups but not the bridge user.
    let getent = stubs.join("getent");
    std::fs::write(
        &getent,
        format!(
            "#!/bin/sh\necho \"getent $*\" >> '{}'\n[ \"$1\" = group ]\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&getent, std::fs::Permissions::from_mode(0o755)).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/postinst");
    // PATH contains only the stubs, so a command without a stub fails the run.
    run(Command::new("/bin/sh")
        .arg(&script)
        .arg("configure")
        .env_clear()
        .env("PATH", &stubs));
    std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn postinst_creates_state_directory() {
    let directory = tempfile::tempdir().unwrap();
    let calls = run_postinst_with_stubs(directory.path());
    let position = |prefix: &str| {
        calls
            .iter()
            .position(|call| call.starts_with(prefix))
            .unwrap_or_else(|| panic!("postinst never ran '{prefix}': {calls:#?}"))
    };

    let create = position("install -d -m 0750 /var/lib/bridge");
    let add_user = position("adduser --system --group --home /var/lib/bridge");
    let chown = position("chown bridge:bridge /var/lib/bridge");
    // adduser warns about a home that does not exist yet.
    assert!(create < add_user, "{calls:#?}");
    // The owner exists only once adduser has run.
    assert!(add_user < chown, "{calls:#?}");
    for group in ["video", "audio", "render"] {
        position(&format!("adduser --quiet bridge {group}"));
    }
}
