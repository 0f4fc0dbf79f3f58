//! A small namespace-aware XML tree over quick-xml (for reading SOAP requests) and an XML
//! writer that escapes every text and attribute value (for answers).
//!
//! Requests are small (a few KB; the body limit is 4 MB), so a tree is simpler than streaming
//! and lets the operations look elements up by local name. DOCTYPE declarations and entity
//! references other than XML's five and character references are refused, as IIS's EWS does.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// SOAP 1.1 envelope namespace.
pub const SOAP_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// SOAP 1.2 envelope namespace (EWS accepts it too).
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";
/// EWS types (`t:`).
pub const TYPES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages (`m:`).
pub const MESSAGES_NS: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";

/// Deepest nesting accepted (EWS restrictions nest, but not this deep).
const MAX_DEPTH: usize = 64;

/// One element: namespace URI, local name, attributes (local names), children and the
/// concatenated text directly inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    /// The first child with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with local name `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of local names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        let mut cur = self;
        for n in names {
            cur = cur.child(n)?;
        }
        Some(cur)
    }

    /// Attribute by local name (case-sensitive, as XML is).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of the element.
    pub fn text(&self) -> &str {
        self.text.trim()
    }

    /// The trimmed text of child `name`.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(Element::text)
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Parses a whole document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, ParseError> {
    let err = |m: String| ParseError(m);
    let mut reader = NsReader::from_reader(bytes);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| err(format!("The XML is not well-formed: {e}")))?;
        match ev {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(err("Content after the root element.".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err("The XML nests too deeply.".into()));
                }
                let ns = match ns {
                    ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => {
                        return Err(err(format!(
                            "The namespace prefix '{}' is not declared.",
                            String::from_utf8_lossy(&p)
                        )));
                    }
                };
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| err(format!("Bad attribute: {e}")))?;
                    let key = a.key;
                    if key.as_ref() == b"xmlns" || key.as_ref().starts_with(b"xmlns:") {
                        continue;
                    }
                    let local = String::from_utf8_lossy(key.local_name().as_ref()).into_owned();
                    let v = a
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| err(format!("Bad attribute value: {e}")))?;
                    attrs.push((local, v.into_owned()));
                }
                stack.push(Element {
                    ns,
                    name,
                    attrs,
                    ..Element::default()
                });
            }
            Event::End(_) => {
                let done = stack
                    .pop()
                    .ok_or_else(|| err("Unbalanced end tag.".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Text(t) => {
                let s = t
                    .decode()
                    .map_err(|e| err(format!("Bad text: {e}")))?
                    .into_owned();
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(err("Text outside the root element.".into())),
                }
            }
            Event::CData(t) => {
                let s = t
                    .decode()
                    .map_err(|e| err(format!("Bad CDATA: {e}")))?
                    .into_owned();
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| err(format!("Bad character reference: {e}")))?
                } else {
                    match r.as_ref() {
                        b"amp" => Some('&'),
                        b"lt" => Some('<'),
                        b"gt" => Some('>'),
                        b"quot" => Some('"'),
                        b"apos" => Some('\''),
                        _ => None,
                    }
                };
                let c = c.ok_or_else(|| err("Unknown entity reference.".into()))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::DocType(_) => return Err(err("DTDs are not allowed.".into())),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::Empty(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(err("The document ends inside an element.".into()));
    }
    root.ok_or_else(|| err("The document is empty.".into()))
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// Builds a document; every value passes through [`escape`].
#[derive(Debug, Default)]
pub struct Writer {
    buf: String,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: String::with_capacity(4096),
        }
    }

    fn open_tag(&mut self, name: &str, attrs: &[(&str, &str)]) {
        self.buf.push('<');
        self.buf.push_str(name);
        for (k, v) in attrs {
            let _ = write!(self.buf, " {k}=\"{}\"", escape(v));
        }
    }

    /// `<name attrs…>`
    pub fn start(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.open_tag(name, attrs);
        self.buf.push('>');
        self
    }

    /// `</name>`
    pub fn end(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// `<name attrs…/>`
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.open_tag(name, attrs);
        self.buf.push_str("/>");
        self
    }

    /// `<name>text</name>` (`<name/>` when empty).
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.leaf_attrs(name, &[], text)
    }

    /// `<name attrs…>text</name>`.
    pub fn leaf_attrs(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) -> &mut Self {
        if text.is_empty() {
            return self.empty(name, attrs);
        }
        self.open_tag(name, attrs);
        self.buf.push('>');
        self.buf.push_str(&escape(text));
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// Raw markup made by another [`Writer`].
    pub fn raw(&mut self, markup: &str) -> &mut Self {
        self.buf.push_str(markup);
        self
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespaces_entities_and_attributes() {
        let doc = br#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
  <s:Body><t:Subject a="x &amp; y">Tom &amp; Jerry &#233;</t:Subject><t:E/></s:Body>
</s:Envelope>"#;
        let e = parse(doc).unwrap();
        assert_eq!(e.ns, SOAP_NS);
        let s = e.path(&["Body", "Subject"]).unwrap();
        assert_eq!(s.ns, TYPES_NS);
        assert_eq!(s.text(), "Tom & Jerry \u{e9}");
        assert_eq!(s.attr("a"), Some("x & y"));
        assert!(e.path(&["Body", "E"]).is_some());
    }

    #[test]
    fn refuses_dtds_undeclared_prefixes_and_garbage() {
        assert!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>").is_err());
        assert!(parse(b"<p:x/>").is_err());
        assert!(parse(b"<x><y></x>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<x>&bogus;</x>").is_err());
    }

    #[test]
    fn writer_escapes_text_and_attributes() {
        let mut w = Writer::new();
        w.leaf_attrs("t:A", &[("k", "\"<&>")], "<b>&")
            .leaf("t:B", "");
        assert_eq!(
            w.finish(),
            "<t:A k=\"&quot;&lt;&amp;&gt;\">&lt;b&gt;&amp;</t:A><t:B/>"
        );
    }
}
