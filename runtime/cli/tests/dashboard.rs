//! The dashboard, in a real browser: headless Chromium over WebDriver against a real
//! `grace serve --simulate`.
//!
//! Screenshots of each page are kept in `<target>/tmp/dashboard-screenshots/` (test
//! artifacts: CI can upload them).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::approvals::{approvals, config, start_incident, with_policies};
use common::browser::{WAIT, browser, session, sign_in};
use common::{Server, data_dir, rt};
use fantoccini::{Client, Locator};
use grace_testkit::chromium::Chromium;
use serde_json::{Value, json};

/// Waits until the element `css` holds `text`.
async fn wait_for_text(client: &Client, css: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(el) = client.find(Locator::Css(css)).await
            && el.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{css}` never showed `{text}`; the page:\n{}",
            client.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Marks the page: if it is reloaded, the mark is gone.
async fn mark(client: &Client) {
    client
        .execute("window.graceMark = 'unreloaded'; return 1;", vec![])
        .await
        .unwrap();
}

async fn still_marked(client: &Client) -> bool {
    client
        .execute("return window.graceMark === 'unreloaded';", vec![])
        .await
        .unwrap()
        == json!(true)
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// A `POST` sent by the page's own script (same origin, the session's cookie): its status.
async fn post_from_page(client: &Client, path: &str, form: &str) -> u64 {
    let script = "const [path, form, done] = arguments;
        fetch(path, { method: 'POST', body: new URLSearchParams(form), redirect: 'manual' })
          .then(r => done(r.status), e => done(String(e)));";
    client
        .execute_async(script, vec![json!(path), json!(form)])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or_else(|| panic!("the POST did not complete"))
}

/// The CSRF token the page's forms carry.
async fn csrf_of(client: &Client) -> String {
    client
        .find(Locator::Css("input[name=csrf]"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap()
}

#[test]
fn an_incident_is_followed_live_and_approved_by_two_people_from_the_dashboard() {
    let Some(chromium) = Chromium::start("dashboard::an_incident_is_followed_live") else {
        return;
    };
    let data = data_dir();
    let server = with_policies(data.path());
    let alice = server.token_with("alice", &["read", "approve"]);
    let bob = server.token_with("bob", &["read", "approve"]);
    let reader = server.token_with("reader", &["read"]);
    let rt = rt();

    // Alice watches the overview; the incident arrives while the page is open.
    let a = rt.block_on(async {
        let a = browser(&chromium, true).await;
        sign_in(&a, &server.url, &alice).await;
        assert!(
            !a.source().await.unwrap().contains(&alice),
            "the token is never rendered"
        );
        mark(&a).await;
        screenshot(&a, "overview-empty").await;
        a
    });
    let run = start_incident(&server);
    let pending = grace_testkit::poll_until("a pending approval", WAIT, || {
        approvals(&server, "pending").into_iter().next()
    });
    let approval = pending["id"].as_str().unwrap().to_owned();
    rt.block_on(async {
        wait_for_text(&a, "#active-runs", &run).await;
        wait_for_text(&a, "#active-runs", "waiting-approval").await;
        wait_for_text(&a, "#pending-approvals", "0 of 2 approvals").await;
        assert!(
            still_marked(&a).await,
            "the overview updated without a reload"
        );
        screenshot(&a, "overview-waiting").await;
    });

    // A read-only token sees the change but finds nothing to press, and a forged vote fails.
    rt.block_on(async {
        let r = browser(&chromium, true).await;
        sign_in(&r, &server.url, &reader).await;
        r.goto(&format!("{}/approvals", server.url)).await.unwrap();
        wait_for_text(
            &r,
            "#pending",
            "scaling.set-desired-capacity on group/api-asg",
        )
        .await;
        assert!(
            r.find_all(Locator::Css("button.approve, button.deny"))
                .await
                .unwrap()
                .is_empty(),
            "a read token gets no approve or deny button"
        );
        let csrf = csrf_of(&r).await;
        let status = post_from_page(
            &r,
            &format!("/approvals/{approval}/approve"),
            &format!("csrf={csrf}&comment=forged"),
        )
        .await;
        assert_eq!(
            status, 403,
            "a read token cannot approve, even with its own CSRF token"
        );
        screenshot(&r, "approvals-read-only").await;
        r.close().await.unwrap();
    });

    // Alice approves through the form; a vote without the page's CSRF token is refused.
    rt.block_on(async {
        a.goto(&format!("{}/approvals", server.url)).await.unwrap();
        wait_for_text(&a, "#pending", "0 of 2 distinct people").await;
        let status = post_from_page(
            &a,
            &format!("/approvals/{approval}/approve"),
            "csrf=00&comment=forged",
        )
        .await;
        assert_eq!(
            status, 403,
            "a form without the session's CSRF token is refused"
        );
        screenshot(&a, "approvals-pending").await;
        a.find(Locator::Id(&format!("approve-comment-{approval}")))
            .await
            .unwrap()
            .send_keys("p95 over 500 ms <script>window.pwned = 1</script><b>for minutes</b>")
            .await
            .unwrap();
        a.find(Locator::Css(&format!("#{approval} button.approve")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&a, "#pending", "1 of 2 distinct people").await;
        wait_for_text(&a, "#pending", "approved by alice").await;
        // What people type is shown as typed, never run or rendered as markup.
        wait_for_text(
            &a,
            "#pending",
            "<script>window.pwned = 1</script><b>for minutes</b>",
        )
        .await;
        let pwned = a
            .execute("return typeof window.pwned;", vec![])
            .await
            .unwrap();
        assert_eq!(pwned, json!("undefined"));
        assert!(
            a.find_all(Locator::Css("#pending b"))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            a.find_all(Locator::Css(&format!("#{approval} button.approve")))
                .await
                .unwrap()
                .is_empty(),
            "the same person cannot approve twice: the button is gone"
        );
        // Alice now watches the run itself.
        a.goto(&format!("{}/runs/{run}", server.url)).await.unwrap();
        wait_for_text(&a, "#run", "waiting-approval").await;
        mark(&a).await;
    });
    assert_eq!(
        approvals(&server, "pending")[0]["approved_by"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "only Alice's vote counted"
    );

    // Bob, another person, approves; Alice's run page completes by itself.
    rt.block_on(async {
        let b = browser(&chromium, true).await;
        sign_in(&b, &server.url, &bob).await;
        b.goto(&format!("{}/approvals", server.url)).await.unwrap();
        b.find(Locator::Css(&format!("#{approval} button.approve")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for_text(&b, "#decided", "approved by bob").await;
        b.close().await.unwrap();

        wait_for_text(&a, "#run", "succeeded").await;
        wait_for_text(&a, "#run", "scaling.set-desired-capacity").await;
        assert!(
            still_marked(&a).await,
            "the run page completed without a reload"
        );
        let calls = a
            .find_all(Locator::Css("ol.timeline li.call"))
            .await
            .unwrap();
        assert!(calls.len() >= 3, "the timeline shows every host call");
        screenshot(&a, "run-succeeded").await;
        for page in ["playbooks", "charts", "graph"] {
            a.goto(&format!("{}/{page}", server.url)).await.unwrap();
            screenshot(&a, page).await;
        }
        a.close().await.unwrap();
    });
    let (_, run_record) = server.get(&format!("/v1/runs/{run}"));
    assert_eq!(run_record["state"], "succeeded", "{run_record}");
}

#[test]
fn forms_from_elsewhere_and_cookies_on_the_api_are_refused() {
    let data = data_dir();
    let cfg = config(data.path(), "");
    let server = Server::start(data.path(), &["--config", &cfg]);
    let alice = server.token_with("alice", &["read", "approve", "operate"]);
    let rt = rt();
    let session = rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Signing in sets an HttpOnly, SameSite=Strict cookie holding the token.
        for elsewhere in [
            "//evil.example/",
            "/\t/evil.example",
            "https://evil.example/",
        ] {
            let response = client
                .post(format!("{}/login", server.url))
                .form(&[("token", alice.as_str()), ("next", elsewhere)])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 303);
            assert_eq!(
                response.headers()["location"],
                "/",
                "no open redirect to {elsewhere:?}"
            );
        }
        let response = client
            .post(format!("{}/login", server.url))
            .form(&[("token", alice.as_str()), ("next", "/playbooks")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["location"], "/playbooks");
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let session = cookie.split(';').next().unwrap().to_owned();

        // Pages carry a strict CSP.
        let page = client
            .get(format!("{}/playbooks", server.url))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(page.headers()["x-frame-options"], "DENY");
        let html = page.text().await.unwrap();
        assert!(!html.contains(&alice), "the token is never rendered");
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();

        // The cookie means nothing to the API: it takes bearer tokens only.
        let api = client
            .get(format!("{}/v1/runs", server.url))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 401);

        // Another site's form, even carrying a valid token: refused before anything runs.
        for (origin, fetch_site) in [
            (Some("http://evil.example"), None),
            (None, Some("cross-site")),
            (Some("null"), None),
        ] {
            let mut request = client
                .post(format!("{}/playbooks/scale-on-latency/disable", server.url))
                .header("cookie", &session)
                .form(&[("csrf", csrf.as_str())]);
            if let Some(origin) = origin {
                request = request.header("origin", origin);
            }
            if let Some(site) = fetch_site {
                request = request.header("sec-fetch-site", site);
            }
            let status = request.send().await.unwrap().status();
            assert_eq!(status, 403, "origin {origin:?}, fetch site {fetch_site:?}");
        }
        // A form without the CSRF token, or with another session's.
        for token in ["", "deadbeef"] {
            let status = client
                .post(format!("{}/logout", server.url))
                .header("cookie", &session)
                .form(&[("csrf", token)])
                .send()
                .await
                .unwrap()
                .status();
            // Signing out needs no token; acting does.
            assert_eq!(status, 303);
            let status = client
                .post(format!("{}/approvals/ap-x/approve", server.url))
                .header("cookie", &session)
                .form(&[("csrf", token)])
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 403, "csrf {token:?}");
        }
        // With the token, the vote reaches the approvals (which has no `ap-x`).
        let status = client
            .post(format!("{}/approvals/ap-x/approve", server.url))
            .header("cookie", &session)
            .header("origin", server.url.as_str())
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404);

        session
    });
    let (status, tokens) = server.get("/v1/tokens");
    assert_eq!(status, 200);
    let alice_token = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["principal"] == "local:alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, revoked) = server.delete(&format!("/v1/tokens/{alice_token}"));
    assert_eq!(status, 200, "{revoked}");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Not signed in: pages send people to the sign-in form, forms are refused.
        let response = client
            .get(format!("{}/runs?state=failed", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(
            response.headers()["location"],
            "/login?next=%2Fruns%3Fstate%3Dfailed"
        );
        // The revoked token stops working on the next page.
        let response = client
            .get(format!("{}/", server.url))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "revoked: back to the sign-in form");
        // Not a token: refused, naming why.
        let response = client
            .post(format!("{}/login", server.url))
            .form(&[("token", "<script>alert(1)</script>")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("characters no token has")
        );
        // A session made up, or one from another server: not signed in.
        let response = client
            .get(format!("{}/", server.url))
            .header("cookie", format!("grace_session=1.00.{}", server.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "a forged session cookie");
    });
}

#[test]
fn pages_read_without_javascript_and_pass_an_accessibility_check() {
    let Some(chromium) = Chromium::start("dashboard::pages_read_without_javascript") else {
        return;
    };
    let data = data_dir();
    let server = with_policies(data.path());
    let alice = server.token_with("alice", &["read", "approve", "operate"]);
    let run = start_incident(&server);
    grace_testkit::poll_until("a pending approval", WAIT, || {
        approvals(&server, "pending").into_iter().next()
    });
    let axe = include_str!("assets/axe-core-4.14.1.min.js");
    rt().block_on(async {
        // Without JavaScript: sign in, the overview and a run read completely.
        let plain = browser(&chromium, false).await;
        sign_in(&plain, &server.url, &alice).await;
        let overview = plain
            .find(Locator::Id("active-runs"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(overview.contains(&run), "{overview}");
        plain
            .goto(&format!("{}/runs/{run}", server.url))
            .await
            .unwrap();
        let page = plain
            .find(Locator::Id("run"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("waiting-approval") && page.contains("Timeline"),
            "{page}"
        );
        assert!(page.contains(" UTC"), "times read in UTC without scripts");
        screenshot(&plain, "run-without-javascript").await;
        plain.close().await.unwrap();

        // Every page, light and dark: no serious or critical WCAG 2 A/AA violation (axe-core,
        // in the browser; colour contrast included).
        let mut checked = Vec::new();
        for dark in [false, true] {
            let c = session(&chromium, true, dark).await;
            let dark_now = c
                .execute(
                    "return matchMedia('(prefers-color-scheme: dark)').matches;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(dark_now, json!(dark));
            c.goto(&format!("{}/login", server.url)).await.unwrap();
            checked.push(audit(&c, axe, "login").await);
            sign_in(&c, &server.url, &alice).await;
            for page in [
                String::new(),
                format!("runs/{run}"),
                "runs".to_owned(),
                "approvals".to_owned(),
                "playbooks".to_owned(),
                "charts".to_owned(),
                "graph".to_owned(),
            ] {
                c.goto(&format!("{}/{page}", server.url)).await.unwrap();
                checked.push(audit(&c, axe, &page).await);
            }
            if dark {
                c.goto(&format!("{}/approvals", server.url)).await.unwrap();
                screenshot(&c, "approvals-dark").await;
            }
            c.close().await.unwrap();
        }
        let c = browser(&chromium, true).await;
        sign_in(&c, &server.url, &alice).await;
        // Times read in the viewer's zone once scripts run, with UTC on hover.
        c.goto(&format!("{}/runs/{run}", server.url)).await.unwrap();
        let time = c.find(Locator::Css("time[data-local]")).await.unwrap();
        assert!(time.attr("title").await.unwrap().unwrap().ends_with(" UTC"));
        // Keyboard: the first Tab reaches the skip link.
        c.execute("document.activeElement.blur(); return 1;", vec![])
            .await
            .unwrap();
        c.find(Locator::Css("body"))
            .await
            .unwrap()
            .send_keys("\u{E004}")
            .await
            .unwrap();
        let focused = c
            .execute("return document.activeElement.className;", vec![])
            .await
            .unwrap();
        assert_eq!(focused, json!("skip"));
        c.close().await.unwrap();
        eprintln!("axe-core: {}", checked.join("; "));
    });
}

/// Runs axe-core on the current page; panics on serious or critical violations.
async fn audit(client: &Client, axe: &str, page: &str) -> String {
    client
        .execute(&format!("{axe}\nreturn typeof axe;"), vec![])
        .await
        .unwrap();
    let script = "const done = arguments[0];
        axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa'] } })
          .then(r => done({
              passes: r.passes.length,
              bad: r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
                  .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', ')),
          }), e => done({ error: String(e) }));";
    let result: Value = client.execute_async(script, vec![]).await.unwrap();
    assert!(
        result.get("error").is_none(),
        "axe failed on /{page}: {result}"
    );
    let bad = result["bad"].as_array().unwrap();
    assert!(
        bad.is_empty(),
        "accessibility violations on /{page}: {bad:#?}"
    );
    format!("/{page}: {} rules passed", result["passes"])
}
