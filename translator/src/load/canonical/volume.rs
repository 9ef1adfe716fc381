//! Short volume syntax, `[SOURCE:]TARGET[:OPTIONS]`, as a long-form mount; follows compose-go
//! `transform/volume.go` and the spec parser in `format/volume.go`.
//!
//! The parser splits on `:` but keeps a colon that follows a single letter (a Windows drive, so
//! `C:\data:/data` works) and colons inside `${...}` (which survive interpolation only when escaped
//! as `$${...}`). The drive rule applies on Linux too: `a:b` is one anonymous volume named `a:b`.
//! Unknown options are ignored, as compose ignores them.

use super::{Path, error};
use crate::diag::Diagnostic;
use crate::load::paths::clean;
use crate::load::tree::{as_string, bool_node, go_type, map_node, str_node};
use crate::load::yaml::Node;
use crate::source::Location;

/// A parsed short volume spec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    /// `bind` when the source looks like a path, else `volume`.
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    /// Set for bind mounts and when a bind option (`z`, `rshared`...) is given.
    pub bind: Option<BindOptions>,
    /// Set for named and anonymous volumes (except one- or two-byte specs, which compose-go returns
    /// before deciding).
    pub volume: Option<VolumeOptions>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    pub selinux: String,
    pub propagation: String,
    pub create_host_path: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeOptions {
    pub nocopy: bool,
}

impl VolumeSpec {
    /// The long-syntax mapping, without the keys compose's `encode` leaves out when empty.
    fn to_node(&self, loc: &Location) -> Node {
        let mut entries = vec![("type", str_node(&self.kind, loc))];
        if !self.source.is_empty() {
            entries.push(("source", str_node(&self.source, loc)));
        }
        if !self.target.is_empty() {
            entries.push(("target", str_node(&self.target, loc)));
        }
        if self.read_only {
            entries.push(("read_only", bool_node(true, loc)));
        }
        if let Some(bind) = &self.bind {
            let mut options = Vec::new();
            if !bind.selinux.is_empty() {
                options.push(("selinux", str_node(&bind.selinux, loc)));
            }
            if !bind.propagation.is_empty() {
                options.push(("propagation", str_node(&bind.propagation, loc)));
            }
            if bind.create_host_path {
                options.push(("create_host_path", bool_node(true, loc)));
            }
            entries.push(("bind", map_node(options, loc)));
        }
        if let Some(volume) = &self.volume {
            let options = if volume.nocopy { vec![("nocopy", bool_node(true, loc))] } else { Vec::new() };
            entries.push(("volume", map_node(options, loc)));
        }
        map_node(entries, loc)
    }
}

/// `services.*.volumes.*`: a short entry replaced by its long form; the target is cleaned.
pub(super) fn volume_mount(node: &mut Node, path: &Path, ignore: bool) -> Result<(), Diagnostic> {
    if node.as_map().is_some() {
        return Ok(());
    }
    let Some(spec) = as_string(node) else {
        return Err(error(node, path, format!("invalid type {} for service volume mount", go_type(node))));
    };
    let mut volume = match parse_volume(spec) {
        Ok(volume) => volume,
        Err(_) if ignore => return Ok(()),
        Err(message) => {
            return Err(error(node, path, message)
                .with_hint("write `[SOURCE:]TARGET[:ro|rw|z|Z|nocopy|...]` or use the long syntax"));
        }
    };
    if !volume.target.is_empty() {
        volume.target = clean(&volume.target);
    }
    *node = volume.to_node(&node.loc);
    Ok(())
}

/// Parses a short volume spec (`format.ParseVolume`), or returns compose's error message.
pub fn parse_volume(spec: &str) -> Result<VolumeSpec, String> {
    let mut volume = VolumeSpec::default();
    match spec.len() {
        0 => return Err("invalid empty volume spec".to_owned()),
        1 | 2 => {
            volume.target = spec.to_owned();
            volume.kind = "volume".to_owned();
            return Ok(volume);
        }
        _ => {}
    }
    let bytes = spec.as_bytes();
    let mut buffer = String::new();
    let mut in_variable = 0usize;
    // `None` stands for the end of the spec, which closes the last field like a colon.
    let chars = spec.char_indices().map(|(i, c)| (i, Some(c))).chain(std::iter::once((spec.len(), None)));
    for (i, c) in chars {
        if c == Some('$') && bytes.get(i + 1) == Some(&b'{') {
            in_variable += 1;
            buffer.push('$');
            continue;
        }
        if c == Some('}') && in_variable > 0 {
            in_variable -= 1;
            buffer.push('}');
            continue;
        }
        match c {
            Some(':') if is_windows_drive(&buffer) => buffer.push(':'),
            Some(':') | None if in_variable == 0 => {
                if let Err(why) = populate_field(c.is_none(), &buffer, &mut volume) {
                    return Err(format!("invalid spec: {spec}: {why}"));
                }
                buffer.clear();
            }
            Some(c) => buffer.push(c),
            // The spec ends inside an unclosed `${`: compose-go drops the pending text.
            None => {}
        }
    }
    populate_type(&mut volume);
    Ok(volume)
}

