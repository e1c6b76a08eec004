//! Plain proxying, no licence logic: the hooks iumgate runs with when no
//! `[ium]` groups are configured. Every request is forwarded as it is, every answer goes out as
//! it came; the proxy's own failures get the same pages as with the gate.

use crate::proxy::{ConnInfo, Decision, Hooks, Learned};
use crate::wire::body::Body;
use crate::wire::HeaderView;
use http::{Method, Request, Response, StatusCode, Uri};

/// Passes everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoGate;

impl Hooks for NoGate {
    type Ctx = ();

    fn decide(&self, _: &ConnInfo, _: &Method, _: &Uri, _: &impl HeaderView) -> Decision<()> {
        Decision::Forward(())
    }

    async fn on_request(
        &self,
        _conn: &ConnInfo,
        _ctx: (),
        req: Request<Body>,
    ) -> Result<(Request<Body>, ()), Response<Body>> {
        Ok((req, ()))
    }

    fn learn(&self, _ctx: (), _status: StatusCode, _headers: &impl HeaderView) -> Learned<()> {
        Learned::Done
    }

    async fn on_response(&self, _ctx: (), resp: Response<Body>) -> Response<Body> {
        resp
    }

    async fn own_page(&self, _conn: &ConnInfo, req: Request<Body>) -> Response<Body> {
        crate::pages::error(StatusCode::NOT_FOUND, req.headers(), "no such page")
    }

    fn error_page(
        &self,
        status: StatusCode,
        request: &impl HeaderView,
        message: &str,
    ) -> Response<Body> {
        crate::pages::error(status, request, message)
    }
}
