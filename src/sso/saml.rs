//! SAML 2.0 Web Browser SSO responses, as the HTTP-POST binding carries
//! them (`SAMLResponse`, base64 of a `<samlp:Response>`): who logs in
//! ([`read`], an unverified claim) and whether the IdP said so ([`verify`]).
//!
//! Both parse with [`roxmltree`] under [`Limits`]: a document type
//! declaration is refused outright (so no entity is ever declared, expanded
//! or fetched), and the size, node count and depth are bounded before any
//! work that grows with them.
//!
//! The structure both accept: the root is `samlp:Response`, and the whole
//! document holds exactly one `saml:Assertion` or `saml:EncryptedAssertion`,
//! a direct child of the root; no two elements share an ID. Everything is
//! read by namespace and by path from the root (Response → Assertion →
//! Subject → NameID), never by searching the document, so an element
//! smuggled elsewhere (in `Extensions`, `Advice`, a signature's `Object`) is
//! either refused by the count or never looked at.
//!
//! [`verify`] accepts only what it can check completely: an enveloped
//! signature (a `ds:Signature` child of the element it signs) over the
//! Assertion or over the Response, whose single `Reference` names that
//! element's `ID`, with exactly the transforms enveloped-signature +
//! exclusive c14n, exclusive c14n for `SignedInfo`, SHA-256 and RSA
//! PKCS#1 v1.5 with SHA-256, checked against the configured certificate
//! only (`KeyInfo` is ignored). Then the profile's conditions: status
//! Success, the validity window (with a clock skew), the audience, the
//! destination and the bearer confirmation's recipient.

use super::c14n::{self, C14nError};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use jiff::{SignedDuration, Timestamp};
use roxmltree::{Document, Node, ParsingOptions};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

/// `samlp:` — requests and responses.
pub const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// `saml:` — assertions.
pub const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// `ds:` — XML signatures.
pub const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
/// `ec:` — exclusive canonicalisation's `InclusiveNamespaces`.
const NS_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CM_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// The one algorithm of each kind that [`verify`] accepts.
pub const ALG_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
pub const ALG_ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
pub const ALG_RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
pub const ALG_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

/// Bounds on what is parsed. The defaults are far above any real IdP's
/// response (a few KiB, depth about 10, some hundred nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest `SAMLResponse` accepted, in base64 characters (the decoded
    /// XML is at most three quarters of it).
    pub max_encoded: usize,
    /// Most XML nodes (elements, text, attributes count towards it too).
    pub max_nodes: u32,
    /// Deepest element nesting.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_encoded: 256 * 1024,
            max_nodes: 20_000,
            max_depth: 32,
        }
    }
}

/// Why a response was not read or not accepted. The text names what failed
/// and never repeats the response's content (no user name, no attribute
/// values; algorithm and status URIs are reduced to printable ASCII).
#[derive(Debug, thiserror::Error)]
pub enum SamlError {
    #[error("SAMLResponse is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("SAMLResponse is not base64")]
    NotBase64,
    #[error("SAMLResponse is not UTF-8 text")]
    NotUtf8,
    #[error("SAMLResponse has a document type declaration (DTDs and entities are refused)")]
    Dtd,
    #[error("SAMLResponse is not well-formed XML")]
    Xml(#[source] roxmltree::Error),
    #[error("SAMLResponse nests elements deeper than {limit}")]
    TooDeep { limit: usize },
    #[error("the document is not a SAML 2.0 protocol Response")]
    NotAResponse,
    #[error("the response has no {0}")]
    Missing(&'static str),
    #[error("the response's {0} is malformed")]
    Malformed(&'static str),
    #[error("the response has {0} assertions; exactly one is accepted")]
    AssertionCount(usize),
    #[error("the assertion is not a direct child of the response")]
    MisplacedAssertion,
    #[error("two elements of the response have the same ID")]
    DuplicateId,
    #[error("the assertion is encrypted (EncryptedAssertion): it names no user iumgate can read")]
    Encrypted,
    #[error("the response's status is not Success but {code}")]
    Status { code: String },
    #[error("neither the assertion nor the response is signed")]
    Unsigned,
    #[error("the response has more than one signature on one element")]
    SignatureCount,
    #[error("the signature's reference is not the ID of the element it is enveloped in")]
    Reference,
    #[error("unsupported {what} {algorithm} (accepted: exclusive c14n, enveloped-signature, SHA-256, RSA-SHA256)")]
    Algorithm {
        what: &'static str,
        algorithm: String,
    },
    #[error("the signature does not verify with the IdP's certificate")]
    Signature,
    #[error("the signed element's digest does not match: it was changed after signing")]
    Digest,
    #[error("the signed element could not be canonicalised")]
    C14n(#[from] C14nError),
    #[error("the IdP certificate: {0}")]
    Certificate(String),
    #[error("the assertion is not valid yet (NotBefore is in the future)")]
    NotYetValid,
    #[error("the assertion has expired (NotOnOrAfter has passed)")]
    Expired,
    #[error("the assertion is not for this service: no AudienceRestriction names {expected:?}")]
    Audience { expected: String },
    #[error("the response is addressed elsewhere: its Destination is not {expected:?}")]
    Destination { expected: String },
    #[error("the assertion has no bearer SubjectConfirmation for recipient {expected:?} that is still valid")]
    Recipient { expected: String },
    #[error("the assertion is not from the configured IdP {expected:?}")]
    Issuer { expected: String },
    #[error("the assertion has no AuthnStatement")]
    NoAuthnStatement,
    #[error("the assertion's Version is not 2.0")]
    Version,
}

/// A response as read: who the IdP says logs in, not yet checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Assertion {
    pub response: ResponseInfo,
    pub content: Content,
}

/// The `samlp:Response` element's own fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInfo {
    pub id: String,
    pub destination: Option<String>,
    pub issuer: Option<String>,
    pub in_response_to: Option<String>,
    pub issue_instant: Option<Timestamp>,
    /// The top-level `StatusCode`'s `Value`.
    pub status: String,
}

/// The assertion: readable, or encrypted for the app (then it names no one
/// iumgate can see).
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    Plain(Box<Claims>),
    Encrypted,
}

/// What a plain `saml:Assertion` says.
#[derive(Clone, PartialEq, Eq)]
pub struct Claims {
    pub id: String,
    pub version: Option<String>,
    pub issuer: Option<String>,
    pub issue_instant: Option<Timestamp>,
    /// `Subject/NameID`'s text (all of its text, comments left out, trimmed).
    pub name_id: Option<String>,
    pub name_id_format: Option<String>,
    pub confirmations: Vec<Confirmation>,
    /// `Conditions/@NotBefore`.
    pub not_before: Option<Timestamp>,
    /// `Conditions/@NotOnOrAfter`.
    pub not_on_or_after: Option<Timestamp>,
    /// Whether the assertion has a `Conditions` element.
    pub has_conditions: bool,
    /// One list of `Audience` values per `AudienceRestriction` (the
    /// assertion is for a service named in every one of them).
    pub audiences: Vec<Vec<String>>,
    pub authn: Vec<Authn>,
    /// Every `AttributeStatement/Attribute`, in document order.
    pub attributes: Vec<Attribute>,
}

/// A `Subject/SubjectConfirmation` and its `SubjectConfirmationData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub method: String,
    pub recipient: Option<String>,
    pub not_before: Option<Timestamp>,
    pub not_on_or_after: Option<Timestamp>,
    pub in_response_to: Option<String>,
}

