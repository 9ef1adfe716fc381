//! Compose model to Kubernetes objects. Being written.
