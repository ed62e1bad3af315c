//! Checks of the shipped system integration files: `systemd/faderbridge.service` and
//! `systemd/faderbridge-user.service` pass `systemd-analyze verify` with no warning about
//! them and carry the settings the daemon relies on; `udev/60-faderbridge.rules` is
//! well-formed (by `udevadm verify` where this systemd has it, and always by the parser
//! here) and, run through a small model of udev's rule evaluation, gives the devices it
//! names group `audio`, mode 0660 and the documented `/dev/faderbridge/` names.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

const SYSTEM_UNIT: &str = "systemd/faderbridge.service";
const USER_UNIT: &str = "systemd/faderbridge-user.service";
const RULES: &str = "udev/60-faderbridge.rules";

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    let p = repo_file(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// A fresh directory under the system temp dir, unique to this process and `tag`.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fb-units-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The first executable called `name` in `$PATH` or the usual system directories.
fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for d in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

// ---------------------------------------------------------------------------------------------
// systemd

/// `key=value` pairs of one section of a unit file, in order (comments and blanks skipped).
fn unit_section(text: &str, section: &str) -> Vec<(String, String)> {
    let mut cur = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            cur = line[1..line.len() - 1].to_string();
            continue;
        }
        if cur == section {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not key=value in [{section}]: {line}"));
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn values<'a>(kv: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    kv.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn one<'a>(kv: &'a [(String, String)], key: &str) -> &'a str {
    let v = values(kv, key);
    assert_eq!(v.len(), 1, "{key}= should be set exactly once, found {v:?}");
    v[0]
}

/// Writes `unit` (text) as `name` into `dir` with the installed binary path replaced by the
/// test's own build of the daemon, so `verify` finds an executable.
fn write_for_verify(dir: &Path, name: &str, text: &str, installed: &str) -> PathBuf {
    let bin = env!("CARGO_BIN_EXE_faderbridge");
    assert!(
        text.contains(&format!("ExecStart={installed} run ")),
        "{name}: ExecStart should run {installed}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text.replace(installed, bin)).expect("write unit copy");
    p
}

/// What `systemd-analyze verify` said: exit success and the lines that mention `name`.
struct Verdict {
    ok: bool,
    about_unit: Vec<String>,
    all: String,
}

/// Tool output for the log, with a mark when there was none.
fn shown(s: &str) -> &str {
    if s.trim().is_empty() {
        "(no output)"
    } else {
        s
    }
}

fn verify(tool: &Path, unit: &Path, user: bool) -> Verdict {
    let name = unit
        .file_name()
        .and_then(|n| n.to_str())
        .expect("unit name");
    let mut cmd = Command::new(tool);
    if user {
        cmd.arg("--user");
        // The user manager needs a runtime directory; test machines often have none.
        if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
            let rt = scratch("xdg-runtime");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            cmd.env("XDG_RUNTIME_DIR", rt);
        }
    }
    let out = cmd
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("run systemd-analyze");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let about_unit = all
        .lines()
        .filter(|l| l.contains(name))
        .map(str::to_string)
        .collect();
    Verdict {
        ok: out.status.success(),
        about_unit,
        all,
    }
}

#[test]
fn unit_files_pass_systemd_analyze_verify() {
    let Some(tool) = find_tool("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze is not installed, the unit files were not verified");
        return;
    };
    let dir = scratch("verify");
    let system = write_for_verify(
        &dir,
        "faderbridge.service",
        &read(SYSTEM_UNIT),
        "/usr/local/bin/faderbridge",
    );
    let user = write_for_verify(
        &dir,
        "faderbridge-user.service",
        &read(USER_UNIT),
        "%h/.local/bin/faderbridge",
    );

    // Negative control: on this systemd, a unit with an unknown key and an unparsable value
    // produces lines that name the file (the check below can see a warning).
    let broken = dir.join("faderbridge-broken.service");
    std::fs::write(
        &broken,
        read(SYSTEM_UNIT)
            .replace(
                "/usr/local/bin/faderbridge",
                env!("CARGO_BIN_EXE_faderbridge"),
            )
            .replace("WatchdogSec=10", "WatchdogSec=ten\nNotARealKey=1"),
    )
    .expect("write broken copy");
    let b = verify(&tool, &broken, false);
    assert!(
        b.about_unit.len() >= 2,
        "verify should flag the broken copy twice, said:\n{}",
        b.all
    );

    let s = verify(&tool, &system, false);
    println!(
        "systemd-analyze verify faderbridge.service:\n{}",
        shown(&s.all)
    );
    assert!(s.ok, "verify failed on the system unit:\n{}", s.all);
    assert!(
        s.about_unit.is_empty(),
        "verify warned about the system unit:\n{}",
        s.about_unit.join("\n")
    );

    let mut u = verify(&tool, &user, true);
    if !u.ok && u.all.contains("Failed to initialize manager") {
        // No user manager can be set up here: the system manager still parses every key.
        eprintln!(
            "no user manager for `--user verify` here; verifying the user unit in system mode"
        );
        u = verify(&tool, &user, false);
    }
    println!(
        "systemd-analyze verify faderbridge-user.service:\n{}",
        shown(&u.all)
    );
    assert!(u.ok, "verify failed on the user unit:\n{}", u.all);
    assert!(
        u.about_unit.is_empty(),
        "verify warned about the user unit:\n{}",
        u.about_unit.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `systemd-analyze security --offline` rates the system unit's sandbox from 0 (best) to 10:
/// 2.2 ("OK") with systemd 252, where a unit with no sandboxing at all scores 9.6 ("UNSAFE").
/// The bound leaves room for other versions weighing settings differently.
#[test]
fn system_unit_sandbox_scores_ok() {
    let Some(tool) = find_tool("systemd-analyze") else {
        eprintln!("SKIPPED: systemd-analyze is not installed, the sandbox was not rated");
        return;
    };
    let help = Command::new(&tool)
        .args(["security", "--help"])
        .output()
        .expect("systemd-analyze security --help");
    if !String::from_utf8_lossy(&help.stdout).contains("--offline") {
        eprintln!("SKIPPED: this systemd-analyze has no `security --offline` (systemd < 250)");
        return;
    }
    let dir = scratch("security");
    let unit = write_for_verify(
        &dir,
        "faderbridge.service",
        &read(SYSTEM_UNIT),
        "/usr/local/bin/faderbridge",
    );
    let out = Command::new(&tool)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("run systemd-analyze security");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no exposure line (systemd too old for --offline?):\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in: {line}"));
    println!("{}", line.trim());
    assert!(score < 4.0, "exposure {score} is not OK: {line}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn system_unit_has_the_settings_the_daemon_relies_on() {
    let text = read(SYSTEM_UNIT);
    let s = unit_section(&text, "Service");
    assert_eq!(one(&s, "Type"), "notify");
    assert_eq!(one(&s, "NotifyAccess"), "main");
    assert_eq!(one(&s, "WatchdogSec"), "10");
    assert_eq!(
        one(&s, "ExecStart"),
        "/usr/local/bin/faderbridge run /etc/faderbridge/session.yaml \
         --state-dir /var/lib/faderbridge"
    );
    assert_eq!(one(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&s, "Restart"), "on-failure");
    assert_eq!(one(&s, "User"), "faderbridge");
    assert_eq!(one(&s, "StateDirectory"), "faderbridge");
    assert_eq!(one(&s, "ConfigurationDirectory"), "faderbridge");
    // SCHED_FIFO 70 for the audio thread must fit under the limit.
    let rtprio: i32 = one(&s, "LimitRTPRIO").parse().expect("LimitRTPRIO number");
    assert!(
        rtprio >= 70,
        "LimitRTPRIO={rtprio} is below the audio thread's 70"
    );
    assert_eq!(one(&s, "LimitMEMLOCK"), "infinity");
    assert_eq!(one(&s, "RestrictRealtime"), "no");
    for (k, v) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("DevicePolicy", "closed"),
    ] {
        assert_eq!(one(&s, k), v, "{k}=");
    }
    let groups: BTreeSet<&str> = one(&s, "SupplementaryGroups").split_whitespace().collect();
    assert!(
        groups.contains("audio") && groups.contains("dialout"),
        "{groups:?}"
    );
    let families: BTreeSet<&str> = one(&s, "RestrictAddressFamilies")
        .split_whitespace()
        .collect();
    for f in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(families.contains(f), "{f} missing from {families:?}");
    }
    // JACK shares memory with its clients in /dev/shm: a private /dev would cut it off.
    assert!(values(&s, "PrivateDevices").is_empty());
    let allowed: BTreeSet<&str> = values(&s, "DeviceAllow").into_iter().collect();
    for d in ["char-alsa rw", "char-ttyUSB rw", "char-ttyACM rw"] {
        assert!(allowed.contains(d), "DeviceAllow={d} missing: {allowed:?}");
    }
}

#[test]
fn user_unit_has_the_settings_the_daemon_relies_on() {
    let text = read(USER_UNIT);
    let unit = unit_section(&text, "Unit");
    assert!(
        one(&unit, "After")
            .split_whitespace()
            .any(|u| u == "pipewire.service")
    );
    assert_eq!(one(&unit, "Wants"), "pipewire.service");
    let s = unit_section(&text, "Service");
    assert_eq!(one(&s, "Type"), "notify");
    assert_eq!(one(&s, "NotifyAccess"), "main");
    assert_eq!(one(&s, "WatchdogSec"), "10");
    assert_eq!(one(&s, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(
        one(&s, "ExecStart"),
        "%h/.local/bin/faderbridge run %h/.config/faderbridge/session.yaml --backend jack \
         --state-dir %h/.local/state/faderbridge"
    );
    // Settings a user manager cannot apply without user namespaces would fail the unit.
    for k in [
        "User",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "DeviceAllow",
    ] {
        assert!(
            values(&s, k).is_empty(),
            "{k}= does not belong in a user unit"
        );
    }
    let install = unit_section(&text, "Install");
    assert_eq!(one(&install, "WantedBy"), "default.target");
}

// ---------------------------------------------------------------------------------------------
// udev

/// Comparison or assignment in one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Set,
    Add,
}

#[derive(Clone, Debug)]
struct Term {
    key: String,
    attr: Option<String>,
    op: Op,
    value: String,
}

#[derive(Clone, Debug)]
struct Rule {
    line: usize,
    terms: Vec<Term>,
}

/// Keys this file may use, with the operators udev accepts for each.
fn allowed_ops(key: &str) -> Option<&'static [Op]> {
    const MATCH: &[Op] = &[Op::Eq, Op::Ne];
    const ASSIGN: &[Op] = &[Op::Set];
    const LIST: &[Op] = &[Op::Add];
    Some(match key {
        "ACTION" | "SUBSYSTEM" | "SUBSYSTEMS" | "KERNEL" | "ATTRS" => MATCH,
        "ENV" => &[Op::Eq, Op::Ne, Op::Set],
        "GROUP" | "MODE" | "GOTO" | "LABEL" | "IMPORT" => ASSIGN,
        "SYMLINK" | "TAG" => LIST,
        _ => return None,
    })
}

fn needs_attr(key: &str) -> bool {
    matches!(key, "ATTRS" | "ENV" | "IMPORT")
}

/// Parses a rules file strictly: every term is `KEY[{attr}]OP"value"`, keys and operators
/// are known, vendor/product ids are 4 lowercase hex digits, modes are 4 octal digits,
/// every GOTO has a later LABEL and every rule matches something. Returns the rules or every
/// problem found.
fn parse_rules(text: &str) -> Result<Vec<Rule>, Vec<String>> {
    let mut errs = Vec::new();
    let mut rules = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.ends_with('\\') {
            errs.push(format!("{n}: line continuations are not used in this file"));
            continue;
        }
        match parse_rule(line) {
            Ok(terms) => {
                let label_only = terms.len() == 1 && terms[0].key == "LABEL";
                if !label_only && !terms.iter().any(|t| matches!(t.op, Op::Eq | Op::Ne)) {
                    errs.push(format!("{n}: rule without a match applies to every event"));
                }
                rules.push(Rule { line: n, terms });
            }
            Err(e) => errs.push(format!("{n}: {e}")),
        }
    }
    let labels: Vec<(usize, &str)> = rules
        .iter()
        .flat_map(|r| r.terms.iter().map(move |t| (r.line, t)))
        .filter(|(_, t)| t.key == "LABEL")
        .map(|(l, t)| (l, t.value.as_str()))
        .collect();
    let uniq: BTreeSet<&str> = labels.iter().map(|(_, v)| *v).collect();
    if uniq.len() != labels.len() {
        errs.push("duplicate LABEL".to_string());
    }
    for r in &rules {
        for t in r.terms.iter().filter(|t| t.key == "GOTO") {
            if !labels.iter().any(|(l, v)| *v == t.value && *l > r.line) {
                errs.push(format!(
                    "{}: GOTO=\"{}\" has no LABEL after it",
                    r.line, t.value
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(rules)
    } else {
        Err(errs)
    }
}

fn parse_rule(line: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let key_end = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .ok_or("term without an operator")?;
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let ops = allowed_ops(key).ok_or_else(|| format!("unknown key {key:?}"))?;
        let mut attr = None;
        if let Some(r) = rest.strip_prefix('{') {
            let close = r.find('}').ok_or("unclosed {")?;
            let a = &r[..close];
            if a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("bad attribute name {a:?}"));
            }
            attr = Some(a.to_string());
            rest = &r[close + 1..];
        }
        if needs_attr(key) != attr.is_some() {
            return Err(format!(
                "{key} {} an {{attribute}}",
                if attr.is_some() { "takes no" } else { "needs" }
            ));
        }
        let (op, after) = if let Some(r) = rest.strip_prefix("==") {
            (Op::Eq, r)
        } else if let Some(r) = rest.strip_prefix("!=") {
            (Op::Ne, r)
        } else if let Some(r) = rest.strip_prefix("+=") {
            (Op::Add, r)
        } else if let Some(r) = rest.strip_prefix('=') {
            (Op::Set, r)
        } else {
            return Err(format!("{key}: no operator"));
        };
        if !ops.contains(&op) {
            return Err(format!("{key} does not take {op:?}"));
        }
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| format!("{key}: value not quoted"))?;
        let close = after
            .find('"')
            .ok_or_else(|| format!("{key}: unclosed quote"))?;
        let value = after[..close].to_string();
        rest = &after[close + 1..];
        check_value(key, attr.as_deref(), &value)?;
        terms.push(Term {
            key: key.to_string(),
            attr,
            op,
            value,
        });
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        rest = rest
            .strip_prefix(',')
            .ok_or("terms must be separated by commas")?;
    }
    Ok(terms)
}

fn check_value(key: &str, attr: Option<&str>, v: &str) -> Result<(), String> {
    let hex4 = |v: &str| {
        v.len() == 4
            && v.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    match (key, attr) {
        ("ATTRS", Some("idVendor" | "idProduct")) if !hex4(v) => Err(format!(
            "{} {v:?} is not 4 lowercase hex digits",
            attr.unwrap_or_default()
        )),
        ("MODE", _) if !(v.len() == 4 && v.chars().all(|c| ('0'..='7').contains(&c))) => {
            Err(format!("MODE {v:?} is not 4 octal digits"))
        }
        ("GROUP", _) if v != "audio" => Err(format!("GROUP {v:?}: this file grants `audio` only")),
        ("SYMLINK", _) if !v.starts_with("faderbridge/") => {
            Err(format!("SYMLINK {v:?} outside /dev/faderbridge/"))
        }
        ("IMPORT", Some(a)) if a != "builtin" || !matches!(v, "usb_id" | "path_id") => Err(
            format!("IMPORT{{{a}}}={v:?} is not a builtin this file expects"),
        ),
        _ => Ok(()),
    }
}

/// udev's pattern match: `*`, `?`, and `|` between alternatives.
fn glob(pat: &str, s: &str) -> bool {
    fn one(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => one(&p[1..], s) || (!s.is_empty() && one(p, &s[1..])),
            (Some(b'?'), Some(_)) => one(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => one(&p[1..], &s[1..]),
            _ => false,
        }
    }
    pat.split('|').any(|p| one(p.as_bytes(), s.as_bytes()))
}

/// A device event as the model sees it: the node, its USB parent's attributes and what the
/// `usb_id`/`path_id` builtins would import.
struct Device {
    subsystem: &'static str,
    kernel: &'static str,
    usb: Option<HashMap<&'static str, &'static str>>,
    imports: HashMap<&'static str, &'static str>,
}

#[derive(Debug, Default, PartialEq)]
struct Outcome {
    group: Option<String>,
    mode: Option<String>,
    symlinks: BTreeSet<String>,
    tags: BTreeSet<String>,
}

/// Kernel number of a device name (`midiC1D0` → `0`), udev's `%n`.
fn kernel_number(k: &str) -> &str {
    let digits = k.len() - k.chars().rev().take_while(|c| c.is_ascii_digit()).count();
    &k[digits..]
}

fn substitute(v: &str, dev: &Device, env: &HashMap<String, String>) -> String {
    let mut out = v.replace("%n", kernel_number(dev.kernel));
    while let Some(start) = out.find("$env{") {
        let end = start + out[start..].find('}').expect("closed $env{");
        let name = &out[start + 5..end];
        let val = env.get(name).cloned().unwrap_or_default();
        out.replace_range(start..=end, &val);
    }
    out
}

/// Runs the rules over one "add" event the way udev does: terms left to right, a rule's
/// assignments only when all its matches hold, GOTO jumping to its LABEL.
fn evaluate(rules: &[Rule], dev: &Device) -> Outcome {
    let mut env: HashMap<String, String> = HashMap::new();
    let mut out = Outcome::default();
    let mut i = 0;
    'rules: while i < rules.len() {
        let r = &rules[i];
        i += 1;
        for t in &r.terms {
            let cmp = |actual: Option<&str>| {
                let hit = actual.is_some_and(|a| glob(&t.value, a));
                if t.op == Op::Eq { hit } else { !hit }
            };
            let ok = match (t.key.as_str(), t.op) {
                ("ACTION", _) => cmp(Some("add")),
                ("SUBSYSTEM", _) => cmp(Some(dev.subsystem)),
                ("KERNEL", _) => cmp(Some(dev.kernel)),
                ("SUBSYSTEMS", _) => cmp(dev.usb.as_ref().map(|_| "usb")),
                ("ATTRS", _) => {
                    let a = t.attr.as_deref().unwrap_or_default();
                    cmp(dev.usb.as_ref().and_then(|u| u.get(a).copied()))
                }
                ("ENV", Op::Eq | Op::Ne) => cmp(env
                    .get(t.attr.as_deref().unwrap_or_default())
                    .map(String::as_str)),
                _ => true,
            };
            if !ok {
                continue 'rules;
            }
        }
        for t in &r.terms {
            let v = substitute(&t.value, dev, &env);
            match (t.key.as_str(), t.op) {
                ("GROUP", _) => out.group = Some(v),
                ("MODE", _) => out.mode = Some(v),
                ("SYMLINK", _) => {
                    out.symlinks.insert(v);
                }
                ("TAG", _) => {
                    out.tags.insert(v);
                }
                ("ENV", Op::Set) => {
                    env.insert(t.attr.clone().unwrap_or_default(), v);
                }
                // The builtins need a USB parent; they import nothing otherwise.
                ("IMPORT", _) if dev.usb.is_some() => {
                    let keys: &[&str] = if v == "usb_id" {
                        &["ID_MODEL", "ID_SERIAL_SHORT"]
                    } else {
                        &["ID_PATH_TAG"]
                    };
                    for k in keys {
                        if let Some(x) = dev.imports.get(k) {
                            env.insert((*k).to_string(), (*x).to_string());
                        }
                    }
                }
                ("GOTO", _) => {
                    let target = rules.iter().position(|l| {
                        l.terms
                            .iter()
                            .any(|x| x.key == "LABEL" && x.value == t.value)
                    });
                    i = target.expect("GOTO target (checked by the parser)") + 1;
                    continue 'rules;
                }
                _ => {}
            }
        }
    }
    out
}

fn usb(pairs: &[(&'static str, &'static str)]) -> Option<HashMap<&'static str, &'static str>> {
    Some(pairs.iter().copied().collect())
}

fn links(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn udev_rules_parse_and_name_the_listed_devices() {
    let text = read(RULES);
    if let Some(udevadm) = find_tool("udevadm") {
        let help = Command::new(&udevadm)
            .arg("--help")
            .output()
            .expect("udevadm --help");
        if String::from_utf8_lossy(&help.stdout).contains("verify") {
            let out = Command::new(&udevadm)
                .args(["verify", "--resolve-names=never"])
                .arg(repo_file(RULES))
                .output()
                .expect("udevadm verify");
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            println!("udevadm verify:\n{said}");
            assert!(out.status.success(), "udevadm verify failed:\n{said}");
        } else {
            println!(
                "udevadm has no `verify` (systemd < 254): the rules are checked by this parser"
            );
        }
    } else {
        println!("no udevadm here: the rules are checked by this parser");
    }

    let rules = parse_rules(&text).unwrap_or_else(|e| panic!("{RULES}:\n{}", e.join("\n")));

    // Every id the README promises is matched by some rule.
    let mut pairs = BTreeSet::new();
    for r in &rules {
        let get = |a: &str| {
            r.terms
                .iter()
                .find(|t| t.attr.as_deref() == Some(a) && t.op == Op::Eq)
                .map(|t| t.value.clone())
        };
        if let (Some(v), Some(p)) = (get("idVendor"), get("idProduct")) {
            pairs.insert(format!("{v}:{p}"));
        }
    }
    for id in [
        "1397:00b3",
        "0944:0117",
        "194f:0201",
        "0403:6001",
        "1a86:7523",
        "10c4:ea60",
    ] {
        assert!(
            pairs.contains(id),
            "no rule for {id}; rules match {pairs:?}"
        );
    }

    // An X-Touch Mini's rawmidi node.
    let mini = Device {
        subsystem: "sound",
        kernel: "midiC1D0",
        usb: usb(&[
            ("idVendor", "1397"),
            ("idProduct", "00b3"),
            ("product", "X-TOUCH MINI"),
        ]),
        imports: [
            ("ID_MODEL", "X-TOUCH_MINI"),
            ("ID_PATH_TAG", "pci-0000_00_14_0-usb-0_2_1_0"),
        ]
        .into_iter()
        .collect(),
    };
    let o = evaluate(&rules, &mini);
    assert_eq!(o.group.as_deref(), Some("audio"));
    assert_eq!(o.mode.as_deref(), Some("0660"));
    assert_eq!(
        o.symlinks,
        links(&[
            "faderbridge/x-touch-mini",
            "faderbridge/by-path/pci-0000_00_14_0-usb-0_2_1_0-midi0"
        ])
    );

    // Two X-Touch Extenders: same name link, told apart by their by-path links.
    let ext = |port: &'static str| Device {
        subsystem: "sound",
        kernel: "midiC2D0",
        usb: usb(&[
            ("idVendor", "1397"),
            ("idProduct", "00ff"),
            ("product", "X-Touch-Ext"),
        ]),
        imports: [("ID_MODEL", "X-Touch-Ext"), ("ID_PATH_TAG", port)]
            .into_iter()
            .collect(),
    };
    let a = evaluate(&rules, &ext("usb-0_3"));
    let b = evaluate(&rules, &ext("usb-0_4"));
    assert!(
        a.symlinks.contains("faderbridge/x-touch-ext")
            && b.symlinks.contains("faderbridge/x-touch-ext")
    );
    assert!(
        !a.symlinks.contains("faderbridge/x-touch"),
        "{:?}",
        a.symlinks
    );
    assert_ne!(a.symlinks, b.symlinks);

    // Any other USB MIDI device: access, a by-path link, no product name.
    let other = Device {
        subsystem: "sound",
        kernel: "midiC3D1",
        usb: usb(&[("idVendor", "1235"), ("idProduct", "0001")]),
        imports: [("ID_MODEL", "Launch"), ("ID_PATH_TAG", "usb-0_5")]
            .into_iter()
            .collect(),
    };
    let o = evaluate(&rules, &other);
    assert_eq!(
        (o.group.as_deref(), o.mode.as_deref()),
        (Some("audio"), Some("0660"))
    );
    assert_eq!(o.symlinks, links(&["faderbridge/by-path/usb-0_5-midi1"]));

    // A USB sound card's PCM and control nodes are left to the distribution's rules.
    for kernel in ["controlC3", "pcmC3D0p"] {
        let node = Device {
            subsystem: "sound",
            kernel,
            usb: usb(&[("idVendor", "1397"), ("idProduct", "00b3")]),
            imports: [("ID_PATH_TAG", "usb-0_5")].into_iter().collect(),
        };
        assert_eq!(evaluate(&rules, &node), Outcome::default(), "{kernel}");
    }

    // An FTDI adapter with a serial number, a CH340 without one.
    let ftdi = Device {
        subsystem: "tty",
        kernel: "ttyUSB0",
        usb: usb(&[
            ("idVendor", "0403"),
            ("idProduct", "6001"),
            ("serial", "A50285BI"),
        ]),
        imports: [("ID_SERIAL_SHORT", "A50285BI"), ("ID_PATH_TAG", "usb-0_6")]
            .into_iter()
            .collect(),
    };
    let o = evaluate(&rules, &ftdi);
    assert_eq!(
        (o.group.as_deref(), o.mode.as_deref()),
        (Some("audio"), Some("0660"))
    );
    assert!(o.tags.contains("uaccess"));
    assert_eq!(
        o.symlinks,
        links(&[
            "faderbridge/serial-A50285BI",
            "faderbridge/by-path/usb-0_6-serial"
        ])
    );
    let ch340 = Device {
        subsystem: "tty",
        kernel: "ttyUSB1",
        usb: usb(&[("idVendor", "1a86"), ("idProduct", "7523")]),
        imports: [("ID_PATH_TAG", "usb-0_7")].into_iter().collect(),
    };
    assert_eq!(
        evaluate(&rules, &ch340).symlinks,
        links(&["faderbridge/by-path/usb-0_7-serial"])
    );

    // Unlisted serial devices and on-board UARTs are untouched.
    let modem = Device {
        subsystem: "tty",
        kernel: "ttyUSB2",
        usb: usb(&[("idVendor", "12d1"), ("idProduct", "1001")]),
        imports: HashMap::new(),
    };
    assert_eq!(evaluate(&rules, &modem), Outcome::default());
    let uart = Device {
        subsystem: "tty",
        kernel: "ttyS0",
        usb: None,
        imports: HashMap::new(),
    };
    assert_eq!(evaluate(&rules, &uart), Outcome::default());
}

/// The parser is strict enough to matter: each broken line is rejected for its own reason.
#[test]
fn udev_parser_rejects_malformed_rules() {
    let bad = [
        (
            r#"ATTRS{idVendor}=="139", GROUP="audio""#,
            "4 lowercase hex",
        ),
        (
            r#"ATTRS{idProduct}=="00B3", GROUP="audio""#,
            "4 lowercase hex",
        ),
        (r#"SUBSYSTEM="sound", GROUP="audio""#, "does not take"),
        (r#"SUBSYSTEM=="sound" GROUP="audio""#, "commas"),
        (r#"SUBSYSTEM=="sound", FOO="x""#, "unknown key"),
        (r#"SUBSYSTEM=="sound", MODE="660""#, "octal"),
        (r#"SUBSYSTEM=="sound", GROUP="wheel""#, "audio"),
        (r#"SUBSYSTEM=="sound", SYMLINK+="x-touch""#, "outside"),
        (r#"SUBSYSTEM=="sound", GROUP="audio"#, "unclosed quote"),
        (r#"ATTRS=="1397""#, "needs"),
        (r#"ACTION=="add", GOTO="nowhere""#, "no LABEL"),
        (r#"GROUP="audio", MODE="0660""#, "without a match"),
    ];
    for (line, why) in bad {
        let errs = parse_rules(line).expect_err(line);
        assert!(
            errs.iter().any(|e| e.contains(why)),
            "{line}: expected an error about {why:?}, got {errs:?}"
        );
    }
    let good = concat!(
        "ACTION==\"remove\", GOTO=\"end\"\n",
        "KERNEL==\"midiC*D0\", ATTRS{idVendor}==\"1397\", SYMLINK+=\"faderbridge/a\"\n",
        "LABEL=\"end\"\n",
    );
    assert_eq!(parse_rules(good).expect("valid rules").len(), 3);
}
