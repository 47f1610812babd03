//! Policy: the files in `policies/` — retention, principals, access rules.

pub mod cedar;
pub mod principals;
pub mod retention;

pub use cedar::{AccessPolicy, Action, Decision, RequestContext};
pub use principals::{AgencyKind, Level, Principal, Registry, Role};
pub use retention::Retention;
