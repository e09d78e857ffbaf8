//! `POST /users/{id | userPrincipalName}/sendMail`, as Graph answers it: 202 and no body, for a
//! token holding `Mail.Send`, a mailbox the tenant knows, and a message with a subject, a body and
//! recipients. Requests over 4 MB are refused (attachments past 3 MB need an upload session).

use crate::graph::Sim;
use crate::wire::{SimResponse, graph_error};
use serde_json::Value;
use std::collections::HashMap;

/// Graph's limit on a request's size.
const REQUEST_LIMIT: usize = 4 * 1024 * 1024;
/// The messages kept for `GET /_sim/mail`.
const KEPT: usize = 100;

/// The mailbox in `rest` (`users/{mailbox}/sendMail`), if the path is a sendMail.
pub fn mailbox(rest: &str) -> Option<&str> {
    let inner = rest.strip_prefix("users/")?;
    let (mailbox, tail) = inner.split_once('/')?;
    tail.eq_ignore_ascii_case("sendMail").then_some(mailbox)
}

pub fn send(
    sim: &Sim,
    mailbox: &str,
    headers: &HashMap<String, String>,
    body: &[u8],
) -> SimResponse {
    let crid = headers.get("client-request-id").map(String::as_str);
    let claims = match sim
        .auth
        .check(headers.get("authorization").map(String::as_str))
    {
        Ok(c) => c,
        Err((code, msg)) => return graph_error(401, code, &msg, crid),
    };
    let scopes: Vec<&str> = claims
        .scp
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    if !claims.roles.iter().any(|r| r == "Mail.Send") && !scopes.contains(&"Mail.Send") {
        return graph_error(
            403,
            "ErrorAccessDenied",
            "Access is denied. Check credentials and try again.",
            crid,
        );
    }
    if body.len() > REQUEST_LIMIT {
        return graph_error(
            413,
            "RequestEntityTooLarge",
            "The request is larger than 4 MB.",
            crid,
        );
    }
    let mailbox = percent_encoding::percent_decode_str(mailbox)
        .decode_utf8_lossy()
        .to_string();
    let mut inner = sim.lock();
    let known = inner
        .tenant
        .directory
        .users
        .iter()
        .any(|u| u.upn.eq_ignore_ascii_case(&mailbox) || u.id.eq_ignore_ascii_case(&mailbox))
        || mailbox.eq_ignore_ascii_case(crate::auth::SIGNED_IN_USER.1);
    if !known {
        return graph_error(
            404,
            "ErrorInvalidUser",
            &format!("The requested user '{mailbox}' is invalid."),
            crid,
        );
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return graph_error(
                400,
                "ErrorInvalidRequest",
                &format!("Cannot read the request body: {e}"),
                crid,
            );
        }
    };
    let message = &doc["message"];
    let recipients = message["toRecipients"].as_array().map_or(0, |r| {
        r.iter()
            .filter(|x| {
                x.pointer("/emailAddress/address")
                    .and_then(Value::as_str)
                    .is_some()
            })
            .count()
    });
    if recipients == 0 {
        return graph_error(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient is not valid.",
            crid,
        );
    }
    if message["subject"].as_str().is_none()
        || message
            .pointer("/body/content")
            .and_then(Value::as_str)
            .is_none()
    {
        return graph_error(
            400,
            "ErrorInvalidRequest",
            "The message needs a subject and a body.",
            crid,
        );
    }
    inner.stats.mails_sent += 1;
    if inner.mail.len() >= KEPT {
        inner.mail.remove(0);
    }
    let mut kept = doc.clone();
    kept["from_mailbox"] = Value::String(mailbox);
    inner.mail.push(kept);
    SimResponse {
        status: 202,
        headers: Vec::new(),
        body: None,
    }
}
