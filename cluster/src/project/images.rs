//! Images, without a registry: every image a project's pods use must be in the local Docker Engine, or
//! be buildable from the service's `build:` section. Both are checked before the cluster is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;

use super::{BuildSpec, Error, ProjectSpec, Result};

/// Connects to the local Docker Engine (its socket, or `DOCKER_HOST`).
pub async fn docker() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults()
        .map_err(|source| Error::Docker { what: "connecting to the Docker Engine".into(), source })?;
    docker.negotiate_version().await.map_err(|source| Error::Docker {
        what: "the Docker Engine does not answer (start dockerd, or set DOCKER_HOST)".into(),
        source,
    })
}

/// Whether the engine has the image.
pub async fn present(docker: &Docker, image: &str) -> Result<bool> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
        Err(source) => Err(Error::Docker { what: format!("inspecting image {image}"), source }),
    }
}

/// Every (service, image) the project's pod templates use, init containers included.
pub fn images_by_service(project: &ProjectSpec) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for obj in &project.objects {
        if !super::objects::is_workload(super::objects::kind(obj)) {
            continue;
        }
        let service = obj["metadata"]["labels"][super::SERVICE_LABEL]
            .as_str()
            .unwrap_or_else(|| super::objects::name(obj))
            .to_owned();
        let spec = &obj["spec"]["template"]["spec"];
        for list in ["initContainers", "containers"] {
            for c in spec[list].as_array().into_iter().flatten() {
                if let Some(image) = c["image"].as_str() {
                    let images = out.entry(service.clone()).or_default();
                    if !images.iter().any(|i| i == image) {
                        images.push(image.to_owned());
                    }
                }
            }
        }
    }
    out
}

/// What must be built: a service's build when its image is missing, or every build with `force`.
/// Fails, naming the service and the image, when an image is missing and nothing can build it.
pub async fn plan(docker: &Docker, project: &ProjectSpec, force: bool) -> Result<Vec<BuildSpec>> {
    let builds: HashMap<&str, &BuildSpec> =
        project.services.iter().filter_map(|s| Some((s.name.as_str(), s.build.as_ref()?))).collect();
    let mut to_build = Vec::new();
    let mut missing = Vec::new();
    for (service, images) in images_by_service(project) {
        for image in images {
            let build = builds.get(service.as_str()).filter(|b| b.image == image);
            if let Some(build) = build {
                if force || !present(docker, &image).await? {
                    to_build.push((*build).clone());
                }
            } else if !present(docker, &image).await? {
                missing.push(format!("service {service:?} uses image {image:?}"));
            }
        }
    }
    if !missing.is_empty() {
        return Err(Error::Preflight(format!(
            "{} not on this machine and there is no registry to pull from: {}; hint: build it (a `build:` \
             section, or `docker build -t IMAGE`), or `docker load` it; nothing was changed",
            if missing.len() == 1 { "an image is" } else { "images are" },
            missing.join(", ")
        )));
    }
    Ok(to_build)
}

/// Builds one image with the Docker Engine: the context sent as a tar, with the Dockerfile, build
/// arguments and target of the compose file. Returns the build's last lines on failure.
pub async fn build(docker: &Docker, spec: &BuildSpec) -> Result<()> {
    let context = spec.context.clone();
    let tar = tokio::task::spawn_blocking(move || tar_context(&context))
        .await
        .map_err(|e| Error::Preflight(format!("building {}: {e}", spec.image)))?
        .map_err(|e| Error::Preflight(format!("reading build context {}: {e}", spec.context.display())))?;
    let args: HashMap<String, String> = spec.args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut options = BuildImageOptionsBuilder::new()
        .dockerfile(spec.dockerfile.as_deref().unwrap_or("Dockerfile"))
        .t(&spec.image)
        .rm(true)
        .buildargs(&args);
    if let Some(target) = &spec.target {
        options = options.target(target);
    }
    let mut stream = docker.build_image(options.build(), None, Some(bollard::body_full(tar.into())));
    let mut tail: Vec<String> = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(line) = info.stream.as_deref().map(str::trim_end).filter(|l| !l.is_empty()) {
                    tail.push(line.to_owned());
                    if tail.len() > 10 {
                        tail.remove(0);
                    }
                }
                if let Some(err) = info.error_detail.and_then(|d| d.message) {
                    return Err(Error::Preflight(format!(
                        "building image {:?} failed: {err}\n{}\nnothing was changed in the cluster",
                        spec.image,
                        tail.join("\n")
                    )));
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                return Err(Error::Preflight(format!(
                    "building image {:?} failed: {error}\n{}\nnothing was changed in the cluster",
                    spec.image,
                    tail.join("\n")
                )));
            }
            Err(source) => return Err(Error::Docker { what: format!("building image {}", spec.image), source }),
        }
    }
    Ok(())
}

