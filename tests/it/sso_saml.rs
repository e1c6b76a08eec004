//! `iumgate::sso::saml` from the outside: responses from the simulator's IdP
//! (`iumgate_sim::saml_idp`, an independent writer of the signed XML) and
//! two fixtures signed by xmlsec1 (libxml2's canonicalisation, OpenSSL's
//! RSA), through the base64 the browser posts. Item 3 of issue 18: reading
//! and verification only; the gate's wiring comes later.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use iumgate::sso::saml::{self, Expected, IdpCertificates, Limits, SamlError, Signed, Verified};
use iumgate_sim::saml_idp::{SamlIdp, SamlLogin, SignWhat, Wrap};
use jiff::{SignedDuration, Timestamp};
use std::sync::OnceLock;

const SP: &str = "https://jira.example.com";
const ACS: &str = "https://jira.example.com/plugins/servlet/samlconsumer";

fn idp() -> &'static SamlIdp {
    static IDP: OnceLock<SamlIdp> = OnceLock::new();
    IDP.get_or_init(|| SamlIdp::new("https://idp.example.com").expect("sim IdP starts"))
}

fn certs() -> IdpCertificates {
    IdpCertificates::from_pem(idp().certificate_pem()).expect("the sim's certificate loads")
}

fn verify_b64(b64: &str, expected: &Expected) -> Result<Verified, SamlError> {
    saml::verify_b64(b64, &certs(), expected, &Limits::default())
}

fn now() -> Expected {
    Expected::new(SP, ACS, Timestamp::now())
}

#[test]
fn a_posted_response_verifies_and_names_the_user() {
    let login = SamlLogin::new("casual01", SP, ACS);
    let b64 = idp().response(&login);
    let v = verify_b64(&b64, &now()).expect("verifies");
    assert_eq!(v.username(None), Some("casual01"));
    assert_eq!(v.username(Some("email")), Some("casual01@example.com"));
    assert_eq!(v.assertion_id(), login.assertion_id);
    // The claim read without verification is the same user.
    let claim = saml::read(&b64, &Limits::default()).expect("reads");
    assert_eq!(claim.username(None), Some("casual01"));
}

#[test]
fn line_wrapped_base64_as_idps_post_it_is_accepted() {
    let b64 = idp().response(&SamlLogin::new("casual02", SP, ACS));
    let wrapped: String = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    assert_eq!(
        verify_b64(&wrapped, &now()).unwrap().username(None),
        Some("casual02")
    );
}

#[test]
fn the_sim_signs_response_assertion_or_both() {
    for sign in [SignWhat::Assertion, SignWhat::Response, SignWhat::Both] {
        let login = SamlLogin {
            sign,
            ..SamlLogin::new("power1", SP, ACS)
        };
        let v = verify_b64(&idp().response(&login), &now()).expect("verifies");
        assert_eq!(v.username(None), Some("power1"), "{sign:?}");
    }
}

#[test]
fn tampered_wrapped_unsigned_or_foreign_responses_fail() {
    let login = SamlLogin::new("casual03", SP, ACS);
    let forged = B64.encode(idp().forged_xml(&login, "iumgate-admin"));
    assert!(matches!(
        verify_b64(&forged, &now()),
        Err(SamlError::Digest)
    ));

    for how in [
        Wrap::ForgedFirst,
        Wrap::ForgedLast,
        Wrap::SignedInExtensions,
        Wrap::SignedInObject,
        Wrap::ResponseInAdvice,
    ] {
        let wrapped = B64.encode(idp().wrapped_xml(&login, "iumgate-admin", how));
        let r = verify_b64(&wrapped, &now());
        assert!(r.is_err(), "{how:?} verified: {r:?}");
    }

    let unsigned = SamlLogin {
        sign: SignWhat::Nothing,
        ..login.clone()
    };
    let b64 = idp().response(&unsigned);
    assert!(matches!(verify_b64(&b64, &now()), Err(SamlError::Unsigned)));
    // Still readable, as an unverified claim.
    let claim = saml::read(&b64, &Limits::default()).unwrap();
    assert_eq!(claim.username(None), Some("casual03"));

    let stranger = SamlIdp::new("https://idp.example.com").unwrap();
    let b64 = stranger.response(&login);
    assert!(matches!(
        verify_b64(&b64, &now()),
        Err(SamlError::Signature)
    ));
}

