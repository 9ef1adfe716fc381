//! SPDY/3.1 framing, as much of it as `kubectl port-forward` uses (the draft-3 spec, section 2).
//!
//! kubectl (client-go's `portforward` over `moby/spdystream`) multiplexes each forwarded connection as SPDY
//! streams. Since v1.30 it tunnels those SPDY bytes through a WebSocket whose subprotocol is
//! `SPDY/3.1+portforward.k8s.io`, one WebSocket message per write; the frames themselves are plain SPDY/3.
//!
//! A control frame is `1 | version(15) | type(16) | flags(8) | length(24)` then its payload; a data frame is
//! `0 | stream-id(31) | flags(8) | length(24)` then the bytes. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS)
//! are name/value pairs with 32-bit lengths, compressed with zlib as one stream per direction that lasts
//! the whole connection (each block ends with a sync flush) and that starts from the fixed dictionary
//! below. Flow control (WINDOW_UPDATE) is not enforced by spdystream, so it is read and ignored here.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Control frame types (spec 2.6).
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;

/// FLAG_FIN on data frames and on SYN_STREAM/SYN_REPLY: the sender will send nothing more on the stream.
pub const FLAG_FIN: u8 = 0x01;

/// RST_STREAM status for a stream refused as malformed.
pub const RST_PROTOCOL_ERROR: u32 = 1;

/// A frame's payload may not exceed 2^24 - 1 bytes; anything near that from kubectl is a bug or an attack.
const MAX_FRAME: usize = 1 << 24;

/// Largest decompressed header block accepted (kubectl sends three short headers).
const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// Name/value pairs of a header block, names lowercase as SPDY requires.
pub type Headers = Vec<(String, String)>;

/// The frames port-forwarding needs; others are kept as [`Frame::Other`] and ignored by the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        headers: Headers,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// SETTINGS, WINDOW_UPDATE, CREDENTIAL and unknown types: valid, and nothing to do for them.
    Other {
        kind: u16,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("frame too large ({0} bytes)")]
    TooLarge(usize),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("bad header block: {0}")]
    HeaderBlock(String),
}

/// Reads frames from the bytes of one direction of a connection, keeping its header decompressor.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder { inflate: Decompress::new(true) }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`; `Ok(None)` until the buffer holds a whole frame.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if length >= MAX_FRAME {
            return Err(SpdyError::TooLarge(length));
        }
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let mut frame = buf.split_to(8 + length).freeze();
        let first = frame.get_u32();
        let flags = frame.get_u8();
        frame.advance(3);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & 0x7fff_ffff, flags, data: frame }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != 3 {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let need = |n: usize, name: &'static str| if length < n { Err(SpdyError::Malformed(name)) } else { Ok(()) };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                frame.advance(6); // associated stream, priority, slot
                Frame::SynStream { stream_id, flags, headers: self.headers(&frame)? }
            }
            SYN_REPLY => {
                need(4, "SYN_REPLY")?;
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                Frame::SynReply { stream_id, flags, headers: self.headers(&frame)? }
            }
            HEADERS => {
                need(4, "HEADERS")?;
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                Frame::Headers { stream_id, headers: self.headers(&frame)? }
            }
            RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream { stream_id: frame.get_u32() & 0x7fff_ffff, status: frame.get_u32() }
            }
            PING => {
                need(4, "PING")?;
                Frame::Ping { id: frame.get_u32() }
            }
            GOAWAY => {
                need(8, "GOAWAY")?;
                Frame::GoAway { last_good_stream_id: frame.get_u32() & 0x7fff_ffff, status: frame.get_u32() }
            }
            kind => Frame::Other { kind },
        }))
    }

    /// Inflates one header block (the next piece of this direction's zlib stream) and parses its pairs.
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let bad = |e: &dyn std::fmt::Display| SpdyError::HeaderBlock(e.to_string());
        let mut out = Vec::with_capacity(256);
        let mut input = compressed;
        while !input.is_empty() {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock("larger than 64 KiB".into()));
                }
                out.reserve(out.len());
            }
            let before = self.inflate.total_in();
            match self.inflate.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                // The stream names the dictionary by its Adler-32 on first use: SPDY/3's is the only one.
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(DICTIONARY).map_err(|e| bad(&e))?;
                }
                Err(e) => return Err(bad(&e)),
            }
            let used = (self.inflate.total_in() - before) as usize;
            input = &input[used..];
            if used == 0 && out.len() < out.capacity() && !input.is_empty() {
                return Err(SpdyError::HeaderBlock("zlib made no progress".into()));
            }
        }
        parse_pairs(&out)
    }
}

