//! Exclusive XML Canonicalization 1.0, without comments
//! (`http://www.w3.org/2001/10/xml-exc-c14n#`), of one element's subtree as
//! parsed by `roxmltree`, optionally leaving out one descendant (the
//! enveloped `<ds:Signature>`), with an `InclusiveNamespaces` prefix list.
//!
//! Only the profile that SAML signatures use: the node-set is a whole
//! element subtree (a same-document `#ID` reference) minus at most one
//! subtree; no XPath, no comments. The parser has already done what the
//! spec asks of it: line endings normalised, attribute values normalised,
//! character and predefined entity references replaced, CDATA sections
//! turned into text (a document with a DTD never gets here).
//!
//! What the spec asks of the serialisation, and where this does it:
//! - namespace declarations only where visibly utilised (the element's own
//!   prefix, its prefixed attributes', the inclusive list) and not already
//!   rendered by an output ancestor with the same value; sorted by prefix,
//!   the default namespace first ([`Canon::namespaces`]);
//! - attributes sorted by namespace URI, then local name, no-namespace
//!   attributes first ([`Canon::element`]);
//! - start and end tags always (`<a></a>`, never `<a/>`);
//! - the escapes of §2.3 of Canonical XML 1.0 ([`text`], [`attribute`]).
//!
//! Prefixes are read from the document's own text (`roxmltree` keeps the
//! namespace URI of a name, not the prefix it was written with, and two
//! prefixes may name one URI): the canonical form must use the prefix the
//! signer used.

use roxmltree::{Node, NodeId, NodeType};

/// Why a subtree could not be canonicalised. Never seen for a document that
/// `roxmltree` accepted unless its element names are odd in a way the
/// parser lets through; reported, never guessed around.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum C14nError {
    #[error("an element's or attribute's prefix names no namespace in scope")]
    UnboundPrefix,
    #[error("an element's name could not be read from the document")]
    Name,
}

/// The canonical form of `apex`'s subtree, without the subtree of `exclude`
/// (if it is a descendant), rendering the namespaces of `inclusive` (the
/// `InclusiveNamespaces PrefixList`; `""` is the default namespace) as
/// inclusive canonicalisation would.
pub fn exclusive<'a>(
    apex: Node<'a, '_>,
    exclude: Option<NodeId>,
    inclusive: &[&'a str],
) -> Result<Vec<u8>, C14nError> {
    let mut canon = Canon {
        input: apex.document().input_text(),
        exclude,
        inclusive,
        out: Vec::with_capacity(apex.range().len()),
        rendered: Vec::new(),
    };
    canon.element(apex)?;
    Ok(canon.out)
}

struct Canon<'a, 'l> {
    input: &'a str,
    exclude: Option<NodeId>,
    inclusive: &'l [&'a str],
    out: Vec<u8>,
    /// The namespace declarations rendered by the output ancestors, nearest
    /// last: (prefix, URI), `""` the default namespace.
    rendered: Vec<(&'a str, &'a str)>,
}

