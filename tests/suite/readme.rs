//! The README's configuration table is the code's settings table, word for word.

use latchkey_core::config::{DEPLOYMENT_SETTINGS, SETTINGS};

const README: &str = include_str!("../../README.md");

#[test]
fn readme_configuration_table_matches_the_settings() {
    let start = README
        .find("<!-- settings-table:start -->")
        .expect("start marker");
    let end = README
        .find("<!-- settings-table:end -->")
        .expect("end marker");
    let table: Vec<&str> = README[start..end]
        .lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> = SETTINGS
        .iter()
        .chain(DEPLOYMENT_SETTINGS)
        .map(|s| format!("| `{}` | `{}` | {} |", s.name, s.default, s.doc))
        .collect();
    assert_eq!(
        table, expected,
        "regenerate the README table from shared/core/src/config.rs"
    );
}
