//! XML at EWS's edge: a writer that escapes every text and attribute it is given (no request
//! is ever assembled by pasting user data into a template), and a small element tree read
//! with quick-xml, addressed by local names (EWS answers use `t:`, `m:`, `s:` or any other
//! prefix a server likes; only the namespace's local names matter to a client).

use std::fmt::Write as _;

use quick_xml::events::Event;

/// The EWS types namespace.
pub const NS_TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// The EWS messages namespace.
pub const NS_MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// SOAP 1.1.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The deepest nesting calgate reads (EWS answers nest ~12 deep; a hostile answer gets a clear
/// error, not a stack overflow).
const MAX_DEPTH: usize = 96;

/// Builds an XML document. Names are calgate's own constants; every text and attribute value
/// passes through [`quick_xml::escape::escape`].
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    open: Vec<&'static str>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// `<name a="v" …>`
    pub fn open(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag(name, attrs);
        self.out.push('>');
        self.open.push(name);
        self
    }

    /// `</name>` of the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.open.pop() {
            let _ = write!(self.out, "</{name}>");
        }
        self
    }

    /// `<name a="v"/>`
    pub fn empty(&mut self, name: &'static str, attrs: &[(&str, &str)]) -> &mut Self {
        self.tag(name, attrs);
        self.out.push_str("/>");
        self
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &'static str, text: &str) -> &mut Self {
        let _ = write!(
            self.out,
            "<{name}>{}</{name}>",
            quick_xml::escape::escape(text)
        );
        self
    }

    /// `<name a="v">text</name>`
    pub fn leaf_with(
        &mut self,
        name: &'static str,
        attrs: &[(&str, &str)],
        text: &str,
    ) -> &mut Self {
        self.tag(name, attrs);
        let _ = write!(self.out, ">{}</{name}>", quick_xml::escape::escape(text));
        self
    }

    fn tag(&mut self, name: &'static str, attrs: &[(&str, &str)]) {
        let _ = write!(self.out, "<{name}");
        for (k, v) in attrs {
            let _ = write!(self.out, " {k}=\"{}\"", quick_xml::escape::escape(*v));
        }
    }

    /// The document, every open element closed.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out
    }
}

/// One element of a read document: its local name, attributes (local names), text and
/// children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
}

fn local(qname: &[u8]) -> String {
    let s = String::from_utf8_lossy(qname);
    match s.rsplit_once(':') {
        Some((_, l)) => l.to_owned(),
        None => s.into_owned(),
    }
}

fn predefined(entity: &str) -> Option<char> {
    Some(match entity {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

impl Element {
    /// Reads a whole document; its root element.
    pub fn parse(doc: &str) -> Result<Element, String> {
        let mut reader = quick_xml::Reader::from_str(doc);
        let mut stack: Vec<Element> = Vec::new();
        let mut root: Option<Element> = None;
        loop {
            let event = reader.read_event().map_err(|e| {
                format!(
                    "not well-formed XML at byte {} ({e})",
                    reader.buffer_position()
                )
            })?;
            match event {
                Event::Start(_) | Event::Empty(_) if root.is_some() => {
                    return Err("content after the root element".into());
                }
                Event::Start(ref e) | Event::Empty(ref e) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(format!("elements nested deeper than {MAX_DEPTH}"));
                    }
                    let mut el = Element {
                        name: local(e.name().as_ref()),
                        ..Element::default()
                    };
                    for a in e.attributes() {
                        let a = a.map_err(|e| format!("a malformed attribute ({e})"))?;
                        let value = a
                            .unescape_value()
                            .map_err(|e| format!("a malformed attribute value ({e})"))?;
                        el.attrs.push((local(a.key.as_ref()), value.into_owned()));
                    }
                    if matches!(event, Event::Empty(_)) {
                        match stack.last_mut() {
                            Some(parent) => parent.children.push(el),
                            None => root = Some(el),
                        }
                    } else {
                        stack.push(el);
                    }
                }
                Event::End(_) => {
                    let el = stack.pop().ok_or("an end tag without a start tag")?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(
                            &t.decode()
                                .map_err(|e| format!("text that is not UTF-8 ({e})"))?,
                        );
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&String::from_utf8_lossy(&t));
                    }
                }
                Event::GeneralRef(r) => {
                    let ch = match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        Ok(None) => {
                            let name = r
                                .decode()
                                .map_err(|e| format!("an entity that is not UTF-8 ({e})"))?;
                            predefined(&name)
                                .ok_or_else(|| format!("an unknown entity &{name};"))?
                        }
                        Err(e) => return Err(format!("a bad character reference ({e})")),
                    };
                    if let Some(top) = stack.last_mut() {
                        top.text.push(ch);
                    }
                }
                Event::DocType(_) => return Err("a DOCTYPE (not allowed in SOAP)".into()),
                Event::Eof => break,
                _ => {}
            }
        }
        if !stack.is_empty() {
            return Err("the document ends inside an element (truncated?)".into());
        }
        root.ok_or_else(|| "no root element".into())
    }

    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&Element> {
        let mut el = self;
        for p in path {
            el = el.child(p)?;
        }
        Some(el)
    }

    /// The first descendant (depth first) called `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(f) = c.find(name) {
                return Some(f);
            }
        }
        None
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed text of the child `name`, when it has some.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_escapes_text_and_attributes() {
        let mut w = Writer::new();
        w.open("t:Item", &[("Id", "a\"<b>&")])
            .leaf("t:Subject", "</t:Subject><evil/>&amp;")
            .close();
        let doc = w.finish();
        assert_eq!(
            doc,
            "<t:Item Id=\"a&quot;&lt;b&gt;&amp;\"><t:Subject>&lt;/t:Subject&gt;&lt;evil/&gt;&amp;amp;</t:Subject></t:Item>"
        );
        let el = Element::parse(&doc).expect("parses");
        assert_eq!(el.attr("Id"), Some("a\"<b>&"));
        assert_eq!(el.text_of("Subject"), Some("</t:Subject><evil/>&amp;"));
    }

    #[test]
    fn reads_by_local_name_with_entities() {
        let el = Element::parse(
            r#"<?xml version="1.0"?><s:Envelope xmlns:s="x"><s:Body><m:R xmlns:m="y" m:ResponseClass="Error">caf&#233; &amp; &#x263A;<![CDATA[<raw>]]></m:R><t:E/></s:Body></s:Envelope>"#,
        )
        .expect("parses");
        let r = el.at(&["Body", "R"]).expect("path");
        assert_eq!(r.attr("ResponseClass"), Some("Error"));
        assert_eq!(r.text, "café & ☺<raw>");
        assert!(el.find("E").is_some());
    }

    #[test]
    fn refuses_garbage_truncation_doctype_and_depth() {
        assert!(Element::parse("<a><b></a>").is_err());
        assert!(Element::parse("<a><b>").is_err());
        assert!(Element::parse("").is_err());
        assert!(Element::parse("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").is_err());
        assert!(Element::parse("<a>&unknown;</a>").is_err());
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(Element::parse(&deep).is_err());
        assert!(Element::parse("<a/><b/>").is_err());
    }
}
