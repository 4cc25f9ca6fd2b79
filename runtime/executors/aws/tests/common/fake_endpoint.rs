//! AWS-shaped answers for `grace_testkit::fake_endpoint::FakeEndpoint`, the hand-made loopback
//! server for failure modes moto cannot produce.

use grace_testkit::fake_endpoint::Behaviour;

/// An AWS Query-protocol error, as Auto Scaling and CloudWatch (Query) send them.
pub fn query_error(status: &'static str, code: &str, message: &str) -> Behaviour {
    Behaviour::Answer {
        status,
        content_type: "text/xml",
        body: format!(
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
             <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>0f7c6f6e-grace-test</RequestId></ErrorResponse>"
        ),
    }
}