#[test]
fn time_audience_and_destination_are_checked() {
    let login = SamlLogin::new("casual04", SP, ACS);
    let old = idp().response(&login.clone().issued_ago(SignedDuration::from_hours(1)));
    assert!(matches!(verify_b64(&old, &now()), Err(SamlError::Expired)));
    let future = idp().response(&login.clone().issued_ago(SignedDuration::from_hours(-1)));
    assert!(matches!(
        verify_b64(&future, &now()),
        Err(SamlError::NotYetValid)
    ));

    let b64 = idp().response(&login);
    let confluence = Expected::new("https://confluence.example.com", ACS, Timestamp::now());
    assert!(matches!(
        verify_b64(&b64, &confluence),
        Err(SamlError::Audience { .. })
    ));
    let elsewhere = Expected::new(SP, "https://jira.example.com/other", Timestamp::now());
    assert!(matches!(
        verify_b64(&b64, &elsewhere),
        Err(SamlError::Destination { .. })
    ));
}

#[test]
fn an_encrypted_assertion_is_named_as_such() {
    let b64 = B64.encode(idp().encrypted_xml(&SamlLogin::new("casual05", SP, ACS)));
    let claim = saml::read(&b64, &Limits::default()).unwrap();
    assert!(claim.is_encrypted());
    assert_eq!(claim.username(None), None);
    assert!(matches!(
        verify_b64(&b64, &now()),
        Err(SamlError::Encrypted)
    ));
}

#[test]
fn bombs_entities_and_oversized_posts_are_refused() {
    let laughs = concat!(
        r#"<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">"#,
        r#"<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">"#,
        r#"<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>"#,
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="r">&e;&e;&e;</samlp:Response>"#
    );
    let xxe = concat!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>"#,
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="r">&x;</samlp:Response>"#
    );
    let parameter = concat!(
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>"#,
        r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="r"/>"#
    );
    for xml in [laughs, xxe, parameter] {
        let b64 = B64.encode(xml);
        assert!(matches!(
            saml::read(&b64, &Limits::default()),
            Err(SamlError::Dtd)
        ));
        assert!(matches!(verify_b64(&b64, &now()), Err(SamlError::Dtd)));
    }
    let limits = Limits {
        max_encoded: 4096,
        ..Limits::default()
    };
    let big = idp().response(&SamlLogin {
        attributes: vec![("padding".into(), vec!["x".repeat(8192)])],
        ..SamlLogin::new("casual06", SP, ACS)
    });
    assert!(matches!(
        saml::read(&big, &limits),
        Err(SamlError::TooLarge { limit: 4096 })
    ));
    assert!(saml::read(&big, &Limits::default()).is_ok());
}

#[test]
fn a_certificate_file_must_hold_a_certificate() {
    assert!(matches!(
        IdpCertificates::from_pem("not a certificate"),
        Err(SamlError::Certificate(_))
    ));
    // The bare base64 of IdP metadata's X509Certificate works too.
    let body: String = XMLSEC_CERT
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(IdpCertificates::from_pem(&body).unwrap().len(), 1);
}

// Signed by `xmlsec1 --sign` (xmlsec1 1.2.37, OpenSSL) with a throw-away
// key whose certificate is below: an independent canonicaliser and signer.
// Pretty-printed, namespaces declared on the Response, an InclusiveNamespaces
// prefix list, a default namespace inside the assertion, a comment, escapes.

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn xmlsec_certs() -> IdpCertificates {
    IdpCertificates::from_pem(XMLSEC_CERT).unwrap()
}

#[test]
fn an_assertion_signed_by_xmlsec1_verifies() {
    let expected = Expected::new(SP, ACS, at("2025-01-01T12:01:00Z"));
    let v = saml::verify(
        XMLSEC_ASSERTION,
        &xmlsec_certs(),
        &expected,
        &Limits::default(),
    )
    .expect("xmlsec1's signature verifies");
    assert_eq!(v.signed, Signed::Assertion);
    assert_eq!(v.username(None), Some("carol & co"));
    assert_eq!(v.username(Some("uid")), Some("carol"));
    assert_eq!(v.username(Some("User ID")), Some("carol"));
    assert_eq!(
        v.claims.attribute("mail").unwrap(),
        ["carol@example.com", "x < y"]
    );
    assert_eq!(v.response.in_response_to.as_deref(), Some("_req1"));
    assert_eq!(v.replayable_until, at("2025-01-01T12:08:00Z"));

    // A character of the signed assertion changed: the digest fails.
    let changed = XMLSEC_ASSERTION.replacen("carol@example.com", "carol@example.org", 1);
    let r = saml::verify(&changed, &xmlsec_certs(), &expected, &Limits::default());
    assert!(matches!(r, Err(SamlError::Digest)), "{r:?}");
    // Outside the signed element (the Response is not signed): still fine.
    let outside = XMLSEC_ASSERTION.replacen("_req1", "_req2", 1);
    assert!(saml::verify(&outside, &xmlsec_certs(), &expected, &Limits::default()).is_ok());
    // Later than NotOnOrAfter + skew: expired.
    let late = Expected::new(SP, ACS, at("2025-01-01T12:08:00Z"));
    let r = saml::verify(XMLSEC_ASSERTION, &xmlsec_certs(), &late, &Limits::default());
    assert!(matches!(r, Err(SamlError::Expired)), "{r:?}");
    // The sim's certificate is not xmlsec1's key.
    let r = saml::verify(XMLSEC_ASSERTION, &certs(), &expected, &Limits::default());
    assert!(matches!(r, Err(SamlError::Signature)), "{r:?}");
}