/// An `AuthnStatement`.
#[derive(Clone, PartialEq, Eq)]
pub struct Authn {
    pub instant: Option<Timestamp>,
    pub session_index: Option<String>,
    pub session_not_on_or_after: Option<Timestamp>,
    pub class_ref: Option<String>,
}

/// An `Attribute` and its values' text.
#[derive(Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub friendly_name: Option<String>,
    pub values: Vec<String>,
}

impl Assertion {
    pub fn is_encrypted(&self) -> bool {
        matches!(self.content, Content::Encrypted)
    }

    /// The plain assertion's claims; `None` when it is encrypted.
    pub fn claims(&self) -> Option<&Claims> {
        match &self.content {
            Content::Plain(claims) => Some(claims),
            Content::Encrypted => None,
        }
    }

    /// Who logs in, as the response claims: see [`Claims::username`].
    /// `None` for an encrypted assertion.
    pub fn username(&self, attribute: Option<&str>) -> Option<&str> {
        self.claims()?.username(attribute)
    }
}

impl Claims {
    /// Who logs in: the `NameID`, or with `attribute` the first value of the
    /// attribute of that `Name` (or, failing that, `FriendlyName`). `None`
    /// when it is absent or empty.
    pub fn username(&self, attribute: Option<&str>) -> Option<&str> {
        let name = match attribute {
            None => self.name_id.as_deref()?,
            Some(wanted) => {
                let attr = self
                    .attributes
                    .iter()
                    .find(|a| a.name == wanted)
                    .or_else(|| {
                        self.attributes
                            .iter()
                            .find(|a| a.friendly_name.as_deref() == Some(wanted))
                    })?;
                attr.values.first()?.as_str()
            }
        };
        (!name.is_empty()).then_some(name)
    }

    /// The attribute's values, by `Name`.
    pub fn attribute(&self, name: &str) -> Option<&[String]> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.values.as_slice())
    }
}

// Debug shows the user name and the shape, never attribute values or
// session indexes: these structs end up in logs.
impl fmt::Debug for Assertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Assertion")
            .field("response", &self.response.id)
            .field("content", &self.content)
            .finish()
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Plain(claims) => claims.fmt(f),
            Content::Encrypted => f.write_str("Encrypted"),
        }
    }
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("id", &self.id)
            .field("name_id", &self.name_id)
            .field("attributes", &self.attributes)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attribute")
            .field("name", &self.name)
            .field("values", &self.values.len())
            .finish()
    }
}

impl fmt::Debug for Authn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authn")
            .field("instant", &self.instant)
            .field("class_ref", &self.class_ref)
            .finish_non_exhaustive()
    }
}

/// The base64 `SAMLResponse` (a form field's value, already URL-decoded;
/// line breaks and padding as IdPs write them) as XML text.
pub fn decode(saml_response_b64: &str, limits: &Limits) -> Result<String, SamlError> {
    if saml_response_b64.len() > limits.max_encoded {
        return Err(SamlError::TooLarge {
            limit: limits.max_encoded,
        });
    }
    let bytes = b64_decode(saml_response_b64).ok_or(SamlError::NotBase64)?;
    String::from_utf8(bytes).map_err(|_| SamlError::NotUtf8)
}

/// Who the response says logs in, without checking any signature: a claim,
/// to be believed only after [`verify`]. The base64 is decoded and parsed
/// under `limits`.
pub fn read(saml_response_b64: &str, limits: &Limits) -> Result<Assertion, SamlError> {
    read_xml(&decode(saml_response_b64, limits)?, limits)
}

/// [`read`] for the decoded XML.
pub fn read_xml(xml: &str, limits: &Limits) -> Result<Assertion, SamlError> {
    let doc = parse(xml, limits)?;
    Ok(extract(&doc)?.0)
}