impl<'a> Canon<'a, '_> {
    /// The element, its rendered namespaces, attributes and children. The
    /// depth of the recursion is the document's, which the caller bounds
    /// (`Limits::max_depth`).
    fn element(&mut self, node: Node<'a, '_>) -> Result<(), C14nError> {
        let qname = self.element_qname(node)?;
        let decls = self.namespaces(node, qname)?;
        let mark = self.rendered.len();

        self.out.push(b'<');
        self.out.extend_from_slice(qname.as_bytes());
        for &(prefix, uri) in &decls {
            if prefix.is_empty() {
                self.out.extend_from_slice(b" xmlns=\"");
            } else {
                self.out.extend_from_slice(b" xmlns:");
                self.out.extend_from_slice(prefix.as_bytes());
                self.out.extend_from_slice(b"=\"");
            }
            attribute(&mut self.out, uri);
            self.out.push(b'"');
        }
        self.rendered.extend(decls);

        let mut attrs: Vec<_> = node.attributes().collect();
        attrs.sort_by(|a, b| {
            (a.namespace().unwrap_or(""), a.name()).cmp(&(b.namespace().unwrap_or(""), b.name()))
        });
        for a in attrs {
            let qname = self.input.get(a.range_qname()).ok_or(C14nError::Name)?;
            self.out.push(b' ');
            self.out.extend_from_slice(qname.as_bytes());
            self.out.extend_from_slice(b"=\"");
            attribute(&mut self.out, a.value());
            self.out.push(b'"');
        }
        self.out.push(b'>');

        for child in node.children() {
            match child.node_type() {
                NodeType::Element if Some(child.id()) == self.exclude => {}
                NodeType::Element => self.element(child)?,
                NodeType::Text => text(&mut self.out, child.text().unwrap_or("")),
                NodeType::PI => {
                    if let Some(pi) = child.pi() {
                        self.out.extend_from_slice(b"<?");
                        self.out.extend_from_slice(pi.target.as_bytes());
                        if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
                            self.out.push(b' ');
                            self.out.extend_from_slice(value.as_bytes());
                        }
                        self.out.extend_from_slice(b"?>");
                    }
                }
                // Comments are not in the node-set of the without-comments
                // algorithm; the root never is a child.
                NodeType::Comment | NodeType::Root => {}
            }
        }

        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(qname.as_bytes());
        self.out.push(b'>');
        self.rendered.truncate(mark);
        Ok(())
    }

    /// The element's name as written: the text after `<` up to white space,
    /// `/` or `>`.
    fn element_qname(&self, node: Node<'a, '_>) -> Result<&'a str, C14nError> {
        let rest = self
            .input
            .get(node.range().start..)
            .and_then(|s| s.strip_prefix('<'))
            .ok_or(C14nError::Name)?;
        let end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '/' || c == '>')
            .ok_or(C14nError::Name)?;
        let qname = &rest[..end];
        // The text must spell the name the parser read.
        let local = qname.rsplit_once(':').map_or(qname, |(_, l)| l);
        if qname.is_empty() || local != node.tag_name().name() {
            return Err(C14nError::Name);
        }
        Ok(qname)
    }

    /// The namespace declarations this element renders, sorted by prefix
    /// (the default namespace, `""`, first).
    fn namespaces(
        &self,
        node: Node<'a, '_>,
        qname: &'a str,
    ) -> Result<Vec<(&'a str, &'a str)>, C14nError> {
        let mut used: Vec<(&'a str, &'a str)> = Vec::new();
        let mut add = |prefix: &'a str, uri: &'a str| {
            if !used.iter().any(|&(p, _)| p == prefix) {
                used.push((prefix, uri));
            }
        };

        // The element's own prefix, or the default namespace (which may be
        // none: then `xmlns=""` may have to be rendered).
        match qname.split_once(':') {
            Some((prefix, _)) => {
                let uri = self.uri_of(node, prefix)?;
                if Some(uri) != node.tag_name().namespace() {
                    return Err(C14nError::UnboundPrefix);
                }
                add(prefix, uri);
            }
            None => add("", self.default_uri(node)),
        }
        // Prefixed attributes (unprefixed ones are in no namespace).
        for a in node.attributes() {
            let qname = self.input.get(a.range_qname()).ok_or(C14nError::Name)?;
            if let Some((prefix, _)) = qname.split_once(':') {
                if prefix != "xml" {
                    add(prefix, self.uri_of(node, prefix)?);
                }
            }
        }
        // The inclusive list: each prefix that is in scope.
        for &prefix in self.inclusive {
            if prefix.is_empty() {
                add("", self.default_uri(node));
            } else if prefix != "xml" {
                if let Some(uri) = self.lookup(node, prefix) {
                    add(prefix, uri);
                }
            }
        }

        let mut decls: Vec<_> = used
            .into_iter()
            .filter(|&(prefix, uri)| {
                let current = self
                    .rendered
                    .iter()
                    .rev()
                    .find(|&&(p, _)| p == prefix)
                    .map(|&(_, u)| u);
                match (prefix.is_empty(), current) {
                    // No default namespace rendered above counts as `xmlns=""`.
                    (true, None) => !uri.is_empty(),
                    (_, Some(current)) => current != uri,
                    (false, None) => true,
                }
            })
            .collect();
        decls.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(decls)
    }

    /// The URI `prefix` is bound to at `node`.
    fn uri_of(&self, node: Node<'a, '_>, prefix: &str) -> Result<&'a str, C14nError> {
        self.lookup(node, prefix).ok_or(C14nError::UnboundPrefix)
    }

    fn lookup(&self, node: Node<'a, '_>, prefix: &str) -> Option<&'a str> {
        node.namespaces()
            .find(|ns| ns.name() == Some(prefix))
            .map(|ns| ns.uri())
    }

    /// The default namespace in scope, `""` for none.
    fn default_uri(&self, node: Node<'a, '_>) -> &'a str {
        node.namespaces()
            .find(|ns| ns.name().is_none())
            .map_or("", |ns| ns.uri())
    }
}

