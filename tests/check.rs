//! End-to-end tests of `faderbridge check` on the session fixtures in `tests/sessions/`:
//! every valid file is accepted (exit 0); every broken file is rejected with exit code 2 and
//! exactly one `FILE:LINE:COL: message` line matching the `# expect: LINE:COL: TEXT` comment
//! on its first line, and never with a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sessions")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn check(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faderbridge"))
        .arg("check")
        .arg(file)
        .output()
        .expect("run faderbridge check")
}

/// `# expect: 12:7: some text` → (12, 7, "some text").
fn expectation(file: &Path) -> (usize, usize, String) {
    let text = std::fs::read_to_string(file).expect("read fixture");
    let first = text.lines().next().unwrap_or_default();
    let rest = first.strip_prefix("# expect: ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: L:C: text`",
            file.display()
        )
    });
    let mut parts = rest.splitn(3, ':');
    let line = parts.next().and_then(|s| s.trim().parse().ok());
    let col = parts.next().and_then(|s| s.trim().parse().ok());
    let msg = parts.next().map(|s| s.trim().to_owned());
    match (line, col, msg) {
        (Some(l), Some(c), Some(m)) if !m.is_empty() => (l, c, m),
        _ => panic!("{}: malformed expect line {first:?}", file.display()),
    }
}

#[test]
fn valid_sessions_pass() {
    let files = fixtures("valid");
    assert!(files.len() >= 3, "valid fixtures missing: {files:?}");
    for f in files {
        let out = check(&f);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", f.display());
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(": ok ("), "{}: {stdout}", f.display());
    }
}

#[test]
fn broken_sessions_fail_with_location() {
    let files = fixtures("broken");
    assert!(files.len() >= 12, "only {} broken fixtures", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let (line, col, msg) = expectation(f);
        let out = check(f);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let prefix = format!("{}:{line}:{col}: ", f.display());
        let lines: Vec<&str> = stderr.lines().collect();
        let ok = out.status.code() == Some(2)
            && lines.len() == 1
            && lines[0].starts_with(&prefix)
            && lines[0].contains(&msg)
            && !stderr.contains("panicked");
        if !ok {
            failures.push(format!(
                "{}: want exit 2 and one line `{prefix}…{msg}…`, got exit {:?}:\n{stderr}",
                f.display(),
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unreadable_and_binary_files_exit_2_without_panic() {
    let dir = std::env::temp_dir().join(format!("faderbridge-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let missing = dir.join("no-such-session.yaml");
    let binary = dir.join("binary.yaml");
    // Invalid UTF-8 on line 2, after 3 good characters.
    std::fs::write(&binary, b"version: 1\nab\xff\xfe\x00garbage").expect("write");
    for (file, want) in [(&missing, ":1:1: "), (&binary, ":2:3: ")] {
        let out = check(file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!("{}{want}", file.display())),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
