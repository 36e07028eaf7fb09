//! Small body adapters of the request path: [`Prepend`] puts a frame the
//! tripwire already read back in front of the rest of a request body.

use std::pin::Pin;
use std::task::{Context, Poll};

use hudsucker::Body;
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};

/// A body whose first frame was already read.
#[derive(Debug)]
pub(super) struct Prepend {
    first: Option<Frame<Bytes>>,
    rest: Body,
}

impl Prepend {
    pub(super) fn new(first: Frame<Bytes>, rest: Body) -> Prepend {
        Prepend {
            first: Some(first),
            rest,
        }
    }
}

impl HttpBody for Prepend {
    type Data = Bytes;
    type Error = hudsucker::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(f) = self.first.take() {
            return Poll::Ready(Some(Ok(f)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let first = self
            .first
            .as_ref()
            .and_then(Frame::data_ref)
            .map_or(0, |d| d.len() as u64);
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(u) = rest.upper() {
            hint.set_upper(u + first);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_peeked_frame_comes_first_and_the_length_is_kept() {
        let body = Prepend::new(Frame::data(Bytes::from_static(b"abc")), Body::from("def"));
        assert_eq!(body.size_hint().exact(), Some(6));
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"abcdef");
    }
}