/// The build context as an uncompressed tar, skipping what `.dockerignore` lists by exact path or
/// simple `*` suffix pattern (the common cases: `.git`, `node_modules`, `*.pyc`).
fn tar_context(dir: &Path) -> std::io::Result<Vec<u8>> {
    let ignore: Vec<String> = std::fs::read_to_string(dir.join(".dockerignore"))
        .map(|t| t.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect())
        .unwrap_or_default();
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&current)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
            if ignored(&ignore, &rel) {
                continue;
            }
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                builder.append_dir(&rel, &path)?;
                stack.push(path);
            } else {
                builder.append_path_with_name(&path, &rel)?;
            }
        }
    }
    builder.into_inner()
}

fn ignored(patterns: &[String], rel: &str) -> bool {
    patterns.iter().any(|p| {
        let p = p.trim_start_matches("./").trim_end_matches('/');
        match p.strip_prefix('*') {
            Some(suffix) => rel.ends_with(suffix),
            None => rel == p || rel.starts_with(&format!("{p}/")),
        }
    })
}

/// The annotation in which an agent publishes its Docker Engine's ID: nodes whose engine is this
/// machine's already have every image `up` checked or built here.
pub const DOCKER_ID_ANNOTATION: &str = "flotilla.dev/docker-engine-id";

/// What tells two engines apart: the engine ID alone does not (engines sharing `/etc/docker` share it),
/// with its data root it does.
pub fn engine_identity(info: &bollard::models::SystemInfo) -> String {
    format!("{} {}", info.id.as_deref().unwrap_or_default(), info.docker_root_dir.as_deref().unwrap_or_default())
}

/// Sends the project's images to the server (`/v1-flotilla/images`) when some node runs on another
/// Docker Engine than this machine's; the server feeds each image to the nodes whose pods need it.
/// Images the server already has (same ID) are not sent again.
pub async fn ship(
    client: &kube::Client,
    docker: &Docker,
    project: &ProjectSpec,
    progress: &dyn super::Progress,
) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let info =
        docker.info().await.map_err(|source| Error::Docker { what: "reading the engine's ID".into(), source })?;
    let local = engine_identity(&info);
    let nodes = kube::Api::<Node>::all(client.clone())
        .list(&Default::default())
        .await
        .map_err(super::api_err("listing nodes"))?;
    let elsewhere = nodes.items.iter().any(|n| {
        n.metadata.annotations.as_ref().and_then(|a| a.get(DOCKER_ID_ANNOTATION)).is_none_or(|id| *id != local)
    });
    if !elsewhere {
        return Ok(());
    }
    let stored = list_stored(client).await?;
    let mut images: Vec<String> = images_by_service(project).into_values().flatten().collect();
    images.sort();
    images.dedup();
    for image in images {
        let id = docker
            .inspect_image(&image)
            .await
            .map_err(|source| Error::Docker { what: format!("inspecting image {image}"), source })?
            .id
            .unwrap_or_default();
        if stored.iter().any(|s| s.id == id && s.tags.iter().any(|t| *t == crate::images::normalize(&image))) {
            continue;
        }
        let what = format!("Image {image}");
        progress.step(&what, super::Step::Shipping);
        let mut archive = Vec::new();
        let mut stream = std::pin::pin!(docker.export_image(&image));
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| Error::Docker { what: format!("saving image {image}"), source })?;
            archive.extend_from_slice(&chunk);
        }
        upload(client, archive).await?;
        progress.step(&what, super::Step::Shipped);
    }
    Ok(())
}

/// What the server's image store holds.
pub async fn list_stored(client: &kube::Client) -> Result<Vec<crate::images::StoredImage>> {
    let request = http::Request::get("/v1-flotilla/images").body(Vec::new()).expect("a valid request");
    let answer: serde_json::Value =
        client.request(request).await.map_err(super::api_err("listing the server's images"))?;
    Ok(serde_json::from_value(answer["images"].clone()).unwrap_or_default())
}

/// Uploads a `docker save` archive to the server; returns the images it held.
pub async fn upload(client: &kube::Client, archive: Vec<u8>) -> Result<Vec<crate::images::StoredImage>> {
    let request = http::Request::post("/v1-flotilla/images")
        .header("content-type", "application/x-tar")
        .body(archive)
        .expect("a valid request");
    let answer: serde_json::Value = client.request(request).await.map_err(super::api_err("an image upload"))?;
    Ok(serde_json::from_value(answer["images"].clone()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns() {
        let p = vec![".git".to_owned(), "*.pyc".to_owned(), "build/".to_owned()];
        assert!(ignored(&p, ".git/HEAD"));
        assert!(ignored(&p, "app/x.pyc"));
        assert!(ignored(&p, "build"));
        assert!(!ignored(&p, "app.py"));
    }

    #[test]
    fn context_tar_lists_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/app.py"), "print(1)\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(dir.path().join("x.log"), "no").unwrap();
        let bytes = tar_context(dir.path()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> =
            archive.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect();
        assert!(names.contains(&"Dockerfile".to_owned()));
        assert!(names.contains(&"src/app.py".to_owned()));
        assert!(!names.iter().any(|n| n.ends_with(".log")));
    }
}
