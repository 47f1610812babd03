//! Access rules: Cedar policies in `policies/*.cedar`, checked against `policies/schema.cedarschema`.
//!
//! Guarantees:
//! - **Default deny.** A request is allowed only when a `permit` matches and no `forbid` does.
//! - **Validated at load.** Every policy is validated against the schema in strict mode; a policy
//!   that does not parse or validate is a [`ConfigError`] naming the file, the line and Cedar's
//!   message, and the server does not start.
//! - **Every decision names its rule.** Each policy must carry a unique `@id("...")`; a decision's
//!   `rule` is the id of every determining policy (sorted, joined by `,`) or `default-deny`. An
//!   optional `@reason("...")` annotation supplies the human-readable reason.
//! - **Fail closed.** Should any policy fail to evaluate, the request is denied (Cedar alone would
//!   skip an erroring `forbid` and could allow).
//!
//! The Cedar model: the principal is `Lethe::Principal::"{id}"` with the attributes of
//! `principals.toml` (`agency`, `agency_kind`, `level`, `jurisdiction`, `roles`); the action is
//! `Lethe::Action::"search" | "ingest" | "audit" | "admin"`; the resource is
//! `Lethe::Store::"reads"`; the context is `{ purpose, has_case_number, case_number }`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use cedar_policy as cp;

use super::principals::Principal;
use crate::config::ConfigError;

/// The schema file inside the policy folder.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The shipped policy file. Every `*.cedar` file in the folder is loaded.
pub const POLICY_FILE: &str = "access.cedar";
/// The rule named when no policy permits a request.
pub const DEFAULT_DENY: &str = "default-deny";
/// The purposes of the shipped California example (`access.cedar` is the authority; this list
/// only drives [`AccessPolicy::who_can_search`]'s probes).
pub const EXAMPLE_PURPOSES: &[&str] = &["investigation", "stolen-vehicle", "missing-person", "violent-crime", "amber-alert"];

const NAMESPACE: &str = "Lethe";
const RESOURCE: &str = r#"Lethe::Store::"reads""#;

/// What a caller asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Search plate reads.
    Search,
    /// Send plate reads.
    Ingest,
    /// Read the ledger, run audits and reports.
    Audit,
    /// Approve policy baselines, place and release holds.
    Admin,
}

impl Action {
    /// The Cedar action id.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Search => "search",
            Action::Ingest => "ingest",
            Action::Audit => "audit",
            Action::Admin => "admin",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the caller says about the request: the Cedar context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// Why (search): one of the purposes the policy allows. Empty when the action has none.
    pub purpose: String,
    /// The case number (search). `None`, or blank, means no case number.
    pub case_number: Option<String>,
}

impl RequestContext {
    /// The context of a search.
    pub fn search(purpose: impl Into<String>, case_number: Option<&str>) -> Self {
        Self {
            purpose: purpose.into(),
            case_number: case_number.map(str::to_owned),
        }
    }

    /// No purpose, no case number (ingest, audit, admin).
    pub fn none() -> Self {
        Self::default()
    }

    /// Was a non-blank case number given?
    pub fn has_case_number(&self) -> bool {
        self.case_number.as_deref().is_some_and(|c| !c.trim().is_empty())
    }
}

/// The outcome of one authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// The `@id` of the determining policy (several: sorted and joined by `,`), or
    /// [`DEFAULT_DENY`] when nothing permits. Ledger records and status messages carry it.
    pub rule: String,
    /// A one-line human-readable reason.
    pub reason: String,
}

impl Decision {
    /// The determining rule ids, split.
    pub fn rules(&self) -> impl Iterator<Item = &str> {
        self.rule.split(',')
    }
}

/// The loaded, validated access policy.
pub struct AccessPolicy {
    schema: cp::Schema,
    policies: cp::PolicySet,
    /// Rule id → the file that defines it.
    files: BTreeMap<String, String>,
    authorizer: cp::Authorizer,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPolicy").field("rules", &self.files).finish()
    }
}

/// One line for a Cedar diagnostic: `line L:C: message (help: ...)`.
fn describe(d: &dyn miette::Diagnostic, src: &str) -> String {
    let mut out = String::new();
    if let Some(span) = d.labels().and_then(|mut l| l.next()) {
        let offset = span.offset().min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        out.push_str(&format!("line {line}:{col}: "));
    }
    out.push_str(&d.to_string());
    if let Some(help) = d.help() {
        out.push_str(&format!(" (help: {help})"));
    }
    out
}

