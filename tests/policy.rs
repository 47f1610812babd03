//! The policy folder as a whole: loading, the policy-set hash, and the path a request takes
//! (token → principal → Cedar decision).

use std::fs;
use std::path::{Path, PathBuf};

use lethe::policy::{ensure_dev_tokens, set_hash, token_for, Action, Change, PolicySet, RequestContext};

fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// A copy of the shipped policy folder to modify.
fn copy_of_shipped() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in fs::read_dir(shipped_dir()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

#[test]
fn the_shipped_folder_loads_with_every_file_hashed() {
    let set = PolicySet::load(&shipped_dir()).unwrap();
    let names: Vec<&str> = set.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["access.cedar", "principals.toml", "retention.toml", "schema.cedarschema"]);
    assert_eq!(set.hash.len(), 64);
    assert_eq!(set.hash, set_hash(&set.files));
    assert_eq!(set.retention.retention_hours, 720);
    let can: Vec<String> = set
        .who_can_search()
        .into_iter()
        .filter(|(_, d)| d.allowed)
        .map(|(p, _)| p.id)
        .collect();
    assert_eq!(can, ["city-pd", "county-so", "state-patrol"]);
}

#[test]
fn the_hash_matches_the_documented_sha256sum_recipe() {
    let set = PolicySet::load(&shipped_dir()).unwrap();
    let mut text = String::new();
    for (name, _) in &set.files {
        let bytes = fs::read(shipped_dir().join(name)).unwrap();
        text.push_str(&format!(
            "{}  {name}\n",
            hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
        ));
    }
    assert_eq!(set.hash, hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes())));
}

#[test]
fn the_hash_changes_when_any_policy_file_changes_and_files_say_which() {
    let tmp = copy_of_shipped();
    let base = PolicySet::load(tmp.path()).unwrap();
    type Edit = fn(String) -> String;
    let edits: [(&str, Edit); 4] = [
        ("retention.toml", |s| s.replace("720", "744")),
        ("principals.toml", |s| {
            s.replace("\"Federal Agency\"", "\"Federal Agency (renamed)\"")
        }),
        ("access.cedar", |s| s.replace("\"amber-alert\"", "\"amber-alert\", \"curiosity\"")),
        ("schema.cedarschema", |s| format!("{s}\n// a comment is a change too\n")),
    ];
    for (file, edit) in edits {
        let tmp = copy_of_shipped();
        let path = tmp.path().join(file);
        fs::write(&path, edit(fs::read_to_string(&path).unwrap())).unwrap();
        let changed = PolicySet::load(tmp.path()).unwrap();
        assert_ne!(changed.hash, base.hash, "{file}");
        assert_eq!(changed.changed_files(&base.files), [(file.to_string(), Change::Modified)], "{file}");
    }
    // Adding and removing files.
    fs::write(
        tmp.path().join("extra.cedar"),
        "@id(\"ingest-too\")\npermit (principal, action == Lethe::Action::\"ingest\", resource);\n",
    )
    .unwrap();
    let added = PolicySet::load(tmp.path()).unwrap();
    assert_ne!(added.hash, base.hash);
    assert_eq!(added.changed_files(&base.files), [("extra.cedar".to_string(), Change::Added)]);
    assert_eq!(
        added.access.rule_file("ingest-too"),
        Some(tmp.path().join("extra.cedar").to_str().unwrap())
    );
    fs::remove_file(tmp.path().join("extra.cedar")).unwrap();
    fs::remove_file(tmp.path().join("retention.toml")).unwrap();
    let removed = PolicySet::load(tmp.path()).unwrap();
    assert_eq!(
        removed.changed_files(&base.files),
        [("retention.toml".to_string(), Change::Removed)]
    );
    // Unchanged content, unchanged hash (and hidden files such as editor swap files do not count).
    fs::copy(shipped_dir().join("retention.toml"), tmp.path().join("retention.toml")).unwrap();
    fs::write(tmp.path().join(".access.cedar.swp"), "x").unwrap();
    assert_eq!(PolicySet::load(tmp.path()).unwrap().hash, base.hash);
}

#[test]
fn load_errors_name_the_file() {
    let tmp = copy_of_shipped();
    let cedar = tmp.path().join("access.cedar");
    fs::write(
        &cedar,
        "@id(\"x\") permit (principal, action, resource) when { principal.state == \"CA\" };",
    )
    .unwrap();
    let e = PolicySet::load(tmp.path()).unwrap_err();
    assert_eq!(e.setting, cedar.display().to_string());
    assert!(e.reason.contains("state"), "{e}");

    let tmp = copy_of_shipped();
    let reg = tmp.path().join("principals.toml");
    fs::write(
        &reg,
        fs::read_to_string(&reg)
            .unwrap()
            .replace("jurisdiction = \"NV\"", "jurisdiction = \"Nevada\""),
    )
    .unwrap();
    let e = PolicySet::load(tmp.path()).unwrap_err();
    assert_eq!(e.setting, reg.display().to_string());
    assert!(
        e.reason.contains("principal 'nv-city-pd'") && e.reason.contains("field 'jurisdiction'"),
        "{e}"
    );

    let tmp = copy_of_shipped();
    fs::write(tmp.path().join("dev-tokens.json"), "{}").unwrap();
    let e = PolicySet::load(tmp.path()).unwrap_err();
    assert!(e.setting.ends_with("dev-tokens.json") && e.reason.contains("token"), "{e}");

    let tmp = copy_of_shipped();
    fs::remove_file(tmp.path().join("schema.cedarschema")).unwrap();
    assert!(PolicySet::load(tmp.path()).unwrap_err().setting.ends_with("schema.cedarschema"));
}

#[test]
fn a_request_from_token_to_decision() {
    let set = PolicySet::load(&shipped_dir()).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("dev-tokens.json");
    let dev = ensure_dev_tokens(&set.principals, &path).unwrap();
    let auth = set.authenticator(Some(&dev));
    let ok = RequestContext::search("stolen-vehicle", Some("24-001234"));

    let city = token_for("city-pd", &path).unwrap();
    let who = auth.authenticate(city.expose()).unwrap();
    assert!(set.authorize(who, Action::Search, &ok).allowed);

    let nv = token_for("nv-city-pd", &path).unwrap();
    let who = auth.authenticate(nv.expose()).unwrap();
    let d = set.authorize(who, Action::Search, &ok);
    assert!(!d.allowed);
    assert_eq!(d.rule, "forbid-search-out-of-state");

    let gateway = auth.authenticate(token_for("ingest-gateway", &path).unwrap().expose()).unwrap();
    assert!(set.authorize(gateway, Action::Ingest, &RequestContext::none()).allowed);
    assert!(!set.authorize(gateway, Action::Search, &ok).allowed);
    assert!(auth.authenticate("lethe_not-a-token").is_none());
}
