//! Policy: the files in `policies/` — retention, principals, access rules.

pub mod cedar;
pub mod principals;
pub mod retention;
pub mod tokens;

pub use cedar::{AccessPolicy, Action, Decision, RequestContext};
pub use principals::{AgencyKind, Level, Principal, Registry, Role};
pub use retention::Retention;
pub use tokens::{ensure_dev_tokens, token_for, Authenticator, DevTokens, Token, TokenError};
