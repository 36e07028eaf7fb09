//! Response redaction (issue #13, threat T17): every value authsome
//! injected into a request is replaced in the response, before the agent
//! sees it, by the placeholder the agent holds for that provider.
//!
//! The building blocks, all pure (no I/O but the WebSocket relay's streams):
//! - [`Patterns`]: the forms of one injected secret (bare, percent-encoded,
//!   base64, base64url, the Basic token and its parts), each paired with the
//!   same form of the placeholder, found in one pass (Aho-Corasick,
//!   leftmost-longest);
//! - [`Patterns::redact_value`]: one whole value (a header);
//! - [`Redactor`]: a stream (a body, a WebSocket message), chunk by chunk,
//!   holding back only the bytes that could still become a match;
//! - [`redact_body`]: a response body, frame by frame, gzip and deflate
//!   decoded first (see [`encoding_of`]); [`redact_headers`]: the headers;
//! - [`relay_ws_redacted`]: the server → client half of a WebSocket.
//!
//! Limits (T17 calls this defence in depth): a secret the server transforms
//! in any other way is not found: JSON-escaped (`\/`), hex, re-encoded,
//! compressed with a coding not decoded here (br, zstd: see
//! [`encoding_of`]), or inside a longer base64 text at an offset that is
//! not a multiple of 3. Forms shorter than [`MIN_FORM_LEN`] bytes are not searched. The
//! Aho-Corasick automaton keeps its own copy of the patterns, which is not
//! zeroized when dropped; the pattern list and the redactor's carry are.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use aho_corasick::{AhoCorasick, Input, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, HeaderValue};
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Bytes, Frame};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

use crate::credentials::ResolvedCredential;
use crate::providers::KeyFormat;

/// Forms shorter than this are not searched: a very short form (the base64
/// of a two-letter user name, a four-digit PIN) occurs by chance in
/// unrelated text (words, JSON keys, base64 blobs), and replacing it there
/// would mangle responses; a secret that short is not protected by
/// redaction anyway.
pub const MIN_FORM_LEN: usize = 8;

/// How many bytes of decoded body one step of the decompressor may produce.
const OUT_STEP: usize = 32 * 1024;
/// How many compressed bytes one step of the decompressor is given.
const IN_STEP: usize = 8 * 1024;
/// The largest piece of a WebSocket payload read (and re-framed) at once.
const WS_PIECE: usize = 64 * 1024;
/// A gzip header longer than this (FEXTRA, FNAME, FCOMMENT) is refused.
const MAX_GZIP_HEADER: usize = 128 * 1024;

// ---------------------------------------------------------------------------
// Patterns

/// The forms of an injected secret, each with its replacement.
pub struct Patterns {
    /// The secret forms, searched for.
    pats: Vec<Zeroizing<Vec<u8>>>,
    /// `reps[i]` replaces `pats[i]`: the same form of the placeholder.
    reps: Vec<Vec<u8>>,
    matcher: Matcher,
    /// `first[b]`: some pattern starts with byte `b`.
    first: [bool; 256],
    max_len: usize,
}

enum Matcher {
    None,
    Ac(AhoCorasick),
    /// Only if the automaton cannot be built (it always can for a handful
    /// of short patterns): the same leftmost-longest search, by hand.
    Naive,
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("forms", &self.pats.len())
            .field("max_len", &self.max_len)
            .field("length_preserving", &self.length_preserving())
            .finish()
    }
}

impl Patterns {
    /// Pairs of (secret form, replacement). Empty patterns, patterns equal
    /// to their replacement, patterns shorter than [`MIN_FORM_LEN`] and
    /// repeated patterns (the first pair wins) are dropped.
    pub fn new(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Patterns {
        let mut pats: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut reps = Vec::new();
        for (p, r) in pairs {
            let p = Zeroizing::new(p);
            if p.len() < MIN_FORM_LEN || *p == r || pats.iter().any(|q| **q == *p) {
                continue;
            }
            pats.push(p);
            reps.push(r);
        }
        let mut first = [false; 256];
        for p in &pats {
            if let Some(&b) = p.first() {
                first[usize::from(b)] = true;
            }
        }
        let max_len = pats.iter().map(|p| p.len()).max().unwrap_or(0);
        let matcher = if pats.is_empty() {
            Matcher::None
        } else {
            match AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(pats.iter().map(|p| p.as_slice()))
            {
                Ok(ac) => Matcher::Ac(ac),
                Err(e) => {
                    tracing::warn!(error = %e, "redaction automaton not built; using the slow search");
                    Matcher::Naive
                }
            }
        };
        Patterns {
            pats,
            reps,
            matcher,
            first,
            max_len,
        }
    }

    /// The forms of the value `cred` injects, each paired with the same
    /// form of `placeholder` (what the agent holds for the provider).
    pub fn for_credential(cred: &ResolvedCredential, placeholder: &str) -> Patterns {
        let value = cred.value.expose().as_bytes();
        let ph = placeholder.as_bytes();
        let mut pairs = Vec::new();
        if !cred.parts.is_empty() {
            // Several secrets in one header (a browser session's cookies):
            // each is searched for on its own.
            for part in &cred.parts {
                forms_of(part.expose().as_bytes(), ph, &mut pairs);
            }
            return Patterns::new(pairs);
        }
        match cred.injection.format {
            KeyFormat::Header => {
                let bare = value
                    .strip_prefix(cred.injection.prefix.as_bytes())
                    .unwrap_or(value);
                forms_of(bare, ph, &mut pairs);
            }
            KeyFormat::Query => forms_of(value, ph, &mut pairs),
            KeyFormat::Basic => {
                let token = value.strip_prefix(b"Basic ").unwrap_or(value);
                match STANDARD.decode(token).map(Zeroizing::new) {
                    Ok(decoded) => {
                        // RFC 7617: the user id has no colon.
                        let (user, pass) = match decoded.iter().position(|&b| b == b':') {
                            Some(i) => (&decoded[..i], &decoded[i + 1..]),
                            None => (&decoded[..], &b""[..]),
                        };
                        let mut rep = Vec::new();
                        if !user.is_empty() {
                            rep.extend_from_slice(ph);
                        }
                        rep.push(b':');
                        if !pass.is_empty() {
                            rep.extend_from_slice(ph);
                        }
                        // The token as sent, and as an echo may have
                        // re-encoded it (unpadded, base64url), each also
                        // percent-encoded and JSON-escaped by `variants`.
                        variants(token, STANDARD.encode(&rep).as_bytes(), &mut pairs);
                        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                            variants(
                                engine.encode(&*decoded).as_bytes(),
                                engine.encode(&rep).as_bytes(),
                                &mut pairs,
                            );
                        }
                        for part in [user, pass] {
                            if !part.is_empty() {
                                forms_of(part, ph, &mut pairs);
                            }
                        }
                        // authsome writes `base64(key + ":")`: a key with a
                        // colon in it is split above, so it is also caught whole.
                        if let Some(whole) = decoded.strip_suffix(b":")
                            && whole.len() > user.len()
                        {
                            forms_of(whole, ph, &mut pairs);
                        }
                    }
                    Err(_) => forms_of(token, ph, &mut pairs),
                }
            }
        }
        Patterns::new(pairs)
    }

    /// No form to search for (every one was too short).
    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }

    /// The length of the longest form (0 when empty).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Every replacement has the length of its pattern (so redaction never
    /// changes a body's length).
    pub fn length_preserving(&self) -> bool {
        self.pats
            .iter()
            .zip(&self.reps)
            .all(|(p, r)| p.len() == r.len())
    }

    /// Redacts one whole value (a header value): `None` when nothing
    /// matched, else the new bytes and the number of replacements.
    pub fn redact_value(&self, bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
        self.find(bytes, 0)?;
        let mut out = Vec::with_capacity(bytes.len());
        let (n, _) = self.scan(bytes, &mut out, true);
        Some((out, n))
    }

    /// The leftmost-longest match in `data[from..]`: (start, end, pattern).
    fn find(&self, data: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        match &self.matcher {
            Matcher::None => None,
            Matcher::Ac(ac) => ac
                .find(Input::new(data).span(from..data.len()))
                .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
            Matcher::Naive => naive_find(&self.pats, data, from),
        }
    }

    /// Writes `data` to `out` with every complete match replaced. Unless
    /// `last`, stops at the longest suffix of `data` that is a proper prefix
    /// of some pattern (it could still become a match, or a longer one).
    /// Returns the number of replacements and where the held-back part starts.
    fn scan(&self, data: &[u8], out: &mut Vec<u8>, last: bool) -> (usize, usize) {
        let mut pos = 0;
        let mut n = 0;
        let mut hold = if last {
            data.len()
        } else {
            self.partial_start(data, 0)
        };
        loop {
            if hold < pos {
                hold = self.partial_start(data, pos);
            }
            match self.find(data, pos) {
                // A match starting before `hold` is final: a longer pattern
                // at its start, or one starting earlier, would have to run
                // past the end of `data`, and would start at or after `hold`.
                Some((start, end, p)) if start < hold => {
                    out.extend_from_slice(&data[pos..start]);
                    out.extend_from_slice(&self.reps[p]);
                    pos = end;
                    n += 1;
                }
                _ => {
                    out.extend_from_slice(&data[pos..hold]);
                    return (n, hold);
                }
            }
        }
    }

    /// The first `j >= from` such that `data[j..]` is a proper prefix of
    /// some pattern, or `data.len()`.
    fn partial_start(&self, data: &[u8], from: usize) -> usize {
        let start = from.max(data.len().saturating_sub(self.max_len.saturating_sub(1)));
        (start..data.len())
            .find(|&j| {
                let s = &data[j..];
                self.first[usize::from(data[j])]
                    && self
                        .pats
                        .iter()
                        .any(|p| p.len() > s.len() && p.starts_with(s))
            })
            .unwrap_or(data.len())
    }
}