/// The IdP's signing certificates (more than one while it rolls its key
/// over): a response signed by any of them verifies.
#[derive(Clone)]
pub struct IdpCertificates {
    certs: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for IdpCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdpCertificates")
            .field("count", &self.certs.len())
            .finish()
    }
}

impl IdpCertificates {
    /// Every `CERTIFICATE` block of a PEM text, or, with no PEM block, the
    /// base64 of one DER certificate (as IdP metadata's `X509Certificate`
    /// carries it). Each must be an X.509 v3 certificate.
    pub fn from_pem(pem: &str) -> Result<IdpCertificates, SamlError> {
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert =
                cert.map_err(|e| SamlError::Certificate(format!("not a valid PEM file: {e}")))?;
            certs.push(cert);
        }
        if certs.is_empty() && !pem.contains("-----BEGIN") {
            if let Some(der) = b64_decode(pem) {
                certs.push(CertificateDer::from(der));
            }
        }
        if certs.is_empty() {
            return Err(SamlError::Certificate("no CERTIFICATE in it".into()));
        }
        for cert in &certs {
            webpki::EndEntityCert::try_from(cert).map_err(|e| {
                SamlError::Certificate(format!("not a usable X.509 v3 certificate: {e}"))
            })?;
        }
        Ok(IdpCertificates { certs })
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Whether `signature` is RSA PKCS#1 v1.5 SHA-256 of `message` by one
    /// of the certificates' keys (2048 to 8192 bits).
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.certs.iter().any(|der| {
            webpki::EndEntityCert::try_from(der).is_ok_and(|cert| {
                cert.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, message, signature)
                    .is_ok()
            })
        })
    }
}

/// What this service expects of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// This service provider's entity ID, which an `Audience` must name.
    pub audience: String,
    /// The URL the response is posted to (the app's
    /// `…/plugins/servlet/samlconsumer`): the Response's `Destination` (if it
    /// has one) and the bearer confirmation's `Recipient`.
    pub destination: String,
    /// The IdP's entity ID, when configured: the Assertion's `Issuer` (and
    /// the Response's, if it has one) must be it.
    pub issuer: Option<String>,
    pub now: Timestamp,
    /// Tolerated difference between the IdP's clock and this one.
    pub clock_skew: Duration,
}

impl Expected {
    /// The default tolerance of clock differences: 3 minutes.
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(180);

    pub fn new(audience: &str, destination: &str, now: Timestamp) -> Expected {
        Expected {
            audience: audience.to_string(),
            destination: destination.to_string(),
            issuer: None,
            now,
            clock_skew: Expected::DEFAULT_SKEW,
        }
    }
}

/// Which element the verified signature (or signatures) covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    Assertion,
    Response,
    Both,
}

/// A response that [`verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub response: ResponseInfo,
    pub claims: Claims,
    pub signed: Signed,
    /// Until when (skew included) this assertion would still be accepted:
    /// how long a replay cache must remember its ID.
    pub replayable_until: Timestamp,
}

impl Verified {
    /// Who logs in: see [`Claims::username`].
    pub fn username(&self, attribute: Option<&str>) -> Option<&str> {
        self.claims.username(attribute)
    }

    /// The assertion's ID (for a replay cache: an assertion is accepted once).
    pub fn assertion_id(&self) -> &str {
        &self.claims.id
    }
}

/// Checks the response (decoded XML, see [`decode`]) completely: the
/// structure, a signature by one of `idp`'s certificates over the assertion
/// that is read (or over the response holding it), and the conditions of
/// `expected`. Returns the assertion's claims only when every check passes.
pub fn verify(
    xml: &str,
    idp: &IdpCertificates,
    expected: &Expected,
    limits: &Limits,
) -> Result<Verified, SamlError> {
    let doc = parse(xml, limits)?;
    let (assertion, node) = extract(&doc)?;
    let Content::Plain(claims) = assertion.content else {
        return Err(SamlError::Encrypted);
    };
    let assertion_node = node.ok_or(SamlError::Encrypted)?;
    let response_node = doc.root_element();

    // The signatures: enveloped ones only, on the assertion or the response.
    let on_assertion = signature_child(assertion_node)?;
    let on_response = signature_child(response_node)?;
    let signed = match (on_assertion, on_response) {
        (None, None) => return Err(SamlError::Unsigned),
        (Some(_), None) => Signed::Assertion,
        (None, Some(_)) => Signed::Response,
        (Some(_), Some(_)) => Signed::Both,
    };
    if let Some(sig) = on_assertion {
        check_signature(sig, assertion_node, idp)?;
    }
    if let Some(sig) = on_response {
        check_signature(sig, response_node, idp)?;
    }

    let response = assertion.response;
    if response.status != STATUS_SUCCESS {
        return Err(SamlError::Status {
            code: printable(&response.status),
        });
    }
    if claims.version.as_deref() != Some("2.0") {
        return Err(SamlError::Version);
    }
    // A signed Response must say where it is going; an unsigned one may
    // leave it out (its assertion's Recipient is checked below).
    match response.destination.as_deref() {
        Some(d) if d != expected.destination => {
            return Err(SamlError::Destination {
                expected: expected.destination.clone(),
            })
        }
        None if signed != Signed::Assertion => {
            return Err(SamlError::Destination {
                expected: expected.destination.clone(),
            })
        }
        _ => {}
    }
    if let Some(issuer) = &expected.issuer {
        let wrong = |i: &Option<String>| i.as_deref().is_some_and(|i| i != issuer);
        if claims.issuer.as_deref() != Some(issuer) || wrong(&response.issuer) {
            return Err(SamlError::Issuer {
                expected: issuer.clone(),
            });
        }
    }

    let skew = SignedDuration::try_from(expected.clock_skew).unwrap_or(SignedDuration::ZERO);
    let late = expected
        .now
        .saturating_add(skew)
        .map_err(|_| SamlError::Expired)?;
    let early = expected
        .now
        .saturating_sub(skew)
        .map_err(|_| SamlError::Expired)?;
    // NotBefore ≤ now (+ skew), now (− skew) < NotOnOrAfter.
    let started = |t: Option<Timestamp>| t.is_none_or(|t| t <= late);
    let running = |t: Option<Timestamp>| t.is_none_or(|t| early < t);
    if !started(claims.not_before) {
        return Err(SamlError::NotYetValid);
    }
    if !running(claims.not_on_or_after) {
        return Err(SamlError::Expired);
    }

    // The web SSO profile: an AudienceRestriction naming this service (each
    // one present must), a bearer confirmation for this recipient with an
    // end, and an AuthnStatement.
    if claims.audiences.is_empty()
        || !claims
            .audiences
            .iter()
            .all(|r| r.iter().any(|a| a == &expected.audience))
    {
        return Err(SamlError::Audience {
            expected: expected.audience.clone(),
        });
    }
    let bearer = claims
        .confirmations
        .iter()
        .filter(|c| c.method == CM_BEARER)
        .find(|c| {
            c.recipient.as_deref() == Some(expected.destination.as_str())
                && c.not_on_or_after.is_some()
                && running(c.not_on_or_after)
                && started(c.not_before)
        })
        .ok_or_else(|| SamlError::Recipient {
            expected: expected.destination.clone(),
        })?;
    if claims.authn.is_empty() {
        return Err(SamlError::NoAuthnStatement);
    }

    let ends = [claims.not_on_or_after, bearer.not_on_or_after];
    let end = ends.into_iter().flatten().min().unwrap_or(expected.now);
    let replayable_until = end.saturating_add(skew).unwrap_or(end);
    Ok(Verified {
        response,
        claims: *claims,
        signed,
        replayable_until,
    })
}