impl AccessPolicy {
    /// Loads `{dir}/schema.cedarschema` and every `{dir}/*.cedar` (in name order), and validates.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| ConfigError::new(p.display().to_string(), e.to_string()));
        let schema_path = dir.join(SCHEMA_FILE);
        let schema = read(&schema_path)?;
        let entries = std::fs::read_dir(dir).map_err(|e| ConfigError::new(dir.display().to_string(), e.to_string()))?;
        let mut paths = Vec::new();
        for e in entries {
            let e = e.map_err(|e| ConfigError::new(dir.display().to_string(), e.to_string()))?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "cedar") && p.is_file() {
                paths.push(p);
            }
        }
        paths.sort();
        let mut sources = Vec::new();
        for p in paths {
            sources.push((p.display().to_string(), read(&p)?));
        }
        let refs: Vec<(&str, &str)> = sources.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
        Self::from_sources((&schema_path.display().to_string(), &schema), &refs)
    }

    /// Builds the policy from source text: `schema` is (file name, text); `policies` are
    /// (file name, text) pairs. The names appear in errors.
    pub fn from_sources(schema: (&str, &str), policies: &[(&str, &str)]) -> Result<Self, ConfigError> {
        let (schema_name, schema_text) = schema;
        let (schema, _warnings) =
            cp::Schema::from_cedarschema_str(schema_text).map_err(|e| ConfigError::new(schema_name, describe(&e, schema_text)))?;
        if policies.is_empty() {
            return Err(ConfigError::new(
                schema_name,
                "no *.cedar policy file beside the schema: everything would be denied",
            ));
        }
        let mut set = cp::PolicySet::new();
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut texts: BTreeMap<&str, &str> = BTreeMap::new();
        for &(name, text) in policies {
            texts.insert(name, text);
            let parsed = cp::PolicySet::from_str(text).map_err(|e| ConfigError::new(name, describe(&e, text)))?;
            if let Some(t) = parsed.templates().next() {
                return Err(ConfigError::new(
                    name,
                    format!("template {} is not supported: write plain policies", t.id()),
                ));
            }
            for p in parsed.policies() {
                let Some(id) = p.annotation("id") else {
                    return Err(ConfigError::new(
                        name,
                        format!(
                            "a policy has no @id(\"...\") annotation; every rule needs one so decisions can name it: {}",
                            p.to_string().lines().next().unwrap_or_default()
                        ),
                    ));
                };
                if id.is_empty() || id.contains(',') || id.chars().any(char::is_whitespace) || id == DEFAULT_DENY {
                    return Err(ConfigError::new(
                        name,
                        format!("@id(\"{id}\"): a rule id must be non-empty, without spaces or commas, and not '{DEFAULT_DENY}'"),
                    ));
                }
                if let Some(other) = files.get(id) {
                    return Err(ConfigError::new(
                        name,
                        format!("@id(\"{id}\") is also used in {other}: rule ids must be unique"),
                    ));
                }
                files.insert(id.to_owned(), name.to_owned());
                set.add(p.new_id(cp::PolicyId::new(id)))
                    .map_err(|e| ConfigError::new(name, e.to_string()))?;
            }
        }
        let result = cp::Validator::new(schema.clone()).validate(&set, cp::ValidationMode::Strict);
        if let Some(e) = result.validation_errors().next() {
            let id = e.policy_id().to_string();
            let file = files.get(&id).map(String::as_str).unwrap_or(schema_name);
            let src = texts.get(file).copied().unwrap_or_default();
            let more = result.validation_errors().count() - 1;
            let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
            return Err(ConfigError::new(
                file,
                format!(
                    "policy @id(\"{id}\") does not validate against {schema_name}: {}{more}",
                    describe(e, src)
                ),
            ));
        }
        Ok(Self {
            schema,
            policies: set,
            files,
            authorizer: cp::Authorizer::new(),
        })
    }

    /// Every rule id, sorted.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// The file that defines rule `id`.
    pub fn rule_file(&self, id: &str) -> Option<&str> {
        self.files.get(id).map(String::as_str)
    }

    /// Decides whether `principal` may do `action` with `ctx`. Never panics and never errors:
    /// anything that prevents a clean evaluation is a denial (fail closed) whose reason says why.
    pub fn authorize(&self, principal: &Principal, action: Action, ctx: &RequestContext) -> Decision {
        match self.evaluate(principal, action, ctx) {
            Ok(d) => d,
            Err(reason) => Decision {
                allowed: false,
                rule: DEFAULT_DENY.into(),
                reason: format!("{action} by {} denied: {reason} (fail closed)", principal.id),
            },
        }
    }

    fn evaluate(&self, p: &Principal, action: Action, ctx: &RequestContext) -> Result<Decision, String> {
        let uid = |ty: &str, id: &str| {
            let ty = cp::EntityTypeName::from_str(&format!("{NAMESPACE}::{ty}")).map_err(|e| e.to_string())?;
            Ok::<_, String>(cp::EntityUid::from_type_name_and_id(ty, cp::EntityId::new(id)))
        };
        let principal = uid("Principal", &p.id)?;
        let action_uid = uid("Action", action.as_str())?;
        let resource = cp::EntityUid::from_str(RESOURCE).map_err(|e| e.to_string())?;
        let s = |v: &str| cp::RestrictedExpression::new_string(v.to_owned());
        let attrs = [
            ("agency", s(&p.agency)),
            ("agency_kind", s(p.agency_kind.as_str())),
            ("level", s(p.level.as_str())),
            ("jurisdiction", s(&p.jurisdiction)),
            ("roles", cp::RestrictedExpression::new_set(p.roles.iter().map(|r| s(r.as_str())))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let entity = cp::Entity::new(principal.clone(), attrs, Default::default()).map_err(|e| e.to_string())?;
        let store = cp::Entity::new_no_attrs(resource.clone(), Default::default());
        let entities = cp::Entities::from_entities([entity, store], Some(&self.schema)).map_err(|e| e.to_string())?;
        let context = cp::Context::from_pairs([
            ("purpose".to_owned(), s(&ctx.purpose)),
            (
                "has_case_number".to_owned(),
                cp::RestrictedExpression::new_bool(ctx.has_case_number()),
            ),
            ("case_number".to_owned(), s(ctx.case_number.as_deref().unwrap_or(""))),
        ])
        .map_err(|e| e.to_string())?;
        let request = cp::Request::new(principal, action_uid, resource, context, Some(&self.schema)).map_err(|e| e.to_string())?;
        let response = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let diag = response.diagnostics();
        let who = format!(
            "{action} by {} ({}, {} {} agency, {})",
            p.id, p.agency, p.agency_kind, p.level, p.jurisdiction
        );
        let errors: Vec<String> = diag.errors().map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            let mut ids: Vec<String> = diag
                .errors()
                .map(|cp::AuthorizationError::PolicyEvaluationError(e)| e.policy_id().to_string())
                .collect();
            ids.sort();
            ids.dedup();
            return Ok(Decision {
                allowed: false,
                rule: ids.join(","),
                reason: format!("{who} denied: a rule failed to evaluate, failing closed: {}", errors.join("; ")),
            });
        }
        let mut ids: Vec<String> = diag.reason().map(ToString::to_string).collect();
        ids.sort();
        let reasons: Vec<&str> = ids
            .iter()
            .filter_map(|id| self.policies.annotation(&cp::PolicyId::new(id), "reason"))
            .collect();
        let because = if reasons.is_empty() {
            String::new()
        } else {
            format!(": {}", reasons.join("; "))
        };
        Ok(match (response.decision(), ids.is_empty()) {
            (cp::Decision::Allow, _) => Decision {
                allowed: true,
                reason: format!("{who} permitted by {}{because}", ids.join(",")),
                rule: ids.join(","),
            },
            (cp::Decision::Deny, false) => Decision {
                allowed: false,
                reason: format!("{who} forbidden by {}{because}", ids.join(",")),
                rule: ids.join(","),
            },
            (cp::Decision::Deny, true) => Decision {
                allowed: false,
                rule: DEFAULT_DENY.into(),
                reason: format!(
                    "{who} denied: no rule permits it (default deny; roles: {})",
                    p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
        })
    }

    /// For each principal: could it search at all under this policy? Each is evaluated as a
    /// search with a case number and each of [`EXAMPLE_PURPOSES`], then with an unlisted purpose,
    /// then without a case number, so a drifted policy that widens the purposes or drops the
    /// case-number rule is still caught. Returns every principal with the first allowing decision,
    /// or, when none allows, the decision for `investigation` with a case number.
    pub fn who_can_search<'a>(&self, principals: impl IntoIterator<Item = &'a Principal>) -> Vec<(Principal, Decision)> {
        const CASE: &str = "AUDIT-PROBE-0001";
        let probes: Vec<RequestContext> = EXAMPLE_PURPOSES
            .iter()
            .chain(&["unlisted-purpose", ""])
            .flat_map(|p| [RequestContext::search(*p, Some(CASE)), RequestContext::search(*p, None)])
            .collect();
        principals
            .into_iter()
            .map(|p| {
                let first = self.authorize(p, Action::Search, &probes[0]);
                let decision = probes[1..]
                    .iter()
                    .filter(|_| !first.allowed)
                    .map(|ctx| (ctx, self.authorize(p, Action::Search, ctx)))
                    .find(|(_, d)| d.allowed)
                    .map(|(ctx, mut d)| {
                        d.reason.push_str(&format!(
                            " (probe: purpose '{}', {})",
                            ctx.purpose,
                            if ctx.has_case_number() {
                                "with a case number"
                            } else {
                                "no case number"
                            }
                        ));
                        d
                    })
                    .unwrap_or(first);
                (p.clone(), decision)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::principals::{AgencyKind, Registry};

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
    }

    fn shipped() -> (AccessPolicy, Registry) {
        (AccessPolicy::load(&dir()).unwrap(), Registry::load(&dir()).unwrap())
    }

    fn search(purpose: &str, case: Option<&str>) -> RequestContext {
        RequestContext::search(purpose, case)
    }

    #[test]
    fn policy_is_shareable_across_tasks() {
        fn check<T: Send + Sync>() {}
        check::<AccessPolicy>();
    }

    #[test]
    fn california_public_agencies_may_search_with_case_and_allowed_purpose() {
        let (ap, reg) = shipped();
        for id in ["city-pd", "county-so", "state-patrol"] {
            for purpose in EXAMPLE_PURPOSES {
                let d = ap.authorize(reg.get(id).unwrap(), Action::Search, &search(purpose, Some("24-001234")));
                assert!(d.allowed, "{id} {purpose}: {d:?}");
                assert_eq!(d.rule, "search-ca-public-agency");
            }
        }
    }

    #[test]
    fn out_of_state_and_federal_agencies_are_denied_by_named_rules() {
        let (ap, reg) = shipped();
        let ok = search("investigation", Some("24-001234"));
        let d = ap.authorize(reg.get("nv-city-pd").unwrap(), Action::Search, &ok);
        assert!(!d.allowed);
        assert_eq!(d.rule, "forbid-search-out-of-state");
        assert!(d.reason.contains("nv-city-pd") && d.reason.contains("NV"), "{}", d.reason);
        let d = ap.authorize(reg.get("federal-agency").unwrap(), Action::Search, &ok);
        assert!(!d.allowed);
        // A federal agency is out of state too; both rules determine and both are named.
        assert_eq!(d.rule, "forbid-search-federal,forbid-search-out-of-state");
        assert_eq!(
            d.rules().collect::<Vec<_>>(),
            ["forbid-search-federal", "forbid-search-out-of-state"]
        );
    }

    #[test]
    fn a_search_needs_a_case_number_and_an_allowed_purpose() {
        let (ap, reg) = shipped();
        let city = reg.get("city-pd").unwrap();
        for case in [None, Some(""), Some("   ")] {
            let d = ap.authorize(city, Action::Search, &search("investigation", case));
            assert!(!d.allowed);
            assert_eq!(d.rule, "forbid-search-without-case-number", "{case:?}");
        }
        for purpose in ["curiosity", "", "Investigation", "immigration-enforcement"] {
            let d = ap.authorize(city, Action::Search, &search(purpose, Some("24-1")));
            assert!(!d.allowed);
            assert_eq!(d.rule, "forbid-search-purpose-not-allowed", "{purpose}");
        }
        let d = ap.authorize(city, Action::Search, &search("curiosity", None));
        assert_eq!(d.rule, "forbid-search-purpose-not-allowed,forbid-search-without-case-number");
    }

    #[test]
    fn roles_and_agency_kind_limit_search() {
        let (ap, reg) = shipped();
        let ok = search("investigation", Some("24-001234"));
        for id in ["ingest-gateway", "auditor", "admin"] {
            let d = ap.authorize(reg.get(id).unwrap(), Action::Search, &ok);
            assert!(!d.allowed, "{id}");
            assert_eq!(d.rule, DEFAULT_DENY, "{id}");
        }
        let mut private = reg.get("city-pd").unwrap().clone();
        private.id = "ca-private-hoa".into();
        private.agency_kind = AgencyKind::Private;
        let d = ap.authorize(&private, Action::Search, &ok);
        assert!(!d.allowed);
        assert_eq!(d.rule, "forbid-search-private-entity");
    }

    #[test]
    fn ingest_audit_and_admin_need_their_roles() {
        let (ap, reg) = shipped();
        let none = RequestContext::none();
        let allowed = |id: &str, a: Action| ap.authorize(reg.get(id).unwrap(), a, &none).allowed;
        assert!(allowed("ingest-gateway", Action::Ingest));
        assert!(!allowed("city-pd", Action::Ingest));
        assert!(allowed("auditor", Action::Audit));
        assert!(!allowed("auditor", Action::Admin));
        assert!(!allowed("city-pd", Action::Audit));
        assert!(allowed("admin", Action::Admin));
        assert!(!allowed("ingest-gateway", Action::Audit));
        assert_eq!(
            ap.authorize(reg.get("auditor").unwrap(), Action::Audit, &none).rule,
            "audit-by-audit-role"
        );
    }

    #[test]
    fn who_can_search_lists_exactly_the_california_agencies() {
        let (ap, reg) = shipped();
        let can: Vec<String> = ap
            .who_can_search(reg.iter())
            .into_iter()
            .filter(|(_, d)| d.allowed)
            .map(|(p, _)| p.id)
            .collect();
        assert_eq!(can, ["city-pd", "county-so", "state-patrol"]);
        let all = ap.who_can_search(reg.iter());
        assert_eq!(all.len(), reg.len());
        let nv = all.iter().find(|(p, _)| p.id == "nv-city-pd").unwrap();
        assert_eq!(nv.1.rule, "forbid-search-out-of-state");
    }

    #[test]
    fn who_can_search_catches_a_policy_that_drops_the_purpose_and_case_rules() {
        let schema = std::fs::read_to_string(dir().join(SCHEMA_FILE)).unwrap();
        let loose = r#"@id("anyone-in-ca") permit (principal, action == Lethe::Action::"search", resource) when { principal.jurisdiction == "CA" && context.purpose == "fishing" && !context.has_case_number };"#;
        let ap = AccessPolicy::from_sources(("schema", &schema), &[("loose.cedar", loose)]).unwrap();
        let reg = Registry::load(&dir()).unwrap();
        // Neither a listed purpose nor a case number: the probes do not find "fishing"...
        assert!(ap.who_can_search(reg.iter()).iter().all(|(_, d)| !d.allowed));
        // ...but a rule that allows any purpose without a case number is caught.
        let loose = r#"@id("anyone") permit (principal, action == Lethe::Action::"search", resource);"#;
        let ap = AccessPolicy::from_sources(("schema", &schema), &[("loose.cedar", loose)]).unwrap();
        let all = ap.who_can_search(reg.iter());
        assert!(all.iter().all(|(_, d)| d.allowed && d.rule == "anyone"));
    }

    #[test]
    fn a_policy_that_does_not_validate_names_the_file_and_the_problem() {
        let schema = std::fs::read_to_string(dir().join(SCHEMA_FILE)).unwrap();
        let load = |text: &str| AccessPolicy::from_sources(("policies/schema.cedarschema", &schema), &[("policies/access.cedar", text)]);
        // An attribute the schema does not have.
        let e =
            load("@id(\"bad\")\npermit (principal, action == Lethe::Action::\"search\", resource)\nwhen { principal.state == \"CA\" };")
                .unwrap_err();
        assert_eq!(e.setting, "policies/access.cedar");
        assert!(
            e.reason.contains("bad") && e.reason.contains("state") && e.reason.contains("line 3"),
            "{e}"
        );
        // An action the schema does not have.
        let e = load("@id(\"x\") permit (principal, action == Lethe::Action::\"delete\", resource);").unwrap_err();
        assert_eq!(e.setting, "policies/access.cedar");
        assert!(e.reason.contains("delete"), "{e}");
        // A syntax error.
        let e = load("@id(\"x\") permit (principal, action, resource) when { ;").unwrap_err();
        assert_eq!(e.setting, "policies/access.cedar");
        // No @id, a duplicate @id, a bad schema.
        let e = load("permit (principal, action, resource);").unwrap_err();
        assert!(e.reason.contains("@id"), "{e}");
        let e = load("@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);").unwrap_err();
        assert!(e.reason.contains("unique"), "{e}");
        let e = AccessPolicy::from_sources(("policies/schema.cedarschema", "namespace {"), &[("p", "")]).unwrap_err();
        assert_eq!(e.setting, "policies/schema.cedarschema");
    }

    #[test]
    fn load_reports_the_file_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(dir().join(SCHEMA_FILE), tmp.path().join(SCHEMA_FILE)).unwrap();
        std::fs::copy(dir().join(POLICY_FILE), tmp.path().join(POLICY_FILE)).unwrap();
        AccessPolicy::load(tmp.path()).unwrap();
        std::fs::write(
            tmp.path().join("extra.cedar"),
            "@id(\"x\") permit (principal, action, resource) when { context.nope };",
        )
        .unwrap();
        let e = AccessPolicy::load(tmp.path()).unwrap_err();
        assert_eq!(e.setting, tmp.path().join("extra.cedar").display().to_string());
        assert!(e.to_string().contains("extra.cedar"), "{e}");
    }
}
