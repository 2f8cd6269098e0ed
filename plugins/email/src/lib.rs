//! E-mail notifier.
//!
//! Sends the notification through the host's `smtp` interface (the host speaks
//! SMTP: WASI has no TLS sockets): subject = the notification's subject, body =
//! its body; recipients = the notification's `recipient`, a comma- or
//! semicolon-separated address list. The body goes out as HTML with a plain-text
//! alternative when the configuration says `"html": true`, when the notification's
//! details carry `"html": true` (the digest), or when the body is an HTML document;
//! otherwise as plain text. The text alternative is details `text` when the host
//! supplies it, else a rendering of the HTML. The SMTP server's `host:port` must be granted to the
//! plugin.

use certctl_notifier_sdk::{
    ConnectorError, ErrorKind, Guest, Notification, details, error, export_notifier,
    invalid_config, parse_config, require_non_empty, smtp,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_true")]
    starttls: bool,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    from: String,
    #[serde(default)]
    html: bool,
}

fn default_port() -> u16 {
    587
}

fn default_true() -> bool {
    true
}

/// `addr` or the `<addr>` of `Name <addr>`.
fn address_of(text: &str) -> &str {
    let text = text.trim();
    match (text.rfind('<'), text.ends_with('>')) {
        (Some(start), true) => &text[start + 1..text.len() - 1],
        _ => text,
    }
}

fn plausible_address(address: &str) -> bool {
    matches!(address.rsplit_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty())
        && !address.contains(|c: char| c.is_whitespace() || c.is_control())
}

impl Config {
    fn parse(json: &str) -> Result<Self, ConnectorError> {
        let config: Config = parse_config(json)?;
        require_non_empty("host", &config.host)?;
        if config
            .host
            .contains(|c: char| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(invalid_config(format!(
                "host: `{}` must be a host name or address",
                config.host
            )));
        }
        if config.port == 0 {
            return Err(invalid_config("port must be between 1 and 65535"));
        }
        if !plausible_address(address_of(&config.from)) || config.from.contains(['\r', '\n']) {
            return Err(invalid_config(format!(
                "from: `{}` must be an address like certctl@example.com or Name <address>",
                config.from
            )));
        }
        match (&config.username, &config.password) {
            (Some(_), None) => return Err(invalid_config("password is required with username")),
            (None, Some(_)) => return Err(invalid_config("username is required with password")),
            (Some(user), Some(_)) if user.is_empty() => {
                return Err(invalid_config("username must not be empty"));
            }
            _ => {}
        }
        Ok(config)
    }
}

fn recipients(recipient: &str) -> Result<Vec<String>, ConnectorError> {
    let list: Vec<String> = recipient
        .split([',', ';'])
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(error(
            ErrorKind::InvalidRequest,
            "the notification has no recipient address",
        ));
    }
    if let Some(bad) = list.iter().find(|r| !plausible_address(address_of(r))) {
        return Err(error(
            ErrorKind::InvalidRequest,
            format!("recipient `{bad}` is not an e-mail address"),
        ));
    }
    Ok(list.iter().map(|r| address_of(r).to_string()).collect())
}

fn looks_like_html(body: &str) -> bool {
    let start = body.trim_start().get(..14).unwrap_or_default();
    let start = start.to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// A readable plain-text rendering of an HTML body, for the text alternative.
fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        rest = &rest[open + close + 1..];
        if !tag.starts_with('/') && (name == "style" || name == "script" || name == "head") {
            let end = format!("</{name}");
            match rest.to_ascii_lowercase().find(&end) {
                Some(i) => rest = &rest[i..],
                None => rest = "",
            }
            continue;
        }
        match name.as_str() {
            "br" | "p" | "div" | "tr" | "li" | "h1" | "h2" | "h3" | "h4" | "table" => {
                out.push('\n')
            }
            "td" | "th" if !tag.starts_with('/') => out.push('\t'),
            _ => {}
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut text = String::new();
    let mut blank = 0;
    for line in decoded
        .lines()
        .map(|l| l.trim_matches([' ', '\t']).to_string())
    {
        if line.is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim_end().to_string() + "\n"
}

struct Email;

impl Guest for Email {
    fn validate_config(config_json: String) -> Result<(), ConnectorError> {
        Config::parse(&config_json).map(drop)
    }

    fn notify(notification: Notification) -> Result<(), ConnectorError> {
        let config = Config::parse(&notification.config_json)?;
        let to = recipients(&notification.recipient)?;
        let details = details(&notification);
        let html = config.html
            || details.get("html") == Some(&serde_json::Value::Bool(true))
            || looks_like_html(&notification.body);
        let (text_body, html_body) = if html {
            // The host may supply the plain-text alternative (details `text`).
            let text = match details.get("text") {
                Some(serde_json::Value::String(text)) if !text.trim().is_empty() => text.clone(),
                _ => html_to_text(&notification.body),
            };
            (text, Some(notification.body.clone()))
        } else {
            (notification.body.clone(), None)
        };
        let subject = if notification.subject.trim().is_empty() {
            notification.event.clone()
        } else {
            notification.subject.clone()
        };
        let server = smtp::SmtpServer {
            host: config.host,
            port: config.port,
            starttls: config.starttls,
            username: config.username,
            password: config.password,
        };
        let message = smtp::Email {
            from: config.from,
            to,
            subject,
            text_body,
            html_body,
        };
        smtp::send(&server, &message)
    }
}

export_notifier!(Email);