/// [`decode`] then [`verify`].
pub fn verify_b64(
    saml_response_b64: &str,
    idp: &IdpCertificates,
    expected: &Expected,
    limits: &Limits,
) -> Result<Verified, SamlError> {
    verify(&decode(saml_response_b64, limits)?, idp, expected, limits)
}

// ---------------------------------------------------------------------------
// Parsing

fn parse<'x>(xml: &'x str, limits: &Limits) -> Result<Document<'x>, SamlError> {
    if xml.len() > limits.max_encoded {
        return Err(SamlError::TooLarge {
            limit: limits.max_encoded,
        });
    }
    // roxmltree refuses a DTD with these options; refusing the text too
    // keeps that true whatever a later version's defaults are.
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SamlError::Dtd);
    }
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits.max_nodes,
        entity_resolver: None,
    };
    let doc = Document::parse_with_options(xml, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => SamlError::Dtd,
        e => SamlError::Xml(e),
    })?;

    // Depth, in one pass: a node's parent comes before it in document order.
    let mut depth: Vec<u16> = Vec::new();
    for node in doc.descendants() {
        let index = node.id().get_usize();
        let d = match node.parent() {
            Some(p) => depth.get(p.id().get_usize()).copied().unwrap_or(0) + 1,
            None => 0,
        };
        if usize::from(d) > limits.max_depth {
            return Err(SamlError::TooDeep {
                limit: limits.max_depth,
            });
        }
        if depth.len() <= index {
            depth.resize(index + 1, 0);
        }
        depth[index] = d;
    }
    Ok(doc)
}

/// The response's fields and its one assertion (and that assertion's node,
/// `None` when encrypted).
fn extract<'a, 'i>(doc: &'a Document<'i>) -> Result<(Assertion, Option<Node<'a, 'i>>), SamlError> {
    let root = doc.root_element();
    if !root.has_tag_name((NS_PROTOCOL, "Response")) {
        return Err(SamlError::NotAResponse);
    }
    check_unique_ids(doc)?;

    let status = child(root, NS_PROTOCOL, "Status")
        .and_then(|s| child(s, NS_PROTOCOL, "StatusCode"))
        .and_then(|c| att(c, "Value"))
        .ok_or(SamlError::Missing("Status/StatusCode"))?;
    let response = ResponseInfo {
        id: att(root, "ID")
            .ok_or(SamlError::Missing("Response ID"))?
            .to_string(),
        destination: attr(root, "Destination"),
        issuer: child(root, NS_ASSERTION, "Issuer").map(text),
        in_response_to: attr(root, "InResponseTo"),
        issue_instant: instant(root, "IssueInstant", "Response IssueInstant")?,
        status: status.to_string(),
    };

    // Exactly one assertion, plain or encrypted, anywhere in the document,
    // and it is a child of the response.
    let assertions: Vec<Node<'a, 'i>> = doc
        .descendants()
        .filter(|n| {
            n.has_tag_name((NS_ASSERTION, "Assertion"))
                || n.has_tag_name((NS_ASSERTION, "EncryptedAssertion"))
        })
        .collect();
    let node = match assertions.as_slice() {
        [] if response.status != STATUS_SUCCESS => {
            return Err(SamlError::Status {
                code: printable(&response.status),
            })
        }
        [one] => *one,
        more => return Err(SamlError::AssertionCount(more.len())),
    };
    if node.parent() != Some(root) {
        return Err(SamlError::MisplacedAssertion);
    }
    if node.tag_name().name() == "EncryptedAssertion" {
        let assertion = Assertion {
            response,
            content: Content::Encrypted,
        };
        return Ok((assertion, None));
    }
    let claims = claims(node)?;
    let assertion = Assertion {
        response,
        content: Content::Plain(Box::new(claims)),
    };
    Ok((assertion, Some(node)))
}

