//! The HTML of the /authorize flow: the sign-in, consent, error and `form_post` pages, made from
//! the templates in `templates/`.
//!
//! A template is HTML with `{{name}}` placeholders, filled in one pass: a [`Fill::Text`] value
//! is HTML-escaped where it is inserted; a [`Fill::Markup`] value is a [`Markup`], which only
//! rendering a template makes, so every value that reaches a page has been escaped exactly
//! once. Inserted values are never scanned for placeholders. A line break in a template file,
//! with the indentation after it, is layout only and is dropped (a space that matters stays on
//! its line), so the pages are sent on one line.

use axum::response::{Html, IntoResponse, Response};

const SIGN_IN: &str = include_str!("templates/sign_in.html");
const ACCOUNT: &str = include_str!("templates/account.html");
const CONSENT: &str = include_str!("templates/consent.html");
const PERMISSION: &str = include_str!("templates/permission.html");
const ERROR: &str = include_str!("templates/error.html");
const FORM_POST: &str = include_str!("templates/form_post.html");
const HIDDEN_INPUT: &str = include_str!("templates/hidden_input.html");

/// HTML made by [`render`]: safe to send and to insert into another template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Markup(String);

impl Markup {
    #[cfg(test)]
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromIterator<Markup> for Markup {
    fn from_iter<I: IntoIterator<Item = Markup>>(iter: I) -> Self {
        Markup(iter.into_iter().map(|m| m.0).collect())
    }
}

impl IntoResponse for Markup {
    fn into_response(self) -> Response {
        Html(self.0).into_response()
    }
}

/// A placeholder's value.
enum Fill<'a> {
    /// Text: escaped when inserted.
    Text(&'a str),
    /// Rendered HTML: inserted as it is.
    Markup(&'a Markup),
}

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in element content and in quoted attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Fills `template`'s placeholders from `fills` (a placeholder without a fill renders as
/// nothing; the tests render every page in full) and drops its layout line breaks.
fn render(template: &str, fills: &[(&str, Fill<'_>)]) -> Markup {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(c) = rest.chars().next() {
        if c == '\n' || c == '\r' {
            rest = rest.trim_start_matches(['\r', '\n', ' ', '\t']);
            continue;
        }
        if let Some(after) = rest.strip_prefix("{{")
            && let Some((name, tail)) = after.split_once("}}")
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            match fills.iter().find(|(n, _)| *n == name).map(|(_, f)| f) {
                Some(Fill::Text(t)) => out.push_str(&esc(t)),
                Some(Fill::Markup(m)) => out.push_str(&m.0),
                None => {}
            }
            rest = tail;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Markup(out)
}

/// `<input type="hidden">` fields carrying `(name, value)` pairs.
pub(super) fn hidden_inputs<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Markup {
    fields
        .into_iter()
        .map(|(name, value)| {
            render(
                HIDDEN_INPUT,
                &[("name", Fill::Text(name)), ("value", Fill::Text(value))],
            )
        })
        .collect()
}

/// An account the sign-in page offers.
pub(super) struct Account<'a> {
    pub upn: &'a str,
    pub display_name: &'a str,
    pub selected: bool,
}

/// The sign-in page: pick an account of the tenant, post back to `action` with `hidden_fields`.
pub(super) fn sign_in<'a>(
    tenant: &str,
    action: &str,
    hidden_fields: &Markup,
    accounts: impl IntoIterator<Item = Account<'a>>,
) -> Markup {
    let accounts: Markup = accounts
        .into_iter()
        .map(|a| {
            render(
                ACCOUNT,
                &[
                    ("upn", Fill::Text(a.upn)),
                    (
                        "selected",
                        Fill::Text(if a.selected { " selected" } else { "" }),
                    ),
                    ("name", Fill::Text(a.display_name)),
                ],
            )
        })
        .collect();
    render(
        SIGN_IN,
        &[
            ("tenant", Fill::Text(tenant)),
            ("action", Fill::Text(action)),
            ("hidden_fields", Fill::Markup(hidden_fields)),
            ("accounts", Fill::Markup(&accounts)),
        ],
    )
}

/// The consent page: `app` asks `user` (`upn`) for `permissions`; Accept or Cancel posts back to
/// `action` with `hidden_fields`.
pub(super) fn consent(
    app: &str,
    user: &str,
    upn: &str,
    permissions: &[String],
    action: &str,
    hidden_fields: &Markup,
) -> Markup {
    let permissions: Markup = permissions
        .iter()
        .map(|p| render(PERMISSION, &[("permission", Fill::Text(p))]))
        .collect();
    render(
        CONSENT,
        &[
            ("app", Fill::Text(app)),
            ("user", Fill::Text(user)),
            ("upn", Fill::Text(upn)),
            ("permissions", Fill::Markup(&permissions)),
            ("action", Fill::Text(action)),
            ("hidden_fields", Fill::Markup(hidden_fields)),
        ],
    )
}

/// The error page (shown when the redirect URI cannot be trusted).
pub(super) fn error(error: &str, description: &str) -> Markup {
    render(
        ERROR,
        &[
            ("error", Fill::Text(error)),
            ("description", Fill::Text(description)),
        ],
    )
}

/// `response_mode=form_post`: a page that posts `params` to `redirect_uri` on load.
pub(super) fn form_post(redirect_uri: &str, params: &[(&str, String)]) -> Markup {
    let fields = hidden_inputs(params.iter().map(|(k, v)| (*k, v.as_str())));
    render(
        FORM_POST,
        &[
            ("redirect_uri", Fill::Text(redirect_uri)),
            ("fields", Fill::Markup(&fields)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<script>alert('x')</script>\"&{{upn}}";
    const HOSTILE_ESCAPED: &str =
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;{{upn}}";

    /// A rendered page has no placeholder left, no line break, and no unescaped hostile value.
    fn assert_clean(m: &Markup) {
        let s = m.as_str();
        assert!(!s.contains('\n'), "{s}");
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains(HOSTILE_ESCAPED), "{s}");
        assert_eq!(
            s.matches("{{").count(),
            s.matches(HOSTILE_ESCAPED).count(),
            "a placeholder is left: {s}"
        );
    }

    #[test]
    fn render_escapes_text_and_keeps_markup() {
        let inner = render("<b>{{x}}</b>", &[("x", Fill::Text("a<b"))]);
        let m = render(
            "<p>{{t}}|{{m}}|{{missing}}|{{not a name}}|{{</p>",
            &[("t", Fill::Text("\"'&")), ("m", Fill::Markup(&inner))],
        );
        assert_eq!(
            m.as_str(),
            "<p>&quot;&#39;&amp;|<b>a&lt;b</b>||{{not a name}}|{{</p>"
        );
    }

    #[test]
    fn render_drops_layout_line_breaks_only() {
        let m = render(
            "<a>\n  <b>{{v}}</b> <c/>\r\n\t</a>\n",
            &[("v", Fill::Text("x\r\ny"))],
        );
        assert_eq!(m.as_str(), "<a><b>x\r\ny</b> <c/></a>");
    }

    #[test]
    fn values_are_not_scanned_for_placeholders() {
        let m = render(
            "{{a}}{{b}}",
            &[("a", Fill::Text("{{b}}")), ("b", Fill::Text("B"))],
        );
        assert_eq!(m.as_str(), "{{b}}B");
    }

    #[test]
    fn sign_in_page_escapes_every_value() {
        let hidden = hidden_inputs([("client_id", HOSTILE), ("login_hint", HOSTILE)]);
        let page = sign_in(
            HOSTILE,
            HOSTILE,
            &hidden,
            [
                Account {
                    upn: HOSTILE,
                    display_name: HOSTILE,
                    selected: true,
                },
                Account {
                    upn: "a@b.example",
                    display_name: "A",
                    selected: false,
                },
            ],
        );
        assert_clean(&page);
        let s = page.as_str();
        assert!(s.starts_with("<!DOCTYPE html><html><head><title>Sign in to your account"));
        assert!(s.contains(&format!(
            "<input type=\"hidden\" name=\"login_hint\" value=\"{HOSTILE_ESCAPED}\"/>"
        )));
        assert!(s.contains(&format!(
            "<option value=\"{HOSTILE_ESCAPED}\" selected>{HOSTILE_ESCAPED} ({HOSTILE_ESCAPED})</option>"
        )));
        assert!(s.contains("<option value=\"a@b.example\">A (a@b.example)</option>"));
        assert!(s.contains("</select></label> <button type=\"submit\">Sign in</button></form>"));
    }

    #[test]
    fn consent_page_escapes_every_value() {
        let hidden = hidden_inputs([("state", HOSTILE)]);
        let page = consent(
            HOSTILE,
            HOSTILE,
            HOSTILE,
            &[HOSTILE.to_owned(), "Calendars.Read".to_owned()],
            HOSTILE,
            &hidden,
        );
        assert_clean(&page);
        let s = page.as_str();
        assert!(s.contains(&format!(
            "<ul><li>{HOSTILE_ESCAPED}</li><li>Calendars.Read</li></ul>"
        )));
        assert!(s.contains(
            "<button type=\"submit\" name=\"accept\" value=\"yes\">Accept</button> <button"
        ));
    }

    #[test]
    fn error_and_form_post_pages_escape_every_value() {
        let page = error(HOSTILE, HOSTILE);
        assert_clean(&page);
        assert!(
            page.as_str()
                .contains("we’re having trouble signing you in.")
        );
        let page = form_post(HOSTILE, &[("state", HOSTILE.to_owned())]);
        assert_clean(&page);
        assert!(page.as_str().contains(
            "<noscript><input type=\"submit\" value=\"Continue\"/></noscript></form></body></html>"
        ));
    }
}
