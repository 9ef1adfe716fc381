//! Images without a registry: the server keeps `docker save` archives (uploaded by `flotilla image load`
//! and by `flotilla up` for what it built) in `<data-dir>/images/`, and [`feed`] streams them to the
//! agents of the nodes whose pods need them (the agent's `POST /images/load`).
//!
//! One archive per image, named by its image ID (the config digest); `index.json` maps each tag to the
//! ID it last had, so uploading a rebuilt `app:1` replaces what `app:1` means. The store is the server's
//! own: in a cluster of several servers (shared etcd), each feeds what was uploaded to it.

pub mod feed;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why an archive was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("not a docker save archive: {0}; hint: create it with `docker save -o image.tar NAME`")]
    NotAnArchive(String),
    #[error("cannot store the image in {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// One image of an uploaded archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    /// `sha256:<hex>`, as `docker images --no-trunc` shows it.
    pub id: String,
    pub tags: Vec<String>,
}

/// The `manifest.json` entry of a `docker save` archive.
#[derive(Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
}

/// The images an archive holds, from its `manifest.json`.
pub fn read_manifest(archive: &Path) -> Result<Vec<StoredImage>, ImageError> {
    let io = |source| ImageError::Io { path: archive.to_path_buf(), source };
    let file = std::fs::File::open(archive).map_err(io)?;
    let mut tar = tar::Archive::new(file);
    let entries = tar.entries().map_err(|e| ImageError::NotAnArchive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ImageError::NotAnArchive(e.to_string()))?;
        let is_manifest = entry.path().is_ok_and(|p| p.as_os_str() == "manifest.json");
        if !is_manifest {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).map_err(|e| ImageError::NotAnArchive(e.to_string()))?;
        return parse_manifest(&text);
    }
    Err(ImageError::NotAnArchive("no manifest.json".into()))
}

fn parse_manifest(text: &str) -> Result<Vec<StoredImage>, ImageError> {
    let entries: Vec<ManifestEntry> =
        serde_json::from_str(text).map_err(|e| ImageError::NotAnArchive(format!("manifest.json: {e}")))?;
    let images: Vec<StoredImage> = entries
        .into_iter()
        .map(|e| {
            // Docker 20.10 names the config `<hex>.json`; OCI-layout archives `blobs/sha256/<hex>`.
            let file = e.config.rsplit('/').next().unwrap_or_default();
            let hex = file.strip_suffix(".json").unwrap_or(file);
            StoredImage { id: format!("sha256:{hex}"), tags: e.repo_tags.unwrap_or_default() }
        })
        .filter(|i| i.id.len() > "sha256:".len())
        .collect();
    if images.is_empty() {
        return Err(ImageError::NotAnArchive("manifest.json lists no image".into()));
    }
    Ok(images)
}

/// `busybox` means `busybox:latest`, as Docker reads it.
pub fn normalize(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') { reference.to_string() } else { format!("{reference}:latest") }
}

/// The server's image archives.
#[derive(Debug)]
pub struct ImageStore {
    dir: PathBuf,
    /// tag -> image ID.
    index: std::sync::Mutex<BTreeMap<String, String>>,
}

