//! JSON:API documents checked by an implementation that shares no code with latchkey: the npm
//! package `jsonapi-validator` (the JSON:API 1.0 schema, under ajv), run by node.
//! `./scripts/test` installs it under `$LATCHKEY_TEST_NPM` (default `~/.cache/latchkey-test-npm`).
//!
//! Spryker's Glue differs from strict JSON:API in three places its clients rely on, and the
//! seed document and the issue spell out; [`assert_valid`] allows exactly those — by turning them
//! into their strict form before validating — and nothing else:
//!
//! 1. an error's `status` is a number (`"status": 403` in the seed document; JSON:API: a string);
//! 2. `access-tokens` and `refresh-tokens` resources have `"id": null` (Spryker's answer, and the
//!    issue's; JSON:API: a string);
//! 3. the `multi-factor-auth-*` resources have an attribute named `type` (Spryker's MFA shape,
//!    in requests the seed document shows and in the types list; JSON:API reserves the name).

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// Where the validator package is installed.
fn npm_prefix() -> PathBuf {
    std::env::var_os("LATCHKEY_TEST_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/latchkey-test-npm")
        })
}

/// The strict validator's complaints about each document (empty: valid), as it words them.
pub fn violations(docs: &[Value]) -> Vec<Vec<String>> {
    let module = npm_prefix().join("node_modules/jsonapi-validator");
    assert!(
        module.exists(),
        "{} is missing: run the tests with ./scripts/test, or `npm install --prefix {} jsonapi-validator@3.0.5`",
        module.display(),
        npm_prefix().display()
    );
    let script = "const {Validator} = require(process.argv[1]);\n\
        const v = new Validator();\n\
        const docs = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n\
        console.log(JSON.stringify(docs.map(d => { try { v.validate(d); return []; } \
        catch (e) { return (e.errors || [e]).map(x => `${x.dataPath || ''} ${x.message}`); } })));";
    let mut child = Command::new("node")
        .args(["-e", script])
        .arg(&module)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is installed");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(docs).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the validator failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the validator's report")
}

/// `doc` with Glue's three documented deviations put in their strict form.
pub fn strict_form(doc: &Value) -> Value {
    let mut doc = doc.clone();
    if let Some(errors) = doc.get_mut("errors").and_then(Value::as_array_mut) {
        for e in errors {
            if let Some(n) = e.get("status").and_then(Value::as_u64) {
                e["status"] = Value::String(n.to_string());
            }
        }
    }
    let fix = |r: &mut Value| {
        let kind = r["type"].as_str().unwrap_or("").to_owned();
        if (kind == "access-tokens" || kind == "refresh-tokens") && r["id"].is_null() {
            r["id"] = Value::String("(null in Glue)".into());
        }
        if kind.starts_with("multi-factor-auth-")
            && let Some(attrs) = r.get_mut("attributes").and_then(Value::as_object_mut)
            && let Some(t) = attrs.remove("type")
        {
            attrs.insert("mfaType".into(), t);
        }
    };
    match doc.get_mut("data") {
        Some(Value::Array(all)) => all.iter_mut().for_each(fix),
        Some(r @ Value::Object(_)) => fix(r),
        _ => {}
    }
    doc
}

/// Panics unless every document is valid JSON:API but for Glue's documented deviations.
pub fn assert_valid(docs: &[&Value]) {
    let strict: Vec<Value> = docs.iter().map(|d| strict_form(d)).collect();
    for (doc, problems) in docs.iter().zip(violations(&strict)) {
        assert!(problems.is_empty(), "not JSON:API: {problems:?}\n{doc}");
    }
}