/// Leftmost-longest search by hand (the fallback, and the tests' oracle).
fn naive_find(
    pats: &[Zeroizing<Vec<u8>>],
    data: &[u8],
    from: usize,
) -> Option<(usize, usize, usize)> {
    (from..data.len()).find_map(|s| {
        pats.iter()
            .enumerate()
            .filter(|(_, p)| data[s..].starts_with(p))
            .max_by_key(|(i, p)| (p.len(), std::cmp::Reverse(*i)))
            .map(|(i, p)| (s, s + p.len(), i))
    })
}

/// The forms of one bare secret, each paired with the same form of the
/// placeholder: itself, percent-encoded (as `crate::percent::encode`
/// writes it, and with lower-case hex), base64 (padded and not) and
/// base64url without padding.
fn forms_of(secret: &[u8], ph: &[u8], pairs: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    variants(secret, ph, pairs);
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        let s = Zeroizing::new(engine.encode(secret).into_bytes());
        variants(&s, engine.encode(ph).as_bytes(), pairs);
    }
}

/// `form` as written, and as an echo may have re-encoded it: percent-encoded
/// (upper- and lower-case hex) and JSON-escaped (`/` as `\/`), each paired
/// with the same re-encoding of `rep`.
fn variants(form: &[u8], rep: &[u8], pairs: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    pairs.push((form.to_vec(), rep.to_vec()));
    if let (Ok(s), Ok(p)) = (std::str::from_utf8(form), std::str::from_utf8(rep)) {
        let s = Zeroizing::new(crate::percent::encode(s));
        let p = crate::percent::encode(p);
        pairs.push((s.as_bytes().to_vec(), p.as_bytes().to_vec()));
        pairs.push((lower_hex(s.as_bytes()), lower_hex(p.as_bytes())));
    }
    if form.contains(&b'/') {
        let escape = |b: &[u8]| -> Vec<u8> {
            let mut out = Vec::with_capacity(b.len() + 8);
            for &c in b {
                if c == b'/' {
                    out.push(b'\\');
                }
                out.push(c);
            }
            out
        };
        pairs.push((escape(form), escape(rep)));
    }
}

