//! The agent's end of image shipping (there is no registry): the server's image feed asks
//! `GET /images/present?id=sha256:...` and, when the node lacks the image, streams a `docker save` archive
//! into `POST /images/load`, which goes straight into the node's Docker (`docker load`). A completed load
//! bumps [`Ctx::images_loaded`], so pods waiting on a missing image retry at once instead of after
//! their back-off.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::Ctx;

#[derive(serde::Deserialize)]
pub struct Present {
    id: String,
}

/// 200 when the node's Docker has image `id`, else 404.
pub async fn present(State(ctx): State<Arc<Ctx>>, Query(q): Query<Present>) -> Response {
    match ctx.docker.inspect_image(&q.id).await {
        Ok(_) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Loads the archive in the body into the node's Docker.
pub async fn load(State(ctx): State<Arc<Ctx>>, body: Body) -> Response {
    let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
    let stream = body.into_data_stream();
    let mut progress = std::pin::pin!(ctx.docker.import_image_stream(options, stream, None));
    let mut loaded = Vec::new();
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(error) = info.error_detail.and_then(|d| d.message) {
                    return (StatusCode::BAD_REQUEST, format!("docker load: {error}")).into_response();
                }
                if let Some(stream) = info.stream {
                    loaded.push(stream.trim().to_string());
                }
            }
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("docker load: {e}")).into_response(),
        }
    }
    tracing::info!(images = ?loaded, "images loaded from the server");
    ctx.images_loaded.send_modify(|n| *n += 1);
    (StatusCode::OK, loaded.join("\n")).into_response()
}
