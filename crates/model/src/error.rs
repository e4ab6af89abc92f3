use std::fmt;

/// One thing wrong with an event, located by a JSON pointer into the event (RFC 6901).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    /// JSON pointer into the submitted event, e.g. `/data/title`; empty for the whole event.
    pub pointer: String,
    /// What is wrong there.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pointer.is_empty() {
            write!(f, "(event): {}", self.detail)
        } else {
            write!(f, "{}: {}", self.pointer, self.detail)
        }
    }
}

/// One constraint of the application profile (DCAT-AP / HealthDCAT-AP / EUCAIM SHACL shapes)
/// that the dataset, as the event would leave it, does not satisfy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProfileViolation {
    /// The RDF node that fails, e.g. the dataset's IRI or its publisher's.
    pub focus_node: String,
    /// The property path of the constraint, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The value that fails, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub message: String,
    /// The SHACL constraint component, e.g. `sh:MinCountConstraintComponent`.
    pub constraint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_shape: Option<String>,
    /// Where in the event's data the property lives, when it maps to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

impl fmt::Display for ProfileViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.focus_node)?;
        if let Some(path) = &self.path {
            write!(f, " {path}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why an event was refused before it reached the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The bytes are not an event of a known type that satisfies its schema (HTTP 400).
    Invalid(Vec<Violation>),
    /// The event is well formed but contradicts the aggregate's lifecycle or a concurrent change
    /// (HTTP 409).
    Conflict { detail: String, pointer: Option<String> },
    /// The sender may not send this event (HTTP 403), e.g. a provider writing for another.
    Forbidden(String),
    /// The event is valid, but the dataset it would leave violates the application profile's
    /// SHACL shapes (HTTP 422).
    Profile(Vec<ProfileViolation>),
}

impl Rejection {
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Rejection::Invalid(vec![Violation { pointer: pointer.into(), detail: detail.into() }])
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Rejection::Conflict { detail: detail.into(), pointer: None }
    }

    pub fn conflict_at(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        Rejection::Conflict { detail: detail.into(), pointer: Some(pointer.into()) }
    }
}

/// Writes `items` separated by "; ".
fn joined<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            write!(f, "; ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid(v) => {
                write!(f, "invalid event: ")?;
                joined(f, v)
            }
            Rejection::Conflict { detail, .. } => write!(f, "conflict: {detail}"),
            Rejection::Forbidden(d) => write!(f, "forbidden: {d}"),
            Rejection::Profile(v) => {
                write!(f, "the dataset would not conform to the application profile: ")?;
                joined(f, v)
            }
        }
    }
}

impl std::error::Error for Rejection {}