/// `%2F` → `%2f`: the two characters after every `%` in lower case.
fn lower_hex(encoded: &[u8]) -> Vec<u8> {
    let mut out = encoded.to_vec();
    let mut i = 0;
    while i < out.len() {
        if out[i] == b'%' {
            for b in out.iter_mut().skip(i + 1).take(2) {
                b.make_ascii_lowercase();
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Streaming

/// Redacts one stream (a body, a WebSocket message) chunk by chunk.
///
/// After the complete matches of a chunk are replaced, only the longest
/// suffix that is a proper prefix of some pattern is held back (at most
/// `max_len − 1` bytes, and usually none: an SSE event ending in `\n\n` goes
/// out at once, no secret starts with a newline). A secret split over any
/// number of chunks is caught; the output is exactly what
/// [`Patterns::redact_value`] gives for the whole stream.
pub struct Redactor {
    patterns: Arc<Patterns>,
    carry: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("patterns", &self.patterns)
            .field("held_back", &self.carry.len())
            .finish()
    }
}

impl Redactor {
    pub fn new(patterns: Arc<Patterns>) -> Redactor {
        Redactor {
            patterns,
            carry: Zeroizing::new(Vec::new()),
        }
    }

    /// Appends the redacted part of `chunk` that can be released to `out`;
    /// returns the number of replacements.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> usize {
        if self.carry.is_empty() {
            let (n, keep) = self.patterns.scan(chunk, out, false);
            self.carry.extend_from_slice(&chunk[keep..]);
            n
        } else {
            self.carry.extend_from_slice(chunk);
            let data = Zeroizing::new(std::mem::take(&mut *self.carry));
            let (n, keep) = self.patterns.scan(&data, out, false);
            self.carry.extend_from_slice(&data[keep..]);
            n
        }
    }

    /// `chunk` would go out unchanged: nothing is held back from before,
    /// no form matches in it, none could start at its end. The caller may
    /// then pass the chunk on as is (no copy) instead of calling
    /// [`Redactor::push`], whose result would be the same bytes with
    /// nothing held back. (The tail is checked first, so a chunk held back
    /// is scanned once; one with a match, up to the match twice.)
    pub fn passes_unchanged(&self, chunk: &[u8]) -> bool {
        self.carry.is_empty()
            && self.patterns.partial_start(chunk, 0) == chunk.len()
            && self.patterns.find(chunk, 0).is_none()
    }

    /// The end of the stream: appends what was held back, redacted.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> usize {
        let data = Zeroizing::new(std::mem::take(&mut *self.carry));
        self.patterns.scan(&data, out, true).0
    }

    /// How many bytes are held back.
    pub fn held_back(&self) -> usize {
        self.carry.len()
    }
}

/// How many replacements happened where (for the audit log).
#[derive(Debug, Default)]
pub struct Counter {
    /// In response header (and trailer) values.
    pub header: AtomicU32,
    /// In response bodies.
    pub body: AtomicU32,
    /// In WebSocket frames (server → client).
    pub frame: AtomicU32,
}

fn add(c: &AtomicU32, n: usize) {
    if n > 0 {
        c.fetch_add(u32::try_from(n).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// Headers

/// Redacts every response header value (`Location`, `Set-Cookie`, repeated
/// headers included); a header whose name contains a secret form, or whose
/// redacted value is not a valid header value, is removed. Returns the
/// number of replacements (a removed header counts as one).
pub fn redact_headers(headers: &mut HeaderMap, patterns: &Patterns) -> usize {
    if patterns.is_empty() {
        return 0;
    }
    let names: Vec<http::HeaderName> = headers.keys().cloned().collect();
    let mut n = 0;
    for name in names {
        if patterns.find(name.as_str().as_bytes(), 0).is_some() {
            headers.remove(&name);
            n += 1;
            continue;
        }
        let hit = headers
            .get_all(&name)
            .iter()
            .any(|v| patterns.find(v.as_bytes(), 0).is_some());
        if !hit {
            continue;
        }
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        for v in values {
            match patterns.redact_value(v.as_bytes()) {
                None => {
                    headers.append(&name, v);
                }
                Some((new, k)) => {
                    n += k;
                    if let Ok(new) = HeaderValue::from_bytes(&new) {
                        headers.append(&name, new);
                    }
                }
            }
        }
    }
    n
}

// ---------------------------------------------------------------------------
// Bodies

/// The content coding of a response body, as far as redaction goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    /// `gzip` or `x-gzip` (members after the first are decoded too).
    Gzip,
    /// `deflate`: zlib-wrapped, or raw deflate as some servers send it.
    Deflate,
}

/// The response's `Content-Encoding`, or `Err(the encoding as written)`
/// when the body cannot be redacted (`br`, `zstd`, `compress`, stacked
/// codings such as `gzip, gzip`, unknown ones).
pub fn encoding_of(headers: &HeaderMap) -> Result<Encoding, String> {
    let mut codings = Vec::new();
    for v in headers.get_all(CONTENT_ENCODING) {
        let Ok(s) = v.to_str() else {
            return Err(String::from_utf8_lossy(v.as_bytes()).into_owned());
        };
        codings.extend(
            s.split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .filter(|c| !c.is_empty() && c != "identity"),
        );
    }
    match codings.as_slice() {
        [] => Ok(Encoding::Identity),
        [c] if c == "gzip" || c == "x-gzip" => Ok(Encoding::Gzip),
        [c] if c == "deflate" => Ok(Encoding::Deflate),
        _ => Err(codings.join(", ")),
    }
}

/// Redacts a response body frame by frame: each input frame's output is
/// released as soon as it is processed (minus the hold-back), trailers pass
/// through redacted. A gzip or deflate body is decoded and comes out
/// identity-encoded (the caller drops `Content-Encoding` and
/// `Content-Length`); decoding is done in bounded steps (at most 8 KiB of
/// input and 32 KiB of output at a time), so a decompression bomb costs
/// time, not memory. A corrupt or truncated compressed body ends with an
/// error; compressed bytes are never passed on.
pub fn redact_body<B>(
    body: B,
    patterns: Arc<Patterns>,
    encoding: Encoding,
    counter: Arc<Counter>,
) -> hudsucker::Body
where
    B: HttpBody<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<hudsucker::Error>,
{
    hudsucker::Body::from(BoxBody::new(RedactedBody::new(
        body, patterns, encoding, counter,
    )))
}

/// The body [`redact_body`] returns, as its own type.
pub struct RedactedBody<B> {
    inner: Pin<Box<B>>,
    patterns: Arc<Patterns>,
    redactor: Redactor,
    inflater: Option<Inflater>,
    /// Compressed input not yet decoded.
    pending: Bytes,
    trailers: Option<HeaderMap>,
    state: BodyState,
    counter: Arc<Counter>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Reading,
    Trailers,
    Done,
}

impl<B> RedactedBody<B> {
    pub fn new(
        body: B,
        patterns: Arc<Patterns>,
        encoding: Encoding,
        counter: Arc<Counter>,
    ) -> Self {
        let inflater = match encoding {
            Encoding::Identity => None,
            Encoding::Gzip => Some(Inflater::gzip()),
            Encoding::Deflate => Some(Inflater::deflate()),
        };
        RedactedBody {
            inner: Box::pin(body),
            redactor: Redactor::new(patterns.clone()),
            patterns,
            inflater,
            pending: Bytes::new(),
            trailers: None,
            state: BodyState::Reading,
            counter,
        }
    }

    /// Decodes (a bounded amount of) the pending input into `out`, redacted.
    fn drain(&mut self, out: &mut Vec<u8>) -> Result<(), hudsucker::Error> {
        let Some(inf) = self.inflater.as_mut() else {
            return Ok(());
        };
        let mut decoded = Zeroizing::new(Vec::new());
        while (!self.pending.is_empty() || inf.more) && out.len() < OUT_STEP {
            let slice = &self.pending[..self.pending.len().min(IN_STEP)];
            decoded.clear();
            let (consumed, progressed) = inf.step(slice, &mut decoded).map_err(decode_error)?;
            if !progressed {
                return Err(decode_error("the compressed body does not advance"));
            }
            self.pending = self.pending.slice(consumed..);
            add(&self.counter.body, self.redactor.push(&decoded, out));
        }
        Ok(())
    }

    /// The end of the body: the decoder must be complete; what was held
    /// back goes out.
    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), hudsucker::Error> {
        if let Some(inf) = &self.inflater {
            inf.check_complete().map_err(decode_error)?;
        }
        add(&self.counter.body, self.redactor.finish(out));
        Ok(())
    }
}

fn decode_error(what: &str) -> hudsucker::Error {
    hudsucker::Error::Io(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
}

impl<B> HttpBody for RedactedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<hudsucker::Error>,
{
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hudsucker::Error>>> {
        let this = self.get_mut();
        loop {
            match this.state {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Trailers => {
                    this.state = BodyState::Done;
                    if let Some(t) = this.trailers.take() {
                        return Poll::Ready(Some(Ok(Frame::trailers(t))));
                    }
                    continue;
                }
                BodyState::Reading => {}
            }
            let mut out = Vec::new();
            if this.inflater.as_ref().is_some_and(|i| i.more) || !this.pending.is_empty() {
                if let Err(e) = this.drain(&mut out) {
                    this.state = BodyState::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                if !out.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(out.into()))));
                }
                continue;
            }
            let ended = match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.state = BodyState::Done;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        if this.inflater.is_some() {
                            this.pending = data;
                        } else if !data.is_empty() && this.redactor.passes_unchanged(&data) {
                            // The common case (no secret in it, nothing held
                            // back): the frame goes on as it came, uncopied.
                            return Poll::Ready(Some(Ok(Frame::data(data))));
                        } else {
                            add(&this.counter.body, this.redactor.push(&data, &mut out));
                        }
                        false
                    }
                    Err(frame) => {
                        if let Ok(mut t) = frame.into_trailers() {
                            add(&this.counter.header, redact_headers(&mut t, &this.patterns));
                            this.trailers = Some(t);
                            true
                        } else {
                            // A frame kind http-body does not know yet: dropped.
                            false
                        }
                    }
                },
                Poll::Ready(None) => true,
            };
            if ended {
                if let Err(e) = this.finish(&mut out) {
                    this.state = BodyState::Done;
                    return Poll::Ready(Some(Err(e)));
                }
                this.state = BodyState::Trailers;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.into()))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == BodyState::Done
    }
}

/// A gzip or deflate decoder fed in bounded steps.
struct Inflater {
    kind: InflateKind,
    /// Decoded bytes (the secret may be among them): zeroized on drop.
    scratch: Zeroizing<Vec<u8>>,
    /// The last step filled `scratch`: there may be output without input.
    more: bool,
}

enum InflateKind {
    /// Waiting for (the rest of) a member's header.
    GzHeader {
        buf: Vec<u8>,
        after_member: bool,
    },
    GzBody {
        d: Box<Decompress>,
        crc: Crc,
    },
    GzTrailer {
        buf: Vec<u8>,
        crc: Crc,
    },
    /// Deflate: the first two bytes tell zlib from raw deflate.
    Sniff {
        buf: Vec<u8>,
    },
    /// Deflate: `prefix` (the sniffed bytes) is fed before the input.
    Deflate {
        d: Box<Decompress>,
        prefix: Vec<u8>,
    },
    /// The stream ended; what follows is ignored (never passed on).
    Done,
}

impl Inflater {
    fn gzip() -> Inflater {
        Inflater::with(InflateKind::GzHeader {
            buf: Vec::new(),
            after_member: false,
        })
    }

    fn deflate() -> Inflater {
        Inflater::with(InflateKind::Sniff { buf: Vec::new() })
    }

    fn with(kind: InflateKind) -> Inflater {
        Inflater {
            kind,
            scratch: Zeroizing::new(vec![0; OUT_STEP]),
            more: false,
        }
    }

