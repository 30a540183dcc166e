//! What a stage's settings check finds: every problem, each with the key it is about, so the
//! loader can point at the line of each ([`crate::registry::StageKind::validate`]).

use std::fmt;

/// A setting a stage refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    /// The key path inside the stage's table (`max_bytes`, `aws.region`); `None` when the
    /// problem is the table as a whole (keys that contradict each other).
    pub key: Option<String>,
    /// What is wrong, naming the key in backticks.
    pub message: String,
}

/// The problems a check found, in the order it found them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// Records a problem with `key`.
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: Some(key.to_owned()),
            message: message.into(),
        });
    }

    /// Records a problem of the table as a whole.
    pub fn add_general(&mut self, message: impl Into<String>) {
        self.0.push(Problem {
            key: None,
            message: message.into(),
        });
    }

    /// Records `result`'s error under `key` as "`` `key`: error ``", and gives its value.
    pub fn check<T, E: fmt::Display>(&mut self, key: &str, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(key, format!("`{key}`: {e}"));
                None
            }
        }
    }

    /// Records `result`'s error under `key` as it is (its message already names the key).
    pub fn check_as_is<T, E: fmt::Display>(
        &mut self,
        key: &str,
        result: Result<T, E>,
    ) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(key, e.to_string());
                None
            }
        }
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems found.
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    /// Runs `check` and gives its first problem's message, for code that needs the settings
    /// valid before it goes on (a stage's `build`).
    pub fn first(check: impl FnOnce(&mut Problems)) -> Result<(), String> {
        let mut problems = Problems::default();
        check(&mut problems);
        match problems.0.into_iter().next() {
            Some(p) => Err(p.message),
            None => Ok(()),
        }
    }

    /// Runs `check` and gives every problem.
    pub fn all(check: impl FnOnce(&mut Problems)) -> Vec<Problem> {
        let mut problems = Problems::default();
        check(&mut problems);
        problems.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_keep_their_keys_and_order_and_first_gives_the_first() {
        let found = Problems::all(|p| {
            p.add("limit", "`limit` must be at least 1");
            assert_eq!(p.check("url", "x".parse::<u8>()), None);
            assert_eq!(p.check("n", "7".parse::<u8>()), Some(7));
            p.add_general("give `a` or `b`, not both");
        });
        let keys: Vec<_> = found.iter().map(|p| p.key.as_deref()).collect();
        assert_eq!(keys, [Some("limit"), Some("url"), None]);
        assert_eq!(found[1].message, "`url`: invalid digit found in string");
        assert_eq!(
            Problems::first(|p| {
                p.add("a", "first");
                p.add("b", "second");
            }),
            Err("first".to_owned())
        );
        assert_eq!(Problems::first(|_| {}), Ok(()));
    }
}
