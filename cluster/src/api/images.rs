//! `/v1-flotilla/images`: where `flotilla image load` and `flotilla up` put images, since there is no
//! registry. `POST` takes a `docker save` archive as the body, streamed to disk (never held in memory),
//! and answers the images it held; `GET` lists what the store has. Administrators only: a node agent
//! (`system:node:*`) gets 403. The image feed ([`crate::images::feed`]) takes it from there.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::AppState;
use super::auth::UserInfo;
use super::errors::{ApiError, json_response};

fn store(state: &AppState, req: &Request) -> Result<Arc<crate::images::ImageStore>, ApiError> {
    if let Some(node) = req.extensions().get::<UserInfo>().and_then(|u| u.node_name()) {
        return Err(ApiError::new(403, "Forbidden", format!("node \"{node}\" cannot upload or list images")));
    }
    state.images.clone().ok_or_else(|| ApiError::new(404, "NotFound", "this server keeps no images"))
}

/// `GET /v1-flotilla/images`: `{"images": [{"id", "tags"}]}`.
pub async fn list(State(state): State<Arc<AppState>>, req: Request) -> Response {
    match store(&state, &req) {
        Ok(store) => json_response(StatusCode::OK, &json!({"images": store.list()})),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1-flotilla/images` with a `docker save` archive: `{"images": [...]}` of what it held.
pub async fn upload(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let store = match store(&state, &req) {
        Ok(store) => store,
        Err(e) => return e.into_response(),
    };
    let path = store.upload_path();
    let received = async {
        let mut file = tokio::fs::File::create(&path).await?;
        let mut body = req.into_body().into_data_stream();
        while let Some(chunk) = body.next().await {
            file.write_all(&chunk.map_err(std::io::Error::other)?).await?;
        }
        file.sync_all().await
    };
    if let Err(e) = received.await {
        let _ = tokio::fs::remove_file(&path).await;
        return ApiError::internal(format!("receiving the image archive: {e}")).into_response();
    }
    let added = tokio::task::spawn_blocking(move || store.add(&path)).await;
    match added {
        Ok(Ok(images)) => json_response(StatusCode::CREATED, &json!({"images": images})),
        Ok(Err(crate::images::ImageError::NotAnArchive(why))) => {
            ApiError::bad_request(format!("not a docker save archive: {why}")).into_response()
        }
        Ok(Err(e)) => ApiError::internal(e.to_string()).into_response(),
        Err(e) => ApiError::internal(format!("storing the image: {e}")).into_response(),
    }
}