    /// One step: consumes some of `input`, appends at most `OUT_STEP`
    /// decoded bytes to `out`. Returns (bytes of `input` consumed, whether
    /// anything happened at all).
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, bool), &'static str> {
        match &mut self.kind {
            InflateKind::GzHeader { buf, after_member } => {
                let old = buf.len();
                let take = input.len().min(MAX_GZIP_HEADER + 1 - old);
                buf.extend_from_slice(&input[..take]);
                let parsed = match gzip_header_len(buf) {
                    // Bytes after the last member that are not another
                    // member are ignored (never passed on), as gzip does.
                    Err(_) if *after_member => {
                        self.kind = InflateKind::Done;
                        return Ok((input.len(), true));
                    }
                    other => other?,
                };
                match parsed {
                    Some(len) => {
                        self.kind = InflateKind::GzBody {
                            d: Box::new(Decompress::new(false)),
                            crc: Crc::new(),
                        };
                        Ok((len - old, true))
                    }
                    None if buf.len() > MAX_GZIP_HEADER => Err("the gzip header is too long"),
                    None => Ok((take, take > 0)),
                }
            }
            InflateKind::GzBody { d, crc } => {
                let (consumed, produced, end) = inflate(d, input, &mut self.scratch)?;
                crc.update(&self.scratch[..produced]);
                out.extend_from_slice(&self.scratch[..produced]);
                self.more = !end && produced == self.scratch.len();
                if end {
                    let crc = std::mem::replace(crc, Crc::new());
                    self.kind = InflateKind::GzTrailer {
                        buf: Vec::new(),
                        crc,
                    };
                }
                // Flushing (no input) is progress: it clears `more`.
                Ok((
                    consumed,
                    consumed > 0 || produced > 0 || end || input.is_empty(),
                ))
            }
            InflateKind::GzTrailer { buf, crc } => {
                let take = input.len().min(8 - buf.len());
                buf.extend_from_slice(&input[..take]);
                if buf.len() == 8 {
                    let sum = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    let amount = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    if sum != crc.sum() || amount != crc.amount() {
                        return Err("the gzip body fails its checksum");
                    }
                    self.kind = InflateKind::GzHeader {
                        buf: Vec::new(),
                        after_member: true,
                    };
                }
                Ok((take, take > 0))
            }
            InflateKind::Sniff { buf } => {
                let take = input.len().min(2 - buf.len());
                buf.extend_from_slice(&input[..take]);
                if let [cmf, flg] = buf[..] {
                    let zlib = cmf & 0x0f == 8
                        && cmf >> 4 <= 7
                        && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0;
                    self.kind = InflateKind::Deflate {
                        d: Box::new(Decompress::new(zlib)),
                        prefix: vec![cmf, flg],
                    };
                    self.more = true;
                }
                Ok((take, take > 0))
            }
            InflateKind::Deflate { d, prefix } => {
                let from_prefix = !prefix.is_empty();
                let src: &[u8] = if from_prefix { &prefix[..] } else { input };
                let (consumed, produced, end) = inflate(d, src, &mut self.scratch)?;
                out.extend_from_slice(&self.scratch[..produced]);
                // Flushing (no input) is progress: it clears `more`.
                let progressed = consumed > 0 || produced > 0 || end || src.is_empty();
                let consumed_input = if from_prefix {
                    prefix.drain(..consumed);
                    0
                } else {
                    consumed
                };
                // The sniffed bytes are decoded even if no input follows.
                self.more = !end && (produced == self.scratch.len() || !prefix.is_empty());
                if end {
                    self.kind = InflateKind::Done;
                }
                Ok((consumed_input, progressed))
            }
            InflateKind::Done => Ok((input.len(), true)),
        }
    }

    /// The body ended: it must have ended at the end of a stream (an empty
    /// body is fine too).
    fn check_complete(&self) -> Result<(), &'static str> {
        match &self.kind {
            InflateKind::Done => Ok(()),
            InflateKind::GzHeader { buf, .. } if buf.is_empty() => Ok(()),
            InflateKind::Sniff { buf } if buf.is_empty() => Ok(()),
            _ => Err("the compressed body is truncated"),
        }
    }
}

/// One call of the decompressor: (consumed, produced, stream end).
fn inflate(
    d: &mut Decompress,
    input: &[u8],
    scratch: &mut [u8],
) -> Result<(usize, usize, bool), &'static str> {
    let (in0, out0) = (d.total_in(), d.total_out());
    let status = d
        .decompress(input, scratch, FlushDecompress::None)
        .map_err(|_corrupt| "the compressed body is corrupt")?;
    // At most the lengths of `input` and `scratch`.
    let consumed = (d.total_in() - in0) as usize;
    let produced = (d.total_out() - out0) as usize;
    Ok((consumed, produced, status == Status::StreamEnd))
}

/// The length of the gzip member header at the start of `b` (RFC 1952
/// §2.3), `None` if more bytes are needed.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, &'static str> {
    for (i, want) in [0x1f, 0x8b, 8].into_iter().enumerate() {
        if b.get(i).is_some_and(|&x| x != want) {
            return Err("not a gzip body");
        }
    }
    if b.len() < 10 {
        return Ok(None);
    }
    let flags = b[3];
    if flags & 0xe0 != 0 {
        return Err("not a gzip body (reserved flags)");
    }
    let mut i = 10;
    if flags & 0x04 != 0 {
        let Some(x) = b.get(i..i + 2) else {
            return Ok(None);
        };
        i += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [0x08, 0x10] {
        if flags & flag != 0 {
            match b.get(i..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(z) => i += z + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & 0x02 != 0 {
        i += 2;
    }
    Ok((b.len() >= i).then_some(i))
}

// ---------------------------------------------------------------------------
// WebSocket

/// Relays the server → client half of a WebSocket connection, redacted.
///
/// Frames are parsed as they arrive (RFC 6455 §5.2). Control frames
/// (close, ping, pong) pass with their payload redacted (cut to 125 bytes
/// if it grew). Data messages are streamed through one [`Redactor`] each
/// (a secret split over fragments is caught) and re-framed: every piece
/// read (at most 64 KiB) goes out as its own frame as soon as it is
/// redacted; the message's first frame keeps the opcode, the others are
/// continuations, and FIN is on the last, which carries what the redactor
/// held back. Re-fragmenting is allowed (§5.4: an intermediary may change
/// the fragmentation of a message when no extension is negotiated it does
/// not understand); the caller strips `Sec-WebSocket-Extensions` from the
/// handshake so no permessage-deflate (RSV1) is ever in use; a frame with
/// an RSV bit set ends the relay with an error. Memory stays bounded
/// whatever the frame size. A masked frame (servers must not mask) is
/// unmasked and sent on unmasked. Returns at the server's end of stream
/// (after shutting `downstream` down) or at the first protocol or I/O error.
pub async fn relay_ws_redacted<R, W>(
    mut upstream: R,
    mut downstream: W,
    patterns: Arc<Patterns>,
    counter: Arc<Counter>,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // The message in progress: its redactor, its opcode, whether a frame of
    // it has been sent yet.
    let mut message: Option<(Redactor, u8, bool)> = None;
    let mut piece = vec![0u8; WS_PIECE];
    let mut out = Vec::with_capacity(WS_PIECE + 1024);
    loop {
        let mut head = [0u8; 2];
        if upstream.read(&mut head[..1]).await? == 0 {
            if message.is_some() {
                return Err(ws_error("the server ended the stream inside a message"));
            }
            downstream.shutdown().await?;
            return Ok(());
        }
        upstream.read_exact(&mut head[1..]).await?;
        let fin = head[0] & 0x80 != 0;
        if head[0] & 0x70 != 0 {
            return Err(ws_error("a frame uses an extension (RSV bits set)"));
        }
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => u64::from(upstream.read_u16().await?),
            127 => upstream.read_u64().await?,
            n => u64::from(n),
        };
        let mut mask = [0u8; 4];
        if masked {
            upstream.read_exact(&mut mask).await?;
        }
        match opcode {
            0x8..=0xA => {
                if !fin || len > 125 {
                    return Err(ws_error("a control frame is fragmented or too long"));
                }
                let mut payload = Zeroizing::new(vec![0u8; len as usize]);
                upstream.read_exact(&mut payload).await?;
                if masked {
                    unmask(&mut payload, mask, 0);
                }
                let payload = match patterns.redact_value(&payload) {
                    Some((mut new, n)) => {
                        add(&counter.frame, n);
                        new.truncate(125);
                        Zeroizing::new(new)
                    }
                    None => payload,
                };
                out.clear();
                frame_header(&mut out, true, opcode, payload.len() as u64);
                out.extend_from_slice(&payload);
                downstream.write_all(&out).await?;
                downstream.flush().await?;
            }
            0x0..=0x2 => {
                let (mut redactor, msg_opcode, mut sent) = match (opcode, message.take()) {
                    (0, Some(m)) => m,
                    (0, None) => return Err(ws_error("a continuation frame starts no message")),
                    (_, Some(_)) => return Err(ws_error("a new message inside a message")),
                    (op, None) => (Redactor::new(patterns.clone()), op, false),
                };
                let mut remaining = len;
                let mut offset = 0u64;
                while remaining > 0 {
                    let want = usize::try_from(remaining.min(WS_PIECE as u64)).unwrap_or(WS_PIECE);
                    let got = upstream.read(&mut piece[..want]).await?;
                    if got == 0 {
                        return Err(ws_error("the server ended the stream inside a frame"));
                    }
                    if masked {
                        unmask(&mut piece[..got], mask, offset);
                    }
                    remaining -= got as u64;
                    offset += got as u64;
                    let mut data = Vec::with_capacity(got + 64);
                    add(&counter.frame, redactor.push(&piece[..got], &mut data));
                    piece[..got].fill(0);
                    if !data.is_empty() {
                        let op = if sent { 0 } else { msg_opcode };
                        write_frame(&mut downstream, &mut out, false, op, &data).await?;
                        sent = true;
                    }
                }
                if fin {
                    let mut data = Vec::new();
                    add(&counter.frame, redactor.finish(&mut data));
                    let op = if sent { 0 } else { msg_opcode };
                    write_frame(&mut downstream, &mut out, true, op, &data).await?;
                } else {
                    message = Some((redactor, msg_opcode, sent));
                }
            }
            _ => return Err(ws_error("a frame with a reserved opcode")),
        }
    }
}

fn ws_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("websocket: {what}"))
}

