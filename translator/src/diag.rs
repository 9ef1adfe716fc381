//! Diagnostics: the warnings and errors the translator reports to people.
//!
//! Every message names the compose key it is about and, where the loader knows it, the file, line and
//! column; it says why and what to do instead. The translator never prints: it returns diagnostics and
//! the binary decides how to show them (`--strict` turns warnings into errors there).

use std::fmt;

use crate::source::Location;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Warning,
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Option<Location>,
    /// The compose key the message is about, as a user would write it: `services.web.ports`, `build`.
    pub key: String,
    /// Why, in lowercase and without a trailing period.
    pub message: String,
    /// What to do instead, if there is something to do.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn warning(location: Option<Location>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, location, key: key.into(), message: message.into(), hint: None }
    }

    pub fn error(location: Option<Location>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, location, key: key.into(), message: message.into(), hint: None }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// `warning: compose.yaml:3:5: services.web.ports: why; hint: what to do`
impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{level}: ")?;
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "; hint: {hint}")?;
        }
        Ok(())
    }
}

/// One or more errors that stopped loading or conversion. Nothing was produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl From<Diagnostic> for Errors {
    fn from(d: Diagnostic) -> Self {
        Errors(vec![d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_key_and_hint() {
        let loc = Location { file: "compose.yaml".into(), line: 7, column: 9, end_line: 7 };
        let d = Diagnostic::warning(Some(loc), "services.web.ulimits", "kubernetes has no per-container ulimits")
            .with_hint("set them in the image or the node's container runtime");
        assert_eq!(
            d.to_string(),
            "warning: compose.yaml:7:9: services.web.ulimits: kubernetes has no per-container ulimits; hint: set them in the image or the node's container runtime"
        );
    }
}