/// Text node: `&`, `<`, `>` and carriage return escaped.
fn text(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

/// Attribute value: `&`, `<`, `"`, tab, line feed and carriage return
/// escaped.
fn attribute(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roxmltree::Document;

    fn whole(xml: &str) -> String {
        let doc = Document::parse(xml).expect("test XML parses");
        String::from_utf8(exclusive(doc.root_element(), None, &[]).expect("canonicalises"))
            .expect("UTF-8")
    }

    fn element<'a, 'i>(doc: &'a Document<'i>, local: &str) -> Node<'a, 'i> {
        doc.descendants()
            .find(|n| n.tag_name().name() == local)
            .expect("element in test XML")
    }

    // The expected outputs below are libxml2's (`xmllint --exc-c14n`), the
    // with-comments variant's comment taken out.

    #[test]
    fn namespaces_are_rendered_where_visibly_used_and_not_yet_rendered() {
        let xml = r#"<a:root xmlns:a="urn:a" xmlns:b="urn:b" xmlns="urn:default" b:attr="1" z="2" a:y="3"><child c="1"><b:inner xmlns:b="urn:b" xmlns:unused="urn:u"/><a:x xmlns:a="urn:a2" xmlns:b="urn:b2" b:q="v"/></child><plain xmlns=""><deeper xmlns:d="urn:d" d:at="x"/></plain><b:other xmlns="urn:default"><again/></b:other></a:root>"#;
        assert_eq!(
            whole(xml),
            r#"<a:root xmlns:a="urn:a" xmlns:b="urn:b" z="2" a:y="3" b:attr="1"><child xmlns="urn:default" c="1"><b:inner></b:inner><a:x xmlns:a="urn:a2" xmlns:b="urn:b2" b:q="v"></a:x></child><plain><deeper xmlns:d="urn:d" d:at="x"></deeper></plain><b:other><again xmlns="urn:default"></again></b:other></a:root>"#
        );
    }

    #[test]
    fn text_attributes_cdata_and_processing_instructions_are_escaped_as_libxml2_does() {
        let xml = "<r b='say \"hi\" &amp; &lt;bye>' a=\"x&#9;y&#10;z&#13;w\tq\nr\" xml:lang=\"en\">text &amp; &lt;tag&gt; &#13; <![CDATA[<cdata> & ]]]]><![CDATA[>]]><?pi   some data ?><?empty?><!-- comment -->\r\n  <e/>\r\n  <f   x = \"1\"  />&#x10000;&#xE9;</r>";
        assert_eq!(
            whole(xml),
            "<r a=\"x&#x9;y&#xA;z&#xD;w q r\" b=\"say &quot;hi&quot; &amp; &lt;bye>\" xml:lang=\"en\">text &amp; &lt;tag&gt; &#xD; &lt;cdata&gt; &amp; ]]&gt;<?pi some data ?><?empty?>\n  <e></e>\n  <f x=\"1\"></f>\u{10000}\u{e9}</r>"
        );
    }

    #[test]
    fn attributes_sort_by_namespace_uri_then_local_name() {
        let xml = r#"<r xmlns:z="urn:a" xmlns:a="urn:z" z:b="1" a:a="2" b="3" a="4" xml:space="preserve" z:a="5"><s xmlns="urn:x" xmlns:p="urn:x" p:k="1"/></r>"#;
        assert_eq!(
            whole(xml),
            r#"<r xmlns:a="urn:z" xmlns:z="urn:a" a="4" b="3" xml:space="preserve" z:a="5" z:b="1" a:a="2"><s xmlns="urn:x" xmlns:p="urn:x" p:k="1"></s></r>"#
        );
    }

    #[test]
    fn a_subtree_declares_what_it_inherits_and_leaves_the_excluded_element_out() {
        let xml = r#"<x:root xmlns:x="urn:x" xmlns:y="urn:y" xmlns="urn:d"><x:signed ID="1"><y:sig><x:inner/></y:sig><!-- c --><x:keep y:a="1"/><plain/></x:signed></x:root>"#;
        let doc = Document::parse(xml).unwrap();
        let signed = element(&doc, "signed");
        let sig = element(&doc, "sig");
        let out = exclusive(signed, Some(sig.id()), &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"<x:signed xmlns:x="urn:x" ID="1"><x:keep xmlns:y="urn:y" y:a="1"></x:keep><plain xmlns="urn:d"></plain></x:signed>"#
        );
    }

    #[test]
    fn the_inclusive_prefix_list_renders_those_prefixes_once_at_the_top() {
        let xml = r#"<r xmlns:xs="urn:xs" xmlns:s="urn:s" xmlns="urn:d"><s:a><s:v t="xs:string">1</s:v><e/></s:a></r>"#;
        let doc = Document::parse(xml).unwrap();
        let a = element(&doc, "a");
        let plain = String::from_utf8(exclusive(a, None, &[]).unwrap()).unwrap();
        assert_eq!(
            plain,
            r#"<s:a xmlns:s="urn:s"><s:v t="xs:string">1</s:v><e xmlns="urn:d"></e></s:a>"#
        );
        let listed = String::from_utf8(exclusive(a, None, &["xs", "", "absent"]).unwrap()).unwrap();
        assert_eq!(
            listed,
            r#"<s:a xmlns="urn:d" xmlns:s="urn:s" xmlns:xs="urn:xs"><s:v t="xs:string">1</s:v><e></e></s:a>"#
        );
    }

    #[test]
    fn two_prefixes_for_one_uri_keep_the_prefix_the_document_used() {
        let xml = r#"<r xmlns:saml="urn:a" xmlns:saml2="urn:a"><saml2:e saml:x="1"/></r>"#;
        assert_eq!(
            whole(xml),
            r#"<r><saml2:e xmlns:saml="urn:a" xmlns:saml2="urn:a" saml:x="1"></saml2:e></r>"#
        );
    }

    #[test]
    fn an_undeclared_default_namespace_is_rendered_empty_below_a_declared_one() {
        let xml = r#"<r xmlns="urn:d"><a xmlns=""><b/></a></r>"#;
        assert_eq!(
            whole(xml),
            r#"<r xmlns="urn:d"><a xmlns=""><b></b></a></r>"#
        );
    }
}
