// One HTTP exchange over `wasi:http/outgoing-handler`, shared as source by the plugin
// SDKs (`include!`d into a module of each): each SDK's bindings are generated for its own
// world, so the types differ per crate while the code is the same. The including crate
// provides `bindings` (with `wasi:http` and `wasi:io`), `ConnectorError`, `ErrorKind` and
// `error` at its root.

use crate::bindings::wasi::http::outgoing_handler;
use crate::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::bindings::wasi::io::streams::StreamError;
use crate::{ConnectorError, ErrorKind, error};

/// Sends `method` to `scheme://authority path_and_query` with `headers` and `body`, and
/// reads the status and at most `max_response` bytes of the answer. A host the operator
/// did not grant is `denied`; a network failure, timeout or TLS error is `unavailable`.
/// The status is not interpreted.
pub(crate) fn exchange(
    method: &str,
    https: bool,
    authority: &str,
    path_and_query: &str,
    headers: Fields,
    body: &[u8],
    max_response: usize,
) -> Result<(u16, Vec<u8>), ConnectorError> {
    let request = OutgoingRequest::new(headers);
    let method = match method {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => Method::Other(other.to_string()),
    };
    let scheme = if https { Scheme::Https } else { Scheme::Http };
    let internal = |what: &str| error(ErrorKind::Internal, format!("{authority}: {what}"));
    request
        .set_method(&method)
        .map_err(|()| internal("bad method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| internal("bad scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| internal("bad authority"))?;
    request
        .set_path_with_query(Some(path_and_query))
        .map_err(|()| internal("bad path"))?;
    let outgoing = request
        .body()
        .map_err(|()| internal("request body taken twice"))?;
    let map = |e: ErrorCode| http_error(authority, e);
    let pending = outgoing_handler::handle(request, None).map_err(map)?;

    // Stream the body, then finish it; if the host refused or failed the request,
    // the write fails and the real reason is in the response future.
    let mut write_error = None;
    match outgoing.write() {
        Ok(stream) => {
            for chunk in body.chunks(4096) {
                if let Err(e) = stream.blocking_write_and_flush(chunk) {
                    write_error = Some(format!("{e:?}"));
                    break;
                }
            }
        }
        Err(()) => write_error = Some("request body stream unavailable".into()),
    }
    if let Err(e) = OutgoingBody::finish(outgoing, None) {
        write_error.get_or_insert_with(|| format!("{e:?}"));
    }

    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(e))) => return Err(map(e)),
        _ => return Err(internal("the response was lost")),
    };
    if let Some(e) = write_error {
        return Err(error(
            ErrorKind::Unavailable,
            format!("{authority}: sending the request body failed: {e}"),
        ));
    }
    let status = response.status();
    let mut body = Vec::new();
    if let Ok(incoming) = response.consume() {
        read_body(&incoming, &mut body, max_response);
        drop(IncomingBody::finish(incoming));
    }
    Ok((status, body))
}

/// Reads up to `max` bytes; the stream is dropped before its body.
fn read_body(incoming: &IncomingBody, out: &mut Vec<u8>, max: usize) {
    let Ok(stream) = incoming.stream() else {
        return;
    };
    while out.len() < max {
        match stream.blocking_read((max - out.len()) as u64) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) | Err(StreamError::LastOperationFailed(_)) => break,
        }
    }
}

/// The `connector-error` for a `wasi:http` error code.
fn http_error(authority: &str, code: ErrorCode) -> ConnectorError {
    match code {
        ErrorCode::HttpRequestDenied => error(
            ErrorKind::Denied,
            format!("outbound host `{authority}` is not granted to this plugin"),
        ),
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => error(
            ErrorKind::InvalidConfig,
            format!("{authority}: the request is invalid ({code:?})"),
        ),
        other => error(
            ErrorKind::Unavailable,
            format!("{authority}: request failed: {other:?}"),
        ),
    }
}