/// One letter so far, about to be followed by `:`.
fn is_windows_drive(buffer: &str) -> bool {
    let mut chars = buffer.chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if c.is_alphabetic())
}

fn populate_field(at_end: bool, buffer: &str, volume: &mut VolumeSpec) -> Result<(), &'static str> {
    if buffer.is_empty() {
        return Err("empty section between colons");
    }
    if volume.source.is_empty() && at_end {
        // A lone path is an anonymous volume mounted there.
        volume.target = buffer.to_owned();
        return Ok(());
    }
    if volume.source.is_empty() {
        volume.source = buffer.to_owned();
        return Ok(());
    }
    if volume.target.is_empty() {
        volume.target = buffer.to_owned();
        return Ok(());
    }
    if !at_end {
        return Err("too many colons");
    }
    for option in buffer.split(',') {
        match option {
            "ro" => volume.read_only = true,
            "rw" => volume.read_only = false,
            "nocopy" => volume.volume = Some(VolumeOptions { nocopy: true }),
            "rprivate" | "private" | "rshared" | "shared" | "rslave" | "slave" => {
                volume.bind.get_or_insert_with(BindOptions::default).propagation = option.to_owned();
            }
            "z" | "Z" => volume.bind.get_or_insert_with(BindOptions::default).selinux = option.to_owned(),
            _ => {}
        }
    }
    Ok(())
}

fn populate_type(volume: &mut VolumeSpec) {
    if is_file_path(&volume.source) {
        volume.kind = "bind".to_owned();
        // Short syntax creates a missing host path, as the legacy docker-compose did.
        volume.bind.get_or_insert_with(BindOptions::default).create_host_path = true;
    } else {
        volume.kind = "volume".to_owned();
        volume.volume.get_or_insert_with(VolumeOptions::default);
    }
}

