//! The one type every room agrees on: a user's name, compared case-insensitively.

use std::fmt;
use std::sync::Arc;

/// A username as the upstream knows it, folded to lower case so that
/// `Alice` and `alice` are the same user (Atlassian apps compare them so).
/// Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Arc<str>);

impl UserId {
    /// Folds `name` to lower case. Leading and trailing white space is trimmed.
    pub fn new(name: &str) -> Self {
        let name = name.trim();
        if name.chars().any(|c| c.is_uppercase()) {
            UserId(Arc::from(name.to_lowercase()))
        } else {
            UserId(Arc::from(name))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        UserId::new(s)
    }
}

impl serde::Serialize for UserId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(UserId::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_compare_case_insensitively() {
        assert_eq!(UserId::new("Alice"), UserId::new("alice"));
        assert_eq!(UserId::new(" BOB "), UserId::new("bob"));
        assert_ne!(UserId::new("alice"), UserId::new("alicia"));
        assert_eq!(UserId::new("ÄRGER").as_str(), "ärger");
    }
}
