//! The principal registry: `policies/principals.toml`.
//!
//! Each `[[principal]]` is one caller: its id, the agency it belongs to (display name, kind,
//! level, jurisdiction), its roles, and optionally the SHA-256 of its bearer token. The registry
//! holds token *hashes* only; tokens themselves live in secret files or the caller's environment.
//!
//! The file is checked field by field, so a mistake is reported as
//! `policies/principals.toml: principal 'city-pd': field 'level': ...` rather than a parser
//! position. Unknown fields are refused (a misspelt `rolse` must not silently grant nothing, or
//! worse, leave an old value in force).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::config::ConfigError;

/// The file name inside the policy folder.
pub const FILE: &str = "principals.toml";

/// The registry format version this code reads. Changing the meaning of a field needs a new
/// version (and a test that still reads version 1).
pub const VERSION: i64 = 1;

/// Public agency or private entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AgencyKind {
    /// A public (government) agency.
    Public,
    /// A private entity (a company, a homeowners' association, a vendor).
    Private,
}

/// The level of government (for private entities: the level they operate at).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// City or county.
    Local,
    /// A state agency.
    State,
    /// A federal agency (jurisdiction `US`).
    Federal,
}

/// What a principal may be allowed to do. Roles are necessary, not sufficient: the Cedar policy
/// decides, and the shipped policy requires the matching role for every action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Send plate reads.
    Ingest,
    /// Search plate reads.
    Search,
    /// Read the ledger and run audits and reports.
    Audit,
    /// Approve policy baselines, place and release holds.
    Admin,
}

macro_rules! str_enum {
    ($t:ty, $what:literal, { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// Every value, in order.
            pub const ALL: &'static [$t] = &[$(<$t>::$v),+];
            /// The name used in files and in Cedar.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),+ }
            }
            fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok(<$t>::$v),)+
                    _ => Err(format!(
                        concat!("'{}' is not ", $what, " (expected one of: {})"),
                        s,
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(AgencyKind, "an agency kind", { Public => "public", Private => "private" });
str_enum!(Level, "a level", { Local => "local", State => "state", Federal => "federal" });
str_enum!(Role, "a role", { Ingest => "ingest", Search => "search", Audit => "audit", Admin => "admin" });

/// US state, district and territory codes accepted as a jurisdiction (plus `US` for federal).
const JURISDICTIONS: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI",
    "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP",
];

/// One registered caller.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// Unique id (`city-pd`): what ledger records and `--as` name.
    pub id: String,
    /// The agency's display name.
    pub agency: String,
    /// Public agency or private entity.
    pub agency_kind: AgencyKind,
    /// Local, state or federal.
    pub level: Level,
    /// US state code (`CA`); `US` for federal agencies.
    pub jurisdiction: String,
    /// Roles, deduplicated and sorted.
    pub roles: BTreeSet<Role>,
    /// SHA-256 of the bearer token, when the registry pins one. A pinned hash always wins over
    /// a development token.
    pub token_sha256: Option<[u8; 32]>,
}

impl Principal {
    /// Does the principal hold `role`?
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

impl fmt::Debug for Principal {
    // The token hash is not secret, but it is noise in logs; show only whether one is pinned.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("id", &self.id)
            .field("agency", &self.agency)
            .field("agency_kind", &self.agency_kind)
            .field("level", &self.level)
            .field("jurisdiction", &self.jurisdiction)
            .field("roles", &self.roles)
            .field("token_sha256", &self.token_sha256.map(|_| "<pinned>"))
            .finish()
    }
}

/// The registry: every principal, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    principals: BTreeMap<String, Principal>,
}

const FIELDS: &[&str] = &["id", "agency", "agency_kind", "level", "jurisdiction", "roles", "token_sha256"];

