//! Single sign-on: who logs in through the IdP, read before the app sees it.
//!
//! Atlassian's SSO for Data Center takes the IdP's browser form, a `POST
//! /plugins/servlet/samlconsumer` with `SAMLResponse` (base64 of a SAML 2.0
//! `<samlp:Response>`) and `RelayState`. The app accepts an assertion once
//! only, so iumgate reads the response on its way through and never asks
//! for it again: [`saml::read`] says whom it claims, [`saml::verify`] checks
//! that the configured IdP signed exactly that claim, for this service, now.
//!
//! # Libraries, and why
//!
//! What is needed is narrow: one XML-DSig profile (enveloped signature,
//! exclusive c14n, SHA-256, RSA-SHA256) over a same-document `#ID`
//! reference, against one pinned certificate. The pieces:
//!
//! - **XML parsing: `roxmltree`** (0.21; read-only DOM, pure Rust, no
//!   `unsafe`, widely used). With `allow_dtd: false` and no entity resolver
//!   a document type declaration is an error, so no entity can be declared,
//!   expanded (billion laughs) or fetched (XXE); `nodes_limit` bounds the
//!   tree. It keeps byte ranges, from which canonicalisation reads the
//!   prefixes the signer wrote.
//! - **Digest and RSA: `ring`** (`digest::SHA256`), through
//!   **`rustls-webpki`**'s `EndEntityCert::verify_signature` with
//!   `RSA_PKCS1_2048_8192_SHA256`, which also parses the certificate and
//!   takes its key. Both already are in the tree (rustls uses them); no
//!   cryptography is written here. Certificates come in through
//!   `rustls-pki-types`' PEM reader.
//! - **Exclusive c14n: [`c14n`], written here** (about 250 lines over
//!   roxmltree). It is serialisation, not cryptography, and only the SAML
//!   profile of it: a whole subtree minus the enveloped signature, with an
//!   `InclusiveNamespaces` prefix list, no XPath, no comments. It is checked
//!   against libxml2 (`xmllint --exc-c14n` outputs kept as unit-test
//!   expectations) and against xmlsec1 (a response signed by `xmlsec1
//!   --sign`, kept in the integration tests, verifies here). A mistake in it
//!   makes a valid signature fail, never a forged one pass: the digest is
//!   still SHA-256 over bytes derived from exactly the element that is read.
//!
//! Considered and not taken:
//!
//! - `samael` (the established Rust SAML crate) verifies through `libxml2` +
//!   `xmlsec1` + OpenSSL over FFI (bindgen at build time): three C parsers
//!   and crypto libraries on hostile input, and its own history of having
//!   to add "keep only what was signed" after the fact.
//! - `bergshamra` (pure Rust, RustCrypto, passes xmlsec's interop suite) and
//!   `xml-sec` (pure Rust, roxmltree/xmloxide + RustCrypto): both cover all
//!   of XML-DSig and XML-Enc (XPath, XSLT, many algorithms, post-quantum
//!   keys), both are young, release breaking versions monthly and need a
//!   newer Rust than this workspace's 1.85 (1.88, 1.92); bergshamra parses
//!   with its own new XML parser. Their breadth is attack surface this
//!   profile does not need; worth revisiting once one has settled.
//! - C14n-only crates (`xml_c14n`: libxml2 again; `xml-canonical`: tiny,
//!   unknown) gain nothing over the profile written here.
//!
//! # What verification refuses
//!
//! See [`saml`]: more than one assertion anywhere, an assertion that is not a
//! child of the Response, duplicate IDs, a signature whose reference is not
//! the ID of the element it is enveloped in, any other algorithm or
//! transform, a certificate other than the configured ones (`KeyInfo` is
//! ignored), and the profile's conditions (status, time window with clock
//! skew, audience, destination, bearer recipient, issuer when configured).
//! Encrypted assertions are recognised and reported, never decrypted:
//! iumgate holds no SP private key.

pub mod c14n;
pub mod oidc;
pub mod saml;