/// XORs `data` (which starts `offset` bytes into the payload) with `mask`.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: u64) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[((offset + i as u64) % 4) as usize];
    }
}

/// An unmasked frame header (server → client).
fn frame_header(out: &mut Vec<u8>, fin: bool, opcode: u8, len: u64) {
    out.push(if fin { 0x80 } else { 0 } | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut Vec<u8>,
    fin: bool,
    opcode: u8,
    payload: &[u8],
) -> io::Result<()> {
    buf.clear();
    frame_header(buf, fin, opcode, payload.len() as u64);
    buf.extend_from_slice(payload);
    w.write_all(buf).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{ExportRole, Injection};
    use crate::secret::Secret;
    use std::collections::VecDeque;
    use std::io::Write as _;

    /// xorshift64*: deterministic, no dev-dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const SECRET: &str = "sk-live_T0k/e+n=9xYz:Q~"; // '/', '+', '=', ':' have percent forms
    const PH: &str = "sk-AbCdEfGhIjKlMnOpQrS"; // not the same length: not length preserving

    fn cred(format: KeyFormat, prefix: &str, value: &str) -> ResolvedCredential {
        ResolvedCredential {
            provider: "p".into(),
            connection: "default".into(),
            injection: Injection {
                name: "authorization".into(),
                prefix: prefix.into(),
                format,
                source: ExportRole::ApiKey,
            },
            value: Secret::new(value.into()),
            expires_at: None,
            extra: Vec::new(),
            parts: Vec::new(),
            cookie_names: Vec::new(),
        }
    }

    #[test]
    fn each_cookie_of_a_browser_session_is_redacted() {
        let mut c = cred(
            KeyFormat::Header,
            "",
            "li_at=AQEDcookieSecret1; JSESSIONID=\"ajax:55554444\"",
        );
        c.parts = vec![
            Secret::new("AQEDcookieSecret1".into()),
            Secret::new("\"ajax:55554444\"".into()),
            Secret::new("ajax:55554444".into()),
        ];
        let p = Patterns::for_credential(&c, PH);
        let body = br#"{"cookie":"li_at=AQEDcookieSecret1; JSESSIONID=\"ajax:55554444\"","csrf":"ajax:55554444"}"#;
        let (out, n) = p.redact_value(body).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(n >= 3, "{out}");
        assert!(
            !out.contains("AQEDcookieSecret1") && !out.contains("55554444"),
            "{out}"
        );
    }

    fn header_patterns() -> Arc<Patterns> {
        Arc::new(Patterns::for_credential(
            &cred(KeyFormat::Header, "Bearer ", &format!("Bearer {SECRET}")),
            PH,
        ))
    }

    /// Every form of `s` a response might carry.
    fn forms(s: &str) -> Vec<String> {
        let pct = crate::percent::encode(s);
        vec![
            s.to_string(),
            pct.clone(),
            String::from_utf8(lower_hex(pct.as_bytes())).unwrap(),
            STANDARD.encode(s),
            STANDARD_NO_PAD.encode(s),
            URL_SAFE_NO_PAD.encode(s),
        ]
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn assert_clean(out: &[u8], secret: &str) {
        for f in forms(secret) {
            assert!(
                !contains(out, f.as_bytes()),
                "form {f} left in {}",
                String::from_utf8_lossy(out)
            );
        }
    }

    fn stream(p: &Arc<Patterns>, chunks: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut r = Redactor::new(p.clone());
        let mut out = Vec::new();
        let mut n = 0;
        for c in chunks {
            let unchanged = r.passes_unchanged(c);
            let before = out.len();
            n += r.push(c, &mut out);
            if unchanged {
                assert_eq!(&out[before..], *c, "a chunk said unchanged was changed");
                assert_eq!(r.held_back(), 0);
            }
            assert!(r.held_back() < p.max_len().max(1));
        }
        n += r.finish(&mut out);
        (out, n)
    }

    #[test]
    fn header_credential_forms_are_replaced_by_the_same_form_of_the_placeholder() {
        let p = header_patterns();
        for (f, want) in forms(SECRET).into_iter().zip(forms(PH)) {
            let text = format!("x {f} y");
            let (out, n) = p.redact_value(text.as_bytes()).unwrap();
            assert_eq!(n, 1, "{f}");
            assert_eq!(String::from_utf8(out).unwrap(), format!("x {want} y"));
        }
        // The prefix is not part of the secret; the whole header value is
        // caught through the bare secret.
        let (out, _) = p
            .redact_value(format!("Bearer {SECRET}").as_bytes())
            .unwrap();
        assert_eq!(out, format!("Bearer {PH}").as_bytes());
        assert!(!p.length_preserving());
        assert_eq!(p.redact_value(b"nothing here"), None);
    }

    #[test]
    fn debug_shows_counts_not_secrets() {
        let p = header_patterns();
        let shown = format!("{p:?} {:?}", Redactor::new(p.clone()));
        assert!(shown.contains("forms"), "{shown}");
        for f in forms(SECRET) {
            assert!(!shown.contains(&f), "{shown}");
        }
        assert!(!shown.contains("T0k"));
    }

    #[test]
    fn query_credential_is_the_raw_value() {
        let secret = "AIzaSyA-query-key-123";
        let ph = "AIzaSyB-placeholder-9";
        let p = Patterns::for_credential(&cred(KeyFormat::Query, "", secret), ph);
        assert!(p.length_preserving());
        let url = format!("https://x/?key={secret}&k2={}", STANDARD.encode(secret));
        let (out, n) = p.redact_value(url.as_bytes()).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("https://x/?key={ph}&k2={}", STANDARD.encode(ph))
        );
    }

    #[test]
    fn basic_credential_token_and_parts() {
        let key = "rk_live_basicuser01";
        let ph = "rk_PLACEHOLDER_abcd";
        let value = format!("Basic {}", STANDARD.encode(format!("{key}:")));
        let p = Patterns::for_credential(&cred(KeyFormat::Basic, "", &value), ph);
        let echoed = format!(r#"{{"authorization":"{value}","user":"{key}"}}"#);
        let (out, n) = p.redact_value(echoed.as_bytes()).unwrap();
        assert_eq!(n, 2);
        let want = format!(
            r#"{{"authorization":"Basic {}","user":"{ph}"}}"#,
            STANDARD.encode(format!("{ph}:"))
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);

        // user:pass, both secret; a key with a colon is also caught whole.
        let value = format!("Basic {}", STANDARD.encode("acct-user-01:pass-word-02"));
        let p = Patterns::for_credential(&cred(KeyFormat::Basic, "", &value), ph);
        let (out, _) = p.redact_value(b"u=acct-user-01 p=pass-word-02").unwrap();
        assert_eq!(out, format!("u={ph} p={ph}").as_bytes());
        let value = format!("Basic {}", STANDARD.encode("key-with:colon-inside:"));
        let p = Patterns::for_credential(&cred(KeyFormat::Basic, "", &value), ph);
        let (out, _) = p.redact_value(b"[key-with:colon-inside]").unwrap();
        assert_eq!(out, format!("[{ph}]").as_bytes());
    }

    #[test]
    fn re_encoded_tokens_and_secrets_are_caught() {
        // A Basic token whose padding an echo percent-encodes, or drops, or
        // whose `/` it JSON-escapes: each decodes to the key, so each goes.
        let ph = "rk_PLACEHOLDER_abcd";
        for key in ["rk_live_basicuser01", "a/b?c=d&e+f>g~h", "zz>>>??>>>??"] {
            let token = STANDARD.encode(format!("{key}:"));
            let p = Patterns::for_credential(
                &cred(KeyFormat::Basic, "", &format!("Basic {token}")),
                ph,
            );
            let echoes = [
                format!(
                    "Location: /login?auth={}",
                    crate::percent::encode(&format!("Basic {token}"))
                ),
                format!("t={}", token.trim_end_matches('=')),
                format!("t={}", URL_SAFE_NO_PAD.encode(format!("{key}:"))),
                format!(r#"{{"t":"{}"}}"#, token.replace('/', "\\/")),
                format!("k={}", crate::percent::encode(key)),
            ];
            for echo in echoes {
                let out = p
                    .redact_value(echo.as_bytes())
                    .map(|(o, _)| o)
                    .unwrap_or_else(|| echo.clone().into_bytes());
                let out = String::from_utf8(out).unwrap();
                let decoded = crate::percent::decode(&out).replace("\\/", "/");
                for b64 in
                    decoded.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_".contains(c)))
                {
                    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                        if let Ok(raw) = engine.decode(b64) {
                            assert!(
                                !String::from_utf8_lossy(&raw).contains(key),
                                "{key}: {echo} -> {out}"
                            );
                        }
                    }
                }
                assert!(!decoded.contains(key), "{key}: {echo} -> {out}");
            }
        }
    }

    #[test]
    fn short_forms_are_not_searched_and_forms_are_deduplicated() {
        // "abc": every form is shorter than 8 bytes.
        let p = Patterns::for_credential(&cred(KeyFormat::Query, "", "abc"), "xyz");
        assert!(p.is_empty());
        assert_eq!(p.redact_value(b"abc abc"), None);
        let mut out = Vec::new();
        let mut r = Redactor::new(Arc::new(p));
        r.push(b"abc", &mut out);
        r.finish(&mut out);
        assert_eq!(out, b"abc");
        // A plain alphanumeric secret: percent forms equal the bare one, and
        // a length that is a multiple of 3 makes padded = unpadded base64 =
        // base64url: two forms left.
        let p =
            Patterns::for_credential(&cred(KeyFormat::Query, "", "abcdef123456"), "xyzxyz987654");
        assert_eq!(p.pats.len(), 2, "{p:?}");
        assert!(p.length_preserving());
        assert_eq!(p.max_len(), 16);
    }

    #[test]
    fn longest_form_wins_at_the_same_start() {
        // "sk-live_T0k/e+n=9xYz:Q~" is 23 bytes: base64 has one '=' of padding.
        let p = header_patterns();
        let padded = STANDARD.encode(SECRET);
        assert!(padded.ends_with('='));
        let (out, n) = p.redact_value(padded.as_bytes()).unwrap();
        assert_eq!(n, 1);
        assert_eq!(out, STANDARD.encode(PH).as_bytes());
        // The padding arrives in its own chunk: still the padded form.
        let (head, tail) = padded.split_at(padded.len() - 1);
        let (out, n) = stream(&p, &[head.as_bytes(), tail.as_bytes()]);
        assert_eq!((out, n), (STANDARD.encode(PH).into_bytes(), 1));
    }

    #[test]
    fn only_a_possible_secret_start_is_held_back() {
        let p = header_patterns();
        let mut r = Redactor::new(p.clone());
        let mut out = Vec::new();
        r.push(b"data: {\"x\":1}\n\n", &mut out);
        assert_eq!(r.held_back(), 0);
        assert_eq!(out, b"data: {\"x\":1}\n\n");
        out.clear();
        r.push(b"data: sk-li", &mut out);
        assert_eq!(out, b"data: ");
        assert_eq!(r.held_back(), 5);
        out.clear();
        r.push(b"ve_T0k/e+n=9xYz:Q~\n\n", &mut out);
        assert_eq!(r.held_back(), 0);
        assert_eq!(out, format!("{PH}\n\n").as_bytes());
        // A complete secret at the very end is not held back either.
        out.clear();
        r.push(SECRET.as_bytes(), &mut out);
        assert_eq!(r.held_back(), 0);
        assert_eq!(out, PH.as_bytes());
        // A false start is released as soon as it cannot be a secret.
        out.clear();
        r.push(b"sk-lix", &mut out);
        assert_eq!(out, b"sk-lix");
        assert_eq!(r.finish(&mut out), 0);
    }

    /// Bodies with every form of the secret after 60 decoys (near misses,
    /// prefixes, secret-shaped strings), split at random points: streaming
    /// gives exactly the whole-buffer result, which matches the naive
    /// oracle and contains no form of the secret.
    #[test]
    fn randomized_splits_equal_whole_buffer_redaction() {
        let p = header_patterns();
        let oracle = Patterns {
            matcher: Matcher::Naive,
            ..Patterns::new(
                p.pats
                    .iter()
                    .zip(&p.reps)
                    .map(|(a, b)| (a.to_vec(), b.clone()))
                    .collect(),
            )
        };
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let all_forms = forms(SECRET);
        let alphabet =
            b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_/+=%:~ \n\"";
        for round in 0..300 {
            let mut body = Vec::new();
            for _ in 0..60 {
                let f = all_forms[rng.below(all_forms.len())].as_bytes();
                let mut decoy = f.to_vec();
                match rng.below(3) {
                    // one byte changed
                    0 => {
                        let i = rng.below(decoy.len());
                        decoy[i] = if decoy[i] == b'#' { b'@' } else { b'#' };
                    }
                    // a proper prefix
                    1 => decoy.truncate(1 + rng.below(decoy.len() - 1)),
                    // secret-shaped
                    _ => {
                        for b in decoy.iter_mut().skip(3) {
                            *b = alphabet[rng.below(alphabet.len())];
                        }
                    }
                }
                body.extend_from_slice(&decoy);
                for _ in 0..rng.below(4) {
                    body.push(alphabet[rng.below(alphabet.len())]);
                }
            }
            for f in &all_forms {
                body.extend_from_slice(f.as_bytes());
                if rng.below(2) == 0 {
                    body.extend_from_slice(b"\n\n");
                }
            }
            let whole = p
                .redact_value(&body)
                .map(|(v, _)| v)
                .unwrap_or_else(|| body.clone());
            let naive = oracle.redact_value(&body).map(|(v, _)| v).unwrap();
            assert_eq!(whole, naive, "round {round}");
            assert_clean(&whole, SECRET);

            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut rest = &body[..];
            let one_byte = round % 10 == 0;
            while !rest.is_empty() {
                let n = if one_byte {
                    1
                } else {
                    1 + rng.below(rest.len().min(40))
                };
                let (a, b) = rest.split_at(n);
                chunks.push(a);
                rest = b;
            }
            let (out, n) = stream(&p, &chunks);
            assert_eq!(out, whole, "round {round}");
            assert!(n >= all_forms.len());
        }
    }

    // --- headers and encodings

    #[test]
    fn headers_every_value_is_redacted() {
        let p = header_patterns();
        let mut h = HeaderMap::new();
        h.insert(
            "location",
            format!("https://x/cb?token={}", crate::percent::encode(SECRET))
                .parse()
                .unwrap(),
        );
        h.append("set-cookie", "a=1".parse().unwrap());
        h.append(
            "set-cookie",
            format!("t={}; Path=/", URL_SAFE_NO_PAD.encode(SECRET))
                .parse()
                .unwrap(),
        );
        h.insert("x-echo", format!("Bearer {SECRET}").parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        let n = redact_headers(&mut h, &p);
        assert_eq!(n, 3);
        assert_eq!(
            h["location"],
            format!("https://x/cb?token={}", crate::percent::encode(PH))
        );
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies.len(), 2);
        assert_eq!(cookies[0], "a=1");
        assert_eq!(
            cookies[1],
            format!("t={}; Path=/", URL_SAFE_NO_PAD.encode(PH)).as_str()
        );
        assert_eq!(h["x-echo"], format!("Bearer {PH}").as_str());
        assert_eq!(h["content-type"], "text/plain");
        // A secret in a header name: the header goes.
        let p = Patterns::new(vec![(b"secretname01".to_vec(), b"placeholder1".to_vec())]);
        h.insert("x-secretname01", "v".parse().unwrap());
        assert_eq!(redact_headers(&mut h, &p), 1);
        assert!(!h.contains_key("x-secretname01"));
    }

    #[test]
    fn encodings() {
        let enc = |vals: &[&str]| {
            let mut h = HeaderMap::new();
            for v in vals {
                h.append(CONTENT_ENCODING, v.parse().unwrap());
            }
            encoding_of(&h)
        };
        assert_eq!(enc(&[]), Ok(Encoding::Identity));
        assert_eq!(enc(&["identity"]), Ok(Encoding::Identity));
        assert_eq!(enc(&["GZIP"]), Ok(Encoding::Gzip));
        assert_eq!(enc(&["x-gzip"]), Ok(Encoding::Gzip));
        assert_eq!(enc(&[" deflate "]), Ok(Encoding::Deflate));
        assert_eq!(enc(&["br"]), Err("br".into()));
        assert_eq!(enc(&["zstd"]), Err("zstd".into()));
        assert_eq!(enc(&["compress"]), Err("compress".into()));
        assert_eq!(enc(&["gzip, gzip"]), Err("gzip, gzip".into()));
        assert_eq!(enc(&["gzip", "br"]), Err("gzip, br".into()));
        assert_eq!(enc(&["foo"]), Err("foo".into()));
    }

    // --- bodies

    struct TestBody {
        frames: VecDeque<Result<Frame<Bytes>, hudsucker::Error>>,
        /// After the frames: pending forever (a stream still open).
        open: bool,
    }

    impl TestBody {
        fn new(chunks: Vec<Vec<u8>>) -> Self {
            TestBody {
                frames: chunks
                    .into_iter()
                    .map(|c| Ok(Frame::data(c.into())))
                    .collect(),
                open: false,
            }
        }
    }

    impl HttpBody for TestBody {
        type Data = Bytes;
        type Error = hudsucker::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hudsucker::Error>>> {
            let this = self.get_mut();
            match this.frames.pop_front() {
                Some(f) => Poll::Ready(Some(f)),
                None if this.open => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    struct Polled {
        data: Vec<Bytes>,
        trailers: Option<HeaderMap>,
        error: Option<String>,
        pending: bool,
    }

    /// Polls until the end, an error or Pending.
    fn poll_all<B: HttpBody<Data = Bytes, Error = hudsucker::Error> + Unpin>(
        body: &mut B,
    ) -> Polled {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut p = Polled {
            data: vec![],
            trailers: None,
            error: None,
            pending: false,
        };
        loop {
            match Pin::new(&mut *body).poll_frame(&mut cx) {
                Poll::Pending => {
                    p.pending = true;
                    return p;
                }
                Poll::Ready(None) => return p,
                Poll::Ready(Some(Err(e))) => {
                    p.error = Some(format!("{e:?}"));
                    return p;
                }
                Poll::Ready(Some(Ok(f))) => match f.into_data() {
                    Ok(d) => p.data.push(d),
                    Err(f) => p.trailers = f.into_trailers().ok(),
                },
            }
        }
    }

    fn joined(data: &[Bytes]) -> Vec<u8> {
        data.iter().flat_map(|b| b.iter().copied()).collect()
    }

    fn split_random(data: &[u8], rng: &mut Rng, max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(max));
            out.push(rest[..n].to_vec());
            rest = &rest[n..];
        }
        out
    }

    fn reflected() -> (Vec<u8>, Vec<u8>) {
        let mut plain = Vec::new();
        let mut want = Vec::new();
        for (i, (f, r)) in forms(SECRET).into_iter().zip(forms(PH)).enumerate() {
            plain.extend_from_slice(format!("data: {{\"n\":{i},\"v\":\"{f}\"}}\n\n").as_bytes());
            want.extend_from_slice(format!("data: {{\"n\":{i},\"v\":\"{r}\"}}\n\n").as_bytes());
        }
        (plain, want)
    }

    #[test]
    fn identity_body_streams_frame_by_frame() {
        let p = header_patterns();
        let counter = Arc::new(Counter::default());
        // An SSE stream still open: each event goes out at once, the
        // secret split over two frames is caught.
        let half = SECRET.len() / 2;
        let chunks = vec![
            b"data: one\n\n".to_vec(),
            format!("data: {}", &SECRET[..half]).into_bytes(),
            format!("{}\n\n", &SECRET[half..]).into_bytes(),
        ];
        let mut inner = TestBody::new(chunks);
        inner.open = true;
        let mut body = RedactedBody::new(inner, p.clone(), Encoding::Identity, counter.clone());
        let got = poll_all(&mut body);
        assert!(got.pending && got.error.is_none());
        assert_eq!(got.data.len(), 3);
        assert_eq!(&got.data[0][..], b"data: one\n\n");
        assert_eq!(&got.data[1][..], b"data: ");
        assert_eq!(joined(&got.data[2..]), format!("{PH}\n\n").into_bytes());
        assert_eq!(counter.body.load(Ordering::Relaxed), 1);

        // Random splits, trailers redacted.
        let mut rng = Rng(7);
        let (plain, want) = reflected();
        for _ in 0..20 {
            let mut inner = TestBody::new(split_random(&plain, &mut rng, 50));
            let mut t = HeaderMap::new();
            t.insert("x-echo", SECRET.parse().unwrap());
            inner.frames.push_back(Ok(Frame::trailers(t)));
            let counter = Arc::new(Counter::default());
            let mut body = RedactedBody::new(inner, p.clone(), Encoding::Identity, counter.clone());
            let got = poll_all(&mut body);
            assert!(!got.pending && got.error.is_none());
            assert_eq!(joined(&got.data), want);
            assert_eq!(got.trailers.unwrap()["x-echo"], PH);
            assert_eq!(counter.body.load(Ordering::Relaxed), 6);
            assert_eq!(counter.header.load(Ordering::Relaxed), 1);
            assert!(body.is_end_stream());
        }
    }

    #[tokio::test]
    async fn redact_body_is_a_hudsucker_body() {
        use http_body_util::BodyExt;
        let (plain, want) = reflected();
        let counter = Arc::new(Counter::default());
        let body = redact_body(
            TestBody::new(vec![plain]),
            header_patterns(),
            Encoding::Identity,
            counter.clone(),
        );
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], &want[..]);
        assert_eq!(counter.body.load(Ordering::Relaxed), 6);
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run_body(chunks: Vec<Vec<u8>>, enc: Encoding) -> Polled {
        let mut body = RedactedBody::new(
            TestBody::new(chunks),
            header_patterns(),
            enc,
            Arc::new(Counter::default()),
        );
        poll_all(&mut body)
    }

    #[test]
    fn gzip_and_deflate_bodies_are_decoded_and_redacted() {
        let (plain, want) = reflected();
        let mut rng = Rng(11);
        let zlib = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&plain).unwrap();
            e.finish().unwrap()
        };
        let raw = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(&plain).unwrap();
            e.finish().unwrap()
        };
        // Two gzip members, the secret split between them.
        let cut = plain.len() / 2 + 3;
        let mut two = gzip(&plain[..cut]);
        two.extend(gzip(&plain[cut..]));
        let cases = [
            (gzip(&plain), Encoding::Gzip),
            (two, Encoding::Gzip),
            (zlib, Encoding::Deflate),
            (raw, Encoding::Deflate),
        ];
        for (compressed, enc) in cases {
            for max in [1, 7, 100, 100_000] {
                let got = run_body(split_random(&compressed, &mut rng, max), enc);
                assert!(got.error.is_none(), "{enc:?} {:?}", got.error);
                assert_eq!(joined(&got.data), want, "{enc:?} split {max}");
            }
        }
        // An empty raw deflate stream (two bytes) in one frame, and a zlib
        // body whose first frame is exactly the two sniffed bytes.
        let got = run_body(vec![vec![3, 0]], Encoding::Deflate);
        assert!(
            got.error.is_none() && joined(&got.data).is_empty(),
            "{:?}",
            got.error
        );
        let zlib = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"x").unwrap();
            e.finish().unwrap()
        };
        let got = run_body(
            vec![zlib[..2].to_vec(), zlib[2..].to_vec()],
            Encoding::Deflate,
        );
        assert!(got.error.is_none());
        assert_eq!(joined(&got.data), b"x");
        // Empty compressed body (HEAD, 204): nothing, no error.
        let got = run_body(vec![], Encoding::Gzip);
        assert!(got.error.is_none() && got.data.is_empty());
        // A gzip header with FEXTRA, FNAME, FCOMMENT and FHCRC.
        let mut g = gzip(b"hello sk-live_T0k/e+n=9xYz:Q~");
        let mut h = g[..10].to_vec();
        h[3] = 0x04 | 0x08 | 0x10 | 0x02;
        h.extend_from_slice(&[3, 0, b'a', b'b', b'c']);
        h.extend_from_slice(b"name\0comment\0");
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(&g[10..]);
        g = h;
        let got = run_body(split_random(&g, &mut rng, 3), Encoding::Gzip);
        assert_eq!(joined(&got.data), format!("hello {PH}").into_bytes());
        // Trailing garbage after the last member is dropped, never passed on.
        let mut g = gzip(b"ok");
        g.extend_from_slice(SECRET.as_bytes());
        let got = run_body(vec![g], Encoding::Gzip);
        assert!(got.error.is_none());
        assert_eq!(joined(&got.data), b"ok");
    }

    #[test]
    fn gzip_sse_events_go_out_as_their_frames_arrive() {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut frames = Vec::new();
        for event in ["data: one\n\n".to_string(), format!("data: {SECRET}\n\n")] {
            e.write_all(event.as_bytes()).unwrap();
            e.flush().unwrap();
            frames.push(std::mem::take(e.get_mut()));
        }
        let mut inner = TestBody::new(frames);
        inner.open = true;
        let counter = Arc::new(Counter::default());
        let mut body = RedactedBody::new(inner, header_patterns(), Encoding::Gzip, counter.clone());
        let got = poll_all(&mut body);
        assert!(got.pending && got.error.is_none());
        assert_eq!(
            joined(&got.data),
            format!("data: one\n\ndata: {PH}\n\n").into_bytes()
        );
        assert_eq!(counter.body.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn output_of_exactly_the_step_size_is_flushed() {
        let plain: Vec<u8> = (0..2 * OUT_STEP).map(|i| (i * 7 % 251) as u8).collect();
        let got = run_body(vec![gzip(&plain)], Encoding::Gzip);
        assert!(got.error.is_none(), "{:?}", got.error);
        assert_eq!(joined(&got.data), plain);
    }

    #[test]
    fn corrupt_or_truncated_compressed_bodies_end_with_an_error() {
        let (plain, _) = reflected();
        let good = gzip(&plain);
        // Corrupt deflate data.
        let mut bad = good.clone();
        for b in &mut bad[12..40] {
            *b ^= 0x5a;
        }
        let got = run_body(vec![bad], Encoding::Gzip);
        assert!(got.error.is_some());
        // A wrong checksum.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 6] ^= 1;
        let got = run_body(vec![bad], Encoding::Gzip);
        assert!(
            got.error.as_deref().unwrap().contains("checksum"),
            "{:?}",
            got.error
        );
        // Truncated.
        let got = run_body(vec![good[..good.len() - 3].to_vec()], Encoding::Gzip);
        assert!(got.error.as_deref().unwrap().contains("truncated"));
        // Not gzip at all: never passed on raw.
        let got = run_body(vec![plain.clone()], Encoding::Gzip);
        assert!(got.error.is_some());
        assert_clean(&joined(&got.data), SECRET);
        let got = run_body(vec![plain], Encoding::Deflate);
        assert!(got.error.is_some());
        assert_clean(&joined(&got.data), SECRET);
    }

    #[test]
    fn a_decompression_bomb_comes_out_in_bounded_frames() {
        let size = 20 * 1024 * 1024;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..20 {
            e.write_all(&zeros).unwrap();
        }
        e.write_all(SECRET.as_bytes()).unwrap();
        let compressed = e.finish().unwrap();
        assert!(compressed.len() < 64 * 1024);
        let mut body = RedactedBody::new(
            TestBody::new(vec![compressed]),
            header_patterns(),
            Encoding::Gzip,
            Arc::new(Counter::default()),
        );
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut total = 0;
        let mut tail = Vec::new();
        while let Poll::Ready(Some(f)) = Pin::new(&mut body).poll_frame(&mut cx) {
            let d = f.unwrap().into_data().unwrap();
            assert!(d.len() <= OUT_STEP + IN_STEP + 64, "frame of {}", d.len());
            total += d.len();
            tail = d.to_vec();
        }
        assert_eq!(total, size + PH.len());
        assert!(tail.ends_with(PH.as_bytes()));
    }

    // --- WebSocket

    fn ws_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(&mut out, fin, opcode, payload.len() as u64);
        match mask {
            None => out.extend_from_slice(payload),
            Some(m) => {
                out[1] |= 0x80;
                out.extend_from_slice(&m);
                let mut p = payload.to_vec();
                unmask(&mut p, m, 0);
                out.extend_from_slice(&p);
            }
        }
        out
    }

    /// (fin, opcode, payload) of every frame in `b`.
    fn parse_frames(mut b: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
            let (len, h) = match b[1] & 0x7f {
                126 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            out.push((b[0] & 0x80 != 0, b[0] & 0x0f, b[h..h + len].to_vec()));
            b = &b[h + len..];
        }
        out
    }

    /// Whole messages (opcode, payload) and control frames, in order;
    /// checks the fragmentation rules on the way.
    fn messages(frames: &[(bool, u8, Vec<u8>)]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        let mut cur: Option<(u8, Vec<u8>)> = None;
        for (fin, op, p) in frames {
            if *op >= 8 {
                assert!(*fin && p.len() <= 125);
                out.push((*op, p.clone()));
                continue;
            }
            match (&mut cur, op) {
                (None, 1 | 2) => cur = Some((*op, p.clone())),
                (Some((_, buf)), 0) => buf.extend_from_slice(p),
                _ => panic!("bad fragmentation: opcode {op}"),
            }
            if *fin {
                out.push(cur.take().unwrap());
            }
        }
        assert!(cur.is_none());
        out
    }

    async fn relay(input: Vec<u8>) -> (io::Result<()>, Vec<u8>, Arc<Counter>) {
        let (mut up_w, up_r) = tokio::io::duplex(1024);
        let (down_w, mut down_r) = tokio::io::duplex(1024);
        let counter = Arc::new(Counter::default());
        let c = counter.clone();
        let task =
            tokio::spawn(
                async move { relay_ws_redacted(up_r, down_w, header_patterns(), c).await },
            );
        let writer = tokio::spawn(async move {
            up_w.write_all(&input).await.unwrap();
        });
        let mut out = Vec::new();
        down_r.read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        (task.await.unwrap(), out, counter)
    }

    #[tokio::test]
    async fn ws_secret_split_over_fragments_with_pings_between() {
        let half = 9;
        let mut input = Vec::new();
        input.extend(ws_frame(
            false,
            1,
            format!("{{\"k\":\"{}", &SECRET[..half]).as_bytes(),
            None,
        ));
        input.extend(ws_frame(true, 9, format!("ping {SECRET}").as_bytes(), None));
        input.extend(ws_frame(false, 0, &SECRET.as_bytes()[half..half + 4], None));
        input.extend(ws_frame(true, 10, b"pong", None));
        input.extend(ws_frame(
            true,
            0,
            format!("{}\"}}", &SECRET[half + 4..]).as_bytes(),
            None,
        ));
        input.extend(ws_frame(
            true,
            2,
            STANDARD.encode(SECRET).as_bytes(),
            Some([1, 2, 3, 4]),
        ));
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(format!("bye {SECRET}").as_bytes());
        input.extend(ws_frame(true, 8, &close, None));
        let (res, out, counter) = relay(input).await;
        res.unwrap();
        assert_clean(&out, SECRET);
        let msgs = messages(&parse_frames(&out));
        let mut want_close = 1000u16.to_be_bytes().to_vec();
        want_close.extend_from_slice(format!("bye {PH}").as_bytes());
        assert_eq!(
            msgs,
            vec![
                (9, format!("ping {PH}").into_bytes()),
                (10, b"pong".to_vec()),
                (1, format!("{{\"k\":\"{PH}\"}}").into_bytes()),
                (2, STANDARD.encode(PH).into_bytes()),
                (8, want_close),
            ]
        );
        assert_eq!(counter.frame.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn ws_large_binary_frame_streams_in_pieces() {
        // 300 KiB with the secret across the 64 KiB piece boundaries.
        let mut payload = vec![b'.'; 300 * 1024];
        let mut want = payload.clone();
        let mut at = Vec::new();
        for k in 1..4 {
            let pos = k * WS_PIECE - 5;
            payload[pos..pos + SECRET.len()].copy_from_slice(SECRET.as_bytes());
            at.push(pos);
        }
        // The placeholder is one byte shorter: build the expected output.
        let mut expected = Vec::new();
        let mut last = 0;
        for pos in at {
            expected.extend_from_slice(&want[last..pos]);
            expected.extend_from_slice(PH.as_bytes());
            last = pos + SECRET.len();
        }
        expected.extend_from_slice(&want[last..]);
        want = expected;
        let input = ws_frame(true, 2, &payload, Some([9, 8, 7, 6]));
        let (res, out, counter) = relay(input).await;
        res.unwrap();
        let frames = parse_frames(&out);
        assert!(frames.len() >= 5, "{} frames", frames.len());
        assert!(frames.iter().all(|f| f.2.len() <= WS_PIECE + 64));
        assert_eq!(frames[0].1, 2);
        assert!(frames[1..].iter().all(|f| f.1 == 0));
        let msgs = messages(&frames);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].1, want);
        assert_eq!(counter.frame.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn ws_protocol_errors_end_the_relay() {
        // RSV1 (permessage-deflate) cannot be redacted.
        let mut f = ws_frame(true, 1, b"x", None);
        f[0] |= 0x40;
        assert!(relay(f).await.0.is_err());
        // A stream ending inside a frame.
        let f = ws_frame(true, 1, SECRET.as_bytes(), None);
        let (res, out, _) = relay(f[..10].to_vec()).await;
        assert!(res.is_err());
        assert_clean(&out, SECRET);
        // A continuation with no message.
        assert!(relay(ws_frame(true, 0, b"x", None)).await.0.is_err());
    }
}
