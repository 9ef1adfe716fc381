//! API errors as Kubernetes `metav1.Status` responses, with kube-apiserver's codes, reasons and wording
//! (clients match on them: kube-rs on `reason`, kubectl prints `message`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::StoreError;

/// A failed request: becomes a `Status` object with `code` as the HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// Boxed to keep `Result<_, ApiError>` small.
    pub details: Option<Box<Value>>,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Self { code, reason: reason.to_string(), message: message.into(), details: None }
    }

    fn with_details(mut self, name: &str, group: &str, kind: &str) -> Self {
        let mut details = json!({ "name": name, "kind": kind });
        if !group.is_empty() {
            details["group"] = json!(group);
        }
        self.details = Some(Box::new(details));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {}", message.into()))
    }

    /// `pods "web" not found` (the resource is the plural, qualified with the group outside core).
    pub fn not_found(qualified_plural: &str, name: &str, group: &str, plural: &str) -> Self {
        Self::new(404, "NotFound", format!("{qualified_plural} \"{name}\" not found")).with_details(name, group, plural)
    }

    pub fn already_exists(qualified_plural: &str, name: &str, group: &str, plural: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{qualified_plural} \"{name}\" already exists"))
            .with_details(name, group, plural)
    }

    /// The optimistic-concurrency conflict, worded exactly as kube-apiserver words it.
    pub fn conflict(qualified_plural: &str, name: &str, group: &str, plural: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified_plural} \"{name}\": the object has been modified; please \
                 apply your changes to the latest version and try again"
            ),
        )
        .with_details(name, group, plural)
    }

    pub fn conflict_message(qualified_plural: &str, name: &str, message: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {qualified_plural} \"{name}\": {message}"))
    }

    /// 422 Invalid: `Pod "x" is invalid: <field>: <problem>`, with the one cause in `details.causes`
    /// (kubectl prints `The Pod "x" is invalid: ...` from them; without them it says "The request is
    /// invalid"). Several causes: `validation::invalid`.
    pub fn invalid(kind: &str, name: &str, causes: &str) -> Self {
        let mut err = Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {causes}"));
        let (field, message) = causes.split_once(": ").unwrap_or(("", causes));
        let reason = match message.split(':').next().unwrap_or_default() {
            "Required value" => "FieldValueRequired",
            "Unsupported value" => "FieldValueNotSupported",
            "Forbidden" => "FieldValueForbidden",
            "Duplicate value" => "FieldValueDuplicate",
            _ => "FieldValueInvalid",
        };
        err.details = Some(Box::new(json!({
            "name": name,
            "kind": kind,
            "causes": [{"reason": reason, "message": message, "field": field}],
        })));
        err
    }

    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// A watch or list from a revision that compaction has removed.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The Status object for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = (**details).clone();
        }
        status
    }

    /// Store failures that are not about a particular object.
    pub fn from_store(err: StoreError) -> Self {
        match err {
            StoreError::Compacted { floor } => {
                Self::expired(format!("too old resource version (the oldest retained is {floor})"))
            }
            other => Self::internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.status())
    }
}

/// A JSON response with the given status.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (code, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub type ApiResult<T> = Result<T, ApiError>;
