//! The fuzz corpus on the stable toolchain: every file under
//! `fuzz/corpus/<target>/` (the seeds and what the fuzzer kept) and
//! `fuzz/regressions/<target>/` (each crash or slow input it found) goes
//! through the same function the fuzz target calls
//! (`bionicbb_core::fuzzing`), which panics when a property breaks.
//! Each input must also stay within a time and a memory bound; the worst
//! of each target is printed.
//!
//! One test runs every input in turn, so the allocator's peak belongs to
//! the input being measured.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bionicbb_core::fuzzing;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let now = IN_USE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Generous ceilings for one input in a debug build: a 1 MiB mail parses
/// well within them when parsing is linear and bounded.
const TIME_LIMIT: Duration = Duration::from_secs(5);
const MEMORY_LIMIT: usize = 64 << 20;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("mail", fuzzing::mail),
    ("command", fuzzing::command),
    ("notification", fuzzing::notification),
    ("config", fuzzing::config),
];

/// The named inputs of `target`: its corpus and regression files, then
/// the large inputs built here (too big to keep in the repository).
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    files.sort();
    let mut inputs: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|f| (f.display().to_string(), std::fs::read(&f).unwrap()))
        .collect();
    inputs.extend(large(target));
    inputs
}

const MIB: usize = 1 << 20;

/// A sample grown to 1 MiB: a comment mail whose text is 1 MiB of prose,
/// quoted lines and command lines; a notification whose build has 1 MiB
/// of parameters.
fn large(target: &str) -> Option<(String, Vec<u8>)> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    match target {
        "mail" => {
            let sample =
                std::fs::read_to_string(data.join("emails/04-comment-retry-2.x.eml")).unwrap();
            let eol = if sample.contains("\r\n") {
                "\r\n"
            } else {
                "\n"
            };
            let line = "The build machine ran out of disk last night.";
            let block = format!("{line}{eol}> bionicbb:clean{eol}bionicbb:retry{eol}");
            let text = block.repeat(MIB / block.len() + 1);
            let mail = sample.replacen(line, &text, 1);
            assert!(mail.len() >= MIB);
            Some(("1 MiB comment mail".into(), mail.into_bytes()))
        }
        "notification" => {
            let sample =
                std::fs::read_to_string(data.join("jenkins/04-presubmit-finalized-success.json"))
                    .unwrap();
            let params: Vec<String> = (0..MIB / 32)
                .map(|i| format!("\"P{i:08}\": \"value-{i:012}\""))
                .collect();
            let doc = sample.replacen(
                "\"parameters\": {",
                &format!("\"parameters\": {{{},", params.join(",")),
                1,
            );
            assert!(doc.len() >= MIB);
            Some(("1 MiB notification".into(), doc.into_bytes()))
        }
        _ => None,
    }
}

/// Runs `input` through `run`; its time and its peak memory above what
/// was in use before.
fn measure(run: Target, input: &[u8]) -> (Duration, usize) {
    let before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let start = Instant::now();
    run(input);
    let elapsed = start.elapsed();
    (elapsed, PEAK.load(Ordering::Relaxed).saturating_sub(before))
}

#[test]
fn every_corpus_and_regression_input_passes_within_bounds() {
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let inputs = inputs(target);
        assert!(!inputs.is_empty(), "no corpus for the {target} target");
        let (mut slowest, mut largest) = ((Duration::ZERO, String::new()), (0, String::new()));
        for (name, input) in &inputs {
            let name = name.clone();
            let outcome = std::panic::catch_unwind(|| measure(run, input));
            let Ok((elapsed, memory)) = outcome else {
                failures.push(format!("{name}: panicked"));
                continue;
            };
            if elapsed > TIME_LIMIT {
                failures.push(format!("{name}: took {elapsed:?} (limit {TIME_LIMIT:?})"));
            }
            if memory > MEMORY_LIMIT {
                failures.push(format!(
                    "{name}: peaked at {memory} bytes (limit {MEMORY_LIMIT})"
                ));
            }
            if elapsed > slowest.0 {
                slowest = (elapsed, name.clone());
            }
            if memory > largest.0 {
                largest = (memory, name);
            }
        }
        println!(
            "{target}: {} inputs; slowest {:?} ({}); most memory {} KiB ({})",
            inputs.len(),
            slowest.0,
            slowest.1,
            largest.0 / 1024,
            largest.1
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