#[test]
fn a_response_signed_by_xmlsec1_verifies() {
    let expected = Expected::new(SP, ACS, at("2025-01-01T12:01:00Z"));
    let v = saml::verify(
        XMLSEC_RESPONSE,
        &xmlsec_certs(),
        &expected,
        &Limits::default(),
    )
    .expect("xmlsec1's signature verifies");
    assert_eq!(v.signed, Signed::Response);
    assert_eq!(v.username(None), Some("dave"));
    assert_eq!(
        v.username(Some(
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
        )),
        Some("dave@corp.example.com")
    );
    // The assertion is inside the signed Response: changing it fails.
    let changed = XMLSEC_RESPONSE.replacen(">dave<", ">root<", 1);
    let r = saml::verify(&changed, &xmlsec_certs(), &expected, &Limits::default());
    assert!(matches!(r, Err(SamlError::Digest)), "{r:?}");
}

const XMLSEC_CERT: &str = r##"-----BEGIN CERTIFICATE-----
MIIDHzCCAgegAwIBAgIUUbUN5N5/vcWruzz3yVrVSjfJnsEwDQYJKoZIhvcNAQEL
BQAwHjEcMBoGA1UEAwwTeG1sc2VjMSBmaXh0dXJlIElkUDAgFw0yNjEyMDQxNTQ1
MTBaGA8yMTI2MTExMDE1NDUxMFowHjEcMBoGA1UEAwwTeG1sc2VjMSBmaXh0dXJl
IElkUDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANUd46LlIXbTF6TF
BJMqjy08IqLADmWB3I+ws2m9JYKqPOWx2bUGy2u4M4j2Vl6a1RF0SUCmsRxRtohd
ljxsobAU37JSGdZ7+xHho/cSZwNEW+X3Y6uBaUM7hWuE/stWwSCKISxd5Ez+nNNX
L+lCUoa86B7MmXo5az7SxmKkiSF6anfID976J70lptZTPJQjmADEqFPTojxJlHE8
L2NYmT3i5NdFlUpWVG+XoKqIcRRu7A+DzNF+UQDPhSnjCBzhlmUoGjKz0OrGVhcf
wRRnaKEehJZro0YjDbfj1rhAUpCnQ+ectVeBPXsGvUETFqzRmKY65/YXoYfHhVlk
9F3f5tECAwEAAaNTMFEwHQYDVR0OBBYEFKEYl56U5kl/vsG4AacalXVrwb7FMB8G
A1UdIwQYMBaAFKEYl56U5kl/vsG4AacalXVrwb7FMA8GA1UdEwEB/wQFMAMBAf8w
DQYJKoZIhvcNAQELBQADggEBALebdvUhJZ9AOvF0UDf6eVP11FaW602Iny2RJjA7
hokw9FO6PMAngIxOYxzWcFnFr8g+vZVAiJZOd4gvOwGuNX/BbYc7AqBEkzvtfV6Z
l02U5LzKWg05NYIdu/vRnIT8xtEDds0SEpUvYMkpamgfUqcuZB7few9gQokpWJAY
Sml+F/lqM5DE00Y5EMAbMuj1hsHYVZGYgFxoKB20M2RCyHesCZ8z2bmXeohYMYnY
vfBMx+OJZsvaKRqEkUX4xFbQd2Hk4A4+kQ3iowlojMrYiAgg2jn8pxJeEnt2InEb
2tPME5Yr60by2oK6nmbyY0qbjRz6tml2B9ia7OL/4rbnQtE=
-----END CERTIFICATE-----
"##;

