//! The pause image `flotilla/pause:1`, made locally once so no registry is ever needed: a tiny static C
//! program (the Kubernetes pause: sleeps until SIGTERM/SIGINT, reaps zombies) compiled with `gcc -static`
//! when gcc is present, else Debian's static busybox running `sleep` (which dies on SIGKILL only; the agent
//! always removes pause containers with force, so that is enough). The image is imported from a tarball
//! built here (`docker import`).

use bollard::Docker;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;

pub const PAUSE_IMAGE: &str = "flotilla/pause:1";

const PAUSE_C: &str = r#"
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
"#;

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("cannot build the pause image: no gcc and no static busybox (install gcc or busybox-static)")]
    NoTool,
    #[error("cannot build the pause image: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot import the pause image into docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

/// Makes sure `flotilla/pause:1` exists in the engine.
pub async fn ensure_pause_image(docker: &Docker) -> Result<(), PauseError> {
    if docker.inspect_image(PAUSE_IMAGE).await.is_ok() {
        return Ok(());
    }
    let dir = std::env::temp_dir().join(format!("flotilla-pause-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let result = build_binary(&dir).await;
    let (binary, cmd) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    let bytes = std::fs::read(&binary);
    let _ = std::fs::remove_dir_all(&dir);
    let mut tar = Tar::default();
    tar.file("pause", &bytes?, 0o755);
    let body = tar.finish();
    let options = CreateImageOptionsBuilder::default()
        .from_src("-")
        .repo("flotilla/pause")
        .tag("1")
        .changes(vec![format!("CMD {cmd}")])
        .build();
    let mut stream = docker.create_image(Some(options), Some(bollard::body_full(body.into())), None);
    while let Some(item) = stream.next().await {
        item?;
    }
    Ok(())
}

/// Returns the path of the pause binary and the image's CMD (JSON form).
async fn build_binary(dir: &std::path::Path) -> Result<(std::path::PathBuf, String), PauseError> {
    let src = dir.join("pause.c");
    std::fs::write(&src, PAUSE_C)?;
    let out = dir.join("pause");
    let gcc = tokio::process::Command::new("gcc")
        .arg("-static")
        .arg("-Os")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if matches!(gcc, Ok(s) if s.success()) {
        return Ok((out, r#"["/pause"]"#.to_string()));
    }
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        if std::path::Path::new(candidate).exists() {
            std::fs::copy(candidate, &out)?;
            return Ok((out, r#"["/pause", "sleep", "2147483647"]"#.to_string()));
        }
    }
    Err(PauseError::NoTool)
}

/// A minimal ustar writer: enough for an image of a few files.
#[derive(Default)]
pub struct Tar {
    out: Vec<u8>,
}

impl Tar {
    pub fn file(&mut self, name: &str, data: &[u8], mode: u32) {
        self.header(name, data.len() as u64, mode, b'0', "");
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }

    fn header(&mut self, name: &str, size: u64, mode: u32, kind: u8, link: &str) {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, len: usize, s: &[u8]| {
            let n = s.len().min(len);
            h[at..at + n].copy_from_slice(&s[..n]);
        };
        put(&mut h, 0, 100, name.as_bytes());
        put(&mut h, 100, 8, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, 8, b"0000000\0");
        put(&mut h, 116, 8, b"0000000\0");
        put(&mut h, 124, 12, format!("{size:011o}\0").as_bytes());
        put(&mut h, 136, 12, b"00000000000\0");
        h[156] = kind;
        put(&mut h, 157, 100, link.as_bytes());
        put(&mut h, 257, 6, b"ustar\0");
        put(&mut h, 263, 2, b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        self.out.extend_from_slice(&h);
    }
}