/// A source that starts like a path (`.`, `/`, `~`, `\\pipe`, `C:`) is a bind mount, else a volume name.
fn is_file_path(source: &str) -> bool {
    if source.starts_with(['.', '/', '~']) || source.starts_with(r"\\") {
        return true;
    }
    let mut chars = source.char_indices();
    match (chars.next(), chars.next()) {
        (Some((_, first)), Some((i, _))) => first.is_alphabetic() && source.as_bytes().get(i) == Some(&b':'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(source: &str, target: &str) -> VolumeSpec {
        VolumeSpec {
            kind: "bind".into(),
            source: source.into(),
            target: target.into(),
            bind: Some(BindOptions { create_host_path: true, ..Default::default() }),
            ..Default::default()
        }
    }

    fn named(source: &str, target: &str) -> VolumeSpec {
        VolumeSpec {
            kind: "volume".into(),
            source: source.into(),
            target: target.into(),
            volume: Some(VolumeOptions::default()),
            ..Default::default()
        }
    }

    #[test]
    fn anonymous_and_short_volumes() {
        for path in ["/path", "/path/foo", r"C:\path", r"Z:\path\foo", "a:b"] {
            assert_eq!(parse_volume(path), Ok(named("", path)), "{path}");
        }
        for path in [".", "/a"] {
            let want = VolumeSpec { kind: "volume".into(), target: path.into(), ..Default::default() };
            assert_eq!(parse_volume(path), Ok(want), "{path}");
        }
    }

    #[test]
    fn bind_mounts_and_options() {
        for path in ["./foo", "~/thing", "../other", "/foo", "/home/user"] {
            assert_eq!(parse_volume(&format!("{path}:/target")), Ok(bind(path, "/target")), "{path}");
            let ro = VolumeSpec { read_only: true, ..bind(path, "/target") };
            assert_eq!(parse_volume(&format!("{path}:/target:ro")), Ok(ro), "{path}");
            assert_eq!(parse_volume(&format!("{path}:/target:rw")), Ok(bind(path, "/target")), "{path}");
        }
        let mut slave = bind("/source", "/target");
        slave.bind.as_mut().unwrap().propagation = "slave".into();
        assert_eq!(parse_volume("/source:/target:slave"), Ok(slave));
        for label in ["z", "Z"] {
            let mut want = VolumeSpec { read_only: true, ..bind("/source", "/target") };
            want.bind.as_mut().unwrap().selinux = label.into();
            assert_eq!(parse_volume(&format!("/source:/target:ro,{label}")), Ok(want));
        }
        let mut windows = VolumeSpec { read_only: true, ..bind(r"C:\source\foo", r"D:\target") };
        windows.bind.as_mut().unwrap().propagation = "rprivate".into();
        assert_eq!(parse_volume(r"C:\source\foo:D:\target:ro,rprivate"), Ok(windows));
        assert_eq!(
            parse_volume(r"\\.\pipe\docker_engine:\\.\pipe\inside"),
            Ok(bind(r"\\.\pipe\docker_engine", r"\\.\pipe\inside"))
        );
        assert_eq!(parse_volume("name:/target:bogus"), Ok(named("name", "/target")));
        let nocopy = VolumeSpec { volume: Some(VolumeOptions { nocopy: true }), ..named("name", "/target") };
        assert_eq!(parse_volume("name:/target:nocopy"), Ok(nocopy));
    }

    #[test]
    fn colons_inside_variables() {
        assert_eq!(
            parse_volume("/tmp:/tmp/${BUG_HERE:-DEFAULT}/path"),
            Ok(bind("/tmp", "/tmp/${BUG_HERE:-DEFAULT}/path"))
        );
        assert_eq!(parse_volume("/tmp/${VAR:-default}:/target"), Ok(bind("/tmp/${VAR:-default}", "/target")));
        assert_eq!(parse_volume("/tmp:/tmp/${TIME:-12:30:45}/path"), Ok(bind("/tmp", "/tmp/${TIME:-12:30:45}/path")));
        assert_eq!(parse_volume("/tmp:/tmp/${VAR:-{default}}/path"), Ok(bind("/tmp", "/tmp/${VAR:-{default}}/path")));
        assert_eq!(
            parse_volume("myvolume:/data/${VAR:-default}/path"),
            Ok(named("myvolume", "/data/${VAR:-default}/path"))
        );
        let mut want = VolumeSpec { read_only: true, ..bind("/src", "/target/${VAR:-default}/path") };
        want.bind.as_mut().unwrap().propagation = "slave".into();
        assert_eq!(parse_volume("/src:/target/${VAR:-default}/path:slave,ro"), Ok(want));
    }

    #[test]
    fn refuses_malformed_specs() {
        assert_eq!(parse_volume("/foo:/foo:ro:foo"), Err("invalid spec: /foo:/foo:ro:foo: too many colons".into()));
        for spec in [":foo", "/foo::ro"] {
            assert!(parse_volume(spec).is_err_and(|e| e.contains("empty section between colons")), "{spec}");
        }
        assert_eq!(parse_volume(""), Err("invalid empty volume spec".into()));
    }

    #[test]
    fn split_cases_keep_windows_drives() {
        // (spec, whether a source was found), from compose-go's split cases.
        let cases = [
            (r"C:\foo:d:", true),
            (r":C:\foo:d:", false),
            ("/foo:/bar:ro", true),
            (r"C:\foo\:/foo", true),
            (r"d:\", false),
            ("d:", false),
            (r"d:\pathandmode:rw", true),
            (r"c:\:d:\", true),
            (r"c:\windows:d:\s p a c e:RW", true),
            ("0123456789name:d:", true),
            ("name:D::rW", true),
            ("c:/:d:/forward/slashes/are/good/too", true),
            (r"c:\Program Files (x86)", false),
            (".", false),
            (r"c:\:d:\:xyzzy", true),
            ("/tmp/x/y:/foo/x/y", true),
        ];
        for (spec, has_source) in cases {
            let parsed = parse_volume(spec).unwrap_or_default();
            assert_eq!(!parsed.source.is_empty(), has_source, "{spec}");
        }
        assert!(!is_file_path("a界"));
    }
}