impl ImageStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<ImageStore, ImageError> {
        std::fs::create_dir_all(dir).map_err(|source| ImageError::Io { path: dir.to_path_buf(), source })?;
        let index = std::fs::read_to_string(dir.join("index.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Ok(ImageStore { dir: dir.to_path_buf(), index: std::sync::Mutex::new(index) })
    }

    /// A fresh path for an upload in progress (in the store's directory, so storing it is a rename).
    pub fn upload_path(&self) -> PathBuf {
        self.dir.join(format!("upload-{}.tar", uuid::Uuid::new_v4()))
    }

    /// Takes a complete upload into the store: reads its manifest, keeps it under its first image's ID,
    /// points its tags there. Blocking (file I/O). The upload is removed when refused.
    pub fn add(&self, upload: &Path) -> Result<Vec<StoredImage>, ImageError> {
        let images = match read_manifest(upload) {
            Ok(images) => images,
            Err(e) => {
                let _ = std::fs::remove_file(upload);
                return Err(e);
            }
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ImageError::Io { path, source }
        };
        let mut index = self.index.lock().expect("image index lock");
        // An archive may hold several images; each ID points at the same file through a hard link.
        for (i, image) in images.iter().enumerate() {
            let target = self.archive_path(&image.id);
            if i == 0 {
                std::fs::rename(upload, &target).map_err(io(&target))?;
            } else if !target.exists() {
                std::fs::hard_link(self.archive_path(&images[0].id), &target).map_err(io(&target))?;
            }
            for tag in &image.tags {
                index.insert(normalize(tag), image.id.clone());
            }
        }
        let index_path = self.dir.join("index.json");
        let tmp = self.dir.join("index.json.tmp");
        let text = serde_json::to_string_pretty(&*index).unwrap_or_default();
        std::fs::write(&tmp, text).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &index_path).map_err(io(&index_path))?;
        Ok(images)
    }

    fn archive_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.tar", id.trim_start_matches("sha256:")))
    }

    /// The ID and archive of the image a pod names (by tag, or by its ID).
    pub fn find(&self, reference: &str) -> Option<(String, PathBuf)> {
        let index = self.index.lock().expect("image index lock");
        let id = match index.get(&normalize(reference)) {
            Some(id) => id.clone(),
            None if reference.starts_with("sha256:") && index.values().any(|v| v == reference) => reference.to_string(),
            None => return None,
        };
        let path = self.archive_path(&id);
        path.exists().then_some((id, path))
    }

    /// Every image, with its tags.
    pub fn list(&self) -> Vec<StoredImage> {
        let index = self.index.lock().expect("image index lock");
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (tag, id) in index.iter() {
            by_id.entry(id.clone()).or_default().push(tag.clone());
        }
        by_id.into_iter().map(|(id, tags)| StoredImage { id, tags }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_of_docker_and_oci_archives() {
        let docker = r#"[{"Config":"abc123.json","RepoTags":["app:1"],"Layers":["x/layer.tar"]}]"#;
        assert_eq!(
            parse_manifest(docker).unwrap(),
            vec![StoredImage { id: "sha256:abc123".into(), tags: vec!["app:1".into()] }]
        );
        let oci = r#"[{"Config":"blobs/sha256/def456","RepoTags":null,"Layers":[]}]"#;
        assert_eq!(parse_manifest(oci).unwrap()[0].id, "sha256:def456");
        assert!(parse_manifest("[]").is_err());
        assert!(parse_manifest("{").is_err());
    }

    #[test]
    fn references_default_to_latest() {
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(normalize("a/b:1"), "a/b:1");
    }

    #[test]
    fn uploads_are_indexed_by_tag_and_refused_when_not_archives() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let upload = store.upload_path();
        let mut builder = tar::Builder::new(std::fs::File::create(&upload).unwrap());
        let manifest = br#"[{"Config":"abc.json","RepoTags":["app:1"],"Layers":[]}]"#;
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "manifest.json", &manifest[..]).unwrap();
        builder.finish().unwrap();
        drop(builder);
        let images = store.add(&upload).unwrap();
        assert_eq!(images[0].id, "sha256:abc");
        assert_eq!(store.find("app:1").map(|f| f.0), Some("sha256:abc".to_string()));
        assert!(store.find("app:2").is_none());
        let reopened = ImageStore::open(dir.path()).unwrap();
        assert_eq!(reopened.list(), vec![StoredImage { id: "sha256:abc".into(), tags: vec!["app:1".into()] }]);

        let junk = store.upload_path();
        std::fs::write(&junk, b"not a tar").unwrap();
        assert!(matches!(store.add(&junk), Err(ImageError::NotAnArchive(_))));
        assert!(!junk.exists());
    }
}
