//! Style and architecture invariants as tests (after rust-analyzer's tidy).
//!
//! Each check is an absence that review would otherwise have to spot: a module
//! without its doc, an ignored test, IO or threads in the sans-IO crate, shared
//! memory primitives that bypass the loom shim, a dependency pointing the wrong way.

use std::path::Path;

use vaultsim_tests::{rust_files, workspace_root};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).display().to_string()
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut missing = Vec::new();
    for crate_folder in ["impl", "model", "sim", "tests"] {
        for file in rust_files(&root.join(crate_folder)) {
            if !read(&file).trim_start().starts_with("//!") && !file.ends_with("tests.rs") {
                missing.push(relative(&file));
            }
        }
    }
    assert!(missing.is_empty(), "files without a `//!` module doc: {missing:?}");
}

#[test]
fn no_test_is_ignored() {
    let banned = concat!("#[", "ignore");
    let root = workspace_root();
    let mut offenders = Vec::new();
    for crate_folder in ["impl", "model", "sim", "tests"] {
        for file in rust_files(&root.join(crate_folder)) {
            if read(&file).contains(banned) {
                offenders.push(relative(&file));
            }
        }
    }
    assert!(offenders.is_empty(), "ignored tests hide failures: {offenders:?}");
}

#[test]
fn the_machines_do_no_io_and_read_no_clock() {
    let banned = ["std::thread", "std::net", "std::fs", "std::io", "std::env", "Instant", "SystemTime", "thread_rng"];
    let mut offenders = Vec::new();
    for file in rust_files(&workspace_root().join("impl/src")) {
        let text = read(&file);
        for word in banned {
            if text.contains(word) {
                offenders.push(format!("{} uses {word}", relative(&file)));
            }
        }
    }
    assert!(offenders.is_empty(), "the vault crate is sans-IO: {offenders:?}");
}

#[test]
fn shared_memory_primitives_come_from_the_loom_shim() {
    let banned = ["std::sync::atomic", "std::sync::Mutex", "std::sync::RwLock", "std::cell::UnsafeCell"];
    let mut offenders = Vec::new();
    for file in rust_files(&workspace_root().join("impl/src")) {
        if file.ends_with("sync.rs") {
            continue;
        }
        let text = read(&file);
        for word in banned {
            if text.contains(word) {
                offenders.push(format!("{} uses {word}", relative(&file)));
            }
        }
    }
    assert!(offenders.is_empty(), "import these from `crate::sync` so loom sees them: {offenders:?}");
}

#[test]
fn dependencies_point_one_way() {
    // `vault` and `model` depend on no workspace crate; only `sim` joins them.
    for manifest in ["impl/Cargo.toml", "model/Cargo.toml"] {
        let text = read(&workspace_root().join(manifest));
        let dependencies = text.split("[dependencies]").nth(1).unwrap_or("");
        let dependencies = dependencies.split("\n[").next().unwrap_or("");
        for workspace_crate in ["vault", "model", "sim"] {
            let line = format!("\n{workspace_crate}.workspace");
            assert!(!dependencies.contains(&line), "{manifest} depends on workspace crate `{workspace_crate}`");
        }
        assert!(!dependencies.contains("path ="), "{manifest} has a path dependency");
    }
}
