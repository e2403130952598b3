//! Where the real all-MiniLM-L6-v2 folder is (MOODGRAD_MINILM_DIR, printed by
//! scripts/install-minilm.sh). Without it a test that needs it is skipped, saying so; under
//! MOODGRAD_REQUIRE_MINILM=1 (CI sets both) the skip is a failure.

use std::path::PathBuf;

pub fn minilm_dir() -> Option<PathBuf> {
    match std::env::var_os("MOODGRAD_MINILM_DIR").filter(|d| !d.is_empty()) {
        Some(d) => Some(PathBuf::from(d)),
        None if std::env::var_os("MOODGRAD_REQUIRE_MINILM").is_some_and(|v| v == "1") => {
            panic!("MOODGRAD_REQUIRE_MINILM=1 but MOODGRAD_MINILM_DIR is not set (scripts/install-minilm.sh prints it)")
        }
        None => {
            eprintln!("skipped: set MOODGRAD_MINILM_DIR to all-MiniLM-L6-v2's folder to run this test");
            None
        }
    }
}