fn parse_pairs(mut block: &[u8]) -> Result<Headers, SpdyError> {
    let short = || SpdyError::HeaderBlock("truncated".into());
    let take = |block: &mut &[u8]| -> Result<String, SpdyError> {
        if block.len() < 4 {
            return Err(short());
        }
        let n = block.get_u32() as usize;
        if block.len() < n {
            return Err(short());
        }
        let s = String::from_utf8_lossy(&block[..n]).into_owned();
        block.advance(n);
        Ok(s)
    };
    if block.len() < 4 {
        return Err(short());
    }
    let pairs = block.get_u32() as usize;
    let mut headers = Vec::with_capacity(pairs.min(64));
    for _ in 0..pairs {
        let name = take(&mut block)?;
        let value = take(&mut block)?;
        headers.push((name, value));
    }
    Ok(headers)
}

/// Writes frames for one direction of a connection, keeping its header compressor.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder { deflate: Compress::new(Compression::default(), true) }
    }
}

impl Encoder {
    /// The bytes of `frame` on the wire.
    pub fn encode(&mut self, frame: &Frame) -> Vec<u8> {
        match frame {
            Frame::Data { stream_id, flags, data } => {
                let mut out = Vec::with_capacity(8 + data.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.extend_from_slice(data);
                out
            }
            Frame::SynStream { stream_id, flags, headers } => {
                let mut payload = Vec::new();
                payload.put_u32(*stream_id);
                payload.put_u32(0);
                payload.put_u16(0);
                payload.extend(self.header_block(headers));
                control(SYN_STREAM, *flags, &payload)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                let mut payload = stream_id.to_be_bytes().to_vec();
                payload.extend(self.header_block(headers));
                control(SYN_REPLY, *flags, &payload)
            }
            Frame::Headers { stream_id, headers } => {
                let mut payload = stream_id.to_be_bytes().to_vec();
                payload.extend(self.header_block(headers));
                control(HEADERS, 0, &payload)
            }
            Frame::RstStream { stream_id, status } => {
                control(RST_STREAM, 0, &[stream_id.to_be_bytes(), status.to_be_bytes()].concat())
            }
            Frame::Ping { id } => control(PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good_stream_id, status } => {
                control(GOAWAY, 0, &[last_good_stream_id.to_be_bytes(), status.to_be_bytes()].concat())
            }
            Frame::Other { kind } => control(*kind, 0, &[]),
        }
    }

    /// Deflates a header block, ending it with a sync flush so the peer can inflate it at once. No preset
    /// dictionary is used: a zlib stream without one is valid SPDY (the peer's zlib sees no FDICT flag).
    fn header_block(&mut self, headers: &Headers) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.extend_from_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            let before = self.deflate.total_in();
            // Compressing into a Vec with spare room cannot fail.
            let _ = self.deflate.compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.put_u16(0x8000 | 3);
    out.put_u16(kind);
    out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
    out.extend_from_slice(payload);
    out
}

/// The dictionary SPDY/3 header compression starts from (spec 2.6.10.1): common header names, each with
/// a 32-bit length in front, followed by common values run together.
static DICTIONARY: &[u8] = {
    const WORDS: [&str; 65] = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden\
404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug \
Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,\
application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch\
charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    const LEN: usize = {
        let mut n = TAIL.len();
        let mut i = 0;
        while i < WORDS.len() {
            n += 4 + WORDS[i].len();
            i += 1;
        }
        n
    };
    const BYTES: [u8; LEN] = {
        let mut out = [0u8; LEN];
        let mut at = 0;
        let mut i = 0;
        while i < WORDS.len() {
            let w = WORDS[i].as_bytes();
            let len = (w.len() as u32).to_be_bytes();
            let mut j = 0;
            while j < 4 {
                out[at] = len[j];
                at += 1;
                j += 1;
            }
            let mut j = 0;
            while j < w.len() {
                out[at] = w[j];
                at += 1;
                j += 1;
            }
            i += 1;
        }
        let t = TAIL.as_bytes();
        let mut j = 0;
        while j < t.len() {
            out[at] = t[j];
            at += 1;
            j += 1;
        }
        out
    };
    &BYTES
};

#[cfg(test)]
mod tests {
    use super::*;

