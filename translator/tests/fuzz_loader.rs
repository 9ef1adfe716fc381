//! Fuzzing the loader and the converter with mutated fixture files: whatever the bytes, `load` and
//! `convert` return a value or errors, never panic, and every error names its cause. Inputs that once
//! broke something are kept in `tests/fuzz-corpus/` and replayed on every run; proptest keeps its own
//! failing seeds in `proptest-regressions/`.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use translator::load::{Request, load};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the crate is in the workspace").to_path_buf()
}

/// The main compose file of every valid fixture.
fn seeds() -> Vec<String> {
    let mut seeds = Vec::new();
    let dir = repo().join("fixtures/compose");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).expect("fixtures/compose exists").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        for name in ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"] {
            if let Ok(text) = std::fs::read_to_string(entry.path().join(name)) {
                seeds.push(text);
                break;
            }
        }
    }
    assert!(seeds.len() >= 30, "expected the fixture projects, found {}", seeds.len());
    seeds
}

/// Loads and converts `text` as `compose.yaml` in a fresh folder; panics only if the translator does.
fn exercise(text: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("compose.yaml"), text).expect("the file is written");
    let request = Request { cwd: dir.path().to_path_buf(), ..Request::default() };
    match load(&request) {
        Ok(loaded) => {
            let _ = translator::project::convert_loaded(&loaded, &Default::default());
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error result holds at least one error");
            for e in &errors.0 {
                assert!(!e.message.is_empty(), "every error says what is wrong: {e:?}");
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    Insert(usize, &'static str),
    FlipByte(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragments = prop::sample::select(vec![
        ":",
        " ",
        "\t",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "&a ",
        "*a",
        "<<: *a\n",
        "!reset ",
        "!override ",
        "${",
        "$$",
        "${X:?boom}",
        "\"",
        "'",
        "\n  ",
        "# ",
        "~",
        "0x",
        "1e9",
        "services:\n",
        "x-",
        "\u{feff}",
        "\u{0}",
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), fragments).prop_map(|(at, s)| Mutation::Insert(at, s)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::FlipByte(at, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        match *m {
            Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) => {
                let mut lines: Vec<Vec<u8>> = bytes.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
                let i = i % lines.len();
                if matches!(m, Mutation::DeleteLine(_)) {
                    lines.remove(i);
                } else {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                bytes = lines.join(&b'\n');
            }
            Mutation::Insert(at, s) => {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, s.bytes());
            }
            Mutation::FlipByte(at, b) => {
                let at = at % bytes.len();
                bytes[at] = b;
            }
            Mutation::Truncate(at) => bytes.truncate(at % bytes.len()),
        }
    }
    bytes
}

proptest! {
    // 192 cases per test run; `PROPTEST_CASES=5000` for a deeper search by hand.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(192)
    ))]

    #[test]
    fn mutated_fixtures_never_panic(seed in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let seeds = seeds();
        let text = &seeds[seed.index(seeds.len())];
        exercise(&apply(text, &mutations));
    }
}

#[test]
fn regression_corpus_never_panics() {
    let dir = repo().join("translator/tests/fuzz-corpus");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus folder exists").flatten() {
        exercise(&std::fs::read(entry.path()).expect("corpus files are readable"));
        count += 1;
    }
    assert!(count > 0, "the corpus in {} is empty", dir.display());
}
