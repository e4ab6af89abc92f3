//! Black-box: the offline subcommands.
#![allow(clippy::unwrap_used)]

mod support;

use support::{repo_root, run_cli};

#[test]
fn validate_accepts_every_example_and_rejects_every_invalid_one() {
    let examples = repo_root().join("schemas/examples");
    let mut valid: Vec<String> = std::fs::read_dir(&examples)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.display().to_string())
        .collect();
    valid.sort();
    assert_eq!(valid.len(), cireg_model::EventType::ALL.len(), "one example per event type");
    let args: Vec<&str> = std::iter::once("validate").chain(valid.iter().map(String::as_str)).collect();
    let (ok, out, err) = run_cli(&args);
    assert!(ok, "{out}\n{err}");

    let bad = examples.join("invalid/negative-subjects.json");
    let (ok, out, _) = run_cli(&["validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("/data/numberOfSubjects"), "{out}");
}

#[test]
fn validate_checks_published_datasets_against_the_application_profile() {
    let example = repo_root().join("schemas/examples/eu.cancerimage.dataset.published.v1.json");
    let (ok, out, err) = run_cli(&["validate", example.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("schema and application profile"), "{out}");
    let bad = repo_root().join("schemas/examples/profile-invalid/missing-hdab.json");
    let (ok, out, _) = run_cli(&["validate", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(out.contains("INVALID against the application profile"), "{out}");
    assert!(out.contains("/data/hdab sh:MinCountConstraintComponent"), "{out}");
}

#[test]
fn demo_prints_forty_synthetic_datasets() {
    let (ok, out, err) = run_cli(&["demo"]);
    assert!(ok, "{err}");
    let published = out.lines().filter(|l| l.contains("eu.cancerimage.dataset.published.v1")).count();
    assert_eq!(published, 40);
    assert!(out.lines().all(|l| l.contains("synthetic")));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.json");
    let (ok, _, err) = run_cli(&["demo", "--out", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    let (ok, out, err) = run_cli(&["validate", file.to_str().unwrap()]);
    assert!(ok, "{out}\n{err}");
}

#[test]
fn completions_are_scripts_a_shell_loads() {
    let (ok, script, err) = run_cli(&["completions", "bash"]);
    assert!(ok, "{err}");
    // bash loads the script and then completes cireg (its first word list names every command)
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cireg.bash");
    std::fs::write(&file, &script).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p cireg", file.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cireg"));
    for command in ["serve", "publish", "rebuild", "validate", "bench", "load", "token", "completions", "man"] {
        assert!(script.contains(command), "the bash completion lacks {command}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (ok, script, err) = run_cli(&["completions", shell]);
        assert!(ok && script.contains("public-base"), "{shell}: {err}");
    }
    let (ok, _, err) = run_cli(&["completions", "tcsh"]);
    assert!(!ok && err.contains("tcsh"), "an unknown shell is named: {err}");
}

#[test]
fn man_pages_are_written_for_every_command() {
    let (ok, page, err) = run_cli(&["man"]);
    assert!(ok, "{err}");
    assert!(page.starts_with(".ie") || page.contains(".TH cireg 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let (ok, _, err) = run_cli(&["man", "--out-dir", out.to_str().unwrap()]);
    assert!(ok, "{err}");
    for command in ["serve", "publish", "rebuild", "validate", "dump", "bench", "load", "token", "completions", "man"] {
        let page = std::fs::read_to_string(out.join(format!("cireg-{command}.1"))).unwrap();
        assert!(page.contains(".TH cireg-"), "cireg-{command}.1: {page}");
    }
    let serve = std::fs::read_to_string(out.join("cireg-serve.1")).unwrap();
    assert!(serve.contains("public\\-base"), "serve's options are on its page");
    assert!(out.join("cireg.1").exists());
}