const XMLSEC_ASSERTION: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" ID="_resp1" Version="2.0" IssueInstant="2025-01-01T12:00:00Z" Destination="https://jira.example.com/plugins/servlet/samlconsumer" InResponseTo="_req1">
  <saml:Issuer>https://idp.example.com</saml:Issuer>
  <samlp:Status>
    <samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>
  </samlp:Status>
  <saml:Assertion ID="_assert1" Version="2.0" IssueInstant="2025-01-01T12:00:00Z">
    <saml:Issuer>https://idp.example.com</saml:Issuer>
    <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
      <ds:SignedInfo>
        <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
        <ds:Reference URI="#_assert1">
          <ds:Transforms>
            <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
            <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#">
              <ec:InclusiveNamespaces xmlns:ec="http://www.w3.org/2001/10/xml-exc-c14n#" PrefixList="xs"/>
            </ds:Transform>
          </ds:Transforms>
          <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
          <ds:DigestValue>0Uoa+trX3sqQcAHZGPjS6jELnPdWBfnqKFRJlyyZhfI=</ds:DigestValue>
        </ds:Reference>
      </ds:SignedInfo>
      <ds:SignatureValue>Lo7P3hnqleq7ehQNcr6dx/RlL6Ga5m0agJqogQAe4LcWxlMg0Hcdt0O/4tbKeU2n
A7Dp00xaaHA6Q5Qr82pPTHWZPfPCWMXC1jhoY/vC8fqCqdjhWoWFhw3QNnPQIqdQ
1eMSLZXSMxxtkNgBAAthuKE9Wqyyq3LKX1Py3Hte8RDWMDJi4FOmyv+E+ALlbd+G
w9FEE54pJNjn9okr1wT7F5NYtk8QpYo9pic8Yv+83qBDFTA2vvMCvDyAxZpG01gp
Gyt6kuOabjgL5ULejrqagFSt0Xr0gMvYmbgAmDht1jMZk4uqAo++PI7NPNSizogf
qdTe2SCBCcDG/06KJ2FpHw==</ds:SignatureValue>
      <ds:KeyInfo><ds:X509Data><ds:X509Certificate>MIIDHzCCAgegAwIBAgIUUbUN5N5/vcWruzz3yVrVSjfJnsEwDQYJKoZIhvcNAQEL
BQAwHjEcMBoGA1UEAwwTeG1sc2VjMSBmaXh0dXJlIElkUDAgFw0yNjEyMDQxNTQ1
MTBaGA8yMTI2MTExMDE1NDUxMFowHjEcMBoGA1UEAwwTeG1sc2VjMSBmaXh0dXJl
IElkUDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANUd46LlIXbTF6TF
BJMqjy08IqLADmWB3I+ws2m9JYKqPOWx2bUGy2u4M4j2Vl6a1RF0SUCmsRxRtohd
ljxsobAU37JSGdZ7+xHho/cSZwNEW+X3Y6uBaUM7hWuE/stWwSCKISxd5Ez+nNNX
L+lCUoa86B7MmXo5az7SxmKkiSF6anfID976J70lptZTPJQjmADEqFPTojxJlHE8
L2NYmT3i5NdFlUpWVG+XoKqIcRRu7A+DzNF+UQDPhSnjCBzhlmUoGjKz0OrGVhcf
wRRnaKEehJZro0YjDbfj1rhAUpCnQ+ectVeBPXsGvUETFqzRmKY65/YXoYfHhVlk
9F3f5tECAwEAAaNTMFEwHQYDVR0OBBYEFKEYl56U5kl/vsG4AacalXVrwb7FMB8G
A1UdIwQYMBaAFKEYl56U5kl/vsG4AacalXVrwb7FMA8GA1UdEwEB/wQFMAMBAf8w
DQYJKoZIhvcNAQELBQADggEBALebdvUhJZ9AOvF0UDf6eVP11FaW602Iny2RJjA7
hokw9FO6PMAngIxOYxzWcFnFr8g+vZVAiJZOd4gvOwGuNX/BbYc7AqBEkzvtfV6Z
l02U5LzKWg05NYIdu/vRnIT8xtEDds0SEpUvYMkpamgfUqcuZB7few9gQokpWJAY
Sml+F/lqM5DE00Y5EMAbMuj1hsHYVZGYgFxoKB20M2RCyHesCZ8z2bmXeohYMYnY
vfBMx+OJZsvaKRqEkUX4xFbQd2Hk4A4+kQ3iowlojMrYiAgg2jn8pxJeEnt2InEb
2tPME5Yr60by2oK6nmbyY0qbjRz6tml2B9ia7OL/4rbnQtE=
</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
    </ds:Signature>
    <saml:Subject>
      <saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">carol &amp; co</saml:NameID>
      <saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <saml:SubjectConfirmationData NotOnOrAfter="2025-01-01T12:05:00Z" Recipient="https://jira.example.com/plugins/servlet/samlconsumer" InResponseTo="_req1"/>
      </saml:SubjectConfirmation>
    </saml:Subject>
    <saml:Conditions NotBefore="2025-01-01T11:59:00Z" NotOnOrAfter="2025-01-01T12:05:00Z">
      <saml:AudienceRestriction>
        <saml:Audience>https://jira.example.com</saml:Audience>
      </saml:AudienceRestriction>
    </saml:Conditions>
    <saml:AuthnStatement AuthnInstant="2025-01-01T12:00:00Z" SessionIndex="_session1">
      <saml:AuthnContext>
        <saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>
      </saml:AuthnContext>
    </saml:AuthnStatement>
    <!-- attributes follow -->
    <saml:AttributeStatement xmlns="urn:example:default">
      <saml:Attribute Name="uid" NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:basic" FriendlyName="User ID">
        <saml:AttributeValue xsi:type="xs:string">carol</saml:AttributeValue>
      </saml:Attribute>
      <saml:Attribute Name="mail" xml:lang="en">
        <saml:AttributeValue xsi:type="xs:string">carol@example.com</saml:AttributeValue>
        <saml:AttributeValue><plain attr="a&#9;b">x &lt; y</plain></saml:AttributeValue>
      </saml:Attribute>
    </saml:AttributeStatement>
  </saml:Assertion>