fn claims(a: Node<'_, '_>) -> Result<Claims, SamlError> {
    let subject = child(a, NS_ASSERTION, "Subject");
    let name_id = subject.and_then(|s| child(s, NS_ASSERTION, "NameID"));
    let mut confirmations = Vec::new();
    for c in subject
        .into_iter()
        .flat_map(|s| children(s, NS_ASSERTION, "SubjectConfirmation"))
    {
        let data = child(c, NS_ASSERTION, "SubjectConfirmationData");
        confirmations.push(Confirmation {
            method: att(c, "Method")
                .ok_or(SamlError::Missing("SubjectConfirmation Method"))?
                .to_string(),
            recipient: data.and_then(|d| attr(d, "Recipient")),
            not_before: data
                .map(|d| instant(d, "NotBefore", "SubjectConfirmationData NotBefore"))
                .transpose()?
                .flatten(),
            not_on_or_after: data
                .map(|d| instant(d, "NotOnOrAfter", "SubjectConfirmationData NotOnOrAfter"))
                .transpose()?
                .flatten(),
            in_response_to: data.and_then(|d| attr(d, "InResponseTo")),
        });
    }

    let conditions = child(a, NS_ASSERTION, "Conditions");
    let audiences = conditions
        .into_iter()
        .flat_map(|c| children(c, NS_ASSERTION, "AudienceRestriction"))
        .map(|r| children(r, NS_ASSERTION, "Audience").map(text).collect())
        .collect();

    let mut authn = Vec::new();
    for s in children(a, NS_ASSERTION, "AuthnStatement") {
        authn.push(Authn {
            instant: instant(s, "AuthnInstant", "AuthnInstant")?,
            session_index: attr(s, "SessionIndex"),
            session_not_on_or_after: instant(
                s,
                "SessionNotOnOrAfter",
                "AuthnStatement SessionNotOnOrAfter",
            )?,
            class_ref: child(s, NS_ASSERTION, "AuthnContext")
                .and_then(|c| child(c, NS_ASSERTION, "AuthnContextClassRef"))
                .map(text),
        });
    }

    let mut attributes = Vec::new();
    for s in children(a, NS_ASSERTION, "AttributeStatement") {
        for at in children(s, NS_ASSERTION, "Attribute") {
            attributes.push(Attribute {
                name: att(at, "Name")
                    .ok_or(SamlError::Missing("Attribute Name"))?
                    .to_string(),
                friendly_name: attr(at, "FriendlyName"),
                values: children(at, NS_ASSERTION, "AttributeValue")
                    .map(deep_text)
                    .collect(),
            });
        }
    }

    Ok(Claims {
        id: att(a, "ID")
            .ok_or(SamlError::Missing("Assertion ID"))?
            .to_string(),
        version: attr(a, "Version"),
        issuer: child(a, NS_ASSERTION, "Issuer").map(text),
        issue_instant: instant(a, "IssueInstant", "Assertion IssueInstant")?,
        name_id: name_id.map(text),
        name_id_format: name_id.and_then(|n| attr(n, "Format")),
        confirmations,
        not_before: conditions
            .map(|c| instant(c, "NotBefore", "Conditions NotBefore"))
            .transpose()?
            .flatten(),
        not_on_or_after: conditions
            .map(|c| instant(c, "NotOnOrAfter", "Conditions NotOnOrAfter"))
            .transpose()?
            .flatten(),
        has_conditions: conditions.is_some(),
        audiences,
        authn,
        attributes,
    })
}

/// No two elements share an ID (any of the attribute names signatures and
/// SAML use for one): a reference by ID then names one element only.
fn check_unique_ids(doc: &Document<'_>) -> Result<(), SamlError> {
    let mut seen = HashSet::new();
    for node in doc.descendants().filter(|n| n.is_element()) {
        for a in node.attributes() {
            let is_id = match a.namespace() {
                None => matches!(a.name(), "ID" | "Id" | "id" | "AssertionID"),
                Some(ns) => ns == "http://www.w3.org/XML/1998/namespace" && a.name() == "id",
            };
            if is_id && !seen.insert(a.value()) {
                return Err(SamlError::DuplicateId);
            }
        }
    }
    Ok(())
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name((ns, name)))
}

fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    ns: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |c| c.has_tag_name((ns, name)))
}

/// The value of the element's attribute `name` in no namespace (roxmltree's
/// `attribute("name")` would also match `any:name`).
fn att<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.namespace().is_none() && a.name() == name)
        .map(|a| a.value())
}

fn attr(node: Node<'_, '_>, name: &str) -> Option<String> {
    att(node, name).map(str::to_string)
}

/// The element's own text: all its text children joined (a comment inside
/// splits the text into several; what is signed is all of it), trimmed.
fn text(node: Node<'_, '_>) -> String {
    let mut s = String::new();
    for t in node.children().filter(|c| c.is_text()) {
        s.push_str(t.text().unwrap_or(""));
    }
    s.trim().to_string()
}

/// All text under the element (an attribute value may hold markup).
fn deep_text(node: Node<'_, '_>) -> String {
    let mut s = String::new();
    for t in node.descendants().filter(|c| c.is_text()) {
        s.push_str(t.text().unwrap_or(""));
    }
    s.trim().to_string()
}

/// An `xs:dateTime` attribute: UTC as SAML asks (`…Z`), an offset, or no
/// zone at all (then UTC).
fn instant(
    node: Node<'_, '_>,
    name: &str,
    what: &'static str,
) -> Result<Option<Timestamp>, SamlError> {
    let Some(value) = att(node, name) else {
        return Ok(None);
    };
    let value = value.trim();
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(Some(t));
    }
    value
        .parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| Some(z.timestamp()))
        .ok_or(SamlError::Malformed(what))
}