impl Registry {
    /// Loads `{dir}/principals.toml`. A missing file is an error: with no principals nobody can
    /// do anything, which is never what an operator meant.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::new(path.display().to_string(), e.to_string()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses registry text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::new(origin, reason);
        let doc: toml::Table = toml::from_str(text).map_err(|e| err(e.message().to_string()))?;
        for key in doc.keys() {
            if key != "version" && key != "principal" {
                return Err(err(format!("unknown top-level field '{key}' (expected version, principal)")));
            }
        }
        match doc.get("version") {
            None => {}
            Some(toml::Value::Integer(VERSION)) => {}
            Some(v) => return Err(err(format!("field 'version': {v} is not a supported version (expected {VERSION})"))),
        }
        let list = match doc.get("principal") {
            None => return Err(err("no [[principal]] entries".into())),
            Some(toml::Value::Array(a)) => a,
            Some(_) => return Err(err("'principal' must be an array of tables ([[principal]])".into())),
        };
        let mut principals = BTreeMap::new();
        let mut hashes: BTreeMap<[u8; 32], String> = BTreeMap::new();
        for (i, entry) in list.iter().enumerate() {
            let table = entry
                .as_table()
                .ok_or_else(|| err(format!("principal #{}: must be a table", i + 1)))?;
            let p = parse_principal(table, i).map_err(err)?;
            if let Some(h) = p.token_sha256 {
                if let Some(other) = hashes.insert(h, p.id.clone()) {
                    return Err(err(format!(
                        "principal '{}': field 'token_sha256': the same token hash as principal '{other}' (each principal needs its own token)",
                        p.id
                    )));
                }
            }
            if principals.contains_key(&p.id) {
                return Err(err(format!("principal '{}': field 'id': registered twice", p.id)));
            }
            principals.insert(p.id.clone(), p);
        }
        Ok(Self { principals })
    }

    /// The principal with `id`.
    pub fn get(&self, id: &str) -> Option<&Principal> {
        self.principals.get(id)
    }

    /// Every principal, ordered by id.
    pub fn iter(&self) -> impl Iterator<Item = &Principal> {
        self.principals.values()
    }

    /// How many principals.
    pub fn len(&self) -> usize {
        self.principals.len()
    }

    /// No principals at all (only for a registry built in code; a loaded one has at least one).
    pub fn is_empty(&self) -> bool {
        self.principals.is_empty()
    }
}

impl FromIterator<Principal> for Registry {
    /// Builds a registry in code (tests, tools). Later duplicates replace earlier ones.
    fn from_iter<I: IntoIterator<Item = Principal>>(iter: I) -> Self {
        Self {
            principals: iter.into_iter().map(|p| (p.id.clone(), p)).collect(),
        }
    }
}

