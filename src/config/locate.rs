//! Finds the line of a key in the TOML text, and the key at a position, so
//! that every config error can name both.

use toml_edit::{ImDocument, Item, Table};

pub(super) struct Locator<'a> {
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    pub(super) fn line_of_offset(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The line of a dotted key path such as `proxy.tls.cert_file` (array
    /// indices, as serde_ignored writes them, are skipped).
    pub(super) fn line_of_key(&self, path: &str) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut table: &Table = doc.as_table();
        let mut last_span = None;
        for part in path.split('.') {
            if part.parse::<usize>().is_ok() {
                continue;
            }
            let (key, item) = table.get_key_value(part)?;
            last_span = key.span().or_else(|| item.span()).or(last_span);
            match item {
                Item::Table(t) => {
                    if let Some(s) = t.span() {
                        last_span = Some(s);
                    }
                    table = t;
                }
                _ => break,
            }
        }
        last_span.map(|s| self.line_of_offset(s.start))
    }

    /// The dotted path of the key whose value spans `offset`.
    pub(super) fn key_at(&self, offset: usize) -> Option<String> {
        let doc = self.doc.as_ref()?;
        let mut best: Option<String> = None;
        walk(doc.as_table(), "", offset, &mut best);
        best
    }
}

fn walk(table: &Table, prefix: &str, offset: usize, best: &mut Option<String>) {
    for (k, item) in table.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        let span = match item {
            Item::Value(v) => v.span(),
            Item::Table(t) => t.span(),
            _ => None,
        };
        let key_span = table.key(k).and_then(|key| key.span());
        let covers = |s: &std::ops::Range<usize>| s.start <= offset && offset <= s.end;
        if span.as_ref().is_some_and(covers) || key_span.as_ref().is_some_and(covers) {
            *best = Some(path.clone());
        }
        if let Item::Table(t) = item {
            walk(t, &path, offset, best);
        }
    }
}