</samlp:Response>
"##;

const XMLSEC_RESPONSE: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_resp2" Version="2.0" IssueInstant="2025-01-01T12:00:00.123Z" Destination="https://jira.example.com/plugins/servlet/samlconsumer" Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified">
  <Issuer xmlns="urn:oasis:names:tc:SAML:2.0:assertion">https://idp.example.com</Issuer>
  <ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
    <ds:SignedInfo>
      <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
      <ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
      <ds:Reference URI="#_resp2">
        <ds:Transforms>
          <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
          <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
        </ds:Transforms>
        <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
        <ds:DigestValue>DUoGtJskFSHI6LJ9xuo6Nb2crS7FtyL6ZJDDjkoolQI=</ds:DigestValue>
      </ds:Reference>
    </ds:SignedInfo>
    <ds:SignatureValue>NMCp9L0LCHcVqlKHbOXvs7HjOU7sscjHxUZBOhE3Ef3rU+q51z7kg8QXBLM4ks8S
boLpGho5dZfXYkKziYYKYxxrgRnjK8JOKWDVTuWoy0BVkqUsUMMOow7ePLPafh0l
PkSkepom1Bu+h1RRM2R8XN2EV0oaMGnzCyPfKXkH2FUAJwlIbxCc0gLzdulXQ/Pi
LQxE9p++9iS3xqUFYWLrb1dnz+C37EvSTyqNbIJe3LFj4qGozjyHIM4GKmrunLOC
B1I+3qN43KMr3SlE7IWstmHsakt1au3U3dTzLcnvjkMS5+Z3H5X8jh9674MllPbH
GnQCr0nLIgvt+Mc8a6ZpYQ==</ds:SignatureValue>
  </ds:Signature>
  <samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
  <Assertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion" ID="_assert2" IssueInstant="2025-01-01T12:00:00.123Z" Version="2.0">
    <Issuer>https://idp.example.com</Issuer>
    <Subject>
      <NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">dave</NameID>
      <SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
        <SubjectConfirmationData NotOnOrAfter="2025-01-01T12:05:00.123Z" Recipient="https://jira.example.com/plugins/servlet/samlconsumer"/>
      </SubjectConfirmation>
    </Subject>
    <Conditions NotBefore="2025-01-01T11:59:00.123Z" NotOnOrAfter="2025-01-01T13:00:00.123Z">
      <AudienceRestriction><Audience>https://jira.example.com</Audience></AudienceRestriction>
    </Conditions>
    <AttributeStatement>
      <Attribute Name="http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"><AttributeValue>dave@corp.example.com</AttributeValue></Attribute>
    </AttributeStatement>
    <AuthnStatement AuthnInstant="2025-01-01T11:58:00.000Z" SessionIndex="_s2">
      <AuthnContext><AuthnContextClassRef>urn:federation:authentication:windows</AuthnContextClassRef></AuthnContext>
    </AuthnStatement>
  </Assertion>
</samlp:Response>
"##;