fn parse_principal(t: &toml::Table, index: usize) -> Result<Principal, String> {
    let id = match t.get("id") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(v) => {
            return Err(format!(
                "principal #{}: field 'id': must be a string, found {}",
                index + 1,
                v.type_str()
            ))
        }
        None => return Err(format!("principal #{}: field 'id': missing", index + 1)),
    };
    let fail = |field: &str, reason: String| format!("principal '{id}': field '{field}': {reason}");
    if id.is_empty()
        || id.len() > 64
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(fail("id", "must be 1–64 characters of a-z, 0-9, '-', '_', '.'".into()));
    }
    if let Some(k) = t.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(fail(k, format!("unknown field (expected one of: {})", FIELDS.join(", "))));
    }
    let string = |field: &str| -> Result<String, String> {
        match t.get(field) {
            Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(toml::Value::String(_)) => Err(fail(field, "is empty".into())),
            Some(v) => Err(fail(field, format!("must be a string, found {}", v.type_str()))),
            None => Err(fail(field, "missing".into())),
        }
    };
    let agency = string("agency")?;
    let agency_kind = AgencyKind::parse(&string("agency_kind")?).map_err(|r| fail("agency_kind", r))?;
    let level = Level::parse(&string("level")?).map_err(|r| fail("level", r))?;
    let jurisdiction = string("jurisdiction")?;
    match (level, jurisdiction.as_str()) {
        (Level::Federal, "US") => {}
        (Level::Federal, j) => return Err(fail("jurisdiction", format!("'{j}': a federal principal's jurisdiction is 'US'"))),
        (_, "US") => return Err(fail("jurisdiction", "'US' is only for level = \"federal\"".into())),
        (_, j) if JURISDICTIONS.contains(&j) => {}
        (_, j) => return Err(fail("jurisdiction", format!("'{j}' is not a US state code (e.g. CA, NV)"))),
    }
    let roles = match t.get("roles") {
        Some(toml::Value::Array(a)) => {
            let mut roles = BTreeSet::new();
            for v in a {
                let s = v
                    .as_str()
                    .ok_or_else(|| fail("roles", format!("must be strings, found {}", v.type_str())))?;
                let r = Role::parse(s).map_err(|r| fail("roles", r))?;
                if !roles.insert(r) {
                    return Err(fail("roles", format!("'{s}' is listed twice")));
                }
            }
            if roles.is_empty() {
                return Err(fail(
                    "roles",
                    "is empty (a principal with no role can do nothing; remove it)".into(),
                ));
            }
            roles
        }
        Some(v) => return Err(fail("roles", format!("must be an array of strings, found {}", v.type_str()))),
        None => return Err(fail("roles", "missing".into())),
    };
    let token_sha256 = match t.get("token_sha256") {
        None => None,
        Some(toml::Value::String(s)) => {
            let mut h = [0u8; 32];
            hex::decode_to_slice(s.trim(), &mut h).map_err(|_| {
                fail(
                    "token_sha256",
                    "must be 64 hex digits (the SHA-256 of the token, never the token)".into(),
                )
            })?;
            Some(h)
        }
        Some(v) => return Err(fail("token_sha256", format!("must be a string, found {}", v.type_str()))),
    };
    Ok(Principal {
        id,
        agency,
        agency_kind,
        level,
        jurisdiction,
        roles,
        token_sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Registry {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    }

    #[test]
    fn shipped_registry_has_the_example_principals_without_tokens() {
        let r = shipped();
        for id in [
            "city-pd",
            "county-so",
            "state-patrol",
            "nv-city-pd",
            "federal-agency",
            "ingest-gateway",
            "auditor",
            "admin",
        ] {
            let p = r.get(id).unwrap_or_else(|| panic!("{id} missing"));
            assert!(p.token_sha256.is_none(), "{id}: the repository must carry no token hash");
        }
        assert_eq!(r.get("nv-city-pd").unwrap().jurisdiction, "NV");
        assert_eq!(r.get("federal-agency").unwrap().level, Level::Federal);
        assert_eq!(r.get("ingest-gateway").unwrap().roles, BTreeSet::from([Role::Ingest]));
        assert!(
            !r.get("auditor").unwrap().has_role(Role::Admin),
            "separation of duties: the auditor does not approve"
        );
    }

    fn base(extra: &str) -> String {
        format!(
            "[[principal]]\nid = \"ok\"\nagency = \"A\"\nagency_kind = \"public\"\nlevel = \"local\"\njurisdiction = \"CA\"\nroles = [\"search\"]\n\n[[principal]]\nid = \"bad-one\"\nagency = \"B\"\n{extra}"
        )
    }

    fn error(extra: &str) -> ConfigError {
        Registry::parse(&base(extra), "policies/principals.toml").unwrap_err()
    }

    #[test]
    fn errors_name_the_file_the_principal_and_the_field() {
        let full = "agency_kind = \"public\"\nlevel = \"local\"\njurisdiction = \"CA\"\nroles = [\"search\"]\n";
        let cases = [
            (full.replace("local", "county"), "level", "county"),
            (full.replace("public", "gov"), "agency_kind", "gov"),
            (full.replace("\"CA\"", "\"XX\""), "jurisdiction", "XX"),
            (full.replace("\"CA\"", "\"US\""), "jurisdiction", "federal"),
            (full.replace("\"search\"", "\"root\""), "roles", "root"),
            (full.replace("[\"search\"]", "[]"), "roles", "empty"),
            (full.replace("[\"search\"]", "\"search\""), "roles", "array"),
            (format!("{full}rolse = [\"admin\"]\n"), "rolse", "unknown field"),
            (format!("{full}token_sha256 = \"lethe_abc\"\n"), "token_sha256", "hex"),
            (full.replace("roles = [\"search\"]\n", ""), "roles", "missing"),
        ];
        for (extra, field, word) in cases {
            let e = error(&extra);
            assert_eq!(e.setting, "policies/principals.toml");
            assert!(e.reason.contains("principal 'bad-one'"), "{e}");
            assert!(e.reason.contains(&format!("field '{field}'")), "{e}");
            assert!(e.reason.contains(word), "{e}");
        }
    }

    #[test]
    fn duplicates_and_bad_documents_are_refused() {
        let one = "[[principal]]\nid = \"a\"\nagency = \"A\"\nagency_kind = \"public\"\nlevel = \"local\"\njurisdiction = \"CA\"\nroles = [\"search\"]\n";
        let e = Registry::parse(&format!("{one}{one}"), "p").unwrap_err();
        assert!(e.reason.contains("principal 'a': field 'id'"), "{e}");
        let h = format!("token_sha256 = \"{}\"\n", "ab".repeat(32));
        let e = Registry::parse(&format!("{one}{h}{}{h}", one.replace("\"a\"", "\"b\"")), "p").unwrap_err();
        assert!(e.reason.contains("principal 'b': field 'token_sha256'"), "{e}");
        assert!(Registry::parse("version = 2\n", "p").unwrap_err().reason.contains("version"));
        assert!(Registry::parse("principals = []\n", "p").unwrap_err().reason.contains("principals"));
        assert!(Registry::parse("[[principal]\n", "p").is_err());
        let e = Registry::parse(&one.replace("id = \"a\"", "id = \"A b\""), "p").unwrap_err();
        assert!(e.reason.contains("field 'id'"), "{e}");
    }
}