/// Base64 as XML signatures and IdPs write it: white space anywhere,
/// padding optional.
fn b64_decode(s: &str) -> Option<Vec<u8>> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    ENGINE.decode(compact).ok()
}

/// A value from the response fit for an error's text: printable ASCII, at
/// most 100 characters.
fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect();
    if out.is_empty() {
        out.push_str("(empty)");
    }
    out
}

// ---------------------------------------------------------------------------
// Signatures

/// The element's `ds:Signature` child, if any; more than one is refused.
fn signature_child<'a, 'i>(node: Node<'a, 'i>) -> Result<Option<Node<'a, 'i>>, SamlError> {
    let mut sigs = children(node, NS_DSIG, "Signature");
    let first = sigs.next();
    if sigs.next().is_some() {
        return Err(SamlError::SignatureCount);
    }
    Ok(first)
}

/// `sig` (a child of `signed`) is a valid signature by the IdP over exactly
/// `signed` (minus `sig`).
fn check_signature<'a, 'i>(
    sig: Node<'a, 'i>,
    signed: Node<'a, 'i>,
    idp: &IdpCertificates,
) -> Result<(), SamlError> {
    let signed_info = only_child(sig, "SignedInfo")?;
    let c14n_method = only_child(signed_info, "CanonicalizationMethod")?;
    algorithm(c14n_method, ALG_EXC_C14N, "canonicalization method")?;
    algorithm(
        only_child(signed_info, "SignatureMethod")?,
        ALG_RSA_SHA256,
        "signature method",
    )?;

    // One reference, to the element the signature is enveloped in.
    let mut refs = children(signed_info, NS_DSIG, "Reference");
    let reference = refs
        .next()
        .ok_or(SamlError::Missing("Signature Reference"))?;
    if refs.next().is_some() {
        return Err(SamlError::Reference);
    }
    let id = att(signed, "ID").ok_or(SamlError::Reference)?;
    match att(reference, "URI").and_then(|u| u.strip_prefix('#')) {
        Some(fragment) if fragment == id && !id.is_empty() => {}
        _ => return Err(SamlError::Reference),
    }
    let transforms: Vec<_> = only_child(reference, "Transforms")?
        .children()
        .filter(|n| n.is_element())
        .collect();
    let [enveloped, exc] = transforms.as_slice() else {
        return Err(SamlError::Algorithm {
            what: "transform list",
            algorithm: format!("of {} transforms", transforms.len()),
        });
    };
    for t in [enveloped, exc] {
        if !t.has_tag_name((NS_DSIG, "Transform")) {
            return Err(SamlError::Malformed("Reference Transforms"));
        }
    }
    algorithm(*enveloped, ALG_ENVELOPED, "first transform")?;
    algorithm(*exc, ALG_EXC_C14N, "second transform")?;
    algorithm(
        only_child(reference, "DigestMethod")?,
        ALG_SHA256,
        "digest method",
    )?;
    let digest_value = b64_decode(&text(only_child(reference, "DigestValue")?))
        .ok_or(SamlError::Malformed("DigestValue"))?;
    let signature_value = b64_decode(&text(only_child(sig, "SignatureValue")?))
        .ok_or(SamlError::Malformed("SignatureValue"))?;

    // SignedInfo is what the key signed…
    let canonical = c14n::exclusive(signed_info, None, &inclusive_prefixes(c14n_method))?;
    if !idp.verify(&canonical, &signature_value) {
        return Err(SamlError::Signature);
    }
    // …and it holds the digest of the element, signature taken out.
    let canonical = c14n::exclusive(signed, Some(sig.id()), &inclusive_prefixes(*exc))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    if digest.as_ref() != digest_value.as_slice() {
        return Err(SamlError::Digest);
    }
    Ok(())
}

/// The single `ds:` child of that name.
fn only_child<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Result<Node<'a, 'i>, SamlError> {
    let mut found = children(node, NS_DSIG, name);
    let first = found.next().ok_or(SamlError::Missing(name))?;
    if found.next().is_some() {
        return Err(SamlError::Malformed(name));
    }
    Ok(first)
}

fn algorithm(node: Node<'_, '_>, wanted: &str, what: &'static str) -> Result<(), SamlError> {
    match att(node, "Algorithm") {
        Some(a) if a == wanted => Ok(()),
        other => Err(SamlError::Algorithm {
            what,
            algorithm: printable(other.unwrap_or("")),
        }),
    }
}