    /// What spdystream's writer does: zlib at best compression, primed with the dictionary.
    fn client_encoder() -> Encoder {
        let mut deflate = Compress::new(Compression::best(), true);
        deflate.set_dictionary(DICTIONARY).unwrap();
        Encoder { deflate }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dictionary_is_the_one_of_the_spec() {
        // 1423 bytes; its Adler-32 is what a SPDY/3 zlib stream names in its FDICT field.
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(&DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(DICTIONARY.ends_with(b",enq=0."));
        let mut deflate = Compress::new(Compression::best(), true);
        assert_eq!(deflate.set_dictionary(DICTIONARY).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn frames_round_trip_with_a_dictionary_primed_peer() {
        let mut client = client_encoder();
        let mut server = Decoder::default();
        let mut wire = BytesMut::new();
        let sent = vec![
            Frame::SynStream {
                stream_id: 1,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::Data { stream_id: 1, flags: FLAG_FIN, data: Bytes::new() },
            Frame::SynStream {
                stream_id: 3,
                flags: 0,
                headers: headers(&[("streamtype", "data"), ("port", "8080"), ("requestid", "0")]),
            },
            Frame::Data { stream_id: 3, flags: 0, data: Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n") },
            Frame::Ping { id: 1 },
            Frame::RstStream { stream_id: 3, status: 5 },
            Frame::GoAway { last_good_stream_id: 0, status: 0 },
        ];
        for f in &sent {
            wire.extend_from_slice(&client.encode(f));
        }
        // Bytes arrive in arbitrary pieces: a partial frame waits for the rest.
        let mut got = vec![];
        let mut pending = BytesMut::new();
        for chunk in wire.chunks(5) {
            pending.extend_from_slice(chunk);
            while let Some(f) = server.decode(&mut pending).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, sent);
    }

    #[test]
    fn our_replies_inflate_without_a_dictionary_hint() {
        let mut ours = Encoder::default();
        let mut peer = Decoder::default();
        let mut wire = BytesMut::new();
        for id in [1, 3, 5] {
            wire.extend_from_slice(&ours.encode(&Frame::SynReply { stream_id: id, flags: 0, headers: vec![] }));
        }
        for id in [1, 3, 5] {
            assert_eq!(
                peer.decode(&mut wire).unwrap(),
                Some(Frame::SynReply { stream_id: id, flags: 0, headers: vec![] })
            );
        }
        assert!(wire.is_empty());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut d = Decoder::default();
        let mut v2 = BytesMut::from(&control(PING, 0, &[0, 0, 0, 1])[..]);
        v2[1] = 2;
        assert_eq!(d.decode(&mut v2), Err(SpdyError::Version(2)));
        let mut short = BytesMut::from(&control(RST_STREAM, 0, &[0, 0, 0, 1])[..]);
        assert_eq!(d.decode(&mut short), Err(SpdyError::Malformed("RST_STREAM")));
        let mut junk = BytesMut::from(&control(SYN_REPLY, 0, &[0, 0, 0, 1, 9, 9, 9, 9])[..]);
        assert!(matches!(d.decode(&mut junk), Err(SpdyError::HeaderBlock(_))));
    }
}
