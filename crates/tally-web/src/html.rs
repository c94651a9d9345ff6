//! Building pages: every piece of text that came from outside is escaped on the way in
//! ([`esc`]), and every page has the same frame (styles and script from this server,
//! never inline, as the Content-Security-Policy demands).

use std::fmt::Write;

use axum::response::Html;

/// `text` safe inside HTML text and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Which part of the site a page belongs to (its tab is marked in the header).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Wallet,
    Explorer,
    None,
}

/// A whole page: `title`, then `body` (already escaped where it needs to be).
pub fn page(title: &str, section: Section, body: &str) -> Html<String> {
    let mut out = String::with_capacity(body.len() + 1024);
    let tab = |s: Section, href: &str, name: &str| {
        let current = if s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        format!("<a href=\"{href}\"{current}>{name}</a>")
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Tally</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body>\
         <header><strong>Tally</strong><nav>{}{}</nav><span id=\"live\" class=\"live\"></span></header>\
         <main><h1>{}</h1>{}</main></body></html>",
        esc(title),
        tab(Section::Wallet, "/", "Wallet"),
        tab(Section::Explorer, "/explorer", "Explorer"),
        esc(title),
        body
    );
    Html(out)
}

/// A page that says one thing (no access, not found, an error).
pub fn message_page(title: &str, message: &str) -> Html<String> {
    page(
        title,
        Section::None,
        &format!("<p class=\"error\" id=\"message\">{}</p>", esc(message)),
    )
}

/// An error banner inside a page.
pub fn error_banner(message: &str) -> String {
    format!(
        "<p class=\"error\" id=\"error\" role=\"alert\">{}</p>",
        esc(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_outside_cannot_open_a_tag_or_leave_an_attribute() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        let page = page("a <b>", Section::None, "").0;
        assert!(page.contains("<title>a &lt;b&gt; · Tally</title>"));
        assert!(!page.contains("<script>"), "no inline script, ever");
    }
}
