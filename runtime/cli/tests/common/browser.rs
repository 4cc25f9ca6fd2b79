//! A real headless Chromium, driven over WebDriver (`fantoccini`): sessions and signing in to
//! the dashboard, shared by the dashboard's tests and its benchmark.

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use grace_testkit::chromium::Chromium;

/// How long a page may take to show what is waited for.
pub const WAIT: Duration = Duration::from_secs(30);

/// A WebDriver session; `javascript: false` reads as a browser without scripts does.
pub async fn browser(chromium: &Chromium, javascript: bool) -> Client {
    session(chromium, javascript, false).await
}

/// A WebDriver session, in the dark colour scheme when `dark`.
pub async fn session(chromium: &Chromium, javascript: bool, dark: bool) -> Client {
    // WebDriver is plain HTTP on loopback, but the client is built with rustls: give it the
    // provider the server uses.
    let _ = rustls::crypto::CryptoProvider::install_default(std::sync::Arc::unwrap_or_clone(
        grace_server::tls::provider(),
    ));
    ClientBuilder::rustls()
        .expect("a TLS-capable WebDriver client")
        .capabilities(chromium.capabilities(javascript, dark))
        .connect(&chromium.webdriver_url())
        .await
        .unwrap_or_else(|e| panic!("no WebDriver session: {e}\n{}", chromium.log()))
}

/// Signs in through the form, as a person does.
pub async fn sign_in(client: &Client, url: &str, token: &str) {
    client.goto(&format!("{url}/login")).await.unwrap();
    client
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    client
        .find(Locator::Css("form[action='/login'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    if let Err(e) = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("nav[aria-label=Main]"))
        .await
    {
        panic!(
            "not signed in: {e}\n{}\n{}",
            client
                .current_url()
                .await
                .map(|u| u.to_string())
                .unwrap_or_default(),
            client.source().await.unwrap_or_default()
        );
    }
}
