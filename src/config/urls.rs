//! Which database engine a database URL names, and what a Stripe API base URL must be: facts
//! about settings that the store and the Stripe client act on.

/// The database engines tollgate runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the zero-setup default.
    Sqlite,
    /// A PostgreSQL server: production, several instances.
    Postgres,
}

impl Backend {
    /// Picks the backend a database URL names.
    pub fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" => Some(Self::Postgres),
            _ => None,
        }
    }

    /// The backend's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Why `api_base` cannot be the Stripe API base: it must be an http(s) URL with no query or
/// fragment.
pub fn check_stripe_api_base(api_base: &url::Url) -> Result<(), String> {
    if !matches!(api_base.scheme(), "https" | "http") || api_base.cannot_be_a_base() {
        return Err(format!(
            "the Stripe API base must be an http(s) URL, not {api_base}"
        ));
    }
    if api_base.query().is_some() || api_base.fragment().is_some() {
        return Err("the Stripe API base must have no query or fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://tollgate.db"),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://u@h/db"), None);
        assert_eq!(Backend::from_url("tollgate.db"), None);
    }
}