/// The `InclusiveNamespaces PrefixList` of an exclusive c14n method or
/// transform (`#default` is the default namespace, `""`).
fn inclusive_prefixes<'a>(method: Node<'a, '_>) -> Vec<&'a str> {
    method
        .children()
        .filter(|c| c.has_tag_name((NS_EXC_C14N, "InclusiveNamespaces")))
        .filter_map(|c| att(c, "PrefixList"))
        .flat_map(str::split_ascii_whitespace)
        .map(|p| if p == "#default" { "" } else { p })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use iumgate_sim::saml_idp::{SamlIdp, SamlLogin, SignWhat, Wrap};
    use std::sync::OnceLock;

    const SP: &str = "https://jira.example.com";
    const ACS: &str = "https://jira.example.com/plugins/servlet/samlconsumer";

    /// One IdP for the module: an RSA key takes a while in a debug build.
    fn idp() -> &'static SamlIdp {
        static IDP: OnceLock<SamlIdp> = OnceLock::new();
        IDP.get_or_init(|| SamlIdp::new("https://idp.example.com").expect("sim IdP starts"))
    }

    fn certs() -> IdpCertificates {
        IdpCertificates::from_pem(idp().certificate_pem()).expect("the sim's certificate loads")
    }

    fn login(user: &str) -> SamlLogin {
        SamlLogin::new(user, SP, ACS)
    }

    fn expected() -> Expected {
        Expected::new(SP, ACS, Timestamp::now())
    }

    fn check(xml: &str) -> Result<Verified, SamlError> {
        verify(xml, &certs(), &expected(), &Limits::default())
    }

    #[test]
    fn a_signed_assertion_verifies_and_names_the_user() {
        let login = login("alice");
        let v = check(&idp().response_xml(&login)).expect("verifies");
        assert_eq!(v.username(None), Some("alice"));
        assert_eq!(v.username(Some("email")), Some("alice@example.com"));
        assert_eq!(v.signed, Signed::Assertion);
        assert_eq!(v.assertion_id(), login.assertion_id);
        assert_eq!(v.response.id, login.response_id);
        assert_eq!(v.claims.attribute("groups").unwrap(), ["users", "IdP & co"]);
        assert!(v.replayable_until > Timestamp::now());
    }

    #[test]
    fn a_signed_response_or_both_verify_too() {
        for (sign, signed) in [
            (SignWhat::Response, Signed::Response),
            (SignWhat::Both, Signed::Both),
        ] {
            let login = SamlLogin {
                sign,
                ..login("bob")
            };
            let v = check(&idp().response_xml(&login)).expect("verifies");
            assert_eq!((v.username(None), v.signed), (Some("bob"), signed));
        }
    }

    #[test]
    fn read_names_the_claimed_user_without_checking() {
        let login = SamlLogin {
            sign: SignWhat::Nothing,
            ..login("mallory")
        };
        let b64 = idp().response(&login);
        let a = read(&b64, &Limits::default()).expect("reads");
        assert_eq!(a.username(None), Some("mallory"));
        assert!(!a.is_encrypted());
        let c = a.claims().unwrap();
        assert_eq!(c.issuer.as_deref(), Some("https://idp.example.com"));
        assert_eq!(c.audiences, vec![vec![SP.to_string()]]);
        assert_eq!(c.confirmations[0].recipient.as_deref(), Some(ACS));
        assert_eq!(c.authn.len(), 1);
        assert!(c.not_before.is_some() && c.not_on_or_after.is_some());
        assert_eq!(a.response.destination.as_deref(), Some(ACS));
        assert_eq!(a.response.status, STATUS_SUCCESS);
        assert!(matches!(
            verify_b64(&b64, &certs(), &expected(), &Limits::default()),
            Err(SamlError::Unsigned)
        ));
    }

    #[test]
    fn a_name_changed_after_signing_fails_the_digest() {
        let xml = idp().forged_xml(&login("alice"), "admin");
        assert_eq!(
            read_xml(&xml, &Limits::default()).unwrap().username(None),
            Some("admin")
        );
        assert!(
            matches!(check(&xml), Err(SamlError::Digest)),
            "{:?}",
            check(&xml)
        );
    }

    #[test]
    fn a_comment_inside_the_name_id_does_not_cut_the_name() {
        // Comments are outside the signed canonical form: the name read must
        // be all of the text, as signed.
        let login = login("admin.evil");
        let xml = idp()
            .response_xml(&login)
            .replacen(">admin.evil<", ">admin<!---->.evil<", 1);
        let v = check(&xml).expect("still verifies");
        assert_eq!(v.username(None), Some("admin.evil"));
    }

    #[test]
    fn every_signature_wrapping_is_refused() {
        for how in [
            Wrap::ForgedFirst,
            Wrap::ForgedLast,
            Wrap::SignedInExtensions,
            Wrap::SignedInObject,
            Wrap::ResponseInAdvice,
        ] {
            let xml = idp().wrapped_xml(&login("alice"), "admin", how);
            let r = check(&xml);
            assert!(
                matches!(
                    r,
                    Err(SamlError::AssertionCount(_)
                        | SamlError::DuplicateId
                        | SamlError::MisplacedAssertion)
                ),
                "{how:?}: {r:?}"
            );
        }
    }

    #[test]
    fn another_certificate_fails_the_signature() {
        let other = SamlIdp::new("https://idp.example.com").unwrap();
        let xml = other.response_xml(&login("alice"));
        assert!(matches!(check(&xml), Err(SamlError::Signature)));
        // With both certificates (a key rollover) it verifies.
        let both = format!("{}{}", idp().certificate_pem(), other.certificate_pem());
        let both = IdpCertificates::from_pem(&both).unwrap();
        assert_eq!(both.len(), 2);
        assert!(verify(&xml, &both, &expected(), &Limits::default()).is_ok());
    }

    #[test]
    fn outside_its_time_window_it_fails() {
        let expired = login("alice").issued_ago(SignedDuration::from_mins(10));
        let r = check(&idp().response_xml(&expired));
        assert!(matches!(r, Err(SamlError::Expired)), "{r:?}");
        let early = login("alice").issued_ago(SignedDuration::from_mins(-10));
        let r = check(&idp().response_xml(&early));
        assert!(matches!(r, Err(SamlError::NotYetValid)), "{r:?}");
        // Within the skew: NotBefore is issued − 1 min, so issued 3 min ahead
        // starts 2 min from now, inside the default 3 min.
        let near = login("alice").issued_ago(SignedDuration::from_mins(-3));
        assert!(check(&idp().response_xml(&near)).is_ok());
        let strict = Expected {
            clock_skew: Duration::ZERO,
            ..expected()
        };
        let r = verify(
            &idp().response_xml(&near),
            &certs(),
            &strict,
            &Limits::default(),
        );
        assert!(matches!(r, Err(SamlError::NotYetValid)), "{r:?}");
    }

    #[test]
    fn another_audience_or_destination_fails() {
        let xml = idp().response_xml(&SamlLogin {
            audience: "https://confluence.example.com".into(),
            ..login("alice")
        });
        assert!(matches!(check(&xml), Err(SamlError::Audience { .. })));
        let xml = idp().response_xml(&SamlLogin {
            destination: "https://evil.example.com/acs".into(),
            ..login("alice")
        });
        assert!(matches!(check(&xml), Err(SamlError::Destination { .. })));
        let xml = idp().response_xml(&login("alice"));
        let e = Expected {
            issuer: Some("https://other-idp.example.com".into()),
            ..expected()
        };
        let r = verify(&xml, &certs(), &e, &Limits::default());
        assert!(matches!(r, Err(SamlError::Issuer { .. })), "{r:?}");
    }

    #[test]
    fn a_failed_status_is_reported() {
        let xml = idp().response_xml(&SamlLogin {
            status: "urn:oasis:names:tc:SAML:2.0:status:Requester".into(),
            ..login("alice")
        });
        let r = check(&xml);
        assert!(matches!(&r, Err(SamlError::Status { code }) if code.ends_with("Requester")));
    }

    #[test]
    fn an_encrypted_assertion_is_reported_as_such() {
        let xml = idp().encrypted_xml(&login("alice"));
        let a = read_xml(&xml, &Limits::default()).unwrap();
        assert!(a.is_encrypted());
        assert_eq!(a.username(None), None);
        assert!(matches!(check(&xml), Err(SamlError::Encrypted)));
    }

    #[test]
    fn xml_bombs_and_external_entities_are_refused_before_expansion() {
        let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x">&lol3;</samlp:Response>"#;
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x">&x;</samlp:Response>"#;
        for xml in [laughs, xxe] {
            assert!(matches!(
                read_xml(xml, &Limits::default()),
                Err(SamlError::Dtd)
            ));
            // Past the text check too: roxmltree itself refuses the DTD.
            let doc = Document::parse_with_options(
                xml,
                ParsingOptions {
                    allow_dtd: false,
                    nodes_limit: 100,
                    entity_resolver: None,
                },
            );
            assert!(matches!(doc, Err(roxmltree::Error::DtdDetected)));
        }
        // An entity reference without a DTD is just an error.
        let undeclared = r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x">&lol;</samlp:Response>"#;
        assert!(matches!(
            read_xml(undeclared, &Limits::default()),
            Err(SamlError::Xml(_))
        ));
    }

    #[test]
    fn oversized_deep_or_huge_input_is_refused() {
        let limits = Limits::default();
        let big = "A".repeat(limits.max_encoded + 4);
        assert!(matches!(
            read(&big, &limits),
            Err(SamlError::TooLarge { .. })
        ));
        let deep = format!(
            "<samlp:Response xmlns:samlp=\"{NS_PROTOCOL}\" ID=\"r\">{}{}</samlp:Response>",
            "<a>".repeat(100),
            "</a>".repeat(100)
        );
        assert!(matches!(
            read_xml(&deep, &limits),
            Err(SamlError::TooDeep { .. })
        ));
        let many = format!(
            "<samlp:Response xmlns:samlp=\"{NS_PROTOCOL}\" ID=\"r\">{}</samlp:Response>",
            "<a/>".repeat(30_000)
        );
        assert!(matches!(read_xml(&many, &limits), Err(SamlError::Xml(_))));
        assert!(matches!(
            read("not base64!", &limits),
            Err(SamlError::NotBase64)
        ));
    }

    #[test]
    fn duplicate_ids_and_foreign_roots_are_refused() {
        let login = login("alice");
        let xml = idp().response_xml(&login);
        let dup = xml.replacen(
            &format!("ID=\"{}\"", login.response_id),
            &format!("ID=\"{}\"", login.assertion_id),
            1,
        );
        assert!(matches!(
            read_xml(&dup, &Limits::default()),
            Err(SamlError::DuplicateId)
        ));
        let foreign = r#"<Response xmlns="urn:oasis:names:tc:SAML:1.0:protocol" ID="x"/>"#;
        assert!(matches!(
            read_xml(foreign, &Limits::default()),
            Err(SamlError::NotAResponse)
        ));
    }

    #[test]
    fn a_reference_to_another_element_or_another_algorithm_is_refused() {
        let login = login("alice");
        let xml = idp().response_xml(&login);
        let elsewhere = xml.replacen(
            &format!("URI=\"#{}\"", login.assertion_id),
            &format!("URI=\"#{}\"", login.response_id),
            1,
        );
        assert!(matches!(check(&elsewhere), Err(SamlError::Reference)));
        let sha1 = xml.replacen(
            ALG_RSA_SHA256,
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            1,
        );
        assert!(matches!(check(&sha1), Err(SamlError::Algorithm { .. })));
    }

    #[test]
    fn nothing_of_the_content_but_the_user_shows_in_debug_or_errors() {
        let login = login("alice");
        let a = read_xml(&idp().response_xml(&login), &Limits::default()).unwrap();
        let debug = format!("{a:?}");
        assert!(debug.contains("alice"));
        assert!(
            !debug.contains("alice@example.com") && !debug.contains("IdP & co"),
            "{debug}"
        );
        let forged = idp().forged_xml(&login, "admin");
        let e = check(&forged).unwrap_err().to_string();
        assert!(!e.contains("admin") && !e.contains("alice"), "{e}");
    }
}
