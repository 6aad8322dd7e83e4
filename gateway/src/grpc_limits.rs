//! Per-method limits on gRPC message sizes ([`crate::policy::grpc`]): the request body
//! is watched frame by frame, and a message whose length prefix exceeds its method's
//! limit fails the call with PAYLOAD_TOO_LARGE as soon as the 5-byte prefix arrives,
//! before the message itself is buffered (tonic's own limit is one number for every
//! method, so it is set to the largest and this layer narrows it per method; every
//! message of a stream is held to the limit).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

use crate::policy::BodyLimits;

/// Wraps a service so each request's messages are held to their method's limit.
#[derive(Debug, Clone, Copy)]
pub struct GrpcLimitLayer {
    limits: BodyLimits,
}

impl GrpcLimitLayer {
    pub fn new(limits: BodyLimits) -> GrpcLimitLayer {
        GrpcLimitLayer { limits }
    }
}

impl<S> Layer<S> for GrpcLimitLayer {
    type Service = GrpcLimit<S>;

    fn layer(&self, inner: S) -> GrpcLimit<S> {
        GrpcLimit { inner, limits: self.limits }
    }
}

/// The limiting service.
#[derive(Debug, Clone)]
pub struct GrpcLimit<S> {
    inner: S,
    limits: BodyLimits,
}

impl<S> Service<Request<tonic::body::Body>> for GrpcLimit<S>
where
    S: Service<Request<tonic::body::Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let (policy, method) = crate::policy::grpc(req.uri().path(), self.limits);
        let method = method.rsplit('/').next().unwrap_or(method);
        let limit = policy.max_body;
        self.inner.call(req.map(|body| tonic::body::Body::new(MessageLimit::new(body, limit, method))))
    }
}

/// A gRPC request body whose messages may not exceed `limit` bytes.
#[derive(Debug)]
pub struct MessageLimit<B> {
    inner: B,
    limit: usize,
    method: &'static str,
    /// The length prefix being read (compressed flag + 4-byte big-endian length).
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
}

impl<B> MessageLimit<B> {
    pub fn new(inner: B, limit: usize, method: &'static str) -> MessageLimit<B> {
        MessageLimit { inner, limit, method, prefix: [0; 5], prefix_len: 0, remaining: 0 }
    }

    /// Follows the framing through `data`; refuses the first prefix over the limit.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), WireError> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len());
                self.remaining -= skip;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let len = u32::from_be_bytes(self.prefix[1..5].try_into().expect("4 bytes")) as usize;
                if len > self.limit {
                    return Err(WireError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("a {} message of {len} bytes exceeds its limit of {} bytes", self.method, self.limit),
                        false,
                    ));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

impl<B> Body for MessageLimit<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        Poll::Ready(match frame {
            Some(Ok(frame)) => match frame.data_ref().map(|d| self.scan(d)) {
                Some(Err(e)) => Some(Err(Box::new(e.to_status()))),
                _ => Some(Ok(frame)),
            },
            Some(Err(e)) => Some(Err(e.into())),
            None => None,
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&len.to_be_bytes());
        f.extend(std::iter::repeat_n(7u8, len as usize));
        f
    }

    #[test]
    fn messages_over_the_limit_are_refused_at_their_prefix_however_the_bytes_arrive() {
        let mut stream = framed(10);
        stream.extend(framed(100));
        stream.extend(framed(101));
        for chunk in [1, 2, 3, 5, 7, 64, 4096] {
            let mut body = MessageLimit::new((), 100, "Search");
            let mut refused_at = None;
            for (i, piece) in stream.chunks(chunk).enumerate() {
                if let Err(e) = body.scan(piece) {
                    assert_eq!(e.code, ErrorCode::PayloadTooLarge);
                    refused_at = Some(i * chunk);
                    break;
                }
            }
            // The third message's prefix ends at byte 15 + 105 + 5 = 125.
            let at = refused_at.expect("the 101-byte message is refused");
            assert!(at < 125 && at + chunk >= 125, "refused in the chunk holding its prefix ({chunk}: {at})");
        }
        let mut ok = MessageLimit::new((), 100, "Search");
        assert!(ok.scan(&framed(100)).is_ok() && ok.scan(&framed(0)).is_ok());
    }
}
